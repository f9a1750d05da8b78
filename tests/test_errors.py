"""Clear errors before any work: a hub id missing offline, a folder that is not a Stable
Diffusion pipeline, a depth model of the wrong kind, a GPU without enough memory. Each names the
input and says what to do; each is raised before any training starts."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from sdlib.preflight import (
    DPT_HYBRID_NUMEL,
    GIB,
    GPUMemoryError,
    check_gpu_memory,
    estimate_gpu_memory,
    safetensors_numel,
)
from sdlib.priors import ASSETS_DIR, DepthPrior, DiffusionPrior, PriorNotFoundError, WrongModelError
from sdlib.train import Trainer, paper_config, shapezoo_config


def test_hub_id_missing_offline_says_how_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    repo = "stabilityai/stable-diffusion-2-1-base"
    with pytest.raises(PriorNotFoundError) as info:
        Trainer(shapezoo_config("a red ball", "sds", prior=repo, device="cpu"))
    msg = str(info.value)
    assert repo in msg and "HF_HUB_OFFLINE=1" in msg
    assert f"hf download {repo} --local-dir <folder>" in msg
    assert "not in the Hugging Face cache" in msg


def test_depth_id_missing_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(PriorNotFoundError, match=r"hf download Intel/dpt-hybrid-midas"):
        DepthPrior(model="Intel/dpt-hybrid-midas")


def test_depth_folder_given_as_prior():
    with pytest.raises(WrongModelError) as info:
        Trainer(shapezoo_config("a red ball", "sds", prior=str(ASSETS_DIR / "dpt"), device="cpu"))
    msg = str(info.value)
    assert str(ASSETS_DIR / "dpt") in msg and "not a diffusers Stable Diffusion pipeline" in msg
    assert "model_index.json" in msg and "DPTForDepthEstimation" in msg
    assert "pass it as the depth model" in msg and "StableDiffusionPipeline.save_pretrained" in msg


def test_pipeline_missing_a_component(tmp_path):
    folder = tmp_path / "sd"
    shutil.copytree(ASSETS_DIR / "sd", folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(WrongModelError, match=r"lacks vae/"):
        DiffusionPrior(model=str(folder))


def test_sdxl_pipeline_is_named(tmp_path):
    folder = tmp_path / "sdxl"
    shutil.copytree(ASSETS_DIR / "sd", folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(WrongModelError, match=r"StableDiffusionXLPipeline.*1.x / 2.x"):
        DiffusionPrior(model=str(folder))


def test_pipeline_given_as_depth_model():
    with pytest.raises(WrongModelError) as info:
        DepthPrior(model=str(ASSETS_DIR / "sd"))
    msg = str(info.value)
    assert "no config.json" in msg and "pass it as the prior" in msg
    assert "Intel/dpt-hybrid-midas" in msg


def test_segmentation_model_given_as_depth_model(tmp_path):
    """A DPT of the wrong head (semantic segmentation) has model_type 'dpt' too."""
    folder = tmp_path / "dpt-seg"
    shutil.copytree(ASSETS_DIR / "dpt", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["DPTForSemanticSegmentation"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WrongModelError, match=r"DPTForSemanticSegmentation.*not a depth-est"):
        Trainer(shapezoo_config("a red ball", "ssd", depth=str(folder), device="cpu"))


def test_classifier_given_as_depth_model():
    with pytest.raises(WrongModelError, match=r"not a depth-estimation model"):
        DepthPrior(model=str(ASSETS_DIR / "classifier"))


def test_depth_checkpoint_without_its_head(tmp_path):
    """Depth config, but weights lacking the head: loading would leave it random."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "dpt-headless"
    shutil.copytree(ASSETS_DIR / "dpt", folder)
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("head.")},
              folder / "model.safetensors")
    with pytest.raises(WrongModelError, match=r"lack .* tensors of DPTForDepthEstimation"):
        DepthPrior(model=str(folder))


def test_safetensors_numel_reads_headers():
    from safetensors.torch import load_file

    expected = sum(v.numel() for v in load_file(ASSETS_DIR / "dpt" / "model.safetensors").values())
    assert safetensors_numel(ASSETS_DIR / "dpt") == expected


def test_gpu_memory_estimate_at_the_paper_preset():
    """Paper preset, float16, batch 1: every method fits 24 GB by the estimate; float32 and
    more views need more; the shipped models need little."""
    est = {m: estimate_gpu_memory(paper_config("a hamburger", m, device="cpu",
                                               prior_dtype="float16"))
           for m in ("sds", "vsd", "ssd")}
    assert est["sds"].total < est["vsd"].total < est["ssd"].total < 24 * GIB
    assert 4 * GIB < est["sds"].total  # SD 2.1-base's 1.29B float16 weights alone are 2.6 GB
    cfg = paper_config("a hamburger", "ssd", device="cpu", prior_dtype="float16")
    assert estimate_gpu_memory(replace(cfg, batch_size=4)).activations == \
        4 * est["ssd"].activations
    # paper_config keeps the depth model in float32 (TrainConfig.depth_dtype): 2 bytes more
    # per parameter than in float16, and all in float32 is twice all in float16
    all16 = estimate_gpu_memory(replace(cfg, depth_dtype=None))
    assert est["ssd"].weights - all16.weights == 2 * DPT_HYBRID_NUMEL
    assert estimate_gpu_memory(replace(cfg, prior_dtype="float32")).weights == \
        2 * all16.weights
    small = estimate_gpu_memory(shapezoo_config("a red ball", "ssd", device="cpu"))
    assert small.weights < 0.1 * GIB and small.total < 2 * GIB


def test_gpu_memory_check_raises_before_loading():
    cfg = paper_config("a hamburger", "vsd", device="cpu", prior_dtype="float32", batch_size=4)
    est = estimate_gpu_memory(cfg)
    assert check_gpu_memory(cfg, free_bytes=est.total + 1, total_bytes=80 * GIB) == est
    with pytest.raises(GPUMemoryError) as info:
        check_gpu_memory(cfg, free_bytes=20 * GIB, total_bytes=24 * GIB)
    msg = str(info.value)
    assert "vsd" in msg and "stabilityai/stable-diffusion-2-1-base" in msg
    assert f"{est.total / GIB:.1f} GiB" in msg and "20.0 GiB free of 24.0 GiB" in msg
    assert "--batch-size 1" in msg and "float16" in msg


@pytest.mark.cuda
def test_trainer_checks_gpu_memory_first(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (GIB // 4, 24 * GIB))
    with pytest.raises(GPUMemoryError):
        Trainer(shapezoo_config("a red ball", "sds", device="cuda"))
