# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 31 — Text-to-3D with SDS, VSD or SSD
#
# **What it shows**: one ShapeZoo prompt in, a NeRF out, under the shipped ShapeZoo-SD prior,
# by the method named in the `method` parameter (run the notebook once per method; CI runs all
# three). Each method turns the guided noise prediction $\hat\varepsilon(x_t; y, t)$ at the VAE
# latent $x$ of a render into a gradient on $x$, pulled back through the renderer:
#
# | `method` | gradient on $x$ | paper | module |
# |---|---|---|---|
# | `sds` | $\omega(t)\,(\hat\varepsilon - \varepsilon)$ | DreamFusion, arXiv 2209.14988 | `sdlib.distill.sds` |
# | `vsd` | $\omega(t)\,(\hat\varepsilon - \hat\varepsilon_\phi(x_t; y, c, t))$, LoRA + camera | ProlificDreamer, arXiv 2305.16213 | `sdlib.distill.vsd` |
# | `ssd` | $\omega(t)\,(\hat\varepsilon - \mu \odot h)$, $h = \varepsilon\,\phi(x_t) - \sigma_t \nabla_{x_t}\phi(x_t)$ | SteinDreamer, arXiv 2401.00604 | `sdlib.distill.ssd` |
#
# SSD's Stein control variate has the sign of [docs/maths.md](../docs/maths.md) §2 (zero-mean; the project page's
# $\varepsilon\phi + \nabla\phi$ is biased, notebook 11); its default baseline is SteinDreamer's
# $\phi = 1 - \mathrm{Pearson}(D(\mathrm{decode}(x_t)), 1/\mathrm{depth_{render}})$ through the
# shipped ShapeZoo-DPT, and $\mu$ (per channel) is learned to minimise the estimator's second
# moment. SDS's $-\varepsilon$ is the Stein control variate with $\phi \equiv 1$, $\mu \equiv 1$.
# **Paper claim**: SSD has lower gradient variance than SDS and VSD, hence faster convergence
# (14–22% fewer steps) and ~30% less time per step than VSD. Compare the variance-proxy and
# metric curves of the three runs. This run's figures appear under their cells; the committed
# GPU results (8 prompts × 3 methods, `figures/fig31_quality*.png`) are shown at the end.
#
# **What to expect** ([docs/maths.md](../docs/maths.md) §2.3, §2.5): SSD's depth baseline is one
# scalar $\phi$ per render, so its $h$ is SDS's $\varepsilon$ scaled by one number plus one
# image-shaped direction; a control variate removes only the fraction $\rho^2$ of the variance it
# correlates with, and $\rho(\hat\varepsilon, h) \approx \rho(\hat\varepsilon, \varepsilon)$ predicts
# SSD ≈ SDS, which is what the committed runs show.
#
# Because the prompt is a ShapeZoo prompt, the right answer is known: we report mask IoU,
# depth Pearson correlation and PSNR against the true object at 8 evaluation views, the
# ShapeZoo classifier's accuracy on the renders, and the Chamfer distance of the extracted
# mesh to the true surface.
#
# **Runtime** on one H100 (measured, `notes/pilot_text_to_3d_h100.json`): 1,000 steps at
# batch 4, 64² renders take 35 s (SDS, 35 ms per step), 57 s (SSD, 57 ms) and 133 s (VSD,
# 133 ms); the default 3,000 steps about three times that. `smoke=True` on a 2-core CPU: about
# 40-70 s per method (papermill; shipped priors).
#
# **sdlib modules**: `sdlib.train` (`shapezoo_config`, `Trainer`), `sdlib.distill`,
# `sdlib.priors`, `sdlib.cameras`, `sdlib.shapezoo` (ground truth, metrics),
# `sdlib.nerf.export` (turntable, mesh), `sdlib.viewer`, `sdlib.figures`.

