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

Also, per run (issue 14, item 3): ``first_step_s``, the seconds from the start of the
``Trainer``'s construction to the end of its first ``step()`` (compilation included; after the
θ-gradient unless ``--no-theta_grad``), the compile cache used and its hit counters; with
``--long_steps N``, N further steps checked for NaN / inf (the loss, every θ-gradient, and θ and
the estimator's state at the end), their median step time and the process's peak GPU memory
with the priors loaded (allocated and reserved by PyTorch, and used on the device). With
``--fp16_check``, SSD's ``∇φ`` and ``h`` and VSD's LoRA gradient with float16 priors against
float32 ones (:mod:`sdlib.precision`), for gradient scales 1 and 1024.

Writes ``--out`` (JSON) as it goes and prints a table.

    python scripts/bench_paper_step.py --out notes/bench_paper_step_h100.json
    python scripts/bench_paper_step.py --variants eager,compiled,deterministic --parts 0 \
        --out $OUT/bench_paper_step_h200.json      # + each run's peak memory vs the pre-flight
                                                   # estimate, and TrainConfig.deterministic's cost
    python scripts/bench_paper_step.py --methods sds --variants compiled --no-theta_grad \
        --parts 0 --long_steps 1000 --out $OUT/warm_sds.json   # time to first step, 1000 steps
    python scripts/bench_paper_step.py --variants "" --fp16_check --out $OUT/fp16.json
    python scripts/bench_paper_step.py --variants "" --fp16_check --prior \
        stabilityai/stable-diffusion-2-1-base --depth Intel/dpt-hybrid-midas --out fp16_real.json
                                                   # the same check on the real weights
    python scripts/bench_paper_step.py --device cpu --tiny ...  # tiny models: the plumbing, on CPU

``scripts/gpu_paper_scale.sh`` runs all of it in one GPU call.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sdlib.timing import cuda_timings, summarize_ms, timings

PROMPT = "a delicious hamburger"
GIB = 2**30


def cuda_ms(fn, n: int, warmup: int = 3) -> dict[str, float]:
    """Median and quartiles of ``fn()`` in milliseconds (CUDA events, after ``warmup`` calls)."""
    return cuda_timings(fn, repeats=n, warmup=warmup)


def build_models(workdir: Path, device: str = "cuda", tiny: bool = False) -> tuple[Path, Path]:
    """SD 2.1-base- and DPT-Hybrid-sized random models, saved once as float16 folders; with
    ``tiny``, the tiny SD-2.1-shaped and DPT-Hybrid-shaped models of notebook 50's smoke run
    (float32), for a run of the plumbing on the CPU."""
    from sdlib.priors.build import (
        SD21_SHAPED_TINY,
        build_dpt_hybrid,
        build_sd21_base_components,
        build_sd_components,
        save_dpt,
        save_sd,
    )

    if tiny:
        sd, dpt = workdir / "sd21_shaped_tiny", workdir / "dpt_hybrid_shaped_tiny"
        if not (sd / "model_index.json").exists():
            save_sd(sd, build_sd_components(SD21_SHAPED_TINY, [PROMPT]))
        if not (dpt / "config.json").exists():
            save_dpt(dpt, build_dpt_hybrid(tiny=True))
        return sd, dpt
    sd, dpt = workdir / "sd21_base_random", workdir / "dpt_hybrid_random"
    if not (sd / "model_index.json").exists():
        with torch.device(device):
            comps = build_sd21_base_components([PROMPT])
        save_sd(sd, comps, dtype=torch.float16, max_shard_size="5GB")
        del comps
    if not (dpt / "config.json").exists():
        with torch.device(device):
            model = build_dpt_hybrid()
        save_dpt(dpt, model, dtype=torch.float16)
        del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return sd, dpt


def tiny_overrides() -> dict[str, Any]:
    """TrainConfig overrides for the tiny models on the CPU (as notebook 50's smoke run)."""
    from sdlib.nerf.field import FieldConfig
    from sdlib.nerf.hashgrid import HashGridConfig
    from sdlib.nerf.render import RenderConfig

    return dict(render_size=16, eval_size=16, prior_dtype="float32",
                nerf=FieldConfig(grid=HashGridConfig(n_levels=4, log2_table_size=10,
                                                     base_resolution=4)),
                render=RenderConfig(sampler="dense", n_samples=12, compute_normals=False))


def sync(device: torch.device | str) -> None:
    """Waits for the device (CUDA); nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def memory(device: torch.device | str) -> dict[str, float | None]:
    """The process's peak memory so far, GiB: PyTorch's allocated and reserved peaks and the
    device's used memory now (CUDA; None on the CPU), and the host's peak resident set."""
    out: dict[str, float | None] = {
        "host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "max_memory_allocated_gb": None, "max_memory_reserved_gb": None, "device_used_gb": None,
    }
    if torch.device(device).type == "cuda":
        free, total = torch.cuda.mem_get_info()
        out.update(max_memory_allocated_gb=torch.cuda.max_memory_allocated() / GIB,
                   max_memory_reserved_gb=torch.cuda.max_memory_reserved() / GIB,
                   device_used_gb=(total - free) / GIB, device_total_gb=total / GIB)
    return out


def _tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) state dict."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every entry of every floating-point tensor is finite (one host sync)."""
    floats = [t.detach() for t in tensors if t.is_floating_point() and t.numel()]
    if not floats:
        return True
    return all(bool(torch.isfinite(t).all()) for t in floats)  # tensors may be on CPU and GPU


def long_run(trainer, n: int, stop_at: float = 0.0, on_progress=None,
             every: int = 50) -> dict[str, Any]:
    """``n`` training steps, each checked for NaN / inf: the loss and every θ-gradient after
    the step (outside its timing), and θ and the estimator's state at the end.

    ``Trainer.step`` raises ``FloatingPointError`` on a non-finite latent gradient before it
    updates θ; that ends the run here, as does a non-finite loss or θ-gradient. Stops early
    (``stopped_early``) when ``time.time()`` passes ``stop_at`` (0: never). ``on_progress``
    gets the summary so far every ``every`` steps. Step times: ``Trainer.step``'s own (it
    synchronises the device at its end).
    """
    params = [p for p in trainer.field.parameters() if p.requires_grad]
    ms: list[float] = []
    losses: list[float] = []
    res: dict[str, Any] = {"requested": n, "done": 0, "all_finite": True,
                           "first_nonfinite_step": None, "error": None, "stopped_early": False}
    start = time.time()

    def summary() -> dict[str, Any]:
        out = dict(res, seconds=time.time() - start)
        if len(ms) >= 2:
            out["step_ms"] = summarize_ms(ms)
        if losses:
            finite = [v for v in losses if math.isfinite(v)]
            out["loss"] = {"first": losses[0], "last": losses[-1],
                           "min": min(finite) if finite else None,
                           "max": max(finite) if finite else None}
        out.update(memory(trainer.device))
        return out

    for i in range(n):
        if stop_at and time.time() > stop_at:
            res["stopped_early"] = True
            break
        try:
            rec = trainer.step()
        except FloatingPointError as err:  # the latent gradient was not finite; θ untouched
            res.update(all_finite=False, first_nonfinite_step=trainer.step_count + 1,
                       error=str(err)[:500])
            break
        res["done"] = i + 1
        ms.append(rec["step_ms"])
        losses.append(rec["loss"])
        grads = [p.grad for p in params if p.grad is not None]
        if not (math.isfinite(rec["loss"]) and all_finite(grads)):
            res.update(all_finite=False, first_nonfinite_step=trainer.step_count,
                       error="non-finite loss or θ-gradient")
            break
        if on_progress is not None and (i + 1) % every == 0:
            on_progress(summary())
    state = _tensors(trainer.method.state_dict())
    res["theta_finite"] = all_finite(params)
    res["method_state_finite"] = all_finite(state)
    if not (res["theta_finite"] and res["method_state_finite"]):
        res["all_finite"] = False
    return summary()


def fp16_check(prior, depth, sd: Path | str, dpt: Path | str, device: str, scales: list[float],
               timesteps: list[int], batches: int) -> dict[str, Any]:
    """SSD's ∇φ and h and VSD's LoRA gradient: the loaded (float16 on the GPU) priors against
    float32 copies loaded from the same folders (:mod:`sdlib.precision`)."""
    from sdlib.precision import lora_gradient_check, phi_gradient_check
    from sdlib.priors import DepthPrior, DiffusionPrior

    t0 = time.time()
    prior32 = DiffusionPrior(model=str(sd), device=device, dtype="float32")
    depth32 = DepthPrior(model=str(dpt), device=device, dtype="float32")
    # the depth model in the prior's dtype (the old default) and in float32 (paper_config's)
    depth16 = depth if depth.dtype == prior.dtype else DepthPrior(
        model=str(dpt), device=device, dtype=str(prior.dtype).removeprefix("torch."))
    out: dict[str, Any] = {"test_dtype": str(prior.dtype), "ref_dtype": str(prior32.dtype),
                           "load_s": time.time() - t0}
    out["phi"] = phi_gradient_check((prior32, depth32), (prior, depth16), timesteps, scales)
    out["phi_depth_float32"] = phi_gradient_check((prior32, depth32), (prior, depth32),
                                                  timesteps, scales)
    out["phi_linear_decoder"] = phi_gradient_check((prior32, depth32), (prior, depth16),
                                                   timesteps, scales, decoder="linear")
    out["lora"] = lora_gradient_check(prior32, prior, PROMPT, scales, batches=batches)
    out["seconds"] = time.time() - t0
    del prior32, depth32
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def print_fp16_check(res: dict[str, Any]) -> None:
    """A short table: per gradient scale, the worst relative error and underflow over t."""
    print(f"float16 vs float32 ({res['test_dtype']} vs {res['ref_dtype']}), worst over t:")
    print(f"  {'check':30s} {'S':>6s} {'rel.err':>9s} {'underflow':>9s} {'non-finite':>10s}")
    from sdlib.precision import FP16_ROWS

    for name, part, key in FP16_ROWS:
        for scale, entry in (res.get(part) or {}).get("summary", {}).items():
            print(f"  {name:30s} {scale[2:]:>6s} {entry[key + '_rel_l2_max']:9.2e} "
                  f"{entry[key + '_underflow_max']:9.2e} {entry[key + '_nonfinite']:10d}")


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="sds,ssd,vsd")
    ap.add_argument("--variants", default="eager,compiled",
                    help="eager, compiled, deterministic (eager with TrainConfig.deterministic);"
                         " empty: no training runs (e.g. with --fp16_check)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--parts", type=int, default=10, help="repeats per part (0: skip parts)")
    ap.add_argument("--workdir", default="/tmp/sdlib_paper_models")
    ap.add_argument("--micro", type=int, default=0, help="repeats of the module benchmarks")
    ap.add_argument("--profile", default="sds_compiled,ssd_linear_compiled",
                    help="runs whose step is profiled (top kernels)")
    ap.add_argument("--ssd_linear", action=argparse.BooleanOptionalAction, default=True,
                    help="also SSD with the linear latent decoder (compiled)")
    ap.add_argument("--theta_grad", action=argparse.BooleanOptionalAction, default=True,
                    help="one θ-gradient before the first step, compared across variants "
                         "(--no-theta_grad: the first step is the trainer's first call)")
    ap.add_argument("--long_steps", type=int, default=0,
                    help="further steps after the timed ones, checked for NaN / inf")
    ap.add_argument("--stop_at", type=float,
                    default=float(os.environ.get("BENCH_STOP_AT", "0") or 0),
                    help="unix time after which the long steps stop (0: never; default "
                         "$BENCH_STOP_AT, set by scripts/gpu_paper_scale.sh per phase)")
    ap.add_argument("--fp16_check", action="store_true",
                    help="float16 vs float32: SSD's ∇φ and h, VSD's LoRA gradient")
    ap.add_argument("--fp16_scales", default="1,1024", help="gradient scales of --fp16_check")
    ap.add_argument("--fp16_timesteps", default="50,200,500,800,950")
    ap.add_argument("--fp16_batches", type=int, default=3, help="LoRA batches of --fp16_check")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--prior", default=None,
                    help="a Stable Diffusion hub id or folder (e.g. stabilityai/stable-diffusion-"
                         "2-1-base) instead of the random SD-2.1-sized model; with --depth")
    ap.add_argument("--depth", default=None,
                    help="a depth model hub id or folder (e.g. Intel/dpt-hybrid-midas) instead of "
                         "the random DPT-Hybrid-sized one; with --prior")
    ap.add_argument("--depth_dtype", default="float32", choices=("float32", "float16"),
                    help="the depth model's precision (paper_config: float32; float16 is the "
                         "preset before 2026-11-29, CUDA only)")
    ap.add_argument("--tiny", action="store_true",
                    help="tiny SD-2.1- and DPT-Hybrid-shaped models (the plumbing, on the CPU)")
    ap.add_argument("--out", default="notes/bench_paper_step_h100.json")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    device = args.device
    cuda = torch.device(device).type == "cuda"
    if "deterministic" in variants:  # cuBLAS reads it at its first call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    from sdlib.accelerate import compile_cache_counters, compile_cache_dir, enable_compile_cache
    from sdlib.gradient_variance import theta_gradient
    from sdlib.preflight import estimate_gpu_memory
    from sdlib.priors import DepthPrior, DiffusionPrior
    from sdlib.reproducibility import use_deterministic
    from sdlib.train import Trainer, paper_config

    t0 = time.time()
    cache = str(enable_compile_cache()) if "compiled" in variants else compile_cache_dir()
    print(f"compile cache: {cache}", flush=True)
    if (args.prior is None) != (args.depth is None):
        raise SystemExit("bench_paper_step: give both --prior and --depth (your own models) or "
                         "neither (random models of the real sizes)")
    if args.prior is not None:  # the real weights: hub ids (in the local cache) or folders
        sd, dpt = args.prior, args.depth
    else:
        sd, dpt = build_models(Path(args.workdir), device, args.tiny)
    build_s = time.time() - t0
    dtype = "float16" if cuda else "float32"
    prior = DiffusionPrior(model=str(sd), device=device, dtype=dtype)
    # as paper_config has it (TrainConfig.depth_dtype); --depth_dtype float16 for the old way
    depth = DepthPrior(model=str(dpt), device=device, dtype=args.depth_dtype)
    report: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu",
                    "torch": torch.__version__, "prior": repr(prior), "depth": repr(depth),
                    "load_s": time.time() - t0, "build_s": build_s, "tiny": args.tiny,
                    "compile_cache": cache, "steps": args.steps, "warmup": args.warmup,
                    "long_steps": args.long_steps,
                    "argv": sys.argv[1:] if argv is None else argv, "runs": {}}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out_path.write_text(json.dumps(report, indent=2))

    save()
    if args.micro:
        report["micro_ms"] = micro_benchmarks(prior, depth, args.micro)
        save()
        print("micro: " + ", ".join(f"{k} {v['median']:.1f}"
                                    for k, v in report["micro_ms"].items()), flush=True)
    if args.fp16_check:
        report["fp16_check"] = fp16_check(
            prior, depth, sd, dpt, device, [float(x) for x in args.fp16_scales.split(",")],
            [int(x) for x in args.fp16_timesteps.split(",")], args.fp16_batches)
        save()
        print_fp16_check(report["fp16_check"])
    # a fixed input for the ε̂ comparison
    gen = torch.Generator().manual_seed(7)
    lat = prior.image_size // prior.vae_scale_factor
    z = torch.randn(1, prior.latent_channels, lat, lat, generator=gen).to(device)
    tt = torch.tensor([600], device=device)
    emb = prior.text_embeddings(PROMPT).views[:1]
    reference: dict[str, torch.Tensor] = {}
    methods = args.methods.split(",")
    extra = tiny_overrides() if args.tiny else {}
    for variant in variants:
        compiled = variant == "compiled"
        if variant == "eager":
            with torch.no_grad():
                reference["eps_hat"] = prior.predict_noise(z, tt, emb, 100.0).float().clone()
        runs = [(m, m) for m in methods]
        if compiled and args.ssd_linear and "ssd" in methods:
            runs.append(("ssd", "ssd_linear"))
        for method, name in runs:
            key = f"{name}_{variant}"
            cfg = paper_config(PROMPT, method, device=device, compile=compiled, eval_every=0,  # type: ignore[arg-type]
                               checkpoint_every=0, turntable_frames=0, mesh_resolution=0,
                               prior=str(sd), depth=str(dpt), depth_dtype=args.depth_dtype,
                               **extra)
            if name == "ssd_linear":
                cfg = replace(cfg, ssd=replace(cfg.ssd, decoder="linear"))
            if variant == "deterministic":
                cfg = replace(cfg, deterministic=True)
            if cuda:
                torch.cuda.reset_peak_memory_stats()  # each run's own peak (priors stay loaded)
            t_construct = time.time()
            trainer = Trainer(cfg, prior=prior, depth=depth)
            row: dict = {"method": method, "variant": variant,
                         "guidance_scale": cfg.guidance_scale,
                         "construct_s": time.time() - t_construct,
                         "compile_cache": str(trainer.compile_cache or cache)}
            if cuda:
                row["preflight_estimate_gb"] = estimate_gpu_memory(cfg).total / GIB
            report["runs"][key] = row
            try:
                if args.theta_grad:
                    t1 = time.time()
                    g = theta_gradient(trainer)
                    sync(device)
                    row["first_gradient_s"] = time.time() - t1
                    if variant != "eager" and name in reference:
                        ref = reference[name]
                        row["theta_grad_rel_err"] = float((g - ref).norm() / ref.norm())
                        row["theta_grad_cosine"] = float(torch.nn.functional.cosine_similarity(
                            g, ref, dim=0))
                    elif variant == "eager":
                        reference[name] = g
                rec = trainer.step()
                sync(device)
            except RuntimeError as err:  # an op without a deterministic CUDA implementation
                if variant != "deterministic":
                    raise
                row["error"] = str(err)[:500]
                save()
                print(f"{key}: {row['error']}", flush=True)
                del trainer
                use_deterministic(False)
                continue
            row["first_step_s"] = time.time() - t_construct
            row["first_step_after_theta_grad"] = args.theta_grad
            row["first_step_loss"] = rec["loss"]
            if compiled:
                row["compile_cache_counters"] = compile_cache_counters()
            save()
            print(f"{key}: first step {row['first_step_s']:.1f} s after construction "
                  f"(compile cache {row['compile_cache']})", flush=True)
            t1 = time.time()
            for _ in range(args.warmup):
                trainer.step()
            sync(device)
            row["warmup_s"] = time.time() - t1
            row["step_ms"] = timings(trainer.step, device, args.steps, warmup=0)
            if args.parts and cuda:
                row["parts_ms"] = part_timings(trainer, args.parts)
            mem = memory(device)
            row["max_memory_gb"] = mem["max_memory_allocated_gb"]
            row["memory"] = mem
            if key in args.profile.split(",") and cuda:
                row["top_kernels"] = profile_step(trainer)
            save()
            if args.long_steps:
                def progress(summary: dict, row=row) -> None:
                    row["long"] = summary
                    save()

                row["long"] = long_run(trainer, args.long_steps, args.stop_at, progress)
                save()
            print_row(key, row)
            del trainer
            if variant == "deterministic":
                use_deterministic(False)
            if cuda:
                torch.cuda.empty_cache()
        if compiled and "eps_hat" in reference:
            with torch.no_grad():
                e = prior.predict_noise(z, tt, emb, 100.0).float()
            ref = reference["eps_hat"]
            report["eps_hat_rel_err"] = float((e - ref).norm() / ref.norm())
            save()
    runs = report["runs"]
    summary: dict = {}
    for variant in variants:
        base = runs.get(f"sds_{variant}")
        for method in [*methods, "ssd_linear"]:
            r = runs.get(f"{method}_{variant}")
            if r is None or "step_ms" not in r:
                continue
            summary[f"{method}_{variant}"] = {"ms": r["step_ms"]["median"]}
            if base is not None and "step_ms" in base:
                summary[f"{method}_{variant}"]["x_sds"] = (r["step_ms"]["median"]
                                                           / base["step_ms"]["median"])
    report["summary"] = summary
    report["total_s"] = time.time() - t0
    save()
    print_table(report)
    if "eps_hat_rel_err" in report:
        print(f"eps_hat rel err (compiled vs eager): {report['eps_hat_rel_err']}")
    return report


