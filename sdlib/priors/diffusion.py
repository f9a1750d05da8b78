"""A latent text-to-image diffusion prior (any diffusers Stable Diffusion), as distillation sees it.

What the estimators of DESIGN.md §2 need from the prior, and nothing else:

* the schedule: ``ᾱ_t`` (``alphas_cumprod``), ``α_t = sqrt(ᾱ_t)``, ``σ_t = sqrt(1 − ᾱ_t)`` and
  the forward process ``x_t = α_t x + σ_t ε`` (:meth:`DiffusionPrior.add_noise`);
* the noise prediction with classifier-free guidance in diffusers' convention
  ``ε̂ = ε_u + s (ε_y − ε_u)`` (:meth:`DiffusionPrior.predict_noise`; threestudio's SDS writes
  ``s + 1`` for the same number). A v-prediction model (SD 2.1 at 768²) is converted to ε with
  ``ε = α_t v + σ_t x_t`` (Salimans & Ho 2022, "Progressive distillation", eq. for v = α ε − σ x);
* differentiable image ↔ latent maps (``latents = scaling_factor · E(2x − 1)``) and the text
  embeddings of a prompt, of its four view-suffixed variants and of the empty prompt, cached.

The same code loads a real model (``"stabilityai/stable-diffusion-2-1-base"``, ``"runwayml/
stable-diffusion-v1-5"`` or a local copy) and the shipped ShapeZoo-SD (``"shapezoo"``).

>>> prior = DiffusionPrior(DiffusionPriorConfig(model="shapezoo"))          # doctest: +SKIP
>>> emb = prior.text_embeddings("a red ball")                               # doctest: +SKIP
>>> z = prior.encode_images(images)               # [B, 4, h, w]            # doctest: +SKIP
>>> t = torch.randint(20, 980, (B,))                                         # doctest: +SKIP
>>> eps = torch.randn_like(z); z_t = prior.add_noise(z, eps, t)             # doctest: +SKIP
>>> eps_hat = prior.predict_noise(z_t, t, emb.for_views(view_index), 7.5)   # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from sdlib.cameras import VIEW_SUFFIXES, view_prompt
from sdlib.priors._hub import check_sd_folder, resolve_pretrained

__all__ = ["DiffusionPriorConfig", "DiffusionPrior", "PromptEmbeddings"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class DiffusionPriorConfig:
    """Which diffusion model to load, and where."""

    model: str = "shapezoo"
    """A diffusers Stable Diffusion folder, a hub repo id
    (``stabilityai/stable-diffusion-2-1-base``), or ``"shapezoo"`` for the shipped ShapeZoo-SD."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Weights and compute dtype. float32 by default; half precision is opt-in and CUDA only."""
    device: str = "cpu"
    """Torch device, e.g. ``"cpu"`` or ``"cuda"``."""

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(
                f"DiffusionPriorConfig.dtype={self.dtype!r}; accepted: {tuple(_DTYPES)}"
            )
        if self.dtype != "float32" and not str(self.device).startswith("cuda"):
            raise ValueError(
                f"DiffusionPriorConfig.dtype={self.dtype!r} on device {self.device!r}: half "
                "precision is supported on CUDA only; use dtype='float32' on CPU"
            )


@dataclass(frozen=True)
class PromptEmbeddings:
    """Text embeddings of one prompt, its view-suffixed variants and the empty prompt.

    ``L`` is the tokenizer's length (77 for CLIP), ``D`` the text encoder's width.
    """

    prompt: str
    """The prompt without suffix."""
    cond: Tensor
    """``[L, D]`` embedding of the prompt itself."""
    views: Tensor
    """``[4, L, D]`` embeddings of ``view_prompt(prompt, s)`` for ``s`` in ``VIEW_SUFFIXES``."""
    uncond: Tensor
    """``[L, D]`` embedding of the empty prompt ``""``."""

    def for_views(self, view_index: Tensor | list[int]) -> Tensor:
        """``[B, L, D]``: view-suffixed embedding of each ``view_index`` (0 front, 3 overhead)."""
        idx = torch.as_tensor(view_index, dtype=torch.long, device=self.views.device).reshape(-1)
        return self.views[idx]

    def repeat(self, batch_size: int) -> Tensor:
        """``[B, L, D]``: the plain prompt's embedding repeated."""
        return self.cond.unsqueeze(0).expand(batch_size, -1, -1)


