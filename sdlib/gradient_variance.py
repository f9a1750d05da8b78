r"""The variance protocol for text-to-3D gradients (DESIGN.md §2; SteinDreamer's Fig. 5).

SteinDreamer plots gradient variance against steps but does not say how it was measured. We
measure it as follows, at a checkpoint with the NeRF parameters θ frozen:

1. draw ``N`` (≥ 32) independent samples of ``(c, t, ε)``, one camera each;
2. for each, form the method's gradient on the render's latents and pull it back to θ,
   ``g_i = ∂/∂θ 0.5 ||x − (x − grad_i).detach()||²`` (the full θ-gradient, every parameter);
3. report ``tr Cov = 1/(N−1) Σ_i ||g_i − ḡ||²`` and the relative variance ``tr Cov / ||ḡ||²``,
   with jackknife standard errors (:func:`sdlib.variance.variance_report`).

The method's state (SSD's μ, VSD's LoRA) is *not* updated while measuring. Two uses:
(a) along each method's own trajectory (call :func:`measure` on its checkpoints), and
(b) all methods at one shared θ (:func:`compare_at_shared_theta`), a pure estimator comparison;
each method then gets its own state from the checkpoint when the checkpoint is its own, or is
warmed up at the frozen θ (its μ / LoRA learn for ``warmup`` steps, θ fixed); the report says
which.

**Paired design** (:func:`paired_gradients`, the variance decomposition of
:mod:`sdlib.decomposition`): ``K`` cameras × ``T`` timesteps (each stratified over its range)
× ``N`` noises per cell; every estimator is evaluated on the *same* ``(c, t, ε)`` — one render
per camera and one UNet call per cell, estimators differ only in what they subtract — and each
sample's latent gradient is pulled back to θ on its own (``J_cᵀ g``, one backward per sample and
estimator, the render's graph kept). Per-sample θ-gradients have ``D ≈ 10⁶`` coordinates; they
are stored as a count sketch ``S g`` of ``m`` buckets (``S`` random signs and buckets, fixed for
the probe): ``E_S ⟨S a, S b⟩ = ⟨a, b⟩``, so every trace, Gram and norm the decomposition uses is
unbiased, with relative error about ``sqrt(2/m)`` (0.6% at ``m = 2¹⁶``).

**Batch efficiency** (:func:`batch_variance`): the variance a training step actually sees is
that of its batch mean. For a sampling design (i.i.d., antithetic pairs, stratified ``t`` and
azimuth) and an estimator, ``R`` batches of ``B`` UNet evaluations at the frozen θ give
``B · tr Cov(batch mean)``, the variance *per UNet evaluation* (equal to one sample's
``tr Cov`` for i.i.d. draws), and the measured seconds per batch; batches of every design
start from the same generator state (common random numbers).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdlib.cameras import sample_cameras
from sdlib.distill.common import pullback_loss
from sdlib.nerf.render import update_occupancy
from sdlib.variance import VarianceReport, variance_report

__all__ = [
    "theta_gradient",
    "measure",
    "compare_at_shared_theta",
    "warm_up",
    "CountSketch",
    "paired_gradients",
    "decomposed_variance",
    "batch_variance",
]


def theta_gradient(trainer: Any) -> Tensor:
    """One sample's full θ-gradient ``[D]`` (flattened over every field parameter, float32).

    Args:
        trainer: a :class:`sdlib.train.Trainer`; its field is not stepped and its method's
            state is not updated.
    """
    cfg = trainer.config
    cameras = sample_cameras(cfg.cameras, 1, trainer.generator, trainer.device)
    out = trainer.render(cameras)
    latents = trainer.encode(out)
    grad, _ = trainer.latent_gradient(cameras, out, latents, update_state=False)
    loss = pullback_loss(latents, grad)
    params = [p for p in trainer.field.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([
        (g if g is not None else torch.zeros_like(p)).flatten().float()
        for g, p in zip(grads, params)
    ])


def measure(
    trainer: Any, n_samples: int = 32, device: str | torch.device = "cpu"
) -> VarianceReport:
    """The variance of ``trainer``'s method at its current θ from ``n_samples`` gradients.

    Per-sample gradients are gathered on ``device`` (CPU by default: ``N × D`` floats).
    """
    if n_samples < 2:
        raise ValueError(f"measure: n_samples={n_samples} must be >= 2 (32 or more advised)")
    samples = torch.stack([theta_gradient(trainer).to(device) for _ in range(n_samples)])
    return variance_report(samples)


def warm_up(trainer: Any, steps: int) -> None:
    """Lets the trainer's estimator learn (μ, LoRA, baseline network) for ``steps`` batches at
    the frozen θ (no θ update, no render gradient)."""
    for _ in range(steps):
        with torch.no_grad():
            cameras, out, latents = trainer.sample_views()
        trainer.latent_gradient(cameras, out, latents.detach(), update_state=True)


def compare_at_shared_theta(
    trainers: dict[str, Any],
    state: dict[str, Any] | str | Path,
    n_samples: int = 32,
    warmup: int = 50,
) -> dict[str, VarianceReport]:
    """All methods' variances at one θ: each trainer's field is loaded with ``state`` first.

    The methods' own state: a trainer whose method wrote the checkpoint loads its μ / LoRA
    from it; the others (and every trainer when ``state`` is a bare field ``state_dict``) learn
    theirs for ``warmup`` steps at the frozen θ. ``reports[name].method_state`` says which
    ("checkpoint", "warm-up N steps at the frozen θ", or "none").

    Args:
        trainers: method name → :class:`sdlib.train.Trainer` (sharing priors is fine).
        state: a field ``state_dict``, a checkpoint dict, or a checkpoint path saved by
            ``Trainer.save_checkpoint``.
        n_samples: samples per method.
        warmup: estimator steps at the frozen θ for a method without its own state.
    """
    checkpoint: dict[str, Any] | None = None
    if isinstance(state, (str, Path)):
        checkpoint = torch.load(state, map_location="cpu", weights_only=False)
    elif "field" in state and "config" in state:
        checkpoint = state
    field_state = checkpoint["field"] if checkpoint is not None else state
    reports = {}
    for name, trainer in trainers.items():
        trainer.field.load_state_dict(field_state)
        if trainer.estimator is not None:  # the occupancy grid must describe the loaded θ
            update_occupancy(trainer.estimator, trainer.field, 0, trainer.config.render)
        stateful = bool(trainer.method.state_dict())
        if not stateful:
            how = "none"
        elif checkpoint is not None and checkpoint["config"]["method"] == trainer.config.method:
            trainer.load_method_state(checkpoint)
            how = "checkpoint"
        else:
            warm_up(trainer, warmup)
            how = f"warm-up {warmup} steps at the frozen θ"
        report = measure(trainer, n_samples)
        object.__setattr__(report, "method_state", how)
        reports[name] = report
    return reports


# ---------------------------------------------------------------------- paired design
class CountSketch:
    """``S g``: ``D`` coordinates into ``m`` buckets with random signs (fixed by ``seed``).

    ``E_S[⟨S a, S b⟩] = ⟨a, b⟩``; with ``D <= m`` the sketch is the identity.

    >>> s = CountSketch(10, 4, seed=0)
    >>> s(torch.ones(2, 10)).shape
    torch.Size([2, 4])
    """

    def __init__(self, dim: int, sketch_dim: int | None, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.dim = dim
        self.identity = sketch_dim is None or dim <= sketch_dim
        self.sketch_dim = dim if self.identity else int(sketch_dim)  # type: ignore[arg-type]
        if not self.identity:
            gen = torch.Generator().manual_seed(seed)
            self.bucket = torch.randint(0, self.sketch_dim, (dim,), generator=gen).to(device)
            self.sign = (torch.randint(0, 2, (dim,), generator=gen) * 2 - 1).float().to(device)

    def __call__(self, g: Tensor) -> Tensor:
        """``[..., D]`` → ``[..., m]``."""
        if self.identity:
            return g
        flat = g.reshape(-1, self.dim) * self.sign
        out = torch.zeros(flat.shape[0], self.sketch_dim, device=g.device, dtype=flat.dtype)
        out.index_add_(1, self.bucket, flat)
        return out.reshape(*g.shape[:-1], self.sketch_dim)


def _params(trainer: Any) -> list[Tensor]:
    return [p for p in trainer.field.parameters() if p.requires_grad]


def _flat_grad(grads: tuple[Tensor | None, ...], params: list[Tensor]) -> Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().float()
                      for g, p in zip(grads, params)])


@contextlib.contextmanager
def _sampling(trainer: Any, method: Any = None, **changes: Any) -> Iterator[None]:
    """Temporarily another estimator and sampling design (TrainConfig fields) on ``trainer``;
    the trainer's CPU generator state is restored afterwards."""
    saved = trainer.config, trainer.method, trainer.generator.get_state()
    trainer.config = replace(trainer.config, **changes)
    if method is not None:
        trainer.method = method
    try:
        yield
    finally:
        trainer.config, trainer.method = saved[0], saved[1]
        trainer.generator.set_state(saved[2])


