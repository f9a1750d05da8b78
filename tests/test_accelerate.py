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
