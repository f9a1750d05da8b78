"""ShapeZoo renderer checks and benchmark (issue 3 acceptance 1 and 2).

On a CUDA machine:

1. renders every object on CPU and CUDA at the same cameras and reports, per object, the
   largest difference of depth, normals and RGB over pixels that both devices hit, and the
   number of pixels whose mask differs;
2. checks a sphere's depth and normals against the analytic ray-sphere solution (float64);
3. times the dataset sampler (:func:`sdlib.shapezoo.sample_views`, 64x64, RGB + depth +
   normals + mask) in images per second: warm-up, CUDA synchronisation, median of repeats.

Without CUDA it runs (2) and (3) on the CPU only. Prints a short table; ``--out`` writes JSON.

    PYTHONPATH=. python scripts/bench_shapezoo.py --out bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from sdlib.cameras import SHAPEZOO_CAMERAS, get_rays, sample_cameras
from sdlib.shapezoo import OBJECTS, render, sample_views


def sphere_check(device: str, size: int = 256) -> dict[str, float]:
    """Depth and normal errors of a radius-0.5 sphere against the float64 analytic solution."""
    g = torch.Generator().manual_seed(1)
    cams = sample_cameras(SHAPEZOO_CAMERAS, 8, generator=g, device=device)
    out = render("a red ball", cams, size, size)
    o, d = get_rays(cams.to("cpu"), size, size)
    o, d = o.double(), d.double()
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - 0.25)
    t = -b - torch.sqrt(disc.clamp_min(0))
    hit = disc > 0
    mask = out.mask.cpu() > 0
    both = hit & mask
    n_true = (o + t[..., None] * d) / 0.5
    n = out.normals.cpu().double()
    return {
        "depth_max_abs_err": float((out.depth.cpu().double() - t)[both].abs().max()),
        "normal_max_abs_err": float((n - n_true)[both].abs().max()),
        "normal_max_unit_err": float((n.norm(dim=-1)[both] - 1).abs().max()),
        "mask_disagreements": int((hit != mask).sum()),
        "pixels_hit": int(both.sum()),
    }


def cpu_vs_cuda(size: int = 64, n_views: int = 8) -> list[dict]:
    """Per object: max |diff| of depth/normals/rgb where both hit, and mask disagreements."""
    g = torch.Generator().manual_seed(2)
    cams = sample_cameras(SHAPEZOO_CAMERAS, n_views, generator=g)
    rows = []
    for obj in OBJECTS:
        a = render(obj, cams, size, size)
        b = render(obj, cams.to("cuda"), size, size).to("cpu")
        both = (a.mask > 0) & (b.mask > 0)
        rows.append({
            "name": obj.name,
            "depth": float((a.depth - b.depth)[both].abs().max()),
            "normals": float((a.normals - b.normals)[both].abs().max()),
            "rgb": float((a.rgb - b.rgb)[both].abs().max()),
            "mask_disagreements": int((a.mask != b.mask).sum()),
            "pixels": int(both.sum()),
        })
    return rows


def throughput(device: str, batch: int, repeats: int, size: int = 64) -> dict[str, float]:
    """Images per second of ``sample_views`` at ``size``^2 (median of ``repeats``)."""
    g = torch.Generator().manual_seed(3)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(2):  # warm-up
        sample_views(batch, generator=g, device=device, height=size, width=size)
    sync()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        sample_views(batch, generator=g, device=device, height=size, width=size)
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"batch": batch, "median_s": med, "images_per_s": batch / med,
            "rays_per_s": batch * size * size / med}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="JSON file to write the results to")
    parser.add_argument("--batches", default="1024,4096,16384", help="CUDA batch sizes to time")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    result: dict = {"torch": torch.__version__,
                    "device": torch.cuda.get_device_name(0) if cuda else "cpu"}

    result["sphere_cpu"] = sphere_check("cpu")
    print("sphere (cpu):", result["sphere_cpu"])
    if cuda:
        result["sphere_cuda"] = sphere_check("cuda")
        print("sphere (cuda):", result["sphere_cuda"])
        rows = cpu_vs_cuda()
        result["cpu_vs_cuda"] = rows
        print(f"{'object':14s} {'depth':>9s} {'normals':>9s} {'rgb':>9s} {'mask!=':>6s}")
        for r in rows:
            print(f"{r['name']:14s} {r['depth']:9.2e} {r['normals']:9.2e} {r['rgb']:9.2e} "
                  f"{r['mask_disagreements']:6d}")
        result["cpu_vs_cuda_max"] = {k: max(r[k] for r in rows)
                                     for k in ("depth", "normals", "rgb", "mask_disagreements")}
        print("max over objects:", result["cpu_vs_cuda_max"])
        result["throughput_cuda"] = []
        for b in (int(x) for x in args.batches.split(",")):
            r = throughput("cuda", b, args.repeats)
            result["throughput_cuda"].append(r)
            print(f"cuda sample_views batch {b}: {r['images_per_s']:.0f} images/s "
                  f"({r['rays_per_s'] / 1e6:.1f} M rays/s)")
    r = throughput("cpu", 64, 2)
    result["throughput_cpu"] = r
    print(f"cpu sample_views batch 64: {r['images_per_s']:.1f} images/s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