# %% tags=["parameters"]
seed: int = 0  # seed of every random draw
device: str = "cuda"  # torch device; the full run wants a GPU, CI passes cpu
smoke: bool = False  # tiny sizes for a CPU check, under 90 s
out_dir: str = ""  # figures + sidecars; empty: a scratch folder (outputs/figures), never figures/
method: str = "ssd"  # score distillation method: sds, vsd or ssd
run_dir: str = ""  # run folder for metrics, checkpoint, turntable, mesh; empty means out_dir/runs
prompt: str = "a red mushroom with white spots"  # a ShapeZoo prompt, so metrics exist
steps: int = 3000  # optimisation steps
batch_size: int = 4  # cameras per step
render_size: int = 64  # NeRF render resolution
guidance_scale: float = 7.5  # classifier-free guidance, diffusers convention
baseline: str = "depth"  # SSD baseline phi: depth, normal or constant
mu_reduce: str = "channel"  # shape of mu: scalar, channel or element
prior: str = "shapezoo"  # diffusion prior: shapezoo, a diffusers repo or folder
depth: str = "shapezoo"  # depth prior: shapezoo, a transformers repo or folder
eval_every: int = 500  # ground-truth metrics every this many steps
snapshot_every: int = 250  # keep renders for the viewer every this many steps
n_views: int = 8  # evaluation views in the viewer
resume: bool = False  # continue from the run folder checkpoint instead of starting afresh

# %%
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from sdlib.cameras import eval_cameras, sample_cameras
from sdlib.control_variates import CoefficientConfig
from sdlib.distill.common import add_noise, pullback_loss, sample_timesteps, weighting
from sdlib.distill.sds import sds_gradient
from sdlib.distill.ssd import SSDConfig
from sdlib.figures import resolve_out_dir, savefig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.shapezoo import render as render_truth
from sdlib.shapezoo.metrics import mesh_chamfer
from sdlib.train import SHAPEZOO_FIELD, Trainer, shapezoo_config
from sdlib.viewer import (
    Snapshots,
    plot_eval_metrics,
    plot_mesh,
    plot_training_curves,
    read_jsonl,
    show_turntable,
    step_view_viewer,
    turntable_strip,
)

NOTEBOOK = "31_text_to_3d.ipynb"
NAME = method.upper()
parameters = dict(
    seed=seed, device=device, smoke=smoke, out_dir=out_dir, method=method, run_dir=run_dir, prompt=prompt,
    steps=steps, batch_size=batch_size, render_size=render_size, guidance_scale=guidance_scale,
    baseline=baseline, mu_reduce=mu_reduce, prior=prior, depth=depth, eval_every=eval_every,
    snapshot_every=snapshot_every, n_views=n_views, resume=resume,
)
out_dir = str(resolve_out_dir(out_dir))  # "" -> outputs/figures; `make figures` writes figures/
run_folder = Path(run_dir) if run_dir else Path(out_dir) / "runs" / f"31_{method}_seed{seed}"
config = shapezoo_config(
    prompt, method, steps=steps, batch_size=batch_size, render_size=render_size,
    guidance_scale=guidance_scale, prior=prior, depth=depth, device=device, seed=seed,
    eval_every=eval_every, checkpoint_every=eval_every,
    ssd=SSDConfig(baseline=baseline, coefficient=CoefficientConfig(reduce=mu_reduce, lr=1e-2)),
)
if smoke:  # CPU-sized: a few steps of a small field, dense sampler, small outputs
    # CPU-sized; VSD's LoRA UNet and SSD's decoder + DPT backward make their steps dearer
    smoke_sizes = {"sds": (16, 8, 8, 4), "vsd": (8, 4, 8, 4), "ssd": (12, 6, 12, 4)}
    steps, snapshot_every, eval_every, n_views = smoke_sizes.get(method, (8, 4, 8, 4))
    config = replace(
        config, steps=steps, batch_size=1 if method == "vsd" else 2, render_size=32, eval_every=eval_every,
        checkpoint_every=eval_every, eval_size=32, turntable_frames=4, mesh_resolution=48,
        mesh_threshold=2.0,  # a short run is still the initial blob, below the default 10
        nerf=replace(SHAPEZOO_FIELD, grid=HashGridConfig(n_levels=4, log2_table_size=12,
                                                        base_resolution=8)),
        render=RenderConfig(sampler="dense", n_samples=24, compute_normals=False),
    )
if not resume:  # start afresh: drop this run folder's previous metrics and checkpoint
    for name in ("metrics.jsonl", "eval.jsonl", "checkpoint.pt"):
        (run_folder / name).unlink(missing_ok=True)
print(config.method, repr(config.prompt), f"{config.steps} steps on {config.device} ->", run_folder)

