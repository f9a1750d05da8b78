"""Multiresolution hash encoding (Instant-NGP; Müller et al., SIGGRAPH 2022, Sec. 3).

A point ``x`` in ``[0, 1]^3`` is encoded at ``L`` levels. Level ``l`` has the resolution

    N_l = floor(N_min * b^l)                                  (Eq. 2, b = growth factor)

and a grid of ``(N_l + 1)^3`` vertices. Each vertex owns a feature vector of ``F`` numbers in a
table of ``T`` entries per level. Where the grid fits the table (``(N_l + 1)^3 <= T``) a vertex
is indexed densely, ``i = x + y (N_l + 1) + z (N_l + 1)^2``; elsewhere by the spatial hash

    h(x, y, z) = (x * 1  XOR  y * 2654435761  XOR  z * 805459861)  mod T      (Eq. 4)

(computed in 32-bit unsigned arithmetic in Instant-NGP; with ``T`` a power of two the low bits,
and so the result, are the same in 64-bit integers). The level's output is the trilinear
interpolation of the 8 vertex features around ``x N_l``, and the encoding concatenates the
levels: ``[N, 3] -> [N, L * F]``, level-major.

Conventions of this implementation:

* Inputs are clamped to ``[0, 1]`` (points outside get the features of the nearest boundary
  point and zero gradient with respect to position).
* The lower cell corner is ``min(floor(x N_l), N_l - 1)``, so ``x = 1`` interpolates inside
  the last cell (fraction 1) rather than reading a vertex outside the grid.
* The table is one flat parameter ``[sum_l T_l, F]`` with per-level offsets; ``T_l =
  min(T, (N_l + 1)^3)``; initialised uniformly in ``[-1e-4, 1e-4]`` as in Instant-NGP.

Backends (``HashGridConfig.backend``):

* ``"torch"``: :func:`encode_reference`, readable vectorised PyTorch; differentiable with
  respect to the table and the positions.
* ``"triton"``: a fused Triton kernel for the forward pass and another for the backward pass
  (atomic adds into the table gradient). Floating-point contraction (FMA) is switched off so
  that ``x N_l - floor(x N_l)`` is rounded as in PyTorch: with FMA the cell fraction at the
  finest level (``N_l`` ~ 4000) differs by up to half an ulp of ``x N_l`` (~2e-4), which
  showed as a 3e-4 relative difference from the reference. It gives **no gradient with
  respect to positions**:
  normals of a field on this backend come from finite differences of the density
  (``FieldConfig.normals="finite_difference"``), or from the torch backend
  (:meth:`HashGrid.forward` with ``backend="torch"``), which the field uses for analytic
  normals.
* ``"tcnn"``: tiny-cuda-nn's ``HashGrid`` (imported lazily, only when asked for); its
  parameter layout and hash differ slightly, so it is not compared with the
  reference bit for bit.
* ``"auto"``: triton on CUDA tensors (if triton imports), torch otherwise.

:func:`encode_loop_float64` is the slow per-level, per-corner loop the tests hold the reference
against.

>>> grid = HashGrid(HashGridConfig(n_levels=4, log2_table_size=12, backend="torch"))
>>> grid(torch.rand(5, 3)).shape
torch.Size([5, 8])
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "HashGridConfig",
    "HashGrid",
    "LevelLayout",
    "level_layout",
    "encode_reference",
    "encode_loop_float64",
    "encode_triton",
    "triton_available",
    "tcnn_available",
    "PRIMES",
]

PRIMES = (1, 2654435761, 805459861)
"""Instant-NGP's hash primes for x, y and z."""

Backend = Literal["auto", "torch", "triton", "tcnn"]


