"""scripts/scene_identifiability.py: photometric fits of scenes from inside-out cameras, each
camera range and the object control recorded with the field they used (toy sizes, CPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scene_identifiability.py"
spec = importlib.util.spec_from_file_location("scene_identifiability", SCRIPT)
ident = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ident)


def test_each_scene_and_camera_range_is_fitted_scored_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [
        "scene_identifiability.py", "--scenes", "kitchen", "--ranges", "centre", "wide",
        "--views", "3", "--size", "8", "--steps", "2", "--rays", "64", "--samples", "8",
        "--small-grid", "--blob-density", "-3", "--control-object", "a brown teddy bear",
        "--device", "cpu", "--out", str(tmp_path)])
    ident.main()
    records = json.loads((tmp_path / "identifiability.json").read_text())
    assert [(r["scene"], r["range"]) for r in records] == [
        ("kitchen", "centre"), ("kitchen", "wide"), ("control: a brown teddy bear", "outside")]
    for r in records[:2]:
        assert r["blob_density"] == -3.0 and r["small_grid"] and r["steps"] == 2
        assert -1.0 <= r["depth_pearson"] <= 1.0 and r["depth_spread"] >= 0.0
    assert records[1]["distance"] == list(ident.RANGES["wide"])


def test_bad_arguments_are_refused_before_any_fit(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["scene_identifiability.py", "--steps", "0"])
    with pytest.raises(SystemExit):
        ident.main()
    monkeypatch.setattr(sys, "argv", ["scene_identifiability.py", "--blob-radius", "-1"])
    with pytest.raises(SystemExit):
        ident.main()


def test_the_checker_darkens_alternate_cells_and_leaves_the_sky():
    import torch

    from sdlib.cameras import SCENE_CAMERAS, sample_cameras
    from sdlib.shapezoo import render

    cams = sample_cameras(SCENE_CAMERAS, 2, generator=torch.Generator().manual_seed(0))
    truth = render("a living room with a red sofa and a lamp", cams, 16, 16)
    painted = ident.checker(truth, cams, 4.0)
    ratio = painted / truth.rgb.clamp_min(1e-6)
    on = (truth.mask > 0.5) & (truth.rgb.min(-1).values > 1e-3)
    factors = ratio[on].mean(-1)
    assert torch.allclose(factors[(factors - 0.6).abs() < 0.05], torch.tensor(0.6), atol=1e-4)
    assert ((factors - 0.6).abs() < 1e-4).any() and ((factors - 1.0).abs() < 1e-4).any()
    assert torch.equal(painted[truth.mask < 0.5], truth.rgb[truth.mask < 0.5])
