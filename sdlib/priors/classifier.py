"""The ShapeZoo classifier: names the object or scene in a 64×64 image (our CLIP R-precision).

A small plain-torch CNN (four stride-2 stages of conv-GroupNorm-SiLU, global average pool,
linear), saved as ``model.safetensors`` + ``config.json`` (class names included), loaded by
:func:`load_classifier` from a folder or the short name ``"shapezoo"``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdlib.priors._hub import resolve_pretrained

__all__ = ["ClassifierConfig", "ShapeZooClassifier", "load_classifier"]


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of the classifier."""

    class_names: tuple[str, ...] = ()
    """The prompts, in class-index order (the shipped model: ShapeZoo's ``PROMPTS``, then, once
    retrained on scenes, its ``SCENE_PROMPTS``; :func:`sdlib.priors._train.default_prompts`)."""
    widths: tuple[int, ...] = (32, 64, 96, 128)
    """Channels of the stride-2 stages."""
    image_size: int = 64
    """Input resolution; other sizes are resized bilinearly."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class ShapeZooClassifier(nn.Module):
    """images ``[B, 3, H, W]`` in [0, 1] → logits ``[B, num_classes]``."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if config.num_classes < 2:
            raise ValueError("ClassifierConfig.class_names needs at least 2 classes")
        self.config = config
        layers: list[nn.Module] = [nn.Conv2d(3, config.widths[0], 3, padding=1), nn.SiLU()]
        c = config.widths[0]
        for w in config.widths:
            layers += [
                nn.Conv2d(c, w, 3, stride=2, padding=1),
                nn.GroupNorm(8, w),
                nn.SiLU(),
                nn.Conv2d(w, w, 3, padding=1),
                nn.GroupNorm(8, w),
                nn.SiLU(),
            ]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, config.num_classes)

    def forward(self, images: Tensor) -> Tensor:
        s = self.config.image_size
        x = images.float() if images.dtype != self.head.weight.dtype else images
        x = x.to(self.head.weight.dtype)
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        x = self.features(2.0 * x - 1.0)
        return self.head(x.mean(dim=(2, 3)))

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """``[B]`` predicted class indices."""
        return self(images).argmax(dim=-1)

    @torch.no_grad()
    def predict_names(self, images: Tensor) -> list[str]:
        """The predicted object prompt of each image."""
        return [self.config.class_names[i] for i in self.predict(images).tolist()]

    def save_pretrained(
        self, folder: str | os.PathLike, dtype: torch.dtype = torch.float16
    ) -> None:
        """Writes ``model.safetensors`` (``dtype``) and ``config.json`` into ``folder``."""
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        save_file(state, os.fspath(out / "model.safetensors"))
        cfg = asdict(self.config)
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def load_classifier(
    model: str | os.PathLike = "shapezoo", device: str | torch.device = "cpu"
) -> ShapeZooClassifier:
    """Loads the classifier from a folder (``config.json``, weights) or ``"shapezoo"``.

    Weights are cast to float32; the model is in eval mode with gradients off.
    """
    from safetensors.torch import load_file

    folder = Path(resolve_pretrained(model, "classifier"))
    cfg = json.loads((folder / "config.json").read_text())
    config = ClassifierConfig(
        class_names=tuple(cfg["class_names"]),
        widths=tuple(cfg["widths"]),
        image_size=int(cfg["image_size"]),
    )
    net = ShapeZooClassifier(config)
    state = {k: v.float() for k, v in load_file(os.fspath(folder / "model.safetensors")).items()}
    net.load_state_dict(state)
    return net.to(device).eval().requires_grad_(False)
