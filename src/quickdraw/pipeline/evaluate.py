"""DVC stage `evaluate`: a checkpoint on a cache split -> metrics.json, PNG plots and the data behind them.

Files written under ``out_dir``::

    metrics.json                 n, top1, top3, ece (15 bins), per_class {class: accuracy}, split, checkpoint
    plots/confusion.csv          one row per sample: actual,predicted (class names) -> dvc `confusion` template
    plots/per_class.json         [{class, accuracy, n}] sorted by accuracy -> dvc `bar_horizontal`
    plots/reliability.json       [{bin, lo, hi, count, confidence, accuracy}] -> dvc `linear` (x=confidence)
    plots/confidence.json        [{bin, lo, hi, correct, wrong}] confidence histogram counts
    plots/confusion.png, per_class_accuracy.png, reliability.png, confidence_hist.png   (matplotlib Agg)
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quickdraw._ownership import NEW_FOLDER_HINT, claim_output, only_names
from quickdraw.errors import CacheError, QuickDrawError
from quickdraw.metrics import (
    confusion_matrix,
    expected_calibration_error,
    per_class_accuracy,
    reliability_bins,
    top_k_accuracy,
)
from quickdraw.models import GRUClassifier, load_checkpoint
from quickdraw.pipeline.train import SplitLike, _open_split, iter_batches, pick_device

__all__ = ["evaluate", "evaluate_on", "locate_cache", "predict_proba"]

log = logging.getLogger(__name__)

N_BINS = 15


@torch.no_grad()
def predict_proba(
    model: GRUClassifier, ds: SplitLike, *, batch_size: int = 512, device: torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``[n, K]`` and labels ``[n]`` for every sequence of ``ds``, in dataset order."""
    device = device or next(model.parameters()).device
    model.eval()
    n, k = len(ds), model.config.n_classes
    probs = np.zeros((n, k), dtype=np.float32)
    labels = np.zeros(n, dtype=np.int64)
    for idx, b in iter_batches(ds, batch_size):
        logits = model(b["x"].to(device), b["lengths"])
        probs[idx] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        labels[idx] = b["labels"].numpy()
    return probs, labels


