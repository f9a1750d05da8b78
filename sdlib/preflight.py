"""Pre-flight check of a text-to-3D run: will it fit in the GPU's free memory?

Run before any model is loaded (:class:`sdlib.train.Trainer` calls :func:`check_gpu_memory` on
CUDA), so a run that cannot fit stops at once with one message saying what to change, instead of
an out-of-memory error after minutes of loading and compiling (threestudio's issues #108, #170).

The estimate, in bytes, for ``B`` views per step at the prior's resolution ``R`` (512 for SD
2.1-base) and ``b`` bytes per prior element (2 in float16, 4 in float32)::

    weights      = b · (N_unet + N_vae + N_text [+ N_depth for SSD's depth / normal baseline])
    activations  = B · (R / 512)² · (b / 2) · (A_sds [+ A_ssd for SSD] [+ A_vsd for VSD])
    nerf         = 16 · N_grid      (float32 parameters, gradient, Adam's two moments)
    total        = 1.1 · (weights + activations + nerf) + 0.5 GiB (CUDA context, workspaces)

``N`` are parameter counts read from the safetensors headers of the model folders (no weights
are loaded); for a hub id that is not on disk yet, SD 2.1-base's and DPT-Hybrid's sizes.
``A_*`` are per-view activation bytes at 512² in float16: ``A_sds`` = 2.0 GiB (VAE encoder
forward + backward, the guided UNet forward; from the H100 peak of SDS at the paper preset,
4.83 GB with 2.8 GB of weights, ``notes/bench_paper_step_h100_run6.json``), ``A_ssd`` = 3.0 GiB
(VAE decoder forward + backward at 512², the depth model's), ``A_vsd`` = 1.5 GiB (the LoRA
UNet's forward + backward). The estimate is deliberately simple; the check fails only when the
estimate exceeds the free memory.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["GPUMemoryError", "MemoryEstimate", "estimate_gpu_memory", "check_gpu_memory",
           "safetensors_numel"]

GIB = 1024**3
SD21_BASE_NUMEL = 1_290_000_000
"""SD 2.1-base's UNet + VAE + text encoder parameters (used when the prior is not on disk)."""
DPT_HYBRID_NUMEL = 122_400_000
"""DPT-Hybrid (MiDaS)'s parameters (used when the depth model is not on disk)."""
ACTIVATION_GIB = {"sds": 2.0, "ssd": 3.0, "vsd": 1.5}
"""Per-view activation GiB at 512² in float16 (see the module docstring)."""
_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


class GPUMemoryError(RuntimeError):
    """The run's estimated GPU memory exceeds what the device has free."""


@dataclass(frozen=True)
class MemoryEstimate:
    """An estimate of a run's peak GPU memory, in bytes, by part."""

    weights: int
    """Prior (and depth model) weights."""
    activations: int
    """Saved activations and transients of one step."""
    nerf: int
    """The NeRF's parameters, gradients and Adam moments."""

    @property
    def total(self) -> int:
        """``1.1 · (weights + activations + nerf) + 0.5 GiB``."""
        return int(1.1 * (self.weights + self.activations + self.nerf) + 0.5 * GIB)


def safetensors_numel(folder: str | os.PathLike) -> int:
    """Parameters stored in the ``*.safetensors`` files under ``folder`` (headers only).

    A safetensors file starts with an 8-byte little-endian header length and a JSON header
    giving every tensor's shape; nothing else is read. ``*.bin`` files count as float32.
    """
    total = 0
    for path in Path(folder).rglob("*.safetensors"):
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, meta in header.items():
            if key != "__metadata__":
                numel = 1
                for d in meta["shape"]:
                    numel *= int(d)
                total += numel
    if total == 0:
        total = sum(p.stat().st_size for p in Path(folder).rglob("*.bin")) // 4
    return total


def _local_folder(model: str, kind: str) -> Path | None:
    """The folder of ``model`` if it is on disk (shapezoo, a folder, the HF cache), else None."""
    from sdlib.priors._hub import PriorNotFoundError, resolve_pretrained

    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network here
    try:
        source = resolve_pretrained(model, kind)  # type: ignore[arg-type]
    except PriorNotFoundError:
        return None
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old
    return source if isinstance(source, Path) else None


