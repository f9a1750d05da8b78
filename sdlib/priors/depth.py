"""A monocular depth prior (any transformers depth-estimation model) as a differentiable map.

SteinDreamer's baseline ``φ = 1 − Pearson(D(decode(x_t)), depth_render)`` (DESIGN.md §2) needs
``∇_{x_t} φ`` through ``D``, so the preprocessing (resize, normalisation) is done here in torch,
not by the PIL image processor: ``images [B, 3, H, W] in [0, 1] → inverse depth [B, H, W]``.

MiDaS / DPT predict *relative inverse depth* (large = near, affine-invariant); ShapeZoo-DPT
predicts ``1 / depth`` (0 on the background). Correlate like with like.

The same code loads ``Intel/dpt-hybrid-midas`` (or a local copy) and the shipped ShapeZoo-DPT
(``"shapezoo"``). Mean, std and input size come from ``preprocessor_config.json`` when present.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sdlib.priors._hub import WrongModelError, check_depth_folder, resolve_pretrained

__all__ = ["DepthPriorConfig", "DepthPrior"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class DepthPriorConfig:
    """Which depth model to load, and how to feed it."""

    model: str = "shapezoo"
    """A transformers depth-estimation folder, a hub repo id (``Intel/dpt-hybrid-midas``), or
    ``"shapezoo"`` for the shipped ShapeZoo-DPT."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Weights and compute dtype; half precision is opt-in and CUDA only."""
    device: str = "cpu"
    """Torch device."""
    input_size: int | None = None
    """Square input resolution fed to the model; ``None``: from ``preprocessor_config.json``
    (``size``), else the model config's ``image_size``."""

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"DepthPriorConfig.dtype={self.dtype!r}; accepted: {tuple(_DTYPES)}")
        if self.dtype != "float32" and not str(self.device).startswith("cuda"):
            raise ValueError(
                f"DepthPriorConfig.dtype={self.dtype!r} on {self.device!r}: half precision is "
                "CUDA only; use 'float32' on CPU"
            )


def _read_preprocessor(source: str | Path) -> dict[str, Any]:
    path = Path(source) / "preprocessor_config.json"
    if path.is_file():
        return json.loads(path.read_text())
    if not Path(source).exists():  # a repo id the hub can serve
        try:
            from huggingface_hub import hf_hub_download

            return json.loads(
                Path(hf_hub_download(os.fspath(source), "preprocessor_config.json")).read_text()
            )
        except Exception:  # noqa: BLE001 - fall back to the model config
            return {}
    return {}


class DepthPrior:
    """A frozen depth-estimation model, differentiable from image to inverse depth.

    Attributes: ``model`` (the transformers model), ``mean``/``std`` (``[1, 3, 1, 1]``),
    ``input_size`` (int).
    """

    def __init__(self, config: DepthPriorConfig | None = None, **overrides: Any) -> None:
        from transformers import AutoModelForDepthEstimation

        config = config or DepthPriorConfig()
        if overrides:
            config = replace(config, **overrides)
        self.config = config
        self.device = torch.device(config.device)
        self.dtype = _DTYPES[config.dtype]
        source = resolve_pretrained(config.model, "dpt")
        if isinstance(source, Path):  # a repo id the hub serves is checked after download
            check_depth_folder(source, config.model)
        self.source = source
        try:
            self.model, info = AutoModelForDepthEstimation.from_pretrained(
                os.fspath(source), dtype=self.dtype, output_loading_info=True
            )
        except OSError as err:
            raise OSError(
                f"could not load a transformers depth-estimation model from {os.fspath(source)!r} "
                f"(config.json + weights expected). Cause: {err}"
            ) from err
        missing = sorted(info.get("missing_keys") or [])
        if missing:
            raise WrongModelError(
                f"depth model {config.model!r} ({os.fspath(source)}): its weights lack "
                f"{len(missing)} tensors of {type(self.model).__name__} (e.g. {missing[:3]}), "
                "which would be random: it is not a trained depth-estimation checkpoint (a "
                "segmentation or backbone-only one?). Pass a depth-estimation model such as "
                "Intel/dpt-hybrid-midas, or \"shapezoo\"."
            )
        self.model.to(self.device).eval().requires_grad_(False)
        pre = _read_preprocessor(source)
        mean = (
            pre.get("image_mean", [0.5, 0.5, 0.5]) if pre.get("do_normalize", True) else [0.0] * 3
        )
        std = pre.get("image_std", [0.5, 0.5, 0.5]) if pre.get("do_normalize", True) else [1.0] * 3
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).reshape(1, 3, 1, 1)
        size = config.input_size
        if size is None:
            s = pre.get("size")
            if isinstance(s, dict):
                size = s.get("height") or s.get("shortest_edge")
            elif isinstance(s, int):
                size = s
        if size is None:
            size = getattr(self.model.config, "image_size", 384)
        self.input_size = int(size)

    def preprocess(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in [0, 1] → ``[B, 3, S, S]`` normalised model input (differentiable)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"DepthPrior: expected images [B, 3, H, W], got {tuple(images.shape)}")
        x = images.to(self.device, torch.float32)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=False,
            )
        return ((x - self.mean) / self.std).to(self.dtype)

    def __call__(self, images: Tensor, output_size: tuple[int, int] | None = None) -> Tensor:
        """Inverse depth ``[B, H, W]`` (float32) of images ``[B, 3, H, W]`` in [0, 1].

        Differentiable with respect to ``images``; ``output_size`` defaults to ``(H, W)``.
        """
        out_hw = tuple(output_size) if output_size is not None else tuple(images.shape[-2:])
        pred = self.model(pixel_values=self.preprocess(images)).predicted_depth  # [B, h, w]
        pred = pred.float().unsqueeze(1)
        if pred.shape[-2:] != out_hw:
            pred = F.interpolate(pred, size=out_hw, mode="bilinear", align_corners=False)
        return pred[:, 0]

    predict = __call__

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"DepthPrior(source={os.fspath(self.source)!r}, input_size={self.input_size}, "
            f"params={n / 1e6:.1f}M, dtype={self.dtype}, device={self.device})"
        )
