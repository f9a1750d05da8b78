r"""Per-view θ-gradients from one batched render: each view's points see their own alias of θ.

Why: the cell control variate (:mod:`sdlib.cell_control_variate`) needs, for each view ``k``
of a batch, the θ-gradient :math:`G_k` that view alone gives. One backward per view through its
own render graph is exact but launch-bound on a GPU: on the H200 the cell design took 121 ms per
batch against SDS's 38 ms (``notes/cell_cv_h200``), and the CPU profiler counts 5,627 against
1,783 operator calls per batch, the same ratio (3.2×). With the batched render below the same
design costs 1.21× SDS's time per batch (median over 8 prompts, each alone on an H200).

How: before the render, view ``k`` gets aliases :math:`\theta_k` = ``p.view_as(p)`` of every
parameter ``p``: the same storage and values, but distinct nodes of the autograd graph. The
renderer evaluates the samples of view ``k``'s rays with :math:`\theta_k`
(``torch.func.functional_call``; a view's samples are contiguous, since rays are ordered camera
by camera and both samplers pack samples ray by ray), and the background of its rays likewise.
The sampler, the compositing, the VAE encoder and the prior stay batched. For a batch loss
:math:`L = \sum_k L_k` in which :math:`L_k` depends on view ``k``'s pixels only,

.. math::

    \frac{\partial L}{\partial \theta_k} = \frac{\partial L_k}{\partial \theta},
    \qquad \sum_k \frac{\partial L}{\partial \theta_k} = \frac{\partial L}{\partial \theta},

so **one** backward gives every view's gradient and, summed, the batch's. The extra cost is
``B`` small field calls in place of one (the hash encoding and two MLPs, forward and backward),
not ``B`` renders, encodes and backward passes.

>>> from sdlib.cameras import eval_cameras
>>> from sdlib.nerf.field import RadianceField, FieldConfig
>>> from sdlib.nerf.hashgrid import HashGridConfig
>>> from sdlib.nerf.render import RenderConfig, render_cameras
>>> field = RadianceField(FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=10)))
>>> views = ViewParameters(field, list(field.parameters()), n_views=2, rays_per_view=8 * 8)
>>> out = render_cameras(field, eval_cameras(2), 8, 8, config=RenderConfig(n_samples=16),
...                      views=views)
>>> per_view = views.gradients(out.rgb[1].sum())  # [view][parameter]
>>> float(per_view[0][0].abs().max()), per_view[1][0].abs().max() > 0
(0.0, tensor(True))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["ViewParameters"]


class _Method(nn.Module):
    """Calls one of the field's methods under ``functional_call`` (which calls ``forward``)."""

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field

    def forward(self, method: str, x: Tensor):
        f = self.field
        if method == "forward":  # the eager heads: a compiled head would recompile per alias
            return f._full_head_eager(f._encode(x), x)
        return getattr(f, method)(x)


class ViewParameters:
    """Aliases of the field's parameters, one set per view, and the per-view gradients.

    Args:
        field: the :class:`~sdlib.nerf.field.RadianceField`.
        params: the parameters θ (a list in the caller's order, e.g. the optimizer's), each a
            parameter of ``field``; :meth:`gradients` returns them in this order.
        n_views: ``B``, the cameras of the render.
        rays_per_view: ``H · W``, the rays of one camera (rays are ordered camera by camera).
    """

    def __init__(self, field: nn.Module, params: Sequence[Tensor], n_views: int,
                 rays_per_view: int):
        if n_views < 1 or rays_per_view < 1:
            raise ValueError(f"ViewParameters: n_views={n_views} and rays_per_view="
                             f"{rays_per_view} must be >= 1")
        names = {id(p): name for name, p in field.named_parameters()}
        missing = [tuple(p.shape) for p in params if id(p) not in names]
        if missing:
            raise ValueError(f"ViewParameters: parameters of shapes {missing} are not the "
                             "field's; per-view gradients cover the field's parameters only")
        self.n_views, self.rays_per_view = int(n_views), int(rays_per_view)
        self._call = _Method(field)
        self._names = ["field." + names[id(p)] for p in params]
        self.aliases = [[p.view_as(p) for p in params] for _ in range(self.n_views)]
        """``[view][parameter]``: the tensors view ``k``'s samples are evaluated with."""

    def _segments(self, ray_ids: Tensor) -> list[tuple[int, int, int]]:
        """``(view, start, end)`` of the contiguous runs of each view in ``ray_ids`` ``[N]``
        (non-decreasing global ray indices); one host sync."""
        # nerfacc's packed ray indices are int32; searchsorted wants one dtype
        view = torch.div(ray_ids.long(), self.rays_per_view, rounding_mode="floor")
        edges = torch.arange(self.n_views + 1, device=view.device)
        bounds = torch.searchsorted(view.contiguous(), edges)
        ordered = (view[1:] >= view[:-1]).all() if view.numel() > 1 else view.new_ones((),
                                                                                    dtype=bool)
        host = torch.cat([bounds, ordered.long()[None]]).tolist()
        if not host[-1] or (view.numel() and host[self.n_views] != view.numel()):
            raise ValueError("ViewParameters: the samples' rays must be ordered camera by "
                             f"camera, with ray ids below {self.n_views * self.rays_per_view}")
        return [(k, host[k], host[k + 1]) for k in range(self.n_views) if host[k + 1] > host[k]]

    def call(self, method: str, x: Tensor, ray_ids: Tensor):
        """The field's ``method`` (``"forward"``, ``"density"``, ``"normals"``,
        ``"background"``) at ``x`` ``[N, ...]`` whose rows belong to the global rays
        ``ray_ids`` ``[N]``: each view's rows with its own aliases, results concatenated."""
        parts = []
        for k, s, e in self._segments(ray_ids):
            params = dict(zip(self._names, self.aliases[k]))
            parts.append(functional_call(self._call, params, (method, x[s:e])))
        if not parts:  # no samples at all: the plain call keeps shapes and dtypes right
            return self._call(method, x)
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(p) for p in zip(*parts))
        return torch.cat(parts)

    def gradients(self, loss: Tensor, retain_graph: bool = False) -> list[list[Tensor]]:
        """``[view][parameter]`` gradients of ``loss`` with respect to each view's aliases
        (zeros where a view does not reach a parameter); their sum over views is the
        gradient of ``loss`` with respect to θ."""
        flat = [a for view in self.aliases for a in view]
        grads = torch.autograd.grad(loss, flat, retain_graph=retain_graph, allow_unused=True)
        n = len(self._names)
        return [[torch.zeros_like(a) if g is None else g
                 for a, g in zip(flat[k * n:(k + 1) * n], grads[k * n:(k + 1) * n])]
                for k in range(self.n_views)]

    def flat_gradients(self, loss: Tensor, retain_graph: bool = False) -> Tensor:
        """:meth:`gradients` as one ``[views, P]`` tensor: each view's gradients flattened and
        concatenated in the parameters' order (one copy)."""
        per_view = self.gradients(loss, retain_graph=retain_graph)
        return torch.cat([g.reshape(-1) for view in per_view for g in view]).view(
            self.n_views, -1)
