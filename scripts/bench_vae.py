"""How fast can φ's VAE decode forward + backward go at the paper's size? (issue 6, item 3)

SSD's depth baseline needs ``∇_{x_t} D(decode(x_t))``: the SD 2.1 VAE decoder (64² latents →
512²) forward and backward to its input, then DPT-Hybrid at 384². This script measures, on
randomly initialised modules of the real sizes in float16:

* ``conv``: single 3×3 convolutions at the decoder's shapes, forward and backward to the input,
  NCHW against channels-last (cuDNN autotuned): what the hardware gives for the bulk of the FLOPs;
* ``decoder`` / ``encoder``: the VAE's decoder (encoder) forward + backward to the input, eager and
  compiled, NCHW and channels-last, with CUDA graphs, and with the exact sub-pixel form of the
  decoder's nearest-upsample + 3×3 convolutions (:func:`sdlib.accelerate.subpixel_upsamplers`);
* ``depth``: DPT-Hybrid forward + backward to its input, float32 and float16, eager and compiled;
* ``unet``: the SD 2.1-base UNet, guided (batch 2) and forward + backward (batch 1), eager and as
  CUDA graphs, with and without forced channels-last convolutions;
* ``overlap``: the guided UNet (batch 2) and φ (decoder + DPT, forward + backward), one after the
  other and on two CUDA streams at once;

Variant names combine ``eager`` / ``compiled`` (Inductor) / ``cudagraphs`` (Inductor + CUDA
graphs) with ``nchw`` or ``nhwc`` (channels-last weights and input), ``forcelayout`` (Inductor
runs every convolution channels-last) and ``subpixel``. The eager variant's FLOPs are counted
(``torch.utils.flop_counter``), so every time is also a rate to set against the GPU's peak.
Writes ``--out`` as it goes and prints a table.

    python scripts/bench_vae.py --out notes/bench_vae_h100.json
    python scripts/bench_vae.py --parts decoder --profile compiled_forcelayout_subpixel
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from sdlib.timing import cuda_timings


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def conv_table(n: int) -> dict:
    """3×3 convolutions at the decoder's shapes: NCHW vs channels-last, forward and bwd-input."""
    torch.backends.cudnn.benchmark = True
    shapes = [(512, 64), (512, 128), (512, 256), (256, 256), (256, 512), (128, 512)]
    res = {}
    for c, s in shapes:
        for fmt in ("nchw", "nhwc"):
            mf = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
            conv = torch.nn.Conv2d(c, c, 3, padding=1).cuda().half().to(memory_format=mf)
            conv.requires_grad_(False)
            x = torch.randn(1, c, s, s, device="cuda", dtype=torch.half).to(memory_format=mf)
            x.requires_grad_(True)
            g = torch.randn_like(x)
            fwd = cuda_timings(lambda conv=conv, x=x: conv(x), n, 3)
            y = conv(x)
            def bwd_in(y=y, x=x, g=g):
                return torch.autograd.grad(y, x, g, retain_graph=True)

            bwd = cuda_timings(bwd_in, n, 3)
            f = 2 * s * s * c * c * 9
            res[f"c{c}_s{s}_{fmt}"] = {"fwd_ms": fwd["median"], "bwd_in_ms": bwd["median"],
                                       "fwd_tflops": f / fwd["median"] / 1e9,
                                       "bwd_tflops": f / bwd["median"] / 1e9}
    torch.backends.cudnn.benchmark = False
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="conv,decoder,encoder,overlap")
    ap.add_argument("--variants", default="eager_nchw,compiled_nchw,compiled_nchw_subpixel,"
                    "compiled_forcelayout_subpixel,compiled_forcelayout_nhwc_subpixel,"
                    "cudagraphs_forcelayout_nhwc_subpixel")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--unet_precision", action="store_true",
                    help="unet part: float32 vs float16, eager vs CUDA graphs")
    ap.add_argument("--profile", default="", help="variants whose CUDA kernels are listed")
    ap.add_argument("--budget_s", type=float, default=540, help="skip what starts after this")
    ap.add_argument("--out", default="notes/bench_vae_h100.json")
    args = ap.parse_args()
    from diffusers import AutoencoderKL
    from diffusers.models.attention_processor import AttnProcessor

    from sdlib.accelerate import mark_step, subpixel_upsamplers

    t0 = time.time()
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}

    def save():
        out_path.write_text(json.dumps(report, indent=2))

    parts = args.parts.split(",")
    if "conv" in parts:
        report["conv"] = conv_table(args.repeats)
        save()
        for k, v in report["conv"].items():
            print(f"conv {k:16s} fwd {v['fwd_ms']:.3f} ms {v['fwd_tflops']:5.0f} TF/s   "
                  f"bwd-in {v['bwd_in_ms']:.3f} ms {v['bwd_tflops']:5.0f} TF/s", flush=True)

    def make_vae():
        torch.manual_seed(0)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
            sample_size=512).cuda().half().eval()
        vae.requires_grad_(False)
        vae.set_attn_processor(AttnProcessor())
        return vae

    for part in ("decoder", "encoder"):
        if part not in parts:
            continue
        report[part] = {}
        shape = (1, 4, 64, 64) if part == "decoder" else (1, 3, 512, 512)
        reference = None
        for variant in args.variants.split(","):
            if time.time() - t0 > args.budget_s:
                print(f"{part} {variant}: skipped (budget)")
                continue
            torch._dynamo.reset()
            vae = make_vae()
            net = vae.decoder if part == "decoder" else vae.encoder
            fmt = torch.channels_last if "nhwc" in variant else torch.contiguous_format
            if "subpixel" in variant:
                subpixel_upsamplers(net)
            net.to(memory_format=fmt)
            # "forcelayout": Inductor runs every convolution channels-last, whatever the input
            options = {"force_layout_optimization": True} if "forcelayout" in variant else None
            if variant.startswith("compiled"):
                net = torch.compile(net, dynamic=False, options=options)
            elif variant.startswith("cudagraphs"):
                options = {**(options or {}), "triton.cudagraphs": True}
                net = torch.compile(net, dynamic=False, options=options)
            x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).cuda().half()
            x = x.to(memory_format=fmt).requires_grad_(True)
            gy = None

            def step(net=net, x=x, count_flops=False):
                nonlocal gy
                mark_step()
                y = net(x)
                y = y.sample if hasattr(y, "sample") else y
                if gy is None:
                    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
                    gy = gy.cuda().half()
                if count_flops:  # FlopCounterMode does not follow autograd.grad
                    y.backward(gy)
                    return x.grad
                return torch.autograd.grad(y, x, gy)[0]

            t1 = time.time()
            g = step().float().clone()
            compile_s = time.time() - t1
            row = {"compile_s": compile_s, "ms": cuda_timings(step, args.repeats, 3)}
            if variant == "eager_nchw":
                reference = g
                row["tflop"] = flops(lambda: step(count_flops=True)) / 1e12
                report[part]["tflop"] = row["tflop"]
            elif reference is not None:
                row["rel_err_vs_eager"] = float((g - reference).norm() / reference.norm())
            tf = report[part].get("tflop")
            if tf:
                row["tflops"] = tf / row["ms"]["median"] * 1e3
            if variant in args.profile.split(","):
                row["top_kernels"] = top_kernels(step)
            report[part][variant] = row
            save()
            print(f"{part:8s} {variant:26s} {row['ms']['median']:7.2f} ms "
                  f"{row.get('tflops', 0):5.0f} TF/s  err {row.get('rel_err_vs_eager', 0):.1e}  "
                  f"compile {compile_s:.0f}s", flush=True)
            for k in row.get("top_kernels", []):
                print(f"    {k['ms']:6.2f} ms x{k['calls']:3d} {k['name'][:100]}")
            del net, vae
            torch.cuda.empty_cache()

    if "depth" in parts and time.time() - t0 < args.budget_s:
        report["depth"] = depth_variants(args.repeats)
        save()
        for k, v in report["depth"].items():
            print(f"depth    {k:28s} {v['ms']:7.2f} ms  vs fp32 eager: depth "
                  f"{v['depth_rel_err']:.1e}, input grad {v['grad_rel_err']:.1e}", flush=True)
    if "unet" in parts and time.time() - t0 < args.budget_s:
        report["unet"] = unet_variants(args.repeats, precision_check=args.unet_precision)
        save()
        for k, v in report["unet"].items():
            print(f"unet     {k:34s} {v['ms']:7.2f} ms  err vs eager {v['rel_err_vs_eager']:.1e}",
                  flush=True)
    if "overlap" in parts and time.time() - t0 < args.budget_s:
        try:
            report["overlap"] = overlap(args.repeats)
        except Exception as err:  # noqa: BLE001 - a benchmark records what failed and goes on
            report["overlap"] = {"error": repr(err)[:500]}
        save()
        print("overlap: " + ", ".join(f"{k} {v}" for k, v in report["overlap"].items()))
    report["total_s"] = time.time() - t0
    save()


