"""Shared test configuration: markers that gate CUDA and slow tests.

* ``@pytest.mark.cuda``: needs a CUDA GPU; skipped when ``torch.cuda.is_available()`` is false.
* ``@pytest.mark.slow``: long; runs only with ``SDLIB_SLOW=1``.
* ``@pytest.mark.notebook``: executes a notebook through papermill (``make test-fast`` skips them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_cuda = pytest.mark.skip(reason="needs CUDA (run on a GPU machine)")
    no_slow = pytest.mark.skip(reason="slow: set SDLIB_SLOW=1 to run")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "slow" in item.keywords and os.environ.get("SDLIB_SLOW") != "1":
            item.add_marker(no_slow)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


TINY_PROMPTS = ("a red ball", "a small red sphere")
"""Prompts the tiny random priors' tokenizer knows."""


@pytest.fixture(scope="session")
def tiny_prior_folders(tmp_path_factory) -> Path:
    """Tiny random Stable Diffusion and DPT folders (16² images): ``root/sd``, ``root/dpt``."""
    from sdlib.priors.build import save_tiny_priors

    root = tmp_path_factory.mktemp("priors")
    save_tiny_priors(root, list(TINY_PROMPTS))
    return root
