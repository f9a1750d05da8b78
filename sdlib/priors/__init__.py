"""Priors for score distillation: a text-to-image diffusion model and a monocular depth model.

* :class:`DiffusionPrior` loads any diffusers Stable Diffusion folder or repo id (SD 1.5,
  SD 2.1(-base); ε- and v-prediction) or the shipped ShapeZoo-SD (``"shapezoo"``);
* :class:`DepthPrior` loads any transformers depth-estimation model (DPT / MiDaS) or the shipped
  ShapeZoo-DPT, differentiably from image to inverse depth;
* :func:`load_classifier` loads the ShapeZoo classifier (our CLIP-R-precision analogue).

Training commands: ``python -m sdlib.priors.train_sd``, ``… .train_depth``, ``… .train_classifier``.
Importing this package does not import diffusers or transformers.
"""

from sdlib.priors._hub import (
    ASSETS_DIR,
    PriorNotFoundError,
    WrongModelError,
    resolve_pretrained,
)
from sdlib.priors.classifier import ClassifierConfig, ShapeZooClassifier, load_classifier
from sdlib.priors.depth import DepthPrior, DepthPriorConfig
from sdlib.priors.diffusion import DiffusionPrior, DiffusionPriorConfig, PromptEmbeddings

__all__ = [
    "ASSETS_DIR",
    "ClassifierConfig",
    "DepthPrior",
    "DepthPriorConfig",
    "DiffusionPrior",
    "DiffusionPriorConfig",
    "PriorNotFoundError",
    "PromptEmbeddings",
    "ShapeZooClassifier",
    "WrongModelError",
    "load_classifier",
    "resolve_pretrained",
]
