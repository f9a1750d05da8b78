r"""Monte-Carlo estimators, control variates and Stein's identity.

This module is the tutorial for notebooks 10 and 11; SteinDreamer's SSD (Wang et al.,
"SteinDreamer: Variance Reduction for Text-to-3D Score Distillation via Stein Identity",
arXiv 2401.00604) is built from the two ideas below.

**Control variates.** To estimate $\mathbb{E}[f(X)]$ from samples $X_1..X_N$ we may use any
$h$ with known mean $\mathbb{E}[h] = 0$ and the estimator

$$\hat{F}_\mu = \frac{1}{N}\sum_i \big(f(X_i) - \mu \odot h(X_i)\big),$$

which is unbiased for every $\mu$. Its per-sample second moment
$\mathbb{E}\|f - \mu \odot h\|^2$ is a parabola in $\mu$, minimised (per reduced group of
coordinates) by

$$\mu^* = \frac{\mathbb{E}[f\,h]}{\mathbb{E}[h^2]}
\quad\text{(second-moment form)},\qquad
\mu^*_{\mathrm{cov}} = \frac{\mathrm{Cov}(f, h)}{\mathrm{Var}(h)}
\quad\text{(covariance form)}.$$

The two agree when $\mathbb{E}[h] = 0$ exactly; on a finite sample they differ by the
sample mean of $h$. At the variance-optimal coefficient the variance is
$\mathrm{Var}(f)\,(1 - \rho^2)$, with $\rho$ the correlation of $f$ and $h$ (the "$1-\rho^2$
law", checked in notebook 10). ``reduce`` chooses how many coefficients there are: one
("scalar"), one per channel (dim 1 of a sample ``[N, C, ...]``: "channel"), or one per
element of the event ("element").

**Stein's identity for a Gaussian.** In score distillation, for fixed render $x$ and time $t$,
$x_t = \alpha_t x + \sigma_t \varepsilon$ with $\varepsilon \sim \mathcal{N}(0, I)$, i.e.
$x_t \sim q = \mathcal{N}(\alpha_t x, \sigma_t^2 I)$ and
$\nabla_{x_t} \log q(x_t) = -(x_t - \alpha_t x)/\sigma_t^2 = -\varepsilon / \sigma_t$.
Stein's identity, $\mathbb{E}_q[\phi\,\nabla \log q + \nabla\phi] = 0$ for any smooth scalar
$\phi$ (integration by parts), multiplied by $-\sigma_t$ gives

$$h = \varepsilon\,\phi(x_t) - \sigma_t \nabla_{x_t}\phi(x_t), \qquad \mathbb{E}[h] = 0.$$

SSD uses $\hat\varepsilon - \mu \odot h$ in place of SDS's $\hat\varepsilon - \varepsilon$;
with $\phi \equiv 1$ and $\mu \equiv 1$, $h = \varepsilon$ and the two coincide exactly.
The form printed on SteinDreamer's project page, $\varepsilon\phi + \nabla\phi$, is *not*
zero-mean: $\mathbb{E}[\varepsilon\phi] = \sigma_t\mathbb{E}[\nabla\phi]$, so its mean is
$(\sigma_t + 1)\,\mathbb{E}[\nabla\phi]$, i.e. $2\,\mathbb{E}[\nabla\phi]$ at $\sigma_t = 1$
(see :func:`stein_control_variate_printed`, kept only to show the bias).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Reduce = Literal["scalar", "channel", "element"]
"""How many control-variate coefficients: one, one per channel (dim 1), one per element."""

_REDUCES = ("scalar", "channel", "element")


def _reduce_dims(x: Tensor, reduce: Reduce) -> tuple[int, ...]:
    """Dimensions of a ``[N, *event]`` tensor averaged over for one coefficient."""
    if reduce not in _REDUCES:
        raise ValueError(f"reduce={reduce!r} is not one of {_REDUCES}")
    if x.dim() < 1:
        raise ValueError(f"samples must have shape [N, *event], got shape {tuple(x.shape)}")
    if reduce == "scalar":
        return tuple(range(x.dim()))
    if reduce == "channel":
        if x.dim() < 2:
            raise ValueError("reduce='channel' needs samples of shape [N, C, ...]")
        return (0, *range(2, x.dim()))
    return (0,)


def coefficient_shape(event_shape: tuple[int, ...], reduce: Reduce) -> tuple[int, ...]:
    """Shape of ``mu`` for samples with event shape ``event_shape``.

    The shape broadcasts against ``[N, *event]``: ``()`` for "scalar", ``(C, 1, ..., 1)`` for
    "channel", ``event_shape`` for "element".
    """
    if reduce not in _REDUCES:
        raise ValueError(f"reduce={reduce!r} is not one of {_REDUCES}")
    if reduce == "scalar":
        return ()
    if reduce == "channel":
        if len(event_shape) < 1:
            raise ValueError("reduce='channel' needs a non-empty event shape")
        return (event_shape[0],) + (1,) * (len(event_shape) - 1)
    return tuple(event_shape)


def optimal_coefficient(
    f: Tensor,
    h: Tensor,
    reduce: Reduce = "scalar",
    centered: bool = False,
    eps: float = 1e-12,
) -> Tensor:
    r"""Closed-form control-variate coefficient.

    Second-moment form (``centered=False``): $\mu^* = \mathbb{E}[f h] / \mathbb{E}[h^2]$,
    the minimiser of $\mathbb{E}\|f - \mu \odot h\|^2$ (right for zero-mean $h$).
    Covariance form (``centered=True``): $\mu^* = \mathrm{Cov}(f, h) / \mathrm{Var}(h)$,
    the minimiser of the sample variance of $f - \mu \odot h$.

    Args:
        f: Samples of the target, ``[N, *event]``.
        h: Samples of the control variate, ``[N, *event]``.
        reduce: "scalar", "channel" (dim 1 of the samples) or "element".
        centered: Use the covariance form.
        eps: Added to the denominator.

    Returns:
        ``mu`` of shape :func:`coefficient_shape` ``(event, reduce)``, broadcastable to ``f``.

    >>> h = torch.randn(1000, 3); f = 2.0 * h
    >>> float(optimal_coefficient(f, h))
    2.0
    """
    if f.shape != h.shape:
        raise ValueError(f"f and h must have one shape, got {tuple(f.shape)} and {tuple(h.shape)}")
    dims = _reduce_dims(f, reduce)
    if centered:
        f = f - f.mean(dim=0, keepdim=True)
        h = h - h.mean(dim=0, keepdim=True)
    num = (f * h).mean(dim=dims, keepdim=True)
    den = (h * h).mean(dim=dims, keepdim=True)
    mu = num / (den + eps)
    return mu.reshape(coefficient_shape(tuple(f.shape[1:]), reduce))


def apply_control_variate(f: Tensor, h: Tensor, mu: Tensor | float) -> Tensor:
    r"""Controlled samples $f - \mu \odot h$.

    Args:
        f: ``[N, *event]`` target samples.
        h: ``[N, *event]`` zero-mean control-variate samples.
        mu: Coefficient broadcastable to ``[*event]`` (see :func:`coefficient_shape`).

    Returns:
        ``[N, *event]``.
    """
    return f - mu * h


@dataclass(frozen=True)
class CoefficientConfig:
    """Configuration of a learned (Adam) or running (EMA) control-variate coefficient."""

    reduce: Reduce = "scalar"
    """Number of coefficients: "scalar", "channel" (dim 1 of samples) or "element"."""
    init: float = 1.0
    """Initial value of every coefficient (1.0 starts SSD with phi = 1 at SDS)."""
    lr: float = 1e-2
    """Adam learning rate (LearnedCoefficient only)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas (LearnedCoefficient only)."""
    decay: float = 0.9
    """EMA decay of the running moments E[f h] and E[h^2] (EMACoefficient only)."""
    eps: float = 1e-12
    """Added to E[h^2] in the running closed form (EMACoefficient only)."""


class LearnedCoefficient:
    r"""Coefficient $\mu$ learned by Adam on $\frac{1}{N}\sum_i\|f_i - \mu\odot h_i\|^2$.

    ``f`` and ``h`` are detached, so only $\mu$ learns. Use :attr:`mu` for the step first,
    then call :meth:`update` with the same samples, so the step's control variate stays
    zero-mean (DESIGN.md §2).

    Args:
        config: The coefficient configuration.
        event_shape: Event shape of one sample (``[*event]``).
        device: Torch device of ``mu``.
        dtype: Torch dtype of ``mu``.
    """

    def __init__(
        self,
        config: CoefficientConfig,
        event_shape: tuple[int, ...],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config
        shape = coefficient_shape(tuple(event_shape), config.reduce)
        self._mu = torch.full(shape, float(config.init), device=device, dtype=dtype)
        self._mu.requires_grad_(True)
        self._opt = torch.optim.Adam([self._mu], lr=config.lr, betas=config.betas)

    @property
    def mu(self) -> Tensor:
        """Current coefficient (detached), shape ``coefficient_shape(event, reduce)``."""
        return self._mu.detach()

    def update(self, f: Tensor, h: Tensor) -> Tensor:
        """One Adam step on the second moment; returns the loss before the step (0-dim, detached;
        not a float, so that the host does not wait for the GPU).

        Args:
            f: ``[N, *event]`` target samples (detached here).
            h: ``[N, *event]`` control-variate samples (detached here).
        """
        f, h = f.detach(), h.detach()
        with torch.enable_grad():
            loss = (f - self._mu * h).pow(2).flatten(1).sum(1).mean()
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
        self._opt.step()
        return loss.detach()

    def state_dict(self) -> dict:
        """``mu`` and the Adam state, for checkpoints."""
        return {"mu": self._mu.detach().clone(), "optimizer": self._opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restores what :meth:`state_dict` saved."""
        with torch.no_grad():
            self._mu.copy_(state["mu"])
        self._opt.load_state_dict(state["optimizer"])


