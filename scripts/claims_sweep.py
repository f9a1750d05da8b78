"""The GPU sweeps behind notebooks 40-44 (issues 11 and 12), on any number of GPUs via torchrun.

    torchrun --standalone --nproc_per_node 14 scripts/claims_sweep.py main --out /tmp/claims \\
        --seeds 0 --steps 1000

Grids (each a list of :class:`sdlib.sweep.SweepConfig`, run as one sweep):

* ``main``: the ShapeZoo preset on 8 prompts (5 with a distinct front) × seeds × {SDS, SSD
  (the paper's depth baseline and learned channel μ), VSD, "SDS + μ(t) + stratified"}.
  Every run is evaluated every ``eval_every`` steps (ground-truth metrics with the seconds of
  training so far: Fig. 7) and probed at 5 checkpoints (Fig. 5): a paired design of
  4 cameras × 3 timesteps × 4 noises, its own estimator and SDS on the same draws, split by the
  law of total variance. At the last step, runs of seed 0 get the full probe: 6 × 4 × 8 draws
  with plain Monte Carlo, SDS, SSD with μ ≡ 1 (depth and normal baselines) and its own
  estimator, in θ and latent space, the per-cell oracle coefficients of SDS's and SSD's
  control variates (Fig. 40), and for the SDS runs the batch efficiency of every estimator
  and sampling design (issue 12, notebook 44).
* ``colour``: SDS, SSD and VSD with the render pulled back through the VAE encoder (the
  preset) and towards the decoded target (``pullback=decoded``, notes/colour.md); no probes.
* ``ablations``: SDS at guidance 3 / 7.5 / 20 / 50 / 100; SSD with the depth, normal and
  constant baselines and scalar / element μ (the depth run is the preset's channel μ); SDS with
  ``t_max`` annealed 0.98 → 0.5 over the first half of the steps. No probes.

Each probe result is appended to ``<run>/variance.jsonl``; the gathered table is
``results.json``. The priors used are named in ``priors.json`` (sha256 of every shipped file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sdlib.shapezoo.objects import BENCHMARK_PROMPTS

COMMON = ("turntable_frames=0", "mesh_resolution=0", "checkpoint_every=100")
COMBO = ("ssd.baseline=constant", "ssd.coefficient_update=binned", "stratified=true")
"""SDS's own ε with a per-timestep coefficient μ(t), stratified t and azimuth."""
CELLS = ("cell_cv.enabled=true", "antithetic=true", "stratified=true")
"""SDS with the control variate across (camera, t) cells, antithetic pairs, stratified t and
azimuth (issue 12's best design at frozen θs, ``notes/cell_cv_h200``)."""
CELL_BATCHES = 16
"""Batches per design of a cells run's light probe (its own table against the same design
without it, paired)."""
LIGHT = dict(n_cameras=4, n_timesteps=3, n_noises=4)
FULL = dict(n_cameras=6, n_timesteps=4, n_noises=8)


