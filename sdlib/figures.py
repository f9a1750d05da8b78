"""Figures as records: a PNG plus a JSON sidecar that says how to make it again.

Every figure in ``figures/`` is written by :func:`savefig`, which stores next to the PNG a
sidecar ``<fig_id>.json`` holding the notebook that made it, the notebook's parameters, the
seed, the git commit, the device and the figure's key numbers (``data``). Checks compare those
numbers, never pixels.

One command regenerates a figure by re-running its notebook with the stored parameters::

    python -m sdlib.figures regenerate fig12_variance      # one figure
    python -m sdlib.figures regenerate --all               # every figure with a sidecar
    python -m sdlib.figures list                           # what there is

``regenerate`` runs papermill on ``notebooks/<notebook>`` with the sidecar's parameters (and
``out_dir`` pointed at the figure's folder), which rewrites the PNG and the sidecar.

Only ``regenerate`` (and ``make figures``) writes ``figures/``. A notebook run with its default
``out_dir=""`` writes into a scratch folder (:func:`resolve_out_dir`: ``$SDLIB_SCRATCH`` if set,
else ``outputs/figures`` in the repository, which git ignores), so that exploring a notebook never
overwrites the committed figures.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "savefig", "load_sidecar", "regenerate", "resolve_out_dir", "REPO_ROOT", "FIGURES_DIR",
    "NOTEBOOKS_DIR", "SCRATCH_DIR", "SCRATCH_ENV",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (the folder holding ``sdlib/``, ``notebooks/`` and ``figures/``)."""
FIGURES_DIR = REPO_ROOT / "figures"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SCRATCH_DIR = REPO_ROOT / "outputs" / "figures"
"""Where a notebook writes by default (git-ignored)."""
SCRATCH_ENV = "SDLIB_SCRATCH"
"""Environment variable that moves the scratch folder (the notebook tests point it at a tmp dir)."""


def resolve_out_dir(out_dir: str | Path = "") -> Path:
    """The folder a notebook writes its figures into.

    ``out_dir`` if it is not empty; otherwise ``$SDLIB_SCRATCH`` if set, else
    :data:`SCRATCH_DIR` (``outputs/figures``). The committed ``figures/`` is written only when
    asked for by name (``regenerate`` passes it).

    >>> resolve_out_dir("/tmp/x").as_posix()
    '/tmp/x'
    """
    import os

    if str(out_dir):
        return Path(out_dir)
    return Path(os.environ.get(SCRATCH_ENV) or SCRATCH_DIR)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    sha = out.stdout.strip()
    dirty = subprocess.run(
        # figures/ holds outputs, not inputs: regenerating one figure must not mark the next dirty
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
    ).stdout.strip()
    return sha + ("-dirty" if dirty else "")


def _device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return f"cpu ({platform.processor() or platform.machine()})"


