r"""Half precision against float32 for the two gradients a step needs exactly (issue 14, item 3).

**SSD's** ``∇_{x_t} φ``: Stein's identity ``E[h] = 0`` for ``h = ε φ(x_t) − σ_t ∇φ(x_t)`` holds
for the exact ``∇φ``; with float16 priors, ``φ = 1 − Pearson(D(decode(x_t)), 1/depth)`` is
backed up through a float16 depth model and VAE decoder, where gradients below float16's
smallest normal number (6.1e-5) lose precision and those below its smallest subnormal (6e-8)
flush to zero. A zero that should not be there is a bias of ``h``, not noise.
:func:`phi_gradient_check` evaluates ``φ``, ``∇φ`` and ``h`` with a reference pair of models
(float32) and a test pair (float16), at the same ``x_t``, ``ε``, ``t``, and for several
gradient scales ``S`` (``∇(S φ) / S``, :func:`sdlib.control_variates.stein_control_variate`'s
``grad_scale``).

**VSD's** LoRA step: the denoising loss of the LoRA UNet is backed up through the frozen
float16 UNet to float32 LoRA weights. :func:`lora_gradient_check` compares the LoRA gradient of
one fixed batch between a float16 and a float32 prior, for several loss scales
(``VSDConfig.loss_scale``).

Reported per comparison: the relative L2 error ``||g₁₆ − g₃₂|| / ||g₃₂||``, the fraction of
entries where the reference is nonzero and the test exactly zero (underflow), the fraction of
the reference's magnitudes below float16's smallest normal, and the number of non-finite test
entries (a scale too large overflows). Random weights say little about trained ones: a random
DPT-Hybrid's ``∇φ`` moves as far when its input moves by half a float16 step as float16
arithmetic moves it (``notes/phi_precision/``), so the check is there to be run on the real
models too. ``scripts/bench_paper_step.py --fp16_check`` runs both
checks on the GPU; on the CPU both sides are float32 (the test of the plumbing: zero error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "FP16_MIN_NORMAL",
    "FP16_ROWS",
    "compare",
    "sphere_render",
    "phi_gradient_check",
    "lora_gradient_check",
]

FP16_MIN_NORMAL = 2.0**-14
"""float16's smallest normal number (6.1e-5); below it float16 keeps fewer significant bits."""

FP16_ROWS = (("SSD ∇φ, VAE decoder", "phi", "grad"), ("SSD h, VAE decoder", "phi", "h"),
             ("SSD ∇φ, depth model float32", "phi_depth_float32", "grad"),
             ("SSD h, depth model float32", "phi_depth_float32", "h"),
             ("SSD ∇φ, linear decoder", "phi_linear_decoder", "grad"),
             ("VSD LoRA gradient", "lora", "grad"))
"""The rows of the float16 table (``bench_paper_step.py --fp16_check``'s keys): the label, the
check, the quantity. In ``phi`` and ``phi_linear_decoder`` the depth model is float16 too; in
``phi_depth_float32`` it is float32 beside the float16 VAE decoder (``paper_config``'s)."""


def compare(test: Tensor, ref: Tensor) -> dict[str, float]:
    """How far ``test`` is from ``ref`` (same shape): relative L2 error, underflow, overflow.

    Returns:
        ``rel_l2`` (``||test − ref|| / ||ref||``, NaN if ``ref`` is zero), ``underflow`` (the
        fraction of ``ref``'s nonzero entries where ``test`` is exactly zero), ``ref_nonzero``
        (the fraction of ``ref``'s entries that are nonzero), ``ref_below_fp16_normal`` (the
        fraction of ``ref``'s nonzero entries below float16's smallest normal in magnitude),
        ``nonfinite`` (NaN / inf entries of ``test``), ``ref_norm``, ``ref_abs_median``.
    """
    if test.shape != ref.shape:
        raise ValueError(f"compare: shapes differ, test {tuple(test.shape)} vs ref "
                         f"{tuple(ref.shape)}")
    t, r = test.detach().double().flatten(), ref.detach().double().flatten()
    finite = torch.isfinite(t)
    ref_norm = float(r.norm())
    nonzero = r != 0
    n_nonzero = int(nonzero.sum())
    rel = float((t - r).norm() / ref_norm) if ref_norm > 0 else math.nan
    return {
        "rel_l2": rel,
        "underflow": float(((t == 0) & nonzero).sum()) / max(n_nonzero, 1),
        "ref_nonzero": n_nonzero / max(r.numel(), 1),
        "ref_below_fp16_normal": float((nonzero & (r.abs() < FP16_MIN_NORMAL)).sum())
        / max(n_nonzero, 1),
        "nonfinite": int((~finite).sum()),
        "ref_norm": ref_norm,
        "ref_abs_median": float(r.abs().median()) if r.numel() else math.nan,
    }


