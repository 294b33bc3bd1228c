"""Sketch-RNN (Ha & Eck 2017), decoder only: an LSTM that learns a class of stroke-5 drawings and draws new ones.

The recipe follows magenta's ``sketch_rnn`` (``model.py``, ``utils.py``) in what makes it work:

* **stroke-5 in, stroke-5 out**, ``(dx, dy, p_down, p_up, p_end)`` (docs/FORMATS.md), dx and dy divided by the
  train split's normalising factor (std of all dx, dy: ``SketchConfig.scale``); the model works in those units and
  :func:`sample` multiplies back, so samples are in the data's pixels;
* the **start token** ``S0 = (0, 0, 1, 0, 0)``: the input at step ``t`` is the target of step ``t - 1``, the first
  input is S0 (:func:`decoder_inputs`);
* the **head**: ``3 + 6 M`` outputs per step, a 3-way pen softmax and a mixture of ``M`` bivariate normals over
  ``(dx, dy)`` (weights by softmax, sigmas by exp, correlation by tanh; :func:`mixture_params`);
* the **loss** (:func:`mdn_loss`): minus the log-density of the mixture at each real offset, plus the pen-state
  cross entropy at each real step. Two differences from magenta, both deliberate: the density is computed in log
  space (``logsumexp``) instead of ``-log(sum + 1e-6)`` (exact and without the floor that caps how well a step
  can be fit), and padding is masked **exactly** -- pen terms over the real steps including the end step, offset
  terms over the real steps before it, summed and divided by the number of real steps -- where magenta trains the
  pen term over all ``Nmax`` padded rows and divides by ``Nmax``. So the loss of a batch does not depend on how far
  it is padded (``tests/unit/test_sketch.py``), and a per-step NLL is comparable between batches and baselines;
* **sampling with a temperature** ``tau`` (:func:`sample`): mixture and pen logits divided by ``tau``, the normal's
  variances multiplied by ``tau`` (the paper's eq. 8; magenta's code scales the std by ``tau``, i.e. the variance
  by ``tau**2``, at odds with its paper), stopping at ``p_end`` or ``max_len`` steps.

Not taken from the recipe: the VAE encoder (this is the unconditional model), HyperLSTM and layer-normalised
cells, and recurrent dropout -- ``nn.LSTM`` (fast fused kernels) with dropout on its output instead.

:func:`complete` feeds a user's drawing as a prefix and samples continuations ("finish my drawing"); the result
of :func:`sample` and :func:`complete` is a :class:`SketchGrid`, which shows itself in a notebook
(``_repr_png_``/``_repr_svg_``) and saves a PNG/SVG grid or a GIF through the project's renderer
(:class:`quickdraw.datasets.render.Drawing`).

Checkpoints (:func:`save_sketch`, :func:`load_sketch`) are one ``torch.save`` dict of plain types and tensors
(``weights_only=True`` loading, never pickled code), validated field by field and shape by shape before a model
is built (:func:`validate_sketch_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quickdraw._safety import open_regular
from quickdraw.datasets.render import Drawing
from quickdraw.errors import CheckpointError

__all__ = [
    "S0",
    "SKETCH_CHECKPOINT_FORMAT",
    "MarginalBaseline",
    "MixtureParams",
    "SketchConfig",
    "SketchGrid",
    "SketchRNN",
    "bivariate_log_density",
    "complete",
    "decoder_inputs",
    "fit_marginal",
    "load_sketch",
    "mdn_loss",
    "mixture_params",
    "sample",
    "save_sketch",
    "validate_sketch_checkpoint",
]

#: The start-of-sequence token, the first decoder input (magenta: ``prev_x[0, 0, 2] = 1``).
S0: tuple[float, float, float, float, float] = (0.0, 0.0, 1.0, 0.0, 0.0)
SKETCH_CHECKPOINT_FORMAT = 1
#: Bounds a checkpoint may ask for (checked before anything is allocated).
MAX_HIDDEN = 4096
MAX_LAYERS = 4
MAX_MIXTURE = 256
MAX_SAMPLE_LEN = 10_000
#: |rho| stays below this so that 1 - rho^2 never rounds to 0 in float32 (tanh saturates at |x| ~ 9).
RHO_LIMIT = 1.0 - 1e-5
_LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class SketchConfig:
    """What builds a :class:`SketchRNN` (stored in its checkpoint).

    ``scale`` is the normalising factor the offsets were divided by in training (std of the train split's dx,
    dy); ``min_sigma`` floors the mixture's standard deviations (in those units) so that integer-valued data
    cannot drive a component to a spike of unbounded density.
    """

    hidden: int = 512
    num_mixture: int = 20
    layers: int = 1
    dropout: float = 0.0
    scale: float = 1.0
    min_sigma: float = 1e-3

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoint ``model_config``)."""
        return dataclasses.asdict(self)


