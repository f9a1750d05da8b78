r"""Sweeps: a grid of prompts × seeds × methods × config overrides, one
:class:`~sdlib.train.Trainer` run each, spread over ``torchrun`` processes, resumable,
gathered into one table.

A run is ``preset(prompt, method, seed=..., steps=..., eval_every=..., **overrides)`` (preset
:func:`~sdlib.train.shapezoo_config` or :func:`~sdlib.train.paper_config`) trained by
``Trainer(cfg, out_dir=<sweep_dir>/<run_id>).run(progress=False)``. Overrides are
``key=value`` strings whose keys are dotted paths into :class:`~sdlib.train.TrainConfig`'s
nested frozen dataclasses (``guidance_scale=20``, ``ssd.baseline=constant``,
``nerf.grid.n_levels=8``, ``cameras.elevation=0,30``), parsed to the field's type (int, float,
bool, str, a ``Literal``'s choices, ``X | None`` with ``none``, tuples comma-separated).
``vary`` overrides of one key give a grid axis: ``vary=("guidance_scale=7.5",
"guidance_scale=100")`` doubles the runs.

Distribution (``torch.distributed``'s ``env://`` rendezvous; the rows, small JSON objects,
travel through its key-value store)::

    runs   = sorted(grid, key=(seed, method != "vsd", run_id))
    mine   = whenever free: runs[store.add("claim", 1) - 1]  # shared counter: fast ranks take more
    device = cuda:{LOCAL_RANK % n_gpus}  (else cpu)  # several processes per GPU allowed

Launched without ``torchrun`` (no ``WORLD_SIZE`` in the environment) it is one process.
A finished run has ``done.json`` in its folder and is skipped (its row is read back); an
unfinished one resumes from its ``checkpoint.pt`` through :meth:`Trainer.run`. After its runs,
every rank posts its rows to the store; rank 0 waits for all of them (the barrier) and writes
``results.json`` (rows with their evaluation curves) and ``results.csv`` (one flat row per run:
config keys, final metrics, steps, seconds) into the sweep folder.

Seconds: ``train_seconds`` is the sum of the steps' own ``step_ms`` (from ``metrics.jsonl``,
the last record of each step when a resume redid some): training only, without evaluation,
probes, checkpoints or loading. Every evaluation record in ``results.json`` carries the
``train_seconds`` up to its step, to plot quality against seconds. ``wall_seconds`` is the
whole run as this process saw it (including evaluation and probes; a resumed run counts only
its last attempt).

Variance probes: at ``variance_steps`` the run calls ``probe(trainer) -> dict`` (default:
``sdlib.gradient_variance.measure(trainer, variance_samples).to_dict(with_mean=False)``) and
appends ``{"step": s, **result}`` to ``<run_dir>/variance.jsonl``. The probe runs on a copy of
every random state (the trainer's generator, torch's CPU and CUDA generators), so a run with
probes trains exactly as one without.

>>> cfg = SweepConfig(prompts=("a red ball",), seeds=(0, 1), methods=("sds", "ssd"), steps=2)
>>> [r.run_id for r in expand(cfg)]  # doctest: +NORMALIZE_WHITESPACE
['a_red_ball__sds__seed0', 'a_red_ball__sds__seed1',
 'a_red_ball__ssd__seed0', 'a_red_ball__ssd__seed1']
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import itertools
import json
import math
import os
import re
import time
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "SweepConfig",
    "RunSpec",
    "parse_override",
    "apply_overrides",
    "overrides_dict",
    "expand",
    "build_config",
    "run_one",
    "run_sweep",
    "read_table",
    "default_probe",
]

Probe = Callable[[Any], dict[str, Any]]

RESERVED = ("prompt", "method", "seed", "steps", "eval_every")
"""Keys a sweep sets itself (from its prompts, methods, seeds, steps, eval_every)."""


@dataclass(frozen=True)
class SweepConfig:
    """A grid of runs and how to run them."""

    prompts: tuple[str, ...]
    """Text prompts (ShapeZoo prompts get ground-truth metrics)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; each is every random draw of its run (TrainConfig.seed)."""
    methods: tuple[str, ...] = ("sds", "vsd", "ssd")
    """Methods: "sds", "vsd", "ssd"."""
    steps: int = 3000
    """Steps of every run."""
    eval_every: int = 500
    """Ground-truth evaluation interval (the final step is always evaluated)."""
    overrides: tuple[str, ...] = ()
    """``key=value`` overrides applied to every run (dotted keys into TrainConfig)."""
    vary: tuple[str, ...] = ()
    """``key=value`` overrides forming grid axes: the values given for one key are one axis."""
    preset: str = "shapezoo"
    """``"shapezoo"`` (:func:`sdlib.train.shapezoo_config`) or ``"paper"``."""
    variance_steps: tuple[int, ...] = ()
    """Steps after which the variance probe runs (empty: none)."""
    variance_samples: int = 32
    """Samples of the default probe (:func:`sdlib.gradient_variance.measure`)."""

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ValueError("SweepConfig.prompts is empty: give at least one prompt")
        if not self.seeds:
            raise ValueError("SweepConfig.seeds is empty: give at least one seed")
        from sdlib.train import METHODS

        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"SweepConfig.methods={self.methods!r}; accepted: {METHODS}")
        if self.preset not in ("shapezoo", "paper"):
            raise ValueError(f"SweepConfig.preset={self.preset!r}; accepted: 'shapezoo', 'paper'")
        if self.steps < 1 or self.eval_every < 0:
            raise ValueError(f"SweepConfig: steps={self.steps} must be >= 1 and "
                             f"eval_every={self.eval_every} >= 0")
        if any(s < 1 for s in self.variance_steps):
            raise ValueError(f"SweepConfig.variance_steps={self.variance_steps} must be >= 1")
        if self.variance_samples < 3:
            raise ValueError(f"SweepConfig.variance_samples={self.variance_samples} must be "
                             ">= 3 (32 or more advised)")
        for text in self.overrides + self.vary:
            key, _ = _split(text)
            if key in RESERVED:
                raise ValueError(f"override {text!r}: {key!r} is set by the sweep itself "
                                 "(use its prompts, methods, seeds, steps, eval_every)")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep."""

    run_id: str
    """Folder name under the sweep folder (unique, filesystem-safe)."""
    prompt: str
    method: str
    seed: int
    overrides: tuple[tuple[str, str], ...] = field(default=())
    """``(key, value)`` pairs, fixed ones then varied ones, as given."""

    def row(self) -> dict[str, Any]:
        """The run's config columns: ``run_id, prompt, method, seed`` and every override key."""
        return {"run_id": self.run_id, "prompt": self.prompt, "method": self.method,
                "seed": self.seed, **dict(self.overrides)}


