r"""SDS, VSD and SteinDreamer's SSD in miniature: 2-D points distilled from a mixture prior.

Render $x = g(\theta, c)$ (:mod:`sdlib.toy.renderer`, $K$ points per render), draw
$t \sim U[t_{\min}, t_{\max}]$ and $\varepsilon \sim \mathcal{N}(0, I)$ per render,
$x_t = \alpha_t x + \sigma_t\varepsilon$, $\omega(t) = \sigma_t^2$, and the exact prior noise
prediction $\hat\varepsilon(x_t)$ (:mod:`sdlib.toy.mixture`). Gradients on $x$ (DESIGN.md §2):

- SDS: $\omega(t)\,(\hat\varepsilon - \varepsilon)$.
- VSD: $\omega(t)\,(\hat\varepsilon - \hat\varepsilon_q(x_t; c))$ with $q$ the distribution of
  the current renders for camera $c$; "exact": $q_t$ is the exactly noised particle set
  $\frac1K\sum_j \mathcal{N}(\alpha_t R(c)\theta_j, \sigma_t^2 I)$; "learned": a tiny MLP
  $\hat\varepsilon_\psi(x_t, t, c)$ trained alongside on detached renders by the denoising loss.
- SSD: $\omega(t)\,(\hat\varepsilon - \mu\odot h)$, $h = \varepsilon\phi - \sigma_t\nabla_{x_t}\phi$
  (:func:`sdlib.control_variates.stein_control_variate`), with a learned linear baseline
  $\phi = \sum_f \beta_f \psi_f(x_t, t)$ (:class:`LinearBaseline`) and $\mu$ learned; both are
  fitted to $\min\|\omega(\hat\varepsilon - \mu\odot h)\|^2$ on detached $\hat\varepsilon$ **after**
  the step that used them, so each step's control variate is zero-mean.

Toy choice: the baseline is one scalar $\phi$ **per point** (a "pixel-wise" baseline), not one
per render as SteinDreamer's depth baseline. Stein's identity holds per point because each
point's noise is independent given $(\theta, c, t)$.

SDS and SSD have the same expected gradient for every $\mu, \beta$ (fixed during the
measurement); VSD's expectation differs by design (it adds the particles' repulsion).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from sdlib.control_variates import CoefficientConfig, LearnedCoefficient, stein_control_variate
from sdlib.toy.mixture import GaussianMixture, particle_eps_pred, vp_alpha_sigma
from sdlib.toy.renderer import render_particles

Method = Literal["sds", "vsd_exact", "vsd_learned", "ssd"]
"""The estimator: SDS, VSD with the exact particle score, VSD with a learned score, SSD."""

FeatureFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(x_t [M, 2], alpha [M], sigma [M]) -> features [M, F]``, differentiable in ``x_t``."""


def sds_grad(eps_pred: Tensor, eps: Tensor, weight: Tensor) -> Tensor:
    r"""SDS: $\omega(t)(\hat\varepsilon - \varepsilon)$.

    ``eps_pred, eps [N, *event]``, ``weight [N]`` -> ``[N, *event]``.
    """
    return weight.reshape(-1, *([1] * (eps.dim() - 1))) * (eps_pred - eps)


def vsd_grad(eps_pred: Tensor, eps_pred_q: Tensor, weight: Tensor) -> Tensor:
    r"""VSD: $\omega(t)(\hat\varepsilon - \hat\varepsilon_q)$; shapes as :func:`sds_grad`."""
    return weight.reshape(-1, *([1] * (eps_pred.dim() - 1))) * (eps_pred - eps_pred_q)


def ssd_grad(eps_pred: Tensor, h: Tensor, mu: Tensor | float, weight: Tensor) -> Tensor:
    r"""SSD: $\omega(t)(\hat\varepsilon - \mu\odot h)$; ``mu`` broadcastable to ``[*event]``."""
    return weight.reshape(-1, *([1] * (h.dim() - 1))) * (eps_pred - mu * h)


