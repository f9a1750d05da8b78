"""scripts/bench_sweep_throughput.py on the CPU: one worker process trains and reports its rate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "bench_sweep_throughput", REPO / "scripts" / "bench_sweep_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_worker_reports_its_steps_per_second(tmp_path):
    bench = _script()
    report = bench.main(["--device", "cpu", "--jobs", "1", "--compile", "0", "--steps", "3",
                         "--warmup", "1", "--extra", '{"render_size": 16, "batch_size": 1}',
                         "--out", str(tmp_path / "t.json")])
    (setting,) = report["settings"]
    assert setting["finished"] == 1 and not setting["errors"], setting["errors"]
    assert setting["runs"][0]["steps"] == 2 and setting["steps_per_s_total"] > 0
    assert (tmp_path / "t.json").exists()


def test_compile_needs_cuda(tmp_path):
    with pytest.raises(SystemExit):
        _script().main(["--device", "cpu", "--compile", "1", "--out", str(tmp_path / "t.json")])
