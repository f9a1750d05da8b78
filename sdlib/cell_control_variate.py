r"""A control variate across (camera, timestep) cells: SAGA / SVRG for score distillation.

Why: at ShapeZoo θs about half of SDS's θ-gradient variance lies *between* cameras and
timesteps (0.46 of it: ``notes/claims_h200``), and no control variate on the noise ``ε`` can
touch that part; SSD's baseline, μ(t) and the per-cell oracle act only on the other half
(``notes/variance_reduction_bound.md``). This module attacks the between-cell part.

**The estimator.** Cut the draws ``(camera, t)`` into cells ``i`` (azimuth bins × timestep
bins), cell ``i`` drawn with probability :math:`p_i` (known exactly: azimuth and ``t`` are
uniform and independent). Keep a table :math:`b_i` of θ-gradients, one per cell, built from
earlier steps' gradients in that cell. A draw in cell :math:`c` with per-sample θ-gradient
:math:`G` (the gradient the step would take if the whole batch were this draw) contributes

.. math::

    \tilde G = G - b_c + \sum_j p_j\, b_j,

and the step uses the batch mean :math:`\frac1B \sum_k \tilde G_k`. Given the past, the table
is fixed and :math:`\mathbb{E}[b_c] = \sum_j p_j b_j`, so :math:`\mathbb{E}[\tilde G] =
\mathbb{E}[G]`: **unbiased whatever the table holds** (a zero table is plain SDS). Stratified
draws keep each sample's marginal, so they stay unbiased too.

**What it removes.** With :math:`m_i` the mean gradient in cell ``i``,
:math:`\operatorname{Var}\tilde G = \mathbb{E}_i \operatorname{Var}(G \mid i) +
\operatorname{Var}_i(m_i - b_i)`: the between-cell spread :math:`\operatorname{Var}_i(m_i)` is
replaced by the table's error. A table that tracks the cell means removes the between-cell part;
its noise (an average over past visits, set by ``decay``) and its lag while θ moves come back
as variance. ``notes/variance_reduction_bound.md`` predicts, from measured numbers, that with
antithetic pairs it could reach ≈ 0.38× SDS's variance per UNet evaluation if it removes 80% of
the between-cell part; that fraction has to be measured along real runs.

**Costs.** No extra UNet call. The correction needs only the batch's mean gradient
:math:`\bar G` (the plain step's); the per-sample :math:`G_k` feed the table's update. One
backward gives them all: :meth:`sdlib.train.Trainer.theta_gradient` renders the batch once with
per-view aliases of θ (:mod:`sdlib.nerf.per_view`), so each render's gradient is its aliases'.
An antithetic pair shares its render, its ``t`` and so its cell: the table learns the pair's
mean as one visit. (Before, each view was rendered, encoded and back-propagated in its own
graph: exact, but launch-bound on a GPU, 121 ms per batch against SDS's 38 on the H200.) The
table holds ``cells × |θ|`` floats (48 cells × a ShapeZoo field of ~1.6M parameters ≈ 300 MB).

>>> cv = CellControlVariate(CellCVConfig(enabled=True, azimuth_bins=2, t_bins=2), [(3,)],
...                         azimuth_range=(-180.0, 180.0), num_train_timesteps=1000)
>>> cv.cells(torch.tensor([-90.0, 90.0]), torch.tensor([100, 900])).tolist()
[0, 3]
>>> cv.probabilities(lo=0, hi=999).tolist()
[0.25, 0.25, 0.25, 0.25]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["CellCVConfig", "CellControlVariate"]


@dataclass(frozen=True)
class CellCVConfig:
    """The cell control variate (:class:`CellControlVariate`); off unless ``enabled``."""

    enabled: bool = False
    """Use it (``TrainConfig.cell_cv``): per-sample backward passes and a gradient table."""
    azimuth_bins: int = 8
    """Equal bins over the camera distribution's azimuth range."""
    t_bins: int = 6
    """Equal bins over the prior's timesteps ``[0, T)``."""
    decay: float = 0.3
    """Table update ``b_c ← (1 − decay) b_c + decay G`` (the first visit sets ``b_c = G``):
    small averages more visits (less noise, more lag)."""

    def __post_init__(self) -> None:
        for name in ("azimuth_bins", "t_bins"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CellCVConfig.{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"CellCVConfig.decay={self.decay} must be in (0, 1]")

    @property
    def n_cells(self) -> int:
        return self.azimuth_bins * self.t_bins


class CellControlVariate:
    """The table :math:`b` and the correction :math:`\\tilde G = G - b_c + \\sum_j p_j b_j`.

    Args:
        config: bins and decay.
        shapes: the shapes of the parameters θ (one table slice per parameter).
        azimuth_range: the camera distribution's azimuth range, degrees (``CameraConfig``).
        num_train_timesteps: the prior's ``T``.
        device: of the table.
    """

    def __init__(self, config: CellCVConfig, shapes: Sequence[Sequence[int]],
                 azimuth_range: tuple[float, float], num_train_timesteps: int,
                 device: torch.device | str = "cpu") -> None:
        self.config = config
        self.a0, self.a1 = (float(a) for a in azimuth_range)
        if not self.a1 > self.a0:
            raise ValueError(f"CellControlVariate: azimuth_range={azimuth_range} is empty")
        self.T = int(num_train_timesteps)
        self.shapes = [tuple(int(d) for d in shape) for shape in shapes]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.flat = torch.zeros(config.n_cells, sum(self.sizes), device=device)
        """``[cells, P]``: the table, all parameters flattened and concatenated (P = |θ|)."""
        self.table = self.unflatten(self.flat)
        """Per parameter, ``[cells, *shape]`` views of :attr:`flat`."""
        self.seen = torch.zeros(config.n_cells, dtype=torch.bool)

    def unflatten(self, flat: Tensor) -> list[Tensor]:
        """Per-parameter views ``[..., *shape]`` of ``flat`` ``[..., P]``."""
        lead = flat.shape[:-1]
        return [part.view(*lead, *shape) for part, shape in
                zip(flat.split(self.sizes, dim=-1), self.shapes)]

    # ------------------------------------------------------------------ cells
    def cells(self, azimuth: Tensor, t: Tensor) -> Tensor:
        """Cell index ``[B]`` (``azimuth_bin · t_bins + t_bin``) of draws with ``azimuth``
        ``[B]`` (degrees, any wrapping) and integer timesteps ``t`` ``[B]``."""
        cfg = self.config
        span = self.a1 - self.a0
        az = azimuth.detach().double().cpu()
        az = self.a0 + torch.remainder(az - self.a0, 360.0) if span >= 360.0 else az
        a_bin = ((az - self.a0) / span * cfg.azimuth_bins).floor().long()
        t_bin = (t.detach().cpu().long() * cfg.t_bins) // self.T
        return (a_bin.clamp(0, cfg.azimuth_bins - 1) * cfg.t_bins
                + t_bin.clamp(0, cfg.t_bins - 1))

    def probabilities(self, lo: int, hi: int) -> Tensor:
        """``[cells]`` probabilities of the cells when azimuth is uniform over its range and
        ``t`` uniform over the integers ``lo..hi`` (:func:`sdlib.distill.timestep_bounds`)."""
        cfg = self.config
        if not 0 <= lo <= hi < self.T:
            raise ValueError(f"CellControlVariate.probabilities: need 0 <= lo <= hi < "
                             f"{self.T}, got lo={lo}, hi={hi}")
        t = torch.arange(lo, hi + 1)
        p_t = torch.bincount((t * cfg.t_bins) // self.T, minlength=cfg.t_bins).double()
        p_t = p_t / p_t.sum()
        p_a = torch.full((cfg.azimuth_bins,), 1.0 / cfg.azimuth_bins, dtype=torch.float64)
        return (p_a[:, None] * p_t[None, :]).flatten()

    # ------------------------------------------------------------------ the estimator
    def correct(self, mean: Tensor, cells: Tensor, probabilities: Tensor) -> Tensor:
        r"""The batch mean of :math:`\tilde G_k = G_k - b_{c_k} + \sum_j p_j b_j`:
        :math:`\bar G - \frac1B \sum_k b_{c_k} + \sum_j p_j b_j`.

        Args:
            mean: ``[P]`` the batch's mean gradient :math:`\bar G = \frac1B \sum_k G_k`,
                the parameters flattened and concatenated in order (the plain step's gradient:
                the correction needs no per-sample gradient).
            cells: ``[B]`` the samples' cells (:meth:`cells`).
            probabilities: ``[cells]`` (:meth:`probabilities`).

        Returns:
            ``[P]`` the corrected mean gradient (:meth:`unflatten` for per-parameter views; the
            table is not changed).
        """
        if mean.shape != self.flat.shape[1:]:
            raise ValueError(f"CellControlVariate.correct: mean {tuple(mean.shape)}, the table "
                             f"has {self.flat.shape[1]} entries per cell")
        p = probabilities.to(device=self.flat.device, dtype=self.flat.dtype)
        return mean - self.flat[cells.to(self.flat.device)].mean(0) + p @ self.flat

    def update(self, grads: Tensor, cells: Tensor) -> None:
        r"""Folds visits into the table (after :meth:`correct` used it), in order:
        :math:`b_c \leftarrow (1 - \beta) b_c + \beta G` (the first visit sets :math:`b_c = G`).

        Args:
            grads: ``[V, P]`` the visits' gradients, flattened as ``mean`` of :meth:`correct`
                (e.g. :meth:`sdlib.nerf.per_view.ViewParameters.flat_gradients`).
            cells: ``[V]`` their cells; a cell visited twice is updated twice, in order.
        """
        beta = self.config.decay
        cells = cells.detach().cpu().long()
        if grads.dim() != 2 or grads.shape != (len(cells), self.flat.shape[1]):
            raise ValueError(f"CellControlVariate.update: grads {tuple(grads.shape)}, need "
                             f"[{len(cells)}, {self.flat.shape[1]}]: one row per cell visited")
        occurrence = torch.zeros_like(cells)  # a visit's rank among earlier visits to its cell
        for k in range(1, len(cells)):
            occurrence[k] = int((cells[:k] == cells[k]).sum())
        device = self.flat.device
        for rank in range(int(occurrence.max()) + 1 if len(cells) else 0):
            rows = (occurrence == rank).nonzero().flatten()  # distinct cells
            c = cells[rows]
            c_d, keep = c.to(device), self.seen[c].to(device)[:, None]
            new = grads.detach()[rows.to(grads.device)].to(device)
            self.flat[c_d] = torch.where(keep, torch.lerp(self.flat[c_d], new, beta), new)
            self.seen[c] = True

    @property
    def filled(self) -> float:
        """The fraction of cells visited at least once."""
        return float(self.seen.float().mean())

    def state_dict(self) -> dict[str, Any]:
        """Per-parameter tables ``[cells, *shape]`` and the visited flags."""
        return {"table": [t.clone() for t in self.table], "seen": self.seen.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["table"]) != len(self.table) or any(
                a.shape != b.shape for a, b in zip(state["table"], self.table)):
            raise ValueError("CellControlVariate.load_state_dict: the table's shapes differ "
                             "(another field or other bins)")
        for t, s in zip(self.table, state["table"]):
            t.copy_(s)
        self.seen.copy_(state["seen"])

