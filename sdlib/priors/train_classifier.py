"""Trains the ShapeZoo classifier: ``python -m sdlib.priors.train_classifier [--field value ...]``.

Cross-entropy on ShapeZoo renders (64², ``SHAPEZOO_CAMERAS``), labels = object index, with light
augmentation (pixel noise, brightness/contrast jitter, shifts of a few pixels and, when an SD
folder is given, VAE round trips) so that it also names the objects in generated samples.
Writes ``<out_dir>/classifier`` (fp32) and, with ``--export true``, fp16 weights to
``sdlib/assets/shapezoo/classifier``. On one H100: under a minute.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sdlib.priors._hub import ASSETS_DIR
from sdlib.priors._train import LossLog, autocast, default_prompts, load_or_render, parse_config
from sdlib.priors.classifier import ClassifierConfig, ShapeZooClassifier

__all__ = ["TrainClassifierConfig", "train_classifier", "augment"]


@dataclass(frozen=True)
class TrainClassifierConfig:
    """Configuration of ``python -m sdlib.priors.train_classifier``."""

    out_dir: str = "outputs/priors"
    """Working folder: ``classifier/``, ``classifier_log.csv``."""
    export: bool = True
    """Also write fp16 weights to ``export_dir``."""
    export_dir: str = str(ASSETS_DIR / "classifier")
    """Where the shipped weights go."""
    device: str = "cuda"
    """Training device."""
    seed: int = 0
    """Seed of data and initialisation."""
    n_views: int = 32768
    """Rendered views (the last ``n_held_out`` are held out)."""
    n_held_out: int = 2048
    """Held-out views for the accuracy printed at the end."""
    data_cache: str = "outputs/priors/views.pt"
    """Shared rendered-views file (``""``: none)."""
    steps: int = 2000
    """Optimisation steps."""
    batch: int = 256
    """Batch size."""
    lr: float = 2e-3
    """AdamW learning rate, cosine decay."""
    widths: tuple[int, ...] = (32, 64, 96, 128)
    """Channels of the CNN stages."""
    sd_model: str = ""
    """SD folder whose VAE gives round-trip augmentations (``""``: none)."""
    time_budget_s: float = 0.0
    """If > 0, fewer steps when ``steps`` would take longer (measured after 40 steps)."""
    bf16: bool = True
    """bf16 autocast on CUDA."""
    log_every: int = 50
    """Steps between log rows."""
    progress: bool = True
    """Show a tqdm progress bar."""


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Pixel noise, brightness / contrast jitter and shifts of up to 3 pixels (white fill)."""
    b, dev = x.shape[0], x.device
    r = lambda *s: torch.rand(*s, device=dev, generator=gen)  # noqa: E731
    x = (x - 0.5) * (0.85 + 0.3 * r(b, 1, 1, 1)) + 0.5 + 0.1 * (r(b, 1, 1, 1) - 0.5)
    x = x + 0.06 * r(b, 1, 1, 1) * torch.randn(x.shape, device=dev, generator=gen)
    shift = torch.randint(
        -3, 4, (2,), generator=torch.Generator().manual_seed(int(r(1).item() * 1e6))
    )
    x = F.pad(x, (3, 3, 3, 3), value=1.0)
    h, w = x.shape[-2] - 6, x.shape[-1] - 6
    x = x[..., 3 + shift[0] : 3 + shift[0] + h, 3 + shift[1] : 3 + shift[1] + w]
    return x.clamp(0, 1)


def train_classifier(
    cfg: TrainClassifierConfig, views_fn=None, prompts: list[str] | None = None
) -> Path:
    """Trains and saves the classifier; returns the fp32 folder."""
    from tqdm.auto import tqdm

    dev = cfg.device
    out = Path(cfg.out_dir)
    torch.manual_seed(cfg.seed)
    prompts = list(prompts) if prompts is not None else default_prompts()
    t_start = time.time()
    data = load_or_render(cfg.n_views, cfg.seed, dev, 64, cfg.data_cache or None, views_fn)
    train, held = data.split(min(cfg.n_held_out, len(data) // 4))
    vae = None
    if cfg.sd_model:
        from diffusers import AutoencoderKL

        vae = (
            AutoencoderKL.from_pretrained(cfg.sd_model, subfolder="vae")
            .to(dev)
            .eval()
            .requires_grad_(False)
        )
    net = ShapeZooClassifier(
        ClassifierConfig(class_names=tuple(prompts), widths=tuple(cfg.widths))
    ).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.05)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    log = LossLog(out, "classifier_log")
    log.csv.unlink(missing_ok=True)
    n = len(train)
    from sdlib.priors.train_sd import budget_steps

    total, t_loop = cfg.steps, time.time()
    bar = tqdm(total=total, desc="classifier", disable=not cfg.progress)
    step = 0
    while step < total:
        total = budget_steps(total, step, 0, t_loop, cfg.time_budget_s)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
        idx = torch.randint(0, n, (cfg.batch,), device=dev, generator=gen)
        x, y = train.images[idx], train.object_index[idx]
        if vae is not None:
            k = cfg.batch // 2
            with torch.no_grad(), autocast(dev, cfg.bf16):
                rec = vae.decode(vae.encode(x[:k] * 2 - 1).latent_dist.sample()).sample.float()
            x = torch.cat([((rec + 1) / 2).clamp(0, 1), x[k:]])
        x = augment(x, gen)
        with autocast(dev, cfg.bf16):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=0.05)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train_classifier: non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.log_every == 0 or step == total - 1:
            acc = (logits.argmax(-1) == y).float().mean().item()
            log.write(step=step, loss=loss.item(), train_acc=acc)
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.3f}")
        step += 1
        bar.update(1)
    bar.close()
    net.eval()
    with torch.no_grad():
        pred = torch.cat(
            [net(held.images[i : i + 512]).argmax(-1) for i in range(0, len(held), 512)]
        )
    held_acc = (pred == held.object_index).float().mean().item()
    folder = out / "classifier"
    net.save_pretrained(folder, dtype=torch.float32)
    if cfg.export:
        net.save_pretrained(cfg.export_dir, dtype=torch.float16)
    params = sum(p.numel() for p in net.parameters())
    total = time.time() - t_start
    log.summary(
        config=asdict(cfg), params=params, held_out_accuracy=held_acc, total_s=round(total, 1)
    )
    print(
        f"classifier: {params} params, held-out accuracy {held_acc:.4f}, {total:.0f}s -> {folder}"
    )
    return folder


def main(argv: list[str] | None = None) -> None:
    train_classifier(parse_config(TrainClassifierConfig, argv, __doc__.splitlines()[0]))


if __name__ == "__main__":
    main()