def _jsonable(value: Any) -> Any:
    """Converts tensors, arrays, paths and numpy scalars into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # torch.Tensor, numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"savefig: cannot store a value of type {type(value).__name__} in the sidecar; "
        "accepted: dict, list, tuple, str, int, float, bool, None, tensors and arrays"
    )


def savefig(
    fig: Any,
    fig_id: str,
    *,
    out_dir: str | Path = FIGURES_DIR,
    notebook: str,
    parameters: dict[str, Any],
    seed: int | None = None,
    data: dict[str, Any] | None = None,
    dpi: int = 120,
) -> Path:
    """Saves ``fig`` as ``<out_dir>/<fig_id>.png`` with a JSON sidecar next to it.

    Args:
        fig: a matplotlib figure.
        fig_id: the figure's id, letters, digits, ``_`` and ``-`` (``fig12_variance``).
        out_dir: folder to write into; created if missing.
        notebook: the notebook that makes the figure, as a file name in ``notebooks/``.
        parameters: the notebook's parameters for this run (what ``regenerate`` passes back).
        seed: the random seed of the run.
        data: the figure's key numbers, JSON-serialisable (tensors are converted).
        dpi: resolution of the PNG.

    Returns:
        The path of the PNG.

    >>> import matplotlib.pyplot as plt, tempfile
    >>> fig, ax = plt.subplots(); _ = ax.plot([0, 1])
    >>> p = savefig(fig, "fig00_demo", out_dir=tempfile.mkdtemp(), notebook="10_x.ipynb",
    ...             parameters={"seed": 0}, seed=0, data={"slope": 1.0})
    >>> p.name
    'fig00_demo.png'
    """
    if not fig_id or not all(ch.isalnum() or ch in "_-" for ch in fig_id):
        raise ValueError(
            f"savefig: fig_id {fig_id!r} is not accepted; use letters, digits, '_' and '-'"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{fig_id}.png"
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    params = dict(parameters)
    given = params.get("out_dir")
    if isinstance(given, (str, Path)) and str(given):  # a folder in the repo: stored relative
        resolved = Path(given).resolve()
        if resolved.is_relative_to(REPO_ROOT):
            params["out_dir"] = resolved.relative_to(REPO_ROOT).as_posix()
    sidecar = {
        "fig_id": fig_id,
        "notebook": notebook,
        "parameters": _jsonable(params),
        "seed": seed,
        "commit": _git_commit(),
        "device": _device_name(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "data": _jsonable(data or {}),
    }
    (out / f"{fig_id}.json").write_text(json.dumps(sidecar, indent=2, sort_keys=False) + "\n")
    return png


def load_sidecar(fig_id: str, figures_dir: str | Path = FIGURES_DIR) -> dict[str, Any]:
    """Reads ``<figures_dir>/<fig_id>.json``; raises with the list of known ids if missing."""
    path = Path(figures_dir) / f"{fig_id}.json"
    if not path.exists():
        known = sorted(p.stem for p in Path(figures_dir).glob("*.json"))
        raise FileNotFoundError(
            f"no sidecar for figure {fig_id!r} in {figures_dir}; known figures: {known}"
        )
    return json.loads(path.read_text())


def regenerate(
    fig_id: str,
    figures_dir: str | Path = FIGURES_DIR,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Re-runs the notebook that made ``fig_id`` with its stored parameters.

    The sidecar's ``parameters`` are passed to papermill, with ``out_dir`` set to
    ``figures_dir`` and then ``overrides`` applied. The executed notebook is written next to
    the figure as ``<fig_id>.executed.ipynb`` in a temporary folder and discarded.

    Returns:
        The path of the regenerated PNG.
    """
    import tempfile

    import papermill

    side = load_sidecar(fig_id, figures_dir)
    nb = Path(notebooks_dir) / side["notebook"]
    if not nb.exists():
        raise FileNotFoundError(f"figure {fig_id!r} names notebook {nb}, which does not exist")
    params = dict(side["parameters"])
    params["out_dir"] = str(Path(figures_dir).resolve())
    params.update(overrides or {})
    with tempfile.TemporaryDirectory() as tmp:
        papermill.execute_notebook(
            str(nb), str(Path(tmp) / nb.name), parameters=params, kernel_name="python3",
            progress_bar=False, cwd=str(nb.parent),
        )
    return Path(figures_dir) / f"{fig_id}.png"


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sdlib.figures", description=(__doc__ or "").split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("regenerate", help="re-run the notebook behind a figure")
    reg.add_argument("fig_ids", nargs="*", help="figure ids (file stems in figures/)")
    reg.add_argument("--all", action="store_true", help="every figure with a sidecar")
    reg.add_argument("--figures-dir", default=str(FIGURES_DIR))
    sub.add_parser("list", help="list figures and their notebooks")
    args = parser.parse_args(argv)
    if args.command == "list":
        for p in sorted(FIGURES_DIR.glob("*.json")):
            side = json.loads(p.read_text())
            print(f"{p.stem:40s} {side.get('notebook')}")
        return 0
    ids = list(args.fig_ids)
    if args.all:
        ids = sorted(p.stem for p in Path(args.figures_dir).glob("*.json"))
    if not ids:
        parser.error("name at least one figure id, or --all")
    done: set[tuple[str, str]] = set()
    for fig_id in ids:
        side = load_sidecar(fig_id, args.figures_dir)
        key = (side["notebook"], json.dumps(side["parameters"], sort_keys=True))
        if key in done:  # one notebook run writes all its figures
            continue
        print(f"regenerating {fig_id} from notebooks/{side['notebook']} ...", flush=True)
        regenerate(fig_id, args.figures_dir)
        done.add(key)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