def depth_variants(n: int) -> dict:
    """DPT-Hybrid forward + backward to its 384² input: eager float32 (the reference), eager
    float16 (twice: run-to-run noise), and float16 compiled as :func:`sdlib.accelerate.
    compile_depth` makes it (Inductor; with CUDA graphs; with forced channels-last)."""
    from sdlib.accelerate import _compile, mark_step
    from sdlib.priors.build import build_dpt_hybrid

    with torch.device("cuda"):
        dpt32 = build_dpt_hybrid()
    dpt32 = dpt32.eval().requires_grad_(False)
    dpt16 = build_dpt_hybrid().cuda().half().eval().requires_grad_(False)
    dpt16.load_state_dict({k: v.half() for k, v in dpt32.state_dict().items()})
    x32 = torch.rand(1, 3, 384, 384, generator=torch.Generator().manual_seed(3)).cuda()
    res, ref = {}, None
    for name, mode, cl in (("eager_fp32", None, False), ("eager_fp16", None, False),
                           ("eager_fp16_again", None, False), ("inductor_fp16", "default", False),
                           ("cudagraphs_fp16", "reduce-overhead", False),
                           ("cudagraphs_forcelayout_fp16", "reduce-overhead", True)):
        torch._dynamo.reset()
        base = dpt32 if name.endswith("fp32") else dpt16
        net = base if mode is None else _compile(base, None if mode == "default" else mode,
                                                 channels_last=cl)  # as compile_depth would
        x = x32.to(next(base.parameters()).dtype).requires_grad_(True)

        def step(net=net, x=x):
            mark_step()
            d = net(pixel_values=x).predicted_depth
            return d, torch.autograd.grad(d.float().sum(), x)[0]

        d, g = step()
        d, g = d.float().clone(), g.float().clone()
        ref = (d, g) if ref is None else ref
        res[name] = {"ms": cuda_timings(step, n, 3)["median"],
                     "depth_rel_err": float((d - ref[0]).norm() / ref[0].norm()),
                     "grad_rel_err": float((g - ref[1]).norm() / ref[1].norm())}
    return res


