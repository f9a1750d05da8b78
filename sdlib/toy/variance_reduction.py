r"""Variance reduction for score distillation on the 2-D toy, with exact answers.

The toy (:mod:`sdlib.toy.distill`): $K_p$ points $\theta_k$, a camera rotates them,
$x = R(c)\theta$; $t \sim U[t_{\min}, t_{\max}]$, $x_t = \alpha_t x + \sigma_t\varepsilon$,
$\omega = \sigma_t^2$, exact $\hat\varepsilon$ of a Gaussian mixture. SDS's gradient on the
render is $\omega(\hat\varepsilon - \varepsilon)$ and on $\theta$ it is $R(c)^\top$ of that.
Every estimator here has SDS's mean; they differ in the control variates subtracted,

$$g = \omega\Big(\hat\varepsilon - \sum_p \mu_p(t)\, h_p\Big),\qquad
h_p = \varepsilon\phi_p(x_t) - \sigma_t\nabla_{x_t}\phi_p(x_t),\qquad
\mathbb{E}_\varepsilon[h_p\mid c, t] = 0$$

(Stein's identity; SDS is $\phi_0 = 1$, $h_0 = \varepsilon$, $\mu_0 = 1$), and in how
$(c, t, \varepsilon)$ are drawn:

- **μ(t)** (:class:`CoefficientTable`): $\mu_p(t) = \sum_b w_b(t)\mu_{pb}$, hat functions on
  ``n_bins`` knots over $[t_{\min}, t_{\max}]$, fitted online to the second moment
  $\min\ \mathbb{E}\|\omega(\hat\varepsilon - \sum_p\mu_p h_p)\|^2$ (exponentially weighted
  least squares), **used before** the step's update: $\mu$ is then independent of the step's
  $\varepsilon$ and $g$ stays unbiased.
- **Two coefficients**: $\phi = \mu_0(t) + \mu_1(t)\phi_1$ with a fixed feature $\phi_1$
  (here $\|x_t\|^2$, the toy's "depth"): $h$ is linear in $\phi$, so it is two control
  variates $h_0 = \varepsilon$, $h_1 = \varepsilon\phi_1 - \sigma\nabla\phi_1$ with their own
  per-t coefficients; it contains SDS ($\mu_0 = 1, \mu_1 = 0$).
- **Learned baseline** (:class:`BaselineNet`): $\phi_\psi(x_t, t, c)$, a small MLP (one scalar
  per point), starting at $\phi \equiv 1$ (SDS), trained online on the step's draws to minimise
  $\|\omega(\hat\varepsilon - h_\psi)\|^2$ through $h_\psi = \varepsilon\phi_\psi -
  \sigma\nabla\phi_\psi$ (``create_graph=True``), after the step used it.
- **Antithetic pairs**: the noises $\varepsilon$ and $-\varepsilon$ on the same render
  ($c, t$); a pair's mean is one sample (two evaluations). SDS's $\varepsilon$ term cancels
  inside a pair: $\tfrac12\omega[(\hat\varepsilon_+ - \varepsilon) + (\hat\varepsilon_- +
  \varepsilon)] = \tfrac{\omega}{2}(\hat\varepsilon(\alpha x + \sigma\varepsilon) +
  \hat\varepsilon(\alpha x - \sigma\varepsilon))$, so only the odd part of $\hat\varepsilon$ in
  $\varepsilon$ leaves noise. Unbiased because $-\varepsilon \sim \varepsilon$.
- **Stratified** $t$ and cameras within a batch of $m$: $t_i = t_{\min} + (t_{\max} -
  t_{\min})(\pi_i + u_i)/m$ with a random permutation $\pi$ and $u_i \sim U[0,1)$ (cameras the
  same over $[-s, s]$, another permutation): each draw's marginal is exact, so the batch mean
  is unbiased, and the between-timestep variance of the batch mean falls from $\sigma^2_T/m$ to
  the within-stratum part.

**Exact answers** for a single Gaussian prior $\mathcal{N}(m_0, s^2 I)$
(:func:`gaussian_exact`): $\hat\varepsilon$ is linear in $x_t$, so with
$v = \alpha^2 s^2 + \sigma^2$, the SDS $\theta$-gradient of point $k$ is
$a(t)(\theta_k - R(c)^\top m_0) + b(t)R(c)^\top\varepsilon_k$ with
$a = \omega\sigma\alpha/v$, $b = -\omega\alpha^2 s^2/v$. Then (uniform cameras on $[-S, S]$,
$\kappa = \sin S/S = \mathbb{E}\cos c$):

$$\sigma^2_E = 2K_p\mathbb{E}_t b^2,\quad
\sigma^2_C = K_p\bar a^2\|m_0\|^2(1-\kappa^2),\quad
\sigma^2_T = \mathrm{Var}_t(a)\sum_k\|\theta_k - \kappa m_0\|^2,\quad
\sigma^2_{CT} = K_p\mathrm{Var}_t(a)\|m_0\|^2(1-\kappa^2);$$

the best per-t coefficient on $h_0 = \varepsilon$ is $\mu^*(t) = \sigma^2/v$ and it removes
all of $\sigma^2_E$; an antithetic pair removes all of it too. The $t$-integrals are
Gauss–Legendre quadratures.

**Cells** (:class:`ToyCellTable`, the toy form of :mod:`sdlib.cell_control_variate`): no control
variate on $\varepsilon$ touches $\sigma^2_C + \sigma^2_T + \sigma^2_{CT}$. Cut $(c, t)$ into
equal bins (cells $i$, each of probability $p_i = 1/n$), keep a table $b_i$ of θ-gradients and
use $\tilde g = g - b_{i(c,t)} + \sum_j p_j b_j$: unbiased whatever $b$ holds. With the oracle
table $b_i = \mathbb{E}[g \mid i]$ (:func:`gaussian_cell_means`) what is left is the
within-cell variance, $\sigma^2_E + \frac1n\sum_i \operatorname{tr}\mathrm{Var}(m(c, t) \mid i)$
with $m(c, t) = a(t)(\theta - R(c)^\top m_0)$ (:func:`gaussian_cell_remainder`); an antithetic
pair then removes $\sigma^2_E$ as well, leaving (per evaluation) twice the within-cell part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from sdlib.control_variates import stein_control_variate
from sdlib.toy.distill import NoiseDraw
from sdlib.toy.mixture import GaussianMixture, vp_alpha_sigma
from sdlib.toy.renderer import render_particles, rotation

__all__ = [
    "BaselineNet",
    "CoefficientTable",
    "Kind",
    "ToyEstimator",
    "ToyVRConfig",
    "crossed_draw",
    "design_grads",
    "draw_batch",
    "gaussian_exact",
    "radius_feature",
    "stratified_uniform",
    "theta_grads",
]

Kind = Literal["sds", "mu_t", "two_coef", "learned"]
"""SDS; one per-t coefficient on eps; phi = mu0(t) + mu1(t) phi_1; a learned network phi."""


@dataclass(frozen=True)
class ToyVRConfig:
    """Sampling and learning settings of the toy variance-reduction estimators."""

    t_min: float = 0.02
    """Smallest diffusion time."""
    t_max: float = 0.98
    """Largest diffusion time."""
    camera_spread: float = 0.3
    """Cameras are uniform in [-camera_spread, camera_spread] radians."""
    n_bins: int = 8
    """Knots of the mu(t) table (linear interpolation between them)."""
    decay: float = 0.98
    """Forgetting factor of mu(t)'s exponentially weighted least squares, per update."""
    ridge: float = 1e-3
    """Ridge toward the initial coefficients, relative to each diagonal entry of the normal
    matrix."""
    phi_hidden: int = 32
    """Hidden width of the learned baseline network."""
    phi_lr: float = 3e-3
    """Adam learning rate of the learned baseline network."""


