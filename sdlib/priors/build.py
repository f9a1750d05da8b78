"""Builders for Stable-Diffusion-format and DPT models of any size, from scratch.

Used by the training commands (ShapeZoo-SD, ShapeZoo-DPT) and by the tests (tiny random models),
so the shipped weights and the test models have the same layout as the real ones:
``StableDiffusionPipeline.save_pretrained`` (``tokenizer/ text_encoder/ vae/ unet/ scheduler/``)
and ``DPTForDepthEstimation.save_pretrained`` + ``preprocessor_config.json``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = [
    "SDArchitecture",
    "DPTArchitecture",
    "prompt_words",
    "build_tokenizer",
    "build_sd_components",
    "save_sd",
    "build_dpt",
    "save_dpt",
    "build_sd21_base_components",
    "build_dpt_hybrid",
    "SD21_SHAPED_TINY",
    "SPECIAL_TOKENS",
    "TINY_SD",
    "TINY_DPT",
    "save_tiny_priors",
]

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
_WORD = re.compile(r"[a-z]+|[0-9]|[^\sa-z0-9]+")


@dataclass(frozen=True)
class SDArchitecture:
    """Sizes of a Stable-Diffusion-format model (defaults: ShapeZoo-SD, about 12.8M parameters)."""

    image_size: int = 64
    """Image resolution in pixels."""
    vae_channels: tuple[int, ...] = (48, 96, 96)
    """VAE block widths; downscale factor ``2 ** (len - 1)`` (4 here → 16×16 latents)."""
    vae_layers_per_block: int = 1
    """ResNet layers per VAE block."""
    latent_channels: int = 4
    """Latent channels (4, as SD)."""
    unet_channels: tuple[int, ...] = (64, 128, 128)
    """UNet block widths; the last two blocks have cross-attention."""
    unet_layers_per_block: int = 2
    """ResNet layers per UNet block."""
    attention_head_dim: int = 32
    """Channels per attention head in the UNet."""
    text_hidden: int = 128
    """Text encoder width (= cross-attention dim)."""
    text_layers: int = 3
    """Text encoder transformer layers."""
    text_heads: int = 4
    """Text encoder attention heads."""
    max_length: int = 77
    """Tokenizer / text encoder length (77, as CLIP)."""
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    """What the UNet predicts."""
    norm_groups: int = 16
    """GroupNorm groups in VAE and UNet (must divide every width)."""
    text_hidden_act: str = "quick_gelu"
    """Text encoder activation: ``"quick_gelu"`` (OpenAI CLIP, SD 1.x) or ``"gelu"`` (OpenCLIP,
    SD 2.x)."""
    use_linear_projection: bool = False
    """UNet transformer in/out projections: convolutions (SD 1.x) or linear layers (SD 2.x)."""

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_channels) - 1)


def prompt_words(prompts: list[str]) -> list[str]:
    """CLIP-style words (lower-case letter runs, digits, punctuation) of ``prompts``, sorted."""
    words: set[str] = set()
    for p in prompts:
        words.update(_WORD.findall(p.lower()))
    return sorted(words)


def build_tokenizer(prompts: list[str], max_length: int = 77):
    """A ``CLIPTokenizer`` whose vocabulary holds every word of ``prompts`` as one token.

    The vocabulary also holds every lower-case letter and digit (alone and word-final), so any
    other text tokenizes into characters instead of failing. Merges build each word from its
    characters, left to right (transformers 5: ``CLIPTokenizer(vocab=dict, merges=list)``).
    """
    from transformers import CLIPTokenizer

    tokens: list[str] = list(SPECIAL_TOKENS)
    seen = set(tokens)
    merges: list[tuple[str, str]] = []
    seen_merges: set[tuple[str, str]] = set()

    def add(tok: str) -> None:
        if tok not in seen:
            seen.add(tok)
            tokens.append(tok)

    for ch in "abcdefghijklmnopqrstuvwxyz0123456789,.'-":
        add(ch)
        add(ch + "</w>")
    for word in prompt_words(prompts):
        chars = list(word)
        chars[-1] += "</w>"
        for c in chars:
            add(c)
        cur = chars[0]
        for c in chars[1:]:
            if (cur, c) not in seen_merges:
                seen_merges.add((cur, c))
                merges.append((cur, c))
            cur += c
            add(cur)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=SPECIAL_TOKENS[1],
        bos_token=SPECIAL_TOKENS[0],
        eos_token=SPECIAL_TOKENS[1],
        pad_token=SPECIAL_TOKENS[1],
        model_max_length=max_length,
    )


def build_sd_components(arch: SDArchitecture, prompts: list[str], seed: int = 0) -> dict[str, Any]:
    """Randomly initialised ``tokenizer``, ``text_encoder``, ``vae``, ``unet``, ``scheduler``.

    The scheduler is SD's: DDPM, 1000 steps, ``scaled_linear`` betas 0.00085–0.012 (DESIGN.md §7:
    a cosine schedule with ε-prediction leaves the mean colour undetermined).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(prompts, arch.max_length)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch.text_hidden,
        intermediate_size=4 * arch.text_hidden,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        max_position_embeddings=arch.max_length,
        projection_dim=arch.text_hidden,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act=arch.text_hidden_act,
    )
    text_encoder = CLIPTextModel(text_config)
    n_vae = len(arch.vae_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=arch.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n_vae,
        up_block_types=("UpDecoderBlock2D",) * n_vae,
        block_out_channels=tuple(arch.vae_channels),
        layers_per_block=arch.vae_layers_per_block,
        norm_num_groups=arch.norm_groups,
        sample_size=arch.image_size,
    )
    n_unet = len(arch.unet_channels)
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n_unet - 1)
    up = ("CrossAttnUpBlock2D",) * (n_unet - 1) + ("UpBlock2D",)
    heads = tuple(max(1, c // arch.attention_head_dim) for c in arch.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=arch.image_size // arch.vae_scale_factor,
        in_channels=arch.latent_channels,
        out_channels=arch.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(arch.unet_channels),
        layers_per_block=arch.unet_layers_per_block,
        cross_attention_dim=arch.text_hidden,
        attention_head_dim=heads,
        norm_num_groups=arch.norm_groups,
        use_linear_projection=arch.use_linear_projection,
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=arch.prediction_type,
        clip_sample=False,
        steps_offset=1,
        timestep_spacing="leading",
    )
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": vae,
        "unet": unet,
        "scheduler": scheduler,
    }