# %% [markdown]
# ## One text-to-3D step, written out
#
# `Trainer` loads the priors, builds the NeRF and Adam, and draws `(c, t, ε)` from its own
# seeded CPU generator. One step of SDS, line by line, on a fresh SDS trainer sharing the prior:
# cameras → differentiable render → VAE latent $x$ → $x_t = \alpha_t x + \sigma_t\varepsilon$ →
# $\hat\varepsilon$ → $g = \omega(t)(\hat\varepsilon - \varepsilon)$ → the **pull-back surrogate**
#
# $$\ell = \tfrac12\,\|x - \mathrm{sg}(x - g)\|^2, \qquad \nabla_x\ell = g, \qquad
# \nabla_\theta\ell = (\partial x/\partial\theta)^\top g,$$
#
# (sg = stop-gradient): autograd carries $g$ back through the encoder and the renderer to the
# NeRF's parameters θ without ever differentiating the UNet. Then the generator is rewound and
# `Trainer.step()` takes the same step; the assert checks that the θ-gradients agree. SSD and
# VSD change only the line that forms $g$ (notebook 30 writes both out).

# %%
trainer = Trainer(config, out_dir=run_folder)
check = Trainer(replace(config, method="sds", compile=False), prior=trainer.prior)  # writes nothing
cfg = check.config
generator_state = check.generator.get_state()
global_rng = torch.random.get_rng_state()  # a CUDA renderer may also draw from torch's own RNGs
cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
cams = sample_cameras(cfg.cameras, cfg.batch_size, check.generator, check.device)
out = check.render(cams)  # RGB [B, S, S, 3], differentiable in theta
x = check.encode(out)  # VAE latents [B, 4, h, w], with their graph to theta
abar = check.prior.alphas_cumprod
t = sample_timesteps(cfg.timesteps, check.step_count, cfg.batch_size,
                     check.prior.num_train_timesteps, generator=check.generator).to(check.device)
eps = torch.randn(x.shape, generator=check.generator).to(check.device)
x_t = add_noise(x.detach(), eps, abar, t)  # alpha_t x + sigma_t eps
text = (check.embeddings.for_views(cams.view_indices().to(check.device))
        if cfg.view_dependent_prompts else check.embeddings.repeat(cfg.batch_size))
with torch.no_grad():  # the UNet is never differentiated
    eps_hat = check.prior.predict_noise(x_t, t, text, cfg.guidance_scale).float()
w = weighting(cfg.timesteps, abar, t).view(-1, 1, 1, 1)  # omega(t) = sigma_t^2
g = w * (eps_hat - eps)  # SDS
assert torch.allclose(g, sds_gradient(eps_hat, eps, w.flatten()))
surrogate = 0.5 * (x - (x - g).detach()).pow(2).sum() / cfg.batch_size  # pull-back surrogate
assert torch.allclose(surrogate, pullback_loss(x, g) / cfg.batch_size)
check.optimizer.zero_grad(set_to_none=True)
surrogate.backward()
ours = {n: p.grad.detach().clone() for n, p in check.field.named_parameters() if p.grad is not None}
# the same step by the trainer: rewind the generator, step, compare the theta-gradients
check.generator.set_state(generator_state)
torch.random.set_rng_state(global_rng)
if cuda_rng is not None:
    torch.cuda.set_rng_state_all(cuda_rng)
before = copy.deepcopy(check.field.state_dict())
check.step()
theirs = {n: p.grad for n, p in check.field.named_parameters() if p.grad is not None}
assert ours.keys() == theirs.keys()
for name, grad in ours.items():
    torch.testing.assert_close(grad, theirs[name], rtol=1e-3, atol=1e-6 * float(grad.abs().max()))
moved = max(float((check.field.state_dict()[k] - v).abs().max()) for k, v in before.items())
print(f"written-out step == Trainer.step: {len(ours)} parameter tensors, |grad| up to "
      f"{max(float(v.abs().max()) for v in ours.values()):.3g}; Adam then moved theta by up to "
      f"{moved:.2e}")
del check

# %% [markdown]
# ## Train
#
# The loop is written out (it is `Trainer.run` minus the progress bar's bookkeeping) so that
# renders at fixed evaluation cameras can be kept every `snapshot_every` steps for the viewer
# below. Each step appends to `metrics.jsonl`; every `eval_every` steps the ground-truth metrics
# go to `eval.jsonl`.

# %%
if resume and (run_folder / "checkpoint.pt").exists():
    trainer.load_checkpoint(run_folder / "checkpoint.pt")
