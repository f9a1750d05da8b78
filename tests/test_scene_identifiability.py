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
