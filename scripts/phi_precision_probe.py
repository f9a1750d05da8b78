"""Is the float16 ``∇φ`` of a random DPT-Hybrid wrong, or is the random network's gradient rough?

The H200's float16 check (``scripts/bench_paper_step.py --fp16_check``, issue 14) found SSD's
``∇φ`` in float16 a relative L2 distance of ~1.0 from float32 (0.58 with the linear decoder,
i.e. from the depth model alone), whatever the gradient scale, while ``φ`` itself agreed to
2e-3. Underflow is not the cause (0.01% of entries). This probe asks, on the CPU, at full size
and with the depth model alone (the sphere image of :func:`sdlib.precision.sphere_render`):

1. how far float32, bfloat16 and float16 ``∇_image φ`` are from a float64 reference;
2. how far the float64 ``∇φ`` itself moves when the image moves by half a float16 (or
   bfloat16) rounding step - the gradient field's roughness at the scale of the rounding.

If (2) is as large as the float16 error, the random network's gradient is rough at rounding
scale and the error says nothing about how a trained MiDaS behaves; if (2) is small while (1)
is large, the float16 backward itself loses the gradient.

    python scripts/phi_precision_probe.py --out notes/phi_precision_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from sdlib.distill.ssd import masked_pearson
from sdlib.precision import compare, sphere_render
from sdlib.priors.build import build_dpt_hybrid


def phi_and_grad(model, image: torch.Tensor, inv_depth: torch.Tensor, mask: torch.Tensor,
                 dtype: torch.dtype, input_size: int, mean: float = 0.5, std: float = 0.5
                 ) -> tuple[float, torch.Tensor]:
    """``φ = 1 − Pearson(D(image), 1/depth)`` and ``∇_image φ`` (float64), the model in ``dtype``.

    ``image`` ``[1, 3, H, W]`` float64 in [0, 1]; ``inv_depth``/``mask`` ``[1, h, w]``; the
    model sees ``(resize(image) − mean) / std``.
    """
    model.to(dtype)
    img = image.clone().requires_grad_(True)
    x = F.interpolate(img, size=(input_size,) * 2, mode="bilinear", align_corners=False)
    x = ((x - mean) / std).to(dtype)
    pred = model(pixel_values=x).predicted_depth.double()[:, None]
    pred = F.interpolate(pred, size=tuple(mask.shape[-2:]), mode="bilinear",
                         align_corners=False)[:, 0]
    phi = 1.0 - masked_pearson(pred, inv_depth, mask)
    (grad,) = torch.autograd.grad(phi.sum(), img)
    return float(phi.detach()), grad.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="the tiny architecture (a smoke run)")
    ap.add_argument("--depth", default="",
                    help="a trained depth model instead of the random DPT-Hybrid: 'shapezoo' (the "
                         "shipped one), a folder or a hub id (Intel/dpt-hybrid-midas)")
    ap.add_argument("--random_init", action="store_true",
                    help="with --depth: its architecture re-drawn at random (head made lively as "
                         "build_dpt_hybrid's), the same network untrained")
    ap.add_argument("--image_size", type=int, default=512, help="the decoded image's side")
    ap.add_argument("--mask_size", type=int, default=64, help="the render's side (φ's pixels)")
    ap.add_argument("--dtypes", default="float32,bfloat16,float16")
    ap.add_argument("--noise", type=float, default=0.0,
                    help="std of a fixed Gaussian texture added to the image (breaks the flat "
                         "regions' ties in max-pooling and ReLUs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="outputs/phi_precision_cpu.json")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.time()
    mean = std = 0.5
    if args.depth:
        from transformers import AutoModelForDepthEstimation

        from sdlib.priors import DepthPrior
        from sdlib.priors.build import _lively_depth_head

        prior = DepthPrior(model=args.depth)
        model, input_size = prior.model, prior.input_size
        mean, std = float(prior.mean.flatten()[0]), float(prior.std.flatten()[0])
        if args.random_init:
            torch.manual_seed(args.seed)
            model = _lively_depth_head(AutoModelForDepthEstimation.from_config(model.config))
    else:
        model = build_dpt_hybrid(seed=args.seed, tiny=args.tiny)
        input_size = model.config.image_size
    model = model.double().eval().requires_grad_(False)
    image = sphere_render(args.image_size)["rgb"].double()
    if args.noise > 0:
        texture = torch.randn(image.shape, generator=torch.Generator().manual_seed(args.seed + 2),
                              dtype=torch.float64)
        image = (image + args.noise * texture).clamp(0.0, 1.0)
    render = sphere_render(args.mask_size)
    mask = render["opacity"] > 0.5
    inv_depth = torch.where(mask, 1.0 / render["depth"], torch.zeros_like(render["depth"])).double()

    def grad_of(img, dtype):
        return phi_and_grad(model, img, inv_depth, mask, dtype, input_size, mean, std)

    phi_ref, g_ref = grad_of(image, torch.float64)
    res: dict = {"depth": args.depth or "random DPT-Hybrid", "random_init": args.random_init,
                 "tiny": args.tiny, "image_size": args.image_size, "input_size": input_size,
                 "noise": args.noise,
                 "phi_float64": phi_ref, "grad_norm_float64": float(g_ref.norm()),
                 "precision": {}, "roughness": {}}
    print(f"float64: φ = {phi_ref:.6f}, |∇φ| = {g_ref.norm():.4e} ({time.time() - t0:.0f} s)")
    for name in [d for d in args.dtypes.split(",") if d]:
        dtype = getattr(torch, name)
        try:
            phi, g = grad_of(image, dtype)
        except (RuntimeError, NotImplementedError) as err:  # an op without a CPU kernel
            res["precision"][name] = {"error": str(err)[:300]}
            print(f"{name}: not run on this device ({str(err)[:120]})")
            continue
        cmp = compare(g, g_ref)
        cos = float(F.cosine_similarity(g.flatten(), g_ref.flatten(), dim=0))
        res["precision"][name] = {"phi": phi, "cosine": cos, **cmp}
        print(f"{name}: φ = {phi:.6f}, ∇φ rel. L2 error {cmp['rel_l2']:.3e}, cosine {cos:.4f}"
              f" ({time.time() - t0:.0f} s)")
    # the rounding step of a value in [0.5, 1): 2^-11 (float16), 2^-8 (bfloat16)
    gen = torch.Generator().manual_seed(args.seed + 1)
    for name, half_ulp in (("float16", 2.0**-12), ("bfloat16", 2.0**-9)):
        delta = (torch.rand(image.shape, generator=gen, dtype=torch.float64) * 2 - 1) * half_ulp
        phi, g = grad_of(image + delta, torch.float64)
        cmp = compare(g, g_ref)
        cos = float(F.cosine_similarity(g.flatten(), g_ref.flatten(), dim=0))
        res["roughness"][name] = {"half_ulp": half_ulp, "phi": phi, "cosine": cos, **cmp}
        print(f"float64 at image ± {half_ulp:.1e} ({name}'s half rounding step): "
              f"∇φ moves by rel. {cmp['rel_l2']:.3e}, cosine {cos:.4f}")
    res["seconds"] = time.time() - t0
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {args.out} ({res['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