def grids(name: str, seeds: tuple[int, ...], steps: int, eval_every: int, prompts,
          extra: tuple[str, ...] = (), methods: tuple[str, ...] | None = None) -> list:
    from sdlib.sweep import SweepConfig

    probe_steps = tuple(sorted({max(1, round(steps * f)) for f in (0.2, 0.4, 0.6, 0.8, 1.0)}))
    common = COMMON + tuple(extra)
    base = dict(prompts=tuple(prompts), seeds=seeds, steps=steps, eval_every=eval_every,
                overrides=common, variance_steps=probe_steps)
    if name == "main":
        keep = methods or ("sds", "ssd", "vsd", "combo", "cells")
        out = []
        if plain := tuple(m for m in ("sds", "ssd", "vsd") if m in keep):
            out.append(SweepConfig(methods=plain, **base))
        if "combo" in keep:
            out.append(SweepConfig(methods=("ssd",), vary=COMBO, **base))
        if "cells" in keep:
            out.append(SweepConfig(methods=("sds",), vary=CELLS, **base))
        return out
    if name == "ablations":
        base = {**base, "variance_steps": ()}
        return [
            SweepConfig(methods=("sds",), vary=tuple(f"guidance_scale={s}" for s in
                                                      (3, 7.5, 20, 50, 100)), **base),
            SweepConfig(methods=("ssd",), vary=("ssd.baseline=depth", "ssd.baseline=normal",
                                                "ssd.baseline=constant"), **base),
            # one axis at a time (a vary list is a product): μ's shape at the depth baseline
            SweepConfig(methods=("ssd",), vary=("ssd.coefficient.reduce=scalar",
                                                "ssd.coefficient.reduce=element"), **base),
            SweepConfig(methods=("sds",), vary=("timesteps.t_max_end=0.5",),
                        overrides=common + ("timesteps.anneal_start=0",
                                            f"timesteps.anneal_end={steps // 2}"),
                        **{k: v for k, v in base.items() if k != "overrides"}),
        ]
    if name == "colour":
        base = {**base, "variance_steps": ()}
        keep = tuple(m for m in ("sds", "ssd", "vsd") if m in (methods or ("sds", "ssd", "vsd")))
        if not keep:
            raise ValueError(f"colour grid: methods {methods}; accepted: sds, ssd, vsd")
        return [SweepConfig(methods=keep, vary=("pullback=latent", "pullback=decoded"), **base)]
    raise ValueError(f"grid {name!r}; accepted: main, ablations, colour")


# ---------------------------------------------------------------------- probes
_DEPTH: dict[Any, Any] = {}


def _with_depth(trainer) -> Any:
    """The trainer's priors with a depth model (loaded once per process if the run has none)."""
    from sdlib.priors import DepthPrior

    if trainer.priors.depth is not None:
        return trainer.priors
    key = (trainer.config.depth, trainer.config.device)
    if key not in _DEPTH:
        _DEPTH[key] = DepthPrior(model=trainer.config.depth, device=trainer.config.device,
                                 dtype=trainer.config.depth_precision)
    return replace(trainer.priors, depth=_DEPTH[key])


class _Zero:
    """Plain Monte Carlo: nothing subtracted, ``ω ε̂``."""

    def control(self, draw):
        from sdlib.distill import Estimate

        return Estimate(control=torch.zeros_like(draw.eps))

    def update(self, draw, estimate):
        return {}


def _ssd(trainer, priors, **changes):
    from sdlib.distill import SSD
    from sdlib.distill.ssd import SSDConfig

    return SSD.build(replace(trainer.config, ssd=SSDConfig(**changes)), priors)


def _decompositions(grads: dict, pairs_with: str = "sds") -> dict:
    from sdlib.decomposition import decompose, oracle_coefficient, paired_ratio

    out: dict[str, Any] = {}
    for space in ("theta", "latent"):
        ds = {name: decompose(g, n_boot=200) for name, g in grads[space].items()}
        res = {name: d.to_dict() for name, d in ds.items()}
        if pairs_with in ds:
            for name, d in ds.items():
                for part in ("total", "noise_only"):
                    r, se = paired_ratio(d, ds[pairs_with], part)
                    res[name][f"{part}_ratio_to_{pairs_with}"] = [r, se]
        if "mc" in grads[space]:
            f = grads[space]["mc"]
            for name in ("sds", "ssd_mu1"):
                if name in grads[space]:
                    o = oracle_coefficient(f, f - grads[space][name])
                    res[f"oracle_{name}"] = {
                        "noise_only_f": o.noise_only_f, "in_sample": o.noise_only_in_sample,
                        "split": o.noise_only_split, "mu_per_t": o.mu.mean(0).tolist(),
                        "mu_per_t_sd": o.mu.std(0).tolist(),
                        "per_t_split": o.per_t_split.tolist(),
                        "per_t_noise_only_f": o.per_t_noise_only_f.tolist()}
        out[space] = res
    out["t"] = grads["t"].tolist()
    return out


