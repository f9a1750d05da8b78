"""The text-to-3D loop on CPU with tiny random priors: every method steps, resume is exact,
bad input fails before any work."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from sdlib.distill.ssd import SSDConfig
from sdlib.nerf.field import FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.train import TrainConfig, Trainer, paper_config, shapezoo_config

PROMPT = "a red ball"


@pytest.fixture(scope="module")
def tiny_priors(tiny_prior_folders):
    from sdlib.priors import DepthPrior, DiffusionPrior

    root = tiny_prior_folders
    prior = DiffusionPrior(model=str(root / "sd"), device="cpu")
    depth = DepthPrior(model=str(root / "dpt"), device="cpu")
    return root, prior, depth


def _config(root, method: str, **kw) -> TrainConfig:
    settings = dict(
        prior=str(root / "sd"), depth=str(root / "dpt"), device="cpu", steps=2, batch_size=2,
        render_size=16, eval_every=0, checkpoint_every=1, turntable_frames=0, mesh_resolution=0,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=8, base_resolution=4)),
        render=RenderConfig(n_samples=12, chunk=4096),
    )
    settings.update(kw)
    return replace(shapezoo_config(PROMPT, method), **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("method,baseline", [("sds", "depth"), ("vsd", "depth"),
                                             ("ssd", "depth"), ("ssd", "normal"),
                                             ("ssd", "constant")])
def test_every_method_steps_and_logs(tiny_priors, tmp_path, method, baseline) -> None:
    root, prior, depth = tiny_priors
    cfg = _config(root, method, ssd=SSDConfig(baseline=baseline))
    trainer = Trainer(cfg, out_dir=tmp_path, prior=prior, depth=depth)
    before = [p.detach().clone() for p in trainer.field.parameters()]
    result = trainer.run(progress=False)
    assert result.steps == 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["loss"] == r["loss"] for r in records)
    if method == "ssd":
        assert "mu_mean" in records[0] and "phi_mean" in records[0]
    if method == "vsd":
        assert "lora_loss" in records[0]
    changed = any(not torch.equal(a, b) for a, b in zip(before, trainer.field.parameters()))
    assert changed, "the field did not move"


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(tiny_priors, tmp_path) -> None:
    root, prior, depth = tiny_priors
    cfg = _config(root, "ssd", steps=4)
    whole = Trainer(cfg, out_dir=tmp_path / "whole", prior=prior, depth=depth)
    whole.run(progress=False)

    half = Trainer(replace(cfg, steps=2), out_dir=tmp_path / "half", prior=prior, depth=depth)
    half.run(progress=False)  # "killed" after step 2: only its checkpoint survives
    resumed = Trainer(cfg, out_dir=tmp_path / "half", prior=prior, depth=depth)
    result = resumed.run(progress=False)
    assert result.steps == 4
    steps = [json.loads(x)["step"] for x in (tmp_path / "half" / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4]
    for a, b in zip(whole.field.parameters(), resumed.field.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(whole.method.mu, resumed.method.mu)


def test_bad_input_fails_before_any_work(tiny_priors, tmp_path) -> None:
    root, prior, depth = tiny_priors
    with pytest.raises(ValueError, match="accepted"):
        TrainConfig(prompt=PROMPT, method="sjc", device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompt is empty"):
        TrainConfig(prompt="  ", device="cpu")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(prompt=PROMPT, steps=0, device="cpu")
    with pytest.raises(ValueError, match="guidance_scale"):
        TrainConfig(prompt=PROMPT, guidance_scale=float("nan"), device="cpu")
    with pytest.raises(OSError, match="no_such_folder"):
        Trainer(replace(_config(root, "sds"), prior=str(tmp_path / "no_such_folder")))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            TrainConfig(prompt=PROMPT, device="cuda")


def test_nan_gradient_stops_the_step_before_the_update(tiny_priors, tmp_path) -> None:
    root, prior, depth = tiny_priors
    trainer = Trainer(_config(root, "sds"), out_dir=tmp_path, prior=prior, depth=depth)
    before = [p.detach().clone() for p in trainer.field.parameters()]
    original = prior.predict_noise

    def broken(*args, **kwargs):
        return original(*args, **kwargs) * float("nan")

    prior.predict_noise = broken
    try:
        with pytest.raises(FloatingPointError, match="non-finite"):
            trainer.step()
    finally:
        prior.predict_noise = original
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.field.parameters()))


def test_compile_needs_cuda_and_paper_preset_adapts_to_the_device():
    with pytest.raises(ValueError, match="compile=True needs a CUDA device"):
        TrainConfig(prompt="a red ball", compile=True, device="cpu")
    cfg = paper_config("a hamburger", "ssd", device="cpu")
    assert (cfg.prior_dtype, cfg.compile) == ("float32", False)
    # the depth model stays float32 beside a float16 prior (Stein's identity needs exact ∇φ)
    assert (cfg.depth_dtype, cfg.depth_precision) == ("float32", "float32")
    assert TrainConfig(prompt="a red ball", prior_dtype="bfloat16").depth_precision == "bfloat16"
    with pytest.raises(ValueError, match="depth_dtype='half'"):
        TrainConfig(prompt="a red ball", depth_dtype="half")  # type: ignore[arg-type]
    assert paper_config("a hamburger", "vsd", device="cpu").guidance_scale == 7.5


def test_render_eval_one_view_at_a_time_equals_one_batch(tiny_priors, tmp_path) -> None:
    """render_eval renders view by view (memory); the result is the batch render's."""
    from sdlib.cameras import eval_cameras
    from sdlib.nerf.render import render_cameras

    root, prior, depth = tiny_priors
    trainer = Trainer(_config(root, "sds"), out_dir=tmp_path, prior=prior, depth=depth)
    torch.manual_seed(0)
    with torch.no_grad():  # a field that is not uniform, so views differ
        for p in trainer.field.parameters():
            p.add_(0.3 * torch.randn_like(p))
    cams = eval_cameras(4, device="cpu")
    got = trainer.render_eval(cams, 12)
    trainer.field.eval()
    with torch.no_grad():
        ref = render_cameras(trainer.field, cams, 12, 12, estimator=trainer.estimator,
                             config=replace(trainer.config.render, stratified=False))
    assert got.rgb.shape == (4, 12, 12, 3)
    assert not torch.allclose(got.rgb[0], got.rgb[1])
    torch.testing.assert_close(got.rgb, ref.rgb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.depth, ref.depth, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.mask, (ref.opacity > 0.5).float())
