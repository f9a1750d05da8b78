"""The paper-scale benchmark's new pieces on the CPU, with tiny SD-2.1- and DPT-Hybrid-shaped
models (issue 14, item 3): the float16-vs-float32 checks of sdlib.precision (zero for identical
models, nonzero for different ones), the NaN check of the long run (it catches a planted NaN),
scripts/bench_paper_step.py end to end, and the merged table of scripts/paper_scale_table.py.
The GPU numbers come from scripts/gpu_paper_scale.sh; its CPU mode is the slow test below."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdlib.precision import compare, lora_gradient_check, phi_gradient_check

REPO = Path(__file__).resolve().parent.parent
PROMPT = "a delicious hamburger"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _script("bench_paper_step")


@pytest.fixture(scope="module")
def models(tmp_path_factory, bench) -> tuple[Path, Path]:
    """Tiny SD-2.1-shaped and DPT-Hybrid-shaped folders (bench_paper_step's --tiny models)."""
    return bench.build_models(tmp_path_factory.mktemp("paper_models"), "cpu", tiny=True)


@pytest.fixture(scope="module")
def priors(models):
    from sdlib.priors import DepthPrior, DiffusionPrior

    sd, dpt = models
    return DiffusionPrior(model=str(sd)), DepthPrior(model=str(dpt))


def test_compare_counts_underflow_and_overflow():
    ref = torch.tensor([1.0, 1e-6, 0.0, -2.0])
    r = compare(torch.tensor([1.0, 0.0, 0.0, float("inf")]), ref)
    assert r["underflow"] == pytest.approx(1 / 3)  # 1e-6 flushed; the exact 0 is no underflow
    assert r["ref_nonzero"] == 0.75 and r["nonfinite"] == 1
    assert r["ref_below_fp16_normal"] == pytest.approx(1 / 3)
    assert compare(ref, ref)["rel_l2"] == 0.0
    assert compare(2 * ref, ref)["rel_l2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        compare(ref[:2], ref)


def test_fp16_checks_are_zero_for_identical_models_and_see_a_difference(models, priors):
    """The check's own control: the same weights on both sides (float32 here, as the CPU has
    no float16 priors) give exactly zero error; a different depth model or UNet does not."""
    from sdlib.priors import DepthPrior, DiffusionPrior
    from sdlib.priors.build import build_dpt_hybrid, save_dpt

    sd, dpt = models
    prior, depth = priors
    prior2, depth2 = DiffusionPrior(model=str(sd)), DepthPrior(model=str(dpt))
    same = phi_gradient_check((prior, depth), (prior2, depth2), timesteps=(50, 950))
    assert len(same["rows"]) == 4  # 2 timesteps × scales 1 and 1024
    for row in same["rows"]:
        assert row["grad"]["rel_l2"] == 0.0 and row["h"]["rel_l2"] == 0.0
        assert row["grad"]["underflow"] == 0.0 and row["grad"]["ref_nonzero"] > 0.5
    linear = phi_gradient_check((prior, depth), (prior2, depth2), timesteps=(500,),
                                scales=(1.0,), decoder="linear")
    assert linear["summary"]["S=1"]["grad_rel_l2_max"] == 0.0
    other = DepthPrior(model=str(save_dpt(dpt.parent / "dpt_other",
                                          build_dpt_hybrid(seed=1, tiny=True))))
    diff = phi_gradient_check((prior, depth), (prior2, other), timesteps=(500,), scales=(1.0,))
    assert diff["summary"]["S=1"]["grad_rel_l2_max"] > 1e-2

    lora = lora_gradient_check(prior, prior2, PROMPT, batches=1, rank=4)
    assert [r["scale"] for r in lora["rows"]] == [1.0, 1024.0]
    for row in lora["rows"]:
        assert row["grad"]["rel_l2"] == 0.0 and row["grad"]["ref_nonzero"] > 0.9
        assert row["loss_test"] == row["loss_ref"]
    with torch.no_grad():
        next(prior2.unet.parameters()).mul_(1.5)  # another UNet
    lora = lora_gradient_check(prior, prior2, PROMPT, scales=(1.0,), batches=1, rank=4)
    assert lora["summary"]["S=1"]["grad_rel_l2_max"] > 1e-3


def _tiny_trainer(bench, models, priors, method: str = "sds"):
    from sdlib.train import Trainer, paper_config

    sd, dpt = models
    cfg = paper_config(PROMPT, method, device="cpu", eval_every=0, checkpoint_every=0,
                       turntable_frames=0, mesh_resolution=0, prior=str(sd), depth=str(dpt),
                       **bench.tiny_overrides())
    return Trainer(cfg, prior=priors[0], depth=priors[1])


def test_long_run_checks_every_step_and_catches_a_nan(bench, models, priors):
    trainer = _tiny_trainer(bench, models, priors)
    seen = []
    res = bench.long_run(trainer, 4, on_progress=seen.append, every=2)
    assert res["done"] == 4 and res["all_finite"] and res["first_nonfinite_step"] is None
    assert res["theta_finite"] and res["method_state_finite"] and len(seen) == 2
    assert res["step_ms"]["n"] == 4 and res["loss"]["first"] == res["loss"]["first"]

    # a NaN in one θ-gradient after the update (the latent gradient stays finite)
    real_step = trainer.step

    def poisoned_step():
        rec = real_step()
        if trainer.step_count == 6:
            next(p for p in trainer.field.parameters() if p.grad is not None).grad[0] = float("nan")
        return rec

    trainer.step = poisoned_step
    res = bench.long_run(trainer, 5)
    assert not res["all_finite"] and res["first_nonfinite_step"] == 6 and res["done"] == 2
    # a NaN in θ: the render, the latent gradient and Trainer.step's own check see it
    trainer.step = real_step
    with torch.no_grad():
        for p in trainer.field.parameters():
            p.fill_(float("nan"))
    res = bench.long_run(trainer, 3)
    assert not res["all_finite"] and res["done"] == 0
    assert res["first_nonfinite_step"] == 7 and "non-finite" in res["error"]
    # the time limit
    res = bench.long_run(_tiny_trainer(bench, models, priors), 50, stop_at=1.0)
    assert res["stopped_early"] and res["done"] == 0 and res["all_finite"]


def test_bench_paper_step_runs_on_the_cpu(bench, models, tmp_path):
    out = tmp_path / "bench.json"
    report = bench.main(["--device", "cpu", "--tiny", "--workdir", str(tmp_path / "unused"),
                         "--prior", str(models[0]), "--depth", str(models[1]),  # "your models"
                         "--methods", "sds,ssd", "--variants", "eager", "--no-theta_grad",
                         "--steps", "2", "--warmup", "0", "--parts", "0", "--profile", "",
                         "--long_steps", "2", "--fp16_check", "--fp16_timesteps", "500",
                         "--fp16_batches", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["runs"].keys() == {"sds_eager", "ssd_eager"} == report["runs"].keys()
    for row in saved["runs"].values():
        assert row["first_step_s"] > 0 and row["first_step_after_theta_grad"] is False
        assert row["long"]["done"] == 2 and row["long"]["all_finite"] is True
        assert row["long"]["host_peak_rss_gb"] > 0
        assert row["long"]["max_memory_allocated_gb"] is None  # CUDA only
    check = saved["fp16_check"]
    assert not (tmp_path / "unused").exists()  # nothing was built
    for part in ("phi", "phi_depth_float32", "phi_linear_decoder", "lora"):
        for entry in check[part]["summary"].values():
            assert entry["grad_rel_l2_max"] == 0.0  # float32 on both sides here


def test_paper_scale_table_merges_the_phases(bench, tmp_path, capsys):
    table = _script("paper_scale_table")
    state = tmp_path / "state"
    state.mkdir()

    def run(method, first, ms, long=None, **extra):
        row = {"method": method, "variant": "compiled", "first_step_s": first,
               "step_ms": {"median": ms}, "memory": {"max_memory_allocated_gb": 9.0}, **extra}
        if long is not None:
            row["long"] = long
        return {"device": "NVIDIA H200", "torch": "2.11.0", "runs": {f"{method}_x": row}}

    long = {"requested": 1000, "done": 1000, "all_finite": True, "stopped_early": False,
            "first_nonfinite_step": None, "step_ms": {"median": 31.8},
            "max_memory_allocated_gb": 8.1, "max_memory_reserved_gb": 9.5,
            "device_used_gb": 10.2}
    (state / "cold_sds.json").write_text(json.dumps(run("sds", 170.0, 30.0)))
    (state / "warm_sds.json").write_text(json.dumps(run("sds", 41.0, 32.0, long)))
    (state / "cold_ssd.json").write_text(json.dumps(run("ssd", 150.0, 55.0)))
    # a cold run after an attempt that did not finish (gpu_paper_scale.sh marks it): not cold
    (state / "cold_vsd.json").write_text(json.dumps(dict(run("vsd", 128.8, 65.0),
                                                         cache_partly_filled=True)))
    det = {"runs": {"sds_eager": {"step_ms": {"median": 50.0}},
                    "sds_deterministic": {"step_ms": {"median": 75.0}},
                    "ssd_eager": {"step_ms": {"median": 100.0}},
                    "ssd_deterministic": {"error": "index_add_ has no deterministic"}}}
    (state / "deterministic.json").write_text(json.dumps(det))
    (state / "phases.tsv").write_text("cold_sds 0 171\nwarm_sds 0 90\ncold_ssd 0 160\n"
                                      "warm_ssd 124 300\n")
    merged = table.main(["--state", str(state), "--out", str(tmp_path / "merged.json")])
    rows = {r["method"]: r for r in merged["table"]}
    assert rows.keys() == {"sds", "ssd", "vsd"}
    assert rows["vsd"]["cold_first_step_s"] == "128.8 (cache partly filled)"
    assert rows["sds"]["warm_first_step_s"] == 41.0 and rows["sds"]["ms_per_step"] == 31.8
    assert rows["sds"]["peak_reserved_gb"] == 9.5 and rows["sds"]["long_run"] == "yes (1000/1000)"
    assert rows["sds"]["deterministic_cost"] == 1.5 and rows["ssd"]["deterministic_cost"] == "error"
    assert rows["ssd"]["warm_first_step_s"] == "killed" and rows["ssd"]["ms_per_step"] == 55.0
    printed = capsys.readouterr().out
    assert ("| sds | 170.0 | 41.0 | 31.8 | 8.10 | 9.50 | 10.20 | yes (1000/1000) | 1.50× |"
            in printed)
    assert json.loads((tmp_path / "merged.json").read_text())["device"] == "NVIDIA H200"


@pytest.mark.slow
def test_gpu_paper_scale_script_in_cpu_mode(tmp_path):
    """scripts/gpu_paper_scale.sh's plumbing end to end on the CPU (about a minute)."""
    env = dict(os.environ, SDLIB_PAPER_SCALE_CPU="1", OUT=str(tmp_path / "out"),
               STATE=str(tmp_path / "state"), PYTHON=sys.executable,
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "scripts/gpu_paper_scale.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    merged = json.loads((tmp_path / "out" / "paper_scale_h200.json").read_text())
    assert [r["method"] for r in merged["table"]] == ["sds", "ssd", "vsd"]
    assert all(r["long_run"].startswith("yes") for r in merged["table"])
    assert {p["phase"]: p["exit"] for p in merged["phases"]}["nb50"] == "0"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "logs.tgz", "nb50.tgz", "paper_scale.md", "paper_scale_h200.json"]
    # a second call on the kept state skips what the first finished, except what REDO names
    proc = subprocess.run(["bash", "scripts/gpu_paper_scale.sh"], cwd=REPO,
                          env=dict(env, KEEP_STATE="1", REDO="warm_sds"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = [line.split()[1].rstrip(":") for line in proc.stdout.splitlines()
           if line.startswith("== ") and " limit " in line]
    assert ran == ["models", "warm_sds"], proc.stdout[-3000:]
