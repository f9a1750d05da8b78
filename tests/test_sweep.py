"""Sweeps: typed dotted overrides with clear errors; a 4-run grid under torchrun with 2 CPU
processes gathers the same table as one process; finished runs are skipped, a failed run
resumes from its checkpoint, and variance probes do not change the training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdlib.sweep import (
    SweepConfig,
    apply_overrides,
    build_config,
    default_probe,
    expand,
    parse_override,
    read_table,
    run_sweep,
    strip_timing,
)
from sdlib.train import TrainConfig

PROMPT = "a red ball"
REPO_ROOT = Path(__file__).resolve().parent.parent


def test_overrides_are_typed_and_bad_keys_fail_clearly() -> None:
    assert parse_override(TrainConfig, "guidance_scale", "20") == 20.0
    assert parse_override(TrainConfig, "nerf.grid.n_levels", "8") == 8
    assert parse_override(TrainConfig, "nerf.grid.backend", "torch") == "torch"
    assert parse_override(TrainConfig, "view_dependent_prompts", "false") is False
    assert parse_override(TrainConfig, "timesteps.t_max_end", "none") is None
    assert parse_override(TrainConfig, "timesteps.t_max_end", "0.5") == 0.5
    assert parse_override(TrainConfig, "cameras.elevation", "0,30") == (0.0, 30.0)
    cfg = apply_overrides(TrainConfig(prompt=PROMPT, device="cpu"),
                          {"ssd.coefficient.reduce": "element", "nerf.grid.n_levels": "4"})
    assert cfg.ssd.coefficient.reduce == "element" and cfg.nerf.grid.n_levels == 4
    assert cfg.nerf.hidden_dim == TrainConfig(prompt=PROMPT).nerf.hidden_dim
    # fields validated together are set together: anneal_start <= anneal_end holds only after
    # both are replaced (one at a time, anneal_start=500 > anneal_end=0 would be rejected)
    cfg = apply_overrides(TrainConfig(prompt=PROMPT, device="cpu"), {
        "timesteps.t_max_end": "0.5", "timesteps.anneal_start": "500",
        "timesteps.anneal_end": "501"})
    assert (cfg.timesteps.anneal_start, cfg.timesteps.anneal_end) == (500, 501)
    with pytest.raises(ValueError, match="also set one by one"):
        whole = TrainConfig(prompt=PROMPT).timesteps
        apply_overrides(TrainConfig(prompt=PROMPT, device="cpu"),
                        {"timesteps.t_min": "0.1", "timesteps": whole})
    with pytest.raises(ValueError, match="has no field 'n_levls'.*n_levels"):
        parse_override(TrainConfig, "nerf.grid.n_levls", "4")
    with pytest.raises(ValueError, match="guidance_scale='high': expected a number"):
        parse_override(TrainConfig, "guidance_scale", "high")
    with pytest.raises(ValueError, match="ssd.baseline='dept'; accepted: depth, normal"):
        parse_override(TrainConfig, "ssd.baseline", "dept")
    with pytest.raises(ValueError, match="nerf is a FieldConfig: set its fields with nerf.<field>"):
        parse_override(TrainConfig, "nerf", "x")
    with pytest.raises(ValueError, match="not key=value"):
        SweepConfig(prompts=(PROMPT,), overrides=("guidance_scale",))
    with pytest.raises(ValueError, match="'seed' is set by the sweep itself"):
        SweepConfig(prompts=(PROMPT,), overrides=("seed=3",))
    with pytest.raises(ValueError, match="methods"):
        SweepConfig(prompts=(PROMPT,), methods=("sdss",))


def test_grid_expands_axes_in_a_stable_order() -> None:
    sweep = SweepConfig(prompts=("a blue cube", PROMPT), seeds=(1, 0), methods=("ssd", "sds"),
                        overrides=("batch_size=1",),
                        vary=("guidance_scale=7.5", "guidance_scale=100", "ssd.baseline=depth",
                              "ssd.baseline=constant"))
    runs = expand(sweep)
    assert len(runs) == 2 * 2 * 2 * 2 * 2
    assert [r.run_id for r in runs] == sorted(r.run_id for r in runs)
    assert len({r.run_id for r in runs}) == len(runs)
    one = next(r for r in runs if r.run_id ==
               "a_red_ball__ssd__seed1__guidance_scale=100__ssd.baseline=constant")
    cfg = build_config(sweep, one, device="cpu")
    assert (cfg.prompt, cfg.method, cfg.seed, cfg.guidance_scale, cfg.ssd.baseline,
            cfg.batch_size, cfg.steps) == (PROMPT, "ssd", 1, 100.0, "constant", 1, 3000)
    assert one.row()["guidance_scale"] == "100"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny random priors on disk and the overrides of a tiny CPU run that uses them."""
    from sdlib.priors.build import save_tiny_priors

    root = tmp_path_factory.mktemp("sweep")
    save_tiny_priors(root, [PROMPT])
    overrides = (f"prior={root / 'sd'}", f"depth={root / 'dpt'}", "render_size=16",
                 "batch_size=1", "eval_size=16", "turntable_frames=0", "mesh_resolution=0",
                 "checkpoint_every=1", "nerf.grid.n_levels=2", "nerf.grid.log2_table_size=8",
                 "nerf.grid.base_resolution=4", "render.n_samples=12")
    sweep = SweepConfig(prompts=(PROMPT,), seeds=(0, 1), methods=("sds", "ssd"), steps=2,
                        eval_every=2, overrides=overrides)
    # the reference: one process, one thread (as each torchrun process gets by default)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        table = run_sweep(sweep, root / "one", device="cpu")
    finally:
        torch.set_num_threads(threads)
    return root, sweep, table


