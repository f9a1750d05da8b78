# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 34 — Scenes: SDS, VSD and SSD from inside a room
#
# **What it shows**: scene-level text-to-3D on ShapeZoo scenes, whose right answer is known.
# A ShapeZoo scene (`sdlib.shapezoo.scenes`) is a room or a yard built from coloured parts:
# a floor, walls (or hedges, buildings) and ShapeZoo objects standing on the floor, with the
# space around the centre left clear. Cameras stand *inside* (`SCENE_CAMERAS`: 0.1-0.5 from the
# centre, looking through it at the far side), so every view sees walls, floor and furniture
# at very different depths: where a depth baseline has the most to say.
#
# The preset `scene_config(prompt, method)` (`sdlib.scene_preset`) is ProlificDreamer's scene
# setting (threestudio `prolificdreamer-scene.yaml`) adapted to ShapeZoo: a NeRF in the larger
# box $[-2, 2]^3$ whose density starts **empty around the cameras** (the inverted blob
# $b(x) = -10\,(1 - \|x\|/1)$: negative inside radius 1, growing outward), no view-dependent
# prompt suffixes (a scene has no front), $t \sim U[0.02, 0.98]$ without annealing. SSD takes
# SteinDreamer's depth baseline (or the normal one, `baseline="normal"`).
#
# **Metrics** (`sdlib.shapezoo.scene_metrics`) at 8 fixed inside-out views: depth Pearson
# correlation (over pixels that are scene in both), PSNR, the mean CIE76 colour error
# $\Delta E$ (2.3 is just noticeable; white vs black is 100), and the ShapeZoo classifier's
# scene accuracy (NaN while the shipped classifier knows no scenes).
#
# **Paper claim** (SteinDreamer, arXiv 2401.00604): the gains of SSD hold "for both object- and
# scene-level generation". With priors trained on objects only, a scene prompt is out of
# distribution and no method can succeed. The shipped priors have been trained on objects and
# scenes since 2026-11-29 (`notes/priors_h200/`). The smoke run only exercises the code path.
#
# **Runtime**: `smoke=True` on a 2-core CPU about 25 s (papermill, shipped priors). A full run
# wants a GPU: 3 methods x `steps` steps at batch 4, 64² (about 35-130 ms per step on an H100).
#
# **sdlib modules**: `sdlib.shapezoo.scenes`, `sdlib.shapezoo.scene_metrics`,
# `sdlib.scene_preset`, `sdlib.train` (`Trainer`), `sdlib.cameras` (`SCENE_CAMERAS`),
# `sdlib.gradient_variance` (`paired_gradients`), `sdlib.decomposition`,
# `sdlib.figures`.

# %% tags=["parameters"]
seed: int = 0  # seed of every random draw
device: str = "cuda"  # torch device; the full run wants a GPU, CI passes cpu
smoke: bool = False  # tiny sizes for a CPU check, under 30 s
out_dir: str = ""  # figures + sidecars; empty: a scratch folder (outputs/figures), never figures/
prompt: str = "a living room with a red sofa and a lamp"  # a ShapeZoo scene prompt
methods: str = "sds,vsd,ssd"  # comma-separated score distillation methods
baseline: str = "depth"  # SSD's baseline: depth or normal
steps: int = 2000  # optimisation steps per method
batch_size: int = 4  # cameras per step
eval_size: int = 64  # resolution of the evaluation renders and the panorama
n_pano: int = 12  # views of the panorama from inside (azimuths evenly spaced)
probe: str = "6,4,8"  # cameras, timesteps, noises of the variance probe at the trained θ ("": none)

# %%
from sdlib.figures import resolve_out_dir

out_dir = str(resolve_out_dir(out_dir))  # "" -> outputs/figures; `make figures` writes figures/

import json
import time
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch

from sdlib.cameras import SCENE_CAMERAS
from sdlib.figures import REPO_ROOT, savefig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.priors import DepthPrior, DiffusionPrior
from sdlib.scene_preset import SCENE_FIELD, scene_config
from sdlib.shapezoo import SCENES, render
from sdlib.shapezoo.scene_metrics import evaluate_scene, scene_eval_cameras
from sdlib.train import Trainer

