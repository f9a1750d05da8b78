"""The figure helper writes a PNG and a sidecar with what regenerate needs."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from sdlib.figures import load_sidecar, savefig


def test_savefig_writes_png_and_sidecar(tmp_path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png = savefig(fig, "fig99_test", out_dir=tmp_path, notebook="99_x.ipynb",
                  parameters={"seed": 3, "smoke": True}, seed=3,
                  data={"ratio": torch.tensor(0.5), "curve": torch.arange(3)})
    plt.close(fig)
    assert png.exists() and png.stat().st_size > 0
    side = json.loads((tmp_path / "fig99_test.json").read_text())
    assert side["notebook"] == "99_x.ipynb"
    assert side["parameters"] == {"seed": 3, "smoke": True}
    assert side["data"] == {"ratio": 0.5, "curve": [0, 1, 2]}
    assert load_sidecar("fig99_test", tmp_path)["seed"] == 3


def test_bad_fig_id_and_missing_sidecar(tmp_path) -> None:
    fig = plt.figure()
    with pytest.raises(ValueError, match="fig_id"):
        savefig(fig, "bad id/..", out_dir=tmp_path, notebook="x.ipynb", parameters={})
    plt.close(fig)
    with pytest.raises(FileNotFoundError, match="known figures"):
        load_sidecar("nope", tmp_path)


def test_notebooks_write_to_a_scratch_folder_unless_told(tmp_path, monkeypatch) -> None:
    from sdlib.figures import FIGURES_DIR, SCRATCH_DIR, SCRATCH_ENV, resolve_out_dir

    monkeypatch.delenv(SCRATCH_ENV, raising=False)
    assert resolve_out_dir("") == SCRATCH_DIR != FIGURES_DIR
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path))
    assert resolve_out_dir("") == tmp_path
    assert resolve_out_dir(FIGURES_DIR) == FIGURES_DIR  # regenerate names figures/ explicitly