@dataclass
class MixtureParams:
    """The head's output, ``[B, T, ...]`` each: pen logits (3), mixture log-weights (M) and the normals."""

    pen_logits: torch.Tensor  # [B, T, 3]
    log_pi: torch.Tensor  # [B, T, M], log-softmax
    mu1: torch.Tensor
    mu2: torch.Tensor
    sigma1: torch.Tensor
    sigma2: torch.Tensor
    rho: torch.Tensor

    def step(self, t: int) -> MixtureParams:
        """The parameters of time step ``t`` only (``[B, 1, ...]``)."""
        return MixtureParams(*(getattr(self, f.name)[:, t : t + 1] for f in dataclasses.fields(self)))


def mixture_params(out: torch.Tensor, num_mixture: int, min_sigma: float = 0.0) -> MixtureParams:
    """Split the head's ``[..., 3 + 6 M]`` output into mixture parameters (magenta's ``get_mixture_coef``)."""
    m = num_mixture
    pen = out[..., :3]
    pi, mu1, mu2, ls1, ls2, corr = torch.split(out[..., 3:], m, dim=-1)
    sigma1 = torch.exp(ls1)
    sigma2 = torch.exp(ls2)
    if min_sigma > 0:
        sigma1 = sigma1 + min_sigma
        sigma2 = sigma2 + min_sigma
    rho = torch.tanh(corr).clamp(-RHO_LIMIT, RHO_LIMIT)
    return MixtureParams(pen, torch.log_softmax(pi, dim=-1), mu1, mu2, sigma1, sigma2, rho)