NOTEBOOK = "34_scenes.ipynb"
if device.startswith("cuda") and not torch.cuda.is_available():
    device = "cpu"
method_list = [m.strip() for m in methods.split(",") if m.strip()]
if smoke:
    steps, batch_size, eval_size, n_pano = 1, 1, 16, 6
    probe = "2,2,2" if probe else ""
parameters = dict(seed=seed, device=device, smoke=smoke, out_dir=out_dir, prompt=prompt,
                  methods=methods, baseline=baseline, steps=steps, batch_size=batch_size,
                  eval_size=eval_size, n_pano=n_pano, probe=probe)
torch.manual_seed(seed)
t_start = time.time()

# %% [markdown]
# ## The scenes, from inside
#
# Each row is one scene seen by the inside-out panorama cameras (elevation 10 degrees,
# azimuths $360k/n$): a camera at azimuth $a$ stands 0.3 from the centre on that side and
# looks through the centre, towards azimuth $a + 180$. The renderer is the exact one of the
# objects: a scene is just a larger union of parts. The one line being taught, inline: an
# inside camera's viewing axis is $-o / \|o\|$ for its position $o$, checked against
# `sdlib.cameras`.

# %%
pano_cams = scene_eval_cameras(n_pano, device=device)
origins = pano_cams.origins
forward = -origins / origins.norm(dim=-1, keepdim=True)  # looking through the centre
assert torch.allclose(forward, -pano_cams.c2w[:, :3, 2], atol=1e-6)
assert SCENE_CAMERAS.inside and torch.allclose(origins.norm(dim=-1),
                                               torch.tensor(0.3, device=device))
truths = {s.name: render(s, pano_cams, eval_size, eval_size) for s in SCENES}
fig, axes = plt.subplots(len(SCENES), 1, figsize=(1.1 * n_pano, 1.25 * len(SCENES)))
for ax, s in zip(axes, SCENES):
    ax.imshow(torch.cat(list(truths[s.name].rgb.cpu()), dim=1).numpy())
    ax.set_title(s.prompt, fontsize=8, loc="left")
    ax.axis("off")
fig.tight_layout()
savefig(fig, "fig34_scenes", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data={s.name: s.prompt for s in SCENES})
plt.show()


# %% [markdown]
# ## Train SDS, VSD and SSD on one scene
#
# One `Trainer` per method with the scene preset; the priors are loaded once and shared. The
# untrained field already shows the inverted blob: seen from inside, everything beyond radius
# about 1 is dense, so the first renders are a grey sphere around the camera.

# %%
prior = DiffusionPrior(model="shapezoo", device=device)
depth_prior = DepthPrior(model="shapezoo", device=device)
configs = {}
for m in method_list:
    cfg = scene_config(prompt, m, baseline=baseline, steps=steps, batch_size=batch_size,
                       device=device, seed=seed, eval_size=eval_size, eval_every=0,
                       checkpoint_every=0, turntable_frames=0)
    if smoke:  # CPU-sized: a small field, the dense sampler, 16² renders
        cfg = replace(cfg, render_size=16,
                      nerf=replace(SCENE_FIELD, grid=HashGridConfig(n_levels=4, log2_table_size=12,
                                                                    base_resolution=8)),
                      render=RenderConfig(sampler="dense", n_samples=16))
    configs[m] = cfg
results, renders, seconds, trainers = {}, {}, {}, {}
for m, cfg in configs.items():
    trainer = trainers[m] = Trainer(cfg, out_dir=None, prior=prior, depth=depth_prior)
    if m == method_list[0]:
        blob = trainer.render_eval(pano_cams[:1], eval_size)
        print(f"initial field from inside: opacity {float(blob.mask.mean()):.2f}, "
              f"depth {float(blob.depth.mean()):.2f} (the inverted blob's shell)")
    t0 = time.perf_counter()
    while trainer.step_count < cfg.steps:
        trainer.step()
    seconds[m] = time.perf_counter() - t0
    results[m] = trainer.evaluate()
    renders[m] = trainer.render_eval(pano_cams, eval_size)
    print(f"{m}: {cfg.steps} steps in {seconds[m]:.1f} s; " + ", ".join(
        f"{k} {v:.3f}" for k, v in results[m].items() if k not in ("step", "n_views")))

