"""Trains ShapeZoo-DPT: ``python -m sdlib.priors.train_depth [--field value ...]``.

A small ViT-backbone ``DPTForDepthEstimation`` regresses inverse depth ``1 / depth`` (0 on the
background) from ShapeZoo renders (64², ``SHAPEZOO_CAMERAS``) with an MSE loss. SteinDreamer
applies the estimator to ``decode(x_t)``, so with ``--noise latent`` a fraction ``noise_prob`` of
the inputs are decoded from ``x_t = α_t z + σ_t ε`` (``z`` the ShapeZoo-SD latent of the render,
``t ~ U[t_min, t_max]``), or with ``--noise pixel`` are ``clip(α_t x + σ_t ε)`` in pixel space;
the target stays the clean inverse depth.
Writes ``<out_dir>/dpt`` (fp32, + ``preprocessor_config.json``) and, with ``--export true``, fp16
weights to ``sdlib/assets/shapezoo/dpt``. On one H100: about 2 minutes.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from sdlib.priors._hub import ASSETS_DIR
from sdlib.priors._train import LossLog, autocast, load_or_render, parse_config
from sdlib.priors.build import DPTArchitecture, build_dpt, save_dpt

__all__ = ["TrainDepthConfig", "train_depth", "pearson_in_mask", "noised_images"]


@dataclass(frozen=True)
class TrainDepthConfig:
    """Configuration of ``python -m sdlib.priors.train_depth``."""

    out_dir: str = "outputs/priors"
    """Working folder: ``dpt/``, ``dpt_log.csv``."""
    export: bool = True
    """Also write fp16 weights to ``export_dir``."""
    export_dir: str = str(ASSETS_DIR / "dpt")
    """Where the shipped weights go."""
    device: str = "cuda"
    """Training device."""
    seed: int = 0
    """Seed of data and initialisation."""
    arch: Literal["shapezoo", "tiny"] = "shapezoo"
    """``shapezoo`` (shipped size) or ``tiny`` (CPU smoke runs)."""
    n_views: int = 32768
    """Rendered views (the last ``n_held_out`` are held out)."""
    n_held_out: int = 1024
    """Held-out views for the Pearson printed at the end."""
    data_cache: str = "outputs/priors/views.pt"
    """Shared rendered-views file (``""``: none)."""
    steps: int = 3000
    """Optimisation steps."""
    batch: int = 128
    """Batch size."""
    lr: float = 5e-4
    """AdamW learning rate, warm-up then cosine decay."""
    pearson_weight: float = 0.2
    """Weight of ``1 − Pearson`` inside the mask, added to the MSE (the MSE alone is dominated
    by the object's silhouette)."""
    noise: Literal["none", "pixel", "latent"] = "latent"
    """Noised inputs: none, pixel-space ``α_t x + σ_t ε``, or decoded from latent ``x_t``."""
    noise_prob: float = 0.3
    """Fraction of noised inputs in each batch."""
    t_min: float = 0.02
    """Smallest noise level (fraction of the 1000 training timesteps)."""
    t_max: float = 0.98
    """Largest noise level."""
    sd_model: str = "outputs/priors/sd"
    """SD folder for ``--noise latent`` (VAE + schedule)."""
    time_budget_s: float = 0.0
    """If > 0, fewer steps when ``steps`` would take longer (measured after 40 steps)."""
    bf16: bool = True
    """bf16 autocast on CUDA."""
    log_every: int = 50
    """Steps between log rows."""
    progress: bool = True
    """Show a tqdm progress bar."""


def pearson_in_mask(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` Pearson correlation of ``pred`` and ``target`` where ``mask > 0.5``.

    All three ``[B, H, W]`` or ``[B, 1, H, W]``.
    """
    b = pred.shape[0]
    p, t, m = (
        pred.reshape(b, -1).float(),
        target.reshape(b, -1).float(),
        (mask.reshape(b, -1) > 0.5).float(),
    )
    cnt = m.sum(1).clamp_min(1)
    pm = (p * m).sum(1, keepdim=True) / cnt[:, None]
    tm = (t * m).sum(1, keepdim=True) / cnt[:, None]
    pc, tc = (p - pm) * m, (t - tm) * m
    # clamp inside the sqrt: a flat prediction or target (or an empty mask) gives r = 0 and a
    # finite gradient, not sqrt'(0) = inf
    return (pc * tc).sum(1) / (pc.pow(2).sum(1) * tc.pow(2).sum(1)).clamp_min(1e-12).sqrt()


def _schedule_abar(device: str) -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float().to(device)


def noised_images(
    images: torch.Tensor,
    t: torch.Tensor,
    mode: str,
    vae=None,
    abar: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noised versions of ``images`` ``[B, 3, H, W]`` at integer timesteps ``t`` ``[B]``.

    ``latent``: ``decode(α_t z + σ_t ε)`` with ``z = sf · E(2x − 1)``;
    ``pixel``: ``clip(α_t x + σ_t ε)`` with ``x`` in [-1, 1].
    ``abar``: ``[1000]`` ᾱ (SD's scaled-linear schedule if omitted).
    """
    abar = _schedule_abar(images.device) if abar is None else abar.to(images.device)
    a = abar[t].sqrt()[:, None, None, None]
    s = (1 - abar[t]).sqrt()[:, None, None, None]
    if mode == "pixel":
        x = images * 2 - 1
        noise = torch.randn(x.shape, device=x.device, generator=generator)
        return ((a * x + s * noise).clamp(-1, 1) + 1) / 2
    if mode != "latent" or vae is None:
        raise ValueError(f"noised_images: mode {mode!r} (accepted 'pixel', 'latent' with a vae)")
    sf = float(vae.config.scaling_factor)
    dtype = next(vae.parameters()).dtype
    z = vae.encode((images * 2 - 1).to(dtype)).latent_dist.mean * sf
    noise = torch.randn(z.shape, device=z.device, generator=generator, dtype=z.dtype)
    zt = a.to(z.dtype) * z + s.to(z.dtype) * noise
    return ((vae.decode(zt / sf).sample.float() + 1) / 2).clamp(0, 1)


def _predict(model, images: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` inverse depth of images in [0, 1] (mean/std 0.5, as the preprocessor)."""
    pred = model(pixel_values=images * 2 - 1).predicted_depth.float().unsqueeze(1)
    return F.interpolate(pred, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def train_depth(cfg: TrainDepthConfig, views_fn=None) -> Path:
    """Trains and saves ShapeZoo-DPT; returns the fp32 folder."""
    from tqdm.auto import tqdm

    dev = cfg.device
    out = Path(cfg.out_dir)
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    data = load_or_render(cfg.n_views, cfg.seed, dev, 64, cfg.data_cache or None, views_fn)
    train, held = data.split(min(cfg.n_held_out, len(data) // 4))
    arch = (
        DPTArchitecture()
        if cfg.arch == "shapezoo"
        else DPTArchitecture(
            hidden_size=32,
            num_layers=4,
            num_heads=2,
            neck_hidden_sizes=(8, 16, 32, 32),
            fusion_hidden_size=16,
        )
    )
    model = build_dpt(arch, seed=cfg.seed).to(dev)
    vae, abar = None, _schedule_abar(dev)
    if cfg.noise == "latent":
        from diffusers import AutoencoderKL, DDPMScheduler

        vae = (
            AutoencoderKL.from_pretrained(cfg.sd_model, subfolder="vae")
            .to(dev)
            .eval()
            .requires_grad_(False)
        )
        abar = DDPMScheduler.from_pretrained(cfg.sd_model, subfolder="scheduler").alphas_cumprod.to(
            dev
        )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    log = LossLog(out, "dpt_log")
    log.csv.unlink(missing_ok=True)
    n = len(train)
    inv_all = train.inverse_depth()
    from sdlib.priors.train_sd import budget_steps

    total, t_loop = cfg.steps, time.time()
    bar = tqdm(total=total, desc="dpt", disable=not cfg.progress)
    step = 0
    while step < total:
        total = budget_steps(total, step, 0, t_loop, cfg.time_budget_s)
        warm = min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / total)))
        idx = torch.randint(0, n, (cfg.batch,), device=dev, generator=gen)
        x, target = train.images[idx], inv_all[idx][:, 0]
        if cfg.noise != "none" and cfg.noise_prob > 0:
            k = int(round(cfg.batch * cfg.noise_prob))
            lo, hi = int(cfg.t_min * 1000), max(int(cfg.t_min * 1000) + 1, int(cfg.t_max * 1000))
            t = torch.randint(lo, hi, (k,), device=dev, generator=gen)
            with torch.no_grad(), autocast(dev, cfg.bf16):
                xn = noised_images(x[:k], t, cfg.noise, vae=vae, abar=abar, generator=gen)
            x = torch.cat([xn.float(), x[k:]])
        with autocast(dev, cfg.bf16):
            pred = _predict(model, x)
        mse = F.mse_loss(pred.float(), target)
        r = pearson_in_mask(pred.float(), target, (target > 0).float())
        loss = mse + cfg.pearson_weight * (1 - r).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train_depth: non-finite loss {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % cfg.log_every == 0 or step == total - 1:
            log.write(step=step, loss=loss.item(), mse=mse.item(), pearson=r.mean().item())
            bar.set_postfix(loss=f"{loss.item():.5f}")
        step += 1
        bar.update(1)
    bar.close()
    model.eval()
    with torch.no_grad():
        r = torch.cat(
            [
                pearson_in_mask(
                    _predict(model, held.images[i : i + 256]),
                    held.inverse_depth(slice(i, i + 256)),
                    held.mask[i : i + 256],
                )
                for i in range(0, len(held), 256)
            ]
        )
    folder = save_dpt(out / "dpt", model, torch.float32)
    if cfg.export:
        save_dpt(cfg.export_dir, model, torch.float16)
    params = sum(p.numel() for p in model.parameters())
    total = time.time() - t_start
    log.summary(
        config=asdict(cfg), params=params, held_out_pearson=r.mean().item(), total_s=round(total, 1)
    )
    print(
        f"ShapeZoo-DPT: {params} params, held-out clean Pearson {r.mean().item():.4f}, "
        f"{total:.0f}s -> {folder}"
    )
    return folder


def main(argv: list[str] | None = None) -> None:
    train_depth(parse_config(TrainDepthConfig, argv, __doc__.splitlines()[0]))


if __name__ == "__main__":
    main()