class SketchRNN(nn.Module):
    """The unconditional Sketch-RNN decoder: ``nn.LSTM`` over stroke-5 inputs, then a linear mixture-density head.

    ``forward(inputs [B, T, 5] normalised, state=None) -> (MixtureParams, state)``; inputs are the previous
    steps (start with :data:`S0`, see :func:`decoder_inputs`).
    """

    def __init__(self, config: SketchConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(5, config.hidden, num_layers=config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, 3 + 6 * config.num_mixture)

    def forward(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[MixtureParams, tuple[torch.Tensor, torch.Tensor]]:
        h, state = self.lstm(inputs, state)
        out = self.head(self.drop(h))
        return mixture_params(out, self.config.num_mixture, self.config.min_sigma), state


def decoder_inputs(targets: torch.Tensor) -> torch.Tensor:
    """``[S0, targets[:, :-1]]``: the decoder sees the previous step and predicts the next (teacher forcing)."""
    s0 = torch.tensor(S0, dtype=targets.dtype, device=targets.device).expand(targets.shape[0], 1, 5)
    return torch.cat([s0, targets[:, :-1]], dim=1)


# -------------------------------------------------------------------------------------------------- loss


def bivariate_log_density(
    x1: torch.Tensor, x2: torch.Tensor, mu1: torch.Tensor, mu2: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor,
    rho: torch.Tensor,
) -> torch.Tensor:
    """Log of the bivariate normal density (Graves 2013, eqs. 24-25), in log space, broadcasting."""
    n1 = (x1 - mu1) / s1
    n2 = (x2 - mu2) / s2
    one_m = 1.0 - rho * rho
    z = n1 * n1 + n2 * n2 - 2.0 * rho * n1 * n2
    return -_LOG_2PI - torch.log(s1) - torch.log(s2) - 0.5 * torch.log(one_m) - z / (2.0 * one_m)


def mdn_loss(params: MixtureParams, targets: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sketch-RNN's reconstruction loss per real step, padding masked exactly.

    ``targets`` ``[B, T, 5]`` normalised stroke-5, ``mask`` ``[B, T]`` True on real steps (each sequence's end
    step included, padding excluded). Returns ``loss`` (offset NLL + pen cross entropy, summed over the real
    steps and divided by their number), ``offset_nll`` and ``pen_ce`` (the two parts, same divisor) and
    ``n_steps``. The offset term counts the steps before the end step (the end step has no offset to predict).
    """
    mask = mask.to(torch.bool)
    x1 = targets[..., 0:1]
    x2 = targets[..., 1:2]
    log_n = bivariate_log_density(x1, x2, params.mu1, params.mu2, params.sigma1, params.sigma2, params.rho)
    log_mix = torch.logsumexp(params.log_pi + log_n, dim=-1)  # [B, T]
    offset_mask = mask & (targets[..., 4] < 0.5)
    pen_target = targets[..., 2:5].argmax(dim=-1)
    pen_ce = nn.functional.cross_entropy(params.pen_logits.reshape(-1, 3), pen_target.reshape(-1),
                                         reduction="none").view_as(pen_target)
    n = mask.sum().clamp(min=1)
    # torch.where, not a multiply: a padded step's NaN or inf must not leak into the sum (0 * inf = nan).
    off = torch.where(offset_mask, -log_mix, torch.zeros_like(log_mix)).sum() / n
    pen = torch.where(mask, pen_ce, torch.zeros_like(pen_ce)).sum() / n
    return {"loss": off + pen, "offset_nll": off, "pen_ce": pen, "n_steps": mask.sum()}


# ------------------------------------------------------------------------------------------- the baseline


@dataclass
class MarginalBaseline:
    """A model with no memory: every step gets the train split's marginal offset distribution (a bivariate
    Gaussian mixture fitted by EM) and the marginal pen-state frequencies. Scored with :func:`mdn_loss` like the
    real model, it is the bar an RNN has to clear to have learned anything about drawing order."""

    log_pi: np.ndarray  # [M]
    mu: np.ndarray  # [M, 2]
    sigma: np.ndarray  # [M, 2]
    rho: np.ndarray  # [M]
    pen_logp: np.ndarray  # [3]

    def params(self, batch: int, steps: int) -> MixtureParams:
        """The same :class:`MixtureParams` at every step of a ``[batch, steps]`` block."""
        def full(v: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(v, dtype=torch.float32).expand(batch, steps, len(v))
        return MixtureParams(full(self.pen_logp), full(self.log_pi), full(self.mu[:, 0]), full(self.mu[:, 1]),
                             full(self.sigma[:, 0]), full(self.sigma[:, 1]), full(self.rho))


def fit_marginal(offsets: np.ndarray, pen_counts: np.ndarray, num_mixture: int = 20, *, iters: int = 200,
                 seed: int = 0, min_sigma: float = 1e-3, max_points: int = 200_000) -> MarginalBaseline:
    """EM for a full-covariance bivariate GMM on ``offsets`` ``[N, 2]`` (normalised dx, dy of non-end steps).

    ``pen_counts`` are the numbers of (p_down, p_up, p_end) target steps. At most ``max_points`` offsets (a seeded
    sample) are used. Components start at seeded data points with the overall covariance.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(offsets, np.float64)
    if len(x) > max_points:
        x = x[rng.choice(len(x), max_points, replace=False)]
    if len(x) < 2:
        raise ValueError("need at least 2 offsets to fit the marginal baseline")
    m = min(num_mixture, len(x))
    mu = x[rng.choice(len(x), m, replace=False)].copy()
    cov = np.repeat(np.cov(x.T)[None] + np.eye(2) * min_sigma**2, m, axis=0)
    w = np.full(m, 1.0 / m)
    prev = -np.inf
    for _ in range(iters):
        # E step in log space.
        d = x[:, None, :] - mu[None]  # [N, M, 2]
        inv = np.linalg.inv(cov)  # [M, 2, 2]
        maha = np.einsum("nmi,mij,nmj->nm", d, inv, d)
        logdet = np.log(np.linalg.det(cov))
        logp = np.log(w)[None] - _LOG_2PI - 0.5 * logdet[None] - 0.5 * maha
        top = logp.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))
        resp = np.exp(logp - lse[:, None])
        ll = float(lse.mean())
        # M step; the diagonal floor keeps a component from collapsing onto one integer value.
        nk = resp.sum(axis=0) + 1e-12
        w = nk / nk.sum()
        mu = (resp.T @ x) / nk[:, None]
        d = x[:, None, :] - mu[None]
        cov = np.einsum("nm,nmi,nmj->mij", resp, d, d) / nk[:, None, None] + np.eye(2) * min_sigma**2
        if ll - prev < 1e-7:
            break
        prev = ll
    sig = np.sqrt(np.stack([cov[:, 0, 0], cov[:, 1, 1]], axis=1))
    rho = np.clip(cov[:, 0, 1] / (sig[:, 0] * sig[:, 1]), -RHO_LIMIT, RHO_LIMIT)
    counts = np.asarray(pen_counts, np.float64) + 1e-9
    return MarginalBaseline(np.log(w), mu, sig, rho, np.log(counts / counts.sum()))