# %% [markdown]
# ## Panorama and depth against the truth
#
# Rows: the true scene, then each method, RGB then depth (same colour scale as the truth;
# black is empty: sky in the truth, no surface in a NeRF).

# %%
truth = render(prompt, pano_cams, eval_size, eval_size)
rows = [("truth", truth)] + [(m.upper(), renders[m]) for m in method_list]
d_max = float(truth.depth.max())
fig, axes = plt.subplots(2 * len(rows), 1, figsize=(1.1 * n_pano, 1.1 * 2 * len(rows)))
for i, (name, out) in enumerate(rows):
    rgb = torch.cat(list(out.rgb.clamp(0, 1).cpu()), dim=1).numpy()
    depth = torch.cat(list((out.depth * out.mask).cpu()), dim=1).numpy()
    axes[2 * i].imshow(rgb)
    axes[2 * i + 1].imshow(depth, cmap="magma", vmin=0.0, vmax=d_max)
    axes[2 * i].set_title(f"{name}: RGB", fontsize=8, loc="left")
    axes[2 * i + 1].set_title(f"{name}: depth", fontsize=8, loc="left")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
savefig(fig, "fig34_panorama", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data=dict(metrics=results, seconds=seconds))
plt.show()


# %% [markdown]
# ## Metrics at the 8 evaluation views
#
# The same numbers `Trainer.evaluate` writes for a scene prompt; the truth scores itself
# perfectly (a check of the metric code).

# %%
self_check = evaluate_scene(render(prompt, scene_eval_cameras(8), eval_size, eval_size), prompt,
                            height=eval_size, width=eval_size)
assert self_check["depth_pearson"] > 0.999 and self_check["color_error"] == 0.0
assert abs(self_check["depth_spread"] - 1.0) < 1e-3
keys = ["depth_pearson", "depth_spread", "psnr", "color_error", "classifier_accuracy"]
print(f"{'method':>8} " + " ".join(f"{k:>20}" for k in keys))
for m in method_list:
    print(f"{m:>8} " + " ".join(f"{results[m].get(k, float('nan')):>20.3f}" for k in keys))
fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.6))
for ax, k in zip(axes, keys):
    vals = [results[m].get(k, float("nan")) for m in method_list]
    ax.bar([m.upper() for m in method_list], np.nan_to_num(vals, nan=0.0),
           color=["C0", "C1", "C2"][: len(vals)])
    if k in ("depth_pearson", "classifier_accuracy"):
        ax.set_ylim(min(0.0, *np.nan_to_num(vals, nan=0.0)), 1.0)
    if all(np.isnan(vals)):  # the shipped classifier knows no scenes yet
        ax.text(0.5, 0.5, "n/a: the classifier\nknows no scenes", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
    ax.set_title(k, fontsize=9)
fig.suptitle(f"{prompt!r}, {steps} steps", fontsize=9)
fig.tight_layout()
savefig(fig, "fig34_metrics", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data=dict(metrics=results, seconds=seconds))
plt.show()
# %% [markdown]
# ## Where the variance lives at a scene θ: SDS against SSD's depth and normal baselines
#
# At the θ the first method trained, every estimator gets the same draws: `K` cameras and `T`
# timesteps (each stratified over the preset's ranges, crossed) and `N` noises per cell
# (`sdlib.gradient_variance.paired_gradients`). The law of total variance then splits each
# estimator's θ-gradient variance into noise-only, between-camera, between-timestep and
# interaction parts (`sdlib.decomposition`, notebook 40). SSD runs here with μ ≡ 1 and both of
# the paper's baselines: depth (`1 − Pearson` between the depth model's prediction on
# `decode(x_t)` and the render's depth) and normal. A scene has large depth ranges and
# occlusion, so the depth baseline should have the most to say here. A control variate on ε can
# only reduce the noise-only part.

# %%
from sdlib.distill import SDS, SSD
from sdlib.distill.ssd import SSDConfig
from sdlib.gradient_variance import decomposed_variance

variance = {}
if probe:
    K, T, N = (int(v) for v in probe.split(","))
    frozen = trainers[method_list[0]]
    estimators = {"SDS": SDS(),
                  "SSD depth, μ≡1": SSD.build(replace(frozen.config, ssd=SSDConfig()),
                                              frozen.priors),
                  "SSD normal, μ≡1": SSD.build(replace(frozen.config,
                                                       ssd=SSDConfig(baseline="normal")),
                                               frozen.priors)}
    t0 = time.perf_counter()
    variance = decomposed_variance(frozen, estimators, "SDS", n_cameras=K, n_timesteps=T,
                                   n_noises=N, seed=seed + 1000)
    for name, v in variance.items():
        print(f"{name:>16}: total {v['total']:.3g}, noise-only share "
              f"{v['noise_only'] / v['total']:.2f}; paired ratio to SDS: total "
              f"{v['total_ratio'][0]:.2f} ± {v['total_ratio'][1]:.2f}, noise-only "
              f"{v['noise_only_ratio'][0]:.2f} ± {v['noise_only_ratio'][1]:.2f}")
    print(f"probe ({K}×{T}×{N} draws at {method_list[0].upper()}'s θ, step "
          f"{frozen.step_count}): {time.perf_counter() - t0:.1f} s")
    names = list(variance)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3))
    bottom = np.zeros(len(names))
    for part, colour in (("noise_only", "C0"), ("between_cameras", "C1"),
                         ("between_timesteps", "C2"), ("interaction", "C3")):
        vals = np.array([max(variance[n][part], 0.0) for n in names]) / variance["SDS"]["total"]
        ax0.bar(names, vals, bottom=bottom, color=colour, label=part.replace("_", " "))
        bottom += vals
    ax0.set_ylabel("θ-gradient variance / SDS's total")
    ax0.set_ylim(0.0, 1.35 * bottom.max())
    ax0.legend(fontsize=7, ncol=2, loc="upper left")
    ax0.tick_params(axis="x", labelsize=7)
    for j, key in enumerate(("total_ratio", "noise_only_ratio")):
        r = [variance[n][key][0] for n in names[1:]]
        se = [variance[n][key][1] for n in names[1:]]
        ax1.errorbar(np.arange(len(r)) + 0.15 * j, r, yerr=[1.96 * e for e in se], fmt="o",
                     capsize=3, label=key.split("_ratio")[0].replace("_", "-"))
    ax1.axhline(1.0, color="k", lw=0.8)
    ax1.set_xticks(range(len(names) - 1), names[1:], fontsize=7)
    ax1.set_ylabel("paired ratio to SDS (95%)")
    ax1.legend(fontsize=7)
    fig.suptitle(f"{prompt!r}: variance at {method_list[0].upper()}'s θ after "
                 f"{frozen.step_count} steps ({K} cameras × {T} timesteps × {N} noises)",
                 fontsize=8)
    fig.tight_layout()
    savefig(fig, "fig34_variance", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
            seed=seed, data=dict(variance=variance, step=frozen.step_count))
    plt.show()

# %% [markdown]
# ## The H200 sweep: every scene, 2,000 steps
#
# The run above is one scene at the parameters given. The sweep (`scripts/scene_sweep.py` via
# `scripts/gpu_scenes.sh`, H200s, `notes/scenes_h200/`) ran SDS on all six scenes for 2,000
# steps with seeds 0 and 1, evaluating every 500; its table (seed means) and each run's
# evaluations along training are committed and read here in every mode. Issue 13's pass rule for a scene is classifier accuracy ≥ 0.75
# and depth Pearson ≥ 0.5 at the end.

# %%
sweep_dir = REPO_ROOT / "notes" / "scenes_h200"
sweep_table = json.loads((sweep_dir / "scene_table.json").read_text())
histories = {}
for f in sorted(sweep_dir.glob("eval_*.json")):
    histories.update(json.loads(f.read_text()))
