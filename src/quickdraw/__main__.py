"""``python -m quickdraw ...``: the same CLI as the ``quickdraw`` command.

It exists for launchers that start Python modules, above all ``torchrun --nproc_per_node=N -m quickdraw
train ...`` (distributed training; see README "Training on several GPUs or machines").
"""

from __future__ import annotations

from quickdraw.cli.app import main

if __name__ == "__main__":
    main()