def _own_cells(trainer, n_batches: int) -> dict[str, Any]:
    """A cells run's own table, as training left it (lag included), against the same design
    without the table, on the same draws: the variance per UNet evaluation of each and their
    ratio (``f`` along training, where a frozen-θ table cannot lag)."""
    from sdlib.cell_control_variate import CellCVConfig
    from sdlib.distill import SDS
    from sdlib.gradient_variance import batch_variance

    res = batch_variance(trainer, {"without": (SDS(), {"cell_cv": CellCVConfig()}),
                                   "own_table": (SDS(), {})},
                         n_batches=n_batches, batch_size=trainer.config.batch_size,
                         own_cells=("own_table",), seed=3000 + trainer.step_count)
    out = {name: {"per_evaluation": r["per_evaluation"],
                  "per_evaluation_se": r["per_evaluation_se"],
                  "ms_per_batch": r["ms_per_batch"]} for name, r in res.items()}
    out["ratio"] = out["own_table"]["per_evaluation"] / out["without"]["per_evaluation"]
    out["filled"] = trainer.cell_cv.filled
    return out


def probe_factory(full_at: int, seed0_only: bool = True, light: dict | None = None,
                  full_design: dict | None = None, n_batches: int = 48,
                  efficiency_prompts: tuple[str, ...] | None = None):
    """The probe the sweep calls at its variance steps (see the module docstring)."""

    def probe(trainer) -> dict[str, Any]:
        from sdlib.distill import SDS
        from sdlib.gradient_variance import batch_variance, paired_gradients

        cfg = trainer.config
        own_is_sds = cfg.method == "sds"
        full = trainer.step_count >= full_at and (cfg.seed == 0 or not seed0_only)
        start = time.perf_counter()
        if not full:
            ests = {"sds": SDS()} if own_is_sds else {"own": trainer.method, "sds": SDS()}
            grads = paired_gradients(trainer, ests, seed=trainer.step_count, **(light or LIGHT))
            result = {"kind": "light", **_decompositions(grads)}
            if cfg.cell_cv.enabled:
                result["cells_own"] = _own_cells(trainer, n_batches=CELL_BATCHES)
            return {**result, "seconds": time.perf_counter() - start}
        priors = _with_depth(trainer)
        ests = {"mc": _Zero(), "sds": SDS(), "ssd_mu1": _ssd(trainer, priors),
                "ssd_normal_mu1": _ssd(trainer, priors, baseline="normal")}
        if not own_is_sds:
            ests["own"] = trainer.method
        grads = paired_gradients(trainer, ests, seed=1000 + trainer.step_count,
                                 **(full_design or FULL))
        result = {"kind": "full", **_decompositions(grads)}
        del grads
        if (own_is_sds and cfg.stratified is False and cfg.antithetic is False and n_batches > 0
                and (efficiency_prompts is None or cfg.prompt in efficiency_prompts)):
            from sdlib.cell_control_variate import CellCVConfig
            from sdlib.control_variates import BinnedCoefficientConfig

            binned = BinnedCoefficientConfig(n_bins=10)
            mu_t = _ssd(trainer, priors, baseline="constant", coefficient_update="binned",
                        binned=binned)
            two = _ssd(trainer, priors, baseline="depth", coefficient_update="binned",
                       with_constant=True, binned=binned)
            learned = _ssd(trainer, priors, baseline="learned", coefficient_update="binned",
                           binned=binned)
            paper = _ssd(trainer, priors)
            iid, anti = {}, {"antithetic": True}
            strat, both = {"stratified": True}, {"antithetic": True, "stratified": True}
            designs = {
                "sds": (SDS(), iid), "sds_antithetic": (SDS(), anti),
                "sds_stratified": (SDS(), strat), "sds_antithetic_stratified": (SDS(), both),
                "ssd_paper": (paper, iid), "mu_t": (mu_t, iid), "mu_t_stratified": (mu_t, strat),
                "two_coef_stratified": (two, strat), "learned_stratified": (learned, strat),
                # the control variate across (camera, t) cells: a fresh table filled by its
                # warm-up batches (sdlib.cell_control_variate)
                "cells": (SDS(), {"cell_cv": CellCVConfig(enabled=True)}),
                "cells_antithetic_stratified": (SDS(), {**both,
                                                        "cell_cv": CellCVConfig(enabled=True)}),
            }
            warm = {"ssd_paper": 60, "mu_t": 60, "two_coef_stratified": 60,
                    "learned_stratified": 150, "cells": 60, "cells_antithetic_stratified": 60}
            eff = batch_variance(trainer, designs, n_batches=n_batches, batch_size=8, warmup=warm,
                                 seed=2000 + trainer.step_count)
            ref = eff["sds"]
            table = {}
            for name, r in eff.items():
                ratio = r["per_evaluation"] / ref["per_evaluation"]
                table[name] = {
                    "per_evaluation": r["per_evaluation"],
                    "per_evaluation_se": r["per_evaluation_se"],
                    "ms_per_batch": r["ms_per_batch"], "ratio": ratio,
                    "ratio_x_time": ratio * r["ms_per_batch"] / ref["ms_per_batch"],
                    "mean_norm": float(r["mean"].norm()),
                    "mean_diff_to_sds_norm": float((r["mean"] - ref["mean"]).norm()),
                }
            result["efficiency"] = table
        result["seconds"] = time.perf_counter() - start
        return result

    return probe