def paired_gradients(
    trainer: Any,
    estimators: dict[str, Any],
    n_cameras: int = 8,
    n_timesteps: int = 6,
    n_noises: int = 16,
    sketch_dim: int | None = 2**16,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-sample gradients of several estimators on one paired design at the current θ.

    Args:
        trainer: a :class:`sdlib.train.Trainer` (θ is not stepped; no estimator learns).
        estimators: name → :class:`sdlib.distill.estimator.Estimator` (e.g. the trainer's own
            ``trainer.method``, :class:`sdlib.distill.SDS`, an SSD with μ ≡ 1).
        n_cameras, n_timesteps, n_noises: ``K``, ``T``, ``N`` of the design; cameras and
            timesteps each stratified over the training ranges, noises i.i.d. per cell.
        sketch_dim: buckets ``m`` of the θ-gradient count sketch (None: full gradients).
        seed: seed of the design's draws and of the sketch.

    Returns:
        ``{"theta": {name: [K, T, N, m]}, "latent": {name: [K, T, N, C·h·w]}, "t": [T],
        "azimuth": [K]}`` (float32, on the trainer's device).
    """
    from sdlib.cameras import sample_cameras
    from sdlib.distill.common import sample_timesteps
    from sdlib.distill.estimator import distillation_gradient

    cfg = trainer.config
    gen = torch.Generator().manual_seed(seed)
    cams = sample_cameras(cfg.cameras, n_cameras, gen, trainer.device, stratified=True)
    t_all = sample_timesteps(cfg.timesteps, trainer.step_count, n_timesteps,
                             trainer.prior.num_train_timesteps, generator=gen,
                             stratified=True).sort().values
    params = _params(trainer)
    sketch = CountSketch(sum(p.numel() for p in params), sketch_dim, seed, trainer.device)
    theta = {name: [] for name in estimators}
    latent = {name: [] for name in estimators}
    normals = any(getattr(est, "needs_normals", False) for est in estimators.values())
    with _sampling(trainer, antithetic=False):
        for k in range(n_cameras):
            cam = cams[k]
            out = trainer.render(cam, normals=normals)
            latents = trainer.encode(out)  # [1, C, h, w], with its graph to θ
            idx = torch.zeros(n_noises, dtype=torch.long, device=trainer.device)
            cam_n = cam[idx]
            out_n = out.select(idx, detach=True)
            per_t = {name: ([], []) for name in estimators}
            for j in range(n_timesteps):
                t = t_all[j].repeat(n_noises)
                eps = torch.randn((n_noises, *latents.shape[1:]), generator=gen)
                draw = trainer.make_draw(cam_n, out_n, latents.detach()[idx], t=t, eps=eps)
                for name, est in estimators.items():
                    g_x = distillation_gradient(draw, est.control(draw).control)
                    per_t[name][1].append(g_x.flatten(1))
                    rows = []
                    for i in range(n_noises):
                        grads = torch.autograd.grad(latents, params, grad_outputs=g_x[i:i + 1],
                                                    retain_graph=True, allow_unused=True)
                        rows.append(sketch(_flat_grad(grads, params)))
                    per_t[name][0].append(torch.stack(rows))
            for name in estimators:
                theta[name].append(torch.stack(per_t[name][0]))
                latent[name].append(torch.stack(per_t[name][1]))
            del latents, out
    return {"theta": {n: torch.stack(v) for n, v in theta.items()},
            "latent": {n: torch.stack(v) for n, v in latent.items()},
            "t": t_all, "azimuth": cams.azimuth.cpu()}


def decomposed_variance(
    trainer: Any,
    estimators: dict[str, Any],
    reference: str,
    n_cameras: int = 6,
    n_timesteps: int = 4,
    n_noises: int = 8,
    seed: int = 0,
    space: str = "theta",
) -> dict[str, dict[str, Any]]:
    """Each estimator's variance at the current θ, split by the law of total variance, and its
    paired ratio to ``reference``'s (one :func:`paired_gradients` design shared by all).

    Args:
        trainer: a :class:`sdlib.train.Trainer` at a frozen θ.
        estimators: name → estimator; must contain ``reference``.
        reference: the estimator the ratios divide by (e.g. ``"SDS"``).
        n_cameras, n_timesteps, n_noises: the design (see :func:`paired_gradients`).
        seed: seed of the draws and of the bootstrap.
        space: ``"theta"`` (the field's gradient, count-sketched) or ``"latent"``.

    Returns:
        name → ``{"total", "noise_only", "between_cameras", "between_timesteps",
        "interaction"}`` (traces, :class:`sdlib.decomposition.Decomposition`) and
        ``"total_ratio"``, ``"noise_only_ratio"``: ``[ratio, standard error]`` to
        ``reference`` (:func:`sdlib.decomposition.paired_ratio`).
    """
    from sdlib.decomposition import decompose, paired_ratio

    if reference not in estimators:
        raise ValueError(f"decomposed_variance: reference {reference!r} is not among the "
                         f"estimators {list(estimators)}")
    if space not in ("theta", "latent"):
        raise ValueError(f"decomposed_variance: space={space!r}; accepted: 'theta', 'latent'")
    grads = paired_gradients(trainer, estimators, n_cameras=n_cameras, n_timesteps=n_timesteps,
                             n_noises=n_noises, seed=seed)
    parts = {name: decompose(g, n_boot=200, seed=seed) for name, g in grads[space].items()}
    out: dict[str, dict[str, Any]] = {}
    for name, d in parts.items():
        out[name] = {key: getattr(d, key) for key in ("total", "noise_only", "between_cameras",
                                                      "between_timesteps", "interaction")}
        for part in ("total", "noise_only"):
            out[name][f"{part}_ratio"] = list(paired_ratio(d, parts[reference], part))
    return out


def batch_variance(
    trainer: Any,
    designs: dict[str, tuple[Any, dict[str, Any]]],
    n_batches: int = 48,
    batch_size: int = 8,
    warmup: dict[str, int] | None = None,
    sketch_dim: int | None = 2**16,
    seed: int = 0,
    own_cells: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Variance per UNet evaluation and seconds per batch of several (estimator, design) pairs.

    Args:
        trainer: a :class:`sdlib.train.Trainer` at a frozen θ.
        designs: name → (estimator, TrainConfig changes such as ``{"antithetic": True,
            "stratified": True}``). Estimators may be shared between designs (a warmed-up μ(t)
            table then serves both). ``{"cell_cv": CellCVConfig(enabled=True)}`` measures the
            cell control variate (:mod:`sdlib.cell_control_variate`): a fresh table, filled by
            the warm-up batches and still learning while measured (used before its update, as
            in training), each batch's θ-gradient from :meth:`Trainer.theta_gradient`.
        n_batches: ``R`` batches per design.
        batch_size: ``B`` UNet evaluations per batch (renders: ``B/2`` when antithetic).
        warmup: name → estimator steps at the frozen θ before measuring (μ(t), a learned φ;
            the cell table's batches for a cell design).
        sketch_dim: θ-gradient count sketch (see :class:`CountSketch`).
        seed: the measured batches of every design start from this generator state.
        own_cells: designs that use the trainer's own cell table as training left it (a run
            with ``cell_cv.enabled``): no fresh table, no warm-up, no update while measured,
            so the run's table (lag included) is what is measured and training is unchanged.

    Returns:
        name → ``{"per_evaluation": B · tr Cov(batch mean), "per_evaluation_se",
        "batch_trace_cov", "ms_per_batch", "mean": [m] batch-mean gradient (sketched),
        "samples": [R, m] per-batch gradients}`` (samples kept for paired ratios).
    """
    from sdlib.distill.common import pullback_loss
    from sdlib.variance import variance_report

    warmup = warmup or {}
    params = _params(trainer)
    sketch = CountSketch(sum(p.numel() for p in params), sketch_dim, seed, trainer.device)
    results: dict[str, dict[str, Any]] = {}
    cuda = trainer.device.type == "cuda"
    unknown = set(own_cells) - set(designs)
    if unknown or (own_cells and getattr(trainer, "cell_cv", None) is None):
        raise ValueError(f"batch_variance: own_cells={tuple(own_cells)} needs designs of that "
                         f"name (unknown: {sorted(unknown)}) and a trainer with its own cell "
                         "table (TrainConfig.cell_cv.enabled)")
    for name, (estimator, changes) in designs.items():
        own = name in own_cells
        cells = own or getattr(changes.get("cell_cv"), "enabled", False)
        saved_cv = getattr(trainer, "cell_cv", None)
        with _sampling(trainer, method=estimator, batch_size=batch_size, **changes):
            if cells and not own:
                trainer.cell_cv = trainer.new_cell_cv(trainer.config.cell_cv)
            try:
                trainer.generator.manual_seed(seed + 7919)
                if cells and not own:
                    for _ in range(warmup.get(name, 0)):
                        trainer.theta_gradient(update_state=False, update_cells=True)
                else:
                    warm_up(trainer, warmup.get(name, 0))
                trainer.generator.manual_seed(seed)
                rows, times = [], []
                for _ in range(n_batches):
                    if cuda:
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    if cells:
                        trainer.theta_gradient(update_state=False, update_cells=not own)
                        g = _flat_grad([p.grad for p in params], params)
                    else:
                        cameras, out, latents = trainer.sample_views()
                        grad, _ = trainer.latent_gradient(cameras, out, latents,
                                                          update_state=False)
                        loss = pullback_loss(latents, grad) / batch_size
                        grads = torch.autograd.grad(loss, params, allow_unused=True)
                        g = _flat_grad(grads, params)
                    if cuda:
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - start)
                    rows.append(sketch(g))
            finally:
                trainer.cell_cv = saved_cv
        samples = torch.stack(rows)
        report = variance_report(samples)
        results[name] = {
            "per_evaluation": batch_size * report.trace_cov,
            "per_evaluation_se": batch_size * report.trace_cov_se,
            "batch_trace_cov": report.trace_cov,
            "ms_per_batch": 1000.0 * float(torch.tensor(times[1:] or times).median()),
            "mean": samples.mean(0),
            "samples": samples,
        }
    return results
