"""Where prior weights come from: a local folder, the HF cache, the hub, or ``"shapezoo"``.

One resolver for every prior (diffusion, depth, classifier), so that the error a user sees when
weights are missing is the same everywhere and says what was looked for and how to provide it.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

__all__ = [
    "ASSETS_DIR",
    "PriorNotFoundError",
    "WrongModelError",
    "check_depth_folder",
    "check_sd_folder",
    "resolve_pretrained",
    "shapezoo_path",
]

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "shapezoo"
"""Folder of the shipped ShapeZoo weights: ``sd/``, ``dpt/``, ``classifier/``."""

Kind = Literal["sd", "dpt", "classifier"]

_TRAIN_COMMAND = {
    "sd": "python -m sdlib.priors.train_sd",
    "dpt": "python -m sdlib.priors.train_depth",
    "classifier": "python -m sdlib.priors.train_classifier",
}
_EXAMPLE_REPO = {
    "sd": "stabilityai/stable-diffusion-2-1-base",
    "dpt": "Intel/dpt-hybrid-midas",
    "classifier": None,
}


class PriorNotFoundError(FileNotFoundError):
    """The weights of a prior could not be found locally and cannot be downloaded."""


class WrongModelError(ValueError):
    """A folder holds weights, but not of the kind of model asked for (e.g. a depth model given
    as the diffusion prior, or a segmentation model given as the depth model)."""


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _offline() -> bool:
    return _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - only for the message
        return "~/.cache/huggingface/hub"


def shapezoo_path(kind: Kind) -> Path:
    """The folder of a shipped ShapeZoo model (``kind``: ``"sd"``, ``"dpt"``, ``"classifier"``)."""
    path = ASSETS_DIR / kind
    if not path.is_dir() or not any(path.iterdir()):
        raise PriorNotFoundError(
            f"the shipped ShapeZoo {kind} weights were looked for in {path} and are missing; "
            f"train them with `{_TRAIN_COMMAND[kind]}` (one GPU, minutes), which writes there."
        )
    return path


def _download_line(repo: str) -> str:
    return (
        f"on a machine with network run `hf download {repo} --local-dir <folder>` "
        f"(huggingface_hub < 1.0: `huggingface-cli download {repo} --local-dir <folder>`), "
        "copy <folder> here and pass its path"
    )


def _help(kind: Kind, repo: str | None = None) -> str:
    example = repo or _EXAMPLE_REPO[kind]
    lines = [
        "Provide weights in one of these ways:",
        "  - pass a local folder (save_pretrained layout);",
    ]
    if example:
        lines.append(f"  - {_download_line(example)};")
        if repo:
            lines.append(
                "  - or, with network here, unset HF_HUB_OFFLINE and it is downloaded on first use;"
            )
    lines.append(f'  - or use the shipped ShapeZoo model: "shapezoo" ({ASSETS_DIR / kind}).')
    return "\n".join(lines)


def _describe_folder(path: Path) -> str:
    """What a folder holds, in words, for error messages: a diffusers pipeline, a transformers
    model (its ``model_type`` / architecture), or neither."""
    index = path / "model_index.json"
    if index.is_file():
        try:
            cls = json.loads(index.read_text()).get("_class_name", "pipeline")
        except (OSError, ValueError):
            cls = "pipeline"
        return f"a diffusers {cls} (model_index.json)"
    config = path / "config.json"
    if config.is_file():
        try:
            cfg = json.loads(config.read_text())
        except (OSError, ValueError):
            return "a config.json that is not valid JSON"
        archs = cfg.get("architectures") or []
        what = archs[0] if archs else cfg.get("_class_name") or cfg.get("model_type")
        if what is None:
            return "a config.json without model_type or architectures (not a transformers model)"
        return f"a {what} model (config.json, model_type={cfg.get('model_type')!r})"
    names = sorted(p.name for p in path.iterdir())[:8]
    return f"neither model_index.json nor config.json (it holds {names or 'nothing'})"


SD_SUBFOLDERS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
"""The subfolders of a ``StableDiffusionPipeline.save_pretrained`` folder that sdlib loads."""


def check_sd_folder(path: str | os.PathLike, name: str | None = None) -> Path:
    """Checks that ``path`` is a diffusers Stable Diffusion (1.x / 2.x) pipeline folder.

    Raises:
        WrongModelError: naming the folder, what it holds instead and what to pass, when
            ``model_index.json`` or one of :data:`SD_SUBFOLDERS` is missing, or the pipeline is
            another kind (SDXL, SD 3, ...).
    """
    path = Path(path)
    label = f"diffusion prior {name!r} ({path})" if name and name != os.fspath(path) else \
        f"diffusion prior folder {os.fspath(path)!r}"
    index = path / "model_index.json"
    missing = [f"{s}/" for s in SD_SUBFOLDERS if not (path / s).is_dir()]
    todo = (
        "Pass a folder written by StableDiffusionPipeline.save_pretrained (subfolders "
        + ", ".join(f"{s}/" for s in SD_SUBFOLDERS)
        + f"), e.g. {_download_line(_EXAMPLE_REPO['sd'])}; or \"shapezoo\"."
    )
    if not index.is_file() or missing:
        hint = ""
        if (path / "config.json").is_file() and not index.is_file():
            hint = " If it is a depth model, pass it as the depth model (--depth / depth=...)."
        lacks = ", ".join((["model_index.json"] if not index.is_file() else []) + missing)
        raise WrongModelError(
            f"{label} is not a diffusers Stable Diffusion pipeline: it lacks {lacks}; it holds "
            f"{_describe_folder(path)}.{hint} {todo}"
        )
    try:
        cls = json.loads(index.read_text()).get("_class_name", "StableDiffusionPipeline")
    except ValueError as err:
        msg = f"{label}: model_index.json is not valid JSON ({err}). {todo}"
        raise WrongModelError(msg) from err
    if cls != "StableDiffusionPipeline" or (path / "text_encoder_2").is_dir():
        raise WrongModelError(
            f"{label} is a diffusers {cls}; sdlib's score distillation loads Stable Diffusion "
            f"1.x / 2.x (StableDiffusionPipeline: one CLIP text encoder, a 4-channel UNet). {todo}"
        )
    return path


def check_depth_folder(path: str | os.PathLike, name: str | None = None) -> Path:
    """Checks that ``path`` holds a transformers depth-estimation model (DPT / MiDaS, ...).

    Accepted: a ``config.json`` whose ``model_type`` is one of transformers'
    ``AutoModelForDepthEstimation`` types and whose ``architectures`` (when given) name a
    ``...ForDepthEstimation`` class.

    Raises:
        WrongModelError: naming the folder, what it holds and what is accepted.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES

    path = Path(path)
    label = f"depth model {name!r} ({path})" if name and name != os.fspath(path) else \
        f"depth model folder {os.fspath(path)!r}"
    todo = (
        "Pass a transformers depth-estimation model (model_type one of "
        f"{sorted(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES)}, architecture *ForDepthEstimation), "
        f"e.g. {_download_line(_EXAMPLE_REPO['dpt'])}; or \"shapezoo\"."
    )
    config = path / "config.json"
    if not config.is_file():
        hint = ""
        if (path / "model_index.json").is_file():
            hint = " If it is a Stable Diffusion pipeline, pass it as the prior (--prior / prior=)."
        raise WrongModelError(
            f"{label} is not a transformers model: it has no config.json; it holds "
            f"{_describe_folder(path)}.{hint} {todo}"
        )
    try:
        cfg = json.loads(config.read_text())
    except ValueError as err:
        raise WrongModelError(f"{label}: config.json is not valid JSON ({err}). {todo}") from err
    archs = cfg.get("architectures") or []
    if cfg.get("model_type") not in MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES or (
        archs and not any(a.endswith("ForDepthEstimation") for a in archs)
    ):
        raise WrongModelError(
            f"{label} is {_describe_folder(path)}, not a depth-estimation model. {todo}"
        )
    return path


