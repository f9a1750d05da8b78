"""sdlib.claims: the statistics behind notebooks 40-44, on synthetic runs with known answers and
on the committed H200 sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sdlib import claims
from sdlib.claims import Run


def _run(label_method: str, prompt: str, seed: int, iou: list[float], variant: str = "",
         done: bool = True) -> Run:
    evals = tuple({"step": 50 * (i + 1), "mask_iou": v, "psnr": 10 * v, "depth_pearson": v,
                   "classifier_accuracy": 1.0, "color_delta_e": 20.0,
                   "train_seconds": 5.0 * (i + 1)} for i, v in enumerate(iou))
    return Run(run_id=f"{prompt}__{label_method}__seed{seed}", prompt=prompt,
               method=label_method, seed=seed, variant=variant, done=done,
               steps=50 * len(iou), step_ms=100.0, evals=evals)


def test_bootstrap_interval_covers_the_mean_and_keeps_censored_values_infinite() -> None:
    rng = np.random.default_rng(0)
    ci = claims.bootstrap_ci(rng.normal(3.0, 1.0, 400), n_boot=500)
    assert ci.lo < 3.0 < ci.hi and ci.n == 400
    med = claims.bootstrap_ci([1.0, 2.0, math.inf, math.inf, math.inf], np.median, n_boot=300)
    assert med.estimate == math.inf and med.hi == math.inf and not math.isnan(med.lo)
    assert claims.bootstrap_ci([]).n == 0 and math.isnan(claims.bootstrap_ci([1.0]).lo)


def test_steps_to_threshold_ratios_and_censoring() -> None:
    runs = [
        _run("sds", "a", 0, [0.5, 0.7, 0.9, 1.0]),       # threshold 0.95: reached at step 200
        _run("ssd", "a", 0, [0.5, 0.96, 0.97, 0.98]),    # step 100: ratio 0.5
        _run("sds", "b", 0, [0.5, 0.6, 0.7, 0.8]),       # threshold 0.76: step 200
        _run("ssd", "b", 0, [0.5, 0.6, 0.7, 0.75]),      # never: censored
        _run("ssd", "c", 0, [1.0, 1.0, 1.0, 1.0]),       # no SDS run of this pair: left out
    ]
    out = claims.steps_to_threshold(runs, "mask_iou", 0.95, n_boot=200)["SSD (paper)"]
    assert out["pairs"] == [("a", 0), ("b", 0)]
    assert out["ratios"][0] == pytest.approx(0.5) and math.isinf(out["ratios"][1])
    assert out["censored"] == 1
    secs = claims.steps_to_threshold(runs, "mask_iou", 0.95, x="train_seconds", n_boot=50)
    assert secs["SSD (paper)"]["ratios"][0] == pytest.approx(10.0 / 20.0)
    with pytest.raises(ValueError, match="lower-is-better"):
        claims.steps_to_threshold(runs, "color_delta_e")
    # interpolated crossings: SDS "a" crosses 0.95 halfway between 150 (0.9) and 200 (1.0),
    # SSD "a" at 50 + 50 * 0.45 / 0.46 between 50 (0.5) and 100 (0.96)
    lin = claims.steps_to_threshold(runs, "mask_iou", 0.95, n_boot=50, interpolate=True)
    assert lin["SSD (paper)"]["ratios"][0] == pytest.approx((50 + 50 * 0.45 / 0.46) / 175)
    assert math.isinf(lin["SSD (paper)"]["ratios"][1])


def test_as_variant_pairs_another_sweeps_runs_with_the_plain_runs() -> None:
    # the batch-8 control: same run ids and labels as the preset's SDS runs, from its own sweep
    plain = [_run("sds", "a", 0, [0.5, 0.7, 0.9, 1.0]), _run("sds", "b", 0, [0.5, 0.6, 0.7, 0.8])]
    other = [_run("sds", "a", 0, [0.5, 0.96, 0.97, 0.98]), _run("sds", "b", 0, [0.8] * 4)]
    both = plain + claims.as_variant(other, "batch_size=8")
    out = claims.steps_to_threshold(both, "mask_iou", 0.95, n_boot=50)
    assert list(out) == ["sds:batch_size=8"]
    assert out["sds:batch_size=8"]["ratios"] == pytest.approx([0.5, 50 / 200])
    assert {r.run_id for r in both[2:]}.isdisjoint(r.run_id for r in plain)
    with pytest.raises(ValueError, match="key=value"):
        claims.as_variant(other, "")
    # the inverse: one arm of a grid of variants made the reference
    arms = claims.as_variant(plain, "pullback=latent") + claims.as_variant(other,
                                                                            "pullback=decoded")
    ref = claims.as_reference(arms, "pullback=latent")
    assert sorted({r.label for r in ref}) == ["SDS", "sds:pullback=decoded"]
    assert claims.final_quality(ref, ["mask_iou"], n_boot=50)["sds:pullback=decoded"][
        "mask_iou"]["diff_to_sds"].estimate == pytest.approx(((0.98 - 1.0) + (0.8 - 0.8)) / 2)
    with pytest.raises(ValueError, match="no run has the variant"):
        claims.as_reference(arms, "pullback=other")
    # the colour grid's pairs: both arms of a (prompt, seed), or the pair is left out
    lone = claims.as_variant([_run("sds", "c", 0, [0.5, 0.6])], "pullback=latent")
    pairs = claims.variant_pairs(arms + lone, "pullback=latent", "pullback=decoded")
    assert list(pairs) == [("a", 0), ("b", 0)]
    assert pairs[("a", 0)]["pullback=decoded"].final("mask_iou") == pytest.approx(0.98)
    with pytest.raises(ValueError, match="no \\(prompt, seed\\) has finished runs of both"):
        claims.pullback_figure(lone)


def test_final_quality_pairs_by_prompt_and_seed_and_curves_keep_common_pairs() -> None:
    runs = [_run("sds", "a", 0, [0.5, 0.8]), _run("ssd", "a", 0, [0.5, 0.9]),
            _run("sds", "b", 0, [0.5, 0.6]), _run("ssd", "b", 0, [0.5, 0.5], done=False)]
    q = claims.final_quality(runs, ["mask_iou"], n_boot=50)
    assert q["SSD (paper)"]["mask_iou"]["diff_to_sds"].estimate == pytest.approx(0.1)
    assert q["SDS"]["mask_iou"]["mean"].estimate == pytest.approx(0.7)
    curves = claims.metric_curves(runs, "mask_iou", n_boot=50)
    assert curves["SDS"]["n"] == [1, 1] and curves["SDS"]["mean"][-1] == pytest.approx(0.8)
    assert len(claims.metric_curves(runs, "mask_iou", common=False, n_boot=50)["SDS"]["n"]) == 2
    with pytest.raises(ValueError, match="accepted"):
        claims.metric_curves(runs, "iou")


def test_a_sweep_folder_compacts_and_reads_back(tmp_path) -> None:
    run = tmp_path / "sweep" / "a_red_ball__ssd__seed1__ssd.baseline=constant"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"prompt": "a red ball", "method": "ssd",
                                                 "seed": 1}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "step_ms": 10.0 * s, "train_seconds": s}) + "\n"
        for s in (1, 2, 3)))
    (run / "eval.jsonl").write_text(json.dumps({"step": 2, "mask_iou": 0.5}) + "\n")
    (run / "done.json").write_text("{}")
    (tmp_path / "sweep" / "priors.json").write_text(json.dumps({"sd/x": "abc"}))
    [r] = claims.load_runs(tmp_path / "sweep")
    assert (r.variant, r.seed, r.done, r.steps, r.step_ms) == ("ssd.baseline=constant", 1, True,
                                                               3, 25.0)
    assert r.evals[0]["train_seconds"] == 2 and r.label == "ssd:ssd.baseline=constant"
    out = claims.compact(tmp_path / "sweep", tmp_path / "c.json.gz", machine="cpu")
    assert claims.load_runs(out) == [r]
    assert claims.load_meta(out)["machine"] == "cpu"
    assert claims.priors_digest(claims.load_meta(out)) != "unknown"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        claims.load_runs(tmp_path / "nothing")


def test_the_committed_sweep_decomposes_into_parts_that_sum_to_one() -> None:
    runs = claims.load_runs(claims.COMMITTED)
    assert len({r.pair for r in runs}) == 24 and sum(r.done for r in runs) >= 32
    table = claims.decomposition_table(runs, "theta", n_boot=100)
    assert table["n_runs"] == 32
    total = sum(ci.estimate for ci in table["fractions"].values())
    assert total == pytest.approx(1.0, abs=1e-6)
    assert {"mc", "ssd_mu1", "own:SSD (paper)", "own:VSD"} <= set(table["ratios"])
    eff = claims.efficiency_table(runs)
    assert eff["sds"]["ratio"].estimate == 1.0 and len(eff["mu_t"]["per_theta"]) == 3


def test_per_t_shares_of_the_committed_sweep_sum_to_one() -> None:
    runs = claims.load_runs(claims.COMMITTED)
    table = claims.per_t_table(runs, "latent", n_boot=50)
    assert len(table) == 4
    assert sum(row["share_of_total"].estimate for row in table.values()) == pytest.approx(1.0)
    assert all(0 < row["noise_share"].estimate < 1 for row in table.values())


def test_probe_table_over_prompts(tmp_path) -> None:
    """Frozen-θ probe files (scripts/cell_cv_probe.py's format): ratios, their standard errors,
    the mean over prompts, the pooled ratio and which design is lowest on how many prompts."""
    def design(v, se, ratio, rel_se, ms=10.0):
        return {"per_evaluation": v, "per_evaluation_se": se, "ratio": ratio,
                "ratio_rel_se": rel_se, "ms_per_batch": ms, "ratio_x_time": ratio * ms / 10.0}

    paths = []
    for i, (a, b) in enumerate([(0.5, 0.8), (0.25, 0.2)]):  # the second design wins prompt 1
        v_sds = 100.0 * (i + 1)
        f = {"args": {"prompt": f"prompt {i}"},
             "designs": {"sds": design(v_sds, 5.0, 1.0, 0.0),
                         "a": design(a * v_sds, 1.0, a, 0.1, ms=20.0),
                         "b": design(b * v_sds, 1.0, b, 0.2)}}
        paths.append(tmp_path / f"p{i}.json")
        paths[-1].write_text(json.dumps(f))
    t = claims.probe_table(paths, n_boot=200)
    assert t["a"]["ratios"] == [0.5, 0.25] and t["a"]["ses"] == pytest.approx([0.05, 0.025])
    assert t["a"]["mean"].estimate == pytest.approx(0.375)
    assert t["a"]["pooled"] == pytest.approx((50 + 50) / 300)
    assert t["a"]["gmean"] == pytest.approx(math.sqrt(0.5 * 0.25))
    assert (t["a"]["best_on"], t["b"]["best_on"], t["sds"]["best_on"]) == (1, 1, 0)
    assert t["sds"]["prompts"] == ["prompt 0", "prompt 1"]
    assert t["a"]["time_ratios"] == [2.0, 2.0]
    assert t["a"]["x_time"].estimate == pytest.approx(0.75)  # mean of 2 × (0.5, 0.25)
    assert t["sds"]["x_time"].estimate == pytest.approx(1.0)
    del f["designs"]["a"]["ratio_x_time"]  # files of older probes: no variance × time
    paths[-1].write_text(json.dumps(f))
    assert claims.probe_table(paths, n_boot=50)["a"]["x_time"] is None
    assert claims.probe_table([]) == {}


def test_own_cells_curve_takes_the_geometric_mean_over_runs_per_step() -> None:
    def run(seed: int, ratios: dict[int, float]) -> Run:
        variance = tuple({"step": s, "kind": "light", "cells_own": {"ratio": r}}
                         for s, r in ratios.items())
        return Run(run_id=f"p__sds__seed{seed}", prompt="p", method="sds", seed=seed,
                   variant="cell_cv.enabled=true,antithetic=true,stratified=true", done=True,
                   steps=20, step_ms=1.0, variance=variance)

    plain = _run("sds", "p", 0, [0.5])  # no cells_own records: ignored
    curve = claims.own_cells_curve([run(0, {10: 0.5, 20: 0.25}), run(1, {10: 0.125}), plain],
                                   n_boot=100)
    assert curve["step"] == [10, 20] and curve["n"] == [2, 1]
    assert curve["gmean"] == pytest.approx([0.25, 0.25])
    assert claims.own_cells_curve([plain]) == {"step": [], "gmean": [], "lo": [], "hi": [],
                                               "n": []}


def test_variance_curves_take_each_runs_own_estimator_and_leave_out_runs_without_one() -> None:
    def run(method: str, seed: int, key: str, total: float, variant: str = "") -> Run:
        rec = {"step": 10, "kind": "light", "theta": {key: {"total": total}}}
        return Run(run_id=f"p__{method}__seed{seed}", prompt="p", method=method, seed=seed,
                   variant=variant, done=True, steps=10, step_ms=1.0, variance=(rec,))

    cells = "cell_cv.enabled=true,antithetic=true,stratified=true"
    runs = [run("sds", 0, "sds", 2.0), run("sds", 1, "sds", 4.0), run("ssd", 0, "own", 8.0),
            run("ssd", 1, "sds", 99.0),  # an SSD run's SDS probe is not its own estimator
            run("sds", 2, "sds", 5.0, variant=cells)]  # cells runs probe SDS only
    curves = claims.variance_curves(runs, "theta", "total", n_boot=50)
    assert set(curves) == {"SDS", "SSD (paper)"}
    assert curves["SDS"]["median"] == [3.0] and curves["SDS"]["n"] == [2]
    assert curves["SSD (paper)"]["median"] == [8.0] and curves["SSD (paper)"]["n"] == [1]


def test_theta_effect_pairs_sds_at_each_methods_theta_with_the_sds_run_of_the_same_prompt_seed(
        ) -> None:
    def run(method: str, prompt: str, seed: int, sds_total: float, variant: str = "") -> Run:
        rec = {"step": 10, "kind": "light", "theta": {"sds": {"total": sds_total},
                                                       "own": {"total": 1.0}}}
        return Run(run_id=f"{prompt}__{method}__seed{seed}", prompt=prompt, method=method,
                   seed=seed, variant=variant, done=True, steps=10, step_ms=1.0,
                   variance=(rec,))

    runs = [run("sds", "p", 0, 8.0), run("sds", "q", 0, 2.0),
            run("vsd", "p", 0, 2.0), run("vsd", "q", 0, 2.0),  # ratios 1/4 and 1: gmean 1/2
            run("vsd", "r", 0, 5.0)]  # no SDS run of prompt r: unpaired, left out
    curves = claims.theta_effect_curves(runs, "theta", "total", n_boot=50)
    assert set(curves) == {"VSD"}
    assert curves["VSD"]["gmean"] == pytest.approx([0.5]) and curves["VSD"]["n"] == [2]
    assert claims.theta_effect_curves(runs[:2]) == {}


def test_ablation_table_pairs_each_variant_with_the_reference_of_the_same_prompt_and_seed(
        ) -> None:
    def run(variant: str, prompt: str, seed: int, iou: float, done: bool = True) -> Run:
        r = _run("sds", prompt, seed, [0.1, iou], done=done)
        return Run(run_id=f"{r.run_id}__{variant}", prompt=prompt, method="sds", seed=seed,
                   variant=variant, done=done, steps=r.steps, step_ms=r.step_ms, evals=r.evals)

    ref, g3 = "guidance_scale=7.5", "guidance_scale=3"
    runs = [run(ref, "a", 0, 0.5), run(ref, "b", 0, 0.7),
            run(g3, "a", 0, 0.6), run(g3, "b", 0, 0.9),  # paired differences 0.1 and 0.2
            run(g3, "c", 0, 0.1),  # no reference for prompt c: in the mean, not in the diff
            run(g3, "d", 0, 0.0, done=False)]  # unfinished: left out
    table = claims.ablation_table(runs, metrics=("mask_iou",), n_boot=200)
    assert set(table) == {"guidance scale (SDS)", "t_max annealed 0.98 → 0.5 (SDS)"}
    row = table["guidance scale (SDS)"][g3]
    assert row["n"] == 2 and row["runs"] == 3
    assert row["mask_iou"]["diff"].estimate == pytest.approx(0.15)
    assert row["mask_iou"]["mean"].estimate == pytest.approx((0.6 + 0.9 + 0.1) / 3)
    assert table["guidance scale (SDS)"][ref]["mask_iou"]["diff"].estimate == 0.0
    assert table["guidance scale (SDS)"]["guidance_scale=50"]["n"] == 0
    fig = claims.ablation_figure(table, metrics=("mask_iou",))
    assert len(fig.axes) == 2
    flat = json.loads(json.dumps(claims.ablation_json(table)))
    assert flat["guidance scale (SDS)"][g3]["mask_iou"]["diff"]["n"] == 2