# ---------------------------------------------------------------------------------------------- sampling


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not math.isfinite(t) or not 0 < t <= 10:
        raise ValueError(f"temperature must be a number in (0, 10], got {temperature!r}")
    return t


def _check_count(n: int, what: str, hi: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= hi:
        raise ValueError(f"{what} must be an integer in 1..{hi}, got {n!r}")
    return int(n)


def _draw(p: MixtureParams, temperature: float, gen: torch.Generator, *, allow_end: bool = True) -> torch.Tensor:
    """One sampled normalised stroke-5 row per batch item from one step's parameters (``[B, 5]``).

    ``allow_end=False`` samples the pen state among p_down and p_up only (renormalised)."""
    b = p.log_pi.shape[0]
    pi = torch.softmax(p.log_pi[:, 0] / temperature, dim=-1)
    k = torch.multinomial(pi, 1, generator=gen)  # [B, 1]
    pen_logits = p.pen_logits[:, 0] / temperature
    if not allow_end:
        pen_logits = pen_logits.clone()
        pen_logits[:, 2] = -math.inf
    pen = torch.multinomial(torch.softmax(pen_logits, dim=-1), 1, generator=gen)[:, 0]

    def pick(v: torch.Tensor) -> torch.Tensor:
        return v[:, 0].gather(1, k)[:, 0]

    mu1, mu2, s1, s2, rho = (pick(v) for v in (p.mu1, p.mu2, p.sigma1, p.sigma2, p.rho))
    s1 = s1 * math.sqrt(temperature)  # variance x tau (Ha & Eck, eq. 8)
    s2 = s2 * math.sqrt(temperature)
    z = torch.randn(b, 2, generator=gen)
    dx = mu1 + s1 * z[:, 0]
    dy = mu2 + s2 * (rho * z[:, 0] + torch.sqrt(1 - rho * rho) * z[:, 1])
    row = torch.zeros(b, 5)
    row[:, 0], row[:, 1] = dx, dy
    row[torch.arange(b), 2 + pen] = 1.0
    ended = pen == 2
    row[ended, 0:2] = 0.0  # an end step carries no offset (stroke-5's end row is (0, 0, 0, 0, 1))
    return row


@torch.no_grad()
def _generate(model: SketchRNN, n: int, temperature: float, max_len: int, seed: int | None,
              prefix: np.ndarray | None) -> SketchGrid:
    temperature = _check_temperature(temperature)
    n = _check_count(n, "n", 10_000)
    max_len = _check_count(max_len, "max_len", MAX_SAMPLE_LEN)
    was_training = model.training
    model.eval()
    gen = torch.Generator()
    if seed is None:
        gen.seed()  # fresh entropy, leaving torch's global generator alone
    else:
        gen.manual_seed(int(seed))
    scale = model.config.scale
    s0 = torch.tensor(S0).expand(n, 1, 5)
    pre = np.zeros((0, 5), np.float32) if prefix is None else prefix
    inputs = s0
    if len(pre):
        norm = torch.as_tensor(pre, dtype=torch.float32).clone()
        norm[:, :2] /= scale
        inputs = torch.cat([s0, norm.expand(n, len(pre), 5)], dim=1)
    params, state = model(inputs)
    last = params.step(inputs.shape[1] - 1)
    rows = torch.zeros(n, max_len, 5)
    done = torch.zeros(n, dtype=torch.bool)
    length = torch.full((n,), max_len, dtype=torch.int64)
    for t in range(max_len):
        # A drawing from scratch takes at least one step: no drawing in the data ends before its first point,
        # yet a trained decoder gives that some probability (6.7% for the monkey model of the README), which
        # would leave empty tiles. A prefix may be finished already: then ending at once is allowed.
        row = _draw(last, temperature, gen, allow_end=t > 0 or len(pre) > 0)
        row[done] = torch.tensor((0.0, 0.0, 0.0, 0.0, 1.0))
        rows[:, t] = row
        newly = ~done & (row[:, 4] > 0.5)
        length[newly] = t  # rows before the end step
        done |= newly
        if bool(done.all()):
            break
        params, state = model(row[:, None, :], state)
        last = params
    model.train(was_training)
    out: list[np.ndarray] = []
    rows_np = rows.numpy()
    for i in range(n):
        k = int(length[i])
        seq = np.zeros((len(pre) + k + 1, 5), np.float32)
        seq[: len(pre)] = pre
        seq[len(pre) : len(pre) + k] = rows_np[i, :k]
        seq[len(pre) : len(pre) + k, :2] *= scale
        seq[-1] = (0, 0, 0, 0, 1)
        out.append(seq)
    return SketchGrid(out, ended=done.numpy().copy(), prefix_length=len(pre), temperature=temperature)


def sample(model: SketchRNN, n: int = 16, temperature: float = 0.4, *, max_len: int = 250,
           seed: int | None = None) -> SketchGrid:
    """Draw ``n`` new doodles: each stops at a sampled ``p_end`` (never at the first step) or after ``max_len`` steps.

    Every sketch is valid stroke-5 in the data's pixel units (float32 ``[L + 1, 5]``, one pen state per row,
    exactly one end row, the last); ``grid.ended[i]`` says whether sketch ``i`` chose to end (False: it was cut at
    ``max_len``). The same ``seed`` gives the same sketches.

    >>> model, info = load_sketch("models/sketch/sketch.pt")  # doctest: +SKIP
    >>> sample(model, 16, temperature=0.4, seed=0)             # doctest: +SKIP
    """
    return _generate(model, n, temperature, max_len, seed, None)


def _as_prefix(prefix: Any) -> np.ndarray:
    """A user's drawing as stroke-5 rows without an end step (float32, pixel units)."""
    arr = np.asarray(prefix, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] not in (3, 5):
        raise ValueError(f"prefix must be stroke-3 [L, 3] or stroke-5 [L, 5] rows, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("prefix holds NaN or infinite values")
    if arr.shape[1] == 3:
        lift = arr[:, 2] > 0.5
        five = np.zeros((len(arr), 5), np.float32)
        five[:, :2] = arr[:, :2]
        five[:, 3] = lift
        five[:, 2] = ~lift
        arr = five
    else:
        pen = arr[:, 2:5]
        if not (np.isin(pen, (0.0, 1.0)).all() and (pen.sum(axis=1) == 1).all()):
            raise ValueError("prefix stroke-5 rows must have exactly one of p_down, p_up, p_end set to 1")
        ends = np.flatnonzero(pen[:, 2] > 0.5)
        arr = arr[: ends[0]] if len(ends) else arr
    if len(arr) > MAX_SAMPLE_LEN:
        raise ValueError(f"prefix has {len(arr)} steps, more than {MAX_SAMPLE_LEN}")
    return np.ascontiguousarray(arr)


def complete(model: SketchRNN, prefix: Any, n: int = 4, temperature: float = 0.4, *, max_len: int = 250,
             seed: int | None = None) -> SketchGrid:
    """Finish a drawing: feed ``prefix`` (stroke-3 or stroke-5 rows in pixels, as the data are) to the decoder
    after S0, then sample ``n`` continuations from the state it leaves (Sketch-RNN's "predict the rest").

    Each returned sketch is the prefix followed by its continuation (``grid.prefix_length`` rows are the
    user's); an end step in the prefix and anything after it are ignored.
    """
    return _generate(model, n, temperature, max_len, seed, _as_prefix(prefix))


class SketchGrid:
    """Sampled sketches (stroke-5, pixel units), shown as a grid: inline in Jupyter, or saved as PNG/SVG/GIF.

    ``grid[i]`` is sketch ``i`` (float32 ``[L, 5]``), ``grid.drawing(i)`` its :class:`Drawing`.
    """

    def __init__(self, sketches: Sequence[np.ndarray], *, ended: np.ndarray | None = None, prefix_length: int = 0,
                 temperature: float | None = None, cols: int | None = None) -> None:
        self.sketches = [np.asarray(s, np.float32) for s in sketches]
        self.ended = np.ones(len(self.sketches), bool) if ended is None else np.asarray(ended, bool)
        self.prefix_length = int(prefix_length)
        self.temperature = temperature
        self.cols = cols or max(1, min(8, math.ceil(math.sqrt(len(self.sketches))) if self.sketches else 1))

    def __len__(self) -> int:
        return len(self.sketches)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.sketches[i]

    def __repr__(self) -> str:
        steps = [len(s) - 1 for s in self.sketches]
        t = f", temperature={self.temperature:g}" if self.temperature is not None else ""
        return (f"SketchGrid({len(self)} sketches{t}, steps {min(steps, default=0)}..{max(steps, default=0)}, "
                f"{int(self.ended.sum())} ended by p_end)")

    def drawing(self, i: int) -> Drawing:
        """Sketch ``i`` as the project's :class:`Drawing` (stroke-5)."""
        return Drawing(self.sketches[i], "stroke5")

    @property
    def rows(self) -> int:
        """Rows of the grid."""
        return max(1, math.ceil(len(self) / self.cols))

    def to_image(self, tile: int = 128, *, line_width: int = 2, upto: Sequence[int] | None = None) -> Any:
        """The grid as one PIL image (``tile`` px per sketch); ``upto[i]`` draws only sketch i's first points."""
        from PIL import Image

        canvas = Image.new("L", (self.cols * tile, self.rows * tile), 255)
        for i in range(len(self)):
            img = self.drawing(i).to_image(size=tile, line_width=line_width,
                                           upto=None if upto is None else int(upto[i]))
            canvas.paste(img, ((i % self.cols) * tile, (i // self.cols) * tile))
        return canvas

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.to_image().save(buf, format="PNG")
        return buf.getvalue()

    def _repr_svg_(self, tile: int = 128) -> str:
        parts = []
        for i in range(len(self)):
            x, y = (i % self.cols) * tile, (i // self.cols) * tile
            parts.append(f'<g transform="translate({x},{y})">{self.drawing(i)._repr_svg_(tile)}</g>')
        w, h = self.cols * tile, self.rows * tile
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
                f'<rect width="100%" height="100%" fill="white"/>' + "".join(parts) + "</svg>")

    def save(self, path: str | os.PathLike[str], *, tile: int = 128) -> Path:
        """Write the grid as ``.png`` or ``.svg`` (by suffix) to ``path`` exactly (no ownership checks here:
        the CLI and pipeline decide whether ``path`` may be replaced)."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".png":
            self.to_image(tile).save(p, format="PNG")
        elif suffix == ".svg":
            p.write_text(self._repr_svg_(tile), encoding="utf-8")
        else:
            raise ValueError(f"{p}: the sketch grid is written as .png or .svg")
        return p

    def animate(self, path: str | os.PathLike[str], *, tile: int = 128, frames: int = 40, frame_ms: int = 80,
                hold_ms: int = 1500) -> Path:
        """Write a GIF drawing every sketch point by point (a completion shows its prefix first, then grows)."""
        p = Path(path)
        if p.suffix.lower() != ".gif":
            raise ValueError(f"{p}: the animation is written as .gif")
        points = np.array([_n_points(self.sketches[i]) for i in range(len(self))], np.int64)
        pre = np.array([_n_points(self.sketches[i][: self.prefix_length]) for i in range(len(self))], np.int64)
        n_frames = max(1, min(frames, int((points - pre).max()) if len(points) else 1))
        images = [self.to_image(tile, upto=pre + -(-(points - pre) * k // n_frames)) for k in range(0, n_frames + 1)]
        images[0].save(p, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=[frame_ms] * (len(images) - 1) + [hold_ms])
        return p



def _n_points(seq: np.ndarray) -> int:
    """Points the renderer draws for a stroke-5 sequence (rows before its end step)."""
    return int(sum(len(s) for s in Drawing(seq, "stroke5").strokes)) if len(seq) else 0


# ------------------------------------------------------------------------------------------- checkpoints


def save_sketch(path: str | os.PathLike[str], model: SketchRNN, **info: Any) -> Path:
    """Write ``model`` (weights + config) and ``info`` (classes, cache, params, step, metrics) atomically."""
    path = Path(path)
    doc = {"format": SKETCH_CHECKPOINT_FORMAT, "kind": "sketch-rnn",
           "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
           "model_config": model.config.to_dict(), **info}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.incomplete")  # write-then-rename: never a torn file
    torch.save(doc, tmp)
    os.replace(tmp, path)
    return path


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _sketch_config(cfg: Any, where: str) -> SketchConfig:
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: model_config is a {type(cfg).__name__}, expected a dict")
    names = {f.name for f in dataclasses.fields(SketchConfig)}
    extra = sorted(str(k) for k in cfg if k not in names)
    if extra:
        raise CheckpointError(f"{where}: model_config has unknown keys {extra[:3]}")
    for key, (lo, hi) in {"hidden": (1, MAX_HIDDEN), "num_mixture": (1, MAX_MIXTURE), "layers": (1, MAX_LAYERS)}.items():
        v = cfg.get(key)
        if not _is_int(v) or not lo <= v <= hi:
            raise CheckpointError(f"{where}: model_config.{key}={v!r} is not an integer in {lo}..{hi}")
    d = cfg.get("dropout", 0.0)
    if not _is_num(d) or not 0 <= d < 1:
        raise CheckpointError(f"{where}: model_config.dropout={d!r} is not a number in [0, 1)")
    for key in ("scale", "min_sigma"):
        v = cfg.get(key)
        if not _is_num(v) or v < 0 or (key == "scale" and v == 0):
            raise CheckpointError(f"{where}: model_config.{key}={v!r} is not a finite number "
                                  f"{'> 0' if key == 'scale' else '>= 0'}")
    return SketchConfig(**{k: cfg[k] for k in names if k in cfg})


def validate_sketch_checkpoint(doc: Any, where: str = "checkpoint") -> SketchConfig:
    """The :class:`SketchConfig` of a loaded checkpoint after checking structure, bounds, the class list and
    every weight's name, shape, dtype and finiteness (on the ``meta`` device: nothing allocated); otherwise a
    one-line :class:`CheckpointError` naming ``where`` and the field."""
    if not isinstance(doc, dict):
        raise CheckpointError(f"{where}: not a quickdraw checkpoint (a {type(doc).__name__}, not a dict)")
    if doc.get("kind") != "sketch-rnn":
        hint = " (a classifier checkpoint: use quickdraw predict/evaluate)" if "model_state" in doc else ""
        raise CheckpointError(f"{where}: not a Sketch-RNN checkpoint (kind {doc.get('kind')!r}){hint}")
    if doc.get("format") != SKETCH_CHECKPOINT_FORMAT:
        raise CheckpointError(f"{where}: unsupported Sketch-RNN checkpoint format {doc.get('format')!r} "
                              f"(this quickdraw reads {SKETCH_CHECKPOINT_FORMAT})")
    config = _sketch_config(doc.get("model_config"), where)
    classes = doc.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) and 0 < len(c) <= 256 for c in classes):
        raise CheckpointError(f"{where}: classes must be a list of non-empty strings")
    state = doc.get("model_state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: model_state is a {type(state).__name__}, expected a dict of tensors")
    with torch.device("meta"):
        expected = SketchRNN(config).state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted((str(k) for k in set(state) - set(expected)))
    if missing or extra:
        raise CheckpointError(f"{where}: model_state does not match model_config (missing {missing[:3]}, "
                              f"unexpected {extra[:3]})")
    for k, ref in expected.items():
        t = state[k]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise CheckpointError(f"{where}: model_state[{k!r}] is not a floating-point tensor")
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(f"{where}: model_state[{k!r}] has shape {tuple(t.shape)}, model_config implies "
                                  f"{tuple(ref.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{where}: model_state[{k!r}] holds NaN or infinite weights")
    return config


def load_sketch(path: str | os.PathLike[str]) -> tuple[SketchRNN, dict[str, Any]]:
    """``(model in eval mode, info without the weights)`` from a checkpoint written by :func:`save_sketch`.

    Only a regular file is read, with ``weights_only=True``; the document is validated before a model is built.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    where = f"checkpoint {path}"
    with open_regular(path, where, error=CheckpointError) as f:
        try:
            doc = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt or foreign files
            # torch's own text suggests weights_only=False, the unsafe way out: name the problem instead.
            raise CheckpointError(f"{where}: not a readable checkpoint ({exc.__class__.__name__}: not a file "
                                  f"torch.save wrote, or truncated); give a sketch.pt from quickdraw sketch "
                                  f"train") from None
    config = validate_sketch_checkpoint(doc, where)
    model = SketchRNN(config)
    model.load_state_dict(doc["model_state"])
    model.eval()
    return model, {k: v for k, v in doc.items() if k != "model_state"}
