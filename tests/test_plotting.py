"""sdlib.plotting.image_grid: labels where asked, one colour scale for every scalar image."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from sdlib.plotting import as_array, image_grid


def test_scalar_images_share_one_scale_and_a_colourbar() -> None:
    near, far = np.full((4, 4), 1.0), np.full((4, 4), 3.0)
    rgb = torch.rand(3, 4, 4)  # channels-first tensors are accepted
    fig, axes = image_grid([[rgb, near], [rgb, far]], row_labels=["true", "NeRF"],
                           col_labels=["rgb", "depth"], scalar=dict(label="depth"), title="t")
    scalar_images = [ax.images[0] for ax in axes[:, 1]]
    assert {im.get_clim() for im in scalar_images} == {(1.0, 3.0)}
    assert axes[0, 0].get_title() == "rgb" and axes[1, 0].get_ylabel() == "NeRF"
    assert len(fig.axes) == 5  # 4 panels + 1 colourbar
    plt.close(fig)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="row_labels"):
        image_grid([[np.zeros((2, 2))]], row_labels=["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        as_array(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        image_grid([])