def evaluate(
    checkpoint: str | os.PathLike[str],
    cache: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    split: str = "test",
    *,
    root: str | os.PathLike[str] | None = None,
    batch_size: int = 512,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``split`` of ``cache`` (default: the cache named in the checkpoint).

    The cache version is the one the model was trained on, looked up under ``root`` (:func:`locate_cache`).
    Returns the metrics.json document.
    """
    model, info = load_checkpoint(checkpoint, map_location=pick_device(device))
    target = locate_cache(info, cache, root, checkpoint=str(checkpoint))
    # The model's input size says which sequences it reads: stroke3t (4 columns) or stroke3.
    ds = _open_split(target, split, root, "stroke3t" if model.config.input_size == 4 else "stroke3")
    return evaluate_on(model, info, ds, out_dir, split=split, checkpoint=str(checkpoint), batch_size=batch_size)


def locate_cache(
    info: dict[str, Any],
    cache: str | os.PathLike[str] | None,
    root: str | os.PathLike[str] | None,
    *,
    checkpoint: str = "the checkpoint",
) -> Path:
    """The version directory to evaluate on, preferring the cache version the model was trained on.

    1. ``cache`` (else the checkpoint's cache name) at the checkpoint's cache version under ``root``: the
       root comes first so ``--cache-root`` decides, and a cache moved with its root is still found;
    2. the checkpoint's stored absolute version path (the cache as it was at training time), unless
       ``cache`` names another cache;
    3. only when ``cache`` was given explicitly: its latest version, with a warning naming both versions
       (the caller asked for that cache; a silent switch would make the metrics incomparable).
    """
    from quickdraw.cache.store import resolve

    stored = info.get("cache") or {}
    trained_name, trained_version, stored_path = stored.get("name"), stored.get("version"), stored.get("path")
    name = cache if cache is not None else trained_name
    if name is None and not stored_path:
        raise QuickDrawError(f"{checkpoint}: no cache recorded in the checkpoint; pass one explicitly")
    errors: list[str] = []
    if name is not None:
        try:
            return resolve(name, version=trained_version or "latest", root=root).path
        except CacheError as exc:
            errors.append(str(exc))
    # The stored path is trained_name's directory: a different explicit cache must not be swapped for it.
    same_cache = cache is None or trained_name is None or Path(os.fspath(cache)).name == trained_name
    if stored_path and same_cache:
        try:
            return resolve(stored_path, version=trained_version or "latest").path
        except CacheError as exc:
            errors.append(str(exc))
    if cache is not None and trained_version:
        cv = resolve(cache, version="latest", root=root)  # raises naming what exists if nothing does
        log.warning(
            "%s was trained on version %s of cache %s, which is not available (%s); evaluating on version %s "
            "of %s instead", checkpoint, trained_version, trained_name, "; ".join(errors), cv.version, cv.name,
        )
        return cv.path
    if not trained_version:
        raise CacheError("; ".join(errors))  # nothing version-specific was asked for: resolve's own message
    hint = "" if cache is not None else "; pass --cache NAME to evaluate on that cache's latest version instead"
    raise CacheError(
        f"{checkpoint}: cannot find version {trained_version} of cache {trained_name}, which it was trained on: "
        + "; ".join(errors) + hint
    )


def evaluate_on(
    model: GRUClassifier,
    info: dict[str, Any],
    ds: SplitLike,
    out_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    checkpoint: str | None = None,
    batch_size: int = 512,
) -> dict[str, Any]:
    """Evaluate an already-loaded model on an opened split and write the metrics and plots."""
    classes = list(info["classes"])
    if list(ds.classes) != classes:
        raise QuickDrawError(
            f"class list mismatch: checkpoint has {len(classes)} classes, the {split} split has "
            f"{len(ds.classes)} (or a different order); evaluate on a cache built with the same classes"
        )
    if len(ds) == 0:
        raise QuickDrawError(f"the {split} split is empty; nothing to evaluate")
    # metrics.json and the plots are replaced: only in a folder quickdraw owns (or a new or empty one).
    out = claim_output(out_dir, "evaluate", adopt=only_names({"metrics.json", "plots"}), hint=NEW_FOLDER_HINT)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)

    probs, labels = predict_proba(model, ds, batch_size=batch_size)
    preds = probs.argmax(1)
    conf = probs.max(1).astype(np.float64)
    correct = preds == labels
    k = len(classes)
    acc = per_class_accuracy(labels, preds, k)
    support = np.bincount(labels, minlength=k)
    bins = reliability_bins(conf, correct, N_BINS)
    ece = expected_calibration_error(conf, correct, N_BINS)
    doc: dict[str, Any] = {
        "n": int(len(labels)),
        "top1": top_k_accuracy(probs, labels, 1),
        "top3": top_k_accuracy(probs, labels, 3),
        "ece": ece,
        "ece_bins": N_BINS,
        "split": split,
        "checkpoint": checkpoint,
        # The version actually evaluated: with an explicit --cache it can be a newer one than trained on.
        "cache_version": _ds_version(ds) or (info.get("cache") or {}).get("version"),
        # NaN is not JSON: classes absent from the split get null.
        "per_class": {c: (None if np.isnan(a) else float(a)) for c, a in zip(classes, acc, strict=True)},
    }
    (out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")

    with open(plots / "confusion.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["actual", "predicted"])
        w.writerows((classes[a], classes[p]) for a, p in zip(labels, preds, strict=True))
    present = [i for i in np.argsort(np.nan_to_num(acc, nan=-1.0), kind="stable") if support[i] > 0]
    per_class_rows = [{"class": classes[i], "accuracy": float(acc[i]), "n": int(support[i])} for i in present]
    (plots / "per_class.json").write_text(json.dumps(per_class_rows, indent=1) + "\n")
    (plots / "reliability.json").write_text(json.dumps([{"bin": i, **b} for i, b in enumerate(bins)], indent=1) + "\n")
    edges = np.linspace(0, 1, N_BINS + 1)
    hist_ok = np.histogram(conf[correct], bins=edges)[0]
    hist_bad = np.histogram(conf[~correct], bins=edges)[0]
    (plots / "confidence.json").write_text(json.dumps([
        {"bin": i, "lo": float(edges[i]), "hi": float(edges[i + 1]), "correct": int(a), "wrong": int(b)}
        for i, (a, b) in enumerate(zip(hist_ok, hist_bad, strict=True))
    ], indent=1) + "\n")

    _plot_all(plots, classes, confusion_matrix(labels, preds, k), per_class_rows, bins, ece, conf, correct)
    log.info("evaluated %d sequences: top1=%.4f top3=%.4f ece=%.4f", doc["n"], doc["top1"], doc["top3"], ece)
    return doc


def _ds_version(ds: SplitLike) -> str | None:
    v = getattr(ds, "version", None)
    return str(v) if v is not None and not callable(v) else None


def _plot_all(
    plots: Path,
    classes: list[str],
    cm: np.ndarray,
    per_class_rows: list[dict[str, Any]],
    bins: list[dict[str, Any]],
    ece: float,
    conf: np.ndarray,
    correct: np.ndarray,
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: DVC stages and CI have no display
    import matplotlib.pyplot as plt

    k = len(classes)
    # Size grows with the class count so 345 names stay legible-ish; capped to keep the PNG reasonable.
    side = float(np.clip(0.22 * k + 3, 5, 48))
    font = float(np.clip(200 / max(k, 1), 3, 9))

    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(k), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(plots / "confusion.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, float(np.clip(0.2 * len(per_class_rows) + 1.5, 3, 70))))
    names = [r["class"] for r in per_class_rows]
    ax.barh(range(len(names)), [r["accuracy"] for r in per_class_rows], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=font)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title("per-class accuracy (sorted)")
    fig.tight_layout()
    fig.savefig(plots / "per_class_accuracy.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    lo = np.array([b["lo"] for b in bins])
    width = bins[0]["hi"] - bins[0]["lo"]
    accs = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    ax.bar(lo, accs, width=width, align="edge", edgecolor="black", color="tab:blue", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability diagram (ECE = {ece:.4f}, {len(bins)} bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(plots / "reliability.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    edges = np.linspace(0, 1, len(bins) + 1)
    ax.hist([conf[correct], conf[~correct]], bins=edges, label=["correct", "wrong"],
            color=["tab:green", "tab:red"], stacked=False)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("count")
    ax.set_title("confidence histogram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(plots / "confidence_hist.png", dpi=100)
    plt.close(fig)