def time_features(x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    r"""$\psi = [1, \sigma^2, \sigma^4]$, ``[M, 3]``, constant in $x_t$."""
    zero = 0.0 * x_t.sum(-1)  # keeps the graph to x_t
    return torch.stack([1.0 + zero, sigma**2 + zero, sigma**4 + zero], dim=-1)


def quadratic_features(x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    r"""$\psi = [1, \sigma^2, \sigma^4, x_1, x_2, x_1^2, x_2^2, x_1x_2]$ of $x_t$, ``[M, 8]``."""
    x1, x2 = x_t[:, 0], x_t[:, 1]
    poly = torch.stack([x1, x2, x1 * x1, x2 * x2, x1 * x2], dim=-1)
    return torch.cat([time_features(x_t, alpha, sigma), poly], dim=-1)


def log_density_features(prior: GaussianMixture) -> FeatureFn:
    r"""$\psi = [1, \sigma^2, \sigma^4, \log p_t, \sigma^2\log p_t]$ (exact prior), ``[M, 5]``."""

    def features(x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        logp = prior.log_prob(x_t, alpha, sigma)
        return torch.cat(
            [time_features(x_t, alpha, sigma), torch.stack([logp, sigma**2 * logp], -1)], -1
        )

    return features


class LinearBaseline(nn.Module):
    r"""$\phi(x_t) = \sum_f \beta_f\,\psi_f(x_t, t)$, starting at $\phi \equiv 1$ ($\beta = e_0$).

    Its Stein control variate is linear in $\beta$: $h = \sum_f \beta_f h_f$ with
    $h_f = \varepsilon\psi_f - \sigma\nabla\psi_f$ (:meth:`feature_cvs`), so $\beta$ can be
    learned on detached $h_f$ without second-order autograd.

    Args:
        features: Feature map ``(x_t [M, 2], alpha [M], sigma [M]) -> [M, F]``; column 0 must be 1.
        n_features: ``F``.
        learn: Learn ``beta`` (else ``phi`` stays 1: SSD with ``phi = 1``, ``mu`` learned).
    """

    def __init__(self, features: FeatureFn, n_features: int, learn: bool = True) -> None:
        super().__init__()
        self.features = features
        beta = torch.zeros(n_features)
        beta[0] = 1.0
        self.beta = nn.Parameter(beta, requires_grad=learn)

    def forward(self, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """``phi(x_t)``: ``[M, 2] -> [M]``."""
        return self.features(x_t, alpha, sigma) @ self.beta.to(x_t.dtype)

    def feature_cvs(self, x_t: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        r"""Stein control variates of each feature, $h_f$: ``[M, F, 2]``."""
        cvs = []
        n_features = self.beta.shape[0]
        for f in range(n_features):
            h, _ = stein_control_variate(
                lambda z, f=f: self.features(z, alpha, sigma)[:, f], x_t, eps, sigma
            )
            cvs.append(h)
        return torch.stack(cvs, dim=1)


class EpsMLP(nn.Module):
    r"""Tiny $\hat\varepsilon_\psi(x_t, t, c)$: MLP on $[x_t, \cos/\sin(2^j t), \cos c, \sin c]$.

    Args:
        hidden: Hidden width.
        n_freq: Number of time frequencies.
    """

    def __init__(self, hidden: int = 64, n_freq: int = 4) -> None:
        super().__init__()
        self.register_buffer("freq", (2.0 ** torch.arange(n_freq)) * math.pi / 2, persistent=False)
        self.net = nn.Sequential(
            nn.Linear(2 + 2 * n_freq + 2, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x_t: Tensor, t: Tensor, camera: Tensor) -> Tensor:
        """``x_t [M, 2], t [M], camera [M] -> eps [M, 2]``."""
        tf = t[:, None] * self.freq.to(x_t.dtype)
        inp = torch.cat(
            [x_t, torch.cos(tf), torch.sin(tf), torch.cos(camera)[:, None],
             torch.sin(camera)[:, None]], dim=-1,
        )
        return self.net(inp)


@dataclass(frozen=True)
class ToyDistillConfig:
    """One toy distillation run (or one frozen-theta estimator)."""

    method: Method = "sds"
    """"sds", "vsd_exact", "vsd_learned" or "ssd"."""
    t_min: float = 0.02
    """Smallest diffusion time."""
    t_max: float = 0.98
    """Largest diffusion time."""
    camera_spread: float = 0.3
    """Camera angles are uniform in [-camera_spread, camera_spread] radians."""
    coefficient: CoefficientConfig = field(
        default_factory=lambda: CoefficientConfig(reduce="element", init=1.0, lr=1e-2)
    )
    """SSD's mu (per coordinate of a point: event shape [2])."""
    baseline_lr: float = 1e-2
    """Adam learning rate of the baseline's beta (SSD)."""
    eps_net_lr: float = 2e-3
    """Adam learning rate of VSD's learned eps network."""
    eps_net_steps: int = 2
    """Denoising steps of the eps network per distillation step (VSD learned)."""
    eps_net_batch: int = 8
    """Renders per denoising step of the eps network."""
    eps_net_hidden: int = 64
    """Hidden width of the eps network."""
    eps_net_warmup: int = 200
    """Denoising steps of the eps network on the initial theta before distillation starts."""


@dataclass(frozen=True)
class NoiseDraw:
    """One draw of (t, c, eps) for N renders of K points."""

    t: Tensor
    """Times ``[N]``."""
    camera: Tensor
    """Camera angles ``[N]``."""
    eps: Tensor
    """Noise ``[N, K, 2]``."""


def draw_noise(
    n: int, k: int, config: ToyDistillConfig, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, t: Tensor | float | None = None,
) -> NoiseDraw:
    """Draw ``t ~ U[t_min, t_max]`` (or use the given ``t``), cameras and ``eps ~ N(0, I)``."""
    if t is None:
        t = config.t_min + (config.t_max - config.t_min) * torch.rand(n, generator=generator,
                                                                      dtype=dtype)
    else:
        t = torch.as_tensor(t, dtype=dtype).expand(n).clone()
    camera = (2 * torch.rand(n, generator=generator, dtype=dtype) - 1) * config.camera_spread
    eps = torch.randn(n, k, 2, generator=generator, dtype=dtype)
    return NoiseDraw(t=t, camera=camera, eps=eps)


@dataclass(frozen=True)
class StepOutput:
    """Per-render gradients on x and what the auxiliary learners need."""

    grad: Tensor
    """Gradient on the renders ``[N, K, 2]``."""
    x: Tensor
    """Renders (detached) ``[N, K, 2]``."""
    eps_pred: Tensor
    """Prior noise prediction ``[N, K, 2]`` (detached)."""
    feature_cvs: Tensor | None
    """SSD only: per-feature Stein CVs ``[N, K, F, 2]``."""
    weight: Tensor
    """omega(t) ``[N]``."""


class ToyDistiller:
    """A method's gradient on the renders plus its learned parts (mu, beta, eps network).

    Args:
        prior: The exact mixture prior.
        config: The run configuration.
        baseline: SSD's baseline (ignored by other methods); ``None`` means phi = 1, mu learned.
        dtype: Dtype of the learned parts.
        seed: Seed of the eps network's initialisation.
    """

    def __init__(
        self, prior: GaussianMixture, config: ToyDistillConfig,
        baseline: LinearBaseline | None = None, dtype: torch.dtype = torch.float32, seed: int = 0,
    ) -> None:
        self.prior, self.config, self.dtype = prior, config, dtype
        self.coef = LearnedCoefficient(config.coefficient, (2,), dtype=dtype)
        self.baseline = baseline or LinearBaseline(time_features, 3, learn=False)
        self.baseline.to(dtype)
        params = [p for p in self.baseline.parameters() if p.requires_grad]
        self._beta_opt = torch.optim.Adam(params, lr=config.baseline_lr) if params else None
        self.eps_net: EpsMLP | None = None
        if config.method == "vsd_learned":
            torch.manual_seed(seed)
            self.eps_net = EpsMLP(config.eps_net_hidden).to(dtype)
            self._net_opt = torch.optim.Adam(self.eps_net.parameters(), lr=config.eps_net_lr)

    def train_eps_net(self, theta: Tensor, n_steps: int, generator: torch.Generator | None = None):
        """``n_steps`` denoising steps of the eps network on renders of ``theta`` (VSD learned)."""
        if self.eps_net is None:
            raise ValueError("train_eps_net needs method='vsd_learned'")
        cfg = self.config
        k = theta.shape[0]
        for _ in range(n_steps):
            d = draw_noise(cfg.eps_net_batch, k, cfg, generator, self.dtype)
            x = render_particles(theta.detach(), d.camera)
            alpha, sigma = vp_alpha_sigma(d.t)
            x_t = alpha[:, None, None] * x + sigma[:, None, None] * d.eps
            with torch.enable_grad():
                pred = self.eps_net(x_t.reshape(-1, 2), d.t.repeat_interleave(k),
                                    d.camera.repeat_interleave(k))
                loss = (pred - d.eps.reshape(-1, 2)).pow(2).sum(-1).mean()
                self._net_opt.zero_grad(set_to_none=True)
                loss.backward()
            self._net_opt.step()

    def grad_x(self, theta: Tensor, draw: NoiseDraw) -> StepOutput:
        """Gradient on the renders of ``theta [K, 2]`` for one draw (no update of anything)."""
        theta = theta.detach()
        x = render_particles(theta, draw.camera)  # [N, K, 2]
        n, k, _ = x.shape
        alpha, sigma = vp_alpha_sigma(draw.t)
        weight = sigma**2
        x_t = alpha[:, None, None] * x + sigma[:, None, None] * draw.eps
        flat = x_t.reshape(n * k, 2)
        a_pts, s_pts = alpha.repeat_interleave(k), sigma.repeat_interleave(k)
        eps_pred = self.prior.eps_pred(flat, a_pts, s_pts).reshape(n, k, 2)
        cvs = None
        method = self.config.method
        if method == "sds":
            grad = sds_grad(eps_pred, draw.eps, weight)
        elif method == "vsd_exact":
            parts = x.repeat_interleave(k, dim=0)  # [N*K, K, 2]: the render's own particle set
            eps_q = particle_eps_pred(flat, parts, a_pts, s_pts).reshape(n, k, 2)
            grad = vsd_grad(eps_pred, eps_q, weight)
        elif method == "vsd_learned":
            with torch.no_grad():
                eps_q = self.eps_net(flat, draw.t.repeat_interleave(k),
                                     draw.camera.repeat_interleave(k)).reshape(n, k, 2)
            grad = vsd_grad(eps_pred, eps_q, weight)
        elif method == "ssd":
            cvs = self.baseline.feature_cvs(flat, draw.eps.reshape(n * k, 2), a_pts, s_pts)
            h = (cvs * self.baseline.beta.detach()[None, :, None]).sum(1).reshape(n, k, 2)
            cvs = cvs.reshape(n, k, -1, 2)
            grad = ssd_grad(eps_pred, h, self.coef.mu, weight)
        else:
            raise ValueError(f"method {method!r} is not one of sds, vsd_exact, vsd_learned, ssd")
        return StepOutput(grad=grad, x=x, eps_pred=eps_pred, feature_cvs=cvs, weight=weight)

    def update(self, theta: Tensor, out: StepOutput, generator: torch.Generator | None = None):
        """After the step: fit mu and beta (SSD) or train the eps network (VSD learned)."""
        if self.config.method == "ssd":
            w = out.weight[:, None, None]
            f = (w * out.eps_pred).reshape(-1, 2)
            cvs = (w[..., None] * out.feature_cvs).reshape(f.shape[0], -1, 2)
            with torch.enable_grad():
                h = (cvs * self.baseline.beta[None, :, None]).sum(1)
                mu = self.coef._mu
                loss = (f - mu * h).pow(2).sum(-1).mean()
                self.coef._opt.zero_grad(set_to_none=True)
                if self._beta_opt is not None:
                    self._beta_opt.zero_grad(set_to_none=True)
                loss.backward()
            self.coef._opt.step()
            if self._beta_opt is not None:
                self._beta_opt.step()
        elif self.config.method == "vsd_learned":
            self.train_eps_net(theta, self.config.eps_net_steps, generator)

    def per_sample_theta_grads(self, theta: Tensor, draw: NoiseDraw) -> Tensor:
        r"""Per-render $\theta$-gradients $R(c_n)^\top \mathrm{grad}_n$, ``[N, K*2]``.

        The pull-back through :func:`render_particles` by autograd on a per-sample copy of
        ``theta`` (one backward for all renders).
        """
        n = draw.t.shape[0]
        out = self.grad_x(theta, draw)
        theta_rep = theta.detach()[None].expand(n, -1, -1).clone().requires_grad_(True)
        with torch.enable_grad():
            x = render_particles(theta_rep, draw.camera)
            loss = 0.5 * (x - (x - out.grad).detach()).pow(2).sum()
            (g,) = torch.autograd.grad(loss, theta_rep)
        return g.reshape(n, -1)


@dataclass
class ToyRun:
    """History of one toy distillation run."""

    thetas: list[Tensor]
    """Snapshots of theta ``[K, 2]`` (every ``snapshot_every`` steps, first and last)."""
    steps: list[int]
    """Step index of each snapshot."""
    grad_var_ema: list[float]
    """GradNormEMA variance proxy after each step."""
    distiller: ToyDistiller
    """The distiller at the end (its mu, beta, eps network)."""


def distill(
    theta0: Tensor, prior: GaussianMixture, config: ToyDistillConfig, steps: int,
    batch: int = 4, lr: float = 0.05, snapshot_every: int = 10,
    baseline: LinearBaseline | None = None, seed: int = 0,
    callback: Callable[[int, Tensor, ToyDistiller], None] | None = None,
) -> ToyRun:
    """Optimise ``theta [K, 2]`` with Adam on the method's gradient (mean over ``batch`` renders).

    Each step: draw noise, take the gradient with the current learned parts, step theta,
    then update the learned parts (DESIGN.md §2: mu after its use). ``callback(step, theta,
    distiller)`` runs at step 0 and at every snapshot (e.g. to measure variance there).
    """
    from sdlib.variance import GradNormEMA

    gen = torch.Generator().manual_seed(seed)
    dtype = theta0.dtype
    distiller = ToyDistiller(prior, config, baseline, dtype=dtype, seed=seed)
    if distiller.eps_net is not None:
        distiller.train_eps_net(theta0, config.eps_net_warmup, gen)
    theta = theta0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    ema = GradNormEMA(0.9)
    thetas, snap_steps, var_ema = [theta.detach().clone()], [0], []
    if callback is not None:
        callback(0, theta.detach().clone(), distiller)
    for step in range(1, steps + 1):
        draw = draw_noise(batch, theta.shape[0], config, gen, dtype)
        out = distiller.grad_x(theta, draw)
        with torch.enable_grad():
            x = render_particles(theta, draw.camera)
            loss = 0.5 * (x - (x - out.grad).detach()).pow(2).sum() / batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
        var_ema.append(ema.update(theta.grad))
        opt.step()
        distiller.update(theta, out, gen)
        if step % snapshot_every == 0 or step == steps:
            thetas.append(theta.detach().clone())
            snap_steps.append(step)
            if callback is not None:
                callback(step, theta.detach().clone(), distiller)
    return ToyRun(thetas=thetas, steps=snap_steps, grad_var_ema=var_ema, distiller=distiller)


def fit_ssd(
    distiller: ToyDistiller, theta: Tensor, n_steps: int, batch: int = 16,
    generator: torch.Generator | None = None,
) -> None:
    """Warm up SSD's mu and beta at a frozen ``theta`` (``n_steps`` Adam steps)."""
    for _ in range(n_steps):
        draw = draw_noise(batch, theta.shape[0], distiller.config, generator, distiller.dtype)
        distiller.update(theta, distiller.grad_x(theta, draw), generator)


__all__ = [
    "EpsMLP", "LinearBaseline", "Method", "NoiseDraw", "StepOutput", "ToyDistillConfig",
    "ToyDistiller", "ToyRun", "distill", "draw_noise", "fit_ssd", "log_density_features",
    "quadratic_features", "sds_grad", "ssd_grad", "time_features", "vsd_grad",
]