def unet_variants(n: int, precision_check: bool = False) -> dict:
    """The SD 2.1-base UNet at 64² latents: the guided prediction (batch 2, no gradient) and a
    forward + backward to the input at batch 1 (the shape of VSD's LoRA training step), eager and
    compiled with CUDA graphs, with and without forced channels-last convolutions.

    ``precision_check``: instead, the forward + backward in float32 and float16, eager and as
    CUDA graphs, each against eager float32 (is a compiled difference rounding or an error?).
    """
    from sdlib.accelerate import _compile, mark_step
    from sdlib.priors.build import build_sd21_base_components

    with torch.device("cuda"):
        unet32 = build_sd21_base_components(["a"])["unet"]
    unet32 = unet32.eval().requires_grad_(False)
    unet16 = copy.deepcopy(unet32).half()
    g = torch.Generator().manual_seed(4)
    x2 = torch.randn(2, 4, 64, 64, generator=g).cuda()
    e2 = torch.randn(2, 77, 1024, generator=g).cuda()
    t2 = torch.tensor([500, 500], device="cuda")
    if precision_check:
        runs = [("fwd_bwd_batch1", "eager_fp32", None, False),
                ("fwd_bwd_batch1", "eager_fp16", None, False),
                ("fwd_bwd_batch1", "cudagraphs_fp32", "reduce-overhead", False),
                ("fwd_bwd_batch1", "cudagraphs_fp16", "reduce-overhead", False)]
    else:
        runs = [(kind, name, mode, cl) for name, mode, cl in (
            ("eager", None, False), ("cudagraphs", "reduce-overhead", False),
            ("cudagraphs_forcelayout", "reduce-overhead", True))
            for kind in ("guided_batch2", "fwd_bwd_batch1")]
    res, refs = {}, {}
    for kind, name, mode, cl in runs:
        torch._dynamo.reset()
        base = unet32 if name.endswith("fp32") else unet16
        dt = next(base.parameters()).dtype
        net = base if mode is None else _compile(base, mode, channels_last=cl)

        def guided(net=net, dt=dt):
            mark_step()
            with torch.no_grad():
                return net(x2.to(dt), t2, encoder_hidden_states=e2.to(dt)).sample

        def fwd_bwd(net=net, dt=dt):
            mark_step()
            x = x2[:1].to(dt).requires_grad_(True)
            out = net(x, t2[:1], encoder_hidden_states=e2[:1].to(dt)).sample
            return torch.autograd.grad(out.float().square().mean(), x)[0]

        fn = guided if kind == "guided_batch2" else fwd_bwd
        out = fn().float().clone()
        refs.setdefault(kind, out)
        res[f"{kind}_{name}"] = {
            "ms": cuda_timings(fn, n, 3)["median"],
            "rel_err_vs_eager": float((out - refs[kind]).norm() / refs[kind].norm())}
    return res


