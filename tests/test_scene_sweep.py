"""The scene sweep's plumbing on CPU: a run cut by the time limit resumes in the next call,
and a finished SDS run is probed for variance."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scene_sweep.py"


def _sweep(tmp_path: Path, limit: float) -> list[dict]:
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--out",
           str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--methods", "sds",
           "--scenes", "kitchen", "--seeds", "0", "--steps", "3", "--eval_every", "0",
           "--jobs_per_gpu", "1", "--time_limit_s", str(limit), "--probe", "2,2,2"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return json.loads((tmp_path / "out" / "scene_table.json").read_text())["runs"]


def test_a_cut_run_resumes_and_a_finished_one_is_skipped(tmp_path) -> None:
    runs = _sweep(tmp_path, limit=0)  # no step starts: scored at step 0 and checkpointed
    assert [(r["steps_done"], r.get("partial")) for r in runs] == [(0, True)]
    assert (tmp_path / "work" / "kitchen_sds_s0" / "checkpoint.pt").exists()
    pano = tmp_path / "work" / "pano_kitchen_sds_s0.json"  # a cut run is drawn, with its step
    assert json.loads(pano.read_text()) == {"step": 0, "partial": True}
    runs = _sweep(tmp_path, limit=600)  # the next call finishes it
    assert [(r["steps_done"], r.get("partial")) for r in runs] == [(3, None)]
    start = json.loads((tmp_path / "work" / "kitchen_sds_s0" / "start.json").read_text())
    assert runs[0]["start_depth_pearson"] == start["depth_pearson"]  # the untrained field's
    assert "(at step 0)" in (tmp_path / "out" / "scene_table.md").read_text()
    assert json.loads(pano.read_text()) == {"step": 3, "partial": False}
    variance = runs[0]["variance"]  # the probe at the finished SDS run's θ
    assert set(variance) >= {"sds", "ssd_depth_mu1", "ssd_normal_mu1"}
    assert variance["sds"]["total_ratio"][0] == 1.0
    assert variance["ssd_normal_mu1"]["total"] != variance["sds"]["total"]
    result = json.loads((tmp_path / "work" / "kitchen_sds_s0" / "result.json").read_text())
    lines = (tmp_path / "work" / "results_0.jsonl").read_text().splitlines()
    assert len(lines) == 2
    runs = _sweep(tmp_path, limit=600)  # nothing left: the finished run is not run again
    assert runs == [result]
    assert len((tmp_path / "work" / "results_0.jsonl").read_text().splitlines()) == 2


def test_variants_run_the_grid_again_with_overrides(tmp_path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--out",
           str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--methods", "sds",
           "--scenes", "garden", "--seeds", "0", "1", "--steps", "2", "--eval_every", "0",
           "--jobs_per_gpu", "1", "--probe", "", "--variant", "preset:",
           "--variant", "clear15:nerf.blob_radius=1.5,guidance_scale=20"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    table = json.loads((tmp_path / "out" / "scene_table.json").read_text())
    assert sorted(r["variant"] for r in table["runs"]) == ["clear15"] * 2 + ["preset"] * 2
    # every run's panorama is kept (records carry them); one figure per seed
    assert (tmp_path / "work" / "pano_garden_sds_s1_clear15.npy").exists()
    assert (tmp_path / "out" / "panoramas.png").exists()
    assert (tmp_path / "out" / "panoramas_s1.png").exists()
    assert set(table["means"]["garden"]) == {"sds", "sds+clear15"}
    assert set(table["sds_scenes_passing_by_variant"]) == {"sds", "sds+clear15"}
    config = json.loads((tmp_path / "work" / "garden_sds_s0_clear15" / "config.json").read_text())
    assert config["nerf"]["blob_radius"] == 1.5 and config["guidance_scale"] == 20.0
    bad = subprocess.run(cmd[:-2] + ["--variant", "oops:nerf.no_such_field=1"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "no_such_field" in bad.stderr + bad.stdout


def test_gpu_scenes_takes_several_record_archives(tmp_path) -> None:
    """``RECORDS`` names several archives (.tgz and .tar.xz): all are unpacked, their finished
    runs are skipped, shown in the table and packed together into the next records.tgz."""
    import os
    import tarfile

    repo = SCRIPT.parents[1]
    archives = []
    for method, suffix in (("sds", "tgz"), ("ssd", "tar.xz")):
        run = tmp_path / "src" / f"kitchen_{method}_s0"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps(
            {"scene": "kitchen", "method": method, "seed": 0, "variant": "preset",
             "depth_pearson": 0.5, "classifier_accuracy": 1.0, "steps_done": 3}) + "\n")
        archives.append(tmp_path / f"records_{method}.{suffix}")
        with tarfile.open(archives[-1], "w:gz" if suffix == "tgz" else "w:xz") as tar:
            tar.add(run / "result.json", arcname=f"kitchen_{method}_s0/result.json")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "WORK": str(tmp_path / "work"),
           "RECORDS": " ".join(str(a) for a in archives), "SDLIB_GPU_SETUP": "done",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "scripts/gpu_scenes.sh", "600", "--smoke", "--device", "cpu", "--methods",
         "sds", "ssd", "--scenes", "kitchen", "--seeds", "0", "--steps", "3", "--eval_every",
         "0", "--jobs_per_gpu", "1", "--probe", ""],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "records: 2 finished runs" in proc.stdout
    runs = json.loads((out / "scene_table.json").read_text())["runs"]
    assert sorted((r["method"], r["steps_done"]) for r in runs) == [("sds", 3), ("ssd", 3)]
    with tarfile.open(out / "records.tgz") as tar:
        assert set(tar.getnames()) >= {"kitchen_sds_s0/result.json",
                                       "kitchen_ssd_s0/result.json"}
    bad = subprocess.run(["bash", "scripts/gpu_scenes.sh", "600", "--smoke"], cwd=repo,
                         env={**env, "RECORDS": str(tmp_path / "missing.tgz")},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0  # a missing archive stops the call before any training
