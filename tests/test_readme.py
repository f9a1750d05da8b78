"""The README's loading lines, run exactly as written there (extracted from README.md).

The "Shipped models" section shows how plain diffusers and transformers load the shipped
ShapeZoo models (no ``torch_dtype``, a ``str`` folder). These tests run that code block verbatim,
so the README cannot drift from what works: the pipeline samples on the CPU, the depth pipeline
predicts, and every component loads in one dtype.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def readme_block(section: str) -> str:
    """The first ```python block under the README heading that starts with ``section``."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end >= 0 else None]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match, f"README section {section!r} has no ```python block"
    return match.group(1)


@pytest.fixture(scope="module")
def readme_run() -> dict:
    """Executes the README's block once (seeded, so the sample is the same every run)."""
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(readme_block("Shipped models"), "README.md", "exec"), namespace)
    return namespace


def test_readme_block_loads_with_plain_diffusers_and_transformers() -> None:
    code = readme_block("Shipped models")
    assert "StableDiffusionPipeline.from_pretrained(" in code
    assert 'pipeline("depth-estimation"' in code
    assert "torch_dtype" not in code and "dtype=" not in code


def test_readme_pipeline_samples_on_cpu_in_one_dtype(readme_run: dict) -> None:
    import numpy as np
    from PIL import Image

    from sdlib.priors import load_classifier

    pipe, image = readme_run["pipe"], readme_run["image"]
    dtypes = {m: next(getattr(pipe, m).parameters()).dtype for m in ("unet", "vae", "text_encoder")}
    assert set(dtypes.values()) == {torch.float32}, dtypes
    assert isinstance(image, Image.Image) and image.size == (64, 64)
    net = load_classifier("shapezoo")
    x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None].float() / 255
    name = net.config.class_names[int(net.predict(x)[0])]
    assert name == "a red mushroom with white spots", name


def test_readme_depth_pipeline_predicts(readme_run: dict) -> None:
    import numpy as np
    from PIL import Image

    depth = readme_run["depth"]
    assert isinstance(depth, Image.Image) and depth.size == (64, 64)
    d = torch.from_numpy(np.asarray(depth, dtype=np.float32))
    assert d.std() > 1.0, "the depth map is flat"


@pytest.mark.cuda
def test_readme_pipeline_samples_on_cuda(readme_run: dict) -> None:
    pipe = readme_run["pipe"].to("cuda")
    out = pipe("a red mushroom with white spots", num_inference_steps=4, output_type="pt").images
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