cameras = eval_cameras(n_views, device=trainer.device)
snapshots = Snapshots()
snapshots.take(trainer, cameras, config.eval_size)
scores: dict[str, float] = {}
start = time.perf_counter()
while trainer.step_count < config.steps:
    record = trainer.step()
    if eval_every and trainer.step_count % eval_every == 0:
        scores = trainer.evaluate()
        print(f"step {trainer.step_count}: loss {record['loss']:.4g}, " + ", ".join(
            f"{k} {v:.3f}" for k, v in scores.items() if k != "step"))
        trainer.save_checkpoint()
    if snapshot_every and trainer.step_count % snapshot_every == 0:
        snapshots.take(trainer, cameras, config.eval_size)
train_seconds = time.perf_counter() - start
trainer.save_checkpoint()
print(f"{trainer.step_count} steps in {train_seconds:.1f} s "
      f"({1000 * train_seconds / max(config.steps, 1):.0f} ms per step with evaluation)")

# %% [markdown]
# ## Outputs: metrics, turntable, mesh
#
# `Trainer.export` writes the turntable (RGB | depth | normals; mp4 with ffmpeg, else gif) and
# the marching-cubes mesh; the Chamfer distance compares the mesh with the true surface.

# %%
final = dict(scores) if scores.get("step") == trainer.step_count else trainer.evaluate()
turntable_path, mesh_path = trainer.export()
mesh = None
if mesh_path is not None:
    import trimesh

    mesh = trimesh.load(str(mesh_path), force="mesh")
if mesh is not None and trainer.is_shapezoo_prompt:
    final["chamfer"] = mesh_chamfer(mesh, prompt, n_points=2000 if smoke else 10_000)
final.update(seconds=train_seconds, steps=trainer.step_count)
print("turntable:", turntable_path)
print("mesh:", mesh_path)
for k, v in final.items():
    print(f"  {k:>20}: {v:.4g}" if isinstance(v, float) else f"  {k:>20}: {v}")
display(show_turntable(turntable_path))

# %% [markdown]
# ## Curves: loss, gradient-variance proxy, ground truth
#
# `grad_var_proxy` is the running $E\|g\|^2 - \|E g\|^2$ of the latent gradient (a cheap
# per-step proxy; the per-sample θ-gradient protocol is `sdlib.gradient_variance`).

# %%
records = read_jsonl(run_folder / "metrics.jsonl")
evals = read_jsonl(run_folder / "eval.jsonl")
fig = plot_training_curves(records, title=f"{NAME}: {prompt!r}",
                           smooth=1 if smoke else 25)
savefig(fig, f"fig31_{method}_curves", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data=dict(final=final, last=records[-1]))
fig, ax = plt.subplots(figsize=(4.5, 3))
plot_eval_metrics(evals, ax=ax)
savefig(fig, f"fig31_{method}_metrics", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data=dict(evals=[e for e in evals if "mask_iou" in e], final=final))
plt.show()

# %% [markdown]
# ## Turntable strip and mesh (static, for readers without a video player)

# %%
if turntable_path is not None:
    frames_fig = turntable_strip(turntable_path, n=4 if smoke else 6)
    savefig(frames_fig, f"fig31_{method}_turntable", out_dir=out_dir, notebook=NOTEBOOK,
            parameters=parameters, seed=seed, data=dict(path=str(turntable_path)))
fig = plt.figure(figsize=(4, 4))
ax = fig.add_subplot(projection="3d")
if mesh is not None:
    plot_mesh(mesh, ax=ax, title=f"mesh (Chamfer {final.get('chamfer', float('nan')):.3f})")
else:
    errors = [e["mesh_error"] for e in read_jsonl(run_folder / "eval.jsonl") if "mesh_error" in e]
    ax.set_title("no mesh: " + (errors[-1] if errors else "mesh_resolution is 0"), fontsize=7,
                 wrap=True)
savefig(fig, f"fig31_{method}_mesh", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data=dict(path=str(mesh_path), chamfer=final.get("chamfer")))
plt.show()

# %% [markdown]
# ## Viewer: training steps × views
#
# The grid shows the kept renders (rows: steps; columns: evaluation views, azimuth 0 = the
# front) with the true ShapeZoo object as the last row. In Jupyter, the sliders below pick
# any step and view; headless, the grid is the record.

