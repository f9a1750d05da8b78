"""The radiance field: hash-grid density and colour MLPs with a density blob, and a background.

For a world point ``x`` in the box ``[-bound, bound]^3`` (mapped to ``[0, 1]^3`` for the
encoding ``h``)::

    features = MLP_density(h((x + bound) / (2 bound)))        # [1 + geometry features]
    sigma    = softplus(features[0] + b(x))                    # density >= 0
    b(x)     = blob_density * (1 - ||x|| / blob_radius)        # Magic3D / threestudio blob
             + floor_density * sigmoid((floor_z - x_z) / floor_width)   # optional ground plane
    rgb      = sigmoid(MLP_colour(features[1:]))               # view-independent albedo
    normal   = -grad sigma / ||grad sigma||                    # outward

The blob makes the initial field a soft ball at the origin, which score distillation needs to
start from (DreamFusion Sec. 3.1, Magic3D). A **negative** ``blob_density`` inverts it
(threestudio's scene setting, ``density_blob_scale: -10``): the bias is negative inside
``blob_radius`` and grows outward, so the field starts empty around cameras placed inside the
scene and dense towards the box walls (:data:`sdlib.scene_preset.SCENE_FIELD`).

Normals come from central finite differences of the density (any hash-grid backend; default)
or from autograd (analytic; the torch backend).
Points outside the box get zero density.

>>> field = RadianceField(FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=10)))
>>> sigma, rgb = field(torch.zeros(4, 3))
>>> sigma.shape, rgb.shape
(torch.Size([4]), torch.Size([4, 3]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdlib.nerf.hashgrid import HashGrid, HashGridConfig

__all__ = ["FieldConfig", "BackgroundConfig", "Background", "RadianceField", "trunc_exp"]


@dataclass(frozen=True)
class BackgroundConfig:
    """The colour seen where rays leave the scene."""

    kind: Literal["solid", "mlp"] = "solid"
    """``"solid"``: one fixed colour; ``"mlp"``: a small MLP of the view direction."""
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """The solid colour (RGB in [0, 1])."""
    hidden_dim: int = 32
    """Width of the background MLP."""
    learnable_color: bool = False
    """Whether the solid colour is a trainable parameter."""


@dataclass(frozen=True)
class FieldConfig:
    """Settings of :class:`RadianceField` (threestudio's implicit-volume defaults)."""

    bound: float = 1.0
    """The scene is the box ``[-bound, bound]^3``; density is zero outside."""
    grid: HashGridConfig = field(default_factory=HashGridConfig)
    """The hash-grid encoding."""
    hidden_dim: int = 64
    """Width of the density and colour MLPs."""
    n_hidden_layers: int = 1
    """Hidden layers of the density MLP (the colour MLP has one)."""
    geo_feat_dim: int = 15
    """Geometry features passed from the density MLP to the colour MLP."""
    density_activation: Literal["softplus", "trunc_exp"] = "softplus"
    """Activation turning the raw density into ``sigma >= 0``."""
    blob_density: float = 10.0
    """Height of the initial density blob (added before the activation); 0 disables it; < 0 is
    the inverted blob of scenes (empty inside ``blob_radius``, denser outward)."""
    blob_radius: float = 0.5
    """Radius where the blob's bias crosses zero (> 0)."""
    floor_z: float | None = None
    """An initial ground plane for scenes: below this height the density bias gains
    ``floor_density`` (a logistic step of width ``floor_width``), so the field starts with a
    floor under cameras that the inverted blob would otherwise leave empty. ``None``: none (the
    scene preset's). A control, not a fix: on the street the untrained floor alone scores a
    depth Pearson of 0.88 and SDS erodes it (``notes/scenes_cpu/README.md``)."""
    floor_density: float = 20.0
    """Height of the floor's bias (added before the activation)."""
    floor_width: float = 0.02
    """Width of the floor's logistic step, world units (> 0)."""
    normals: Literal["finite_difference", "analytic"] = "finite_difference"
    """How normals are computed from the density gradient."""
    normal_eps: float = 1e-2
    """Step of the central finite differences, world units."""
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    """The background model."""
    compile_mlp: bool = False
    """``torch.compile`` (dynamic shapes) the MLPs, blob and activations into few kernels; the
    encoding stays outside. Saves host launch overhead on CUDA; first calls compile."""

    def __post_init__(self) -> None:
        if self.bound <= 0:
            raise ValueError(f"FieldConfig.bound={self.bound}: must be > 0")
        if self.blob_radius <= 0:
            raise ValueError(f"FieldConfig.blob_radius={self.blob_radius}: must be > 0")
        if self.floor_width <= 0:
            raise ValueError(f"FieldConfig.floor_width={self.floor_width}: must be > 0")
        if self.density_activation not in ("softplus", "trunc_exp"):
            raise ValueError(
                f"FieldConfig.density_activation={self.density_activation!r}: accepted "
                "'softplus', 'trunc_exp'"
            )
        if self.normals not in ("finite_difference", "analytic"):
            raise ValueError(
                f"FieldConfig.normals={self.normals!r}: accepted 'finite_difference', 'analytic'"
            )


class _TruncExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: Tensor) -> Tensor:
    """``exp(x)`` whose gradient is computed with ``x`` clamped to 15 (Instant-NGP / torch-ngp)."""
    return _TruncExp.apply(x)


