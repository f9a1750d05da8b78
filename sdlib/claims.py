r"""The paper's claims, measured: a claims sweep turned into tables with intervals.

SteinDreamer (arXiv 2401.00604) claims that SSD's gradient variance is below VSD's, which is
below SDS's (its Fig. 5), and that SSD converges in 14-22% fewer steps (Fig. 7). This module
reads the runs of ``scripts/claims_sweep.py`` (one folder per run: ``eval.jsonl``,
``variance.jsonl``, ``metrics.jsonl``, ``config.json``) or the compact file
:func:`compact` makes of them (``notes/claims_h200/runs.json.gz``, what the notebooks read), and
computes every number of notebooks 40-44 and README §7:

* **variance along training** (:func:`variance_curves`, Fig. 5): each method's own estimator,
  probed at 5 checkpoints of its own trajectory on a paired design of cameras × timesteps ×
  noises (:func:`sdlib.gradient_variance.paired_gradients`); ``tr Cov`` of one draw's
  θ-gradient (a count-sketch of the hash grid and MLP, unbiased for squared norms), total and
  noise-only (:mod:`sdlib.decomposition`). Across runs: the median and a 95% bootstrap interval
  over runs (prompts × seeds).
* **paired ratios** (:func:`paired_ratio_curves`): at the *same* θ and on the *same* draws, the
  method's estimator against SDS's; the geometric mean over runs of
  $\operatorname{tr}\mathrm{Cov}_\text{own} / \operatorname{tr}\mathrm{Cov}_\text{SDS}$ with a
  bootstrap interval over runs. Pairing removes the θ-to-θ spread that dominates the unpaired
  curves.
* **where the variance lives** (:func:`decomposition_table`, notebook 40): the full probe at the
  last step: the parts between cameras, between timesteps, their interaction, and noise only, as
  fractions of SDS's total; plain Monte Carlo $\omega\hat\varepsilon$, SSD with $\mu\equiv1$ and the
  run's own estimator against SDS; the oracle (the best scalar coefficient per (camera,
  timestep) cell, cross-fitted) for SDS's control variate $\varepsilon$.
* **convergence** (:func:`steps_to_threshold`, Fig. 7): for each prompt and seed, the threshold
  is 95% of SDS's final value of a metric (higher is better); a run's steps to threshold are the
  first evaluation step at or above it (evaluations every 50 steps; a run that never reaches it is
  censored: ``inf``). The ratio method/SDS per (prompt, seed) pair, summarised by its median with
  a paired bootstrap interval (pairs resampled). With censored pairs the median is still defined.
* **final quality** (:func:`final_quality`): mean of each ground-truth metric with a bootstrap
  interval over runs, and the paired difference to SDS.
* **efficiency** (:func:`efficiency_table`, notebook 44): variance per UNet evaluation of each
  estimator and sampling design at a frozen θ, relative to SDS's, combined over prompts on the
  log scale (inverse-variance weights from the delta-method standard errors).

Seconds in a sweep that ran 16 processes on one GPU are *contended* seconds: every step waits
for the others' kernels. They order the methods, but per-step costs in isolation come from
``scripts/bench_paper_step.py``.

>>> ci = bootstrap_ci([1.0, 2.0, 3.0, 4.0], n_boot=200)
>>> round(ci.estimate, 2), ci.lo <= ci.estimate <= ci.hi
(2.5, True)
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Run", "Interval", "LABELS", "label_of", "load_runs", "load_meta", "compact", "bootstrap_ci",
    "variance_curves", "paired_ratio_curves", "decomposition_table", "oracle_mu_table",
    "per_t_table",
    "metric_curves", "steps_to_threshold", "final_quality", "efficiency_table", "METRICS",
    "smoke_sweep", "SMOKE_ARGS", "plot_curves", "COLOURS", "COMMITTED", "resolve_sweep",
    "open_sweep", "provenance", "priors_digest", "variance_figure", "convergence_figure",
    "method_colour", "CONVERGENCE", "threshold_json", "describe", "finished_seeds",
    "ABLATIONS", "ABLATION_SWEEP", "ablation_table", "ablation_json", "ablation_figure",
    "theta_effect_curves", "size_text",
]

METRICS = ("mask_iou", "psnr", "depth_pearson", "classifier_accuracy", "color_delta_e")
"""The ground-truth metrics of every evaluation (ΔE: lower is better; the others: higher)."""

LABELS = {
    "sds": "SDS",
    "ssd": "SSD (paper)",
    "vsd": "VSD",
    "ssd:ssd.baseline=constant,ssd.coefficient_update=binned,stratified=true":
        "SDS + μ(t) + stratified",
    "sds:cell_cv.enabled=true,antithetic=true,stratified=true":
        "SDS + cells + antithetic + stratified",
}
"""Display names of the runs' ``method:varied overrides``."""


def label_of(method: str, variant: str = "") -> str:
    """The display name of a run (``LABELS``, else ``method:variant``)."""
    key = f"{method}:{variant}" if variant else method
    return LABELS.get(key, key)


@dataclass(frozen=True)
class Run:
    """One run of a claims sweep, as the analysis needs it."""

    run_id: str
    prompt: str
    method: str
    seed: int
    variant: str
    """The varied overrides, ``key=value`` joined by commas ('' for the method's defaults)."""
    done: bool
    """The run reached its last step (``done.json``)."""
    steps: int
    """The last training step recorded."""
    step_ms: float
    """Median milliseconds per training step (contended: see the module docstring)."""
    evals: tuple[dict[str, Any], ...] = field(default=())
    """Evaluation records: ``step``, ``train_seconds`` and the :data:`METRICS`."""
    variance: tuple[dict[str, Any], ...] = field(default=())
    """Probe records of ``variance.jsonl`` (``kind`` 'light' or 'full')."""

    @property
    def label(self) -> str:
        return label_of(self.method, self.variant)

    @property
    def pair(self) -> tuple[str, int]:
        """``(prompt, seed)``: runs of one pair share their prompt and seed."""
        return (self.prompt, self.seed)

    def final(self, metric: str) -> float:
        """The metric at the last evaluation (``nan`` without one)."""
        return float(self.evals[-1][metric]) if self.evals else math.nan


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _variant(run_id: str, method: str, seed: int) -> str:
    head = f"__{method}__seed{seed}"
    rest = run_id.split(head, 1)[1] if head in run_id else ""
    return ",".join(p for p in rest.split("__") if p)