def priors_manifest() -> dict[str, str]:
    from sdlib.priors import ASSETS_DIR

    return {str(p.relative_to(ASSETS_DIR)): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(Path(ASSETS_DIR).rglob("*")) if p.is_file()}


def main() -> None:
    from sdlib.sweep import run_sweep

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid", choices=["main", "ablations", "colour"])
    ap.add_argument("--out", required=True, help="sweep folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--prompts", nargs="+", default=list(BENCHMARK_PROMPTS))
    ap.add_argument("--methods", nargs="+", default=None,
                    choices=["sds", "ssd", "vsd", "combo", "cells"],
                    help="main and colour grids: only these (combo: SDS + μ(t) + stratified; "
                         "cells: SDS + the cell control variate + antithetic + stratified)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--set", action="append", default=[], help="extra key=value override")
    ap.add_argument("--light", type=int, nargs=3, default=None, metavar=("K", "T", "N"))
    ap.add_argument("--full", type=int, nargs=3, default=None, metavar=("K", "T", "N"))
    ap.add_argument("--batches", type=int, default=48, help="batches per efficiency design")
    ap.add_argument("--efficiency-prompts", type=int, default=None, metavar="K",
                    help="only the first K prompts' SDS runs get the efficiency table")
    args = ap.parse_args()
    configs = grids(args.grid, tuple(args.seeds), args.steps, args.eval_every, args.prompts,
                    tuple(args.set), tuple(args.methods) if args.methods else None)
    design = ("n_cameras", "n_timesteps", "n_noises")
    light = dict(zip(design, args.light)) if args.light else None
    full = dict(zip(design, args.full)) if args.full else None
    eff = None if args.efficiency_prompts is None else tuple(args.prompts[:args.efficiency_prompts])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "priors.json").write_text(json.dumps(priors_manifest(), indent=1))
    table = run_sweep(configs, out, device=args.device,
                      probe=probe_factory(args.steps, light=light, full_design=full,
                                          n_batches=args.batches, efficiency_prompts=eff))
    if table is not None:
        done = [r for r in table if r.get("status") == "done"]
        print(f"{len(done)} of {len(table)} runs done")
        for r in table:
            iou = r.get("final_mask_iou", math.nan)
            de = r.get("final_color_delta_e", math.nan)
            print(f"{r['run_id'][:70]:70s} {r.get('status')}: IoU {iou:.3f} dE {de:.1f} "
                  f"{r.get('train_seconds', math.nan):.0f} s {r.get('error', '')[:80]}")


if __name__ == "__main__":
    main()