@dataclass(frozen=True)
class HashGridConfig:
    """Settings of the multiresolution hash encoding (defaults: DESIGN.md §5, threestudio)."""

    n_levels: int = 16
    """Number of resolution levels ``L``."""
    n_features_per_level: int = 2
    """Features per level ``F`` (1, 2, 4 or 8: the Triton kernel needs a power of two)."""
    log2_table_size: int = 19
    """``log2 T``: table entries per level (a power of two, so the hash is a bit mask)."""
    base_resolution: int = 16
    """Coarsest resolution ``N_min``."""
    growth_factor: float = 1.447
    """Per-level scale ``b``: ``N_l = floor(N_min b^l)``."""
    init_scale: float = 1e-4
    """Table entries start uniform in ``[-init_scale, init_scale]``."""
    backend: Backend = "auto"
    """``"auto"`` (triton on CUDA, torch on CPU and under ``torch.use_deterministic_algorithms``),
    ``"torch"``, ``"triton"`` or ``"tcnn"``."""

    def __post_init__(self) -> None:
        if self.n_levels < 1:
            raise ValueError(f"HashGridConfig.n_levels={self.n_levels}: must be >= 1")
        if self.n_features_per_level not in (1, 2, 4, 8):
            raise ValueError(
                f"HashGridConfig.n_features_per_level={self.n_features_per_level}: "
                "accepted values are 1, 2, 4, 8"
            )
        if not 4 <= self.log2_table_size <= 26:
            raise ValueError(
                f"HashGridConfig.log2_table_size={self.log2_table_size}: accepted range is [4, 26]"
            )
        if self.base_resolution < 1 or self.growth_factor < 1.0:
            raise ValueError(
                "HashGridConfig: base_resolution must be >= 1 and growth_factor >= 1, got "
                f"{self.base_resolution}, {self.growth_factor}"
            )
        if self.backend not in ("auto", "torch", "triton", "tcnn"):
            raise ValueError(
                f"HashGridConfig.backend={self.backend!r}: accepted 'auto', 'torch', 'triton', "
                "'tcnn'"
            )

    @property
    def output_dim(self) -> int:
        """``L * F``."""
        return self.n_levels * self.n_features_per_level


@dataclass(frozen=True)
class LevelLayout:
    """Per-level resolution, table size, table offset and indexing mode (Python ints)."""

    resolutions: tuple[int, ...]
    """``N_l`` per level."""
    sizes: tuple[int, ...]
    """``T_l = min(T, (N_l + 1)^3)`` per level."""
    offsets: tuple[int, ...]
    """Row of the flat table where level ``l`` starts."""
    dense: tuple[bool, ...]
    """Whether level ``l`` is indexed densely (``(N_l + 1)^3 <= T``)."""

    @property
    def total(self) -> int:
        return self.offsets[-1] + self.sizes[-1]


@functools.lru_cache(maxsize=64)
def level_layout(config: HashGridConfig) -> LevelLayout:
    """The table layout of ``config`` (Instant-NGP Eq. 2 and the dense/hash rule)."""
    table = 2**config.log2_table_size
    resolutions, sizes, offsets, dense = [], [], [], []
    offset = 0
    for level in range(config.n_levels):
        res = int(math.floor(config.base_resolution * config.growth_factor**level))
        n_vertices = (res + 1) ** 3
        is_dense = n_vertices <= table
        size = n_vertices if is_dense else table
        resolutions.append(res)
        sizes.append(size)
        offsets.append(offset)
        dense.append(is_dense)
        offset += size
    return LevelLayout(tuple(resolutions), tuple(sizes), tuple(offsets), tuple(dense))


@functools.lru_cache(maxsize=64)
def _layout_tensors(layout: LevelLayout, device: torch.device) -> tuple[Tensor, ...]:
    return (
        torch.tensor(layout.resolutions, dtype=torch.int64, device=device),
        torch.tensor(layout.sizes, dtype=torch.int64, device=device),
        torch.tensor(layout.offsets, dtype=torch.int64, device=device),
        torch.tensor(layout.dense, dtype=torch.bool, device=device),
    )