print((sweep_dir / "scene_table.md").read_text())  # scripts/scene_sweep.py's table

# %% [markdown]
# SSD (depth baseline) ran the same preset with seed 0 only (tenth session, `ssd_s10/`): four
# scenes finished 2,000 steps, the garden and the snowy yard were cut at ~1,400 steps. Paired
# with SDS's seed 0 (the same seed; one run per scene and method, so no interval):

# %%
ssd_table = json.loads((sweep_dir / "ssd_s10" / "scene_table.json").read_text())
seed0 = {(r["scene"], r["method"]): r for tab in (sweep_table, ssd_table) for r in tab["runs"]
         if r["seed"] == 0 and r.get("variant", "preset") == "preset"}


def _cell(r: dict | None) -> str:
    if r is None:
        return "—"
    ok = r["classifier_accuracy"] >= 0.75 and r["depth_pearson"] >= 0.5
    verdict = f"partial at {r['steps_done']}" if r.get("partial") else ("pass" if ok else "fail")
    return f"{r['depth_pearson']:+.3f} / {r['classifier_accuracy']:.2f} ({verdict})"


print("| scene | SDS, seed 0: depth Pearson / classifier acc. | SSD, seed 0 |\n|---|---|---|")
for scene in sorted({s for s, _ in seed0}):
    print(f"| {scene} | {_cell(seed0.get((scene, 'sds')))} | {_cell(seed0.get((scene, 'ssd')))} |")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
scenes = sorted({tag.split("_sds_s")[0] for tag in histories})
for tag, rows in sorted(histories.items()):
    scene, run_seed = tag.split("_sds_s")
    rows = sorted({r["step"]: r for r in rows}.values(), key=lambda r: r["step"])
    step = [r["step"] for r in rows]
    style = dict(ms=3, color=f"C{scenes.index(scene)}", ls="-" if run_seed == "0" else "-.",
                 marker="o" if run_seed == "0" else "s")
    label = scene.replace("_", " ") if run_seed == "0" else None
    axes[0].plot(step, [r["depth_pearson"] for r in rows], label=label, **style)
    axes[1].plot(step, [r["classifier_accuracy"] for r in rows], **style)
for ax, bound, name in ((axes[0], 0.5, "depth Pearson"), (axes[1], 0.75, "classifier accuracy")):
    ax.axhline(bound, color="k", lw=0.8, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{name} at the 8 evaluation views")
axes[0].axhline(0.0, color="k", lw=0.5, ls=":")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=6, fontsize=7)
fig.suptitle("SDS on the six ShapeZoo scenes along training (solid: seed 0, dash-dot: seed 1; "
             "dashed black: issue 13's pass thresholds)", fontsize=10)
fig.tight_layout(rect=(0, 0.07, 1, 1))
savefig(fig, "fig34_scene_sweep", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data={"table": sweep_table, "histories": histories,
                         "files": [str(f.relative_to(REPO_ROOT))
                                   for f in sorted(sweep_dir.glob("*.json"))]})
plt.show()

# %% [markdown]
# What it shows: only the kitchen passes with both seeds (depth Pearson 0.77 and 0.77). A
# room's depth sign is the seed's: the bedroom and the living room end at +0.56 and +0.36 with
# seed 0 and at −0.47 and −0.71 with seed 1, whose runs were already below zero at step 500.
# The outdoor scenes repeat across seeds: the snowy yard's depth is right at step 500 (+0.58,
# +0.66) while the classifier names no view, and inverted by step 2,000 (−0.31, −0.36) once
# every view is named: the tree that makes each view recognisable is painted near the camera in
# every view (the panorama, `notes/scenes_h200/panoramas.png`). The garden drifts to zero or
# below as the house's roof spreads over every view, and the street's seed 1 loses the
# classifier as well (1.00 → 0.00). On the seed means 1 scene of 6 passes; issue 13 asks 4. A
# variant test (`notes/scenes_h200/README.md`) found guidance 3 passes the living room (0.80)
# and halves its colour error, but leaves the outdoor scenes inverted.
#
# Why a room's sign follows the seed: Pearson is blind to scale, and SDS barely shapes the
# shell. The depth spread (std of the result's depth over the truth's, `depth_spread` in the
# metrics above) of the seed-0 runs is 0.12–0.37, from 0.03–0.05 for the untrained field: the
# depth stays nearly flat and a Pearson of ±0.5 comes from its small wobbles
# (`notes/scenes_h200/README.md`).
#
# SSD with seed 0 follows SDS's seed 0 scene by scene: of the four scenes it finished it passes
# 2 (kitchen 0.774, street 0.695), where SDS passes 3 of the same four (the bedroom too: SSD
# 0.424 against SDS's 0.557); its panoramas are SDS's within 32–49 dB, the same shells with the
# same colours (`notes/scenes_h200/ssd_s10/README.md`). One seed per scene: the differences
# are within what a seed changes for SDS alone.

