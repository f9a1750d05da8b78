"""The notebook contract, and every notebook executed headless with smoke parameters.

Contract (DESIGN.md §4, STYLE.md Part 4.2): each ``notebooks/NN_name.ipynb`` is paired with a
``py:percent`` file holding the same cells, is committed without outputs, opens with a markdown
cell, and has exactly one code cell tagged ``parameters`` whose flat, typed, commented
assignments include ``seed``, ``device``, ``smoke`` and ``out_dir``.

Teaching contract (issue 15): every image a notebook's markdown shows exists in the repository,
no link or file it names points outside the repository, and its last markdown cell is a
``## Takeaway`` quoting numbers.

Execution: papermill runs each notebook with ``smoke=True`` and ``device="cpu"``, leaving
``out_dir`` at its default (the scratch folder, moved into a temporary folder through
``$SDLIB_SCRATCH``); any cell error fails the test, the figures it writes must come with their
JSON sidecars, and the committed ``figures/`` must be byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import hashlib
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
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)|<img[^>]*\bsrc=[\"']([^\"']+)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)")
FILE_NAME = re.compile(r"(?<![\w/.-])([\w./-]+\.md)\b")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
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


def _markdown(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def _local_target(target: str) -> str | None:
    """The file part of a link, or None for web links and in-page anchors."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return None
    return target.split("#", 1)[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_images_and_links_stay_in_the_repository(path: Path) -> None:
    text = "\n".join(_markdown(json.loads(path.read_text())))
    images = [a or b for a, b in IMAGE.findall(text)]
    links = LINK.findall(text)
    for target in images + links:
        local = _local_target(target)
        if local is None:
            assert target in links, f"{path.name}: image {target!r} is not a file in the repository"
            continue
        resolved = (path.parent / local).resolve()
        assert resolved.is_relative_to(ROOT), f"{path.name}: {target!r} leaves the repository"
        assert resolved.exists(), f"{path.name}: {target!r} does not exist (resolved {resolved})"
    # files named in the prose (DESIGN.md, docs/maths.md, ...) must be files of the repository
    cells = json.loads(path.read_text())["cells"]
    source = text + "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    tracked = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts}
    for name in FILE_NAME.findall(source):
        assert Path(name).name in tracked, (
            f"{path.name} cites {name!r}, which is not in the repository (cite docs/maths.md)"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_ends_with_a_takeaway(path: Path) -> None:
    last = _markdown(json.loads(path.read_text()))[-1]
    assert last.lstrip().startswith("## Takeaway"), (
        f"{path.name}: the last markdown cell must be a '## Takeaway' section, not {last[:60]!r}"
    )
    numbers = NUMBER.findall(last.split("\n", 1)[-1])
    assert len(numbers) >= 3, f"{path.name}: the takeaway quotes no numbers ({numbers})"


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_id(run: tuple[Path, dict]) -> str:
    path, extra = run
    return "-".join([path.stem, *(f"{k}={v}" for k, v in extra.items())])


@pytest.mark.notebook
@pytest.mark.parametrize("run", RUNS, ids=[_run_id(r) for r in RUNS])
def test_notebook_runs_headless(
    run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    from sdlib.figures import SCRATCH_ENV

    path, extra = run
    fig_dir = tmp_path / "figures"
    monkeypatch.setenv(SCRATCH_ENV, str(fig_dir))  # the kernel inherits it: default out_dir
    committed = _digest(ROOT / "figures")
    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters={"smoke": True, "device": "cpu", **extra},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(path.parent),
    )
    assert _digest(ROOT / "figures") == committed, (
        f"{path.name} with its default out_dir modified figures/; it must write to the scratch "
        "folder (sdlib.figures.resolve_out_dir)"
    )
    pngs = sorted(fig_dir.glob("*.png"))
    assert pngs, f"{path.name} wrote no figure into out_dir"
    for png in pngs:
        side = png.with_suffix(".json")
        assert side.exists(), f"{png.name} has no JSON sidecar"
        meta = json.loads(side.read_text())
        assert meta["notebook"] == path.name
        assert meta["parameters"]["smoke"] is True