class Background(nn.Module):
    """Background colour for each ray: ``[..., 3]`` unit directions -> ``[..., 3]`` RGB."""

    def __init__(self, config: BackgroundConfig = BackgroundConfig()):
        super().__init__()
        self.config = config
        if config.kind == "solid":
            color = torch.tensor(config.color, dtype=torch.float32)
            if config.learnable_color:
                self.color = nn.Parameter(color)
            else:
                self.register_buffer("color", color)
        elif config.kind == "mlp":
            self.mlp = nn.Sequential(
                nn.Linear(3, config.hidden_dim), nn.ReLU(), nn.Linear(config.hidden_dim, 3)
            )
        else:
            raise ValueError(f"BackgroundConfig.kind={config.kind!r}: accepted 'solid', 'mlp'")

    def forward(self, directions: Tensor) -> Tensor:
        if self.config.kind == "solid":
            return self.color.to(directions).expand(*directions.shape[:-1], 3)
        return torch.sigmoid(self.mlp(directions))


def _mlp(n_in: int, hidden: int, n_out: int, n_hidden_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class RadianceField(nn.Module):
    """Hash-grid NeRF: density ``sigma(x)``, albedo ``rgb(x)``, normals, and a background.

    All methods take world points ``x`` ``[..., 3]`` and return ``[...]`` or ``[..., 3]``.
    """

    def __init__(self, config: FieldConfig = FieldConfig()):
        super().__init__()
        self.config = config
        self.encoding = HashGrid(config.grid)
        self.density_mlp = _mlp(
            self.encoding.output_dim, config.hidden_dim, 1 + config.geo_feat_dim,
            config.n_hidden_layers,
        )
        self.color_mlp = _mlp(config.geo_feat_dim, config.hidden_dim, 3, 1)
        self.background = Background(config.background)
        self._density_head = self._density_head_eager
        self._full_head = self._full_head_eager
        if config.compile_mlp:
            self._density_head = torch.compile(self._density_head_eager, dynamic=True)
            self._full_head = torch.compile(self._full_head_eager, dynamic=True)

    def _density_head_eager(self, encoded: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Raw MLP output -> density (with blob, activation, zero outside) and geometry."""
        features = self.density_mlp(encoded)
        raw = features[..., 0]
        if self.config.blob_density != 0.0:
            raw = raw + self.config.blob_density * (
                1.0 - x.norm(dim=-1) / self.config.blob_radius
            )
        if self.config.floor_z is not None:
            raw = raw + self.config.floor_density * torch.sigmoid(
                (self.config.floor_z - x[..., 2]) / self.config.floor_width
            )
        if self.config.density_activation == "softplus":
            sigma = F.softplus(raw)
        else:
            sigma = trunc_exp(raw)
        inside = (x.abs() <= self.config.bound).all(dim=-1)
        return torch.where(inside, sigma, torch.zeros_like(sigma)), features[..., 1:]

    def _full_head_eager(self, encoded: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        sigma, geo = self._density_head_eager(encoded, x)
        return sigma, torch.sigmoid(self.color_mlp(geo))

    def _encode(self, x: Tensor, backend: str | None = None) -> Tensor:
        bound = self.config.bound
        return self.encoding((x + bound) / (2.0 * bound), backend=backend)

    def density(self, x: Tensor) -> Tensor:
        """``[...]`` density ``sigma >= 0`` at world points ``x`` ``[..., 3]``."""
        return self._density_head(self._encode(x), x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Density ``[...]`` and albedo ``[..., 3]`` (in [0, 1]) at world points ``[..., 3]``."""
        return self._full_head(self._encode(x), x)

    def normals(self, x: Tensor) -> Tensor:
        """``[..., 3]`` unit outward normals ``-grad sigma / ||grad sigma||`` at ``x``.

        Note:
            ``"finite_difference"``: central differences with step ``normal_eps`` (six extra
            density evaluations; differentiable with any backend). ``"analytic"``: autograd
            through the torch hash-grid backend (``create_graph`` while training).
        """
        if self.config.normals == "analytic":
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True) if not x.requires_grad else x
                sigma = self._density_head(self._encode(xg, backend="torch"), xg)[0]
                (grad,) = torch.autograd.grad(
                    sigma.sum(), xg, create_graph=torch.is_grad_enabled() and self.training
                )
        else:
            eps = self.config.normal_eps
            offsets = torch.eye(3, device=x.device, dtype=x.dtype) * eps  # [3, 3]
            points = torch.cat([x[..., None, :] + offsets, x[..., None, :] - offsets], dim=-2)
            sigma = self.density(points)  # [..., 6]
            grad = (sigma[..., :3] - sigma[..., 3:]) / (2.0 * eps)
        return -F.normalize(grad, dim=-1, eps=1e-12)
