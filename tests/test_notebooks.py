"""The notebook contract, and every notebook executed headless with smoke parameters.

Contract (DESIGN.md §4, STYLE.md Part 4.2): each ``notebooks/NN_name.ipynb`` is paired with a
``py:percent`` file holding the same cells, is committed without outputs, opens with a markdown
cell, and has exactly one code cell tagged ``parameters`` whose flat, typed, commented
assignments include ``seed``, ``device``, ``smoke`` and ``out_dir``.

Execution: papermill runs each notebook with ``smoke=True``, ``device="cpu"`` and ``out_dir``
in a temporary folder; any cell error fails the test, and the figures it writes must come with
their JSON sidecars.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
PAIRED = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
REQUIRED_PARAMETERS = ("seed", "device", "smoke", "out_dir")
EXTRA_RUNS: dict[str, list[dict]] = {
    # one notebook, executed once per method: its default is ssd, CI adds the other two
    "31_text_to_3d": [{"method": "sds"}, {"method": "vsd"}],
}
RUNS = [(p, {}) for p in NOTEBOOKS] + [
    (p, extra) for p in NOTEBOOKS for extra in EXTRA_RUNS.get(p.stem, [])
]
# papermill's own pattern for `name: type = value  # help` (papermill/translators.py)
PARAMETER_LINE = re.compile(r"^(?P<name>\w+)\s*:\s*(?P<type>[^=]+?)\s*=\s*(?P<value>.+?)\s*#\s*\S")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _parameters_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found in notebooks/"


def test_every_notebook_is_paired() -> None:
    assert [p.stem for p in NOTEBOOKS] == [p.stem for p in PAIRED], (
        "every notebooks/NN_name.ipynb needs notebooks/NN_name.py (py:percent) and vice versa; "
        "run `make notebooks` after editing the .py files"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_contract(path: Path) -> None:
    import jupytext

    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        f"{path.name} is committed with outputs; strip them (`make notebooks` regenerates it)"
    )
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: papermill needs the python3 kernelspec"
    )
    assert nb["cells"][0]["cell_type"] == "markdown", f"{path.name} must open with markdown"
    params = _parameters_cells(nb)
    assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    lines = [ln for ln in "".join(params[0]["source"]).splitlines() if ln.strip()]
    names = []
    for ln in lines:
        if ln.lstrip().startswith("#"):
            continue
        m = PARAMETER_LINE.match(ln)
        assert m, f"{path.name}: parameter line {ln!r} is not `name: type = value  # help`"
        names.append(m["name"])
    missing = [n for n in REQUIRED_PARAMETERS if n not in names]
    assert not missing, f"{path.name}: the parameters cell lacks {missing}"

    # the .ipynb and its py:percent twin hold the same cells
    twin = jupytext.read(path.with_suffix(".py"))
    ours = jupytext.read(path)
    src = [(c.cell_type, c.source.strip()) for c in ours.cells]
    src_twin = [(c.cell_type, c.source.strip()) for c in twin.cells]
    assert src == src_twin, f"{path.name} and {path.stem}.py differ: run `make notebooks`"


def _run_id(run: tuple[Path, dict]) -> str:
    path, extra = run
    return "-".join([path.stem, *(f"{k}={v}" for k, v in extra.items())])


@pytest.mark.notebook
@pytest.mark.parametrize("run", RUNS, ids=[_run_id(r) for r in RUNS])
def test_notebook_runs_headless(run: tuple[Path, dict], tmp_path: Path) -> None:
    import papermill

    path, extra = run
    fig_dir = tmp_path / "figures"
    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters={"smoke": True, "device": "cpu", "out_dir": str(fig_dir), **extra},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(path.parent),
    )
    pngs = sorted(fig_dir.glob("*.png"))
    assert pngs, f"{path.name} wrote no figure into out_dir"
    for png in pngs:
        side = png.with_suffix(".json")
        assert side.exists(), f"{png.name} has no JSON sidecar"
        meta = json.loads(side.read_text())
        assert meta["notebook"] == path.name
        assert meta["parameters"]["smoke"] is True