class DiffusionPrior:
    """A frozen Stable-Diffusion-format model: VAE, text encoder + tokenizer, UNet, schedule.

    The modules are public attributes (``vae``, ``text_encoder``, ``tokenizer``, ``unet``,
    ``scheduler``), frozen (``requires_grad=False``) and in eval mode; gradients flow through
    them to their inputs. Timesteps ``t`` are integers in ``[0, num_train_timesteps)``.
    """

    def __init__(self, config: DiffusionPriorConfig | None = None, **overrides: Any) -> None:
        from dataclasses import replace

        config = config or DiffusionPriorConfig()
        if overrides:
            config = replace(config, **overrides)
        self.config = config
        self.device = torch.device(config.device)
        self.dtype = _DTYPES[config.dtype]
        source = resolve_pretrained(config.model, "sd")
        if isinstance(source, Path):  # a repo id the hub serves is checked by diffusers
            check_sd_folder(source, config.model)
        self.source = source
        self._load(source)
        self._cache: dict[str, PromptEmbeddings] = {}
        self._linear_decoder: Tensor | None = None

    # ------------------------------------------------------------------ loading
    def _load(self, source: str | Path) -> None:
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        src = os.fspath(source)
        kw = {"torch_dtype": self.dtype}
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(src, subfolder="tokenizer")
            self.text_encoder = CLIPTextModel.from_pretrained(
                src, subfolder="text_encoder", dtype=self.dtype
            )
            self.vae = AutoencoderKL.from_pretrained(src, subfolder="vae", **kw)
            self.unet = UNet2DConditionModel.from_pretrained(src, subfolder="unet", **kw)
            self.scheduler = DDPMScheduler.from_pretrained(src, subfolder="scheduler")
        except OSError as err:
            raise OSError(
                f"could not load a diffusers Stable Diffusion model from {src!r}: expected the "
                "subfolders tokenizer/, text_encoder/, vae/, unet/ and scheduler/ "
                f"(StableDiffusionPipeline.save_pretrained layout). Cause: {err}"
            ) from err
        for module in (self.text_encoder, self.vae, self.unet):
            module.to(self.device)
            module.eval()
            module.requires_grad_(False)
        self.prediction_type: str = self.scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"{src}: unsupported prediction_type {self.prediction_type!r}")
        self.alphas_cumprod: Tensor = self.scheduler.alphas_cumprod.to(self.device, torch.float32)
        """``[T]`` ``ᾱ_t`` of the training schedule, float32."""
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.latent_channels = int(self.unet.config.in_channels)
        sample_size = self.unet.config.sample_size
        sample_size = sample_size[0] if isinstance(sample_size, (list, tuple)) else sample_size
        self.image_size = int(sample_size) * self.vae_scale_factor
        """Native resolution: ``unet.sample_size × vae_scale_factor`` (512 for SD 2.1-base)."""

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    # ------------------------------------------------------------------ schedule
    def _coef(self, t: Tensor | int, like: Tensor) -> tuple[Tensor, Tensor]:
        t = torch.as_tensor(t, device=self.device, dtype=torch.long).reshape(-1)
        abar = self.alphas_cumprod[t]
        shape = (-1,) + (1,) * (like.ndim - 1)
        alpha = abar.sqrt().reshape(shape).to(like.dtype)
        sigma = (1.0 - abar).sqrt().reshape(shape).to(like.dtype)
        return alpha, sigma

    def alpha_sigma(self, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """``([B], [B])``: ``α_t = sqrt(ᾱ_t)`` and ``σ_t = sqrt(1 − ᾱ_t)`` in float32."""
        t = torch.as_tensor(t, device=self.device, dtype=torch.long).reshape(-1)
        abar = self.alphas_cumprod[t]
        return abar.sqrt(), (1.0 - abar).sqrt()

    def add_noise(self, latents: Tensor, noise: Tensor, t: Tensor | int) -> Tensor:
        """``x_t = α_t x + σ_t ε``. latents, noise ``[B, C, h, w]``; t ``[B]`` or scalar."""
        alpha, sigma = self._coef(t, latents)
        return alpha * latents + sigma * noise

    def model_output_to_eps(self, output: Tensor, latents_noisy: Tensor, t: Tensor | int) -> Tensor:
        """Converts the UNet's output to a noise prediction ε̂ (``[B, C, h, w]``).

        ε-prediction: unchanged; v-prediction: ``ε = α_t v + σ_t x_t``; x0-prediction:
        ``ε = (x_t − α_t x̂_0) / σ_t``.
        """
        if self.prediction_type == "epsilon":
            return output
        alpha, sigma = self._coef(t, latents_noisy)
        if self.prediction_type == "v_prediction":
            return alpha * output + sigma * latents_noisy
        return (latents_noisy - alpha * output) / sigma

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> Tensor:
        """``[N, L, D]`` last hidden states of the text encoder (SD's conditioning)."""
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        ids = tokens.input_ids.to(self.device)
        return self.text_encoder(ids)[0].to(self.dtype)

    def text_embeddings(self, prompt: str) -> PromptEmbeddings:
        """The cached :class:`PromptEmbeddings` of ``prompt`` (computed on first use)."""
        if not isinstance(prompt, str):
            raise TypeError(f"text_embeddings: prompt must be a str, got {type(prompt).__name__}")
        if prompt not in self._cache:
            texts = [prompt] + [view_prompt(prompt, s) for s in VIEW_SUFFIXES] + [""]
            emb = self.encode_prompts(texts)
            self._cache[prompt] = PromptEmbeddings(
                prompt=prompt, cond=emb[0], views=emb[1:5], uncond=emb[5]
            )
        return self._cache[prompt]

    @property
    def uncond_embedding(self) -> Tensor:
        """``[L, D]`` embedding of the empty prompt."""
        return self.text_embeddings("").uncond

    # ------------------------------------------------------------------ images
    def encode_images(
        self, images: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Differentiable: images ``[B, 3, H, W]`` in [0, 1] → latents ``[B, C, H/f, W/f]``.

        ``latents = scaling_factor · E(2·images − 1)``, the posterior mean unless ``sample``.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"encode_images: expected images [B, 3, H, W], got {tuple(images.shape)}"
            )
        x = (2.0 * images - 1.0).to(self.device, self.dtype)
        dist = self.vae.encode(x).latent_dist
        z = dist.sample(generator=generator) if sample else dist.mean
        return z * self.scaling_factor

    def decode_latents(self, latents: Tensor) -> Tensor:
        """Differentiable: latents ``[B, C, h, w]`` → images ``[B, 3, h·f, w·f]`` in [0, 1]."""
        x = self.vae.decode((latents / self.scaling_factor).to(self.dtype)).sample
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    def linear_decoder(self) -> Tensor:
        """``[C + 1, 3]``: a least-squares affine map from one latent to its cell's mean RGB.

        A cheap stand-in for the VAE decoder at the *latent* resolution (the "latent preview"
        idea), fitted once (cached) on smooth random colour images: each image ``[3, H, W]`` is
        encoded to ``z`` ``[C, h, w]`` and average-pooled to ``[3, h, w]``; the map solves
        ``min_W ||[z, 1] W − rgb||²`` over every latent cell.
        """
        if self._linear_decoder is None:
            g = torch.Generator().manual_seed(0)
            n, size, f = 32, self.image_size, self.vae_scale_factor
            low = torch.rand(n, 3, 6, 6, generator=g)
            images = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic",
                                                     align_corners=False).clamp(0, 1)
            with torch.no_grad():
                z = torch.cat([self.encode_images(images[i:i + 8].to(self.device)).float()
                               for i in range(0, n, 8)])
            target = torch.nn.functional.avg_pool2d(images, f).to(self.device)
            a = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
            b = target.permute(0, 2, 3, 1).reshape(-1, 3)
            self._linear_decoder = torch.linalg.lstsq(a.cpu(), b.cpu()).solution.to(self.device)
        return self._linear_decoder

    def decode_latents_linear(self, latents: Tensor) -> Tensor:
        """Differentiable: latents ``[B, C, h, w]`` → images ``[B, 3, h, w]`` in [0, 1], affinely.

        ``rgb = clamp(W[:C]ᵀ z + W[C], 0, 1)`` per latent cell, with ``W`` from
        :meth:`linear_decoder`: no upsampling, a few hundred FLOPs per pixel instead of the VAE
        decoder's millions.
        """
        w = self.linear_decoder()
        z = latents.float()
        rgb = torch.einsum("bchw,cd->bdhw", z, w[:-1]) + w[-1].reshape(1, 3, 1, 1)
        return rgb.clamp(0.0, 1.0)

    # ------------------------------------------------------------------ noise prediction
    def unet_eps(self, latents_noisy: Tensor, t: Tensor | int, text_embeddings: Tensor) -> Tensor:
        """ε̂ for one conditioning (no guidance): ``[B, C, h, w]``; text_embeddings ``[B, L, D]``."""
        b = latents_noisy.shape[0]
        tt = torch.as_tensor(t, device=self.device, dtype=torch.long).reshape(-1).expand(b)
        out = self.unet(
            latents_noisy.to(self.dtype), tt, encoder_hidden_states=text_embeddings.to(self.dtype)
        ).sample
        return self.model_output_to_eps(out, latents_noisy.to(self.dtype), tt)

    def predict_noise(
        self,
        latents_noisy: Tensor,
        t: Tensor | int,
        text_embeddings: Tensor,
        guidance_scale: float = 7.5,
        uncond_embeddings: Tensor | None = None,
    ) -> Tensor:
        """Guided noise prediction ``ε̂ = ε_u + s (ε_y − ε_u)`` (diffusers' convention).

        Args:
            latents_noisy: ``[B, C, h, w]`` noisy latents ``x_t``.
            t: ``[B]`` (or scalar) integer timesteps.
            text_embeddings: ``[B, L, D]`` conditional embeddings (``[L, D]`` is broadcast).
            guidance_scale: ``s``; 1 gives ``ε_y``, 0 gives ``ε_u``.
            uncond_embeddings: ``[B, L, D]`` or ``[L, D]``; default the empty prompt's.

        Returns:
            ``[B, C, h, w]`` ε̂ in the prior's dtype. Not detached: wrap in ``torch.no_grad()``
            for SDS-style use.
        """
        b = latents_noisy.shape[0]
        cond = text_embeddings
        if cond.ndim == 2:
            cond = cond.unsqueeze(0)
        cond = cond.expand(b, -1, -1)
        if guidance_scale == 1.0:
            return self.unet_eps(latents_noisy, t, cond)
        uncond = self.uncond_embedding if uncond_embeddings is None else uncond_embeddings
        if uncond.ndim == 2:
            uncond = uncond.unsqueeze(0)
        uncond = uncond.expand(b, -1, -1)
        tt = torch.as_tensor(t, device=self.device, dtype=torch.long).reshape(-1).expand(b)
        eps = self.unet_eps(
            torch.cat([latents_noisy, latents_noisy]),
            torch.cat([tt, tt]),
            torch.cat([uncond, cond]),
        )
        eps_u, eps_y = eps.chunk(2)
        return eps_u + guidance_scale * (eps_y - eps_u)

    # ------------------------------------------------------------------ sampling
    def pipeline(self, scheduler: Literal["ddim", "ddpm"] = "ddim"):
        """A ``diffusers.StableDiffusionPipeline`` sharing these modules (no safety checker)."""
        from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline

        cls = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}[scheduler]
        pipe = StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet,
            scheduler=cls.from_config(self.scheduler.config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        return pipe

    @torch.no_grad()
    def sample(
        self,
        prompts: list[str],
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        generator: torch.Generator | None = None,
        scheduler: Literal["ddim", "ddpm"] = "ddim",
    ) -> Tensor:
        """Samples images ``[N, 3, H, W]`` in [0, 1] (float32, on the prior's device)."""
        pipe = self.pipeline(scheduler)
        pipe.set_progress_bar_config(disable=True)
        out = pipe(
            list(prompts),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generator,
            height=self.image_size,
            width=self.image_size,
            output_type="pt",
        ).images
        return out.float().clamp(0, 1)

    def __repr__(self) -> str:
        n = sum(p.numel() for m in (self.unet, self.vae, self.text_encoder) for p in m.parameters())
        return (
            f"DiffusionPrior(source={os.fspath(self.source)!r}, "
            f"prediction_type={self.prediction_type!r}, "
            f"image_size={self.image_size}, params={n / 1e6:.1f}M, dtype={self.dtype}, "
            f"device={self.device})"
        )
