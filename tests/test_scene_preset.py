"""Scene preset (inverted blob, inside-out cameras), scene metrics, and a scene run on CPU."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sdlib.nerf.field import FieldConfig, RadianceField
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.scene_preset import SCENE_FIELD, scene_config
from sdlib.shapezoo import RenderResult, render
from sdlib.shapezoo.scene_metrics import (
    classifier_accuracy,
    delta_e,
    evaluate_scene,
    rgb_to_lab,
    scene_eval_cameras,
)
from sdlib.shapezoo.scenes import SCENES
from sdlib.train import Trainer

PROMPT = SCENES[1].prompt


def test_inverted_blob_starts_empty_around_the_cameras() -> None:
    torch.manual_seed(0)
    field = RadianceField(replace(SCENE_FIELD, grid=HashGridConfig(n_levels=2,
                                                                   log2_table_size=8)))
    near = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.1, 0.1], [0.0, -0.5, 0.2]])
    far = torch.tensor([[1.9, 0.0, 0.0], [0.0, -1.8, 0.5], [1.2, 1.2, -0.4]])
    with torch.no_grad():
        assert field.density(near).max() < 0.05
        assert field.density(far).min() > 3.0
    with pytest.raises(ValueError, match="blob_radius"):
        FieldConfig(blob_radius=0.0)


def test_scene_config() -> None:
    cfg = scene_config(PROMPT, "ssd", baseline="normal", device="cpu", steps=10)
    assert cfg.ssd.baseline == "normal" and cfg.steps == 10
    assert cfg.cameras.inside and not cfg.view_dependent_prompts
    assert cfg.nerf.bound == 2.0 and cfg.timesteps.t_max_end is None
    with pytest.raises(ValueError, match="baseline"):
        scene_config(PROMPT, "ssd", baseline="constant")


def test_lab_and_delta_e_reference_values() -> None:
    # sRGB white is L=100, a=b=0; pure red is (53.24, 80.09, 67.20) (standard D65 table)
    lab = rgb_to_lab(torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(lab, torch.tensor([[100.0, 0.0, 0.0], [53.24, 80.09, 67.20],
                                                  [0.0, 0.0, 0.0]]), atol=0.02, rtol=0)
    assert float(delta_e(torch.ones(3), torch.zeros(3))) == pytest.approx(100.0, abs=1e-3)


def test_scene_metrics_truth_and_a_wrong_scene() -> None:
    cams = scene_eval_cameras(4)
    truth = render(PROMPT, cams, 24, 24)
    s = evaluate_scene(truth, PROMPT, n_views=4, height=24, width=24)
    assert s["depth_pearson"] == pytest.approx(1.0, abs=1e-5) and s["psnr"] == math.inf
    assert s["color_error"] == 0.0 and s["mask_iou"] == 1.0
    other = render(SCENES[4], cams, 24, 24)  # the snowy yard scored as the kitchen
    w = evaluate_scene(other, PROMPT, n_views=4, height=24, width=24)
    assert w["psnr"] < 20 and w["color_error"] > 10 and w["depth_pearson"] < 0.9
    # a render function is accepted; a wrong shape is refused with the expected one named
    f = evaluate_scene(lambda c, h, wd: render(PROMPT, c, h, wd), PROMPT, n_views=4, height=24,
                       width=24)
    assert f["color_error"] == 0.0
    with pytest.raises(ValueError, match="scene_eval_cameras"):
        evaluate_scene(render(PROMPT, cams[:2], 24, 24), PROMPT, n_views=4, height=24, width=24)


def test_classifier_accuracy_by_class_name() -> None:
    from sdlib.priors.classifier import ClassifierConfig, ShapeZooClassifier

    names = (SCENES[0].prompt, PROMPT)
    net = ShapeZooClassifier(ClassifierConfig(class_names=names, widths=(8, 8))).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.0, 1.0]))  # always class 1
    rgb = torch.rand(3, 16, 16, 3)
    assert classifier_accuracy(net, rgb, PROMPT) == 1.0
    assert classifier_accuracy(net, rgb, SCENES[0].prompt) == 0.0
    assert math.isnan(classifier_accuracy(net, rgb, SCENES[2].prompt))




@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from sdlib.priors import DepthPrior, DiffusionPrior
    from sdlib.priors.build import save_tiny_priors

    root = tmp_path_factory.mktemp("priors")
    save_tiny_priors(root, [PROMPT])
    return root, DiffusionPrior(model=str(root / "sd"), device="cpu"), \
        DepthPrior(model=str(root / "dpt"), device="cpu")


@pytest.mark.parametrize("method,baseline", [("ssd", "normal")])
def test_scene_trainer_steps_and_scores(tiny, tmp_path, method, baseline) -> None:
    root, prior, depth = tiny
    cfg = scene_config(
        PROMPT, method, baseline=baseline, prior=str(root / "sd"), depth=str(root / "dpt"),
        device="cpu", steps=2, batch_size=1, render_size=16, eval_every=0, eval_size=16,
        checkpoint_every=0, turntable_frames=1, mesh_resolution=0,
        nerf=replace(SCENE_FIELD, grid=HashGridConfig(n_levels=2, log2_table_size=8)),
        render=RenderConfig(n_samples=8, chunk=4096),
    )
    trainer = Trainer(cfg, tmp_path / "run", prior=prior, depth=depth)
    result = trainer.run(progress=False)
    assert result.steps == 2 and result.turntable is not None
    m = result.metrics
    assert {"depth_pearson", "psnr", "color_error", "classifier_accuracy"} <= set(m)
    assert 0.0 < m["color_error"] < 100.0
    # the untrained inverted blob seen from inside: the views are rendered (not the outside)
    out = trainer.render_eval(scene_eval_cameras(2), 16)
    assert isinstance(out, RenderResult) and out.mask.mean() > 0.9