class _GatherRows(torch.autograd.Function):
    """``table[index]`` whose backward sums repeated rows in a fixed order (bitwise reproducible).

    The backward of plain ``table[index]`` is ``index_put_(accumulate=True)``, which on the CPU
    adds rows hit by several points in parallel with atomics, so the order of the additions, and
    the float32 result's last bits, change from run to run (two runs of one seed differed by
    1e-9 after one step, 3e-5 after two). Here the backward runs the sort-based accumulation
    that ``torch.use_deterministic_algorithms`` selects, whatever the global setting.
    """

    @staticmethod
    def forward(ctx, table: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.table_shape = table.shape
        return table[index]

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        was = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            grad_table = grad.new_zeros(ctx.table_shape).index_put(
                (index.reshape(-1),), grad.reshape(-1, grad.shape[-1]), accumulate=True
            )
        finally:
            torch.use_deterministic_algorithms(was, warn_only=warn_only)
        return grad_table, None


def gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]`` (``[..., F]``) with a deterministic backward (:class:`_GatherRows`)."""
    if torch.is_grad_enabled() and table.requires_grad:
        return _GatherRows.apply(table, index)
    return table[index]


def encode_reference(x: Tensor, table: Tensor, layout: LevelLayout) -> Tensor:
    """The hash encoding in vectorised PyTorch (the readable reference).

    Args:
        x: ``[N, 3]`` points in ``[0, 1]^3`` (clamped).
        table: ``[layout.total, F]`` feature table.
        layout: from :func:`level_layout`.

    Returns:
        ``[N, L * F]`` features, level-major.

    Note:
        Differentiable with respect to ``table`` and ``x`` (through the trilinear weights); the
        table's gradient is bitwise reproducible (:func:`gather_rows`).
    """
    res_i, sizes, offsets, dense = _layout_tensors(layout, x.device)
    n_levels, n_feat = len(layout.resolutions), table.shape[1]
    x = x.clamp(0.0, 1.0)
    pos = x[:, None, :] * res_i.to(x.dtype)[None, :, None]  # [N, L, 3]
    corner0 = torch.minimum(pos.detach().floor().long(), (res_i - 1)[None, :, None])
    frac = pos - corner0.to(x.dtype)  # [N, L, 3]
    stride = res_i + 1  # [L]
    out = x.new_zeros(x.shape[0], n_levels, n_feat, dtype=table.dtype)
    for corner in range(8):
        bits = torch.tensor([corner & 1, (corner >> 1) & 1, (corner >> 2) & 1], device=x.device)
        g = corner0 + bits  # [N, L, 3]
        dense_index = g[..., 0] + g[..., 1] * stride + g[..., 2] * stride * stride
        hash_index = (g[..., 0] * PRIMES[0]) ^ (g[..., 1] * PRIMES[1]) ^ (g[..., 2] * PRIMES[2])
        hash_index = hash_index % sizes
        index = torch.where(dense, dense_index, hash_index) + offsets  # [N, L]
        weight = torch.where(bits.bool(), frac, 1.0 - frac).prod(dim=-1)  # [N, L]
        out = out + weight[..., None].to(table.dtype) * gather_rows(table, index)
    return out.reshape(x.shape[0], n_levels * n_feat)


def encode_loop_float64(x: Tensor, table: Tensor, layout: LevelLayout) -> Tensor:
    """The encoding as Instant-NGP states it, one level and one corner at a time, in float64.

    Slow; for tests. Same arguments and result as :func:`encode_reference`.
    """
    x = x.double().clamp(0.0, 1.0)
    table = table.double()
    outputs = []
    for level, res in enumerate(layout.resolutions):
        size, offset = layout.sizes[level], layout.offsets[level]
        pos = x * res
        corner0 = pos.floor().long().clamp(max=res - 1)
        frac = pos - corner0.double()
        level_out = torch.zeros(x.shape[0], table.shape[1], dtype=torch.float64)
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    gx, gy, gz = corner0[:, 0] + dx, corner0[:, 1] + dy, corner0[:, 2] + dz
                    if layout.dense[level]:
                        index = gx + gy * (res + 1) + gz * (res + 1) ** 2
                    else:
                        index = ((gx * PRIMES[0]) ^ (gy * PRIMES[1]) ^ (gz * PRIMES[2])) % size
                    wx = frac[:, 0] if dx else 1.0 - frac[:, 0]
                    wy = frac[:, 1] if dy else 1.0 - frac[:, 1]
                    wz = frac[:, 2] if dz else 1.0 - frac[:, 2]
                    level_out += (wx * wy * wz)[:, None] * table[offset + index]
        outputs.append(level_out)
    return torch.cat(outputs, dim=-1)


# --------------------------------------------------------------------------------------------
# Triton backend (imported lazily: this module imports without triton and without CUDA).
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether triton imports and CUDA is available."""
    if not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _triton_kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def cell(x_ptr, rows, mask, res):
        """The point's cell at one level: corner ``(ix, iy, iz)`` and fractions ``(fx, fy, fz)``."""
        resf = res.to(tl.float32)
        px = tl.minimum(tl.maximum(tl.load(x_ptr + rows * 3 + 0, mask=mask, other=0.0), 0.0), 1.0)
        py = tl.minimum(tl.maximum(tl.load(x_ptr + rows * 3 + 1, mask=mask, other=0.0), 0.0), 1.0)
        pz = tl.minimum(tl.maximum(tl.load(x_ptr + rows * 3 + 2, mask=mask, other=0.0), 0.0), 1.0)
        px = px * resf
        py = py * resf
        pz = pz * resf
        ix = tl.minimum(tl.floor(px).to(tl.int32), res - 1)
        iy = tl.minimum(tl.floor(py).to(tl.int32), res - 1)
        iz = tl.minimum(tl.floor(pz).to(tl.int32), res - 1)
        return ix, iy, iz, px - ix.to(tl.float32), py - iy.to(tl.float32), pz - iz.to(tl.float32)

    @triton.jit
    def corner(ix, iy, iz, fx, fy, fz, c: tl.constexpr, res, size, offset, dense, p1, p2):
        """Table row and trilinear weight of corner ``c`` (bits x, y, z) of the cell."""
        cx = c & 1
        cy = (c >> 1) & 1
        cz = (c >> 2) & 1
        gx = ix + cx
        gy = iy + cy
        gz = iz + cz
        wx = fx * cx + (1.0 - fx) * (1 - cx)
        wy = fy * cy + (1.0 - fy) * (1 - cy)
        wz = fz * cz + (1.0 - fz) * (1 - cz)
        stride = (res + 1).to(tl.int64)
        dense_index = gx.to(tl.int64) + gy.to(tl.int64) * stride + gz.to(tl.int64) * (
            stride * stride
        )
        hashed = gx.to(tl.uint32) ^ (gy.to(tl.uint32) * p1) ^ (gz.to(tl.uint32) * p2)
        hash_index = (hashed & (size - 1).to(tl.uint32)).to(tl.int64)
        return tl.where(dense != 0, dense_index, hash_index) + offset, wx * wy * wz

    @triton.jit
    def forward_kernel(
        x_ptr, table_ptr, out_ptr, res_ptr, size_ptr, offset_ptr, dense_ptr, n_points,
        N_LEVELS: tl.constexpr, F: tl.constexpr, BLOCK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        level = tl.program_id(1)
        rows = pid * BLOCK + tl.arange(0, BLOCK)
        mask = rows < n_points
        feat = tl.arange(0, F)
        res = tl.load(res_ptr + level)
        size = tl.load(size_ptr + level)
        offset = tl.load(offset_ptr + level)
        dense = tl.load(dense_ptr + level)
        p1 = tl.full([BLOCK], 2654435761, tl.uint32)
        p2 = tl.full([BLOCK], 805459861, tl.uint32)
        ix, iy, iz, fx, fy, fz = cell(x_ptr, rows, mask, res)
        acc = tl.zeros([BLOCK, F], dtype=tl.float32)
        for c in tl.static_range(8):
            index, w = corner(ix, iy, iz, fx, fy, fz, c, res, size, offset, dense, p1, p2)
            vals = tl.load(
                table_ptr + index[:, None] * F + feat[None, :], mask=mask[:, None], other=0.0
            )
            acc += w[:, None] * vals
        tl.store(
            out_ptr + rows[:, None] * (N_LEVELS * F) + level * F + feat[None, :], acc,
            mask=mask[:, None],
        )

    @triton.jit
    def backward_kernel(
        x_ptr, grad_out_ptr, grad_table_ptr, res_ptr, size_ptr, offset_ptr, dense_ptr, n_points,
        N_LEVELS: tl.constexpr, F: tl.constexpr, BLOCK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        level = tl.program_id(1)
        rows = pid * BLOCK + tl.arange(0, BLOCK)
        mask = rows < n_points
        feat = tl.arange(0, F)
        res = tl.load(res_ptr + level)
        size = tl.load(size_ptr + level)
        offset = tl.load(offset_ptr + level)
        dense = tl.load(dense_ptr + level)
        p1 = tl.full([BLOCK], 2654435761, tl.uint32)
        p2 = tl.full([BLOCK], 805459861, tl.uint32)
        ix, iy, iz, fx, fy, fz = cell(x_ptr, rows, mask, res)
        g = tl.load(
            grad_out_ptr + rows[:, None] * (N_LEVELS * F) + level * F + feat[None, :],
            mask=mask[:, None], other=0.0,
        )
        for c in tl.static_range(8):
            index, w = corner(ix, iy, iz, fx, fy, fz, c, res, size, offset, dense, p1, p2)
            tl.atomic_add(
                grad_table_ptr + index[:, None] * F + feat[None, :], w[:, None] * g,
                mask=mask[:, None], sem="relaxed",
            )

    return forward_kernel, backward_kernel


_TRITON_BLOCK = 128


class _TritonHashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, table: Tensor, layout: LevelLayout) -> Tensor:
        forward_kernel, _ = _triton_kernels()
        x = x.contiguous().float()
        table_c = table.contiguous()
        n, n_levels, n_feat = x.shape[0], len(layout.resolutions), table.shape[1]
        res, sizes, offsets, dense = _layout_tensors(layout, x.device)
        out = torch.empty(n, n_levels * n_feat, device=x.device, dtype=torch.float32)
        grid = (max(1, math.ceil(n / _TRITON_BLOCK)), n_levels)
        if n > 0:
            forward_kernel[grid](
                x, table_c, out, res, sizes, offsets, dense.to(torch.int32), n,
                N_LEVELS=n_levels, F=n_feat, BLOCK=_TRITON_BLOCK, enable_fp_fusion=False,
            )
        ctx.save_for_backward(x)
        ctx.layout = layout
        ctx.table_shape = table.shape
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        _, backward_kernel = _triton_kernels()
        (x,) = ctx.saved_tensors
        layout = ctx.layout
        n, n_levels = x.shape[0], len(layout.resolutions)
        n_feat = ctx.table_shape[1]
        res, sizes, offsets, dense = _layout_tensors(layout, x.device)
        grad_table = torch.zeros(ctx.table_shape, device=x.device, dtype=torch.float32)
        grid = (max(1, math.ceil(n / _TRITON_BLOCK)), n_levels)
        if n > 0:
            backward_kernel[grid](
                x, grad_out.contiguous().float(), grad_table, res, sizes, offsets,
                dense.to(torch.int32), n, N_LEVELS=n_levels, F=n_feat, BLOCK=_TRITON_BLOCK,
                enable_fp_fusion=False,
            )
        return None, grad_table, None


def encode_triton(x: Tensor, table: Tensor, layout: LevelLayout) -> Tensor:
    """The encoding with the fused Triton kernels (CUDA, float32).

    Same arguments and result as :func:`encode_reference`.

    Note:
        Differentiable with respect to ``table`` only (backward = atomic adds); the gradient
        with respect to ``x`` is not computed (it is ``None``).
    """
    if not x.is_cuda:
        raise ValueError("encode_triton: x must be a CUDA tensor (use backend='torch' on CPU)")
    if not triton_available():
        raise RuntimeError("encode_triton: triton is not installed (pip install triton)")
    if table.dtype != torch.float32:
        raise ValueError(f"encode_triton: table must be float32, got {table.dtype}")
    return _TritonHashEncode.apply(x, table, layout)


# --------------------------------------------------------------------------------------------
# The module.
# --------------------------------------------------------------------------------------------


class HashGrid(nn.Module):
    """Multiresolution hash encoding as an ``nn.Module``: ``[N, 3]`` in ``[0,1]^3`` -> ``[N, L F]``.

    Args:
        config: the encoding's settings, including its backend.
    """

    def __init__(self, config: HashGridConfig = HashGridConfig()):
        super().__init__()
        self.config = config
        self.layout = level_layout(config)
        self._tcnn = _make_tcnn(config) if config.backend == "tcnn" else None
        if self._tcnn is None:
            table = torch.empty(self.layout.total, config.n_features_per_level)
            nn.init.uniform_(table, -config.init_scale, config.init_scale)
            self.table = nn.Parameter(table)

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def resolve_backend(self, x: Tensor) -> str:
        """The backend used for inputs like ``x`` (``"auto"`` resolved)."""
        if self._tcnn is not None:
            return "tcnn"
        if self.config.backend == "auto":  # Triton's backward adds atomically: not deterministic
            deterministic = torch.are_deterministic_algorithms_enabled()
            return "triton" if x.is_cuda and triton_available() and not deterministic else "torch"
        return self.config.backend

    def forward(self, x: Tensor, backend: str | None = None) -> Tensor:
        """Encodes ``x`` ``[..., 3]`` (in ``[0, 1]``) to ``[..., L F]`` float32.

        ``backend`` overrides the config for this call (``"torch"`` gives position gradients).
        """
        shape = x.shape[:-1]
        flat = x.reshape(-1, 3)
        backend = backend or self.resolve_backend(flat)
        if backend == "tcnn":
            if self._tcnn is None:
                raise ValueError("HashGrid: backend 'tcnn' was not selected at construction")
            out = self._tcnn(flat).float()
        elif backend == "triton":
            out = encode_triton(flat, self.table, self.layout)
        elif backend == "torch":
            out = encode_reference(flat, self.table, self.layout)
        else:
            raise ValueError(f"HashGrid.forward: unknown backend {backend!r}")
        return out.reshape(*shape, self.output_dim)


def tcnn_available() -> bool:
    """Whether tinycudann imports (it is never imported at sdlib's import time)."""
    try:
        import tinycudann  # noqa: F401
    except Exception:  # ImportError, or a CUDA error at import
        return False
    return True


def _make_tcnn(config: HashGridConfig) -> nn.Module:
    try:
        import tinycudann as tcnn
    except ImportError as error:
        raise ImportError(
            "HashGridConfig.backend='tcnn' needs tinycudann: build it from "
            "https://github.com/NVlabs/tiny-cuda-nn (bindings/torch), or use 'triton'/'torch'"
        ) from error
    return tcnn.Encoding(
        3,
        {
            "otype": "HashGrid",
            "n_levels": config.n_levels,
            "n_features_per_level": config.n_features_per_level,
            "log2_hashmap_size": config.log2_table_size,
            "base_resolution": config.base_resolution,
            "per_level_scale": config.growth_factor,
        },
    )
