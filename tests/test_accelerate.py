"""sdlib.accelerate's exact rewrites against the modules they replace (CPU, float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sdlib.accelerate import SubpixelUpsample2D, subpixel_conv_weights, subpixel_upsamplers
from sdlib.distill.common import to_device

diffusers = pytest.importorskip("diffusers")
from diffusers import AutoencoderKL  # noqa: E402
from diffusers.models.upsampling import Upsample2D  # noqa: E402


def reference_upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
    """The definition: nearest 2× upsampling, then the 3×3 convolution (padding 1)."""
    return F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), weight, bias, padding=1)


@pytest.mark.parametrize("shape", [(2, 5, 6, 9), (1, 3, 1, 1), (1, 4, 2, 7)])
def test_subpixel_upsample_equals_upsample_then_conv(shape):
    torch.manual_seed(0)
    up = Upsample2D(shape[1], use_conv=True, out_channels=7).double()
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ref = reference_upsample_conv(x, up.conv.weight, up.conv.bias)
    torch.testing.assert_close(up(x), ref)  # the reference is diffusers' module
    sub = SubpixelUpsample2D(up)
    out = sub(x)
    assert out.shape == (shape[0], 7, 2 * shape[2], 2 * shape[3])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    # the backward too: to the input and to the (shared) convolution weights
    g = torch.randn_like(ref)
    gx_ref, gw_ref = torch.autograd.grad(ref, (x, up.conv.weight), g)
    gx, gw = torch.autograd.grad(out, (x, sub.conv.weight), g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-12, atol=1e-12)


def test_subpixel_conv_weights_fold_rows_and_columns():
    w = torch.arange(9.0).reshape(1, 1, 3, 3)  # rows (0 1 2), (3 4 5), (6 7 8)
    k = subpixel_conv_weights(w)
    assert k.shape == (4, 1, 2, 2)
    # phase (0, 0): rows (w0, w1 + w2), columns likewise
    assert k[0, 0].tolist() == [[0.0, 1.0 + 2.0], [3.0 + 6.0, 4.0 + 5.0 + 7.0 + 8.0]]
    # phase (1, 1): rows (w0 + w1, w2), columns likewise
    assert k[3, 0].tolist() == [[0.0 + 1.0 + 3.0 + 4.0, 2.0 + 5.0], [6.0 + 7.0, 8.0]]
    assert float(k.sum()) == 4 * float(w.sum())  # each phase keeps every tap once
    with pytest.raises(ValueError, match=r"\[O, C, 3, 3\]"):
        subpixel_conv_weights(torch.zeros(2, 2, 5, 5))


def test_subpixel_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="use_conv=True"):
        SubpixelUpsample2D(Upsample2D(4, use_conv=False))
    with pytest.raises(ValueError, match="use_conv=True"):
        SubpixelUpsample2D(Upsample2D(4, use_conv=True, kernel_size=5, padding=2))
    sub = SubpixelUpsample2D(Upsample2D(4, use_conv=True))
    with pytest.raises(ValueError, match="output_size"):
        sub(torch.zeros(1, 4, 3, 3), output_size=(7, 7))
    assert sub(torch.zeros(1, 4, 3, 3), output_size=(6, 6)).shape == (1, 4, 6, 6)


def test_subpixel_upsamplers_keep_the_vae_decoder_and_its_weights():
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16, 16), norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3).double().eval()
    keys = set(vae.state_dict())
    z = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    ref = vae.decode(z).sample
    (g_ref,) = torch.autograd.grad(ref.square().sum(), z)
    assert subpixel_upsamplers(vae.decoder) == 2  # one per up block but the last
    assert subpixel_upsamplers(vae.decoder) == 0  # idempotent
    assert set(vae.state_dict()) == keys  # same checkpoint layout: the conv is shared
    out = vae.decode(z).sample
    (g,) = torch.autograd.grad(out.square().sum(), z)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_to_device_on_cpu_is_a_plain_copy():
    x = torch.arange(5)
    y = to_device(x, "cpu")
    assert y.device.type == "cpu" and torch.equal(x, y)


# ---------------------------------------------------------------------- compile cache, progress
@pytest.fixture
def cache_flags():
    """Inductor's and AOTAutograd's cache switches, off during the test, restored after."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    with inductor_config.patch(fx_graph_cache=False), \
            functorch_config.patch(enable_autograd_cache=False):
        yield inductor_config, functorch_config


def test_enable_compile_cache_sets_the_folder_and_the_caches(tmp_path, monkeypatch, cache_flags):
    from sdlib.accelerate import enable_compile_cache

    inductor_config, functorch_config = cache_flags
    assert inductor_config.fx_graph_cache is False
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("SDLIB_COMPILE_CACHE", str(tmp_path / "sdlib_cache"))
    folder = enable_compile_cache()
    assert folder == (tmp_path / "sdlib_cache").absolute() and folder.is_dir()
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder)
    assert inductor_config.fx_graph_cache is True
    assert functorch_config.enable_autograd_cache is True
    assert enable_compile_cache() == folder  # idempotent
    # without SDLIB_COMPILE_CACHE: ~/.cache/sdlib/inductor
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.delenv("SDLIB_COMPILE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert enable_compile_cache() == tmp_path / "home" / ".cache" / "sdlib" / "inductor"


def test_enable_compile_cache_respects_a_set_inductor_folder(tmp_path, monkeypatch,
                                                             cache_flags):
    import os

    from sdlib.accelerate import enable_compile_cache

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("SDLIB_COMPILE_CACHE", str(tmp_path / "not_this"))
    assert enable_compile_cache() == tmp_path / "mine"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    assert not (tmp_path / "not_this").exists()
    # an explicit folder wins
    assert enable_compile_cache(tmp_path / "explicit") == tmp_path / "explicit"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "explicit")


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_modules_report_their_first_calls(backend, monkeypatch, capsys, tmp_path):
    """Each compiled module prints a line before and after its first call in each grad mode and
    around its first backward; is_compiled and _orig_mod keep working."""
    import sdlib.accelerate as acc

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **kw: real_compile(module,
                                                                            backend=backend))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    compiled = acc._compile(lin, "reduce-overhead", name="toy net")
    assert acc.is_compiled(compiled) and compiled._orig_mod is lin
    assert acc._compile(compiled, None) is compiled  # idempotent
    x = torch.randn(2, 4, requires_grad=True)
    with torch.no_grad():
        compiled(x)
    out = compiled(x)
    out.square().sum().backward()
    compiled(x).sum().backward()  # later calls are silent
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("compiling toy net, no grad (first call: Inductor + CUDA graphs")
    assert str(tmp_path) in lines[0]
    assert lines[1].startswith("compiled toy net in ") and lines[1].endswith(" s")
    assert lines[2].startswith("compiling toy net (first call")
    assert lines[3].startswith("compiled toy net in ")
    assert lines[4].startswith("compiling toy net backward")
    assert lines[5].startswith("compiled toy net backward in ")
    assert len(lines) == 6
    torch.testing.assert_close(out, lin(x))