def _declare_float32(config_json: Path) -> None:
    """Sets a transformers ``config.json``'s ``dtype`` to ``float32``, whatever the stored weights.

    transformers 5 loads with ``dtype="auto"`` by default, i.e. in the dtype the config names,
    which ``save_pretrained`` sets to the saved weights' dtype. diffusers loads float32 by
    default. Weights stored in float16 (to keep the package small) would then load as a float16
    text encoder beside a float32 UNet and VAE, and ``StableDiffusionPipeline.from_pretrained(
    folder)`` would fail on CPU with "mat1 and mat2 must have the same dtype". Declaring float32
    makes every component load in float32 unless ``torch_dtype`` / ``dtype`` says otherwise.
    """
    cfg = json.loads(config_json.read_text())
    cfg["dtype"] = "float32"
    config_json.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def save_sd(
    folder: str | os.PathLike,
    components: dict[str, Any],
    dtype: torch.dtype = torch.float32,
    max_shard_size: str = "14MB",
) -> Path:
    """Saves the components as a ``StableDiffusionPipeline`` folder (no safety checker).

    Weights are written as ``dtype`` safetensors, sharded above ``max_shard_size``; the modules
    themselves are left in their dtype. The folder loads in float32 by default whatever
    ``dtype`` is (:func:`_declare_float32`), as diffusers and transformers users expect.
    """
    import copy

    from diffusers import StableDiffusionPipeline

    mods = {
        k: copy.deepcopy(components[k]).to("cpu", dtype) for k in ("text_encoder", "vae", "unet")
    }
    pipe = StableDiffusionPipeline(
        **mods,
        tokenizer=components["tokenizer"],
        scheduler=components["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(os.fspath(folder), safe_serialization=True, max_shard_size=max_shard_size)
    _declare_float32(Path(folder) / "text_encoder" / "config.json")
    return Path(folder)


@dataclass(frozen=True)
class DPTArchitecture:
    """Sizes of a small ViT-backbone ``DPTForDepthEstimation`` (defaults: ShapeZoo-DPT, ~1.8M)."""

    image_size: int = 64
    """Input resolution."""
    patch_size: int = 8
    """ViT patch size."""
    hidden_size: int = 128
    """ViT width."""
    num_layers: int = 4
    """ViT layers (one DPT read-out per layer)."""
    num_heads: int = 4
    """ViT attention heads."""
    neck_hidden_sizes: tuple[int, int, int, int] = (32, 64, 128, 128)
    """Reassemble widths."""
    fusion_hidden_size: int = 64
    """Fusion width."""


def build_dpt(arch: DPTArchitecture, seed: int = 0):
    """A randomly initialised ``DPTForDepthEstimation`` (ViT backbone, not hybrid)."""
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(seed)
    config = DPTConfig(
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        intermediate_size=4 * arch.hidden_size,
        image_size=arch.image_size,
        patch_size=arch.patch_size,
        backbone_out_indices=list(range(arch.num_layers - 4, arch.num_layers)),
        neck_hidden_sizes=list(arch.neck_hidden_sizes),
        fusion_hidden_size=arch.fusion_hidden_size,
        reassemble_factors=[4, 2, 1, 0.5],
        head_in_index=-1,
    )
    return DPTForDepthEstimation(config)


def _lively_depth_head(model):
    """Kaiming-normal weights and zero biases for the depth head's convolutions, and a bias of 1
    on the last (before its ReLU), so that a random DPT predicts an O(1) depth that varies
    across the image (measured: std 0.68 over a 384² random image at full size, against ~1e-5
    with the default initialisation)."""
    convs = [m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            torch.nn.init.zeros_(conv.bias)
        torch.nn.init.constant_(convs[-1].bias, 1.0)
    return model


def save_dpt(folder: str | os.PathLike, model, dtype: torch.dtype = torch.float32) -> Path:
    """``save_pretrained`` (``dtype`` safetensors) + ``preprocessor_config.json`` (mean/std 0.5).

    The config declares float32 (:func:`_declare_float32`), so a plain ``from_pretrained`` or
    ``transformers.pipeline("depth-estimation", model=folder)`` runs in float32 on any device.
    """
    import copy

    from transformers import DPTImageProcessor

    out = Path(folder)
    copy.deepcopy(model).to("cpu", dtype).save_pretrained(os.fspath(out), safe_serialization=True)
    _declare_float32(out / "config.json")
    size = int(model.config.image_size)
    DPTImageProcessor(
        do_resize=True,
        size={"height": size, "width": size},
        keep_aspect_ratio=False,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pad=False,
    ).save_pretrained(os.fspath(out))
    return out


def build_sd21_base_components(prompts: list[str], seed: int = 0) -> dict[str, Any]:
    """Randomly initialised models of **Stable Diffusion 2.1-base's exact architecture**.

    For speed benchmarks at the paper's settings where the real weights cannot be downloaded:
    the UNet (865M parameters; blocks 320/640/1280/1280, cross-attention 1024, linear
    projections, heads of 64 channels), the KL VAE (84M; 128/256/512/512, 8× downscale, scaling
    factor 0.18215) and an OpenCLIP-ViT-H-sized text encoder (23 layers of width 1024) as in
    ``stabilityai/stable-diffusion-2-1-base``'s ``config.json`` files, with SD's DDPM schedule
    and ε-prediction. The tokenizer knows only the words of ``prompts`` (its ids index a
    49,408-row embedding as CLIP's). Random weights give random images, not SD's.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(prompts, 77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
        num_attention_heads=16, max_position_embeddings=77, projection_dim=512,
        hidden_act="gelu", bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
        sample_size=512, scaling_factor=0.18215,
    )
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True, norm_num_groups=32,
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", prediction_type="epsilon", clip_sample=False,
        steps_offset=1, timestep_spacing="leading",
    )
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "unet": unet,
            "scheduler": scheduler}


SD21_SHAPED_TINY = SDArchitecture(
    image_size=32, vae_channels=(16, 32), unet_channels=(16, 32, 32), unet_layers_per_block=1,
    attention_head_dim=8, text_hidden=32, text_layers=2, text_heads=2, norm_groups=8,
    prediction_type="v_prediction", text_hidden_act="gelu", use_linear_projection=True,
)
"""A tiny random model of SD 2.1's kind (v-prediction UNet with linear projections, KL VAE,
OpenCLIP-style gelu text encoder): the same code paths as the real one, for CPU smoke runs."""


def build_dpt_hybrid(seed: int = 0, tiny: bool = False):
    """A randomly initialised ``DPTForDepthEstimation`` of ``Intel/dpt-hybrid-midas``'s size.

    ViT-Base (12 layers, width 768, patches of 16 at 384²) on a BiT ResNet stem (stages of 3, 4
    and 9 bottleneck blocks, "same" padding), read-outs projected, reassemble widths
    256/512/768/768, fusion width 256 (about 123M parameters). transformers 5 needs the BiT
    backbone given explicitly.

    The head's convolutions are re-drawn (:func:`_lively_depth_head`): with transformers'
    default initialisation (normal, std 0.02) the predicted depth is about 1e-5 and, at full
    size, mostly cut to exactly 0 by the head's last ReLU, so SSD's ``φ = 1 − Pearson`` would be
    the constant 1 and ``∇φ`` zero: nothing like a trained MiDaS, whose output varies across the
    image and with it. After the re-draw the output is O(1) and image-dependent.
    """
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation

    torch.manual_seed(seed)
    if tiny:  # the same architecture, narrow and shallow, for CPU smoke runs (64² input)
        backbone = BitConfig(
            global_padding="same", layer_type="bottleneck", depths=[1, 1, 1],
            hidden_sizes=[16, 32, 64, 128], embedding_size=16, num_groups=8,
            out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True,
        )
        return _lively_depth_head(DPTForDepthEstimation(DPTConfig(
            is_hybrid=True, backbone_config=backbone, hidden_size=32, num_hidden_layers=4,
            num_attention_heads=2, intermediate_size=64, image_size=64, patch_size=16,
            backbone_out_indices=[0, 1, 2, 3], readout_type="project",
            reassemble_factors=[1, 1, 1, 0.5], neck_hidden_sizes=[16, 32, 32, 32],
            fusion_hidden_size=16, backbone_featmap_shape=[1, 64, 4, 4],
            neck_ignore_stages=[0, 1],
        )))
    backbone = BitConfig(
        global_padding="same", layer_type="bottleneck", depths=[3, 4, 9],
        out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True,
    )
    config = DPTConfig(
        is_hybrid=True, backbone_config=backbone, hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072, image_size=384, patch_size=16,
        backbone_out_indices=[2, 5, 8, 11], readout_type="project",
        reassemble_factors=[1, 1, 1, 0.5], neck_hidden_sizes=[256, 512, 768, 768],
        fusion_hidden_size=256, backbone_featmap_shape=[1, 1024, 24, 24],
        neck_ignore_stages=[0, 1],
    )
    return _lively_depth_head(DPTForDepthEstimation(config))


TINY_SD = SDArchitecture(image_size=16, vae_channels=(16, 16), unet_channels=(16, 32, 32),
                         unet_layers_per_block=1, attention_head_dim=8, text_hidden=32,
                         text_layers=1, text_heads=2, norm_groups=8)
"""A random Stable Diffusion of 16² images (2² latents) for tests and CPU smoke runs."""
TINY_DPT = DPTArchitecture(image_size=16, patch_size=4, hidden_size=32, num_layers=4, num_heads=2,
                           neck_hidden_sizes=(8, 16, 32, 32), fusion_hidden_size=16)
"""A random DPT of 16² images for tests and CPU smoke runs."""


def save_tiny_priors(root: str | os.PathLike, prompts: list[str], seed: int = 0) -> Path:
    """Saves random :data:`TINY_SD` (``root/sd``, its tokenizer knowing ``prompts``' words) and
    :data:`TINY_DPT` (``root/dpt``) in the shipped priors' formats; returns ``root``. They load
    as any prior does (``TrainConfig(prior=root/"sd", depth=root/"dpt")``) and say nothing about
    quality: they make a pipeline run in seconds on a CPU."""
    root = Path(root)
    save_sd(root / "sd", build_sd_components(TINY_SD, list(prompts), seed=seed))
    save_dpt(root / "dpt", build_dpt(TINY_DPT, seed=seed))
    return root
