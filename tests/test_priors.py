"""Tests of sdlib.priors: loaders on tiny random SD (ε and v) and DPT models, guidance convention,
v → ε conversion, differentiability, the offline error, training smoke runs, shipped weights."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import pytest
import torch

from sdlib.cameras import VIEW_SUFFIXES, view_prompt
from sdlib.priors import (
    DepthPrior,
    DepthPriorConfig,
    DiffusionPrior,
    DiffusionPriorConfig,
    PriorNotFoundError,
)
from sdlib.priors._hub import ASSETS_DIR
from sdlib.priors.build import DPTArchitecture, build_dpt, build_sd_components, save_dpt, save_sd
from sdlib.priors.train_sd import TINY_SD

PROMPTS = ["a red ball", "a blue cube", "a snowman with a carrot nose", "a green cone"]


@dataclass
class _FakeViews:
    images: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    object_index: torch.Tensor
    view_index: torch.Tensor
    captions: list[str]


def fake_views(batch_size: int, generator: torch.Generator, device: str, size: int) -> _FakeViews:
    """Stand-in for ShapeZoo's sample_views: coloured discs with a spherical depth."""
    obj = torch.randint(0, len(PROMPTS), (batch_size,), generator=generator)
    view = torch.randint(0, 4, (batch_size,), generator=generator)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r2 = xx**2 + yy**2
    mask = (r2 < 0.5).float()[None, None].expand(batch_size, 1, size, size)
    colours = torch.tensor([[1, 0, 0], [0, 0, 1], [0.9, 0.9, 0.9], [0, 1, 0]], dtype=torch.float32)
    img = torch.where(mask > 0, colours[obj][:, :, None, None], torch.ones(1, 3, 1, 1))
    depth = (1.75 - (0.5 - r2).clamp_min(0).sqrt())[None, None] * mask
    caps = [view_prompt(PROMPTS[o], VIEW_SUFFIXES[v]) for o, v in zip(obj.tolist(), view.tolist())]
    return _FakeViews(
        img.to(device), depth.to(device), mask.to(device), obj.to(device), view.to(device), caps
    )


@pytest.fixture(scope="module")
def sd_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    out = {}
    for pt in ("epsilon", "v_prediction"):
        comps = build_sd_components(replace(TINY_SD, prediction_type=pt), PROMPTS, seed=0)
        out[pt] = save_sd(root / pt, comps, torch.float32)
    return out


@pytest.fixture(scope="module")
def eps_prior(sd_folders):
    return DiffusionPrior(DiffusionPriorConfig(model=str(sd_folders["epsilon"])))


@pytest.fixture(scope="module")
def v_prior(sd_folders):
    return DiffusionPrior(DiffusionPriorConfig(model=str(sd_folders["v_prediction"])))


@pytest.fixture(scope="module")
def dpt_folder(tmp_path_factory):
    arch = DPTArchitecture(
        hidden_size=32,
        num_layers=4,
        num_heads=2,
        neck_hidden_sizes=(8, 16, 32, 32),
        fusion_hidden_size=16,
    )
    return save_dpt(tmp_path_factory.mktemp("dpt") / "dpt", build_dpt(arch), torch.float32)


