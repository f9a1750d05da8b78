"""Looking at a text-to-3D run: snapshots over steps × views, curves, turntable strip, mesh.

Used by notebook 31 (text-to-3D, one run per method) so it stays a handful of cells. Only
torch, numpy, matplotlib (and imageio / trimesh for reading the run's outputs);
``ipywidgets`` is imported inside :func:`step_view_viewer`, so headless use never needs it.

>>> snaps = Snapshots()                                   # doctest: +SKIP
>>> snaps.take(trainer, eval_cameras(8), size=64)         # every K steps  # doctest: +SKIP
>>> fig = snaps.grid()                                    # steps × views  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Snapshots",
    "read_jsonl",
    "plot_training_curves",
    "plot_eval_metrics",
    "turntable_frames",
    "turntable_strip",
    "plot_mesh",
    "step_view_viewer",
    "show_turntable",
    "to_image",
]


@dataclass
class Snapshots:
    """RGB renders of the NeRF at fixed cameras, kept every few steps (CPU, uint8)."""

    steps: list[int] = field(default_factory=list)
    """The training step of each snapshot."""
    images: list[np.ndarray] = field(default_factory=list)
    """One ``[V, H, W, 3]`` uint8 array per snapshot."""

    def take(self, trainer: Any, cameras: Any, size: int = 64) -> np.ndarray:
        """Renders ``trainer``'s NeRF at ``cameras`` (``trainer.render_eval``) and keeps it."""
        result = trainer.render_eval(cameras, size)
        rgb = (result.rgb.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
        self.steps.append(int(trainer.step_count))
        self.images.append(rgb)
        return rgb

    def __len__(self) -> int:
        return len(self.steps)

    def grid(self, max_rows: int = 8, title: str | None = None,
             reference: Tensor | np.ndarray | None = None):
        """A steps (rows) × views (columns) figure of the snapshots (at most ``max_rows`` rows).

        ``reference`` (``[V, H, W, 3]`` in [0, 1], e.g. the true ShapeZoo renders at the same
        cameras) is added as a last row labelled "truth".
        """
        import matplotlib.pyplot as plt

        if not self.steps:
            raise ValueError("Snapshots.grid: no snapshot taken yet (call take() first)")
        rows = np.unique(np.linspace(0, len(self.steps) - 1, min(max_rows, len(self.steps)))
                         .round().astype(int))
        images = [self.images[i] for i in rows]
        labels = [f"step {self.steps[i]}" for i in rows]
        if reference is not None:
            ref = torch.as_tensor(reference).detach().float().cpu().clamp(0, 1).numpy()
            images.append((ref * 255).round().astype(np.uint8))
            labels.append("truth")
        n_views = images[0].shape[0]
        fig, axes = plt.subplots(len(images), n_views,
                                 figsize=(1.2 * n_views, 1.25 * len(images)), squeeze=False)
        for r, (img, label) in enumerate(zip(images, labels)):
            for v in range(n_views):
                ax = axes[r, v]
                ax.imshow(img[v])
                ax.set_xticks([])
                ax.set_yticks([])
                if v == 0:
                    ax.set_ylabel(label, fontsize=8)
                if r == 0:
                    ax.set_title(f"view {v}", fontsize=8)
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        return fig


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` / ``eval.jsonl`` file ([] if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_training_curves(records: list[dict[str, Any]], title: str | None = None,
                         smooth: int = 1):
    """Loss, gradient-variance proxy and step time against step, from ``metrics.jsonl`` records.

    Panels: the pull-back loss; the per-step gradient-norm EMA and the variance proxy
    (``E||g||² − ||E g||²`` of the latent gradient, running); step time. SSD adds μ and φ,
    VSD its LoRA loss, when present.
    """
    import matplotlib.pyplot as plt

    if not records:
        raise ValueError("plot_training_curves: no records (is metrics.jsonl empty?)")
    step = np.array([r["step"] for r in records])
    extra = [k for k in ("mu_mean", "phi_mean", "lora_loss") if k in records[0]]
    panels = [("loss", ["loss"]), ("gradient on x", ["grad_norm", "grad_norm_ema",
                                                      "grad_var_proxy"]),
              ("step time [ms]", ["step_ms"])]
    if extra:
        panels.append(("method state", extra))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 2.8), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels):
        for k in keys:
            y = np.array([r.get(k, np.nan) for r in records], dtype=float)
            ys = _smooth(y, smooth)
            ax.plot(step[len(step) - len(ys):], ys, label=k)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        if name.startswith("gradient") and np.nanmin(
                [r.get("grad_norm", 1.0) for r in records]) > 0:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_eval_metrics(evals: list[dict[str, Any]], ax=None):
    """Ground-truth metrics against step: mask IoU, depth Pearson and classifier accuracy on the
    left axis (unitless scores, at most 1), PSNR in dB on its own right axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 2.8))
    evals = [e for e in evals if "mask_iou" in e]
    if not evals:
        ax.text(0.5, 0.5, "no ground-truth evaluation", ha="center", va="center")
        return ax
    step = [e["step"] for e in evals]
    lines = []
    for k, label in (("mask_iou", "mask IoU"), ("depth_pearson", "depth Pearson r"),
                     ("classifier_accuracy", "classifier accuracy")):
        if k in evals[0]:
            lines += ax.plot(step, [e[k] for e in evals], marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("score (at most 1)")
    ax.set_ylim(top=1.05)
    if "psnr" in evals[0]:
        ax_psnr = ax.twinx()
        lines += ax_psnr.plot(step, [e["psnr"] for e in evals], marker="s", ls="--", color="0.3",
                              label="PSNR (right axis)")
        ax_psnr.set_ylabel("PSNR (dB)")
    ax.set_title("ground truth (eval views)", fontsize=9)
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7)
    return ax


def turntable_frames(path: str | Path, n: int = 8) -> list[np.ndarray]:
    """``n`` frames evenly spaced through a turntable video (gif or mp4)."""
    import imageio.v2 as imageio

    frames = [np.asarray(f) for f in imageio.mimread(str(path), memtest=False)]
    if not frames:
        raise ValueError(f"turntable_frames: {path} has no frames")
    idx = np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int))
    return [frames[i][..., :3] for i in idx]


def turntable_strip(path: str | Path, n: int = 8, title: str | None = None):
    """A static figure: ``n`` turntable frames stacked (each RGB | depth | normals)."""
    import matplotlib.pyplot as plt

    frames = turntable_frames(path, n)
    h, w = frames[0].shape[:2]
    fig, axes = plt.subplots(len(frames), 1, figsize=(3.6, 3.6 * h / w * len(frames) + 0.3),
                             squeeze=False)
    for ax, frame in zip(axes[:, 0], frames):
        ax.imshow(frame)
        ax.axis("off")
    axes[0, 0].set_title(title or "turntable: RGB | depth | normals", fontsize=8)
    fig.tight_layout()
    return fig


def show_turntable(path: str | Path | None) -> Any:
    """An IPython display object for the turntable (gif as image, mp4 as video)."""
    from IPython.display import Image, Video

    if path is None:
        return None
    path = Path(path)
    if path.suffix == ".gif":
        return Image(filename=str(path))
    return Video(str(path), embed=False)


def plot_mesh(mesh: Any, ax=None, title: str | None = None, max_faces: int = 20000):
    """A static render of a triangle mesh (trimesh, or a path to one) with ``plot_trisurf``."""
    import matplotlib.pyplot as plt

    if isinstance(mesh, (str, Path)):
        import trimesh

        mesh = trimesh.load(str(mesh), force="mesh")
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces)
    if len(f) > max_faces:
        f = f[np.linspace(0, len(f) - 1, max_faces).round().astype(int)]
    if ax is None:
        fig = plt.figure(figsize=(3.5, 3.5))
        ax = fig.add_subplot(projection="3d")
    # world z is up (ShapeZoo convention): plot x, y, z
    ax.plot_trisurf(v[:, 0], v[:, 1], v[:, 2], triangles=f, cmap="viridis", linewidth=0,
                    antialiased=False)
    lo, hi = v.min(0), v.max(0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_title(title or f"mesh: {len(v)} vertices, {len(np.asarray(mesh.faces))} faces",
                 fontsize=8)
    return ax


def step_view_viewer(snapshots: Snapshots, scale: int = 4) -> Any:
    """An ipywidgets viewer (sliders: training step, view) over ``snapshots``.

    Returns the widget, or None when ipywidgets is missing (headless use: :meth:`Snapshots.grid`).
    """
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    import io

    from PIL import Image as PILImage

    def png(i: int, v: int) -> bytes:
        img = PILImage.fromarray(snapshots.images[i][v])
        img = img.resize((img.width * scale, img.height * scale), PILImage.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="png")
        return buf.getvalue()

    n_views = snapshots.images[0].shape[0]
    step = widgets.SelectionSlider(options=[(str(s), i) for i, s in enumerate(snapshots.steps)],
                                   value=len(snapshots.steps) - 1, description="step")
    view = widgets.IntSlider(value=0, min=0, max=n_views - 1, description="view")
    image = widgets.Image(value=png(len(snapshots.steps) - 1, 0), format="png")

    def update(_: Any = None) -> None:
        image.value = png(step.value, view.value)

    step.observe(update, names="value")
    view.observe(update, names="value")
    return widgets.VBox([widgets.HBox([step, view]), image])


def to_image(x: Tensor) -> np.ndarray:
    """``[3, H, W]`` or ``[H, W, 3]`` tensor in [0, 1] → ``[H, W, 3]`` numpy for ``imshow``."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.permute(1, 2, 0)
    return x.numpy()