def top_kernels(fn, n: int = 5, top: int = 25) -> list[dict]:
    """The CUDA kernels of ``fn`` by total time (per call), with the sum over all kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
    events = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
    events = [e for e in events if e.device_time_total > 0]
    rows = [{"name": "ALL KERNELS", "ms": sum(e.device_time_total for e in events) / 1e3 / n,
             "calls": sum(e.count for e in events) // n}]
    rows += [{"name": e.key, "ms": e.device_time_total / 1e3 / n, "calls": e.count // n}
             for e in events[:top]]
    return rows


def overlap(n: int) -> dict:
    """The guided UNet (batch 2, compiled with CUDA graphs) and φ's decoder + DPT fwd + bwd
    (Inductor without CUDA graphs; channels-last weights and sub-pixel upsamplers in the
    decoder): one after the other, and φ on a second stream. (DPT as CUDA graphs on the side
    stream hit a device-side index assert in an Inductor kernel.)"""
    from diffusers.models.attention_processor import AttnProcessor

    from sdlib.accelerate import mark_step, subpixel_upsamplers
    from sdlib.priors.build import build_dpt_hybrid, build_sd21_base_components

    torch._dynamo.reset()
    with torch.device("cuda"):
        comps = build_sd21_base_components(["a"])
        dpt = build_dpt_hybrid()
    unet, vae = comps["unet"].half().eval(), comps["vae"].half().eval()
    dpt = dpt.half().eval()
    for m in (unet, vae, dpt):
        m.requires_grad_(False)
    vae.set_attn_processor(AttnProcessor())
    dec = vae.decoder
    subpixel_upsamplers(dec)
    dec.to(memory_format=torch.channels_last)
    dec = torch.compile(dec, dynamic=False)
    unet_c = torch.compile(unet, mode="reduce-overhead", dynamic=False)
    dpt_c = torch.compile(dpt, dynamic=False)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(1, 4, 64, 64, generator=g).cuda().half()
    emb = torch.randn(2, 77, 1024, generator=g).cuda().half()
    tt = torch.tensor([500, 500], device="cuda")

    def run_unet():
        with torch.no_grad():
            return unet_c(torch.cat([x_t, x_t]), tt, encoder_hidden_states=emb).sample.clone()

    def run_phi():
        x = x_t.detach().to(memory_format=torch.channels_last).requires_grad_(True)
        img = dec(x)
        img = F.interpolate(img, size=(384, 384), mode="bilinear", align_corners=False)
        d = dpt_c(pixel_values=img).predicted_depth
        return torch.autograd.grad(d.float().std(), x)[0]

    side = torch.cuda.Stream()

    def sequential():
        mark_step()
        run_unet()
        run_phi()

    def concurrent():
        mark_step()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            gphi = run_phi()
        e = run_unet()
        torch.cuda.current_stream().wait_stream(side)
        return e, gphi

    def unet_only():
        mark_step()
        run_unet()

    def phi_only():
        mark_step()
        run_phi()

    res = {}
    for name, fn in (("unet_ms", unet_only), ("phi_ms", phi_only), ("sequential_ms", sequential),
                     ("concurrent_ms", concurrent)):
        for _ in range(3):
            fn()
        res[name] = cuda_timings(fn, n, 3)["median"]
    return res


if __name__ == "__main__":
    main()
