"""The Arrow schema of prepare's stroke shards (docs/FORMATS.md section 2), shared by its writer and readers.

``quickdraw.pipeline.prepare`` writes shards with it and ``quickdraw.cache.synthetic`` writes stand-ins in
the same contract. It lives on the lowest floor (pyarrow only) so that the cache package, which sits below
the pipeline, can use it without importing a pipeline stage.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["FORMATS", "output_schema"]

#: Channels per step of each sequence format.
FORMATS: dict[str, int] = {"stroke3": 3, "stroke5": 5, "stroke3t": 4}  # stroke3t: (dx, dy, dt, pen_lift)


def output_schema(fmt: str) -> pa.Schema:
    """The Arrow schema of a ``stroke3`` or ``stroke5`` shard (without the ``quickdraw`` metadata)."""
    width = FORMATS[fmt]
    return pa.schema(
        [
            pa.field("key_id", pa.uint64(), nullable=False),
            pa.field("word", pa.string(), nullable=False),
            pa.field("label", pa.int32(), nullable=False),
            pa.field("countrycode", pa.string()),
            pa.field("recognized", pa.bool_(), nullable=False),
            pa.field("timestamp", pa.timestamp("us", tz="UTC")),
            pa.field("n_strokes", pa.uint16(), nullable=False),
            pa.field("n_points", pa.uint32(), nullable=False),
            pa.field("length", pa.int32(), nullable=False),
            pa.field("sequence", pa.list_(pa.list_(pa.int16(), width)), nullable=False),
        ]
    )
