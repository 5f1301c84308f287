"""``advgame certify``: randomized-smoothing certification (Cohen et al. 2019) of a model.

Inputs are certified in blocks of ``block`` inputs; a block's noise comes from a
generator seeded by (seed, index of its first input) and is shared by the block's inputs
(``noise="shared"``, see :mod:`advgame.smoothing`: per input the samples are i.i.d., one
noise draw serves the block) or drawn per input (``noise="independent"``). Every finished
block is stored under ``OUT/units/`` and blocks are shared out across torchrun processes --
so a resumed or distributed run gives exactly the results of one uninterrupted process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advgame import distributed, smoothing
from advgame.errors import InputError
from advgame.experiments.classifier import ModelConfig, evaluation_setup, finish
from advgame.experiments.runtime import Progress, no_progress
from advgame.rng import unit_generator
from advgame.validate import check_nonnegative, check_positive_int, check_probability


@dataclass(frozen=True, kw_only=True)
class CertifyConfig(ModelConfig):
    """Certification settings (Cohen et al.: n0 selection, n estimation samples)."""

    model: str | None = None
    sigma: float = 0.25
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    noise_batch: int = 1000
    n_test: int | None = 500
    block: int = 10
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    noise: str = "shared"

    def __post_init__(self) -> None:
        super().__post_init__()
        if check_nonnegative("sigma", self.sigma) == 0:
            raise InputError("sigma", "must be > 0")
        for name in ("n0", "n", "noise_batch", "block"):
            check_positive_int(name, getattr(self, name))
        check_probability("alpha", self.alpha)
        if self.n_test is not None:
            check_positive_int("n_test", self.n_test)
        for r in self.radii:
            check_nonnegative("radii", r)
        if self.noise not in smoothing.NOISE_MODES:
            raise InputError("noise", f"must be one of {', '.join(smoothing.NOISE_MODES)}, "
                                      f"got {self.noise!r}")


QUICK: dict[str, Any] = {"epochs": 2, "n": 1000, "n_test": 50, "n0": 50}


def certification_report(res: dict[str, Any], out: Path, radius: np.ndarray,
                         correct: np.ndarray, *, sigma: float, n0: int, n: int, alpha: float,
                         radii: Sequence[float], what: str, table: str, title: str,
                         note: str = "") -> float:
    """Append to ``res`` the certified-accuracy table (``table``: fraction of ``what``
    certified correct at L2 radius >= r, for r in ``radii``) and the figure
    ``out/certified.png``: the curve with its radius ceiling ``sigma * Phi^-1(alpha^(1/n))``
    drawn and named. ``note`` is added to both captions. Returns the ceiling."""
    from advgame import plots
    from advgame.smoothing import radius_ceiling

    ceiling = radius_ceiling(sigma, n, alpha)
    plots.certified_accuracy_vs_radius(
        out / "certified.png", radius, correct, label=f"Gaussian smoothing σ = {sigma:g}",
        title=f"{title}, sigma={sigma:g}",
        ceiling=ceiling, ceiling_label=f"largest radius n = {n:,} samples can certify: "
                                       f"σ·Φ⁻¹(α^(1/n)) = {ceiling:.3f}")
    how = f"Cohen et al. 2019; sigma={sigma:g}, n0={n0}, n={n}, alpha={alpha:g}{note}"
    res["tables"].append({
        "name": table, "title": f"{title} (sigma={sigma:g})",
        "caption": f"Fraction of {what} whose certified class is correct with L2 radius >= r "
                   f"({how}; radii in pixel units of [0, 1] images; no radius exceeds the "
                   f"ceiling {ceiling:.3f} that n samples allow).",
        "columns": ["radius r", "certified accuracy"],
        "rows": [[r, float(np.mean(correct & (radius >= r)))] for r in radii],
    })
    res["figures"].append({
        "name": "certified", "file": "certified.png",
        "caption": f"Certified accuracy against L2 radius on {what} ({how}). The dotted "
                   f"line is the largest radius n = {n:,} samples can certify at "
                   f"alpha={alpha:g} (sigma * Phi^-1(alpha^(1/n)) = {ceiling:.3f}): "
                   f"the curve drops there because of n, whatever the model; more samples "
                   f"move it right."})
    return ceiling


def certify_block(model: torch.nn.Module, x: torch.Tensor, start: int, cfg: CertifyConfig,
                  num_classes: int) -> dict[str, list[Any]]:
    """Certify inputs x (k, ...) whose global indices start at ``start`` (one call)."""
    gen = unit_generator(cfg.seed, start, x.device)
    c, r = smoothing.certify(model, x, cfg.sigma, n0=cfg.n0, n=cfg.n, alpha=cfg.alpha,
                             batch_size=cfg.noise_batch, generator=gen,
                             num_classes=num_classes, noise=cfg.noise)
    return {"class": [int(v) for v in c.tolist()], "radius": [float(v) for v in r.tolist()]}


def run_certify(cfg: CertifyConfig, out: Path, device: torch.device,
                progress: Progress = no_progress) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = evaluation_setup(cfg, out, device, progress)
    ds, model, x, y = run.ds, run.model, run.x, run.y
    starts = list(range(0, x.shape[0], cfg.block))
    mine = distributed.my_units(starts)
    local: dict[int, Any] = {}
    tick = time.perf_counter()
    bar = progress(mine, distributed.label("certify"), len(mine))
    for s in bar:
        key = f"certify-s{cfg.sigma}-n{cfg.n}-{s}"

        def compute(s: int = s) -> dict[str, list[Any]]:
            return certify_block(model, x[s:s + cfg.block], s, cfg, ds.num_classes)
        local[s] = run.store.get_or_compute(key, compute)
    blocks = distributed.gather_units(local)
    elapsed = time.perf_counter() - tick
    if not distributed.is_main():
        return {"summary": []}
    classes = np.concatenate([blocks[s]["class"] for s in starts])
    radius = np.concatenate([blocks[s]["radius"] for s in starts])
    correct = classes == y.cpu().numpy()
    res = run.results("certify", cfg, **{"class": classes.tolist(), "radius": radius.tolist(),
                                          "label": y.tolist()})
    res["timings"]["certify_s"] = elapsed
    res["timings"]["samples_per_s"] = x.shape[0] * (cfg.n + cfg.n0) / max(elapsed, 1e-9)
    certification_report(
        res, out, radius, correct, sigma=cfg.sigma, n0=cfg.n0, n=cfg.n, alpha=cfg.alpha,
        radii=cfg.radii, what=run.evaluated, table="certified_accuracy",
        title=f"Certified accuracy of Gaussian smoothing on {ds.name} {list(ds.classes)}",
        note=f", {cfg.noise} noise across blocks of {cfg.block} inputs")
    at = {r: float(np.mean(correct & (radius >= r))) for r in (0.0, 0.5)}
    abstain = float(np.mean(classes == -1))
    res["summary"].append(
        f"On {run.evaluated}: certified accuracy {at[0.0]:.3f} at r=0 and "
        f"{at[0.5]:.3f} at r=0.5 (sigma={cfg.sigma:g}); "
        f"abstained on {abstain:.3f} of inputs; median certified radius of correct inputs "
        f"{float(np.median(radius[correct])) if correct.any() else 0.0:.3f}.")
    finish(out, res, t0)
    return res
