"""Trains ShapeZoo-SD from scratch: ``python -m sdlib.priors.train_sd [--field value ...]``.

Two stages on ShapeZoo renders (64², objects from ``SHAPEZOO_CAMERAS`` with view-suffixed captions,
scenes from ``SCENE_CAMERAS``):

1. **KL autoencoder** (``AutoencoderKL``, downscale 4 → 16×16×4 latents): L1 + MSE reconstruction
   + ``kl_weight`` · KL; then ``scaling_factor = 1 / std(latents)`` as SD does.
2. **UNet + CLIP text encoder, jointly**: ``L = ||ε − ε_θ(α_t z + σ_t ε, t, c)||²`` (or v),
   ``z`` the posterior mean of the autoencoder (``unet_latents``; SD uses posterior samples),
   ``t ~ U{0..999}``, SD's scaled-linear schedule (DESIGN.md §7), captions dropped to ``""`` 10% of
   the time (classifier-free guidance); EMA of the UNet and text encoder weights is what is saved.

Data: the shared ShapeZoo renders of :func:`sdlib.priors._train.default_views_fn`, objects and
(a quarter of the views) scenes seen from inside, captioned with their prompt alone.

After stage 1 the autoencoder and scheduler are written to ``<out_dir>/sd_vae`` (with a ``READY``
file), so the classifier and DPT commands can train at the same time as stage 2.
Writes a ``StableDiffusionPipeline`` folder to ``<out_dir>/sd`` (fp32) and, with ``--export true``,
fp16 safetensors to ``sdlib/assets/shapezoo/sd`` (the ``"shapezoo"`` short name), a loss log
(``log.csv``, ``log.json``) and checkpoints (``ckpt.pt``; rerun the command to resume).
On one H100: about 5 minutes.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from sdlib.priors._hub import ASSETS_DIR
from sdlib.priors._train import (
    LossLog,
    autocast,
    default_prompts,
    folder_size_mb,
    load_or_render,
    parse_config,
)
from sdlib.priors.build import SDArchitecture, build_sd_components, save_sd

__all__ = ["TrainSDConfig", "train_sd", "TINY_SD"]

TINY_SD = SDArchitecture(
    vae_channels=(16, 16),
    unet_channels=(16, 32),
    unet_layers_per_block=1,
    attention_head_dim=8,
    text_hidden=32,
    text_layers=1,
    text_heads=2,
    norm_groups=8,
)
"""A tiny architecture for CPU smoke runs and tests."""


@dataclass(frozen=True)
class TrainSDConfig:
    """Configuration of ``python -m sdlib.priors.train_sd``."""

    out_dir: str = "outputs/priors"
    """Working folder: ``sd/`` (fp32 model), ``sd_log.csv``, ``sd_ckpt.pt``."""
    export: bool = True
    """Also write fp16 weights to ``export_dir``."""
    export_dir: str = str(ASSETS_DIR / "sd")
    """Where the shipped weights go (the ``"shapezoo"`` short name resolves here)."""
    device: str = "cuda"
    """Training device."""
    seed: int = 0
    """Seed of the data and the initialisation."""
    arch: Literal["shapezoo", "tiny"] = "shapezoo"
    """Model sizes: ``shapezoo`` (the shipped model) or ``tiny`` (CPU smoke runs)."""
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    """UNet target."""
    n_views: int = 32768
    """Rendered training views (64², each with a view-suffixed caption)."""
    data_cache: str = "outputs/priors/views.pt"
    """File to keep the rendered views in, shared by the three training commands (``""``: none)."""
    vae_steps: int = 2500
    """Autoencoder steps."""
    vae_batch: int = 128
    """Autoencoder batch size."""
    vae_time_budget_s: float = 0.0
    """If > 0, fewer VAE steps when ``vae_steps`` would take longer (measured after 40 steps)."""
    vae_lr: float = 5e-4
    """Autoencoder learning rate (AdamW, cosine decay)."""
    kl_weight: float = 1e-6
    """Weight of the KL term."""
    unet_latents: Literal["mean", "sample"] = "mean"
    """What the UNet learns the distribution of: the autoencoder's posterior ``mean`` (what
    ``DiffusionPrior.encode_images`` gives the distillation) or posterior ``sample`` s, as SD does.
    SD's posterior noise is tiny, so the two agree there; ShapeZoo-SD's was about half the latent
    spread. The shipped priors use ``mean``. It was meant to let the distillation correct colours
    through the encoder, and it did not (notes/colour.md, last section)."""
    unet_steps: int = 7000
    """UNet + text encoder steps."""
    unet_batch: int = 256
    """UNet batch size."""
    unet_time_budget_s: float = 0.0
    """If > 0, fewer UNet steps when ``unet_steps`` would take longer (measured after 40 steps)."""
    unet_lr: float = 4e-4
    """UNet + text encoder learning rate (AdamW, warm-up then cosine decay)."""
    caption_dropout: float = 0.1
    """Probability of the empty caption (classifier-free guidance)."""
    ema_decay: float = 0.999
    """EMA decay of the saved UNet / text encoder weights."""
    bf16: bool = True
    """bf16 autocast on CUDA."""
    log_every: int = 50
    """Steps between log rows."""
    ckpt_every: int = 1000
    """Steps between checkpoints."""
    resume: bool = True
    """Resume from ``sd_ckpt.pt`` in ``out_dir`` if present."""
    progress: bool = True
    """Show tqdm progress bars."""


def _lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    torch._foreach_lerp_(
        list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay
    )


_BUDGET_T: dict[int, tuple[int, float]] = {}


def budget_steps(total: int, step: int, start_step: int, t_start: float, budget_s: float) -> int:
    """Shrinks ``total`` so that the loop (started at ``t_start``) fits ``budget_s`` seconds.

    The speed is measured from step ``start + 20`` (after warm-up: the first steps include CUDA /
    cuDNN start-up and would overstate the cost) and re-measured every 100 steps over the last
    window, so a loop that slows down (another training command sharing the GPU) still ends
    within its budget; ``total`` only ever shrinks.
    """
    if budget_s <= 0:
        return total
    since = step - start_step
    if since == 20:
        _BUDGET_T[0] = (step, time.time())
    if since < 60 or (since - 60) % 100 or 0 not in _BUDGET_T:
        return total
    ref_step, ref_t = _BUDGET_T[0]
    now = time.time()
    per_step = (now - ref_t) / max(1, step - ref_step)
    _BUDGET_T[0] = (step, now)
    left = budget_s - (now - t_start)
    fit = step + int(max(0.0, left) / per_step)
    if since == 60 or fit < total:
        print(
            f"time budget {budget_s:.0f}s at {per_step * 1e3:.1f} ms/step: "
            f"{total} -> {max(step + 1, min(total, fit))} steps"
        )
    return max(step + 1, min(total, fit))


def train_sd(cfg: TrainSDConfig, views_fn=None, prompts: list[str] | None = None) -> Path:
    """Trains and saves ShapeZoo-SD; returns the fp32 folder. ``views_fn``, ``prompts``: tests."""
    from tqdm.auto import tqdm

    dev = cfg.device
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    prompts = list(prompts) if prompts is not None else default_prompts()
    arch = (
        SDArchitecture(prediction_type=cfg.prediction_type)
        if cfg.arch == "shapezoo"
        else TINY_SD.__class__(**{**asdict(TINY_SD), "prediction_type": cfg.prediction_type})
    )
    comps = build_sd_components(arch, prompts, seed=cfg.seed)
    vae, unet, te, tok, sched = (
        comps[k] for k in ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
    )
    for m in (vae, unet, te):
        m.to(dev)
    log = LossLog(out, "sd_log")
    ckpt_path = out / "sd_ckpt.pt"
    t_start = time.time()
    data = load_or_render(
        cfg.n_views, cfg.seed, dev, arch.image_size, cfg.data_cache or None, views_fn
    )
    t_render = time.time() - t_start
    n = len(data)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)

    state = {"stage": "vae", "step": 0}
    ema_unet, ema_te = (
        copy.deepcopy(unet).requires_grad_(False),
        copy.deepcopy(te).requires_grad_(False),
    )
    opt_vae = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    opt = torch.optim.AdamW(
        list(unet.parameters()) + list(te.parameters()), lr=cfg.unet_lr, weight_decay=0.01
    )
    if cfg.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        for name, mod in (
            ("vae", vae),
            ("unet", unet),
            ("te", te),
            ("ema_unet", ema_unet),
            ("ema_te", ema_te),
            ("opt_vae", opt_vae),
            ("opt", opt),
        ):
            mod.load_state_dict(ck[name])
        state = ck["state"]
        vae.register_to_config(scaling_factor=ck["scaling_factor"])
        print(f"resumed from {ckpt_path}: {state}")
    else:
        log.csv.unlink(missing_ok=True)

    def checkpoint() -> None:
        torch.save(
            {
                "vae": vae.state_dict(),
                "unet": unet.state_dict(),
                "te": te.state_dict(),
                "ema_unet": ema_unet.state_dict(),
                "ema_te": ema_te.state_dict(),
                "opt_vae": opt_vae.state_dict(),
                "opt": opt.state_dict(),
                "state": state,
                "scaling_factor": float(vae.config.scaling_factor),
            },
            ckpt_path,
        )

    # ---------------------------------------------------------------- stage 1: VAE
    t0 = time.time()
    if state["stage"] == "vae":
        vae.train()
        total, start, t_loop = cfg.vae_steps, state["step"], time.time()
        bar = tqdm(total=total, initial=start, desc="vae", disable=not cfg.progress)
        step = start
        while step < total:
            total = budget_steps(total, step, start, t_loop, cfg.vae_time_budget_s)
            for g in opt_vae.param_groups:
                g["lr"] = cfg.vae_lr * _lr(step, total, 100)
            idx = torch.randint(0, n, (cfg.vae_batch,), device=dev, generator=gen)
            x = data.images[idx] * 2 - 1
            with autocast(dev, cfg.bf16):
                post = vae.encode(x).latent_dist
                rec = vae.decode(post.sample()).sample
            rec = rec.float()
            mse = F.mse_loss(rec, x)
            loss = F.l1_loss(rec, x) + mse + cfg.kl_weight * post.kl().mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"train_sd: non-finite VAE loss at step {step}")
            opt_vae.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt_vae.step()
            if step % cfg.log_every == 0 or step == total - 1:
                psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-12))  # range 2 in [-1, 1]
                log.write(stage="vae", step=step, loss=loss.item(), psnr=psnr)
                bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{psnr:.1f}")
            state["step"] = step + 1
            if (step + 1) % cfg.ckpt_every == 0:
                checkpoint()
            step += 1
            bar.update(1)
        bar.close()
        vae.eval()
        with torch.no_grad(), autocast(dev, cfg.bf16):
            zs = torch.cat(
                [
                    vae.encode(data.images[i : i + 512] * 2 - 1).latent_dist.mean.float()
                    for i in range(0, min(n, 4096), 512)
                ]
            )
        vae.register_to_config(scaling_factor=float(1.0 / zs.std()))
        state = {"stage": "unet", "step": 0}
        checkpoint()
    t_vae = time.time() - t0
    vae.eval().requires_grad_(False)
    sf = float(vae.config.scaling_factor)
    # the autoencoder is final from here on: the classifier and DPT commands may start from it
    # (``--sd_model <out_dir>/sd_vae``) while the UNet trains (scripts/train_priors.sh)
    stage1 = out / "sd_vae"
    vae.save_pretrained(stage1 / "vae")
    sched.save_pretrained(stage1 / "scheduler")
    (stage1 / "READY").write_text(f"scaling_factor {sf}\n")

    # ---------------------------------------------------------------- latents, tokens
    with torch.no_grad(), autocast(dev, cfg.bf16):
        mean, std = [], []
        for i in range(0, n, 512):
            post = vae.encode(data.images[i : i + 512] * 2 - 1).latent_dist
            mean.append(post.mean.float())
            std.append(post.std.float())
    lat_mean, lat_std = torch.cat(mean), torch.cat(std)
    ids = tok(
        data.captions,
        padding="max_length",
        max_length=arch.max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(dev)
    empty = tok(
        [""], padding="max_length", max_length=arch.max_length, return_tensors="pt"
    ).input_ids.to(dev)
    abar = sched.alphas_cumprod.to(dev)

    # ---------------------------------------------------------------- stage 2: UNet + text
    t0 = time.time()
    unet.train()
    te.train()
    params = list(unet.parameters()) + list(te.parameters())
    total, start, t_loop = cfg.unet_steps, state["step"], time.time()
    bar = tqdm(total=total, initial=start, desc="unet+text", disable=not cfg.progress)
    step = start
    while step < total:
        total = budget_steps(total, step, start, t_loop, cfg.unet_time_budget_s)
        for g in opt.param_groups:
            g["lr"] = cfg.unet_lr * _lr(step, total, 250)
        idx = torch.randint(0, n, (cfg.unet_batch,), device=dev, generator=gen)
        z0 = lat_mean[idx]
        if cfg.unet_latents == "sample":
            z0 = z0 + lat_std[idx] * torch.randn(z0.shape, device=dev, generator=gen)
        z0 = z0 * sf
        tokens = ids[idx]
        drop = torch.rand(cfg.unet_batch, device=dev, generator=gen) < cfg.caption_dropout
        tokens = torch.where(drop[:, None], empty.expand_as(tokens), tokens)
        t = torch.randint(
            0, sched.config.num_train_timesteps, (cfg.unet_batch,), device=dev, generator=gen
        )
        eps = torch.randn(z0.shape, device=dev, generator=gen)
        a = abar[t].sqrt()[:, None, None, None]
        s = (1 - abar[t]).sqrt()[:, None, None, None]
        zt = a * z0 + s * eps
        target = eps if arch.prediction_type == "epsilon" else a * eps - s * z0
        with autocast(dev, cfg.bf16):
            cond = te(tokens)[0]
            pred = unet(zt, t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred.float(), target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train_sd: non-finite UNet loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        _ema_update(ema_unet, unet, decay)
        _ema_update(ema_te, te, decay)
        if step % cfg.log_every == 0 or step == total - 1:
            log.write(stage="unet", step=step, loss=loss.item(), psnr="")
            bar.set_postfix(loss=f"{loss.item():.4f}")
        state["step"] = step + 1
        if (step + 1) % cfg.ckpt_every == 0:
            checkpoint()
        step += 1
        bar.update(1)
    bar.close()
    t_unet = time.time() - t0
    state = {"stage": "done", "step": step}
    checkpoint()

    final = {
        "tokenizer": tok,
        "text_encoder": ema_te.eval(),
        "vae": vae,
        "unet": ema_unet.eval(),
        "scheduler": sched,
    }
    folder = save_sd(out / "sd", final, torch.float32)
    sizes = {}
    if cfg.export:
        save_sd(cfg.export_dir, final, torch.float16)
        sizes["export_mb"] = round(folder_size_mb(cfg.export_dir), 2)
    n_params = {
        k: sum(p.numel() for p in final[k].parameters()) for k in ("text_encoder", "vae", "unet")
    }
    log.summary(
        config=asdict(cfg),
        params=n_params,
        unet_steps_done=step,
        scaling_factor=sf,
        render_s=round(t_render, 1),
        vae_s=round(t_vae, 1),
        unet_s=round(t_unet, 1),
        total_s=round(time.time() - t_start, 1),
        **sizes,
    )
    print(
        f"ShapeZoo-SD: params {n_params}, render {t_render:.0f}s, vae {t_vae:.0f}s, "
        f"unet {t_unet:.0f}s -> {folder}" + (f" and {cfg.export_dir}" if cfg.export else "")
    )
    return folder


def main(argv: list[str] | None = None) -> None:
    train_sd(parse_config(TrainSDConfig, argv, __doc__.splitlines()[0]))


if __name__ == "__main__":
    main()