def _prior_resolution(folder: Path | None) -> int:
    """``unet.sample_size × 2^(len(vae.block_out_channels) − 1)`` from the configs, else 512."""
    if folder is None:
        return 512
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
    except (OSError, ValueError):
        return 512
    size = unet["sample_size"]
    size = size[0] if isinstance(size, list) else size
    return int(size) * 2 ** (len(vae["block_out_channels"]) - 1)


def estimate_gpu_memory(
    config: Any, prior_numel: int | None = None, depth_numel: int | None = None,
    resolution: int | None = None,
) -> MemoryEstimate:
    """The estimate of the module docstring for a :class:`sdlib.train.TrainConfig`.

    ``prior_numel``, ``depth_numel`` and ``resolution`` (the prior's image size) override
    what is read from the model folders.
    """
    folder = None
    if prior_numel is None or resolution is None:
        folder = _local_folder(config.prior, "sd")
    if prior_numel is None:
        prior_numel = (safetensors_numel(folder / "unet") + safetensors_numel(folder / "vae")
                       + safetensors_numel(folder / "text_encoder")) if folder else SD21_BASE_NUMEL
    resolution = resolution or _prior_resolution(folder)
    needs_depth = config.method == "ssd" and config.ssd.baseline in ("depth", "normal")
    if needs_depth and depth_numel is None:
        dfolder = _local_folder(config.depth, "dpt")
        depth_numel = safetensors_numel(dfolder) if dfolder else DPT_HYBRID_NUMEL
    b = _BYTES[config.prior_dtype]
    weights = b * prior_numel + (_BYTES[config.depth_precision] * (depth_numel or 0)
                                 if needs_depth else 0)
    per_view = ACTIVATION_GIB["sds"] + (ACTIVATION_GIB[config.method]
                                        if config.method != "sds" else 0.0)
    activations = config.batch_size * (resolution / 512) ** 2 * (b / 2) * per_view * GIB
    grid = config.nerf.grid
    nerf = 16 * grid.n_levels * grid.n_features_per_level * 2**grid.log2_table_size
    return MemoryEstimate(weights=int(weights), activations=int(activations), nerf=int(nerf))


def check_gpu_memory(
    config: Any, free_bytes: int | None = None, total_bytes: int | None = None, **overrides: Any
) -> MemoryEstimate:
    """Raises :class:`GPUMemoryError` when the run's estimate exceeds the GPU's free memory.

    ``free_bytes`` / ``total_bytes`` default to ``torch.cuda.mem_get_info(config.device)``;
    ``overrides`` go to :func:`estimate_gpu_memory`. Returns the estimate.
    """
    est = estimate_gpu_memory(config, **overrides)
    if free_bytes is None:
        free_bytes, total_bytes = torch.cuda.mem_get_info(torch.device(config.device))
    if est.total <= free_bytes:
        return est
    g = lambda x: f"{x / GIB:.1f} GiB"  # noqa: E731
    held = f" of {g(total_bytes)} ({g(total_bytes - free_bytes)} already in use)" \
        if total_bytes else ""
    advice = ["--batch-size 1" if config.batch_size > 1 else None,
              "prior_dtype='float16' (TrainConfig)" if config.prior_dtype == "float32" else None,
              "SSDConfig(decoder='linear') or --method sds" if config.method == "ssd" else None,
              "--method sds or ssd" if config.method == "vsd" else None,
              "free the GPU of other processes" if total_bytes and
              total_bytes - free_bytes > GIB else None,
              "a GPU with more memory"]
    raise GPUMemoryError(
        f"{config.method} on {config.device} with prior {config.prior!r} in "
        f"{config.prior_dtype}, {config.batch_size} view(s) per step needs about "
        f"{g(est.total)} of GPU memory (weights {g(est.weights)}, activations "
        f"{g(est.activations)}, NeRF {g(est.nerf)}), but {config.device} has {g(free_bytes)} "
        f"free{held}. Try: {'; '.join(a for a in advice if a)}."
    )
