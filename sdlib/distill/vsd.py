r"""Variational Score Distillation (VSD), ProlificDreamer (Wang et al., 2023, arXiv 2305.16213).

VSD replaces SDS's zero-mean control variate ``ε`` by the noise prediction of a second
diffusion model that tracks the distribution of the current renders:

    grad_VSD = ω(t) (ε̂(x_t; y, t) − ε̂_φ(x_t; y, c, t)),

where ``ε̂_φ`` is a LoRA copy of the prior's UNet conditioned on the camera ``c`` (its
flattened 4×4 camera-to-world matrix through a small MLP, added to the time embedding), trained
alongside the 3-D model with the ordinary denoising loss on *detached* renders,

    L_φ = E_{t ~ U[0, T), ε} || ε̂_φ(α_t x + σ_t ε; y, c, t) − target ||²,

``target = ε`` for an ε-prediction prior and ``v = α_t ε − σ_t x`` for a v-prediction one; the
camera is dropped (set to zero) 10% of the time (threestudio's ``prolificdreamer.yaml``).
In SteinDreamer's reading, ``ε̂_φ`` is a learned control variate; unlike ``ε`` it is not
exactly zero-mean, and VSD's target is a different (particle-variational) objective.

The LoRA model sees the view-independent prompt (the camera embedding carries the view, as in
threestudio's ``prolificdreamer.yaml``); the prior keeps its view-suffixed prompts.

Here the camera MLP's last layer starts at zero and the LoRA ``B`` matrices start at zero, so
at initialisation ``ε̂_φ`` is the prior's conditional prediction: with guidance scale 1 the
first VSD gradients are exactly zero.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sdlib.distill.common import add_noise, alpha_sigma, to_device
from sdlib.distill.estimator import Draw, Estimate, Priors

__all__ = ["VSDConfig", "VSD", "vsd_gradient", "CameraEmbedding", "to_epsilon"]


@dataclass(frozen=True)
class VSDConfig:
    """Configuration of VSD's LoRA model ``ε̂_φ``."""

    lora_rank: int = 16
    """Rank of the LoRA adapters on the UNet's attention projections."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank)."""
    lr: float = 1e-4
    """Adam learning rate of the LoRA weights and the camera MLP."""
    camera_dropout: float = 0.1
    """Probability of replacing the camera condition by zeros in LoRA training."""
    train_steps_per_step: int = 1
    """LoRA updates per distillation step."""
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    """Attention projections that get LoRA adapters."""
    loss_scale: float = 1.0
    """Static loss scale ``S`` of the LoRA step: the backward runs on ``S·L`` and the gradients
    are divided by ``S`` before Adam (exact maths), so that the float16 UNet's backward keeps
    gradients that would underflow at ``S = 1`` (``scripts/bench_paper_step.py --fp16_check``
    measures both)."""

    def __post_init__(self) -> None:
        if self.lora_rank < 1:
            raise ValueError(f"VSDConfig.lora_rank={self.lora_rank} must be >= 1")
        if not 0.0 <= self.camera_dropout <= 1.0:
            raise ValueError(f"VSDConfig.camera_dropout={self.camera_dropout} not in [0, 1]")
        if self.lr <= 0:
            raise ValueError(f"VSDConfig.lr={self.lr} must be > 0")
        if not (self.loss_scale > 0 and math.isfinite(self.loss_scale)):
            raise ValueError(f"VSDConfig.loss_scale={self.loss_scale} must be a finite number "
                             "> 0 (1, or a power of two such as 1024)")


class CameraEmbedding(nn.Module):
    """Flattened camera-to-world ``[B, 4, 4]`` → ``[B, D]`` added to the UNet's time embedding.

    Two linear layers with a SiLU (diffusers' ``TimestepEmbedding`` shape); the last layer
    starts at zero, so the embedding starts at zero.
    """

    def __init__(self, out_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or out_dim
        self.linear_1 = nn.Linear(16, hidden)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.linear_2.weight)
        nn.init.zeros_(self.linear_2.bias)

    def forward(self, c2w: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(c2w.reshape(c2w.shape[0], 16))))


