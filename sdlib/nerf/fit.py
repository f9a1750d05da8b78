"""Reconstruction: fit a :class:`~sdlib.nerf.field.RadianceField` to posed images.

Each step draws ``rays_per_step`` random pixels from all training views, renders them and
minimises the mean squared error to the true colours (Adam, learning rate decayed
exponentially to ``final_lr_factor`` of its start). On CUDA the occupancy grid is updated
before every render (:func:`~sdlib.nerf.render.update_occupancy`). Held-out PSNR is measured
every ``eval_every`` steps on full images.

>>> import torch
>>> from sdlib.cameras import eval_cameras
>>> from sdlib.nerf.hashgrid import HashGridConfig
>>> cams = eval_cameras(2)
>>> images = torch.ones(2, 8, 8, 3)
>>> cfg = FitConfig(steps=2, rays_per_step=64, eval_every=2,
...                 field=FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=10)),
...                 render=RenderConfig(n_samples=8, compute_normals=False))
>>> result = fit_views(images, cams, images, cams, cfg)
>>> len(result.history)
1
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from sdlib.cameras import Cameras, get_rays
from sdlib.nerf.field import FieldConfig, RadianceField
from sdlib.nerf.render import (
    RenderConfig,
    make_estimator,
    render_cameras,
    render_rays,
    update_occupancy,
)

__all__ = ["FitConfig", "FitRecord", "FitResult", "fit_views", "psnr"]


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit_views`."""

    steps: int = 2000
    """Optimisation steps."""
    rays_per_step: int = 4096
    """Random training pixels per step."""
    lr: float = 1e-2
    """Adam learning rate at the start (hash grid and MLPs alike, as Instant-NGP)."""
    final_lr_factor: float = 0.1
    """The learning rate decays exponentially to ``lr * final_lr_factor`` at the last step."""
    eval_every: int = 100
    """Held-out PSNR every this many steps (and at the last step)."""
    use_occgrid: bool = True
    """Use nerfacc's occupancy grid on CUDA (ignored on CPU)."""
    random_background: bool = True
    """With masks given: composite each training ray on a random colour, render with the same
    colour (Instant-NGP's trick; supervises opacity as a mask would)."""
    seed: int = 0
    """Seed of the field's initialisation and of the ray draws."""
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    """The radiance field."""
    render: RenderConfig = dataclasses.field(
        default_factory=lambda: RenderConfig(compute_normals=False)
    )
    """The renderer during training (held-out renders use it without jitter)."""


@dataclass
class FitRecord:
    """One evaluation point of the fit."""

    step: int
    seconds: float
    """Wall-clock seconds since the start, evaluation time excluded."""
    train_loss: float
    test_psnr: float


@dataclass
class FitResult:
    """The fitted field, its occupancy grid (or None) and the evaluation history."""

    field: RadianceField
    estimator: object | None
    history: list[FitRecord]
    seconds: float
    """Total training seconds (evaluation excluded)."""


def psnr(prediction: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: ``-10 log10 MSE``."""
    mse = torch.mean((prediction.float() - target.float()) ** 2).item()
    return -10.0 * math.log10(max(mse, 1e-12))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _evaluate(field, estimator, cameras: Cameras, images: Tensor, config: RenderConfig) -> float:
    field.eval()
    out = render_cameras(
        field, cameras, images.shape[1], images.shape[2], estimator=estimator,
        config=replace(config, compute_normals=False, stratified=False),
    )
    field.train()
    return psnr(out.rgb.clamp(0, 1), images)


def fit_views(
    images: Tensor,
    cameras: Cameras,
    test_images: Tensor,
    test_cameras: Cameras,
    config: FitConfig = FitConfig(),
    *,
    masks: Tensor | None = None,
    progress: bool = False,
) -> FitResult:
    """Fits a radiance field to posed images by photometric MSE.

    Args:
        images: ``[N, H, W, 3]`` training images in [0, 1], on the cameras' device.
        cameras: the ``N`` training cameras.
        test_images: ``[M, H', W', 3]`` held-out images.
        test_cameras: their ``M`` cameras.
        config: settings.
        masks: optional ``[N, H, W]`` object masks of the training images (enables
            ``config.random_background``; the images' background must then be replaceable:
            pixels outside the mask are ignored).
        progress: print one line per evaluation.

    Returns:
        :class:`FitResult` with the trained field (in eval mode) and the PSNR history.
    """
    if images.dim() != 4 or images.shape[-1] != 3 or images.shape[0] != len(cameras):
        raise ValueError(
            f"fit_views: images {tuple(images.shape)} must be [N, H, W, 3] with N = "
            f"{len(cameras)} cameras"
        )
    device = images.device
    torch.manual_seed(config.seed)
    field_model = RadianceField(config.field).to(device)
    field_model.train()
    estimator = None
    if config.use_occgrid and device.type == "cuda":
        estimator = make_estimator(field_model, config.render, device)
    origins, directions = get_rays(cameras, images.shape[1], images.shape[2])
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    colors = images.reshape(-1, 3)
    flat_masks = None
    if masks is not None and config.random_background:
        if masks.shape != images.shape[:3]:
            raise ValueError(
                f"fit_views: masks {tuple(masks.shape)} must be [N, H, W] = "
                f"{tuple(images.shape[:3])}"
            )
        flat_masks = masks.reshape(-1) > 0.5
    optimizer = torch.optim.Adam(
        field_model.parameters(), lr=config.lr, betas=(0.9, 0.99), eps=1e-15
    )
    gamma = config.final_lr_factor ** (1.0 / max(config.steps, 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    history: list[FitRecord] = []
    train_seconds = 0.0
    _sync(device)
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        if estimator is not None:
            update_occupancy(estimator, field_model, step - 1, config.render)
        index = torch.randint(
            0, colors.shape[0], (config.rays_per_step,), device=device, generator=generator
        )
        target, background = colors[index], None
        if flat_masks is not None:
            background = torch.rand(
                config.rays_per_step, 3, device=device, generator=generator
            )
            target = torch.where(flat_masks[index, None], target, background)
        out = render_rays(
            field_model, origins[index], directions[index], estimator=estimator,
            config=config.render, generator=generator, background=background,
        )
        loss = torch.mean((out.rgb - target) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % config.eval_every == 0 or step == config.steps:
            _sync(device)
            train_seconds += time.perf_counter() - start
            value = _evaluate(field_model, estimator, test_cameras, test_images, config.render)
            history.append(FitRecord(step, train_seconds, loss.item(), value))
            if progress:
                print(f"step {step:5d}  {train_seconds:7.1f} s  loss {loss.item():.5f}  "
                      f"test PSNR {value:.2f} dB", flush=True)
            start = time.perf_counter()
    field_model.eval()
    return FitResult(field_model, estimator, history, train_seconds)
