"""Merges the JSONs of ``scripts/gpu_paper_scale.sh``'s phases into one file and prints tables.

    python scripts/paper_scale_table.py --state outputs/paper_scale --out $OUT/paper_scale_h200.json

Reads from each ``--state`` folder (later folders win, file by file): ``cold_<method>.json`` and
``warm_<method>.json`` (``bench_paper_step.py`` with an empty and then a warm compile cache),
``deterministic.json``, ``fp16_check.json``, ``nb50.json``, ``setup.json`` and ``phases.tsv``
(one line per phase: name, exit status, seconds). Writes every input, the table's rows and the
phase list to ``--out`` and prints the markdown tables (issue 14, item 3).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from sdlib.precision import FP16_ROWS

METHODS = ("sds", "ssd", "vsd")
COLUMNS = ("method", "cold first step s", "warm first step s", "ms/step", "peak allocated GiB",
           "peak reserved GiB", "GPU used GiB", "long run finite", "deterministic cost ×")


def load(states: list[Path]) -> dict[str, Any]:
    """Every ``*.json`` of the state folders by file name (later folders win) and the phases."""
    files: dict[str, Any] = {}
    phases: list[dict[str, Any]] = []
    for state in states:
        for path in sorted(state.glob("*.json")):
            try:
                files[path.name] = json.loads(path.read_text())
            except json.JSONDecodeError as err:  # a phase killed while writing
                files[path.name] = {"unreadable": str(err)}
        tsv = state / "phases.tsv"
        if tsv.exists():
            for line in tsv.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    phases.append({"phase": parts[0], "exit": parts[1], "seconds": float(parts[2]),
                                   "state": str(state)})
    return {"files": files, "phases": phases}


def _run(report: dict | None, method: str) -> dict | None:
    """The first run of ``method`` in a bench report (SSD's before SSD-linear's)."""
    if not report:
        return None
    for run in report.get("runs", {}).values():
        if run.get("method") == method:
            return run
    return None


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return fmt.format(value)


def _phase_exit(phases: list[dict], name: str) -> str | None:
    found = [p["exit"] for p in phases if p["phase"] == name]
    return found[-1] if found else None


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method with the table's columns (and the raw numbers behind them)."""
    files, phases = data["files"], data["phases"]
    det = files.get("deterministic.json")
    out = []
    for method in METHODS:
        cold = _run(files.get(f"cold_{method}.json"), method)
        warm = _run(files.get(f"warm_{method}.json"), method)
        if cold is None and warm is None:
            continue
        long = (warm or {}).get("long") or {}
        mem = long or (warm or {}).get("memory") or (cold or {}).get("memory") or {}
        ms = (long.get("step_ms") or (warm or {}).get("step_ms")
              or (cold or {}).get("step_ms") or {}).get("median")
        if long:
            finite = (("yes" if long.get("all_finite") else "NO") + f" ({long.get('done')}/"
                      f"{long.get('requested')})" + (", stopped by the time limit"
                                                     if long.get("stopped_early") else ""))
            if long.get("first_nonfinite_step"):
                finite += f", first non-finite at step {long['first_nonfinite_step']}"
        else:
            finite = "—"
        cost = None
        if det:
            e, d = det["runs"].get(f"{method}_eager"), det["runs"].get(f"{method}_deterministic")
            if e and d and "step_ms" in e and "step_ms" in d:
                cost = d["step_ms"]["median"] / e["step_ms"]["median"]
            elif d and "error" in d:
                cost = "error"

        def first(run: dict | None, phase: str) -> Any:
            if run and "first_step_s" in run:
                return run["first_step_s"]
            code = _phase_exit(phases, phase)
            return "killed" if code in ("124", "137") else None

        cold_first = first(cold, f"cold_{method}")
        if (files.get(f"cold_{method}.json") or {}).get("cache_partly_filled") and \
                isinstance(cold_first, float):  # run again after an attempt that was killed
            cold_first = f"{cold_first:.1f} (cache partly filled)"
        out.append({
            "method": method,
            "cold_first_step_s": cold_first,
            "warm_first_step_s": first(warm, f"warm_{method}"),
            "ms_per_step": ms,
            "peak_allocated_gb": mem.get("max_memory_allocated_gb"),
            "peak_reserved_gb": mem.get("max_memory_reserved_gb"),
            "device_used_gb": mem.get("device_used_gb"),
            "long_run": finite,
            "deterministic_cost": cost,
            "cold_cache_counters": (cold or {}).get("compile_cache_counters"),
            "warm_cache_counters": (warm or {}).get("compile_cache_counters"),
        })
    return out


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in table:
        cells = [r["method"]]
        for key in ("cold_first_step_s", "warm_first_step_s", "ms_per_step"):
            v = r[key]
            cells.append(v if isinstance(v, str) else _num(v))
        for key in ("peak_allocated_gb", "peak_reserved_gb", "device_used_gb"):
            cells.append(_num(r[key], "{:.2f}"))
        cells.append(r["long_run"])
        c = r["deterministic_cost"]
        cells.append(c if isinstance(c, str) else _num(c, "{:.2f}×"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fp16_markdown(check: dict[str, Any]) -> str:
    lines = ["| check | S | worst rel. L2 error | worst underflow | non-finite |",
             "|---|---|---|---|---|"]
    for label, part, key in FP16_ROWS:
        for scale, e in (check.get(part) or {}).get("summary", {}).items():
            err = e[key + "_rel_l2_max"]
            # NaN: the float32 reference is zero everywhere (sdlib.precision.compare), e.g. a
            # random depth model with a constant output: the check says nothing
            shown = "void (reference is 0)" if err != err else f"{err:.2e}"
            lines.append(f"| {label} | {scale[2:]} | {shown} | "
                         f"{e[key + '_underflow_max']:.2e} | {e[key + '_nonfinite']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", action="append", required=True,
                    help="a phase-results folder (repeatable; later ones win)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    data = load([Path(s) for s in args.state])
    files = data["files"]
    table = rows(data)
    some = next((files[f] for f in sorted(files) if files[f].get("device")), {})
    merged = {"device": some.get("device"), "torch": some.get("torch"),
              "setup": files.get("setup.json"), "table": table, "phases": data["phases"],
              "files": files}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(merged, indent=2))
    print(f"\n## Paper-scale memory and speed ({merged['device']}, torch {merged['torch']})\n")
    print(markdown(table))
    check = (files.get("fp16_check.json") or {}).get("fp16_check")
    if check:
        print("\n### float16 against float32 (worst over t / batches)\n")
        print(fp16_markdown(check))
    nb = files.get("nb50.json")
    if nb:
        print(f"\nnotebook 50: exit {nb.get('exit')}, {nb.get('seconds')} s, "
              f"{nb.get('steps')} steps per method, device {nb.get('device')}, "
              f"compiled {nb.get('compiled')}")
    if data["phases"]:
        print("\n| phase | exit | s |\n|---|---|---|")
        for p in data["phases"]:
            print(f"| {p['phase']} | {p['exit']} | {p['seconds']:.0f} |")
    return merged


if __name__ == "__main__":
    main()
