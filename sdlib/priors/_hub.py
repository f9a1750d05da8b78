"""Where prior weights come from: a local folder, the HF cache, the hub, or ``"shapezoo"``.

One resolver for every prior (diffusion, depth, classifier), so that the error a user sees when
weights are missing is the same everywhere and says what was looked for and how to provide it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

__all__ = ["ASSETS_DIR", "PriorNotFoundError", "resolve_pretrained", "shapezoo_path"]

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


def shapezoo_path(kind: Kind) -> Path:
    """The folder of a shipped ShapeZoo model (``kind``: ``"sd"``, ``"dpt"``, ``"classifier"``)."""
    path = ASSETS_DIR / kind
    if not path.is_dir() or not any(path.iterdir()):
        raise PriorNotFoundError(
            f"the shipped ShapeZoo {kind} weights were looked for in {path} and are missing; "
            f"train them with `{_TRAIN_COMMAND[kind]}` (one GPU, minutes), which writes there."
        )
    return path


def _help(kind: Kind) -> str:
    example = _EXAMPLE_REPO[kind]
    lines = [
        "Provide weights in one of these ways:",
        "  - pass a local folder (save_pretrained layout);",
    ]
    if example:
        lines.append(
            f"  - on a connected machine run "
            f"`huggingface-cli download {example} --local-dir <folder>` "
            "(or any repo id), copy the folder here and pass its path;"
        )
    lines.append(f'  - or use the shipped ShapeZoo model: "shapezoo" ({ASSETS_DIR / kind}).')
    return "\n".join(lines)


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
            f"{kind} model {name!r}: not a local folder and not in the Hugging Face cache, and the "
            f"hub is offline (HF_HUB_OFFLINE=1), so it cannot be downloaded.\n{_help(kind)}"
        )
    if not _hub_reachable():
        raise PriorNotFoundError(
            f"{kind} model {name!r}: not a local folder and not in the Hugging Face cache, and the "
            f"hub ({os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}) is unreachable from "
            f"this machine (no network).\n{_help(kind)}"
        )
    return name