def sphere_render(size: int, device: torch.device | str = "cpu", radius: float = 0.6,
                  distance: float = 1.75) -> dict[str, Tensor]:
    """A synthetic render of a lit, coloured sphere seen from ``distance``: what SSD's depth
    baseline reads from a NeRF render (``depth`` and ``opacity`` ``[1, size, size]``) and an
    image ``rgb`` ``[1, 3, size, size]`` in [0, 1] to encode as the clean latents."""
    u = torch.linspace(-1.0, 1.0, size, device=device)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    rr = (xx.square() + yy.square()) / radius**2
    inside = rr < 1.0
    z = (1.0 - rr).clamp_min(0.0).sqrt()  # the sphere's height towards the camera, [0, 1]
    depth = torch.where(inside, distance - radius * z, torch.full_like(z, distance + 1.0))
    shade = 0.25 + 0.75 * (0.6 * z + 0.4 * (0.5 - 0.5 * yy)).clamp(0.0, 1.0)
    colour = torch.tensor([0.85, 0.35, 0.2], device=device)[:, None, None]
    background = torch.tensor([0.9, 0.9, 0.95], device=device)[:, None, None]
    rgb = torch.where(inside, colour * shade, background)
    return {"depth": depth[None], "opacity": inside.float()[None], "rgb": rgb[None]}


def _clean_latents(prior: Any, seed: int) -> tuple[Tensor, dict[str, Tensor]]:
    """The sphere's latents ``[1, C, h, w]`` (float32) under ``prior``'s encoder and its render
    at the latent resolution (``h × h``, as a 64² render is for SD)."""
    import torch.nn.functional as F

    h = prior.image_size // prior.vae_scale_factor
    render = sphere_render(h, prior.device)
    image = F.interpolate(render["rgb"], size=(prior.image_size,) * 2, mode="bilinear",
                          align_corners=False)
    with torch.no_grad():
        x = prior.encode_images(image).float()
    return x, render