# %%
truth = render_truth(prompt, cameras, config.eval_size, config.eval_size).rgb
fig = snapshots.grid(title=f"{NAME}: {prompt!r}", reference=truth)
savefig(fig, f"fig31_{method}_snapshots", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data=dict(steps=snapshots.steps))
plt.show()
viewer = step_view_viewer(snapshots)
if viewer is not None:
    display(viewer)

# %% [markdown]
# ## Why SSD ≈ SDS: the correlation of each control variate with $\hat\varepsilon$
#
# At the trained NeRF (SSD runs only; the depth prior is loaded for them), on the same draws
# $(c, t, \varepsilon)$: the target $f = \omega\hat\varepsilon$, SDS's $\omega\varepsilon$ and SSD's
# $\omega h$ with the depth baseline at the rendered depth. With the best coefficients the
# predicted ratio of SSD's to SDS's variance is $(1-\rho(f, \omega h)^2)/(1-\rho(f, \omega\varepsilon)^2)$
# ([docs/maths.md](../docs/maths.md) §2.3); $\rho(\varepsilon, h)$ near 1 means $h$ is nearly a multiple
# of $\varepsilon$, and no coefficient can make SSD differ from SDS.

# %%
rho_summary = None
if method == "ssd":
    from sdlib.control_variates import stein_control_variate
    from sdlib.distill.common import alpha_sigma
    from sdlib.distill.ssd import depth_baseline

    def traced_rho(a: torch.Tensor, b: torch.Tensor) -> float:
        """Correlation of two batches of samples [N, D], traced over coordinates."""
        ac, bc = a - a.mean(0), b - b.mean(0)
        return float((ac * bc).sum() / ((ac**2).sum() * (bc**2).sum()).sqrt())

    g_rho = torch.Generator().manual_seed(seed + 1)
    n_rho = 8 if smoke else 32
    cams_r = sample_cameras(config.cameras, n_rho, g_rho, trainer.device)
    with torch.no_grad():
        out_r = trainer.render(cams_r)
        x_r = trainer.encode(out_r)
    abar = trainer.prior.alphas_cumprod
    t = sample_timesteps(config.timesteps, trainer.step_count, n_rho,
                         trainer.prior.num_train_timesteps, generator=g_rho).to(trainer.device)
    eps = torch.randn(x_r.shape, generator=g_rho).to(trainer.device)
    x_t = add_noise(x_r, eps, abar, t)
    text = trainer.embeddings.for_views(cams_r.view_indices().to(trainer.device))
    with torch.no_grad():
        eps_hat = trainer.prior.predict_noise(x_t, t, text, config.guidance_scale).float()
    phi = depth_baseline(trainer.prior.decode_latents, trainer.depth_prior, out_r.depth,
                         out_r.opacity, config.ssd.mask_threshold)
    h, phi_values = stein_control_variate(phi, x_t, eps, alpha_sigma(abar, t)[1])
    w = weighting(config.timesteps, abar, t).view(-1, 1, 1, 1)
    f_s, e_s, h_s = ((w * v).flatten(1) for v in (eps_hat, eps, h))
    rho_eps, rho_h, rho_eps_h = traced_rho(f_s, e_s), traced_rho(f_s, h_s), traced_rho(e_s, h_s)
    rho_summary = dict(rho_eps_hat_eps=rho_eps, rho_eps_hat_h=rho_h, rho_eps_h=rho_eps_h,
                       predicted_ssd_over_sds=(1 - rho_h**2) / (1 - rho_eps**2), n=n_rho,
                       phi_mean=float(phi_values.mean()), phi_std=float(phi_values.std()))
    print(f"rho(eps_hat, eps) {rho_eps:.3f}, rho(eps_hat, h) {rho_h:.3f}, rho(eps, h) "
          f"{rho_eps_h:.4f}; phi {rho_summary['phi_mean']:.3f} ± {rho_summary['phi_std']:.3f}; "
          f"predicted Var SSD / Var SDS {rho_summary['predicted_ssd_over_sds']:.3f} (N = {n_rho})")

# %% [markdown]
# ## The committed GPU results: 8 prompts × 3 methods
#
# `python scripts/quality_shapezoo.py --steps 1000 --workers 8` on one H100 (shipped ShapeZoo
# models, guidance 7.5, 4 views per step, 1,000 steps, seed 0): mask IoU and the classifier's
# accuracy at 8 evaluation views per prompt, and the renders.
#
# ![](../figures/fig31_quality.png)
# ![](../figures/fig31_quality_views.png)