def _read_run(folder: Path) -> Run | None:
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        return None
    cfg = json.loads(cfg_path.read_text())
    metrics = _jsonl(folder / "metrics.jsonl")
    last = {}
    for rec in metrics:  # the last record of each step (a resumed run redoes some)
        last[int(rec["step"])] = rec
    evals = {int(e["step"]): e for e in _jsonl(folder / "eval.jsonl") if "mask_iou" in e}
    for step, e in evals.items():
        if "train_seconds" not in e and step in last:
            e["train_seconds"] = last[step].get("train_seconds", math.nan)
    variance = {int(v["step"]): v for v in _jsonl(folder / "variance.jsonl")}
    ms = [r["step_ms"] for s, r in last.items() if s > 1 and "step_ms" in r]
    method, seed = cfg["method"], int(cfg["seed"])
    return Run(run_id=folder.name, prompt=cfg["prompt"], method=method, seed=seed,
               variant=_variant(folder.name, method, seed), done=(folder / "done.json").exists(),
               steps=max(last) if last else 0,
               step_ms=float(np.median(ms)) if ms else math.nan,
               evals=tuple(evals[s] for s in sorted(evals)),
               variance=tuple(variance[s] for s in sorted(variance)))


def load_runs(path: str | Path) -> list[Run]:
    """The runs of a claims sweep: a sweep folder, or a compact ``.json``/``.json.gz`` file.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no run.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_runs: {path} does not exist (a sweep folder or the "
                                "compact file of sdlib.claims.compact, e.g. "
                                "notes/claims_h200/runs.json.gz)")
    if path.is_dir():
        runs = [r for d in sorted(path.iterdir()) if d.is_dir() and (r := _read_run(d))]
    else:
        data = _read_json(path)
        runs = [Run(**{**r, "evals": tuple(r["evals"]), "variance": tuple(r["variance"])})
                for r in data["runs"]]
    if not runs:
        raise FileNotFoundError(f"load_runs: no run in {path}")
    return runs


def _read_json(path: Path) -> dict[str, Any]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return json.loads(raw)


def load_meta(path: str | Path) -> dict[str, Any]:
    """The compact file's ``meta`` (machine, command, sweep grids, the priors' hashes)."""
    path = Path(path)
    if path.is_dir():
        meta = {}
        for name in ("priors", "sweep"):
            if (path / f"{name}.json").exists():
                meta[name] = json.loads((path / f"{name}.json").read_text())
        return meta
    return _read_json(path)["meta"]


def compact(sweep_dir: str | Path, out: str | Path, **meta: Any) -> Path:
    """Writes the runs of a sweep folder (without per-step records and checkpoints) and
    ``meta`` (plus the folder's ``priors.json`` and ``sweep.json``) as gzipped JSON."""
    runs = load_runs(sweep_dir)
    meta = {**load_meta(sweep_dir), **meta}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "runs": [asdict(r) for r in runs]}
    out.write_bytes(gzip.compress(json.dumps(payload).encode(), mtime=0))
    return out


# ---------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Interval:
    """An estimate with a 95% (or ``level``) interval and the number of units behind it."""

    estimate: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.lo:.3g}, {self.hi:.3g}] (n={self.n})"

    def as_dict(self) -> dict[str, float]:
        """``{"estimate", "lo", "hi", "n"}`` (for a figure's sidecar)."""
        return asdict(self)


