"""Figure layout for the notebooks: grids of images with labels, shared scales and colourbars.

The notebooks keep the lesson (what is computed and why); the matplotlib bookkeeping of
labelled image grids lives here. One function, :func:`image_grid`, covers the galleries
(ShapeZoo objects, prior samples, distillation snapshots, true vs fitted views): RGB images are
shown as they are, and every 2-D (scalar) image shares one colour scale with one colourbar, so
that depths in different panels can be compared.

>>> import numpy as np
>>> fig, axes = image_grid([[np.zeros((4, 4, 3)), np.ones((4, 4))]], col_labels=["rgb", "depth"],
...                        scalar=dict(cmap="viridis", label="depth"))
>>> axes.shape
(1, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["image_grid", "as_array"]


def as_array(image: Any) -> np.ndarray:
    """A tensor or array as a numpy image ``[H, W]`` or ``[H, W, C]`` (channels-first ``[C, H, W]``
    with ``C`` in 1, 3, 4 is moved last; RGB is clipped to ``[0, 1]``)."""
    if hasattr(image, "detach"):
        image = image.detach().float().cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        arr = np.clip(arr, 0.0, 1.0)
    if arr.ndim not in (2, 3):
        raise ValueError(f"image_grid: an image must be [H, W] or [H, W, C], got shape {arr.shape}")
    return arr


def image_grid(
    images: Sequence[Sequence[Any]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell: float = 1.5,
    scalar: dict[str, Any] | None = None,
    red: Sequence[tuple[int, int]] = (),
    notes: dict[tuple[int, int], str] | None = None,
    label_size: float = 8,
):
    """A ``rows × cols`` grid of images with row and column labels.

    Args:
        images: ``images[r][c]``, tensors or arrays, RGB ``[H, W, 3]`` / ``[3, H, W]`` in
            ``[0, 1]`` or scalar ``[H, W]``; ``None`` leaves a cell empty.
        row_labels: one label per row, left of the row.
        col_labels: one label per column, above the first row.
        title: the figure's title (placed by the constrained layout, never over the panels).
        cell: inches per cell.
        scalar: how scalar images are drawn, all on **one** scale: ``cmap``, ``vmin``, ``vmax``
            (default: the range over every scalar image) and ``label`` (the colourbar's label).
        red: cells ``(r, c)`` framed in red (e.g. a classifier's wrong verdicts).
        notes: text under a cell, ``{(r, c): "..."}``, in red if the cell is in ``red``.
        label_size: font size of the labels.

    Returns:
        ``(fig, axes)`` with ``axes`` of shape ``[rows, cols]``.
    """
    import matplotlib.pyplot as plt

    rows = len(images)
    cols = max(len(r) for r in images) if rows else 0
    if rows == 0 or cols == 0:
        raise ValueError("image_grid: images is empty; pass images[r][c]")
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"image_grid: {len(row_labels)} row_labels for {rows} rows")
    if col_labels is not None and len(col_labels) != cols:
        raise ValueError(f"image_grid: {len(col_labels)} col_labels for {cols} columns")
    arrays = [[None if im is None else as_array(im) for im in row] for row in images]
    scalars = [a for row in arrays for a in row if a is not None and a.ndim == 2]
    opts = dict(scalar or {})
    vmin = opts.get("vmin", min((float(np.nanmin(a)) for a in scalars), default=0.0))
    vmax = opts.get("vmax", max((float(np.nanmax(a)) for a in scalars), default=1.0))
    extra = 1.2 if scalars else 0.0
    left = 1.6 if row_labels is not None else 0.0
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + left + extra, cell * rows + 0.5),
                             squeeze=False, layout="constrained")
    mappable = None
    red_set = set(red)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            arr = arrays[r][c] if c < len(arrays[r]) else None
            if arr is None:
                ax.axis("off")
                continue
            if arr.ndim == 2:
                mappable = ax.imshow(arr, cmap=opts.get("cmap", "magma"), vmin=vmin, vmax=vmax)
            else:
                ax.imshow(arr)
            if (r, c) in red_set:
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2)
            if notes and (r, c) in notes:
                ax.set_xlabel(notes[(r, c)], fontsize=label_size - 2,
                              color="red" if (r, c) in red_set else "black")
    if col_labels is not None:
        for c, label in enumerate(col_labels):
            axes[0, c].set_title(label, fontsize=label_size)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=label_size, rotation=0, ha="right",
                                  va="center")
    if mappable is not None:
        fig.colorbar(mappable, ax=axes, shrink=min(1.0, 3.0 / rows + 0.2),
                     label=opts.get("label"))
    if title:
        fig.suptitle(title, fontsize=label_size + 2)
    return fig, axes
