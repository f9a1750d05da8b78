"""Step time of SDS, SSD and VSD at the paper's settings, eager and compiled (issue 6, item 3).

Models: randomly initialised networks of the real sizes (no hub here):
Stable Diffusion 2.1-base (UNet 865M, VAE 84M, OpenCLIP-H-sized text encoder) and DPT-Hybrid
(MiDaS, 123M), built by :mod:`sdlib.priors.build`, saved in float16 and loaded through the same
:class:`~sdlib.priors.DiffusionPrior` / :class:`~sdlib.priors.DepthPrior` code as the real ones.
Settings: :func:`sdlib.train.paper_config` (64² render upsampled to 512², batch 1, guidance
100 for SDS/SSD and 7.5 for VSD, the full hash grid, float16 priors).

For each method, first eager then compiled (``TrainConfig.compile``; :mod:`sdlib.accelerate`):

* one θ-gradient at the initial θ with a fixed seed (:func:`sdlib.gradient_variance.
  theta_gradient`), compared between eager and compiled (relative L2 error, cosine), and the
  guided ``ε̂`` on one fixed input;
* ``--steps`` timed ``Trainer.step()`` calls after ``--warmup`` (CUDA events, median and
  quartiles; the first compiled steps include compilation, reported as ``compile_s``);
* the parts of a step timed alone (render, encoder, UNet, φ, LoRA).

Writes ``--out`` (JSON) as it goes and prints a table.

    python scripts/bench_paper_step.py --out notes/bench_paper_step_h100.json
    python scripts/bench_paper_step.py --variants eager,compiled,deterministic --parts 0 \
        --out $OUT/bench_paper_step_h200.json      # + each run's peak memory vs the pre-flight
                                                   # estimate, and TrainConfig.deterministic's cost
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from sdlib.timing import cuda_timings

PROMPT = "a delicious hamburger"


def cuda_ms(fn, n: int, warmup: int = 3) -> dict[str, float]:
    """Median and quartiles of ``fn()`` in milliseconds (CUDA events, after ``warmup`` calls)."""
    return cuda_timings(fn, repeats=n, warmup=warmup)


def build_models(workdir: Path) -> tuple[Path, Path]:
    """SD 2.1-base- and DPT-Hybrid-sized random models, saved once as float16 folders."""
    from sdlib.priors.build import (
        build_dpt_hybrid,
        build_sd21_base_components,
        save_dpt,
        save_sd,
    )

    sd, dpt = workdir / "sd21_base_random", workdir / "dpt_hybrid_random"
    if not (sd / "model_index.json").exists():
        with torch.device("cuda"):
            comps = build_sd21_base_components([PROMPT])
        save_sd(sd, comps, dtype=torch.float16, max_shard_size="5GB")
        del comps
    if not (dpt / "config.json").exists():
        with torch.device("cuda"):
            model = build_dpt_hybrid()
        save_dpt(dpt, model, dtype=torch.float16)
        del model
    torch.cuda.empty_cache()
    return sd, dpt


def part_timings(trainer, n: int) -> dict[str, dict[str, float]]:
    """The parts of one step, each timed alone (batch 1)."""
    import torch.nn.functional as F

    from sdlib.cameras import sample_cameras
    from sdlib.control_variates import stein_control_variate

    cfg, prior = trainer.config, trainer.prior
    gen = torch.Generator().manual_seed(1)
    cams = sample_cameras(cfg.cameras, 1, gen, trainer.device)
    out = trainer.render(cams)
    res: dict[str, dict[str, float]] = {}

    def render_fb():
        o = trainer.render(cams)
        o.rgb.sum().backward()

    res["render_fwd_bwd"] = cuda_ms(render_fb, n)
    img = out.rgb.detach().permute(0, 3, 1, 2).contiguous().requires_grad_(True)

    def encode_fb():
        x = F.interpolate(img, size=(prior.image_size,) * 2, mode="bilinear",
                          align_corners=False)
        prior.encode_images(x).float().sum().backward()

    res["upsample_encode_fwd_bwd"] = cuda_ms(encode_fb, n)
    with torch.no_grad():
        z = trainer.encode(out)
    t = torch.full((1,), 500, device=trainer.device, dtype=torch.long)
    eps = torch.randn(z.shape, generator=gen).to(trainer.device)
    x_t = prior.add_noise(z, eps, t)
    text = trainer.embeddings.for_views([0])

    from sdlib.accelerate import mark_step

    def unet():
        mark_step()
        with torch.no_grad():
            prior.predict_noise(x_t, t, text, cfg.guidance_scale).float()

    res["unet_guided"] = cuda_ms(unet, n)
    if cfg.method == "ssd":
        draw = trainer.make_draw(cams, out, z)
        phi = trainer.method.baseline(draw)
        sigma = prior.alpha_sigma(t)[1]

        def phi_fwd_bwd():
            mark_step()
            stein_control_variate(phi, x_t, eps, sigma)

        res["phi_fwd_bwd"] = cuda_ms(phi_fwd_bwd, n)
    if cfg.method == "vsd":
        vsd = trainer.method

        def lora_predict():
            mark_step()
            vsd.predict_noise(x_t, t, text, cams.c2w)

        def lora_train():
            mark_step()
            vsd.train_step(z, text, cams.c2w)

        res["lora_predict"] = cuda_ms(lora_predict, n)
        res["lora_train_step"] = cuda_ms(lora_train, n)
    return res


def micro_benchmarks(prior, depth, n: int) -> dict[str, dict[str, float]]:
    """The VAE encoder, VAE decoder and depth model alone, forward + backward to the input:
    eager NCHW, then eager with cuDNN autotuning and NHWC (restored afterwards)."""
    dev = prior.device
    img = torch.rand(1, 3, 512, 512, device=dev, requires_grad=True)
    lat = torch.randn(1, 4, 64, 64, device=dev, requires_grad=True)
    dimg = torch.rand(1, 3, 512, 512, device=dev, requires_grad=True)
    fns = {
        "vae_encoder": lambda: prior.encode_images(img).float().sum().backward(),
        "vae_decoder": lambda: prior.decode_latents(lat).float().sum().backward(),
        "depth_model": lambda: depth(dimg).sum().backward(),
    }
    res = {}
    for name, fn in fns.items():
        res[f"{name}_eager"] = cuda_ms(fn, n)
    torch.backends.cudnn.benchmark = True
    prior.vae.to(memory_format=torch.channels_last)
    depth.model.to(memory_format=torch.channels_last)
    for name, fn in fns.items():
        res[f"{name}_eager_cudnn_benchmark_nhwc"] = cuda_ms(fn, n)
    torch.backends.cudnn.benchmark = False
    prior.vae.to(memory_format=torch.contiguous_format)
    depth.model.to(memory_format=torch.contiguous_format)
    return res


def profile_step(trainer, n: int = 5) -> list[dict]:
    """The 15 CUDA kernels (by total time) of ``n`` training steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            trainer.step()
        torch.cuda.synchronize()
    rows = []
    for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:15]:
        rows.append({"name": e.key[:90], "ms_per_step": e.device_time_total / 1000 / n,
                     "calls_per_step": e.count / n})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="sds,ssd,vsd")
    ap.add_argument("--variants", default="eager,compiled",
                    help="eager, compiled, deterministic (eager with TrainConfig.deterministic)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--parts", type=int, default=10, help="repeats per part (0: skip parts)")
    ap.add_argument("--workdir", default="/tmp/sdlib_paper_models")
    ap.add_argument("--micro", type=int, default=0, help="repeats of the module benchmarks")
    ap.add_argument("--profile", default="sds_compiled,ssd_linear_compiled",
                    help="runs whose step is profiled (top kernels)")
    ap.add_argument("--ssd_linear", action=argparse.BooleanOptionalAction, default=True,
                    help="also SSD with the linear latent decoder (compiled)")
    ap.add_argument("--out", default="notes/bench_paper_step_h100.json")
    args = ap.parse_args()
    if "deterministic" in args.variants:  # cuBLAS reads it at its first call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    from sdlib.gradient_variance import theta_gradient
    from sdlib.preflight import estimate_gpu_memory
    from sdlib.priors import DepthPrior, DiffusionPrior
    from sdlib.reproducibility import use_deterministic
    from sdlib.train import Trainer, paper_config

    t0 = time.time()
    sd, dpt = build_models(Path(args.workdir))
    prior = DiffusionPrior(model=str(sd), device="cuda", dtype="float16")
    depth = DepthPrior(model=str(dpt), device="cuda", dtype="float16")
    report: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                    "prior": repr(prior), "depth": repr(depth), "load_s": time.time() - t0,
                    "steps": args.steps, "warmup": args.warmup, "runs": {}}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out_path.write_text(json.dumps(report, indent=2))

    if args.micro:
        report["micro_ms"] = micro_benchmarks(prior, depth, args.micro)
        save()
        print("micro: " + ", ".join(f"{k} {v['median']:.1f}"
                                    for k, v in report["micro_ms"].items()), flush=True)
    # a fixed input for the ε̂ comparison
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(1, 4, 64, 64, generator=gen).cuda()
    tt = torch.tensor([600], device="cuda")
    emb = prior.text_embeddings(PROMPT).views[:1]
    reference: dict[str, torch.Tensor] = {}
    methods = args.methods.split(",")
    for variant in args.variants.split(","):
        compiled = variant == "compiled"
        if variant == "eager":
            with torch.no_grad():
                reference["eps_hat"] = prior.predict_noise(z, tt, emb, 100.0).float().clone()
        runs = [(m, m) for m in methods]
        if compiled and args.ssd_linear and "ssd" in methods:
            runs.append(("ssd", "ssd_linear"))
        for method, name in runs:
            key = f"{name}_{variant}"
            cfg = paper_config(PROMPT, method, device="cuda", compile=compiled, eval_every=0,  # type: ignore[arg-type]
                               checkpoint_every=0, turntable_frames=0, mesh_resolution=0,
                               prior=str(sd), depth=str(dpt))
            if name == "ssd_linear":
                cfg = replace(cfg, ssd=replace(cfg.ssd, decoder="linear"))
            if variant == "deterministic":
                cfg = replace(cfg, deterministic=True)
            torch.cuda.reset_peak_memory_stats()  # each run's own peak (priors stay loaded)
            trainer = Trainer(cfg, prior=prior, depth=depth)
            row: dict = {"method": method, "variant": variant,
                         "guidance_scale": cfg.guidance_scale,
                         "preflight_estimate_gb": estimate_gpu_memory(cfg).total / 2**30}
            t1 = time.time()
            try:
                g = theta_gradient(trainer)
            except RuntimeError as err:  # an op without a deterministic CUDA implementation
                if variant != "deterministic":
                    raise
                row["error"] = str(err)[:500]
                report["runs"][key] = row
                save()
                print(f"{key}: {row['error']}", flush=True)
                del trainer
                use_deterministic(False)
                continue
            torch.cuda.synchronize()
            row["first_gradient_s"] = time.time() - t1
            if variant != "eager" and name in reference:
                ref = reference[name]
                row["theta_grad_rel_err"] = float((g - ref).norm() / ref.norm())
                row["theta_grad_cosine"] = float(torch.nn.functional.cosine_similarity(
                    g, ref, dim=0))
            elif variant == "eager":
                reference[name] = g
            t1 = time.time()
            for _ in range(args.warmup):
                trainer.step()
            torch.cuda.synchronize()
            row["warmup_s"] = time.time() - t1
            row["step_ms"] = cuda_ms(trainer.step, args.steps, warmup=0)
            if args.parts:
                row["parts_ms"] = part_timings(trainer, args.parts)
            row["max_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
            if key in args.profile.split(","):
                row["top_kernels"] = profile_step(trainer)
            report["runs"][key] = row
            save()
            print(f"{key:14s} step {row['step_ms']['median']:7.1f} ms "
                  f"(q1 {row['step_ms']['q1']:.1f}, q3 {row['step_ms']['q3']:.1f}) "
                  f"first-grad {row['first_gradient_s']:.0f}s warmup {row['warmup_s']:.0f}s "
                  + (f"rel.err {row['theta_grad_rel_err']:.2e} cos {row['theta_grad_cosine']:.6f}"
                     if "theta_grad_rel_err" in row else ""), flush=True)
            for k in row.get("top_kernels", [])[:6]:
                print(f"    {k['ms_per_step']:6.2f} ms x{k['calls_per_step']:.0f} {k['name'][:70]}")
            if args.parts:
                print("    parts: " + ", ".join(f"{k} {v['median']:.1f}"
                                                for k, v in row["parts_ms"].items()), flush=True)
            print(f"    peak {row['max_memory_gb']:.2f} GiB, pre-flight estimate "
                  f"{row['preflight_estimate_gb']:.2f} GiB", flush=True)
            del trainer
            if variant == "deterministic":
                use_deterministic(False)
            torch.cuda.empty_cache()
        if compiled:
            with torch.no_grad():
                e = prior.predict_noise(z, tt, emb, 100.0).float()
            ref = reference["eps_hat"]
            report["eps_hat_rel_err"] = float((e - ref).norm() / ref.norm())
            save()
    runs = report["runs"]
    summary: dict = {}
    for variant in args.variants.split(","):
        base = runs.get(f"sds_{variant}")
        for method in [*methods, "ssd_linear"]:
            r = runs.get(f"{method}_{variant}")
            if r is None or base is None:
                continue
            summary[f"{method}_{variant}"] = {
                "ms": r["step_ms"]["median"],
                "x_sds": r["step_ms"]["median"] / base["step_ms"]["median"]}
    report["summary"] = summary
    report["total_s"] = time.time() - t0
    save()
    print(json.dumps(summary, indent=1))
    print(f"eps_hat rel err (compiled vs eager): {report.get('eps_hat_rel_err')}")


if __name__ == "__main__":
    main()
