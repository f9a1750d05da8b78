"""Benchmark and correctness check of the NeRF stack on one CUDA GPU (issue 5).

(a) Triton vs PyTorch-reference hash grid: outputs and table gradients (relative error =
    max |a - b| / max |b|), random points incl. cell boundaries and points outside [0, 1];
(b) 2^18 points forward + backward: eager reference, ``torch.compile`` of the reference,
    Triton (and tcnn if importable); CUDA events after warm-up, median of repeats;
(c) a full render step: 4096 rays, occupancy-grid update + sampling + rendering + backward
    through field and renderer, on a field fitted briefly to a ShapeZoo object;
(d) CPU (dense) vs CUDA (dense) render paths on a fixed field with the same samples.

    python scripts/bench_nerf.py --out bench_nerf.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace

import torch

from sdlib.cameras import SHAPEZOO_CAMERAS, eval_cameras, get_rays, sample_cameras
from sdlib.nerf import (
    FieldConfig,
    FitConfig,
    HashGridConfig,
    RadianceField,
    RenderConfig,
    encode_reference,
    encode_triton,
    fit_views,
    level_layout,
    render_cameras,
    render_rays,
    tcnn_available,
    update_occupancy,
)
from sdlib.timing import cuda_timings


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30)).item()


def boundary_points(layout, n_per_level: int, generator) -> torch.Tensor:
    """Points with coordinates exactly on cell boundaries of each level, plus 0 and 1."""
    points = []
    for res in layout.resolutions:
        k = torch.randint(0, res + 1, (n_per_level, 3), generator=generator)
        points.append(k.float() / res)
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.5], [1.0, 0.0, 1.0]])
    return torch.cat(points + [corners])


def check_correctness(config: HashGridConfig, device: str) -> dict:
    layout = level_layout(config)
    g = torch.Generator().manual_seed(0)
    table = (torch.rand(layout.total, config.n_features_per_level, generator=g) * 2 - 1).to(device)
    inside = torch.rand(65536, 3, generator=g)
    outside = torch.rand(4096, 3, generator=g) * 1.6 - 0.3
    x = torch.cat([inside, boundary_points(layout, 512, g), outside]).to(device)
    grad_out = torch.randn(x.shape[0], config.output_dim, generator=g).to(device)
    results = {}
    for name, fn in (("reference", encode_reference), ("triton", encode_triton)):
        t = table.clone().requires_grad_(True)
        out = fn(x, t, layout)
        out.backward(grad_out)
        results[name] = (out.detach(), t.grad)
    return {
        "n_points": int(x.shape[0]),
        "forward_rel_err": rel_err(results["triton"][0], results["reference"][0]),
        "table_grad_rel_err": rel_err(results["triton"][1], results["reference"][1]),
    }


def bench_backends(config: HashGridConfig, n_points: int, device: str) -> dict:
    layout = level_layout(config)
    table = torch.nn.Parameter(torch.rand(layout.total, config.n_features_per_level,
                                          device=device) * 2e-4 - 1e-4)
    x = torch.rand(n_points, 3, device=device)
    grad_out = torch.randn(n_points, config.output_dim, device=device)

    def ref(x_, t_):
        return encode_reference(x_, t_, layout)

    compiled = torch.compile(ref)
    backends = {"torch eager": ref, "torch.compile": compiled, "triton": lambda a, b:
                encode_triton(a, b, layout)}
    if tcnn_available():
        from sdlib.nerf.hashgrid import _make_tcnn

        enc = _make_tcnn(config).to(device)
        backends["tcnn"] = lambda a, b: enc(a).float()

    timings = {}
    for name, fn in backends.items():
        def step(fn=fn):
            table.grad = None
            fn(x, table).backward(grad_out)

        fwd = cuda_timings(lambda fn=fn: fn(x, table.detach()))["median"]
        timings[name] = {"forward_ms": fwd, "forward_backward_ms": cuda_timings(step)["median"]}
    return timings


def shapezoo_views(prompt: str, n_views: int, resolution: int, device: str, seed: int = 0):
    from sdlib.shapezoo import render

    g = torch.Generator().manual_seed(seed)
    cams = sample_cameras(SHAPEZOO_CAMERAS, n_views, generator=g, device=device)
    return render(prompt, cams, resolution, resolution).rgb, cams


def bench_render_step(prompt: str, device: str, n_rays: int = 4096) -> dict:
    """Times render steps on a field fitted for 300 steps, for a few renderer variants."""
    from sdlib.shapezoo import render

    g = torch.Generator().manual_seed(0)
    cams = sample_cameras(SHAPEZOO_CAMERAS, 100, generator=g, device=device)
    truth = render(prompt, cams, 64, 64)
    test = eval_cameras(4, device=device)
    test_images = render(prompt, test, 64, 64).rgb
    cfg = FitConfig(steps=300, rays_per_step=n_rays, eval_every=300)
    result = fit_views(truth.rgb, cams, test_images, test, cfg, masks=truth.mask)
    origins, directions = get_rays(cams, 64, 64)
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    colors = truth.rgb.reshape(-1, 3)
    compiled = RadianceField(replace(cfg.field, compile_mlp=True)).to(device)
    compiled.load_state_dict(result.field.state_dict())
    variants = {
        "default": (result.field, cfg.render),
        "no density pruning": (result.field, replace(cfg.render, prune_with_density=False)),
        "compiled MLP": (compiled, cfg.render),
        "compiled MLP, no pruning": (compiled, replace(cfg.render, prune_with_density=False)),
    }
    report = {"n_rays": n_rays, "psnr_after_300_steps": result.history[-1].test_psnr}
    step_counter = [300]
    for name, (field, render_cfg) in variants.items():
        field.train()
        optimizer = torch.optim.Adam(field.parameters(), lr=1e-4, eps=1e-15)
        samples = []

        def render_step(with_optimizer: bool, field=field, render_cfg=render_cfg,
                        optimizer=optimizer, samples=samples):
            update_occupancy(result.estimator, field, step_counter[0], render_cfg)
            step_counter[0] += 1
            index = torch.randint(0, colors.shape[0], (n_rays,), device=device)
            out = render_rays(field, origins[index], directions[index],
                              estimator=result.estimator, config=render_cfg)
            loss = torch.mean((out.rgb - colors[index]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if with_optimizer:
                optimizer.step()
            samples.append(out.n_samples)

        ms = cuda_timings(lambda f=render_step: f(False), repeats=64, warmup=20)["median"]
        ms_opt = cuda_timings(lambda f=render_step: f(True), repeats=64, warmup=5)["median"]
        report[name] = {"render_step_ms": ms, "with_adam_ms": ms_opt,
                        "mean_samples": statistics.mean(samples)}
        print(f"render step [{name}]: {ms:.2f} ms (+Adam {ms_opt:.2f}), "
              f"{statistics.mean(samples):.0f} samples", flush=True)
        if name == "default":
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                    torch.profiler.ProfilerActivity.CUDA]) as p:
                for _ in range(10):
                    render_step(False)
                torch.cuda.synchronize()
            print(p.key_averages().table(sort_by="cpu_time_total", row_limit=18,
                                         max_name_column_width=40))
    return report


def check_cpu_vs_cuda(device: str) -> dict:
    torch.manual_seed(0)
    grid = HashGridConfig(n_levels=8, log2_table_size=15, backend="torch")
    field = RadianceField(FieldConfig(grid=grid))
    with torch.no_grad():
        field.encoding.table.uniform_(-1.0, 1.0)
    field.eval()
    cams = eval_cameras(2)
    config = RenderConfig(sampler="dense", n_samples=64, stratified=False)
    with torch.no_grad():
        out_cpu = render_cameras(field, cams, 24, 24, config=config)
    errors = {}
    for backend in ("torch", "triton"):
        field_cuda = RadianceField(FieldConfig(grid=replace(grid, backend=backend)))
        field_cuda.load_state_dict(field.state_dict())
        field_cuda = field_cuda.to(device).eval()
        with torch.no_grad():
            out = render_cameras(field_cuda, cams.to(device), 24, 24, config=config)
        errors[backend] = {
            key: (getattr(out, key).cpu() - getattr(out_cpu, key)).abs().max().item()
            for key in ("rgb", "depth", "opacity", "normals")
        }
    errors["mean_opacity"] = out_cpu.opacity.mean().item()
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench_nerf.json", help="JSON file to write")
    parser.add_argument("--prompt", default="a snowman with a carrot nose and a black hat")
    parser.add_argument("--n-points", type=int, default=2**18)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_nerf.py needs a CUDA GPU")
    device = "cuda"
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    config = HashGridConfig()
    report["correctness"] = check_correctness(config, device)
    print("correctness", report["correctness"], flush=True)
    report["cpu_vs_cuda"] = check_cpu_vs_cuda(device)
    print("cpu vs cuda", report["cpu_vs_cuda"], flush=True)
    report["backends"] = bench_backends(config, args.n_points, device)
    report["render_step"] = bench_render_step(args.prompt, device)
    print(f"\nhash grid, {args.n_points} points, 16 levels x 2, T = 2^19 ({report['device']})")
    print(f"{'backend':16s} {'fwd ms':>8s} {'fwd+bwd ms':>11s} {'speed-up':>9s}")
    base = report["backends"]["torch eager"]["forward_backward_ms"]
    for name, t in report["backends"].items():
        print(f"{name:16s} {t['forward_ms']:8.3f} {t['forward_backward_ms']:11.3f} "
              f"{base / t['forward_backward_ms']:8.2f}x")
    print(f"\nrender step, {report['render_step']['n_rays']} rays (field fitted 300 steps):")
    for name, t in report["render_step"].items():
        if isinstance(t, dict):
            print(f"  {name:26s} {t['render_step_ms']:6.2f} ms  (+Adam {t['with_adam_ms']:.2f} ms)"
                  f"  {t['mean_samples']:.0f} samples")
    print("correctness:", report["correctness"])
    print("cpu vs cuda max abs diff:", report["cpu_vs_cuda"])
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