class EMACoefficient:
    r"""Running closed form $\mu = \overline{fh} / (\overline{h^2} + \epsilon)$ with EMA moments.

    Each :meth:`update` sets $\overline{fh} \leftarrow d\,\overline{fh} + (1-d)\,\mathrm{mean}(fh)$
    and likewise for $\overline{h^2}$ (bias-corrected as in Adam). Before the first update
    ``mu`` is ``config.init``.

    Args:
        config: The coefficient configuration (``reduce``, ``decay``, ``init``, ``eps``).
        event_shape: Event shape of one sample.
        device: Torch device.
        dtype: Torch dtype.
    """

    def __init__(
        self,
        config: CoefficientConfig,
        event_shape: tuple[int, ...],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config
        shape = coefficient_shape(tuple(event_shape), config.reduce)
        self._fh = torch.zeros(shape, device=device, dtype=dtype)
        self._hh = torch.zeros(shape, device=device, dtype=dtype)
        self._init = torch.full(shape, float(config.init), device=device, dtype=dtype)
        self._steps = 0

    @property
    def mu(self) -> Tensor:
        """Current coefficient, shape ``coefficient_shape(event, reduce)``."""
        if self._steps == 0:
            return self._init.clone()
        correction = 1.0 - self.config.decay**self._steps
        return (self._fh / correction) / (self._hh / correction + self.config.eps)

    def update(self, f: Tensor, h: Tensor) -> None:
        """Fold one batch ``f, h`` of shape ``[N, *event]`` into the running moments."""
        f, h = f.detach(), h.detach()
        dims = _reduce_dims(f, self.config.reduce)
        shape = self._fh.shape
        d = self.config.decay
        self._fh = d * self._fh + (1 - d) * (f * h).mean(dim=dims).reshape(shape)
        self._hh = d * self._hh + (1 - d) * (h * h).mean(dim=dims).reshape(shape)
        self._steps += 1

    def state_dict(self) -> dict:
        """The running moments and the step count, for checkpoints."""
        return {"fh": self._fh.clone(), "hh": self._hh.clone(), "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        """Restores what :meth:`state_dict` saved."""
        self._fh = state["fh"].to(self._fh)
        self._hh = state["hh"].to(self._hh)
        self._steps = int(state["steps"])


@dataclass(frozen=True)
class BinnedCoefficientConfig:
    """Coefficients ``μ_k(t)`` of several control variates as a table over timestep bins."""

    n_bins: int = 10
    """Bins over ``[0, T)``; ``μ(t)`` interpolates linearly between bin centres (1: one μ
    for every t)."""
    reduce: Literal["scalar", "channel"] = "channel"
    """One coefficient per bin and control variate ("scalar"), or one per channel too."""
    decay: float = 0.995
    """Per-update forgetting factor of each bin's running moments (memory ≈ 1/(1 − decay)
    updates)."""
    min_count: float = 4.0
    """A bin keeps its initial coefficients until it has seen this (interpolation-weighted)
    number of samples."""
    ridge: float = 1e-4
    """Added to the moment matrix, relative to its mean diagonal (keeps the solve stable when
    two control variates are nearly collinear)."""

    def __post_init__(self) -> None:
        if self.n_bins < 1:
            raise ValueError(f"BinnedCoefficientConfig.n_bins={self.n_bins} must be >= 1")
        if self.reduce not in ("scalar", "channel"):
            raise ValueError(
                f"BinnedCoefficientConfig.reduce={self.reduce!r}; accepted: 'scalar', 'channel'"
            )
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"BinnedCoefficientConfig.decay={self.decay} not in [0, 1)")


class BinnedCoefficient:
    r"""Timestep-dependent coefficients of ``K`` control variates, by running closed form.

    The estimator is $f - \sum_k \mu_k(t) \odot h_k$ with every $h_k$ zero-mean given
    $(\theta, c, t)$; it is unbiased for any coefficients that do not depend on this step's
    $\varepsilon$. The second moment $\mathbb{E}\|f - \sum_k \mu_k h_k\|^2$ at one $t$ is
    minimised by the normal equations $A\mu = b$, $A_{kl} = \mathbb{E}[h_k h_l]$,
    $b_k = \mathbb{E}[f h_k]$ (sums over a group's elements: all, or one channel). We keep
    $A$ and $b$ per timestep bin as exponentially forgotten sums, each sample counted in the two
    bins around its $t$ with its linear-interpolation weights, and solve per bin:
    $\mu_b = (A_b + \lambda I)^{-1} b_b$. $\mu(t)$ interpolates the table linearly between
    bin centres $(b + \tfrac12) T / n$. Use :meth:`apply` for the step first, then
    :meth:`update` with the same samples (the step's control variate then stays zero-mean).

    Why per $t$: the optimal coefficient of SDS's own $\varepsilon$ moves from about 0.3 at
    $t = 50$ to 2–3 at $t = 800$ on ShapeZoo; one $\mu$ for all $t$ gains almost nothing.

    Args:
        config: bins, grouping, forgetting, ridge.
        init: ``K`` initial coefficients (e.g. ``(1.0, 0.0)``: SDS's ε at 1, a baseline at 0).
        channels: ``C``, the channel count of the samples ``[B, C, ...]``.
        num_train_timesteps: ``T``.
        device: torch device.

    >>> c = BinnedCoefficient(BinnedCoefficientConfig(n_bins=4), (1.0,), channels=2)
    >>> c.mu(torch.tensor([0, 999])).shape           # [B, K, G]
    torch.Size([2, 1, 2])
    """

    def __init__(
        self,
        config: BinnedCoefficientConfig,
        init: tuple[float, ...],
        channels: int,
        num_train_timesteps: int = 1000,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(init) < 1:
            raise ValueError("BinnedCoefficient: init must name one coefficient per control "
                             "variate (at least one)")
        self.config = config
        self.k = len(init)
        self.groups = channels if config.reduce == "channel" else 1
        self.num_train_timesteps = int(num_train_timesteps)
        n, g, k = config.n_bins, self.groups, self.k
        self.hh = torch.zeros(n, g, k, k, device=device)
        self.fh = torch.zeros(n, g, k, device=device)
        self.count = torch.zeros(n, device=device)
        self.init = torch.tensor(init, device=device, dtype=torch.float32)
        self.table = self.init.reshape(1, 1, k).expand(n, g, k).clone()

    def bin_weights(self, t: Tensor) -> Tensor:
        """``[B, n_bins]`` linear-interpolation weights of integer timesteps ``t`` ``[B]``."""
        n = self.config.n_bins
        pos = (t.float() + 0.5) / self.num_train_timesteps * n - 0.5
        pos = pos.clamp(0.0, n - 1.0)
        lo = pos.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        frac = pos - lo.float()
        w = torch.zeros(t.shape[0], n, device=self.table.device)
        w.scatter_add_(1, lo[:, None].to(w.device), (1.0 - frac)[:, None].to(w.device))
        w.scatter_add_(1, hi[:, None].to(w.device), frac[:, None].to(w.device))
        return w

    def mu(self, t: Tensor) -> Tensor:
        """``[B, K, G]`` coefficients at timesteps ``t`` ``[B]``."""
        return torch.einsum("bn,ngk->bkg", self.bin_weights(t), self.table)

    def apply(self, t: Tensor, hs: Tensor) -> Tensor:
        """``Σ_k μ_k(t) ⊙ h_k`` ``[B, C, ...]`` for control variates ``hs`` ``[K, B, C, ...]``."""
        mu = self.mu(t)  # [B, K, G]
        shape = (*mu.shape, *([1] * (hs.dim() - 3)))
        mu = mu.reshape(shape).permute(1, 0, *range(2, len(shape)))  # [K, B, G, 1...]
        return (mu.to(hs.dtype) * hs).sum(0)

    def _group_sums(self, a: Tensor) -> Tensor:
        """Sum over a group's elements: ``[B, C, ...]`` → ``[B, G]``."""
        if self.groups == 1:
            return a.flatten(1).sum(1, keepdim=True)
        return a.flatten(2).sum(2)

    def update(self, t: Tensor, f: Tensor, hs: Tensor) -> None:
        """Folds one batch into the bins' moments and re-solves the table.

        Args:
            t: ``[B]`` integer timesteps.
            f: ``[B, C, ...]`` the estimator's target (``ω ε̂``), detached here.
            hs: ``[K, B, C, ...]`` the control variates (``ω h_k``), detached here.
        """
        f, hs = f.detach().float(), hs.detach().float()
        w = self.bin_weights(t)  # [B, n]
        hh = torch.stack([torch.stack([self._group_sums(hs[i] * hs[j]) for j in range(self.k)],
                                      -1) for i in range(self.k)], -2)  # [B, G, K, K]
        fh = torch.stack([self._group_sums(f * hs[i]) for i in range(self.k)], -1)  # [B, G, K]
        d = self.config.decay
        self.hh = d * self.hh + torch.einsum("bn,bgkl->ngkl", w, hh)
        self.fh = d * self.fh + torch.einsum("bn,bgk->ngk", w, fh)
        self.count = d * self.count + w.sum(0)
        self._solve()

    def _solve(self) -> None:
        eye = torch.eye(self.k, device=self.hh.device)
        scale = self.hh.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-30)  # [n, G]
        a = self.hh + self.config.ridge * scale[..., None, None] * eye
        sol = torch.linalg.solve(a, self.fh[..., None])[..., 0]  # [n, G, K]
        ready = (self.count >= self.config.min_count)[:, None, None]
        init = self.init.reshape(1, 1, self.k).expand_as(sol)
        self.table = torch.where(ready, sol, init)

    def state_dict(self) -> dict:
        """The bins' moments, counts and table, for checkpoints."""
        return {"hh": self.hh.clone(), "fh": self.fh.clone(), "count": self.count.clone(),
                "table": self.table.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restores what :meth:`state_dict` saved."""
        for name in ("hh", "fh", "count", "table"):
            setattr(self, name, state[name].to(getattr(self, name)))


def _per_sample(sigma: Tensor | float, like: Tensor) -> Tensor | float:
    """Reshape a scalar or ``[N]`` sigma to broadcast against ``[N, *event]``."""
    if isinstance(sigma, Tensor) and sigma.dim() > 0:
        if sigma.shape != like.shape[:1]:
            raise ValueError(
                f"sigma must be a float, a 0-d tensor or shape [N]={tuple(like.shape[:1])}, "
                f"got {tuple(sigma.shape)}"
            )
        return sigma.reshape(-1, *([1] * (like.dim() - 1)))
    return sigma


def _phi_and_grad(
    phi: Callable[[Tensor], Tensor], x_t: Tensor, create_graph: bool, grad_scale: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Evaluate ``phi`` (``[N, *event] -> [N]``) and its per-sample gradient by autograd
    (as ``∇(S·Σφ) / S`` for ``grad_scale = S ≠ 1``)."""
    if not (grad_scale > 0 and math.isfinite(grad_scale)):
        raise ValueError(f"grad_scale={grad_scale} must be a finite number > 0 (e.g. 1 or 1024)")
    with torch.enable_grad():
        x = x_t if (create_graph and x_t.requires_grad) else x_t.detach().requires_grad_(True)
        value = phi(x)
        if value.shape != x_t.shape[:1]:
            raise ValueError(
                f"phi must map [N, *event] to [N]; got {tuple(value.shape)} for input "
                f"{tuple(x_t.shape)}"
            )
        total = value.sum() if grad_scale == 1.0 else value.sum() * grad_scale
        (grad,) = torch.autograd.grad(total, x, create_graph=create_graph)
    if grad_scale != 1.0:
        grad = grad / grad_scale
    if not create_graph:
        value = value.detach()
    return value, grad


def stein_control_variate(
    phi: Callable[[Tensor], Tensor],
    x_t: Tensor,
    eps: Tensor,
    sigma: Tensor | float,
    create_graph: bool = False,
    grad_scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""Gaussian Stein control variate $h = \varepsilon\,\phi(x_t) - \sigma\nabla_{x_t}\phi(x_t)$.

    Zero mean over $\varepsilon$ when $x_t = \alpha x + \sigma\varepsilon$ for fixed
    $(x, \alpha, \sigma)$ (module docstring). ``phi`` must act on each sample independently
    (no batch statistics): its per-sample gradient is taken as the gradient of
    ``phi(x_t).sum()``.

    Args:
        phi: Scalar baseline per sample, ``[N, *event] -> [N]``, differentiable in ``x_t``.
        x_t: Noised samples ``[N, *event]``.
        eps: The noise used to make ``x_t``, ``[N, *event]``.
        sigma: Noise level, a float, 0-d tensor or ``[N]``.
        create_graph: Keep the graph of ``h`` (to learn parameters of ``phi`` through ``h``).
        grad_scale: ``S``: the gradient is taken of ``S·φ`` and divided by ``S`` (the same
            number in exact arithmetic; exact in floating point for a power of two without
            overflow). A half-precision ``phi`` (a float16 depth model and VAE decoder) backs
            up gradients that may fall below float16's smallest normal number (6e-5) and flush
            to zero, which biases ``h`` (Stein's identity needs the exact ``∇φ``); ``S`` lifts
            them into range, as loss scaling does in mixed-precision training. Too large an
            ``S`` overflows (inf) instead. ``scripts/bench_paper_step.py --fp16_check``
            measures both against float32.

    Returns:
        ``(h, phi_value)``: ``h`` of shape ``[N, *event]`` and ``phi(x_t)`` of shape ``[N]``
        (both detached unless ``create_graph``).

    >>> x_t, eps = torch.randn(4, 2), torch.randn(4, 2)
    >>> h, _ = stein_control_variate(lambda x: torch.ones(len(x)) + 0 * x.sum(1), x_t, eps, 0.5)
    >>> torch.equal(h, eps)
    True
    """
    if eps.shape != x_t.shape:
        raise ValueError(f"eps {tuple(eps.shape)} and x_t {tuple(x_t.shape)} differ in shape")
    value, grad = _phi_and_grad(phi, x_t, create_graph, grad_scale)
    view = value.reshape(-1, *([1] * (x_t.dim() - 1)))
    h = eps * view - _per_sample(sigma, x_t) * grad
    return h, value


def stein_control_variate_printed(
    phi: Callable[[Tensor], Tensor],
    x_t: Tensor,
    eps: Tensor,
) -> tuple[Tensor, Tensor]:
    r"""The form printed on SteinDreamer's project page, $\varepsilon\phi + \nabla\phi$. BIASED.

    Not a control variate: its mean is $(\sigma + 1)\,\mathbb{E}[\nabla\phi]$
    ($2\,\mathbb{E}[\nabla\phi]$ at $\sigma = 1$), not zero. Kept only for notebook 11 and
    the tests that show the bias; use :func:`stein_control_variate`.

    Args:
        phi: Scalar baseline per sample, ``[N, *event] -> [N]``.
        x_t: Noised samples ``[N, *event]``.
        eps: Noise ``[N, *event]``.

    Returns:
        ``(h_printed, phi_value)`` of shapes ``[N, *event]`` and ``[N]``.
    """
    value, grad = _phi_and_grad(phi, x_t, False)
    return eps * value.reshape(-1, *([1] * (x_t.dim() - 1))) + grad, value
