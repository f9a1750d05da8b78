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
(b) all methods at one shared θ (:func:`compare_at_shared_theta`), a pure estimator comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdlib.cameras import sample_cameras
from sdlib.distill.common import pullback_loss
from sdlib.nerf.render import update_occupancy
from sdlib.variance import VarianceReport, variance_report

__all__ = ["theta_gradient", "measure", "compare_at_shared_theta"]


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


def compare_at_shared_theta(
    trainers: dict[str, Any],
    state: dict[str, Tensor] | str | Path,
    n_samples: int = 32,
) -> dict[str, VarianceReport]:
    """All methods' variances at one θ: each trainer's field is loaded with ``state`` first.

    Args:
        trainers: method name → :class:`sdlib.train.Trainer` (sharing priors is fine).
        state: a field ``state_dict``, or a checkpoint path saved by ``Trainer.save_checkpoint``.
        n_samples: samples per method.
    """
    if isinstance(state, (str, Path)):
        state = torch.load(state, map_location="cpu", weights_only=False)["field"]
    reports = {}
    for name, trainer in trainers.items():
        trainer.field.load_state_dict(state)
        if trainer.estimator is not None:  # the occupancy grid must describe the loaded θ
            update_occupancy(trainer.estimator, trainer.field, 0, trainer.config.render)
        reports[name] = measure(trainer, n_samples)
    return reports