def stratified_uniform(
    m: int, low: float, high: float, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""$m$ draws, one in each of $m$ equal strata of $[low, high)$, in random order, ``[m]``.

    Each draw alone is exactly $U[low, high)$ (a uniform stratum of a uniform index).
    """
    perm = torch.randperm(m, generator=generator)
    u = torch.rand(m, generator=generator, dtype=dtype)
    return low + (high - low) * (perm.to(dtype) + u) / m


def draw_batch(
    m: int, k: int, config: ToyVRConfig, generator: torch.Generator | None = None,
    antithetic: bool = False, stratify_t: bool = False, stratify_camera: bool = False,
    dtype: torch.dtype = torch.float32,
) -> NoiseDraw:
    """One batch: ``m`` renders (``2m`` draws if ``antithetic``: pair ``i`` is rows ``i, m+i``).

    Args:
        m: Renders (cameras and timesteps) in the batch.
        k: Points per render.
        config: Ranges of t and the camera.
        antithetic: Append the negated noises on the same renders.
        stratify_t, stratify_camera: Stratify the batch's timesteps / cameras.

    Returns:
        A :class:`~sdlib.toy.distill.NoiseDraw` of ``m`` or ``2m`` rows.
    """
    if stratify_t:
        t = stratified_uniform(m, config.t_min, config.t_max, generator, dtype)
    else:
        t = config.t_min + (config.t_max - config.t_min) * torch.rand(m, generator=generator,
                                                                      dtype=dtype)
    s = config.camera_spread
    if stratify_camera:
        cam = stratified_uniform(m, -s, s, generator, dtype)
    else:
        cam = (2 * torch.rand(m, generator=generator, dtype=dtype) - 1) * s
    eps = torch.randn(m, k, 2, generator=generator, dtype=dtype)
    if antithetic:
        return NoiseDraw(t=t.repeat(2), camera=cam.repeat(2), eps=torch.cat([eps, -eps]))
    return NoiseDraw(t=t, camera=cam, eps=eps)


def crossed_draw(
    n_cam: int, n_t: int, n_noise: int, k: int, config: ToyVRConfig,
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
    antithetic: bool = False,
) -> NoiseDraw:
    """The decomposition's design: ``n_cam`` cameras × ``n_t`` timesteps × ``n_noise`` noises.

    Rows are in ``[n_cam, n_t, n_noise]`` order (reshape per-sample gradients to
    ``[n_cam, n_t, n_noise, D]`` for :func:`sdlib.decomposition.decompose`). With
    ``antithetic``, noises ``n_noise/2 ..`` are the negatives of the first half (same cell).
    """
    s = config.camera_spread
    cam = (2 * torch.rand(n_cam, generator=generator, dtype=dtype) - 1) * s
    t = config.t_min + (config.t_max - config.t_min) * torch.rand(n_t, generator=generator,
                                                                  dtype=dtype)
    if antithetic:
        if n_noise % 2:
            raise ValueError(f"antithetic needs an even n_noise, got {n_noise}")
        half = torch.randn(n_cam, n_t, n_noise // 2, k, 2, generator=generator, dtype=dtype)
        eps = torch.cat([half, -half], dim=2)
    else:
        eps = torch.randn(n_cam, n_t, n_noise, k, 2, generator=generator, dtype=dtype)
    cam_all = cam[:, None, None].expand(n_cam, n_t, n_noise).reshape(-1)
    t_all = t[None, :, None].expand(n_cam, n_t, n_noise).reshape(-1)
    return NoiseDraw(t=t_all, camera=cam_all, eps=eps.reshape(-1, k, 2))


def theta_grads(grad_x: Tensor, camera: Tensor) -> Tensor:
    r"""Pull a gradient on renders back to $\theta$: $R(c_n)^\top g_{n,k}$, ``[N, K*2]``.

    The closed form of :meth:`sdlib.toy.distill.ToyDistiller.per_sample_theta_grads`'s autograd
    pull-back through :func:`~sdlib.toy.renderer.render_particles`.
    """
    rot = rotation(camera)  # [N, 2, 2]
    return torch.einsum("nji,nkj->nki", rot, grad_x).reshape(grad_x.shape[0], -1)


def design_grads(est: ToyEstimator, theta: Tensor, draw: NoiseDraw, n_cam: int, n_t: int,
                 antithetic: bool = False) -> Tensor:
    r"""Per-sample $\theta$-gradients of ``est`` (state frozen) on a :func:`crossed_draw`,
    ``[n_cam, n_t, n, Kp*2]``, ready for :func:`sdlib.decomposition.decompose`.

    With ``antithetic`` (a draw made with ``antithetic=True``), each sample is the mean of a
    pair $(\varepsilon, -\varepsilon)$ (two evaluations) and ``n`` is half the cell's draws.
    Evaluating several estimators on one draw makes their decompositions paired.
    """
    g = theta_grads(est.grad_x(theta, draw), draw.camera).reshape(n_cam, n_t, -1,
                                                                  2 * theta.shape[0])
    if antithetic:
        half = g.shape[2] // 2
        g = 0.5 * (g[:, :, :half] + g[:, :, half:])
    return g


def radius_feature(x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    r"""$\phi_1 = \|x_t\|^2$ per point, ``[M, 2] -> [M]`` (the toy's stand-in for depth)."""
    return x_t.pow(2).sum(-1)


class CoefficientTable:
    r"""Per-t coefficients $\mu_p(t) = \sum_b w_b(t)\,\mu_{pb}$ for $P$ control variates.

    $w_b$ are hat functions on $B$ knots spread evenly over $[t_{\min}, t_{\max}]$ (linear
    interpolation). :meth:`update` folds a batch into exponentially weighted normal equations
    of $\min\sum_n\|f_n - \sum_p\mu_p(t_n)h_{pn}\|^2$,
    $A_{(pb),(p'b')} = \sum_n w_b w_{b'}\langle h_p, h_{p'}\rangle$,
    $r_{(pb)} = \sum_n w_b\langle f, h_p\rangle$, and solves
    $(A + \Lambda)\mu = r + \Lambda\mu_{\text{init}}$ with
    $\Lambda = \text{ridge}\cdot\mathrm{diag}(A)$.

    Args:
        n_cv: Number of control variates P.
        config: Knots, forgetting factor and ridge.
        init: Initial coefficient of each control variate (length P).
    """

    def __init__(self, n_cv: int, config: ToyVRConfig, init: list[float]) -> None:
        if len(init) != n_cv:
            raise ValueError(f"init needs {n_cv} values, got {len(init)}")
        self.config = config
        self.knots = torch.linspace(config.t_min, config.t_max, config.n_bins, dtype=torch.float64)
        size = n_cv * config.n_bins
        self.init = torch.tensor(init, dtype=torch.float64).repeat_interleave(config.n_bins)
        self.mu = self.init.clone().reshape(n_cv, config.n_bins)  # [P, B]
        self._a = torch.zeros(size, size, dtype=torch.float64)
        self._r = torch.zeros(size, dtype=torch.float64)

    def weights(self, t: Tensor) -> Tensor:
        """Hat-function weights ``[N, B]`` (rows sum to one inside the knot range)."""
        knots = self.knots
        width = knots[1] - knots[0]
        return (1 - (t.double()[:, None] - knots[None]).abs() / width).clamp_min(0)

    def __call__(self, t: Tensor) -> Tensor:
        r"""$\mu_p(t_n)$, ``[N, P]`` (float64)."""
        return self.weights(t) @ self.mu.T

    def update(self, t: Tensor, f: Tensor, h: Tensor) -> None:
        """Fold in a batch: ``t [N]``, target ``f [N, E]``, control variates ``h [N, P, E]``."""
        w = self.weights(t)  # [N, B]
        f, h = f.double().reshape(f.shape[0], -1), h.double().reshape(*h.shape[:2], -1)
        hh = torch.einsum("npe,nqe->npq", h, h)
        fh = torch.einsum("ne,npe->np", f, h)
        a = torch.einsum("npq,nb,nc->pbqc", hh, w, w).reshape(self._a.shape)
        r = torch.einsum("np,nb->pb", fh, w).reshape(-1)
        d = self.config.decay
        self._a = d * self._a + a
        self._r = d * self._r + r
        # ridge toward init, per coefficient relative to its own curvature (a knot at small t,
        # where omega ~ 0, is still fitted), plus a floor for knots no draw has reached yet
        lam = self.config.ridge * self._a.diagonal() + 1e-12 * float(self._a.diagonal().max())
        sol = torch.linalg.solve(self._a + torch.diag(lam), self._r + lam * self.init)
        self.mu = sol.reshape(self.mu.shape)


class BaselineNet(nn.Module):
    r"""$\phi_\psi(x_t, t, c) = 1 + \mathrm{MLP}([x_t, \cos/\sin(2^j\pi t/2), \cos c, \sin c])$.

    One scalar per point; the last layer starts at zero, so $\phi \equiv 1$ (SDS) at first.

    Args:
        hidden: Hidden width.
        n_freq: Time frequencies.
    """

    def __init__(self, hidden: int = 32, n_freq: int = 3) -> None:
        super().__init__()
        self.register_buffer("freq", (2.0 ** torch.arange(n_freq)) * math.pi / 2, persistent=False)
        self.net = nn.Sequential(
            nn.Linear(2 + 2 * n_freq + 2, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x_t: Tensor, t: Tensor, camera: Tensor) -> Tensor:
        """``x_t [M, 2], t [M], camera [M] -> phi [M]``."""
        tf = t[:, None] * self.freq.to(x_t.dtype)
        inp = torch.cat([x_t, torch.cos(tf), torch.sin(tf), torch.cos(camera)[:, None],
                         torch.sin(camera)[:, None]], dim=-1)
        return 1.0 + self.net(inp)[:, 0]


class ToyEstimator:
    r"""One toy estimator $\omega(\hat\varepsilon - \sum_p\mu_p(t)h_p)$ with its online learning.

    Use: ``g = est.grad_x(theta, draw)`` (state fixed), step with ``g``, then
    ``est.update()`` (learns from the draw just used: μ and φ are always one step behind,
    independent of the draw they are applied to).

    Args:
        prior: The exact mixture prior.
        kind: ``"sds"``, ``"mu_t"``, ``"two_coef"`` or ``"learned"``.
        config: Settings.
        seed: Initialisation seed of the learned network.
        dtype: Dtype of the learned network.
    """

    def __init__(self, prior: GaussianMixture, kind: Kind, config: ToyVRConfig = ToyVRConfig(),
                 seed: int = 0, dtype: torch.dtype = torch.float32) -> None:
        if kind not in ("sds", "mu_t", "two_coef", "learned"):
            raise ValueError(f"kind must be sds, mu_t, two_coef or learned, got {kind!r}")
        self.prior, self.kind, self.config = prior, kind, config
        self.table: CoefficientTable | None = None
        if kind == "mu_t":
            self.table = CoefficientTable(1, config, [1.0])
        elif kind == "two_coef":
            self.table = CoefficientTable(2, config, [1.0, 0.0])
        self.phi: BaselineNet | None = None
        if kind == "learned":
            torch.manual_seed(seed)
            self.phi = BaselineNet(config.phi_hidden).to(dtype)
            self._opt = torch.optim.Adam(self.phi.parameters(), lr=config.phi_lr)
        self._last: tuple | None = None

    def _noised(self, theta: Tensor, draw: NoiseDraw):
        x = render_particles(theta.detach(), draw.camera)  # [N, K, 2]
        n, k, _ = x.shape
        alpha, sigma = vp_alpha_sigma(draw.t)
        x_t = (alpha[:, None, None] * x + sigma[:, None, None] * draw.eps).reshape(n * k, 2)
        a_pts, s_pts = alpha.repeat_interleave(k), sigma.repeat_interleave(k)
        eps_pred = self.prior.eps_pred(x_t, a_pts, s_pts).reshape(n, k, 2)
        return x_t, a_pts, s_pts, eps_pred, (sigma**2)[:, None, None]

    def control_variates(self, theta: Tensor, draw: NoiseDraw) -> tuple[Tensor, Tensor, Tensor]:
        """``(f, h, omega)``: ``f = omega * eps_pred [N, K, 2]``, the fixed control variates
        ``h [N, P, K, 2]`` (unweighted) and ``omega [N, 1, 1]``. Not for ``"learned"``."""
        x_t, a_pts, s_pts, eps_pred, w = self._noised(theta, draw)
        n, k = eps_pred.shape[:2]
        hs = [draw.eps]
        if self.kind == "two_coef":
            h1, _ = stein_control_variate(
                lambda z: radius_feature(z, a_pts, s_pts), x_t, draw.eps.reshape(-1, 2), s_pts
            )
            hs.append(h1.reshape(n, k, 2))
        return w * eps_pred, torch.stack(hs, 1), w

    def grad_x(self, theta: Tensor, draw: NoiseDraw) -> Tensor:
        """Gradient on the renders ``[N, K, 2]`` with the current coefficients / network."""
        if self.kind == "learned":
            x_t, a_pts, s_pts, eps_pred, w = self._noised(theta, draw)
            k = eps_pred.shape[1]
            t_pts, c_pts = draw.t.repeat_interleave(k), draw.camera.repeat_interleave(k)
            h, _ = stein_control_variate(lambda z: self.phi(z, t_pts, c_pts), x_t,
                                         draw.eps.reshape(-1, 2), s_pts)
            self._last = (x_t.detach(), draw.eps.reshape(-1, 2), s_pts, t_pts, c_pts,
                          (w * eps_pred).reshape(-1, 2), w.expand_as(eps_pred).reshape(-1, 2))
            return w * (eps_pred - h.reshape(eps_pred.shape).detach())
        f, h, w = self.control_variates(theta, draw)
        if self.kind == "sds":
            mu = torch.ones(f.shape[0], 1, dtype=f.dtype)
        else:
            mu = self.table(draw.t).to(f.dtype)  # [N, P]
        self._last = (draw.t, f, w[:, None] * h)
        return f - w * (mu[:, :, None, None] * h).sum(1)

    def update(self) -> float | None:
        """Learn from the last :meth:`grad_x` draw (after its use). Returns the learned
        network's loss (second moment per render) or ``None``."""
        if self._last is None or self.kind == "sds":
            return None
        if self.kind == "learned":
            x_t, eps, s_pts, t_pts, c_pts, f, w = self._last
            n = f.shape[0]
            with torch.enable_grad():
                h, _ = stein_control_variate(lambda z: self.phi(z, t_pts, c_pts), x_t, eps,
                                             s_pts, create_graph=True)
                loss = (f - w * h).pow(2).sum() / n
                self._opt.zero_grad(set_to_none=True)
                loss.backward()
            self._opt.step()
            return float(loss.detach())
        t, f, h = self._last
        self.table.update(t, f.reshape(f.shape[0], -1), h.reshape(*h.shape[:2], -1))
        return None


def _gauss_legendre(n: int, low: float, high: float) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(n)
    t = 0.5 * (high - low) * x + 0.5 * (high + low)
    return torch.tensor(t, dtype=torch.float64), torch.tensor(0.5 * w, dtype=torch.float64)


def gaussian_exact(
    theta: Tensor, mean: Tensor, std: float, config: ToyVRConfig, n_quad: int = 96,
    strata: int | None = None,
) -> dict[str, float]:
    r"""Exact variance parts of SDS's $\theta$-gradient under the prior $\mathcal{N}(m_0, s^2 I)$.

    See the module docstring. Also the noise-only part left by a per-t coefficient table
    ``mu`` (returned as a function under ``"noise_only_with"``) and, with ``strata``, the
    variance of the mean of a batch of ``strata`` draws with stratified $t$ (iid cameras and
    noises), :math:`\frac{1}{m^2}\sum_i \operatorname{tr}\mathrm{Var}(g\mid t\in S_i)`.

    Args:
        theta: Points ``[Kp, 2]``.
        mean: ``m_0 [2]``.
        std: ``s``.
        config: t range and camera spread.
        n_quad: Gauss–Legendre nodes per t-interval.
        strata: Batch size ``m`` for the stratified-t figure, or ``None``.

    Returns:
        ``noise_only, between_cameras, between_timesteps, interaction, total`` and, with
        ``strata``, ``iid_batch_var`` and ``stratified_batch_var``.
    """
    th = theta.double()
    m0 = mean.double()
    kp = th.shape[0]
    s2 = std**2
    spread = config.camera_spread
    kappa = math.sin(spread) / spread if spread > 0 else 1.0

    def ab(t: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = vp_alpha_sigma(t)
        v = alpha**2 * s2 + sigma**2
        w = sigma**2
        return w * sigma * alpha / v, -w * alpha**2 * s2 / v

    def moments(low: float, high: float) -> dict[str, float]:
        t, w = _gauss_legendre(n_quad, low, high)
        a, b = ab(t)
        ea, ea2, eb2 = (w * a).sum(), (w * a * a).sum(), (w * b * b).sum()
        return {"a": float(ea), "var_a": float(ea2 - ea**2), "b2": float(eb2)}

    mo = moments(config.t_min, config.t_max)
    m0sq = float(m0.pow(2).sum())
    spread_c = m0sq * (1 - kappa**2)  # E_c ||R^T m0 - kappa m0||^2
    dev = float((th - kappa * m0).pow(2).sum())

    def parts(mom: dict[str, float]) -> dict[str, float]:
        out = {
            "noise_only": 2 * kp * mom["b2"],
            "between_cameras": kp * mom["a"] ** 2 * spread_c,
            "between_timesteps": mom["var_a"] * dev,
            "interaction": kp * mom["var_a"] * spread_c,
        }
        out["total"] = sum(out.values())
        return out

    out = parts(mo)
    if strata is not None:
        edges = np.linspace(config.t_min, config.t_max, strata + 1)
        var = sum(parts(moments(lo, hi))["total"] for lo, hi in zip(edges[:-1], edges[1:]))
        out["iid_batch_var"] = out["total"] / strata
        out["stratified_batch_var"] = var / strata**2
    return out


def gaussian_mu_star(t: Tensor, std: float) -> Tensor:
    r"""Best per-t coefficient on $h_0 = \varepsilon$ for a Gaussian prior: $\sigma^2/v$."""
    alpha, sigma = vp_alpha_sigma(t.double())
    return sigma**2 / (alpha**2 * std**2 + sigma**2)


def gaussian_noise_only_with(table: CoefficientTable, kp: int, std: float, config: ToyVRConfig,
                             n_quad: int = 96) -> float:
    r"""Exact noise-only part of $\omega(\hat\varepsilon - \mu(t)\varepsilon)$ for a Gaussian
    prior: $2K_p\,\mathbb{E}_t[\omega^2(\sigma^2/v - \mu(t))^2]$ (the table's own μ)."""
    edges = table.knots.tolist()
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):  # mu is linear on each knot interval
        t, w = _gauss_legendre(n_quad // 4 + 8, lo, hi)
        _, sigma = vp_alpha_sigma(t)
        diff = gaussian_mu_star(t, std) - table(t)[:, 0]
        total += float((w * sigma**4 * diff**2).sum()) * (hi - lo)
    return 2 * kp * total / (config.t_max - config.t_min)


__all__ += ["gaussian_mu_star", "gaussian_noise_only_with"]


class ToyCellTable:
    r"""A table of θ-gradients per (camera, t) cell and the correction
    $\tilde g = g - b_{i(c,t)} + \sum_j p_j b_j$ (module docstring, "Cells").

    Cells are ``n_cam_bins`` equal bins of $[-s, s]$ × ``n_t_bins`` equal bins of
    $[t_{\min}, t_{\max}]$; cameras and $t$ are uniform and independent, so $p_j = 1/n$.
    The table learns by $b_i \leftarrow (1 - \text{decay})\, b_i + \text{decay}\, g$ per sample
    (the first visit sets $b_i = g$), after :meth:`correct` used it.

    Args:
        n_cam_bins, n_t_bins: Bins of the camera angle and of $t$.
        dim: Length of a flattened θ-gradient (``2 K_p``).
        config: The ranges of $t$ and of the camera.
        decay: Update weight of a new sample.
        dtype: Of the table.
    """

    def __init__(self, n_cam_bins: int, n_t_bins: int, dim: int, config: ToyVRConfig,
                 decay: float = 0.1, dtype: torch.dtype = torch.float64) -> None:
        if n_cam_bins < 1 or n_t_bins < 1 or not 0.0 < decay <= 1.0:
            raise ValueError(f"ToyCellTable: bins must be >= 1 and decay in (0, 1], got "
                             f"{n_cam_bins}, {n_t_bins}, {decay}")
        self.n_cam_bins, self.n_t_bins, self.config, self.decay = (n_cam_bins, n_t_bins, config,
                                                                    decay)
        self.table = torch.zeros(n_cam_bins * n_t_bins, dim, dtype=dtype)
        self.seen = torch.zeros(n_cam_bins * n_t_bins, dtype=torch.bool)

    def cells(self, camera: Tensor, t: Tensor) -> Tensor:
        """Cell index ``[N]`` = camera bin · ``n_t_bins`` + t bin."""
        cfg, s = self.config, self.config.camera_spread
        cb = ((camera.double() + s) / (2 * s) * self.n_cam_bins).floor().long()
        tb = ((t.double() - cfg.t_min) / (cfg.t_max - cfg.t_min) * self.n_t_bins).floor().long()
        return (cb.clamp(0, self.n_cam_bins - 1) * self.n_t_bins
                + tb.clamp(0, self.n_t_bins - 1))

    def correct(self, g: Tensor, cells: Tensor) -> Tensor:
        """Per-sample corrected gradients ``[N, D]`` of per-sample gradients ``g [N, D]``."""
        return g - self.table[cells].to(g.dtype) + self.table.mean(0).to(g.dtype)

    def update(self, g: Tensor, cells: Tensor) -> None:
        """Folds the samples ``g [N, D]`` (in order) into their cells' entries."""
        for gi, c in zip(g.detach(), cells.tolist()):
            if self.seen[c]:
                self.table[c].mul_(1.0 - self.decay).add_(gi.to(self.table.dtype),
                                                          alpha=self.decay)
            else:
                self.table[c].copy_(gi)
                self.seen[c] = True


def _cell_quadrature(theta: Tensor, mean: Tensor, std: float, config: ToyVRConfig,
                     n_cam_bins: int, n_t_bins: int, n_quad: int):
    """Per cell: the exact ``E[m]`` ``[cells, 2 Kp]`` and ``E||m||²`` ``[cells]`` of the mean
    gradient ``m(c, t) = a(t)(θ − R(c)ᵀ m0)`` (Gauss–Legendre in c and t within the cell)."""
    th, m0 = theta.double(), mean.double()
    s2, s = std**2, config.camera_spread
    c_edges = np.linspace(-s, s, n_cam_bins + 1)
    t_edges = np.linspace(config.t_min, config.t_max, n_t_bins + 1)
    means, sq = [], []
    for c_lo, c_hi in zip(c_edges[:-1], c_edges[1:]):
        c, wc = _gauss_legendre(n_quad, c_lo, c_hi)
        rm0 = torch.einsum("nji,j->ni", rotation(c), m0)  # R(c)^T m0, [nc, 2]
        for t_lo, t_hi in zip(t_edges[:-1], t_edges[1:]):
            t, wt = _gauss_legendre(n_quad, t_lo, t_hi)
            alpha, sigma = vp_alpha_sigma(t)
            a = sigma**2 * sigma * alpha / (alpha**2 * s2 + sigma**2)  # [nt]
            m = a[None, :, None, None] * (th[None, None] - rm0[:, None, None, :])
            w = wc[:, None] * wt[None, :]
            means.append(torch.einsum("ct,ctkd->kd", w, m).flatten())
            sq.append(float(torch.einsum("ct,ct->", w, m.pow(2).sum((-1, -2)))))
    return torch.stack(means), torch.tensor(sq, dtype=torch.float64)


def gaussian_cell_means(theta: Tensor, mean: Tensor, std: float, config: ToyVRConfig,
                        n_cam_bins: int, n_t_bins: int, n_quad: int = 24) -> Tensor:
    r"""The oracle table: $\mathbb{E}[g \mid \text{cell}]$ of SDS's θ-gradient under the prior
    $\mathcal{N}(m_0, s^2 I)$, ``[n_cam_bins · n_t_bins, 2 K_p]`` (the noise term has mean 0)."""
    return _cell_quadrature(theta, mean, std, config, n_cam_bins, n_t_bins, n_quad)[0]


def gaussian_cell_remainder(theta: Tensor, mean: Tensor, std: float, config: ToyVRConfig,
                            n_cam_bins: int, n_t_bins: int, n_quad: int = 24) -> dict[str, float]:
    r"""What the cell control variate with the oracle table leaves of SDS's variance per
    evaluation (Gaussian prior; module docstring): ``noise_only`` ($\sigma^2_E$, untouched),
    ``within_cells`` ($\frac1n\sum_i\operatorname{tr}\mathrm{Var}(m\mid i)$), ``total`` (their
    sum), ``antithetic`` (per evaluation with pairs: ``2 · within_cells``) and ``sds_total``."""
    cell_mean, cell_sq = _cell_quadrature(theta, mean, std, config, n_cam_bins, n_t_bins, n_quad)
    within = float((cell_sq - cell_mean.pow(2).sum(-1)).mean())
    exact = gaussian_exact(theta, mean, std, config, n_quad=4 * n_quad)
    return {"noise_only": exact["noise_only"], "within_cells": within,
            "total": exact["noise_only"] + within, "antithetic": 2.0 * within,
            "sds_total": exact["total"]}


__all__ += ["ToyCellTable", "gaussian_cell_means", "gaussian_cell_remainder"]