# ---------------------------------------------------------------------- overrides
def _split(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key=value (e.g. ssd.baseline=constant)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"override {text!r} has an empty key")
    return key, value.strip()


def overrides_dict(texts: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` → ``{key: value}`` (for :func:`apply_overrides`); a key given
    twice is an error."""
    out: dict[str, str] = {}
    for text in texts:
        key, value = _split(text)
        if key in out:
            raise ValueError(f"override key {key!r} is given twice ({out[key]!r}, {value!r})")
        out[key] = value
    return out


def _parse_value(tp: Any, text: str, where: str) -> Any:
    """``text`` parsed to type ``tp`` (resolved annotation)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"{where}={text!r}; accepted: {', '.join(map(str, choices))}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse_value(arg, text, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"{where}={text!r} matches none of {tp}: " + "; ".join(errors))
    if origin is tuple:
        args = typing.get_args(tp)
        parts = [p.strip() for p in text.split(",")] if text else []
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse_value(args[0], p, where) for p in parts)
        if len(parts) != len(args):
            raise ValueError(f"{where}={text!r}: expected {len(args)} comma-separated values")
        return tuple(_parse_value(a, p, where) for a, p in zip(args, parts))
    if dataclasses.is_dataclass(tp):
        names = ", ".join(f.name for f in dataclasses.fields(tp))
        raise ValueError(f"{where} is a {tp.__name__}: set its fields with {where}.<field> "
                         f"(fields: {names})")
    if tp is bool:
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{where}={text!r}: expected true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{where}={text!r}: expected an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{where}={text!r}: expected a number") from None
    if tp is str:
        return text
    raise ValueError(f"{where}: fields of type {tp} cannot be set from the command line")


def parse_override(cls: type, key: str, text: str) -> Any:
    """The value of dotted ``key`` of dataclass ``cls`` parsed from ``text``.

    >>> from sdlib.train import TrainConfig
    >>> parse_override(TrainConfig, "nerf.grid.n_levels", "8"), parse_override(
    ...     TrainConfig, "ssd.baseline", "constant")
    (8, 'constant')
    """
    parts = key.split(".")
    current: Any = cls
    for i, name in enumerate(parts):
        where = ".".join(parts[:i + 1])
        if not (isinstance(current, type) and dataclasses.is_dataclass(current)):
            raise ValueError(f"override key {key!r}: {'.'.join(parts[:i])} is not a config "
                             "with fields")
        hints = typing.get_type_hints(current)
        names = [f.name for f in dataclasses.fields(current)]
        if name not in names:
            raise ValueError(f"override key {key!r}: {current.__name__} has no field {name!r}; "
                             f"its fields: {', '.join(names)}")
        current = hints[name]
        if i == len(parts) - 1:
            return _parse_value(current, text, where)
    raise AssertionError("unreachable")


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """``config`` with dotted ``overrides`` replaced (nested frozen dataclasses rebuilt).

    Values that are strings are parsed to the field's type (:func:`parse_override`); other
    values are used as they are.
    """
    tree: dict[str, Any] = {}  # the overrides as nested dicts, one level per config
    for key, value in overrides.items():
        if isinstance(value, str):
            value = parse_override(type(config), key, value)
        node, parts = tree, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override key {key!r}: {part!r} is also set as a whole")
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"override key {key!r}: its fields are also set one by one")
        node[parts[-1]] = (value, key)
    return _replace_tree(config, tree)


def _replace_tree(obj: Any, tree: dict[str, Any]) -> Any:
    """``obj`` with every field of ``tree`` replaced in one ``dataclasses.replace`` per config,
    so that fields validated together (``anneal_start <= anneal_end``) may be set together."""
    changes = {}
    for name, sub in tree.items():
        if not dataclasses.is_dataclass(obj):
            raise ValueError(f"override key {next(_keys(sub))!r}: {type(obj).__name__} has no "
                             "fields")
        names = [f.name for f in dataclasses.fields(obj)]
        if name not in names:
            raise ValueError(f"override key {next(_keys(sub))!r}: {type(obj).__name__} has no "
                             f"field {name!r}; its fields: {', '.join(names)}")
        changes[name] = _replace_tree(getattr(obj, name), sub) if isinstance(sub, dict) \
            else sub[0]
    return dataclasses.replace(obj, **changes)


def _keys(tree: Any):
    """The dotted keys under a node of :func:`apply_overrides`' tree (for error messages)."""
    if isinstance(tree, dict):
        for sub in tree.values():
            yield from _keys(sub)
    else:
        yield tree[1]


# ---------------------------------------------------------------------- the grid
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")[:60] or "x"


def _axes(vary: Sequence[str]) -> list[tuple[str, list[str]]]:
    axes: dict[str, list[str]] = {}
    for text in vary:
        key, value = _split(text)
        values = axes.setdefault(key, [])
        if value in values:
            raise ValueError(f"vary {text!r} is given twice")
        values.append(value)
    return list(axes.items())


def expand(config: SweepConfig) -> list[RunSpec]:
    """Every run of the grid, sorted by ``run_id`` (the order ranks share them in)."""
    fixed = list(overrides_dict(config.overrides).items())  # a key given twice fails here
    axes = _axes(config.vary)
    clash = {k for k, _ in fixed} & {k for k, _ in axes}
    if clash:
        raise ValueError(f"keys {sorted(clash)} are both fixed overrides and varied")
    runs = []
    for prompt, method, seed in itertools.product(config.prompts, config.methods, config.seeds):
        for combo in itertools.product(*[[(k, v) for v in vals] for k, vals in axes]):
            tag = "".join(f"__{_slug(k)}={_slug(v)}" for k, v in combo)
            run_id = f"{_slug(prompt)}__{method}__seed{seed}{tag}"
            runs.append(RunSpec(run_id, prompt, method, int(seed), tuple(fixed) + tuple(combo)))
    runs.sort(key=lambda r: r.run_id)
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("two runs of the grid have the same folder name (prompts or values "
                         "that differ only in punctuation); make them differ in letters")
    return runs


def build_config(sweep: SweepConfig, spec: RunSpec, device: str | None = None):
    """The run's :class:`~sdlib.train.TrainConfig`: the preset with the run's overrides.

    ``device`` applies unless an override sets ``device``.
    """
    from sdlib.train import TrainConfig, paper_config, shapezoo_config

    preset = {"shapezoo": shapezoo_config, "paper": paper_config}[sweep.preset]
    overrides = dict(spec.overrides)
    top = {}
    if device is not None and "device" not in overrides:
        top["device"] = device
    for key in [k for k in overrides if "." not in k]:
        top[key] = parse_override(TrainConfig, key, overrides.pop(key))
    cfg = preset(spec.prompt, spec.method, seed=spec.seed, steps=sweep.steps,  # type: ignore[arg-type]
                 eval_every=sweep.eval_every, **top)
    return apply_overrides(cfg, overrides)


# ---------------------------------------------------------------------- one run
def default_probe(n_samples: int) -> Probe:
    """``trainer -> measure(trainer, n_samples).to_dict(with_mean=False)``."""
    def probe(trainer: Any) -> dict[str, Any]:
        from sdlib.gradient_variance import measure

        return measure(trainer, n_samples).to_dict(with_mean=False)

    return probe


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _train_seconds(run_dir: Path) -> dict[int, float]:
    """Cumulative training seconds at every step (the last ``step_ms`` logged for each step)."""
    per_step: dict[int, float] = {}
    for rec in _jsonl(run_dir / "metrics.jsonl"):
        per_step[int(rec["step"])] = float(rec["step_ms"]) / 1000.0
    total, out = 0.0, {}
    for step in sorted(per_step):
        total += per_step[step]
        out[step] = total
    return out


def _comparable(config_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config_dict.items() if k != "device"}


class _SavedRandomState:
    """Saves and restores the trainer's generator and torch's global generators."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def __enter__(self) -> None:
        self.gen = self.trainer.generator.get_state()
        self.cpu = torch.get_rng_state()
        device = self.trainer.device
        # the run's own GPU only: touching every GPU would open a context on each, per process
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def __exit__(self, *exc: Any) -> None:
        self.trainer.generator.set_state(self.gen)
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.trainer.device)


_PRIORS: dict[tuple, Any] = {}


def _priors(cfg: Any) -> tuple[Any, Any]:
    """The run's priors, loaded once per process (shared by its runs; never modified by one:
    VSD's LoRA lives on a copy of the UNet)."""
    from sdlib.priors import DepthPrior, DiffusionPrior

    key = ("sd", cfg.prior, cfg.prior_dtype, cfg.device)
    if key not in _PRIORS:
        _PRIORS[key] = DiffusionPrior(model=cfg.prior, device=cfg.device, dtype=cfg.prior_dtype)
    depth = None
    if cfg.method == "ssd" and cfg.ssd.baseline in ("depth", "normal"):
        dkey = ("depth", cfg.depth, cfg.depth_precision, cfg.device)
        if dkey not in _PRIORS:
            _PRIORS[dkey] = DepthPrior(model=cfg.depth, device=cfg.device,
                                       dtype=cfg.depth_precision)
        depth = _PRIORS[dkey]
    return _PRIORS[key], depth


def run_one(sweep: SweepConfig, spec: RunSpec, sweep_dir: str | Path, device: str | None = None,
            probe: Probe | None = None) -> dict[str, Any]:
    """Runs (or resumes, or reads back) one run; returns its row.

    The row: the run's config columns (:meth:`RunSpec.row`), ``status`` ("done"), ``steps``,
    ``train_seconds``, ``wall_seconds``, the final metrics (``final_<name>``) and ``evals``
    (every evaluation record with its ``train_seconds``).
    """
    from sdlib.train import Trainer

    run_dir = Path(sweep_dir) / spec.run_id
    cfg = build_config(sweep, spec, device)
    done = run_dir / "done.json"
    if done.exists():
        row = json.loads(done.read_text())
        saved = json.loads((run_dir / "config.json").read_text())
        if _comparable(saved) != _comparable(json.loads(json.dumps(cfg.to_dict()))):
            raise ValueError(f"{run_dir} holds a finished run with another config than this "
                             "sweep's; use a new sweep folder or delete that run")
        return row
    if (run_dir / "config.json").exists():
        saved = json.loads((run_dir / "config.json").read_text())
        if _comparable(saved) != _comparable(json.loads(json.dumps(cfg.to_dict()))):
            raise ValueError(f"{run_dir} holds an unfinished run with another config than this "
                             "sweep's; use a new sweep folder or delete that run")
    start = time.perf_counter()
    prior, depth = _priors(cfg)
    trainer = Trainer(cfg, out_dir=run_dir, prior=prior, depth=depth)
    callback = None
    if sweep.variance_steps:
        probe = probe or default_probe(sweep.variance_samples)
        wanted = set(sweep.variance_steps)
        seen = {int(r["step"]) for r in _jsonl(run_dir / "variance.jsonl")}

        def callback(trainer: Any, record: dict[str, Any]) -> None:
            step = trainer.step_count
            if step in wanted and step not in seen:
                t0 = time.perf_counter()
                with _SavedRandomState(trainer):
                    result = probe(trainer)
                result = {"step": step, **result,
                          "probe_seconds": time.perf_counter() - t0}
                trainer._append("variance.jsonl", result)
                seen.add(step)

    result = trainer.run(progress=False, callback=callback)
    wall = time.perf_counter() - start
    seconds = _train_seconds(run_dir)
    evals = []
    for rec in _jsonl(run_dir / "eval.jsonl"):
        if "mesh_error" in rec:
            continue
        evals.append({**rec, "train_seconds": seconds.get(int(rec["step"]), math.nan)})
    # a resumed run may have evaluated some steps twice: keep the last record of each
    evals = list({int(e["step"]): e for e in evals}.values())
    row = {
        **spec.row(),
        "status": "done",
        "steps": result.steps,
        "train_seconds": seconds.get(result.steps, math.nan),
        "wall_seconds": wall,
        **{f"final_{k}": v for k, v in result.metrics.items()
           if k not in ("step", "train_seconds")},
        "evals": evals,
    }
    done.write_text(json.dumps(row, indent=2))
    return row


# ---------------------------------------------------------------------- the sweep
def _dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment (0, 1, 0 without)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def rank_device(local_rank: int) -> str:
    """``cuda:{local_rank % n_gpus}`` when CUDA is present, else ``"cpu"``."""
    if torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


_TIMING = ("train_seconds", "wall_seconds", "probe_seconds", "final_train_seconds")


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "evals"}


def write_table(rows: list[dict[str, Any]], sweep_dir: str | Path) -> tuple[Path, Path]:
    """Writes ``results.json`` (rows with their curves) and ``results.csv`` (flat rows)."""
    sweep_dir = Path(sweep_dir)
    rows = sorted(rows, key=lambda r: r["run_id"])
    json_path, csv_path = sweep_dir / "results.json", sweep_dir / "results.csv"
    json_path.write_text(json.dumps(rows, indent=2))
    flat = [_flat(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns += [k for k in r if k not in columns]
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
    return json_path, csv_path


def read_table(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.json``."""
    return json.loads((Path(sweep_dir) / "results.json").read_text())


def run_sweep(
    config: SweepConfig | Sequence[SweepConfig],
    sweep_dir: str | Path,
    *,
    device: str | None = None,
    probe: Probe | None = None,
    timeout_hours: float = 72.0,
) -> list[dict[str, Any]] | None:
    """Runs this process's share of the sweep; rank 0 gathers and writes the table.

    Under ``torchrun`` (``WORLD_SIZE`` set) it joins the launch's ``env://`` store; otherwise
    it is the whole sweep in one process. No process group is needed (if one exists, its
    store is used).

    Args:
        config: the grid, or several grids run as one sweep (e.g. methods with different
            overrides); their run folders must differ.
        sweep_dir: the sweep folder (one sub-folder per run, the tables at the top).
        device: the runs' device (default: :func:`rank_device` of ``LOCAL_RANK``).
        probe: the variance probe (default: :func:`default_probe`).
        timeout_hours: how long ranks wait for each other at the gather (the slowest rank's
            share of the sweep must finish within it).

    Returns:
        The table's rows on rank 0 (sorted by ``run_id``), None on the other ranks. A run that
        raised has ``status="failed"`` and its ``error``; the others still run.
    """
    rank, world, local_rank = _dist_env()
    configs = [config] if isinstance(config, SweepConfig) else list(config)
    jobs = sorted(((c, spec) for c in configs for spec in expand(c)), key=lambda j: j[1].run_id)
    ids = [spec.run_id for _, spec in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("two grids of the sweep give runs of the same folder name; make them "
                         "differ (a varied key, a method, a seed or a prompt)")
    device = device or rank_device(local_rank)
    for c, spec in jobs:  # every key and value checked before any work
        build_config(c, spec, device)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    store = _store(rank, world, timeout_hours) if world > 1 else None
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (sweep_dir / "sweep.json").write_text(json.dumps(
            {"grids": [dataclasses.asdict(c) for c in configs], "world_size": world,
             "runs": ids}, indent=2))
    rows = []
    for c, spec in _claimed(claim_order(jobs), store):
        try:
            rows.append(run_one(c, spec, sweep_dir, device, probe))
        except Exception as err:  # noqa: BLE001 - record it, run the others
            rows.append({**spec.row(), "status": "failed",
                         "error": f"{type(err).__name__}: {err}"})
    gathered = [rows]
    if store is not None:  # every rank posts its rows; rank 0 waits for all (the barrier)
        store.set(f"rows/{rank}", json.dumps(rows))
        if rank == 0:
            keys = [f"rows/{r}" for r in range(world)]
            store.wait(keys)
            gathered = [json.loads(store.get(k)) for k in keys]
    if rank != 0:
        return None
    table = sorted((r for part in gathered for r in part), key=lambda r: r["run_id"])
    write_table(table, sweep_dir)
    return table


def claim_order(jobs: list[tuple[Any, RunSpec]]) -> list[tuple[Any, RunSpec]]:
    """The order in which ranks take runs: seed by seed (a launch cut short still has whole
    seeds), VSD first within a seed (its steps cost about twice SDS's; the long runs start
    early so that the ranks finish together), then by ``run_id``."""
    return sorted(jobs, key=lambda j: (j[1].seed, j[1].method != "vsd", j[1].run_id))


def _claimed(jobs: list[tuple[Any, RunSpec]], store: Any) -> Iterator[tuple[Any, RunSpec]]:
    """This rank's runs: all of them alone; under torchrun, the next unclaimed run each time
    the rank is free (an atomic counter in the launch's store), so fast ranks take more runs."""
    if store is None:
        yield from jobs
        return
    while (i := store.add("claim", 1) - 1) < len(jobs):
        yield jobs[i]


def _store(rank: int, world: int, timeout_hours: float) -> Any:
    """A client of the launch's key-value store (``env://``: torchrun's agent store, or one
    hosted by rank 0), under a prefix unique to this launch attempt.

    Rows travel through the store rather than a gloo ``gather_object``: with torch 2.13 on
    CPU, 2 of 13 two-process launches that gathered over gloo aborted a rank at exit
    (``terminate called without an active exception``, SIGABRT) after the table was written;
    the store has no collective threads to tear down.
    """
    import torch.distributed as dist

    timeout = datetime.timedelta(hours=timeout_hours)
    if dist.is_initialized():
        base = dist.distributed_c10d._get_default_store()
    else:
        base, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world,
                                          timeout=timeout))
    base.set_timeout(timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    run = os.environ.get("TORCHELASTIC_RUN_ID", "local")
    return dist.PrefixStore(f"sdlib_sweep/{run}/{attempt}/", base)


def strip_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without their seconds (what two launches of one sweep must agree on)."""
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k not in _TIMING}
        if "evals" in r:
            r["evals"] = [{k: v for k, v in e.items() if k not in _TIMING} for e in r["evals"]]
        out.append(r)
    return out
