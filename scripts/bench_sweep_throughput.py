"""Sweep throughput on one GPU: steps per second of J ShapeZoo runs at once, eager or compiled.

    python scripts/bench_sweep_throughput.py --device cuda --jobs 1 12 --compile 0 1 \\
        --steps 300 --out $OUT/throughput.json

The claims and scene sweeps run many small ShapeZoo trainings side by side on one GPU
(``--jobs_per_gpu``). At ShapeZoo's sizes a step is launch-bound (``scripts/cell_cv_calls.py``:
~1,450 operator calls per SDS batch, ~960 of them the prior's UNet), so two settings decide how
many H200-minutes a sweep costs: how many runs share the GPU, and whether the prior is compiled
(``TrainConfig.compile``: Inductor, and CUDA graphs for the no-grad UNet, which replace the
UNet's launches with one graph replay). For each (jobs, compile) this starts ``jobs`` processes
at once, each training ``--method`` on its own prompt for ``--steps`` steps with the ShapeZoo
preset, and reports each process's steps per second after ``--warmup`` steps (so compilation is
left out; its time to the first step is reported apart) and their sum, the sweep's throughput.
Compiled runs share one persistent compile cache (``$SDLIB_COMPILE_CACHE``, as a sweep's would):
the first process of the first compiled setting pays the compilation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sdlib.shapezoo.objects import BENCHMARK_PROMPTS

WORKER = r"""
import json, sys, time
import torch
from sdlib.train import Trainer, shapezoo_config
args = json.loads(sys.argv[1])
cfg = shapezoo_config(args["prompt"], args["method"], device=args["device"], steps=args["steps"],
                      eval_every=0, checkpoint_every=0, turntable_frames=0, mesh_resolution=0,
                      compile=bool(args["compile"]), **args["extra"])
trainer = Trainer(cfg)
sync = torch.cuda.synchronize if args["device"].startswith("cuda") else (lambda: None)
start = time.perf_counter()
trainer.step()
sync()
first = time.perf_counter() - start
for _ in range(args["warmup"] - 1):
    trainer.step()
sync()
t0 = time.perf_counter()
n = args["steps"] - args["warmup"]
for _ in range(n):
    trainer.step()
sync()
dt = time.perf_counter() - t0
print(json.dumps({"first_step_s": first, "steps": n, "seconds": dt,
                  "steps_per_s": n / dt if dt > 0 else float("nan")}), flush=True)
"""


def run_setting(jobs: int, compile_: bool, args: argparse.Namespace) -> dict:
    """Starts ``jobs`` worker processes at once and gathers their results."""
    procs = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    for j in range(jobs):
        spec = {"prompt": BENCHMARK_PROMPTS[j % len(BENCHMARK_PROMPTS)], "method": args.method,
                "device": args.device, "steps": args.steps, "warmup": args.warmup,
                "compile": compile_, "extra": json.loads(args.extra)}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=env))
    start = time.perf_counter()
    results, errors = [], []
    for p in procs:
        out, err = p.communicate(timeout=args.timeout)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if p.returncode != 0 or not lines:
            errors.append(err[-2000:])
        else:
            results.append(json.loads(lines[-1]))
    rates = [r["steps_per_s"] for r in results]
    return {"jobs": jobs, "compile": compile_, "wall_s": time.perf_counter() - start,
            "finished": len(results), "errors": errors,
            "steps_per_s_each_median": statistics.median(rates) if rates else None,
            "steps_per_s_total": sum(rates) if rates else None,
            "first_step_s_max": max((r["first_step_s"] for r in results), default=None),
            "runs": results}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--method", default="sds")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 12])
    ap.add_argument("--compile", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS per process (0: "
                    "leave it)")
    ap.add_argument("--extra", default="{}", help="JSON of further shapezoo_config keywords")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", default="outputs/sweep_throughput.json")
    args = ap.parse_args(argv)
    if not 1 <= args.warmup < args.steps:
        ap.error(f"--warmup {args.warmup} must be in [1, --steps {args.steps})")
    if any(args.compile) and not args.device.startswith("cuda"):
        ap.error("--compile 1 needs --device cuda (TrainConfig.compile is CUDA-only)")
    settings = []
    print(f"{'jobs':>4s} {'compile':>7s} {'steps/s each':>12s} {'total':>7s} "
          f"{'first step s':>12s} {'wall s':>7s}", flush=True)
    for compile_ in args.compile:
        for jobs in args.jobs:
            s = run_setting(jobs, bool(compile_), args)
            settings.append(s)
            def fmt(v, spec: str) -> str:
                return "—" if v is None else format(v, spec)

            print(f"{jobs:4d} {compile_:7d} {fmt(s['steps_per_s_each_median'], '.2f'):>12s} "
                  f"{fmt(s['steps_per_s_total'], '.1f'):>7s} "
                  f"{fmt(s['first_step_s_max'], '.1f'):>12s} {s['wall_s']:7.0f}"
                  + (f"  ({len(s['errors'])} failed)" if s["errors"] else ""), flush=True)
            for e in s["errors"][:1]:
                print(e, file=sys.stderr)
    report = {"args": vars(args), "settings": settings}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