def bootstrap_ci(values: Sequence[float], stat: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """``stat`` of ``values`` with a percentile bootstrap interval (units resampled with
    replacement; ``inf`` values allowed for order statistics). Fewer than 2 values: no interval."""
    v = np.asarray(list(values), dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    est = float(stat(v))
    if v.size < 2:
        return Interval(est, math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    boots = np.array([stat(v[rng.integers(0, v.size, v.size)]) for _ in range(n_boot)])
    a = (1 - level) / 2
    q = dict(method="inverted_cdf")  # no interpolation: an infinite (censored) value stays inf
    return Interval(est, float(np.quantile(boots, a, **q)), float(np.quantile(boots, 1 - a, **q)),
                    v.size)


def _gmean(x: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(x))))


def _by_label(runs: Iterable[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.label, []).append(r)
    return out


def _own_key(run: Run) -> str:
    return "sds" if run.method == "sds" and not run.variant else "own"


def _step_curve(per_step: dict[int, list[float]], stat: str, n_boot: int) -> dict[str, list[Any]]:
    """``{"step", stat, "lo", "hi", "n"}`` over the steps of ``per_step`` (values per step):
    ``stat`` "median" or "gmean" (geometric mean, for ratios) with a bootstrap interval."""
    fn = np.median if stat == "median" else _gmean
    curve: dict[str, list[Any]] = {"step": [], stat: [], "lo": [], "hi": [], "n": []}
    for step in sorted(per_step):
        ci = bootstrap_ci(per_step[step], fn, n_boot=n_boot)
        for k, v in zip(curve, (step, ci.estimate, ci.lo, ci.hi, ci.n)):
            curve[k].append(v)
    return curve


# ---------------------------------------------------------------------- variance
def variance_curves(runs: Sequence[Run], space: str = "theta", part: str = "total",
                    n_boot: int = 2000) -> dict[str, dict[str, list[Any]]]:
    """Each method's own estimator's variance part at each probe step, over runs.

    Returns ``{label: {"step": [...], "median": [...], "lo": [...], "hi": [...], "n": [...]}}``
    (median over runs of ``tr Cov`` of one draw's gradient, 95% bootstrap interval). A label
    whose probes hold no own estimator is left out: the cells runs probe SDS at their θ, and
    their own variance is :func:`own_cells_curve`'s.
    """
    out = {}
    for label, rs in _by_label(runs).items():
        per_step: dict[int, list[float]] = {}
        for r in rs:
            for rec in r.variance:
                d = rec[space].get(_own_key(r))
                if d is not None:
                    per_step.setdefault(int(rec["step"]), []).append(d[part])
        curve = _step_curve(per_step, "median", n_boot)
        if curve["step"]:  # runs whose probes hold no own estimator (the cells runs) are left out
            out[label] = curve
    return out


def own_cells_curve(runs: Sequence[Run], n_boot: int = 2000) -> dict[str, list[Any]]:
    """The cell control variate along training: at each probe step, the ratio of a cells run's
    variance per UNet evaluation with its own (lagging) table to the same design without it
    (``scripts/claims_sweep.py``'s light probe, ``cells_own``), geometric mean over runs with a
    95% bootstrap interval. ``{"step", "gmean", "lo", "hi", "n"}`` (empty lists without data).
    """
    per_step: dict[int, list[float]] = {}
    for r in runs:
        for rec in r.variance:
            ratio = (rec.get("cells_own") or {}).get("ratio")
            if ratio is not None and ratio > 0:
                per_step.setdefault(int(rec["step"]), []).append(float(ratio))
    return _step_curve(per_step, "gmean", n_boot)


def _ratio_curves(runs: Sequence[Run], ratio: Callable[[Run, dict[str, Any]], float | None],
                  n_boot: int) -> dict[str, dict[str, list[Any]]]:
    """Per label (SDS's own runs left out), the geometric mean over runs of ``ratio(run,
    record)`` at each probe step, with a bootstrap interval (``None`` or ≤ 0: no value)."""
    out = {}
    for label, rs in _by_label(runs).items():
        per_step: dict[int, list[float]] = {}
        for r in rs:
            if _own_key(r) == "sds":
                continue
            for rec in r.variance:
                v = ratio(r, rec)
                if v is not None and v > 0:
                    per_step.setdefault(int(rec["step"]), []).append(v)
        if per_step:
            out[label] = _step_curve(per_step, "gmean", n_boot)
    return out


def paired_ratio_curves(runs: Sequence[Run], space: str = "theta", part: str = "total",
                        n_boot: int = 2000) -> dict[str, dict[str, list[Any]]]:
    """At each probe step, the run's own estimator over SDS's on the same θ and draws.

    Returns ``{label: {"step", "gmean", "lo", "hi", "n"}}``: the geometric mean over runs of
    ``part_own / part_SDS`` with a bootstrap interval (SDS's own runs are left out: ratio 1).
    """
    def ratio(r: Run, rec: dict[str, Any]) -> float | None:
        d = rec[space].get("own")
        return d[f"{part}_ratio_to_sds"][0] if d is not None and f"{part}_ratio_to_sds" in d \
            else None

    return _ratio_curves(runs, ratio, n_boot)


def theta_effect_curves(runs: Sequence[Run], space: str = "theta", part: str = "total",
                        n_boot: int = 2000) -> dict[str, dict[str, list[Any]]]:
    """Where a method's trajectory leads, apart from its estimator: SDS's estimator at the
    method's θ over SDS's estimator at the SDS run's θ (same prompt, seed and probe step).

    Every run's probe also evaluates SDS on its draws (``rec[space]["sds"]``), so
    ``part_SDS(θ_method) / part_SDS(θ_SDS)`` isolates the θ: a method whose own variance is
    low along its trajectory while its estimator is no better at the same θ
    (:func:`paired_ratio_curves` ≥ 1) owes the difference to where it went, not to how it
    estimates. Returns ``{label: {"step", "gmean", "lo", "hi", "n"}}`` (geometric mean over
    prompt-seed pairs, 95% bootstrap interval); SDS's own runs are the denominator.
    """
    base: dict[tuple[str, int, int], float] = {}
    for r in runs:
        if _own_key(r) == "sds":
            for rec in r.variance:
                d = rec.get(space, {}).get("sds")
                if d is not None:
                    base[(r.prompt, r.seed, int(rec["step"]))] = d[part]

    def ratio(r: Run, rec: dict[str, Any]) -> float | None:
        d = rec.get(space, {}).get("sds")
        ref = base.get((r.prompt, r.seed, int(rec["step"])))
        return d[part] / ref if d is not None and ref and ref > 0 else None

    return _ratio_curves(runs, ratio, n_boot)


PARTS = ("between_cameras", "between_timesteps", "interaction", "noise_only")


def decomposition_table(runs: Sequence[Run], space: str = "theta",
                        n_boot: int = 2000) -> dict[str, Any]:
    """The full probes (last step): where SDS's variance lives and what each estimator leaves.

    Returns ``{"fractions": {part: Interval}}`` (SDS's parts over its total, mean over runs),
    ``{"ratios": {estimator: {"total"|"noise_only": Interval}}}`` (geometric mean over runs of
    the paired ratio to SDS; estimators ``mc``, ``ssd_mu1`` and ``own:<label>``), and
    ``{"oracle": Interval}``: the cross-fitted per-cell oracle's noise-only part of plain Monte
    Carlo ``ωε̂`` over SDS's noise-only part (below 1: a per-cell coefficient on ε beats SDS's
    coefficient 1), and ``"n_runs"``.
    """
    full = [(r, rec) for r in runs for rec in r.variance if rec.get("kind") == "full"]
    fractions = {p: bootstrap_ci([rec[space]["sds"][p] / rec[space]["sds"]["total"]
                                  for _, rec in full], n_boot=n_boot) for p in PARTS}
    ratios: dict[str, dict[str, Interval]] = {}
    names = [("mc", "mc"), ("ssd_mu1", "ssd_mu1"), ("ssd_normal_mu1", "ssd_normal_mu1")]
    for key, name in names + [("own", None)]:
        for part in ("total", "noise_only"):
            groups: dict[str, list[float]] = {}
            for r, rec in full:
                d = rec[space].get(key)
                if d is None:
                    continue
                g = name or f"own:{r.label}"
                groups.setdefault(g, []).append(d[f"{part}_ratio_to_sds"][0])
            for g, vals in groups.items():
                vals = [v for v in vals if v > 0]
                ratios.setdefault(g, {})[part] = bootstrap_ci(vals, _gmean, n_boot=n_boot)
    oracle = [rec[space]["oracle_sds"]["split"] / rec[space]["sds"]["noise_only"]
              for _, rec in full if "oracle_sds" in rec[space]
              and rec[space]["sds"]["noise_only"] > 0]
    return {"fractions": fractions, "ratios": ratios,
            "oracle": bootstrap_ci(oracle, _gmean, n_boot=n_boot), "n_runs": len(full)}


def per_t_table(runs: Sequence[Run], space: str = "theta",
                n_boot: int = 1000) -> dict[int, dict[str, Interval]]:
    """The full probes split by timestep: ``{t: {"noise_share": Interval, "share_of_total":
    Interval, "<estimator>_noise_ratio": Interval}}``.

    ``noise_share``: SDS's noise-only part over its total at that t (per-t parts:
    variance over cameras and noises at a fixed t); ``share_of_total``: that t's total over the
    sum over the probed t's (where the variance comes from); ``<estimator>_noise_ratio``: the
    estimator's noise-only part over SDS's at that t (``mc``, ``ssd_mu1``), geometric mean over
    θs. The probes' t's are shared by all θs (a seed per step), so the rows pool over θs.
    """
    rows: dict[int, dict[str, list[float]]] = {}
    for r in runs:
        for rec in r.variance:
            if rec.get("kind") != "full":
                continue
            sds = rec[space]["sds"]
            totals = sds["per_t_total"]
            for j, t in enumerate(rec["t"]):
                row = rows.setdefault(int(t), {})
                if totals[j] > 0:
                    row.setdefault("noise_share", []).append(sds["per_t_noise_only"][j] / totals[j])
                    row.setdefault("share_of_total", []).append(totals[j] / sum(totals))
                for name in ("mc", "ssd_mu1"):
                    d = rec[space].get(name)
                    if d is not None and sds["per_t_noise_only"][j] > 0:
                        row.setdefault(f"{name}_noise_ratio", []).append(
                            d["per_t_noise_only"][j] / sds["per_t_noise_only"][j])
    out: dict[int, dict[str, Interval]] = {}
    for t in sorted(rows):
        out[t] = {}
        for k, v in rows[t].items():
            stat = _gmean if k.endswith("ratio") else np.mean
            vals = [x for x in v if x > 0] if k.endswith("ratio") else v
            out[t][k] = bootstrap_ci(vals, stat, n_boot=n_boot)
    return out


def oracle_mu_table(runs: Sequence[Run], space: str = "latent") -> dict[str, np.ndarray]:
    """The per-cell best coefficient of SDS's control variate ε against the timestep, pooled
    over the full probes: ``{"t": [M], "mu": [M], "mu_sd": [M]}`` (one entry per probed t)."""
    t, mu, sd = [], [], []
    for r in runs:
        for rec in r.variance:
            if rec.get("kind") == "full" and "oracle_sds" in rec[space]:
                o = rec[space]["oracle_sds"]
                t += list(rec["t"])
                mu += list(o["mu_per_t"])
                sd += list(o["mu_per_t_sd"])
    order = np.argsort(t)
    return {k: np.asarray(v, dtype=float)[order] for k, v in (("t", t), ("mu", mu), ("mu_sd", sd))}


# ---------------------------------------------------------------------- convergence
def metric_curves(runs: Sequence[Run], metric: str = "mask_iou", x: str = "step",
                  n_boot: int = 1000, common: bool = True) -> dict[str, dict[str, list[Any]]]:
    """A metric against steps (``x="step"``) or training seconds (``x="train_seconds"``: the
    runs' median seconds at each evaluation step), mean and 95% bootstrap interval over runs.
    Only finished runs enter, so every point has the same runs; with ``common`` only the
    (prompt, seed) pairs finished by every method, so that the methods' curves compare the
    same prompts and seeds."""
    if metric not in METRICS:
        raise ValueError(f"metric_curves: metric={metric!r}; accepted: {', '.join(METRICS)}")
    if x not in ("step", "train_seconds"):
        raise ValueError(f"metric_curves: x={x!r}; accepted: step, train_seconds")
    done = [r for r in runs if r.done]
    if common:
        groups = _by_label(done).values()
        keep = set.intersection(*({r.pair for r in rs} for rs in groups)) if done else set()
        done = [r for r in done if r.pair in keep]
    out = {}
    for label, rs in _by_label(done).items():
        steps = sorted({int(e["step"]) for r in rs for e in r.evals})
        curve: dict[str, list[Any]] = {"x": [], "mean": [], "lo": [], "hi": [], "n": []}
        for s in steps:
            vals = [float(e[metric]) for r in rs for e in r.evals if int(e["step"]) == s]
            xs = [float(e.get("train_seconds", math.nan)) for r in rs for e in r.evals
                  if int(e["step"]) == s]
            ci = bootstrap_ci(vals, np.mean, n_boot=n_boot)
            xv = s if x == "step" else float(np.nanmedian(xs))
            for k, v in zip(curve, (xv, ci.estimate, ci.lo, ci.hi, ci.n)):
                curve[k].append(v)
        out[label] = curve
    return out


def _first_reach(run: Run, metric: str, threshold: float, x: str,
                 interpolate: bool = False) -> float:
    prev = None
    for e in run.evals:
        xe = float(e["step"] if x == "step" else e.get("train_seconds", math.nan))
        ve = float(e[metric])
        if ve >= threshold:
            if not interpolate or prev is None:
                return xe
            x0, v0 = prev  # the crossing on the line between the two evaluations around it
            return x0 + (threshold - v0) / (ve - v0) * (xe - x0)
        prev = (xe, ve)
    return math.inf


def steps_to_threshold(runs: Sequence[Run], metric: str = "mask_iou", fraction: float = 0.95,
                       x: str = "step", n_boot: int = 2000,
                       interpolate: bool = False) -> dict[str, dict[str, Any]]:
    """Steps (or seconds) to reach ``fraction`` × SDS's final value, as ratios to SDS's.

    For each (prompt, seed) with a finished SDS run and a finished run of the method, the
    threshold is ``fraction * SDS_final`` (``metric`` must be higher-is-better); the ratio is
    ``x_method / x_SDS`` (``inf`` if the method never reaches it: censored). A run's ``x`` is
    its first evaluation at or above the threshold; with ``interpolate``, the crossing on the
    straight line between that evaluation and the one before it (evaluations every 100 steps
    otherwise round every ratio of an early crossing to 1; a run already above at its first
    evaluation keeps that evaluation's ``x``).

    Returns ``{label: {"median": Interval, "ratios": [...], "pairs": [...], "censored": int}}``
    (median ratio over pairs with a paired bootstrap interval).
    """
    if metric == "color_delta_e":
        raise ValueError("steps_to_threshold: color_delta_e is lower-is-better; accepted: "
                         "mask_iou, psnr, depth_pearson, classifier_accuracy")
    done = [r for r in runs if r.done]
    sds = {r.pair: r for r in done if r.label == "SDS"}
    out = {}
    for label, rs in _by_label(done).items():
        if label == "SDS":
            continue
        ratios, pairs = [], []
        for r in rs:
            base = sds.get(r.pair)
            if base is None:
                continue
            thr = fraction * base.final(metric)
            x_base = _first_reach(base, metric, thr, x, interpolate)
            x_own = _first_reach(r, metric, thr, x, interpolate)
            ratios.append(x_own / x_base)
            pairs.append(r.pair)
        if ratios:
            out[label] = {"median": bootstrap_ci(ratios, np.median, n_boot=n_boot),
                          "ratios": ratios, "pairs": pairs,
                          "censored": int(sum(math.isinf(v) for v in ratios))}
    return out


def threshold_json(result: dict[str, Any]) -> dict[str, Any]:
    """One method's :func:`steps_to_threshold` result as a figure sidecar stores it:
    ``{"median": Interval.as_dict(), "censored": int, "ratios": [float | None]}`` (a censored
    pair's ``inf`` as ``None``)."""
    return {"median": result["median"].as_dict(), "censored": result["censored"],
            "ratios": [r if math.isfinite(r) else None for r in result["ratios"]]}


def final_quality(runs: Sequence[Run], metrics: Sequence[str] = METRICS,
                  n_boot: int = 2000) -> dict[str, dict[str, dict[str, Interval]]]:
    """Final metrics of finished runs: ``{label: {metric: {"mean": Interval, "diff_to_sds":
    Interval}}}`` (the difference paired by (prompt, seed) with SDS's run)."""
    done = [r for r in runs if r.done]
    sds = {r.pair: r for r in done if r.label == "SDS"}
    out: dict[str, dict[str, dict[str, Interval]]] = {}
    for label, rs in _by_label(done).items():
        out[label] = {}
        for m in metrics:
            diffs = [r.final(m) - sds[r.pair].final(m) for r in rs if r.pair in sds]
            out[label][m] = {"mean": bootstrap_ci([r.final(m) for r in rs], n_boot=n_boot),
                             "diff_to_sds": bootstrap_ci(diffs, n_boot=n_boot)}
    return out


def as_variant(runs: Sequence[Run], variant: str) -> list[Run]:
    """``runs`` relabelled as the variant ``variant`` (e.g. ``"batch_size=8"``) of their method,
    so that :func:`steps_to_threshold` and :func:`final_quality` pair them with the method's
    plain runs of the same (prompt, seed) from another sweep (a ``--set`` override is not part of
    a run's label: the sweep that ran it had no reference).

    >>> [r.label for r in as_variant([Run("x", "p", "sds", 0, "", True, 1, 1.0)], "batch_size=8")]
    ['sds:batch_size=8']
    """
    if not variant or "=" not in variant:
        raise ValueError(f"as_variant: variant {variant!r} must be key=value[,key=value...]")
    return [replace(r, variant=variant, run_id=f"{r.run_id}__{variant}") for r in runs]


def as_reference(runs: Sequence[Run], variant: str) -> list[Run]:
    """``runs`` with the variant ``variant`` relabelled as its method's plain runs (the inverse of
    :func:`as_variant`), so that :func:`steps_to_threshold` and :func:`final_quality` measure the
    other variants against it on the same (prompt, seed): in the colour grid, whose two arms are
    both variants, ``as_reference(runs, "pullback=latent")`` makes the preset's arm the reference.

    >>> rs = [Run("x", "p", "sds", 0, "pullback=latent", True, 1, 1.0)]
    >>> [r.label for r in as_reference(rs, "pullback=latent")]
    ['SDS']
    """
    if not any(r.variant == variant for r in runs):
        raise ValueError(f"as_reference: no run has the variant {variant!r}; the runs have "
                         f"{sorted({r.variant for r in runs})}")
    return [replace(r, variant="") if r.variant == variant else r for r in runs]


def variant_pairs(runs: Sequence[Run], a: str, b: str) -> dict[tuple[str, int], dict[str, Run]]:
    """The finished runs of the variants ``a`` and ``b`` paired by (prompt, seed), in prompt
    order: ``{(prompt, seed): {a: Run, b: Run}}``; pairs missing either arm are left out."""
    out: dict[tuple[str, int], dict[str, Run]] = {}
    for r in runs:
        if r.done and r.variant in (a, b):
            out.setdefault(r.pair, {})[r.variant] = r
    return {p: d for p, d in sorted(out.items()) if {a, b} <= set(d)}


# ---------------------------------------------------------------------- ablations
ABLATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "guidance scale (SDS)": ("sds", "guidance_scale=7.5",
                             ("guidance_scale=3", "guidance_scale=7.5", "guidance_scale=20",
                              "guidance_scale=50", "guidance_scale=100")),
    "t_max annealed 0.98 → 0.5 (SDS)": ("sds", "guidance_scale=7.5",
                                        ("timesteps.t_max_end=0.5",)),
    "baseline φ (SSD)": ("ssd", "ssd.baseline=depth",
                         ("ssd.baseline=depth", "ssd.baseline=normal", "ssd.baseline=constant")),
    "μ shape (SSD, depth φ)": ("ssd", "ssd.baseline=depth",
                               ("ssd.coefficient.reduce=scalar", "ssd.baseline=depth",
                                "ssd.coefficient.reduce=element")),
}
"""The ablation grid of ``scripts/claims_sweep.py ablations``: group → (method, the reference
variant, the variants in display order, the reference among them or first). The reference runs
are the preset (guidance 7.5; SSD's depth baseline with channel μ), compared with each variant
on the same (prompt, seed)."""


def ablation_table(runs: Sequence[Run], metrics: Sequence[str] = METRICS, n_boot: int = 2000,
                   seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """Final quality of each ablation variant and its paired difference to the reference.

    For each group of :data:`ABLATIONS` and each variant (the reference included), over the
    finished runs: ``{"n": pairs, metric: {"mean": Interval, "diff": Interval}}``, where
    ``mean`` is over the variant's runs and ``diff`` is the mean of ``variant − reference`` over
    the (prompt, seed) pairs where both finished (95% bootstrap intervals). Groups without a
    finished reference are left out.
    """
    done = [r for r in runs if r.done]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for group, (method, ref, variants) in ABLATIONS.items():
        refs = {r.pair: r for r in done if r.method == method and r.variant == ref}
        if not refs:
            continue
        rows: dict[str, dict[str, Any]] = {}
        for variant in (variants if ref in variants else (ref, *variants)):
            mine = {r.pair: r for r in done if r.method == method and r.variant == variant}
            pairs = sorted(set(mine) & set(refs))
            row: dict[str, Any] = {"n": len(pairs), "runs": len(mine)}
            for m in metrics:
                vals = [r.final(m) for r in mine.values()]
                diffs = [mine[p].final(m) - refs[p].final(m) for p in pairs]
                row[m] = {"mean": bootstrap_ci(vals, n_boot=n_boot, seed=seed),
                          "diff": bootstrap_ci(diffs, n_boot=n_boot, seed=seed)}
            rows[variant] = row
        out[group] = rows
    return out


def ablation_json(table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """:func:`ablation_table`'s result with its intervals as dicts (for a figure's sidecar)."""
    return {g: {v: {k: (x if k in ("n", "runs") else {a: i.as_dict() for a, i in x.items()})
                    for k, x in row.items()} for v, row in rows.items()}
            for g, rows in table.items()}


def _ablation_tick(variant: str, names: Sequence[str], ref: str) -> str:
    """``value`` of ``key=value``; the reference is "preset" when its key is not the group's
    (channel μ is the depth run; the t_max group's reference is guidance 7.5)."""
    key, _, value = variant.partition("=")
    if variant != ref:
        return value
    others = {n.partition("=")[0] for n in names if n != ref}
    if key in others:
        return f"{value} (preset)"
    return "channel (preset)" if "coefficient.reduce" in " ".join(others) else "preset"


def ablation_figure(table: dict[str, dict[str, dict[str, Any]]],
                    metrics: Sequence[str] = ("color_delta_e", "mask_iou", "psnr"),
                    title: str = "") -> Any:
    """The ablations (notebook 43): one column per group, one row per metric; each variant's
    paired difference to the group's reference (mean and 95% interval; the reference, black,
    at 0)."""
    import matplotlib.pyplot as plt

    groups = list(table)
    fig, axes = plt.subplots(len(metrics), max(1, len(groups)),
                             figsize=(3.6 * max(1, len(groups)), 2.4 * len(metrics)),
                             squeeze=False)
    for col, group in enumerate(groups):
        rows = table[group]
        names = list(rows)
        for row_i, m in enumerate(metrics):
            ax = axes[row_i, col]
            for i, v in enumerate(names):
                d = rows[v][m]["diff"]
                if d.n == 0:
                    continue
                lo = d.lo if math.isfinite(d.lo) else d.estimate
                hi = d.hi if math.isfinite(d.hi) else d.estimate
                ax.errorbar(i, d.estimate, yerr=[[d.estimate - lo], [hi - d.estimate]], fmt="o",
                            color="k" if v == ABLATIONS[group][1] else "C3", capsize=3, ms=4)
            ax.axhline(0.0, color="grey", lw=0.8, ls=":")
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([_ablation_tick(v, names, ABLATIONS[group][1]) for v in names],
                               fontsize=7)
            if row_i == 0:
                ax.set_title(group, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"Δ {m} vs ref" + (" (lower better)" if m == "color_delta_e"
                                                  else ""), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- the colour grid

def pullback_figure(runs: Sequence[Run], a: str = "pullback=latent",
                    b: str = "pullback=decoded", title: str = "") -> Any:
    """The colour grid (notebook 43, section 5): per (prompt, seed), the final ΔE of the mean
    colour (a) and the per-pixel ΔE (b; dashes: where both masks cover) of the two arms, joined
    by a line; (c) both along training, mean over the pairs."""
    import matplotlib.pyplot as plt

    ps = variant_pairs(runs, a, b)
    if not ps:
        raise ValueError(f"pullback_figure: no (prompt, seed) has finished runs of both {a!r} "
                         f"and {b!r}; the runs have {sorted({r.variant for r in runs})}")
    names = [f"{p.replace('a ', '', 1).split(' with ')[0]}"
             + (f" s{s}" if len({s for _, s in ps}) > 1 else "") for p, s in ps]
    colours = {a: "#7f7f7f", b: "#ff7f0e"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), gridspec_kw=dict(width_ratios=[3, 3, 2]))
    x = np.arange(len(ps))
    for ax, m, panel in ((axes[0], "color_delta_e_of_mean", "(a) ΔE of the mean colour"),
                         (axes[1], "color_delta_e", "(b) ΔE (per pixel, inside the true mask)")):
        for i, d in enumerate(ps.values()):
            ax.plot([i, i], [d[a].final(m), d[b].final(m)], color="k", lw=0.8)
        for v in (a, b):
            ax.plot(x, [d[v].final(m) for d in ps.values()], "o", color=colours[v], ms=6,
                    label=v)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("CIE76 ΔE (lower is better)", fontsize=8)
        ax.set_title(panel, fontsize=10)
        ax.grid(axis="y", lw=0.3)
    for v, dx in ((a, -0.15), (b, 0.15)):
        axes[1].plot(x + dx, [d[v].final("color_delta_e_overlap") for d in ps.values()], "_",
                     color=colours[v], ms=8, mew=1.5)
    axes[1].plot([], [], "_", color="k", ms=8, mew=1.5, label="dashes: where both masks")
    top = 1.3 * max(d[v].final("color_delta_e") for d in ps.values() for v in (a, b))
    for ax in axes[:2]:
        ax.set_ylim(0, top)
        ax.legend(fontsize=7, loc="upper center", ncol=3)
    ax = axes[2]
    for v in (a, b):
        rs = [d[v] for d in ps.values()]
        steps = sorted(set.intersection(*({e["step"] for e in r.evals} for r in rs)))
        for m, ls, what in (("color_delta_e", "-", "ΔE"),
                            ("color_delta_e_of_mean", "--", "of the mean")):
            at = [{e["step"]: e[m] for e in r.evals} for r in rs]
            ax.plot(steps, [np.mean([d[t] for d in at]) for t in steps], ls, color=colours[v],
                    label=f"{v.split('=')[-1]}, {what}")
    ax.set_ylim(0, 1.35 * top)  # room for the legend above the curves
    ax.set_ylabel("ΔE", fontsize=8)
    ax.set_xlabel("step", fontsize=8)
    ax.set_title(f"(c) mean over the {len(ps)} pairs", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    ax.grid(lw=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- efficiency

def efficiency_table(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Variance per UNet evaluation of each design relative to SDS's, over the probed θs.

    Each θ gives ``r = v_design / v_SDS`` with ``se(log r)² = (se_d/v_d)² + (se_S/v_S)²``
    (independent batches, delta method); θs are combined on the log scale with inverse-variance
    weights. Returns ``{design: {"ratio": Interval (95%, normal on the log scale), "per_theta":
    [...], "ratio_x_time": geometric mean over θs (contended seconds), "mean_diff_to_sds":
    mean ‖mean_design − mean_SDS‖ / ‖mean_SDS‖}}``.
    """
    recs = [rec["efficiency"] for r in runs for rec in r.variance if "efficiency" in rec]
    if not recs:
        return {}
    out = {}
    for name in [n for n in recs[0] if all(n in e for e in recs)]:  # designs every θ has
        logs, ws, per, times, diffs = [], [], [], [], []
        for e in recs:
            d, s = e[name], e["sds"]
            r = d["per_evaluation"] / s["per_evaluation"]
            se2 = ((d["per_evaluation_se"] / d["per_evaluation"]) ** 2
                   + (s["per_evaluation_se"] / s["per_evaluation"]) ** 2)
            per.append(r)
            times.append(d["ratio_x_time"])
            diffs.append(d["mean_diff_to_sds_norm"] / max(s["mean_norm"], 1e-12))
            if name != "sds":
                logs.append(math.log(r))
                ws.append(1.0 / se2)
        if name == "sds":
            ci = Interval(1.0, 1.0, 1.0, len(recs))
        else:
            w = np.asarray(ws)
            m = float(np.sum(w * np.asarray(logs)) / w.sum())
            se = float(1.0 / math.sqrt(w.sum()))
            ci = Interval(math.exp(m), math.exp(m - 1.96 * se), math.exp(m + 1.96 * se), len(recs))
        out[name] = {"ratio": ci, "per_theta": per, "ratio_x_time": _gmean(np.asarray(times)),
                     "mean_diff_to_sds": float(np.mean(diffs))}
    return out


def probe_table(paths: Sequence[str | Path], n_boot: int = 2000, seed: int = 0
                ) -> dict[str, dict[str, Any]]:
    """The frozen-θ designs of ``scripts/cell_cv_probe.py`` over prompts (one JSON per prompt).

    Per prompt and design ``r = v_design / v_SDS`` (variance per UNet evaluation) with its
    delta-method standard error ``r · se(log r)``. Returns ``{design: {"prompts", "ratios",
    "ses", "mean": Interval (mean over prompts, bootstrap over prompts), "gmean", "pooled"
    (Σ v_design / Σ v_SDS), "best_on": how many prompts it is the lowest on, "x_time": Interval
    of the mean over prompts of variance × time, ``r · ms_design / ms_SDS`` (None when a file
    lacks it; meaningful only if each prompt ran alone on its device), "time_ratios"}}``.
    """
    files = [json.loads(Path(p).read_text()) for p in paths]
    if not files:
        return {}
    names = [n for n in files[0]["designs"] if all(n in f["designs"] for f in files)]
    lowest = [min(names, key=lambda n, f=f: f["designs"][n]["ratio"]) for f in files]
    out = {}
    for name in names:
        ds = [f["designs"][name] for f in files]
        ratios = [d["ratio"] for d in ds]
        out[name] = {
            "prompts": [f["args"]["prompt"] for f in files],
            "ratios": ratios,
            "ses": [d["ratio"] * d["ratio_rel_se"] for d in ds],
            "mean": bootstrap_ci(ratios, n_boot=n_boot, seed=seed),
            "gmean": _gmean(np.asarray(ratios)),
            "pooled": float(sum(d["per_evaluation"] for d in ds)
                            / sum(f["designs"]["sds"]["per_evaluation"] for f in files)),
            "best_on": sum(n == name for n in lowest),
            "time_ratios": [d.get("ms_per_batch", math.nan)
                            / f["designs"]["sds"].get("ms_per_batch", math.nan)
                            for d, f in zip(ds, files)],
            "x_time": (bootstrap_ci([d["ratio_x_time"] for d in ds], n_boot=n_boot, seed=seed)
                       if all("ratio_x_time" in d for d in ds) else None),
        }
    return out


# ---------------------------------------------------------------------- a tiny sweep (CI)
SMOKE_ARGS = (
    "main", "--prompts", "a brown teddy bear", "--methods", "sds", "ssd", "--seeds", "0",
    "--steps", "4", "--eval-every", "2", "--device", "cpu", "--light", "2", "2", "3",
    "--full", "2", "2", "4", "--batches", "0",
    "--set", "render_size=16", "--set", "eval_size=16", "--set", "batch_size=1",
    "--set", "nerf.grid.n_levels=2", "--set", "nerf.grid.log2_table_size=8",
    "--set", "nerf.grid.base_resolution=4", "--set", "render.n_samples=12",
)
"""``scripts/claims_sweep.py`` at toy sizes: SDS and SSD, one prompt, 4 steps, probes at every
step (light) and the last (full), on the CPU, with random 16² priors
(:func:`sdlib.priors.build.save_tiny_priors`): it checks the machinery, not the science."""


def smoke_sweep(folder: str | Path | None = None, timeout: float = 600) -> Path:
    """Runs the real claims sweep script at :data:`SMOKE_ARGS` sizes (one process, CPU) into
    ``folder`` (default: ``outputs/claims_smoke`` in the repository, git-ignored) and returns it.
    Finished runs are kept, so a second call (another notebook) costs only the reading."""
    import os
    import subprocess
    import sys

    from sdlib.figures import REPO_ROOT
    from sdlib.priors.build import save_tiny_priors

    folder = Path(folder) if folder else REPO_ROOT / "outputs" / "claims_smoke"
    priors = folder.parent / f"{folder.name}_priors"
    if not (priors / "dpt").exists():
        save_tiny_priors(priors, [SMOKE_ARGS[2]])
    env = {**os.environ, "OMP_NUM_THREADS": "2",
           "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "claims_sweep.py"), *SMOKE_ARGS[:1],
           "--out", str(folder), *SMOKE_ARGS[1:],
           "--set", f"prior={priors / 'sd'}", "--set", f"depth={priors / 'dpt'}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"smoke_sweep: {' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return folder


# ---------------------------------------------------------------------- figures
COLOURS = {"SDS": "#1f77b4", "SSD (paper)": "#d62728", "VSD": "#2ca02c",
           "SDS + μ(t) + stratified": "#9467bd",
           "SDS + cells + antithetic + stratified": "#ff7f0e"}


def method_colour(label: str) -> str:
    """The colour of a method's curves in every claims figure (grey for a label not in
    :data:`COLOURS`)."""
    return COLOURS.get(label, "#7f7f7f")


def plot_curves(ax: Any, curves: dict[str, dict[str, list[Any]]], y: str, x: str = "step",
                log: bool = False, ref: float | None = None) -> None:
    """Draws ``curves[label][y]`` against ``[x]`` with the ``lo``-``hi`` band, one colour per
    method (:data:`COLOURS`)."""
    for label, c in curves.items():
        xs = np.asarray(c[x], dtype=float)
        ax.plot(xs, c[y], "o-", ms=3, color=method_colour(label), label=label)
        ax.fill_between(xs, c["lo"], c["hi"], color=method_colour(label), alpha=0.18, lw=0)
    if ref is not None:
        ax.axhline(ref, color="k", lw=0.8, ls=":")
    if log:
        ax.set_yscale("log")


def variance_figure(runs: Sequence[Run], title: str, n_boot: int = 2000
                    ) -> tuple[Any, dict[str, Any]]:
    """Fig. 5 measured (notebook 41): a 2 × 4 grid, θ (top) and latent (bottom) gradients.

    Columns 1-2: each method's own ``tr Cov`` of one draw along its own trajectory, total and
    noise only (:func:`variance_curves`, median over runs and 95% interval; log scale). Column 3:
    each estimator over SDS's at the same θ and draws, total (solid) and noise only (dashed)
    (:func:`paired_ratio_curves`, geometric mean and 95% interval). Column 4: SDS's estimator at
    each method's θ over SDS's at the SDS run's θ (:func:`theta_effect_curves`): what the
    trajectory alone does. Columns 1 ≈ 3 × 4: a method's own-trajectory variance is its
    estimator's effect times its θ's. Returns ``(figure, data)`` with ``data = {"own":
    {"theta/total": curves, ...}, "paired": {...}, "theta_effect": {...}}`` for the sidecar.
    """
    import matplotlib.pyplot as plt

    spaces, parts = ("theta", "latent"), ("total", "noise_only")
    own = {(sp, pt): variance_curves(runs, sp, pt, n_boot=n_boot) for sp in spaces for pt in parts}
    paired = {(sp, pt): paired_ratio_curves(runs, sp, pt, n_boot=n_boot)
              for sp in spaces for pt in parts}
    effect = {(sp, pt): theta_effect_curves(runs, sp, pt, n_boot=n_boot)
              for sp in spaces for pt in parts}
    fig, axes = plt.subplots(2, 4, figsize=(20, 7.5))
    for row, space in enumerate(spaces):
        name = "θ" if space == "theta" else "latent"
        for col, part in enumerate(parts):
            ax = axes[row, col]
            plot_curves(ax, own[(space, part)], "median", log=True)
            ax.set_title(f"{name}: {part.replace('_', ' ')}, own trajectory", fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("tr Cov of one draw (median, 95% CI)")
        for col, ratios, what, ylabel in (
                (2, paired, "over SDS on the same θ and draws", "tr Cov / SDS's"),
                (3, effect, "SDS's estimator at the method's θ / at SDS's θ",
                 "ratio of SDS's tr Cov")):
            ax = axes[row, col]
            for part, ls in (("total", "-"), ("noise_only", "--")):
                for label, c in ratios[(space, part)].items():
                    ax.plot(c["step"], c["gmean"], "o" + ls, ms=3, color=method_colour(label),
                            label=f"{label}, {part.replace('_', ' ')}")
                    ax.fill_between(c["step"], c["lo"], c["hi"], color=method_colour(label),
                                    alpha=0.15, lw=0)
            ax.axhline(1.0, color="k", lw=0.8, ls=":")
            ax.set_yscale("log")
            ax.set_title(f"{name}: {what}", fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel(f"{ylabel} (geometric mean, 95% CI)")
            ax.legend(fontsize=6)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig, {"own": {f"{sp}/{pt}": c for (sp, pt), c in own.items()},
                 "paired": {f"{sp}/{pt}": c for (sp, pt), c in paired.items()},
                 "theta_effect": {f"{sp}/{pt}": c for (sp, pt), c in effect.items()}}


def convergence_figure(runs: Sequence[Run], title: str, fraction: float = 0.95,
                       n_boot: int = 2000, interpolate: bool = False
                       ) -> tuple[Any, dict[str, Any]]:
    """Fig. 7 measured (notebook 42): mask IoU, PSNR, depth Pearson, classifier accuracy and ΔE
    (columns) against steps (top) and contended seconds (bottom), mean and 95% interval over
    runs (:func:`metric_curves`).

    Returns ``(figure, data)``; ``data`` holds the final quality with the paired differences to
    SDS (:func:`final_quality`), the steps and seconds to ``fraction`` of SDS's final IoU, PSNR,
    depth and classifier accuracy (:func:`steps_to_threshold`, ``interpolate`` between
    evaluations or not) and each
    method's median contended ms per step.
    """
    import matplotlib.pyplot as plt

    quality = final_quality(runs, n_boot=n_boot)
    stt = {(m, x): steps_to_threshold(runs, m, fraction, x=x, n_boot=n_boot,
                                      interpolate=interpolate)
           for m in ("mask_iou", "psnr", "depth_pearson", "classifier_accuracy")
           for x in ("step", "train_seconds")}
    per_label: dict[str, list[float]] = {}
    for r in runs:
        per_label.setdefault(r.label, []).append(r.step_ms)
    step_ms = {k: float(np.nanmedian(v)) for k, v in per_label.items()}
    metrics = ("mask_iou", "psnr", "depth_pearson", "classifier_accuracy", "color_delta_e")
    fig, axes = plt.subplots(2, len(metrics), figsize=(21, 7))
    for col, m in enumerate(metrics):
        for row, x in enumerate(("step", "train_seconds")):
            ax = axes[row, col]
            plot_curves(ax, metric_curves(runs, m, x=x, n_boot=min(n_boot, 1000)), "mean", x="x")
            ax.set_xlabel("step" if x == "step" else "training seconds (contended, median)")
            ax.set_ylabel(m + (" (lower is better)" if m == "color_delta_e" else ""))
            ax.set_title(f"{m} against {'steps' if x == 'step' else 'seconds'}", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    data = {
        "fraction": fraction, "interpolate": interpolate,
        "final_quality": {k: {m: {"mean": d["mean"].as_dict(),
                                  "diff_to_sds": d["diff_to_sds"].as_dict()}
                              for m, d in v.items()} for k, v in quality.items()},
        "steps_to_threshold": {f"{m}/{x}": {k: threshold_json(d) for k, d in t.items()}
                               for (m, x), t in stt.items()},
        "step_ms_contended": step_ms,
    }
    return fig, data


COMMITTED = Path(__file__).resolve().parent.parent / "notes" / "claims_h200" / "runs.json.gz"
"""The committed H200 claims sweep (see its ``meta`` for machine, command and priors)."""

CONVERGENCE = COMMITTED.parent.parent / "claims_2000_h200" / "runs.json.gz"
"""The committed 2,000-step sweep on the shipped priors (issue 12, item 7), grown session by
session (``scripts/claims_carry.py``; its ``meta["sessions"]`` names each call)."""

PULLBACK_SWEEP = COMMITTED.parent.parent / "colour_h200" / "runs.json.gz"
"""The committed colour grid (``scripts/claims_sweep.py colour``: ``pullback`` latent against
decoded, SDS, 1,000 steps; notebook 43, section 5), packed by ``scripts/claims_carry.py``."""

ABLATION_SWEEP = COMMITTED.parent.parent / "ablations_h200" / "runs.json.gz"
"""The committed ablation sweep (``scripts/claims_sweep.py ablations``, 800 steps; :data:`ABLATIONS`
names its groups), packed by ``scripts/claims_carry.py`` like :data:`CONVERGENCE`."""

BATCH8_SWEEP = COMMITTED.parent.parent / "batch8_h200" / "runs.json.gz"
"""The committed batch-size control (notebook 44, section 5): SDS at batch 8, seed 0, the 8
benchmark prompts, 2,000 steps (``--set batch_size=8``); its run ids equal the preset's SDS runs'
in :data:`CONVERGENCE`, so :func:`as_variant` relabels them before pairing."""


def resolve_sweep(sweep: str | Path = "", smoke: bool = False,
                  default: Path = COMMITTED) -> Path:
    """What a notebook reads: ``sweep`` if given; else the tiny CPU sweep when ``smoke`` (run
    now, :func:`smoke_sweep`, or read back if it already ran); else ``default``
    (:data:`COMMITTED`, or :data:`CONVERGENCE` for the 2,000-step sections)."""
    if str(sweep):
        return Path(sweep)
    return smoke_sweep() if smoke else default


def open_sweep(sweep: str | Path = "", smoke: bool = False, default: Path = COMMITTED
               ) -> tuple[Path, list[Run], dict[str, Any]]:
    """What a notebook reads, loaded: ``(path, runs, meta)`` of :func:`resolve_sweep`'s sweep."""
    path = resolve_sweep(sweep, smoke, default)
    return path, load_runs(path), load_meta(path)


def describe(path: Path, runs: Sequence[Run], meta: dict[str, Any]) -> str:
    """One line on what a sweep holds: its finished runs, methods, seeds, prompts and the GPU
    sessions that ran it (``meta["sessions"]`` of a sweep grown by ``claims_carry.py``)."""
    done = [r for r in runs if r.done]
    sessions = [s["name"] for s in meta.get("sessions") or []]
    return (f"{path.name}: {len(done)} finished runs of {len(runs)}, "
            f"{sorted({r.label for r in done})}, seeds {finished_seeds(runs)}, "
            f"{len({r.prompt for r in done})} prompts"
            + (f", sessions {sessions}" if sessions else ""))


def finished_seeds(runs: Sequence[Run]) -> list[int]:
    """The seeds of the finished runs, sorted."""
    return sorted({r.seed for r in runs if r.done})


def size_text(runs: Sequence[Run], smoke: bool = False, *details: str) -> str:
    """A figure title's account of a GPU sweep: "H200, N prompts × seeds [...]" and
    ``details`` (finished runs; "smoke" for the smoke sweep)."""
    if smoke:
        return "smoke"
    prompts = len({r.prompt for r in runs if r.done})
    return ", ".join((f"H200, {prompts} prompts × seeds {finished_seeds(runs)}", *details))


def provenance(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The sidecar's record of where a figure's data came from: the sweep, its priors
    (:func:`priors_digest`) and the machine."""
    return {"sweep": str(path), "priors": priors_digest(meta), "machine": meta.get("machine")}


def priors_digest(meta: dict[str, Any]) -> str:
    """One short hash of the priors' file hashes in ``meta["priors"]`` (what a sidecar names)."""
    import hashlib

    items = sorted((meta.get("priors") or {}).items())
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:12] if items else "unknown"
