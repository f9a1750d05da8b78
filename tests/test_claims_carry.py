"""scripts/claims_carry.py: a claims sweep's finished runs packed per session, merged back into
one sweep folder (what the next session carries) and into one compact file equal to the
sweep's own."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest

from sdlib import claims

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "claims_carry.py"
spec = importlib.util.spec_from_file_location("claims_carry", SCRIPT)
carry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(carry)


def _run(sweep: Path, prompt: str, seed: int, done: bool, steps: int = 40) -> None:
    run = sweep / f"{prompt.replace(' ', '_')}__sds__seed{seed}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"prompt": prompt, "method": "sds",
                                                 "seed": seed}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "step_ms": 100.0, "train_seconds": 0.1 * s}) + "\n"
        for s in range(1, steps + 1)))
    (run / "eval.jsonl").write_text("".join(
        json.dumps({"step": s, "mask_iou": s / steps, "train_seconds": 0.1 * s}) + "\n"
        for s in (10, 20, 30, 40)))
    if done:
        (run / "done.json").write_text(json.dumps({"status": "done"}))


def _archive(tmp: Path, name: str, runs: list[tuple[str, int, bool]]) -> Path:
    sweep = tmp / name / "claims"
    for prompt, seed, done in runs:
        _run(sweep, prompt, seed, done)
    (sweep / "priors.json").write_text(json.dumps({"sd/unet": "abc"}))
    out = tmp / f"{name}.tgz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(sweep, arcname="claims")
    return out


def test_packs_keep_new_finished_runs_and_merge_back(tmp_path) -> None:
    first = _archive(tmp_path, "call1", [("a ball", 0, True), ("a cup", 0, False)])
    # the next session's sweep folder was seeded from the first pack: its run comes back
    second = _archive(tmp_path, "call2", [("a ball", 0, True), ("a cup", 0, True),
                                         ("a hat", 1, True)])
    packs = tmp_path / "packs"
    carry.pack(first, packs, "2026-11-29_s7", keep_every=10, machine="m1")
    carry.pack(second, packs, "2026-11-30_s8", keep_every=10, machine="m2")
    with tarfile.open(packs / "2026-11-30_s8.tgz") as tar:  # only the runs new in call 2
        runs = {Path(m.name).parts[1] for m in tar.getmembers() if len(Path(m.name).parts) > 2}
    assert runs == {"a_cup__sds__seed0", "a_hat__sds__seed1"}
    merged = carry.unpack(packs, tmp_path / "claims_prev")
    done = sorted(d.name for d in merged.iterdir() if (d / "done.json").exists())
    assert done == ["a_ball__sds__seed0", "a_cup__sds__seed0", "a_hat__sds__seed1"]
    steps = [json.loads(ln)["step"] for ln in
             (merged / "a_ball__sds__seed0" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 10, 20, 30, 40]
    compact = claims.load_runs(packs / "runs.json.gz")
    assert [(r.prompt, r.seed, r.steps, r.step_ms) for r in compact] == [
        ("a ball", 0, 40, 100.0), ("a cup", 0, 40, 100.0), ("a hat", 1, 40, 100.0)]
    assert [r.evals for r in compact] == [r.evals for r in claims.load_runs(merged)]
    meta = claims.load_meta(packs / "runs.json.gz")
    assert [s["machine"] for s in meta["sessions"]] == ["m1", "m2"]
    assert meta["priors"] == {"sd/unet": "abc"}
    with pytest.raises(SystemExit, match="exists"):
        carry.pack(second, packs, "2026-11-30_s8")
