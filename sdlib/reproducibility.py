"""Reproducible runs: every random state in one dict (for checkpoints), and a deterministic mode.

On the CPU a text-to-3D run is bitwise reproducible as it is: every draw comes from seeded
generators, and the one non-deterministic op of the step (the hash grid's row-gather backward,
whose atomic adds ran in a varying order) sums in a fixed order (``sdlib.nerf.hashgrid.
gather_rows``). A run killed and resumed from its checkpoint ends bitwise equal to an
uninterrupted one because the checkpoint holds, besides the trainer's own generator, every
global random state (:func:`rng_state`).

On CUDA, bitwise reproducibility costs speed and is opt-in (:func:`use_deterministic`,
``TrainConfig.deterministic``): cuBLAS, cuDNN and PyTorch's scatter/index kernels switch to
their deterministic variants, and the hash grid uses its PyTorch backend instead of the Triton
kernel, whose backward adds with atomics.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["rng_state", "set_rng_state", "use_deterministic"]


def rng_state() -> dict[str, Any]:
    """The global random states: torch (CPU and every CUDA device), Python's, numpy's."""
    state: dict[str, Any] = {
        "torch": torch.random.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what :func:`rng_state` returned (CUDA states only where CUDA is in use)."""
    torch.random.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def use_deterministic(enabled: bool = True) -> None:
    """Switches PyTorch to (or back from) its deterministic algorithms, process-wide.

    ``torch.use_deterministic_algorithms(enabled)`` (an op without a deterministic variant
    raises), cuDNN without autotuning, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` as cuBLAS
    requires (set only if unset; it must be set before the first cuBLAS call to take effect).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False if enabled else torch.backends.cudnn.benchmark
