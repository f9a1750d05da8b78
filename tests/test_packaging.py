"""Packaging contracts: light import, environment.yml agrees with pyproject/Makefile, figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("diffusers", "transformers", "nerfacc", "tinycudann", "triton", "peft")


def test_import_sdlib_is_light() -> None:
    """`import sdlib` and every submodule import without pulling heavy optional packages."""
    code = (
        "import importlib, pkgutil, sys, sdlib\n"
        "for m in pkgutil.walk_packages(sdlib.__path__, 'sdlib.'):\n"
        "    if m.name.endswith('__main__'):\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
        f"heavy = [h for h in {HEAVY!r} if h in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing sdlib pulled in: {out.stdout.strip()}"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_declared_dependencies() -> None:
    deps = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in _pyproject()["project"]["dependencies"]}
    wanted = {"torch", "diffusers", "transformers", "accelerate", "safetensors", "peft",
              "nerfacc", "matplotlib", "ipywidgets", "jupyterlab", "papermill", "ipykernel",
              "jupytext", "tqdm", "imageio", "imageio-ffmpeg", "trimesh", "scikit-image"}
    assert wanted <= deps, f"pyproject.toml lacks {sorted(wanted - deps)}"
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"dev", "tcnn"} <= set(extras)


def test_environment_yml_agrees_with_pyproject_and_makefile() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    version = python.split("=")[-1]
    requires = _pyproject()["project"]["requires-python"]
    assert requires.startswith(">="), requires
    minimum = tuple(int(x) for x in requires[2:].split("."))
    assert tuple(int(x) for x in version.split(".")) >= minimum
    assert "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-e .[dev]" in pip, "environment.yml must install `-e .[dev]` like `make install`"
    make_torch = re.search(r"^TORCH \?= (\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert make_torch and make_torch.group(1) in pip, (
        "environment.yml must pin torch like the Makefile's TORCH"
    )


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_figure_has_a_sidecar_naming_an_existing_notebook() -> None:
    for png in sorted((ROOT / "figures").glob("*.png")):
        side = png.with_suffix(".json")
        assert side.exists(), f"{png.name} has no sidecar"
        meta = json.loads(side.read_text())
        for key in ("notebook", "parameters", "seed", "commit", "device", "data"):
            assert key in meta, f"{side.name} lacks {key!r}"
        assert (ROOT / "notebooks" / meta["notebook"]).exists(), f"{side.name}: no notebook"