def phi_gradient_check(
    ref: tuple[Any, Any],
    test: tuple[Any, Any],
    timesteps: Sequence[int] = (50, 200, 500, 800, 950),
    scales: Sequence[float] = (1.0, 1024.0),
    decoder: str = "vae",
    seed: int = 0,
) -> dict[str, Any]:
    """SSD's ``φ``, ``∇φ`` and ``h`` with the ``test`` models against the ``ref`` models.

    Args:
        ref: ``(DiffusionPrior, DepthPrior)``, the reference (float32).
        test: ``(DiffusionPrior, DepthPrior)`` under test (float16 on the GPU); the same
            architecture and latent shape as ``ref``.
        timesteps: the ``t`` at which ``x_t = α_t x + σ_t ε`` is formed (one ``ε`` for all).
        scales: gradient scales ``S`` of the test side (the reference uses ``S = 1``).
        decoder: ``"vae"`` (φ through the VAE decoder, SSD's default) or ``"linear"``.
        seed: of ``ε``.

    Returns:
        ``{"timesteps": [...], "scales": [...], "rows": [...]}``, one row per ``(t, S)`` with
        ``phi_ref``, ``phi_test``, ``grad`` (:func:`compare` of ``∇φ``) and ``h``
        (:func:`compare` of ``h``), and ``summary``: the worst ``rel_l2`` and ``underflow``
        of ``∇φ`` and ``h`` over ``t``, per ``S``.
    """
    from sdlib.distill.ssd import depth_baseline

    ref_prior, ref_depth = ref
    test_prior, test_depth = test
    x, render = _clean_latents(ref_prior, seed)
    dev = x.device
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(dev)

    def baseline(prior: Any, depth: Any):
        decode = prior.decode_latents_linear if decoder == "linear" else prior.decode_latents
        return depth_baseline(decode, depth, render["depth"], render["opacity"])

    phi_ref, phi_test = baseline(ref_prior, ref_depth), baseline(test_prior, test_depth)
    saved = None
    if decoder == "linear":  # one fitted map for both sides (its least-squares fit is not
        # bitwise reproducible, and a different map is a different φ): only precision differs
        saved = test_prior._linear_decoder
        test_prior._linear_decoder = ref_prior.linear_decoder().to(test_prior.device)
    try:
        rows = _phi_rows(ref_prior, test_prior, phi_ref, phi_test, x, eps, timesteps, scales)
    finally:
        if decoder == "linear":
            test_prior._linear_decoder = saved
    return {"timesteps": [min(int(t), ref_prior.num_train_timesteps - 1) for t in timesteps],
            "scales": [float(s) for s in scales], "decoder": decoder, "rows": rows,
            "summary": _summary(rows, ("grad", "h"))}


def _phi_rows(ref_prior: Any, test_prior: Any, phi_ref: Any, phi_test: Any, x: Tensor,
              eps: Tensor, timesteps: Sequence[int], scales: Sequence[float]) -> list[dict]:
    """The rows of :func:`phi_gradient_check`: ``∇φ`` straight from autograd (recovering it
    from ``h`` would lose the small entries), ``h = ε φ − σ ∇φ`` as
    :func:`sdlib.control_variates.stein_control_variate` forms it."""
    from sdlib.control_variates import _phi_and_grad

    dev = x.device
    rows = []
    timesteps = [min(int(t), ref_prior.num_train_timesteps - 1) for t in timesteps]
    for t_int in timesteps:
        t = torch.tensor([t_int], device=dev)
        x_t = ref_prior.add_noise(x, eps, t).float()
        sigma = ref_prior.alpha_sigma(t)[1].float().reshape(-1, 1, 1, 1)
        v_ref, g_ref = _phi_and_grad(phi_ref, x_t, False)
        h_ref = eps * v_ref.reshape(-1, 1, 1, 1) - sigma * g_ref
        for scale in scales:
            v, g = _phi_and_grad(phi_test, x_t.to(test_prior.device), False, float(scale))
            v, g = v.float().to(dev), g.float().to(dev)
            h = eps * v.reshape(-1, 1, 1, 1) - sigma * g
            rows.append({"t": int(t_int), "scale": float(scale), "sigma": float(sigma),
                         "phi_ref": float(v_ref.mean()), "phi_test": float(v.mean()),
                         "grad": compare(g, g_ref), "h": compare(h, h_ref)})
    return rows


