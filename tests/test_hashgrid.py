"""Hash-grid encoding: layout, the reference against a float64 loop, backends, lazy imports."""

import math
import subprocess
import sys

import pytest
import torch

from sdlib.nerf.hashgrid import (
    HashGrid,
    HashGridConfig,
    encode_loop_float64,
    encode_reference,
    encode_triton,
    level_layout,
    triton_available,
)

SMALL = HashGridConfig(n_levels=6, log2_table_size=12, base_resolution=4, growth_factor=2.0)


def _points(layout, n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    inside = torch.rand(n, 3, generator=g)
    boundary = torch.cat(
        [torch.randint(0, r + 1, (32, 3), generator=g).double() / r for r in layout.resolutions]
    )
    outside = torch.rand(64, 3, generator=g) * 1.6 - 0.3
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.5]])
    return torch.cat([inside.double(), boundary, outside.double(), corners.double()])


def test_layout_follows_instant_ngp():
    layout = level_layout(HashGridConfig())
    # N_l = floor(16 * 1.447^l): 16, 23, 33, 48, 70, 101, ...
    assert layout.resolutions[:6] == (16, 23, 33, 48, 70, 101)
    assert layout.resolutions == tuple(math.floor(16 * 1.447**level) for level in range(16))
    # dense while (N+1)^3 <= 2^19: 71^3 = 357911 fits, 102^3 = 1061208 does not
    assert layout.dense[:5] == (True,) * 5 and not any(layout.dense[5:])
    assert layout.sizes[0] == 17**3 and layout.sizes[5] == 2**19
    assert layout.offsets[1] == 17**3


def test_reference_matches_float64_loop():
    layout = level_layout(SMALL)
    g = torch.Generator().manual_seed(1)
    table = torch.rand(layout.total, 2, generator=g, dtype=torch.float64) * 2 - 1
    x = _points(layout)
    torch.testing.assert_close(
        encode_reference(x, table, layout), encode_loop_float64(x, table, layout),
        rtol=1e-12, atol=1e-12,
    )
    # float32: errors of order eps * N_l in the position
    out32 = encode_reference(x.float(), table.float(), layout)
    torch.testing.assert_close(out32.double(), encode_loop_float64(x, table, layout),
                               rtol=0, atol=1e-4)


def test_default_config_reference_matches_loop_in_float64():
    layout = level_layout(HashGridConfig())
    g = torch.Generator().manual_seed(2)
    table = torch.rand(layout.total, 2, generator=g, dtype=torch.float64) * 2 - 1
    x = _points(layout, n=256)
    torch.testing.assert_close(
        encode_reference(x, table, layout), encode_loop_float64(x, table, layout),
        rtol=1e-12, atol=1e-12,
    )


def test_outside_points_are_clamped_and_interpolation_is_continuous():
    layout = level_layout(SMALL)
    table = torch.randn(layout.total, 2, dtype=torch.float64)
    x = torch.tensor([[-0.5, 0.3, 1.7]], dtype=torch.float64)
    torch.testing.assert_close(
        encode_reference(x, table, layout), encode_reference(x.clamp(0, 1), table, layout)
    )
    # continuity across a cell boundary of level 0 (N_0 = 4): x = 0.25 -/+ 1e-9
    a = torch.tensor([[0.25 - 1e-9, 0.5, 0.5]], dtype=torch.float64)
    b = torch.tensor([[0.25 + 1e-9, 0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(encode_reference(a, table, layout),
                               encode_reference(b, table, layout), atol=1e-6, rtol=0)


def test_table_and_position_gradients():
    layout = level_layout(HashGridConfig(n_levels=2, log2_table_size=6, base_resolution=2))
    table = (torch.randn(layout.total, 2, dtype=torch.float64)).requires_grad_(True)
    x = (torch.rand(5, 3, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x_, t_: encode_reference(x_, t_, layout), (x, table))


def test_module_auto_backend_is_torch_on_cpu():
    grid = HashGrid(SMALL)
    x = torch.rand(10, 3)
    assert grid.resolve_backend(x) == "torch"
    out = grid(x.reshape(2, 5, 3))
    assert out.shape == (2, 5, SMALL.output_dim)
    assert grid.table.abs().max() <= SMALL.init_scale


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="n_features_per_level"):
        HashGridConfig(n_features_per_level=3)
    with pytest.raises(ValueError, match="backend"):
        HashGridConfig(backend="cuda")


def test_import_does_not_load_optional_backends():
    code = ("import sys, sdlib.nerf; bad = [m for m in ('triton', 'tinycudann', 'nerfacc') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_triton_refuses_cpu_tensors():
    layout = level_layout(SMALL)
    with pytest.raises(ValueError, match="CUDA"):
        encode_triton(torch.rand(4, 3), torch.zeros(layout.total, 2), layout)


@pytest.mark.cuda
@pytest.mark.skipif(not triton_available(), reason="needs CUDA and triton")
@pytest.mark.parametrize("config", [SMALL, HashGridConfig()])
def test_triton_matches_reference(config):
    layout = level_layout(config)
    g = torch.Generator().manual_seed(0)
    table = (torch.rand(layout.total, config.n_features_per_level, generator=g) * 2 - 1).cuda()
    x = _points(layout, n=4096).float().cuda()
    grad_out = torch.randn(x.shape[0], config.output_dim, generator=g).cuda()
    outs = []
    for fn in (encode_reference, encode_triton):
        t = table.clone().requires_grad_(True)
        out = fn(x, t, layout)
        out.backward(grad_out)
        outs.append((out, t.grad))
    (ref, ref_grad), (tri, tri_grad) = outs
    assert (tri - ref).abs().max() / ref.abs().max() < 1e-4
    assert (tri_grad - ref_grad).abs().max() / ref_grad.abs().max() < 1e-4
