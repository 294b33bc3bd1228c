"""Sketch-RNN: the mixture-density loss against a density computed by hand, exact padding masks, sampling, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from quickdraw.errors import CheckpointError
from quickdraw.models.sketch import (
    S0,
    MixtureParams,
    SketchConfig,
    SketchGrid,
    SketchRNN,
    _draw,
    complete,
    decoder_inputs,
    fit_marginal,
    load_sketch,
    mdn_loss,
    mixture_params,
    sample,
    save_sketch,
)
from quickdraw.strokes import stroke3_to_stroke5


def _random_params(rng: np.random.Generator, b: int, t: int, m: int) -> dict[str, np.ndarray]:
    pi = rng.normal(size=(b, t, m))
    return {
        "pen_logits": rng.normal(size=(b, t, 3)),
        "log_pi": pi - np.log(np.exp(pi).sum(-1, keepdims=True)),
        "mu1": rng.normal(size=(b, t, m)),
        "mu2": rng.normal(size=(b, t, m)),
        "sigma1": np.exp(rng.normal(scale=0.5, size=(b, t, m))),
        "sigma2": np.exp(rng.normal(scale=0.5, size=(b, t, m))),
        "rho": np.tanh(rng.normal(size=(b, t, m))),
    }


def _to_torch(p: dict[str, np.ndarray]) -> MixtureParams:
    return MixtureParams(**{k: torch.tensor(v, dtype=torch.float64) for k, v in p.items()})


def _targets(rng: np.random.Generator, lengths: list[int], t: int) -> tuple[np.ndarray, np.ndarray]:
    """Random normalised stroke-5 targets ``[B, t, 5]`` (end row at lengths[i] - 1, then end-row padding)."""
    y = np.zeros((len(lengths), t, 5))
    mask = np.zeros((len(lengths), t), bool)
    for i, n in enumerate(lengths):
        y[i, : n - 1, :2] = rng.normal(size=(n - 1, 2))
        up = rng.random(n - 1) < 0.3
        y[i, : n - 1, 2] = ~up
        y[i, : n - 1, 3] = up
        y[i, n - 1 :, 4] = 1
        mask[i, :n] = True
    return y, mask


def _direct_nll(p: dict[str, np.ndarray], y: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """The loss written out from the formulas with plain numpy: the bivariate normal pdf (Graves 2013, eq. 24-25)
    by hand, the mixture as a weighted sum of pdfs, the pen term as -log softmax; summed over real steps."""
    off_total, pen_total = 0.0, 0.0
    b, t, _ = y.shape
    for i in range(b):
        for j in range(t):
            if not mask[i, j]:
                continue
            probs = np.exp(p["pen_logits"][i, j]) / np.exp(p["pen_logits"][i, j]).sum()
            pen_total += -math.log(probs[int(np.argmax(y[i, j, 2:5]))])
            if y[i, j, 4] == 1:
                continue
            dens = 0.0
            for k in range(p["mu1"].shape[-1]):
                s1, s2, r = p["sigma1"][i, j, k], p["sigma2"][i, j, k], p["rho"][i, j, k]
                n1 = (y[i, j, 0] - p["mu1"][i, j, k]) / s1
                n2 = (y[i, j, 1] - p["mu2"][i, j, k]) / s2
                z = n1 * n1 + n2 * n2 - 2 * r * n1 * n2
                pdf = math.exp(-z / (2 * (1 - r * r))) / (2 * math.pi * s1 * s2 * math.sqrt(1 - r * r))
                dens += math.exp(p["log_pi"][i, j, k]) * pdf
            off_total += -math.log(dens)
    n = mask.sum()
    return off_total / n, pen_total / n


def test_mdn_loss_matches_the_density_computed_by_hand() -> None:
    rng = np.random.default_rng(0)
    lengths, t, m = [7, 3, 5], 9, 4
    p = _random_params(rng, len(lengths), t, m)
    y, mask = _targets(rng, lengths, t)
    out = mdn_loss(_to_torch(p), torch.tensor(y), torch.tensor(mask))
    off, pen = _direct_nll(p, y, mask)
    assert float(out["offset_nll"]) == pytest.approx(off, rel=1e-9)
    assert float(out["pen_ce"]) == pytest.approx(pen, rel=1e-9)
    assert float(out["loss"]) == pytest.approx(off + pen, rel=1e-9)
    assert int(out["n_steps"]) == sum(lengths)


def test_mixture_params_parameterisation() -> None:
    # pi by softmax, sigma by exp (+ floor), rho by tanh, in the order magenta splits the head's output.
    m = 3
    raw = torch.randn(2, 4, 3 + 6 * m, dtype=torch.float64)
    p = mixture_params(raw, m, min_sigma=0.01)
    torch.testing.assert_close(p.pen_logits, raw[..., :3])
    torch.testing.assert_close(p.log_pi.exp().sum(-1), torch.ones(2, 4, dtype=torch.float64))
    torch.testing.assert_close(p.log_pi, torch.log_softmax(raw[..., 3:3 + m], -1))
    torch.testing.assert_close(p.mu1, raw[..., 3 + m:3 + 2 * m])
    torch.testing.assert_close(p.sigma2, torch.exp(raw[..., 3 + 4 * m:3 + 5 * m]) + 0.01)
    torch.testing.assert_close(p.rho, torch.tanh(raw[..., 3 + 5 * m:]))


def _model(seed: int = 0, **kw: object) -> SketchRNN:
    torch.manual_seed(seed)
    cfg = {"hidden": 24, "num_mixture": 4, "scale": 5.0, **kw}
    return SketchRNN(SketchConfig(**cfg)).eval().requires_grad_(False)  # type: ignore[arg-type]


def test_loss_is_independent_of_padding_length_and_content() -> None:
    rng = np.random.default_rng(1)
    model = _model()
    y, mask = _targets(rng, [6, 11, 4], 11)
    y_t, mask_t = torch.tensor(y, dtype=torch.float32), torch.tensor(mask)

    def loss(yy: torch.Tensor, mm: torch.Tensor) -> float:
        params, _ = model(decoder_inputs(yy))
        return float(mdn_loss(params, yy, mm)["loss"])

    base = loss(y_t, mask_t)
    extra = 40
    pad = torch.zeros(3, extra, 5)
    pad[..., 4] = 1  # stroke-5 padding rows, as the cache pads
    longer = loss(torch.cat([y_t, pad], 1), torch.cat([mask_t, torch.zeros(3, extra, dtype=torch.bool)], 1))
    assert longer == pytest.approx(base, rel=1e-6)
    # Whatever the padded rows hold (even huge values or NaN), the loss only sees the real steps.
    junk = y_t.clone()
    junk[~mask_t] = torch.tensor([1e6, -1e6, 1.0, 0.0, 0.0])
    assert loss(junk, mask_t) == pytest.approx(base, rel=1e-6)
    # ... while changing one real step changes it (the test can fail).
    moved = y_t.clone()
    moved[1, 2, 0] += 3.0
    assert abs(loss(moved, mask_t) - base) > 1e-4
    # The end step's (dx, dy) are not an offset to predict.
    end = y_t.clone()
    end[2, 3, :2] = 7.0  # sequence 2 has 4 real steps: row 3 is its end row
    params, _ = model(decoder_inputs(y_t))
    a = mdn_loss(params, y_t, mask_t)["offset_nll"]
    b = mdn_loss(params, end, mask_t)["offset_nll"]
    assert float(a) == pytest.approx(float(b), rel=1e-7)


def test_batch_loss_equals_the_step_weighted_mean_of_single_sequences() -> None:
    rng = np.random.default_rng(2)
    model = _model()
    lengths = [6, 11, 4]
    y, mask = _targets(rng, lengths, 11)
    params, _ = model(decoder_inputs(torch.tensor(y, dtype=torch.float32)))
    batch = float(mdn_loss(params, torch.tensor(y, dtype=torch.float32), torch.tensor(mask))["loss"])
    singles = []
    for i, n in enumerate(lengths):
        yi = torch.tensor(y[i : i + 1, :n], dtype=torch.float32)
        pi, _ = model(decoder_inputs(yi))
        singles.append(float(mdn_loss(pi, yi, torch.ones(1, n, dtype=torch.bool))["loss"]) * n)
    assert batch == pytest.approx(sum(singles) / sum(lengths), rel=1e-5)


def test_decoder_inputs_start_with_s0_and_shift_by_one() -> None:
    y = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)
    x = decoder_inputs(y)
    assert x.shape == y.shape
    assert x[:, 0].tolist() == [list(S0)] * 2
    torch.testing.assert_close(x[:, 1:], y[:, :-1])


def _valid_stroke5(seq: np.ndarray) -> None:
    assert seq.ndim == 2 and seq.shape[1] == 5 and len(seq) >= 1
    pen = seq[:, 2:5]
    assert set(np.unique(pen).tolist()) <= {0.0, 1.0}
    assert (pen.sum(1) == 1).all(), "exactly one pen state per row"
    assert seq[-1].tolist() == [0, 0, 0, 0, 1], "ends with the end row"
    assert (pen[:-1, 2] == 0).all(), "no end before the last row"
    assert np.isfinite(seq).all()


def test_sampling_is_valid_stroke5_ends_with_p_end_and_is_seeded() -> None:
    model = _model()
    grid = sample(model, 6, 0.7, max_len=40, seed=3)
    assert len(grid) == 6
    for i, s in enumerate(grid.sketches):
        _valid_stroke5(s)
        assert len(s) <= 41
        if not grid.ended[i]:
            assert len(s) == 41  # cut at max_len, then closed with the end row
    again = sample(model, 6, 0.7, max_len=40, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(grid.sketches, again.sketches))
    other = sample(model, 6, 0.7, max_len=40, seed=4)
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(grid.sketches, other.sketches))


def _fixed_model(end_logit: float = -20.0) -> SketchRNN:
    """A model whose head ignores its input: one component at (2, -1) with sigmas (1, 0.5), rho 0.6."""
    model = _model(num_mixture=2, min_sigma=0.0, scale=1.0)
    with torch.no_grad():
        model.head.weight.zero_()
        b = torch.zeros(3 + 12)
        b[:3] = torch.tensor([0.0, -20.0, end_logit])  # pen: down, up, end
        b[3:5] = torch.tensor([10.0, -10.0])  # pi: component 0
        b[5:7] = torch.tensor([2.0, 0.0])  # mu1
        b[7:9] = torch.tensor([-1.0, 0.0])  # mu2
        b[9:11] = torch.tensor([0.0, 0.0])  # log sigma1
        b[11:13] = torch.tensor([math.log(0.5), 0.0])  # log sigma2
        b[13:15] = torch.tensor([math.atanh(0.6), 0.0])  # rho
        model.head.bias.copy_(b)
    return model


@pytest.mark.parametrize("tau", [1.0, 0.25])
def test_temperature_scales_the_variance(tau: float) -> None:
    model = _fixed_model()
    params, _ = model(torch.zeros(4000, 1, 5))
    rows = _draw(params, tau, torch.Generator().manual_seed(0)).numpy()
    assert rows[:, 0].mean() == pytest.approx(2.0, abs=0.05)
    assert rows[:, 1].mean() == pytest.approx(-1.0, abs=0.05)
    # Variance x tau (Ha & Eck eq. 8): std x sqrt(tau); the correlation is kept.
    assert rows[:, 0].std() == pytest.approx(math.sqrt(tau) * 1.0, rel=0.06)
    assert rows[:, 1].std() == pytest.approx(math.sqrt(tau) * 0.5, rel=0.06)
    assert np.corrcoef(rows[:, 0], rows[:, 1])[0, 1] == pytest.approx(0.6, abs=0.05)
    assert (rows[:, 2] == 1).all()


def test_sampling_stops_at_p_end_and_at_max_len() -> None:
    always_end = sample(_fixed_model(end_logit=30.0), 3, 1.0, max_len=50, seed=0)
    # From scratch the first step cannot end (no drawing is empty); the second does.
    assert [len(s) for s in always_end] == [2, 2, 2] and always_end.ended.all()
    assert always_end[0][0, 2:].tolist() == [1, 0, 0]
    # After a prefix, ending at once is allowed: the model may think the drawing is finished.
    done = complete(_fixed_model(end_logit=30.0), np.array([[5, 5, 1]]), n=2, temperature=1.0, seed=0)
    assert [len(s) for s in done] == [2, 2] and done.ended.all()
    never_end = sample(_fixed_model(end_logit=-30.0), 3, 1.0, max_len=17, seed=0)
    assert [len(s) for s in never_end] == [18, 18, 18] and not never_end.ended.any()
    for s in never_end:
        _valid_stroke5(s)


def test_samples_are_in_pixel_units() -> None:
    model = _fixed_model()
    object.__setattr__(model.config, "scale", 10.0)  # frozen dataclass; the scale multiplies the offsets back
    grid = sample(model, 200, 1.0, max_len=5, seed=0)
    xs = np.concatenate([s[:-1, 0] for s in grid])
    assert xs.mean() == pytest.approx(20.0, abs=1.0)


def test_complete_keeps_the_prefix_and_continues_it() -> None:
    model = _model()
    s3 = np.array([[10, 5, 0], [4, 0, 0], [0, 6, 1], [-8, 2, 0], [3, 3, 1]], np.int16)
    grid = complete(model, s3, n=3, temperature=0.5, max_len=30, seed=0)
    assert grid.prefix_length == 5 and len(grid) == 3
    five = stroke3_to_stroke5(s3)
    for s in grid:
        _valid_stroke5(s)
        np.testing.assert_array_equal(s[:5], five[:5])
    # The same drawing given as stroke-5 (with its end row) continues identically under the same seed.
    same = complete(model, five, n=3, temperature=0.5, max_len=30, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(grid, same))
    # The continuation depends on the prefix (the LSTM state carries it).
    other = complete(model, s3[:2], n=3, temperature=0.5, max_len=30, seed=0)
    assert any(len(a) - 2 != len(b) - 5 or not np.array_equal(a[2:], b[5:]) for a, b in zip(other, grid))
    with pytest.raises(ValueError, match="prefix must be"):
        complete(model, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        complete(model, np.array([[np.nan, 0, 1]]))
    with pytest.raises(ValueError, match="exactly one"):
        complete(model, np.array([[1, 1, 1, 1, 0]]))


def test_complete_matches_teacher_forcing() -> None:
    # The state complete() samples from is the state of the training forward pass over the same prefix.
    model = _fixed_model()  # constant head: continuation rows are a pure function of the seed ...
    a = complete(model, np.array([[1, 2, 1]]), n=2, temperature=1.0, max_len=6, seed=5)
    b = sample(model, 2, 1.0, max_len=6, seed=5)
    assert all(np.array_equal(x[1:], y) for x, y in zip(a, b))  # ... so the prefix changes nothing here


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 11.0])
def test_bad_temperature_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        sample(_model(), 2, bad)


def test_grid_renders_png_svg_and_gif(tmp_path: Path) -> None:
    from PIL import Image

    grid = sample(_fixed_model(), 4, 1.0, max_len=20, seed=0)
    png = grid._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = np.asarray(Image.open(grid.save(tmp_path / "g.png")).convert("L"))
    assert img.shape == (2 * 128, 2 * 128) and img.std() > 5 and (img < 128).any()
    svg = grid._repr_svg_()
    assert svg.startswith("<svg") and svg.count("<polyline") >= 4
    gif = Image.open(grid.animate(tmp_path / "g.gif"))
    assert gif.n_frames > 2
    first = np.asarray(gif.convert("L"))
    assert (first == 255).all()  # the animation starts from an empty canvas and draws
    assert "4 sketches" in repr(grid)
    with pytest.raises(ValueError, match="png or .svg"):
        grid.save(tmp_path / "g.jpg")


def test_completion_gif_starts_with_the_prefix_drawn(tmp_path: Path) -> None:
    from PIL import Image

    grid = complete(_fixed_model(), np.array([[0, 0, 0], [30, 0, 0], [0, 30, 1]]), n=1, temperature=1.0,
                    max_len=10, seed=0)
    gif = Image.open(grid.animate(tmp_path / "c.gif"))
    assert (np.asarray(gif.convert("L")) < 128).any()


def test_checkpoint_round_trip_and_validation(tmp_path: Path) -> None:
    model = _model()
    path = save_sketch(tmp_path / "s.pt", model, classes=["cat"], step=3)
    loaded, info = load_sketch(path)
    assert info["classes"] == ["cat"] and info["step"] == 3 and loaded.config == model.config
    x = torch.randn(2, 5, 5)
    torch.testing.assert_close(loaded(x)[0].mu1, model(x)[0].mu1)

    def broken(edit: object) -> Path:
        doc = torch.load(path, weights_only=True)
        edit(doc)  # type: ignore[operator]
        p = tmp_path / "bad.pt"
        torch.save(doc, p)
        return p

    cases = [
        (lambda d: d["model_config"].update(hidden=100_000), "hidden=100000 is not an integer in 1..4096"),
        (lambda d: d["model_config"].update(scale=float("nan")), "scale=nan"),
        (lambda d: d["model_config"].update(evil=1), "unknown keys"),
        (lambda d: d.update(kind="gru"), "not a Sketch-RNN checkpoint"),
        (lambda d: d["model_state"].update({"head.bias": torch.zeros(7)}), "has shape (7,)"),
        (lambda d: d["model_state"]["head.weight"].fill_(float("nan")), "NaN or infinite"),
        (lambda d: d["model_state"].pop("head.weight"), "missing"),
    ]
    for edit, msg in cases:
        with pytest.raises(CheckpointError, match=msg.replace("(", r"\(").replace(")", r"\)")) as exc:
            load_sketch(broken(edit))
        assert "\n" not in str(exc.value)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_sketch(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError):
        load_sketch(tmp_path)  # a folder is not a regular file


def test_marginal_baseline_recovers_a_known_mixture() -> None:
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([2, 0], [[0.3, 0.1], [0.1, 0.2]], size=3000)
    b = rng.multivariate_normal([-1, 1], [[0.1, 0.0], [0.0, 0.4]], size=1000)
    x = np.concatenate([a, b])
    base = fit_marginal(x, np.array([70, 25, 5]), num_mixture=2, seed=0, min_sigma=0.0)
    order = np.argsort(-base.log_pi)
    np.testing.assert_allclose(np.exp(base.log_pi[order]), [0.75, 0.25], atol=0.03)
    np.testing.assert_allclose(base.mu[order], [[2, 0], [-1, 1]], atol=0.06)
    np.testing.assert_allclose(np.exp(base.pen_logp), [0.70, 0.25, 0.05], atol=1e-6)
    # Scored with the same loss, its offset NLL is the mixture's average -log density (close to the truth).
    y = np.zeros((1, len(x) + 1, 5))
    y[0, :-1, :2] = x
    y[0, :-1, 2] = 1
    y[0, -1, 4] = 1
    yt = torch.tensor(y, dtype=torch.float32)
    out = mdn_loss(base.params(1, len(x) + 1), yt, torch.ones(1, len(x) + 1, dtype=torch.bool))
    def logpdf(x: np.ndarray, mu: list[float], cov: list[list[float]]) -> np.ndarray:
        c = np.array(cov)
        d = x - np.array(mu)
        maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(c), d)
        return -np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(c)) - 0.5 * maha
    true = -np.log(0.75 * np.exp(logpdf(x, [2, 0], [[0.3, 0.1], [0.1, 0.2]]))
                   + 0.25 * np.exp(logpdf(x, [-1, 1], [[0.1, 0.0], [0.0, 0.4]])))
    n = len(x) + 1
    assert float(out["offset_nll"]) * n / len(x) == pytest.approx(true.mean(), abs=0.02)


def test_sketch_grid_from_given_sketches() -> None:
    s = np.array([[1, 1, 1, 0, 0], [2, 0, 0, 1, 0], [0, 0, 0, 0, 1]], np.float32)
    grid = SketchGrid([s, s, s], cols=3)
    assert grid.rows == 1 and grid.to_image(64).size == (192, 64)