# %%
print(f"notebook time {time.time() - t_start:.1f} s")


# %% [markdown]
# ## Takeaway
#
# Scenes are ShapeZoo data like objects: exact RGB, depth and normals from inside, captions,
# and metrics against the truth (the truth scores itself depth Pearson 1.000 and colour error
# 0.0), so SDS, VSD and SSD can be compared on scene-level generation with numbers rather than
# pictures. The scene preset starts from an empty bubble around the cameras inside a dense shell
# (the untrained field is opaque in every view, at a mean depth of about 1.6 from cameras 0.3
# off-centre), and each method has to carve the room out of that shell: after the smoke run's
# single step all three still score a depth Pearson of about 0.17 and a colour error of about
# 38 on the living room. The shipped priors know the scenes: they name every scene sample in
# `notebooks/22_priors.ipynb` correctly, and ShapeZoo-DPT's depth correlation on scenes is 0.98.
# Whether SSD's depth or normal baseline removes more variance on scenes than on objects is what
# the last section measures at a frozen θ. At the smoke run's θ (one step, 2 × 2 × 2 draws) its
# intervals are too wide to say. The answer needs the GPU run at the default 2,000 steps and a
# 6 × 4 × 8 probe; `scripts/scene_sweep.py` runs every scene and method over seeds.
#
# On the H200 sweep (section above), SDS passes 3 of 6 scenes with seed 0 (bedroom, kitchen,
# street) and 1 of 6 on the means of seeds 0 and 1 (the kitchen); issue 13 asks 4. A room's depth
# sign follows the seed, and the field's depth spread (0.12-0.37 of the truth's) says why: SDS
# paints the initial shell and tilts it a little. Guidance 3 and a softer blob did not do better
# (`notes/scenes_h200/`).
#
# **The images do not determine these scenes' depth.** Fitted to the *exact* renders from the
# preset's cameras by photometric MSE, with no prior at all, the same field reproduces the living
# room at 36.9 dB with a depth spread of 0.09 and Pearson +0.04, and the kitchen at Pearson +0.52
# with a spread of 0.05 (a flat shell tilted the right way); an object seen from outside is
# recovered (`notes/scenes_cpu/identifiability.md`, `scripts/scene_identifiability.py`). Uniform
# walls seen from inside have no silhouettes and hardly any parallax cues, so a painted shell
# explains every view; painted with a 3-D checker, the same living-room fit reaches Pearson
# +0.83 instead of +0.04. A depth score on these scenes therefore measures the shell's tilt, and no
# estimator (SSD's control variate has mean zero) can be expected to move it. The same check at
# the preset's sizes on an H200 (64², 2,000 steps, `notes/scenes_h200/identifiability_h200.md`)
# agrees: the plain rooms are reproduced at 33–37 dB with depth Pearson −0.56 to +0.23, the
# checker-textured rooms reach +0.69 to +0.87, and the teddy-bear control +0.98.
#
# Outdoor scenes are the hard case. A small CPU run of SDS on the garden
# (`notes/scenes_cpu/README.md`, 400 steps at 32²) paints the house's red roof across the top of
# every view, close to the camera: each view is pushed towards a typical "garden with trees and a
# house" image, so the house appears everywhere, and depth Pearson falls from +0.40 at step 100
# to +0.06 at step 400. This is the scene form of the Janus problem.