# %%
repo = Path("..")
quality = json.loads((repo / "figures" / "fig31_quality.json").read_text())["data"]["summary"]
for m, q in quality.items():
    print(f"{m.upper()}: mean mask IoU {q['mean_mask_iou']:.3f}, classifier accuracy "
          f"{q['classifier_accuracy']:.1%}, depth Pearson {q['mean_depth_pearson']:.3f}, "
          f"PSNR {q['mean_psnr']:.2f} dB")
pilot = json.loads((repo / "notes" / "pilot2_text_to_3d_h100.json").read_text())
for r in pilot:
    v = r.get("variance_at_shared_theta")
    if v:
        print(f"{r['prompt'][:32]:32s} tr Cov at a shared theta: SDS {v['sds']['trace_cov']:.3g} "
              f"± {v['sds']['trace_cov_se']:.2g}, SSD {v['ssd']['trace_cov']:.3g} ± "
              f"{v['ssd']['trace_cov_se']:.2g} (ratio {v['ssd']['trace_cov'] / v['sds']['trace_cov']:.2f})")
print("this run:", {k: round(v, 4) if isinstance(v, float) else v for k, v in final.items()})

# %% [markdown]
# ## Takeaway
#
# **Committed GPU results** (one H100; `figures/fig31_quality.json`: 8 ShapeZoo prompts,
# 1,000 steps, guidance 7.5, seed 0): SDS and SSD are indistinguishable, mean mask IoU 0.904 and
# classifier accuracy 95.3% for both (depth Pearson 0.399 and 0.389, PSNR 19.93 dB for both),
# every object within 0.003 IoU of each other; VSD 0.899 / 92.2% (PSNR 18.96 dB). The gradient
# variance at a shared θ (`notes/pilot2_text_to_3d_h100.json`, N = 32 per method) agrees within
# its standard errors: SSD/SDS trace-of-covariance ratios 1.03 (house), 1.00 (teddy bear),
# 1.09 (car) and 0.93 (penguin), where each method's trace has a relative standard error of
# 24–55% at N = 32.
#
# **With intervals** (one H200, `notes/claims_h200`, notebooks 40–42: 8 prompts, 500 steps,
# seeds 0–2, every estimator on the same draws): SSD's θ-gradient variance is 1.11
# [1.09, 1.13]× SDS's at step 500 (latent 2.2×), VSD's 1.02 [0.93, 1.10]×; SSD reaches 95% of
# SDS's final IoU in the same number of steps (median ratio 1.00, 11 pairs) and ends 0.003 IoU
# below it. Per (camera, timestep) cell, the best scalar multiple of ε leaves
# $1-\rho^2(\hat\varepsilon, \varepsilon) = 0.099$ of the latent noise variance (median over
# 32 θs) and the best multiple of SSD's $h$ leaves $1-\rho^2(\hat\varepsilon, h) = 0.201$:
# predicted SSD/SDS ≥ 0.201 / 0.099 = 2.0 in latent noise, measured 3.4 with SSD's learned
# channel μ (which is not the per-cell optimum).
#
# **Why**: the depth baseline is one scalar $\phi$ per render, so $h = \phi\varepsilon - \sigma\nabla\phi$
# is nearly a scaled copy of $\varepsilon$. Notebook 30 measures, at one latent on the CPU
# (N = 32), $\rho(\hat\varepsilon, \varepsilon) = 0.586$ against $\rho(\hat\varepsilon, h) = 0.549$,
# i.e. a predicted SSD/SDS variance ratio $(1-\rho_h^2)/(1-\rho_\varepsilon^2) = 1.06$ (measured
# there 1.13); at a 12-step smoke NeRF here (N = 8) $\rho(\varepsilon, h) = 0.9994$, predicting
# 1.00. A control variate leaves $1-\rho^2$ of the variance, and an $h$ that correlates with
# $\hat\varepsilon$ no better than $\varepsilon$ does predicts no reduction, which is what the
# committed runs show. The toy's per-point baselines (notebook 12, $\rho = 0.974$, 0.12× SDS's
# variance) have no counterpart here. The cell above computes the same $\rho$ at this run's NeRF
# (SSD runs), and the printed lines give this run's metrics.