def test_torchrun_two_processes_gather_the_one_process_table(tiny) -> None:
    root, sweep, table = tiny
    assert table is not None and len(table) == 4
    assert [r["status"] for r in table] == ["done"] * 4
    for row in table:
        assert row["steps"] == 2 and row["train_seconds"] > 0
        assert 0 <= row["final_mask_iou"] <= 1 and "final_psnr" in row
        assert [e["step"] for e in row["evals"]] == [2]
        assert row["evals"][0]["train_seconds"] == row["train_seconds"]
    assert (root / "one" / "results.csv").read_text().count("\n") == 5
    # the seeds differ, the methods' first steps too
    assert table[0]["final_psnr"] != table[1]["final_psnr"]

    args = ["--prompts", PROMPT, "--seeds", "0", "1", "--methods", "sds", "ssd", "--steps", "2",
            "--eval-every", "2", "--device", "cpu"]
    for o in sweep.overrides:
        args += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "sdlib", "sweep", str(root / "two"), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_json = json.loads((root / "two" / "sweep.json").read_text())
    assert sweep_json["world_size"] == 2
    two = read_table(root / "two")
    # CPU runs are deterministic per seed: the same numbers, bit for bit, whoever ran them
    assert strip_timing(two) == strip_timing(table)

    # a second launch skips every finished run
    lengths = {r["run_id"]: len((root / "one" / r["run_id"] / "metrics.jsonl").read_text())
               for r in table}
    again = run_sweep(sweep, root / "one", device="cpu")
    assert again == table
    assert lengths == {r["run_id"]: len((root / "one" / r["run_id"] / "metrics.jsonl")
                                        .read_text()) for r in table}


def test_failed_run_resumes_and_probes_leave_training_unchanged(tiny) -> None:
    root, sweep, table = tiny
    probed = SweepConfig(prompts=(PROMPT,), seeds=(0,), methods=("sds",), steps=2, eval_every=2,
                         overrides=sweep.overrides, variance_steps=(1, 2), variance_samples=3)
    measure = default_probe(3)

    def failing(trainer):
        if trainer.step_count == 2:
            raise RuntimeError("probe failed")
        torch.randn(5, generator=trainer.generator)  # draws: must not reach the training
        torch.randn(5)
        return measure(trainer)

    first = run_sweep(probed, root / "probed", device="cpu", probe=failing)
    assert first[0]["status"] == "failed" and "probe failed" in first[0]["error"]
    run_dir = root / "probed" / first[0]["run_id"]
    assert not (run_dir / "done.json").exists()
    second = run_sweep(probed, root / "probed", device="cpu")  # resumes from step 1
    assert second[0]["status"] == "done"
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 2]  # step 2 was redone from the step-1 checkpoint
    records = [json.loads(x) for x in (run_dir / "variance.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["trace_cov"] > 0 for r in records), records
    reference = next(r for r in table if r["run_id"] == second[0]["run_id"])
    for key in ("final_mask_iou", "final_psnr", "final_depth_pearson"):
        assert second[0][key] == reference[key], key


def test_the_command_line_takes_any_trainconfig_field() -> None:
    """`sdlib generate/variance --set KEY=VALUE`: dotted keys parsed to the field's type."""
    import argparse

    from sdlib.__main__ import _train_config

    args = argparse.Namespace(prompt="a red ball", method="sds", preset="paper", device="cpu",
                              set=["depth_dtype=none", "cell_cv.enabled=true",
                                   "cell_cv.t_bins=3", "antithetic=true", "batch_size=2"])
    cfg = _train_config(args)
    assert cfg.depth_dtype is None and cfg.depth_precision == "float32"  # CPU: float32 prior
    assert (cfg.cell_cv.enabled, cfg.cell_cv.t_bins, cfg.antithetic) == (True, 3, True)
    with pytest.raises(ValueError, match="no_such_field"):
        _train_config(argparse.Namespace(**{**vars(args), "set": ["no_such_field=1"]}))
    with pytest.raises(ValueError, match="given twice"):
        _train_config(argparse.Namespace(**{**vars(args), "set": ["seed=1", "seed=2"]}))