def print_row(key: str, row: dict) -> None:
    """One run's lines: step time, first step, memory, the long run."""
    ms = row["step_ms"]
    print(f"{key:14s} step {ms['median']:7.1f} ms (q1 {ms['q1']:.1f}, q3 {ms['q3']:.1f}) "
          f"first step {row['first_step_s']:.0f}s warmup {row['warmup_s']:.0f}s "
          + (f"rel.err {row['theta_grad_rel_err']:.2e} cos {row['theta_grad_cosine']:.6f}"
             if "theta_grad_rel_err" in row else ""), flush=True)
    for k in row.get("top_kernels", [])[:6]:
        print(f"    {k['ms_per_step']:6.2f} ms x{k['calls_per_step']:.0f} {k['name'][:70]}")
    if "parts_ms" in row:
        print("    parts: " + ", ".join(f"{k} {v['median']:.1f}"
                                        for k, v in row["parts_ms"].items()), flush=True)
    if row.get("max_memory_gb") is not None:
        print(f"    peak {row['max_memory_gb']:.2f} GiB, pre-flight estimate "
              f"{row['preflight_estimate_gb']:.2f} GiB", flush=True)
    long = row.get("long")
    if long:
        print(f"    {long['done']}/{long['requested']} further steps, all finite: "
              f"{long['all_finite']}" + (f", median {long['step_ms']['median']:.1f} ms"
                                         if "step_ms" in long else ""), flush=True)


def _gb(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_table(report: dict) -> None:
    """The runs as one markdown table."""
    print("| run | first step s | ms/step | peak allocated GiB | peak reserved GiB | "
          "further steps finite |")
    print("|---|---|---|---|---|---|")
    for key, r in report["runs"].items():
        if "error" in r:
            print(f"| {key} | error: {r['error'][:60]} | | | | |")
            continue
        long = r.get("long") or {}
        mem = long if long else r.get("memory", {})
        ms = (long.get("step_ms") or r.get("step_ms") or {}).get("median")
        finite = (f"{long['all_finite']} ({long['done']}/{long['requested']})" if long else "—")
        print(f"| {key} | {r.get('first_step_s', math.nan):.1f} | "
              f"{'—' if ms is None else f'{ms:.1f}'} | {_gb(mem.get('max_memory_allocated_gb'))} "
              f"| {_gb(mem.get('max_memory_reserved_gb'))} | {finite} |")


if __name__ == "__main__":
    main()
