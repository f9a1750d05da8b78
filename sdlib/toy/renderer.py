r"""A differentiable 2-D "renderer": parameters $\theta$ and a random camera $c$ to points.

Two renderers, both $x = g(\theta, c)$ with a camera $c$ drawn each step, like the
text-to-3D trainer's random views:

- :func:`render_particles`: $\theta \in \mathbb{R}^{K\times 2}$ are $K$ points, the camera is
  a rotation by angle $c$: $x_k = R(c)\,\theta_k$.
- :func:`render_affine`: a fixed template $P \in \mathbb{R}^{K\times 2}$ moved by
  $\theta = (A, b) \in \mathbb{R}^{2\times 2}\times\mathbb{R}^2$: $x_k = R(c)(A P_k + b)$.

The update to $\theta$ is the pull-back of a gradient on $x$ through $g$ (DESIGN.md §2),
``loss = 0.5 * ||x - (x - grad).detach()||^2``: see :func:`pullback_loss`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rotation(angle: Tensor) -> Tensor:
    r"""Rotation matrices $R(c) = [[\cos c, -\sin c], [\sin c, \cos c]]$, ``[N] -> [N, 2, 2]``."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def sample_cameras(
    n: int,
    spread: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``n`` camera angles uniform in ``[-spread, spread]`` (radians), ``[n]``."""
    return (2 * torch.rand(n, generator=generator, dtype=dtype) - 1) * spread


def render_particles(theta: Tensor, camera: Tensor) -> Tensor:
    r"""$x_{n,k} = R(c_n)\,\theta_k$.

    Args:
        theta: ``[K, 2]`` shared parameters, or ``[N, K, 2]`` one copy per sample (to get
            per-sample gradients by a single backward).
        camera: Angles ``[N]``.

    Returns:
        Rendered points ``[N, K, 2]``.
    """
    rot = rotation(camera)  # [N, 2, 2]
    if theta.dim() == 2:
        return torch.einsum("nij,kj->nki", rot, theta)
    return torch.einsum("nij,nkj->nki", rot, theta)


def render_affine(theta: Tensor, template: Tensor, camera: Tensor) -> Tensor:
    r"""$x_{n,k} = R(c_n)(A P_k + b)$ with $\theta = [A_{11}, A_{12}, A_{21}, A_{22}, b_1, b_2]$.

    Args:
        theta: ``[6]`` or ``[N, 6]``.
        template: Template points ``[K, 2]``.
        camera: Angles ``[N]``.

    Returns:
        ``[N, K, 2]``.
    """
    theta = theta.expand(camera.shape[0], 6) if theta.dim() == 1 else theta
    mat = theta[:, :4].reshape(-1, 2, 2)
    pts = torch.einsum("nij,kj->nki", mat, template) + theta[:, None, 4:]
    return torch.einsum("nij,nkj->nki", rotation(camera), pts)


def pullback_loss(x: Tensor, grad: Tensor) -> Tensor:
    r"""$\frac12\|x - \mathrm{sg}(x - g)\|^2$, whose gradient in $x$ is ``grad`` (same shape).

    Summed over every element, so per-sample gradients of a batch of independent renders
    come out of one backward.
    """
    return 0.5 * (x - (x - grad).detach()).pow(2).sum()