def resolve_pretrained(model: str | os.PathLike, kind: Kind) -> str | Path:
    """Resolves ``model`` to a local folder, or to a repo id that the hub can serve now.

    Args:
        model: ``"shapezoo"``, a local folder, or a Hugging Face repo id (``owner/name``).
        kind: which prior: ``"sd"`` (diffusers Stable Diffusion), ``"dpt"`` (transformers depth
            model) or ``"classifier"`` (ShapeZoo classifier).

    Returns:
        A local ``Path``, or the repo id ``str`` when the hub is reachable and the repo is not
        cached (``from_pretrained`` then downloads it).

    Raises:
        PriorNotFoundError: at once, naming what was looked for, when the weights are neither
            local nor cached and the hub is offline or unreachable.
    """
    name = os.fspath(model)
    if name == "shapezoo":
        return shapezoo_path(kind)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    looks_like_path = name.startswith((".", "/", "~")) or "\\" in name
    if looks_like_path or name.count("/") != 1 or kind == "classifier":
        raise PriorNotFoundError(
            f"{kind} model {name!r}: no such local folder ({path.resolve()}), and it is not a "
            f"Hugging Face repo id of the form 'owner/name'.\n{_help(kind)}"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local cache, whatever the reason
        pass
    if _offline():
        raise PriorNotFoundError(
            f"{kind} model {name!r}: not a local folder and not in the Hugging Face cache "
            f"({_cache_dir()}), and the hub is offline (HF_HUB_OFFLINE=1), so it cannot be "
            f"downloaded.\n{_help(kind, name)}"
        )
    if not _hub_reachable():
        raise PriorNotFoundError(
            f"{kind} model {name!r}: not a local folder and not in the Hugging Face cache, and the "
            f"hub ({os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}) is unreachable from "
            f"this machine (no network).\n{_help(kind, name)}"
        )
    return name