def _summary(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Per scale: the worst relative error and underflow over the rows (NaN-safe)."""
    out: dict[str, Any] = {}
    for scale in sorted({r["scale"] for r in rows}):
        sel = [r for r in rows if r["scale"] == scale]
        entry: dict[str, float] = {}
        for key in keys:
            errs = [r[key]["rel_l2"] for r in sel]
            entry[f"{key}_rel_l2_max"] = max(errs, key=lambda e: -1 if e != e else e)
            entry[f"{key}_underflow_max"] = max(r[key]["underflow"] for r in sel)
            entry[f"{key}_nonfinite"] = sum(r[key]["nonfinite"] for r in sel)
        out[f"S={scale:g}"] = entry
    return out


def _lora(prior: Any, config: Any) -> Any:
    from sdlib.distill.vsd import VSD

    return VSD(prior.unet, prior.alphas_cumprod, prior.prediction_type, config)


def lora_gradient_check(
    ref_prior: Any,
    test_prior: Any,
    prompt: str,
    scales: Sequence[float] = (1.0, 1024.0),
    batches: int = 3,
    rank: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """VSD's LoRA gradient with the ``test`` prior (float16) against the ``ref`` prior (float32).

    Both get a LoRA model (:class:`sdlib.distill.vsd.VSD`, ``rank``) with the *same* float32
    weights: the reference's, with every zero-initialised tensor (the LoRA ``B`` matrices, the
    camera MLP's last layer) drawn from ``N(0, 0.01²)`` as after some training, so that every
    tensor has a gradient. Each batch is the sphere's latents, the reference's text embedding
    of ``prompt`` and one camera; ``t``, the noise and the camera dropout come from a generator
    seeded alike on both sides.

    Returns:
        ``{"rows": [...], "summary": ...}``: one row per ``(batch, S)`` with the batch's ``t``,
        both losses, :func:`compare` of the whole LoRA gradient (``grad``) and of the LoRA
        ``A`` / ``B`` matrices and the camera MLP separately.
    """
    from sdlib.cameras import PAPER_CAMERAS, sample_cameras
    from sdlib.distill.vsd import VSDConfig

    config = VSDConfig(lora_rank=rank)
    torch.manual_seed(seed)
    vsd_ref, vsd_test = _lora(ref_prior, config), _lora(test_prior, config)
    names = [n for n, p in vsd_ref.unet.named_parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in vsd_ref.parameters:
            if not p.any():
                p.copy_(0.01 * torch.randn(p.shape, generator=gen))
        for p, q in zip(vsd_test.parameters, vsd_ref.parameters, strict=True):
            p.copy_(q.to(p.device))
    x, _ = _clean_latents(ref_prior, seed)
    text = ref_prior.text_embeddings(prompt).repeat(1).float()
    c2w = sample_cameras(PAPER_CAMERAS, 1, torch.Generator().manual_seed(seed), x.device).c2w
    groups = {"lora_A": [i for i, n in enumerate(names) if "lora_A" in n],
              "lora_B": [i for i, n in enumerate(names) if "lora_B" in n],
              "camera": [i for i, n in enumerate(names) if "class_embedding" in n]}

    def gradient(vsd: Any, batch: int, scale: float) -> tuple[list[Tensor], float]:
        dev = vsd.parameters[0].device
        with torch.enable_grad():
            loss = vsd.lora_loss(x.to(dev), text.to(dev), c2w.to(dev),
                                 torch.Generator().manual_seed(seed + 100 + batch))
            vsd.backward(loss, loss_scale=scale)
        grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().float()
                 .to(x.device) for p in vsd.parameters]
        vsd.optimizer.zero_grad(set_to_none=True)
        return grads, float(loss.detach())

    rows = []
    num_t = ref_prior.alphas_cumprod.shape[0]
    for batch in range(batches):
        t = int(torch.randint(0, num_t, (1,),
                              generator=torch.Generator().manual_seed(seed + 100 + batch)))
        g_ref, loss_ref = gradient(vsd_ref, batch, 1.0)
        for scale in scales:
            g, loss = gradient(vsd_test, batch, float(scale))
            row: dict[str, Any] = {"batch": batch, "t": t, "scale": float(scale),
                                   "loss_ref": loss_ref, "loss_test": loss,
                                   "grad": compare(torch.cat([a.flatten() for a in g]),
                                                   torch.cat([a.flatten() for a in g_ref]))}
            for name, idx in groups.items():
                if idx:
                    row[name] = compare(torch.cat([g[i].flatten() for i in idx]),
                                        torch.cat([g_ref[i].flatten() for i in idx]))
            rows.append(row)
    del vsd_ref, vsd_test
    return {"rank": rank, "scales": [float(s) for s in scales], "rows": rows,
            "summary": _summary(rows, ("grad",))}
