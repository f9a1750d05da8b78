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
    phi: Callable[[Tensor], Tensor], x_t: Tensor, create_graph: bool
) -> tuple[Tensor, Tensor]:
    """Evaluate ``phi`` (``[N, *event] -> [N]``) and its per-sample gradient by autograd."""
    with torch.enable_grad():
        x = x_t if (create_graph and x_t.requires_grad) else x_t.detach().requires_grad_(True)
        value = phi(x)
        if value.shape != x_t.shape[:1]:
            raise ValueError(
                f"phi must map [N, *event] to [N]; got {tuple(value.shape)} for input "
                f"{tuple(x_t.shape)}"
            )
        (grad,) = torch.autograd.grad(value.sum(), x, create_graph=create_graph)
    if not create_graph:
        value = value.detach()
    return value, grad


def stein_control_variate(
    phi: Callable[[Tensor], Tensor],
    x_t: Tensor,
    eps: Tensor,
    sigma: Tensor | float,
    create_graph: bool = False,
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
    value, grad = _phi_and_grad(phi, x_t, create_graph)
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