def to_epsilon(
    model_output: Tensor, x_t: Tensor, alphas_cumprod: Tensor, t: Tensor, prediction_type: str
) -> Tensor:
    """Converts a UNet output to a noise prediction: ``ε = α_t v + σ_t x_t`` for v-prediction."""
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "v_prediction":
        alpha, sigma = alpha_sigma(alphas_cumprod, t)
        shape = (-1, *([1] * (x_t.dim() - 1)))
        return alpha.reshape(shape) * model_output + sigma.reshape(shape) * x_t
    raise ValueError(
        f"prediction_type={prediction_type!r}; accepted: 'epsilon', 'v_prediction'"
    )


def vsd_gradient(eps_pred: Tensor, eps_lora: Tensor, weight: Tensor) -> Tensor:
    """``ω(t) (ε̂ − ε̂_φ)`` for ``[B, C, H, W]`` predictions and ``[B]`` weights (detached)."""
    w = weight.reshape(-1, *([1] * (eps_pred.dim() - 1))).to(eps_pred.dtype)
    return (w * (eps_pred - eps_lora)).detach()


class VSD:
    """The LoRA model ``ε̂_φ`` of VSD, its prediction and its training step.

    Args:
        unet: the prior's ``diffusers.UNet2DConditionModel`` (not modified: a copy gets LoRA).
        alphas_cumprod: ``[T]`` the prior's schedule.
        prediction_type: ``"epsilon"`` or ``"v_prediction"`` (the prior's scheduler's).
        config: the configuration.

    Requires ``peft`` (a declared dependency), imported here.
    """

    def __init__(
        self,
        unet: nn.Module,
        alphas_cumprod: Tensor,
        prediction_type: str,
        config: VSDConfig = VSDConfig(),
    ) -> None:
        from peft import LoraConfig

        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"VSD: prediction_type={prediction_type!r}; accepted: 'epsilon', 'v_prediction'"
            )
        self.config = config
        self.prediction_type = prediction_type
        self.alphas_cumprod = alphas_cumprod
        lora_unet: Any = copy.deepcopy(getattr(unet, "_orig_mod", unet))  # never a compiled one
        lora_unet.requires_grad_(False)
        lora_unet.add_adapter(
            LoraConfig(
                r=config.lora_rank,
                lora_alpha=config.lora_alpha,
                init_lora_weights="gaussian",
                target_modules=list(config.target_modules),
            )
        )
        time_dim = lora_unet.time_embedding.linear_2.out_features
        param = next(unet.parameters())
        self.dtype = param.dtype
        """The frozen UNet's dtype (inputs are cast to it)."""
        lora_unet.class_embedding = CameraEmbedding(time_dim).to(param.device)
        self.unet = lora_unet
        self.parameters = [p for p in lora_unet.parameters() if p.requires_grad]
        # trained weights in float32 (Adam in half precision loses small updates); peft casts
        # activations to the adapter's dtype and back, diffusers the camera embedding's output
        for p in self.parameters:
            p.data = p.data.float()
        # one fused kernel for all LoRA tensors on CUDA (hundreds of small ones otherwise)
        fused = all(p.is_cuda for p in self.parameters)
        self.optimizer = torch.optim.Adam(self.parameters, lr=config.lr, fused=fused or None)

    def predict_noise(
        self, x_t: Tensor, t: Tensor, text_embeddings: Tensor, c2w: Tensor
    ) -> Tensor:
        """``ε̂_φ(x_t; y, c, t)`` ``[B, C, H, W]`` (no gradient).

        Args:
            x_t: ``[B, C, H, W]`` noised latents.
            t: ``[B]`` integer timesteps.
            text_embeddings: ``[B, L, D]`` conditional text embeddings.
            c2w: ``[B, 4, 4]`` camera-to-world matrices.

        Returns:
            ``[B, C, H, W]`` float32.
        """
        with torch.no_grad():
            out = self.unet(x_t.to(self.dtype), t, encoder_hidden_states=text_embeddings.to(
                self.dtype), class_labels=c2w.float()).sample
        return to_epsilon(out.float(), x_t.float(), self.alphas_cumprod, t, self.prediction_type)

    def lora_loss(
        self,
        latents: Tensor,
        text_embeddings: Tensor,
        c2w: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The LoRA model's denoising loss on detached latents, with its graph to the LoRA
        weights (call under ``torch.enable_grad()``); draws ``t``, noise and the camera dropout
        from ``generator``. Arguments as :meth:`train_step`'s."""
        x = latents.detach()
        b = x.shape[0]
        num_t = self.alphas_cumprod.shape[0]
        # drawn on the CPU generator, copied without making the host wait for the GPU
        t = to_device(torch.randint(0, num_t, (b,), generator=generator), x.device)
        eps = to_device(torch.randn(x.shape, generator=generator).to(x.dtype), x.device)
        x_t = add_noise(x, eps, self.alphas_cumprod, t)
        drop = to_device(torch.rand(b, generator=generator) < self.config.camera_dropout, x.device)
        cam = torch.where(drop[:, None, None], torch.zeros_like(c2w), c2w)
        if self.prediction_type == "epsilon":
            target = eps
        else:  # v = α_t ε − σ_t x
            alpha, sigma = alpha_sigma(self.alphas_cumprod, t)
            shape = (-1, *([1] * (x.dim() - 1)))
            target = alpha.reshape(shape).to(x.dtype) * eps - sigma.reshape(shape).to(x.dtype) * x
        out = self.unet(x_t.to(self.dtype), t,
                        encoder_hidden_states=text_embeddings.detach().to(self.dtype),
                        class_labels=cam.float()).sample
        return torch.nn.functional.mse_loss(out.float(), target.float())

    def backward(self, loss: Tensor, loss_scale: float | None = None) -> None:
        """Zeroes the LoRA gradients and fills them with ``∇L`` (as ``∇(S·L) / S`` for a loss
        scale ``S``, default ``config.loss_scale``)."""
        scale = self.config.loss_scale if loss_scale is None else float(loss_scale)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if scale == 1.0 else loss * scale).backward()
        if scale != 1.0:
            grads = [p.grad for p in self.parameters if p.grad is not None]
            if grads:
                torch._foreach_div_(grads, scale)

    def train_step(
        self,
        latents: Tensor,
        text_embeddings: Tensor,
        c2w: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One Adam step of the LoRA model's denoising loss on detached latents.

        Returns the loss as a detached 0-dim tensor (``float()`` it when needed: converting
        here would make the host wait for the GPU).

        Args:
            latents: ``[B, C, H, W]`` clean latents of the current renders (detached here).
            text_embeddings: ``[B, L, D]`` conditional text embeddings.
            c2w: ``[B, 4, 4]`` cameras; each is zeroed with probability ``camera_dropout``.
            generator: for reproducible ``t``, noise and dropout draws (CPU generator).
        """
        with torch.enable_grad():
            loss = self.lora_loss(latents, text_embeddings, c2w, generator)
            self.backward(loss)
        self.optimizer.step()
        return loss.detach()

    # ------------------------------------------------------------- estimator interface
    @classmethod
    def needs_depth(cls, config: Any) -> bool:
        return False

    @classmethod
    def build(cls, config: Any, priors: Priors) -> VSD:
        """From a :class:`sdlib.train.TrainConfig` (its ``vsd`` field) and the loaded priors."""
        prior = priors.prior
        return cls(prior.unet, prior.alphas_cumprod, prior.prediction_type, config.vsd)

    def compile(self) -> None:
        """Compiles the LoRA UNet (:func:`sdlib.accelerate.compile_vsd`); CUDA only."""
        from sdlib import accelerate

        accelerate.compile_vsd(self)

    def control(self, draw: Draw) -> Estimate:
        """The control term ``ε̂_φ(x_t; y, c, t)`` of the LoRA model (view-independent prompt)."""
        return Estimate(control=self.predict_noise(draw.x_t, draw.t, draw.text_plain,
                                                   draw.cameras.c2w).float())

    def update(self, draw: Draw, estimate: Estimate) -> dict[str, Any]:
        """``train_steps_per_step`` LoRA steps on the detached renders of this batch."""
        loss = None
        for _ in range(self.config.train_steps_per_step):
            loss = self.train_step(draw.x, draw.text_plain, draw.cameras.c2w,
                                   generator=draw.generator)
        return {} if loss is None else {"lora_loss": loss}

    def state_dict(self) -> dict[str, Any]:
        """The LoRA and camera-MLP weights and their Adam state."""
        return {"params": [p.detach().clone() for p in self.parameters],
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for p, v in zip(self.parameters, state["params"]):
                p.copy_(v)
        self.optimizer.load_state_dict(state["optimizer"])