def test_import_sdlib_priors_is_light():
    import subprocess
    import sys

    code = (
        "import sys, sdlib, sdlib.priors; "
        "bad = [m for m in ('diffusers', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("cls", [DiffusionPrior, DepthPrior])
def test_offline_error_names_what_was_looked_for(cls, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(PriorNotFoundError) as info:
        cls(model="nonexistent-owner/nonexistent-model-xyz")
    msg = str(info.value)
    assert time.time() - t0 < 10
    assert "nonexistent-owner/nonexistent-model-xyz" in msg
    assert "offline" in msg and "HF_HUB_OFFLINE" in msg
    assert "shapezoo" in msg and "local folder" in msg
    assert "huggingface-cli download" in msg


def test_missing_local_folder_error(tmp_path):
    with pytest.raises(PriorNotFoundError, match="no such local folder"):
        DiffusionPrior(model=str(tmp_path / "nothing-here"))


def test_config_rejects_half_on_cpu():
    with pytest.raises(ValueError, match="CUDA only|CUDA"):
        DiffusionPriorConfig(dtype="float16", device="cpu")


def test_text_embeddings_cached_and_view_suffixed(eps_prior):
    emb = eps_prior.text_embeddings("a red ball")
    assert eps_prior.text_embeddings("a red ball") is emb
    L, D = eps_prior.tokenizer.model_max_length, eps_prior.text_encoder.config.hidden_size
    assert emb.cond.shape == (L, D) and emb.views.shape == (4, L, D) and emb.uncond.shape == (L, D)
    direct = eps_prior.encode_prompts([view_prompt("a red ball", "back view"), ""])
    torch.testing.assert_close(emb.views[2], direct[0])
    torch.testing.assert_close(emb.uncond, direct[1])
    assert emb.for_views([0, 2, 2]).shape == (3, L, D)


@pytest.mark.parametrize("which", ["eps", "v"])
def test_guidance_convention(which, eps_prior, v_prior):
    prior = eps_prior if which == "eps" else v_prior
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([100, 700])
    emb = prior.text_embeddings("a blue cube")
    cond = emb.repeat(2)
    with torch.no_grad():
        eps_u = prior.unet_eps(z, t, emb.uncond.expand(2, -1, -1))
        eps_y = prior.unet_eps(z, t, cond)
        for s in (0.0, 1.0, 3.0, 7.5):
            got = prior.predict_noise(z, t, cond, guidance_scale=s)
            torch.testing.assert_close(got, eps_u + s * (eps_y - eps_u), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(prior.predict_noise(z, t, cond, 1.0), eps_y)
        torch.testing.assert_close(
            prior.predict_noise(z, t, cond, 0.0), eps_u, rtol=1e-4, atol=1e-5
        )
    assert not torch.allclose(eps_u, eps_y)


def test_v_to_eps_matches_scheduler(v_prior):
    sched = v_prior.scheduler
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([10, 500, 990])
    xt = sched.add_noise(x0, eps, t)
    torch.testing.assert_close(v_prior.add_noise(x0, eps, t), xt, rtol=1e-5, atol=1e-5)
    v = sched.get_velocity(x0, eps, t)
    torch.testing.assert_close(v_prior.model_output_to_eps(v, xt, t), eps, rtol=1e-4, atol=1e-4)
    # and the UNet path uses it: unet_eps = α v̂ + σ x_t
    emb = v_prior.text_embeddings("a red ball").repeat(3)
    with torch.no_grad():
        v_hat = v_prior.unet(xt, t, encoder_hidden_states=emb).sample
        a, s = v_prior.alpha_sigma(t)
        expect = a[:, None, None, None] * v_hat + s[:, None, None, None] * xt
        torch.testing.assert_close(v_prior.unet_eps(xt, t, emb), expect)


def test_schedule_is_sd_scaled_linear(eps_prior):
    abar = eps_prior.alphas_cumprod
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    torch.testing.assert_close(abar, torch.cumprod(1 - betas, 0).float())
    a, s = eps_prior.alpha_sigma(torch.tensor([0, 999]))
    torch.testing.assert_close(a**2 + s**2, torch.ones(2))


def test_encode_decode_differentiable(eps_prior):
    img = torch.rand(2, 3, 16, 16, requires_grad=True)
    z = eps_prior.encode_images(img)
    assert z.shape == (2, 4, 16 // eps_prior.vae_scale_factor, 16 // eps_prior.vae_scale_factor)
    out = eps_prior.decode_latents(z)
    assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    out.mean().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_pipeline_loads_and_samples(sd_folders):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(sd_folders["epsilon"]), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    img = pipe(
        "a red ball, front view", num_inference_steps=2, height=16, width=16, output_type="pt"
    ).images
    assert img.shape == (1, 3, 16, 16)


def test_half_precision_folders_load_in_float32(tmp_path):
    """Weights stored in float16 (as shipped) load as float32 through plain from_pretrained."""
    from diffusers import StableDiffusionPipeline
    from transformers import AutoModelForDepthEstimation

    comps = build_sd_components(TINY_SD, PROMPTS, seed=0)
    folder = save_sd(tmp_path / "sd", comps, torch.float16)
    pipe = StableDiffusionPipeline.from_pretrained(str(folder))
    dtypes = {next(getattr(pipe, m).parameters()).dtype for m in ("unet", "vae", "text_encoder")}
    assert dtypes == {torch.float32}
    arch = DPTArchitecture(hidden_size=32, num_heads=2, neck_hidden_sizes=(8, 16, 32, 32),
                           fusion_hidden_size=16)
    dpt = save_dpt(tmp_path / "dpt", build_dpt(arch), torch.float16)
    assert AutoModelForDepthEstimation.from_pretrained(str(dpt)).dtype == torch.float32


def test_prior_sample(eps_prior):
    x = eps_prior.sample(
        ["a red ball"], num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (1, 3, eps_prior.image_size, eps_prior.image_size)


def test_depth_prior_differentiable(dpt_folder):
    prior = DepthPrior(DepthPriorConfig(model=str(dpt_folder)))
    assert prior.input_size == 64
    img = torch.rand(2, 3, 32, 32, requires_grad=True)
    inv = prior(img)
    assert inv.shape == (2, 32, 32)
    inv.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_depth_pipeline_loads(dpt_folder):
    import numpy as np
    from PIL import Image
    from transformers import pipeline

    pipe = pipeline("depth-estimation", model=str(dpt_folder))
    out = pipe(Image.fromarray((np.random.rand(64, 64, 3) * 255).astype("uint8")))
    assert "predicted_depth" in out


def test_training_smoke(tmp_path):
    from sdlib.priors import load_classifier
    from sdlib.priors.train_classifier import TrainClassifierConfig, train_classifier
    from sdlib.priors.train_depth import TrainDepthConfig, train_depth
    from sdlib.priors.train_sd import TrainSDConfig, train_sd

    common = dict(
        out_dir=str(tmp_path),
        export=False,
        device="cpu",
        n_views=32,
        data_cache=str(tmp_path / "views.pt"),
        progress=False,
    )
    sd = train_sd(
        TrainSDConfig(
            **common,
            arch="tiny",
            vae_steps=2,
            vae_batch=4,
            unet_steps=2,
            unet_batch=4,
            ckpt_every=1,
        ),
        views_fn=fake_views,
        prompts=PROMPTS,
    )
    prior = DiffusionPrior(model=str(sd))
    assert prior.scaling_factor > 0 and (tmp_path / "sd_log.csv").is_file()
    dpt = train_depth(
        TrainDepthConfig(
            **common, arch="tiny", steps=2, batch=4, noise="latent", sd_model=str(sd), n_held_out=8
        ),
        views_fn=fake_views,
    )
    assert DepthPrior(model=str(dpt))(torch.rand(1, 3, 64, 64)).shape == (1, 64, 64)
    clf = train_classifier(
        TrainClassifierConfig(
            **common, steps=2, batch=4, n_held_out=8, widths=(8, 8), sd_model=str(sd)
        ),
        views_fn=fake_views,
        prompts=PROMPTS,
    )
    net = load_classifier(str(clf))
    assert net.predict(torch.rand(2, 3, 64, 64)).shape == (2,)


def test_parse_config_overrides():
    from sdlib.priors._train import parse_config
    from sdlib.priors.train_classifier import TrainClassifierConfig

    cfg = parse_config(
        TrainClassifierConfig, ["--steps", "7", "--widths", "8", "16", "--export", "false"], "x"
    )
    assert cfg.steps == 7 and cfg.widths == (8, 16) and cfg.export is False
    assert asdict(cfg)["lr"] == TrainClassifierConfig().lr


_SHIPPED = all((ASSETS_DIR / k).is_dir() for k in ("sd", "dpt", "classifier"))


@pytest.mark.skipif(not _SHIPPED, reason="shipped ShapeZoo weights not trained yet")
def test_shipped_sizes():
    files = [p for p in ASSETS_DIR.rglob("*") if p.is_file()]
    assert all(p.stat().st_size < 15e6 for p in files)
    assert sum(p.stat().st_size for p in files) <= 32e6


@pytest.mark.skipif(not _SHIPPED, reason="shipped ShapeZoo weights not trained yet")
def test_shipped_samples_are_named_by_classifier():
    from sdlib.priors import load_classifier

    torch.manual_seed(0)
    prior = DiffusionPrior(model="shapezoo")
    net = load_classifier("shapezoo")
    names = list(net.config.class_names)
    chosen = names[:: max(1, len(names) // 8)][:8]
    prompts = [view_prompt(p, VIEW_SUFFIXES[i % 4]) for i, p in enumerate(chosen)] * 2
    x = prior.sample(
        prompts,
        num_inference_steps=15,
        guidance_scale=7.5,
        generator=torch.Generator().manual_seed(0),
    )
    pred = net.predict(x)
    target = torch.tensor([names.index(p.rsplit(",", 1)[0]) for p in prompts])
    acc = (pred == target).float().mean().item()
    assert acc >= 0.8, f"classifier named {acc:.0%} of the samples"
    depth = DepthPrior(model="shapezoo")
    assert depth(x[:2]).shape == (2, 64, 64)


def test_paper_size_builders_match_the_real_models():
    """Random SD 2.1-base and DPT-Hybrid stand-ins have the real parameter counts (meta device)."""
    from sdlib.priors.build import build_dpt_hybrid, build_sd21_base_components

    with torch.device("meta"):
        comps = build_sd21_base_components(["a red ball"])
        dpt = build_dpt_hybrid()
    count = {k: sum(p.numel() for p in comps[k].parameters())
             for k in ("unet", "vae", "text_encoder")}
    # stabilityai/stable-diffusion-2-1-base: UNet 865.9M, VAE 83.7M, OpenCLIP-H text 340.4M
    assert count == {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840}
    assert comps["unet"].config.cross_attention_dim == 1024
    assert comps["scheduler"].config.prediction_type == "epsilon"
    # Intel/dpt-hybrid-midas: 123M, BiT stem + ViT-B/16 at 384²
    assert abs(sum(p.numel() for p in dpt.parameters()) - 122_377_985) == 0
    assert dpt.config.is_hybrid and dpt.config.image_size == 384


def test_linear_decoder_fits_and_is_differentiable(eps_prior):
    """The affine latent → RGB map: fitted once, beats the constant fit, carries gradients."""
    import torch.nn.functional as F

    w = eps_prior.linear_decoder()
    assert w.shape == (eps_prior.latent_channels + 1, 3)
    assert eps_prior.linear_decoder() is w  # cached
    g = torch.Generator().manual_seed(3)
    size, f = eps_prior.image_size, eps_prior.vae_scale_factor
    images = F.interpolate(torch.rand(4, 3, 6, 6, generator=g), size=(size, size),
                           mode="bicubic", align_corners=False).clamp(0, 1)
    z = eps_prior.encode_images(images).detach().requires_grad_(True)
    rgb = eps_prior.decode_latents_linear(z)
    assert rgb.shape == (4, 3, size // f, size // f)
    assert 0.0 <= float(rgb.min()) and float(rgb.max()) <= 1.0
    target = F.avg_pool2d(images, f)
    assert (rgb - target).pow(2).mean() < (target - target.mean()).pow(2).mean()
    rgb.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_vae_explicit_attention_matches_sdpa(eps_prior):
    """sdlib.accelerate swaps the VAE's SDPA attention for the explicit one: same numbers."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    img = torch.rand(2, 3, eps_prior.image_size, eps_prior.image_size,
                     generator=torch.Generator().manual_seed(0))
    try:
        eps_prior.vae.set_attn_processor(AttnProcessor2_0())
        ref = eps_prior.encode_images(img)
        eps_prior.vae.set_attn_processor(AttnProcessor())
        out = eps_prior.encode_images(img)
    finally:
        eps_prior.vae.set_attn_processor(AttnProcessor2_0())
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
