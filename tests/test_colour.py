"""Colours under score distillation (issue 11.4, notes/colour.md): the decoded-target pull-back.

ShapeZoo-SD's UNet was trained on noisy VAE posterior samples, so an off-palette colour (a
magenta teddy bear) is nearly invisible through the encoder; pulling the render towards the
decoded target ``D(x − grad)`` restores it.
"""

from __future__ import annotations

import pytest
import torch

from sdlib.distill.common import (
    TimestepConfig,
    add_noise,
    decoded_pullback_loss,
    pullback_loss,
    sample_timesteps,
    weighting,
)


def test_decoded_pullback_gradient_is_image_minus_decoded_target() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=g)

    def decode(z):  # a linear "decoder", [B, 4, h, w] -> [B, 3, h, w]
        return torch.einsum("bchw,cd->bdhw", z, w)

    images = torch.rand(2, 3, 5, 5, generator=g, requires_grad=True)
    latents = torch.randn(2, 4, 5, 5, generator=g)
    grad = torch.randn(2, 4, 5, 5, generator=g)
    decoded_pullback_loss(images, latents, grad, decode).backward()
    torch.testing.assert_close(images.grad, images.detach() - decode(latents - grad))
    with pytest.raises(FloatingPointError):
        decoded_pullback_loss(images, latents, grad * float("nan"), decode)


def test_decoded_pullback_restores_a_colour_the_encoder_pullback_barely_sees() -> None:
    """At a bear recoloured magenta, the mean image-space SDS step of the decoded pull-back points
    back to brown (cosine > 0.9); through the encoder it mostly darkens every channel."""
    from sdlib.cameras import eval_cameras
    from sdlib.priors import DiffusionPrior
    from sdlib.shapezoo import render

    sd = DiffusionPrior(model="shapezoo", device="cpu")
    prompt = "a brown teddy bear"
    cams = eval_cameras(4)
    truth = render(prompt, cams, 64, 64)
    mask, inside = truth.mask[:, None], truth.mask > 0.5
    brown = truth.rgb.permute(0, 3, 1, 2)
    magenta = (brown + torch.tensor([0.08, -0.03, 0.09]).view(1, 3, 1, 1) * mask).clamp(0, 1)
    want = (brown - magenta).permute(0, 2, 3, 1)[inside].mean(0)
    text = sd.text_embeddings(prompt).for_views(cams.view_indices())
    timesteps, abar = TimestepConfig(), sd.alphas_cumprod
    cosine = {}
    for name in ("latent", "decoded"):
        g = torch.Generator().manual_seed(0)
        step = torch.zeros(3)
        for _ in range(8):
            x = magenta.clone().requires_grad_(True)
            z = sd.encode_images(x)
            t = sample_timesteps(timesteps, 0, 4, sd.num_train_timesteps, generator=g)
            eps = torch.randn(z.shape, generator=g)
            with torch.no_grad():
                eps_hat = sd.predict_noise(add_noise(z.detach(), eps, abar, t), t, text, 7.5)
            grad = weighting(timesteps, abar, t).view(-1, 1, 1, 1) * (eps_hat - eps)
            loss = (pullback_loss(z, grad) if name == "latent"
                    else decoded_pullback_loss(x, z, grad, sd.decode_latents))
            (gx,) = torch.autograd.grad(loss, x)
            step -= gx.permute(0, 2, 3, 1)[inside].mean(0)
        cosine[name] = float(torch.nn.functional.cosine_similarity(step, want, dim=0))
    assert cosine["decoded"] > 0.9, cosine
    assert cosine["decoded"] > cosine["latent"] + 0.2, cosine


def test_trainer_steps_with_the_decoded_pullback_and_refuses_a_bad_value(tiny_prior_folders,
                                                                          tmp_path) -> None:
    from dataclasses import replace

    from sdlib.nerf.field import FieldConfig
    from sdlib.nerf.hashgrid import HashGridConfig
    from sdlib.nerf.render import RenderConfig
    from sdlib.train import Trainer, shapezoo_config

    root = tiny_prior_folders
    cfg = replace(
        shapezoo_config("a red ball", "sds"), prior=str(root / "sd"), depth=str(root / "dpt"),
        device="cpu", steps=2, batch_size=2, render_size=16, eval_every=0, checkpoint_every=0,
        turntable_frames=0, mesh_resolution=0, pullback="decoded", antithetic=True,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=8, base_resolution=4)),
        render=RenderConfig(n_samples=12, chunk=4096),
    )
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.field.parameters()]
    record = trainer.step()
    assert record["loss"] == record["loss"]
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.field.parameters()))
    with pytest.raises(ValueError, match="pullback"):
        replace(cfg, pullback="encoder")
