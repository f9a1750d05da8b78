r"""Compiled forms of the fixed-shape networks in a distillation step (DESIGN.md §6).

At the paper's size (SD 2.1-base at 64² latents, a 512² VAE, DPT-Hybrid at 384²) eager PyTorch
spends most of a step launching kernels from the host: the UNet alone costs the same at batch
1, 2 and 4. What a step calls at fixed shapes can be compiled once and replayed:

====================================  ===============================  =======================
network                               called                           compiled as
====================================  ===============================  =======================
prior UNet, guided ``ε̂`` ``[2B,4,h,w]``  no gradient                      Inductor + CUDA graphs
                                                                       (``reduce-overhead``)
VAE encoder ``[B,3,H,W] → [B,8,h,w]``   forward + backward to the input  Inductor
VAE decoder (SSD's φ)                 forward + backward to the input  Inductor
depth model (SSD's φ)                 forward + backward to the input  Inductor + CUDA graphs
VSD's LoRA UNet                       no-grad prediction; training     Inductor + CUDA graphs
====================================  ===============================  =======================

The VAE's attention uses the explicit softmax(QKᵀ)V processor (see :func:`compile_prior`). Two
things measured and *not* done: channels-last VAE weights and cuDNN autotuning made the VAE
slower (``notes/perf_paper_step.md``). The NeRF renderer stays eager: nerfacc's packed samples
change in number every step.
Functions here replace modules *in place* with ``torch.compile`` wrappers (the originals stay
reachable as ``module._orig_mod``) and are idempotent. Results match the eager modules up to
floating-point reassociation; ``scripts/bench_paper_step.py`` measures both the speed and the
difference.

CUDA-graph replay (``reduce-overhead``) reuses its output buffers: a caller that keeps the
UNet's output across two calls must copy it (the trainer converts it to float32 at once), and
each optimisation step begins with :func:`mark_step`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["compile_prior", "compile_depth", "compile_vsd", "is_compiled", "mark_step"]


def is_compiled(module: Any) -> bool:
    """True if ``module`` is a ``torch.compile`` wrapper."""
    return hasattr(module, "_orig_mod")


def _compile(module: nn.Module, mode: str | None) -> nn.Module:
    if is_compiled(module):
        return module
    return torch.compile(module, mode=mode, dynamic=False)  # type: ignore[return-value]


def compile_prior(prior: Any, decoder: bool = False, unet_mode: str = "reduce-overhead") -> Any:
    """Compiles a :class:`sdlib.priors.DiffusionPrior`'s UNet and VAE encoder (and decoder).

    Args:
        prior: the prior; its ``unet``, ``vae.encoder`` (and ``vae.decoder``) are replaced.
        decoder: also compile the VAE decoder (SSD's depth and normal baselines decode ``x_t``).
        unet_mode: ``torch.compile`` mode of the UNet, called without gradient:
            ``"reduce-overhead"`` (CUDA graphs) or ``"default"``.

    Returns:
        ``prior``.
    """
    from diffusers.models.attention_processor import AttnProcessor

    # The VAE's one attention (64² = 4096 tokens, a single head of 512 channels) is too wide
    # for flash attention; SDPA's memory-efficient kernel takes 6.6 ms for its backward alone.
    # The explicit QKᵀ → softmax → V (a 4096² score matrix, 64 MB) is a few matmuls.
    prior.vae.set_attn_processor(AttnProcessor())
    prior.unet = _compile(prior.unet, None if unet_mode == "default" else unet_mode)
    prior.vae.encoder = _compile(prior.vae.encoder, None)
    if decoder:
        prior.vae.decoder = _compile(prior.vae.decoder, None)
    return prior


def compile_depth(depth: Any, mode: str = "reduce-overhead") -> Any:
    """Compiles a :class:`sdlib.priors.DepthPrior`'s model (forward and backward to the input).

    ``"reduce-overhead"``: DPT-Hybrid's BiT stem standardises every convolution's weights on
    each call, hundreds of small kernels that CUDA graphs replay at once.
    """
    depth.model = _compile(depth.model, None if mode == "default" else mode)
    return depth


def compile_vsd(vsd: Any, mode: str = "reduce-overhead") -> Any:
    """Compiles a :class:`sdlib.distill.vsd.VSD`'s LoRA UNet (prediction and training step).

    ``"reduce-overhead"`` replays both the no-grad prediction and the training forward and
    backward as CUDA graphs (the LoRA weights are updated in place, so the graphs stay valid).
    """
    vsd.unet = _compile(vsd.unet, None if mode == "default" else mode)
    return vsd


def mark_step() -> None:
    """Tells CUDA-graph replay that a new optimisation step begins (outputs may be reused)."""
    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
    if mark is not None:
        mark()
