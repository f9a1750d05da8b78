r"""Text-to-3D by score distillation: one explicit, steppable training loop for SDS, VSD and SSD.

A step (DESIGN.md §2), for a batch of ``B`` cameras ``c`` drawn from the camera config:

1. render the NeRF: ``rgb, depth, opacity = g(θ, c)`` at ``render_size²``;
2. resize to the prior's resolution and encode: ``x = E(rgb)`` (differentiable);
3. draw ``t``, ``ε``; ``x_t = α_t x + σ_t ε``; guided prediction ``ε̂`` with view-dependent
   prompts (no gradient through the UNet); all of it in one :class:`sdlib.distill.Draw`;
4. the estimator's control term (:mod:`sdlib.distill.estimator`; the trainer never branches on
   the method): the gradient on ``x`` is ``ω (ε̂ − control)`` — SDS ``control = ε``, VSD
   ``ε̂_φ``, SSD ``Σ μ ⊙ h``;
5. pull it back to ``θ`` through ``loss = 0.5 ||x − (x − grad).detach()||² / B`` and step Adam;
   then the estimator's own update (VSD's LoRA step, SSD's ``μ``) and the occupancy grid.

Sampling options (each keeps every sample's marginal exact, so every estimator stays unbiased):

* ``antithetic``: the batch of ``B = 2m`` draws is ``m`` renders, each noised with ``ε`` and
  ``−ε`` at one shared ``t``. For SDS the pair's ``ε`` terms cancel exactly,
  ``ω(ε̂(α x + σ ε) − ε) + ω(ε̂(α x − σ ε) + ε) = ω(ε̂₊ + ε̂₋)``, and so does every odd term of
  ``ε̂``'s expansion in ``ε``; half the renders, the same number of UNet evaluations.
* ``stratified``: the batch's timesteps are one per stratum of ``[t_min, t_max]`` (strata
  assigned by a random permutation, new every step) and its cameras one per azimuth stratum;
  this attacks the variance *between* cameras and timesteps, which no control variate in ``ε``
  can reduce.

Every step appends a line to ``metrics.jsonl`` (loss, step time, gradient-norm proxy, ``t``,
``μ`` and ``φ`` statistics); every ``eval_every`` steps ground-truth metrics are written when
the prompt is a ShapeZoo prompt; every ``checkpoint_every`` steps a checkpoint, from which
:meth:`Trainer.run` resumes. The output folder holds ``config.json``, the metrics, the
checkpoint, a turntable video and a mesh.

>>> cfg = shapezoo_config("a red ball", "ssd", steps=2000)       # doctest: +SKIP
>>> trainer = Trainer(cfg)                                        # doctest: +SKIP
>>> result = trainer.run()                                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sdlib.cameras import PAPER_CAMERAS, SHAPEZOO_CAMERAS, CameraConfig, Cameras, sample_cameras
from sdlib.cell_control_variate import CellControlVariate, CellCVConfig
from sdlib.control_variates import CoefficientConfig
from sdlib.distill import ESTIMATORS
from sdlib.distill.common import (
    TimestepConfig,
    add_noise,
    alpha_sigma,
    check_finite,
    decoded_pullback_loss,
    pullback_loss,
    sample_timesteps,
    timestep_bounds,
    to_device,
    weighting,
)
from sdlib.distill.estimator import Draw, Priors, distillation_gradient
from sdlib.distill.ssd import SSDConfig
from sdlib.distill.vsd import VSDConfig
from sdlib.nerf.field import FieldConfig, RadianceField
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.per_view import ViewParameters
from sdlib.nerf.render import (
    RenderConfig,
    RenderOutput,
    make_estimator,
    render_cameras,
    update_occupancy,
)
from sdlib.reproducibility import rng_state, set_rng_state
from sdlib.variance import GradNormEMA

__all__ = [
    "METHODS",
    "TrainConfig",
    "shapezoo_config",
    "paper_config",
    "Trainer",
    "RunResult",
    "render_result",
    "default_device",
]

Method = str
"""A score distillation method's name: a key of :data:`sdlib.distill.ESTIMATORS` (a plain
``str``, not a ``Literal``, so that registering an estimator there is the only edit it needs)."""
METHODS: tuple[str, ...] = tuple(ESTIMATORS)
"""The method names TrainConfig accepts (:data:`sdlib.distill.ESTIMATORS`)."""


def default_device() -> str:
    """``"cuda"`` when a GPU is present, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one text-to-3D run needs (presets: shapezoo_config, paper_config)."""

    prompt: str
    """The text prompt (without view suffix)."""
    method: Method = "ssd"
    """Score distillation method: a key of :data:`sdlib.distill.ESTIMATORS` ("sds", "vsd",
    "ssd")."""
    steps: int = 3000
    """Number of optimisation steps."""
    batch_size: int = 4
    """Cameras (views) per step."""
    render_size: int = 64
    """Render resolution (square); resized to the prior's resolution before encoding."""
    guidance_scale: float = 7.5
    """Classifier-free guidance ``s`` in diffusers' convention (threestudio's SDS uses s + 1)."""
    view_dependent_prompts: bool = True
    """Append "front view" / "side view" / ... by camera (DreamFusion)."""
    pullback: Literal["latent", "decoded"] = "latent"
    """How the gradient on the latents reaches θ: "latent" pulls it back through the VAE
    encoder (DESIGN.md §2, ``0.5 ||x − (x − grad).detach()||²``); "decoded" pulls the render
    towards the decoded target ``D(x − grad)`` in image space
    (:func:`sdlib.distill.common.decoded_pullback_loss`), which restores colours that a prior
    trained on noisy VAE latents cannot see through the encoder (notes/colour.md)."""
    antithetic: bool = False
    """Draw the batch as ``batch_size / 2`` renders, each noised with ``ε`` and ``−ε`` at one
    shared ``t`` (needs an even batch_size)."""
    stratified: bool = False
    """Stratify the batch's timesteps over ``[t_min, t_max]`` and its cameras in azimuth."""
    cell_cv: CellCVConfig = field(default_factory=CellCVConfig)
    """The control variate across (camera, t) cells (:mod:`sdlib.cell_control_variate`; off
    unless ``cell_cv.enabled``): one backward per view and a table of θ-gradients per cell."""
    timesteps: TimestepConfig = field(default_factory=TimestepConfig)
    """Timestep range, annealing and weighting ω(t)."""
    cameras: CameraConfig = SHAPEZOO_CAMERAS
    """Training camera distribution."""
    nerf: FieldConfig = field(default_factory=FieldConfig)
    """The NeRF (hash grid, MLPs, background)."""
    render: RenderConfig = field(default_factory=RenderConfig)
    """The renderer (occupancy grid on CUDA, dense on CPU)."""
    lr_grid: float = 1e-2
    """Adam learning rate of the hash grid."""
    lr_mlp: float = 1e-3
    """Adam learning rate of the MLPs and the background."""
    ssd: SSDConfig = field(default_factory=SSDConfig)
    """SSD's baseline and coefficient μ."""
    vsd: VSDConfig = field(default_factory=VSDConfig)
    """VSD's LoRA model."""
    prior: str = "shapezoo"
    """Diffusion prior: "shapezoo", a diffusers repo id or a local folder."""
    depth: str = "shapezoo"
    """Depth prior (SSD's depth baseline): "shapezoo", a transformers repo id or folder."""
    prior_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Precision of the priors (half precision on CUDA only)."""
    depth_dtype: Literal["float32", "float16", "bfloat16"] | None = None
    """Precision of the depth model (SSD's depth / normal baseline); ``None``: ``prior_dtype``.
    Stein's identity needs the exact ``∇φ``: in float16 a random DPT-Hybrid's ``∇φ`` was a
    relative ~0.6 from float32's (``notes/phi_precision/``), so :func:`paper_config` keeps
    the depth model in float32 beside a float16 diffusion prior."""
    device: str = field(default_factory=default_device)
    """Torch device."""
    compile: bool = False
    """Compile the priors' fixed-shape networks (UNet as CUDA graphs, VAE, depth model, VSD's
    LoRA UNet; :mod:`sdlib.accelerate`). CUDA only; pays off at the paper's size. The first
    step compiles (minutes cold; progress lines are printed) and the compiled graphs are kept
    in a persistent cache (``$SDLIB_COMPILE_CACHE``, default ``~/.cache/sdlib/inductor``;
    :func:`sdlib.accelerate.enable_compile_cache`) for the next run."""
    seed: int = 0
    """Seed of every random draw (cameras, t, ε, initialisation)."""
    deterministic: bool = False
    """Bitwise-reproducible CUDA runs (:func:`sdlib.reproducibility.use_deterministic`):
    PyTorch's deterministic algorithms, cuBLAS/cuDNN without non-deterministic kernels, and the
    hash grid's PyTorch backend instead of Triton's (whose backward adds atomically); slower.
    CPU runs are bitwise reproducible without it."""
    eval_every: int = 500
    """Ground-truth evaluation every N steps (ShapeZoo prompts only; 0 turns it off)."""
    checkpoint_every: int = 500
    """Checkpoint every N steps (and at the end)."""
    eval_size: int = 64
    """Resolution of the evaluation renders."""
    turntable_frames: int = 36
    """Frames of the final turntable video (0: none)."""
    mesh_resolution: int = 128
    """Marching-cubes grid of the final mesh (0: no mesh)."""
    mesh_threshold: float = 10.0
    """Density level of the mesh surface."""

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("TrainConfig.prompt is empty: give a text prompt, e.g. 'a red ball'")
        if self.method not in METHODS:
            raise ValueError(f"TrainConfig.method={self.method!r}; accepted: {METHODS}")
        for name in ("steps", "batch_size", "render_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be >= 1")
        for name in ("eval_every", "checkpoint_every", "turntable_frames", "mesh_resolution"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be >= 0")
        if self.antithetic and self.batch_size % 2:
            raise ValueError(
                f"TrainConfig.antithetic=True needs an even batch_size (pairs ε, −ε), got "
                f"batch_size={self.batch_size}"
            )
        if self.pullback not in ("latent", "decoded"):
            raise ValueError(
                f"TrainConfig.pullback={self.pullback!r}; accepted: 'latent', 'decoded'"
            )
        if not (self.guidance_scale >= 0 and math.isfinite(self.guidance_scale)):
            raise ValueError(f"TrainConfig.guidance_scale={self.guidance_scale} must be >= 0")
        for name in ("lr_grid", "lr_mlp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be > 0")
        if self.depth_dtype not in (None, "float32", "float16", "bfloat16"):
            raise ValueError(f"TrainConfig.depth_dtype={self.depth_dtype!r}; accepted: None "
                             "(prior_dtype's), 'float32', 'float16', 'bfloat16'")
        if self.compile and not self.device.startswith("cuda"):
            raise ValueError(
                f"TrainConfig.compile=True needs a CUDA device (device={self.device!r}); "
                "compilation pays off only at the paper's size on a GPU"
            )
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(
                f"TrainConfig.device={self.device!r} but CUDA is not available here; "
                "use device='cpu' (small sizes) or run on a GPU machine"
            )

    @property
    def depth_precision(self) -> str:
        """The depth model's dtype name: ``depth_dtype``, else ``prior_dtype``."""
        return self.depth_dtype or self.prior_dtype

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SHAPEZOO_FIELD = FieldConfig(
    grid=HashGridConfig(n_levels=12, log2_table_size=16, base_resolution=16, growth_factor=1.447),
)
"""A smaller hash grid for ShapeZoo's 64² objects (12 levels, 2^16 entries per level)."""


def shapezoo_config(prompt: str, method: Method = "ssd", **overrides: Any) -> TrainConfig:
    """The ShapeZoo preset: shipped priors, ShapeZoo cameras (fixed distance and fovy), 64²."""
    base = TrainConfig(
        prompt=prompt, method=method, steps=3000, batch_size=4, render_size=64,
        guidance_scale=7.5, cameras=SHAPEZOO_CAMERAS, nerf=SHAPEZOO_FIELD,
        timesteps=TimestepConfig(t_min=0.02, t_max=0.98),
        prior="shapezoo", depth="shapezoo",
        ssd=SSDConfig(baseline="depth", coefficient=CoefficientConfig(reduce="channel", lr=1e-2)),
        vsd=VSDConfig(lora_rank=8, lr=1e-3),
    )
    return replace(base, **overrides)


def paper_config(prompt: str, method: Method = "ssd", **overrides: Any) -> TrainConfig:
    """The paper's scale (threestudio defaults, DESIGN.md §5): SD 2.1-base, MiDaS, 64² → 512².

    SDS and SSD: guidance 100, 10k steps. VSD: guidance 7.5, LoRA lr 1e-4, 25k steps,
    ``t_max`` 0.98 → 0.5 at step 5000. On CUDA the priors run in float16 (threestudio's
    ``half_precision_weights``) and compiled (``compile=True``); on the CPU in float32, eager.
    VSD's LoRA step uses a static loss scale of 1024 (``VSDConfig.loss_scale``).
    """
    device = overrides.get("device", default_device())
    cuda = str(device).startswith("cuda")
    common = dict(
        prompt=prompt, method=method, batch_size=1, render_size=64, cameras=PAPER_CAMERAS,
        nerf=FieldConfig(grid=HashGridConfig()), prior="stabilityai/stable-diffusion-2-1-base",
        depth="Intel/dpt-hybrid-midas", lr_grid=1e-2, lr_mlp=1e-3, device=device,
        prior_dtype="float16" if cuda else "float32", depth_dtype="float32", compile=cuda,
    )
    if method == "vsd":
        base = TrainConfig(
            **common, steps=25000, guidance_scale=7.5,
            timesteps=TimestepConfig(t_max_end=0.5, anneal_start=5000, anneal_end=5001),
            # loss scale 1024: measured on the H200 (notes/perf_paper_step.md §8), the float16
            # LoRA gradient at S = 1 loses 25% of its entries to underflow (relative error 4e-2);
            # at S = 1024, 0.03% (9.7e-4). Exact in float32 too (a power of two).
            vsd=VSDConfig(lora_rank=16, lr=1e-4, loss_scale=1024.0),
        )
    else:
        base = TrainConfig(**common, steps=10000, guidance_scale=100.0)
    return replace(base, **overrides)


@dataclass
class RunResult:
    """What :meth:`Trainer.run` leaves behind."""

    out_dir: Path
    """The run's folder."""
    steps: int
    """Steps completed."""
    metrics: dict[str, float]
    """Final ground-truth metrics (empty for non-ShapeZoo prompts)."""
    turntable: Path | None
    """The turntable video (mp4, or gif without ffmpeg)."""
    mesh: Path | None
    """The mesh (.obj; a .glb beside it)."""


@torch.no_grad()
def render_result(field: RadianceField, cameras: Cameras, size: int, config: RenderConfig,
                  estimator=None):
    """A field's :class:`sdlib.shapezoo.RenderResult` at ``cameras`` (``size x size``, no
    jitter, in eval mode; the field's mode is restored): what ground-truth metrics compare.
    ``mask`` is ``opacity > 0.5``; ``normals`` are zeros when ``config`` computes none.

    Renders one camera at a time: inside-out scene views put many samples on every ray, and
    eight of them at once took 8 GiB per run on an H200 (several runs evaluating at the same
    time ran out of memory)."""
    from sdlib.shapezoo import RenderResult

    was_training = field.training
    field.eval()
    config = replace(config, stratified=False)
    outs = [render_cameras(field, cameras[i:i + 1], size, size, estimator=estimator,
                           config=config)
            for i in range(len(cameras))]
    field.train(was_training)
    rgb = torch.cat([o.rgb for o in outs])
    normals = (torch.cat([o.normals for o in outs]) if outs[0].normals is not None
               else torch.zeros_like(rgb))
    return RenderResult(rgb=rgb, depth=torch.cat([o.depth for o in outs]), normals=normals,
                        mask=(torch.cat([o.opacity for o in outs]) > 0.5).float())


class Trainer:
    """Owns the NeRF, the priors, the optimiser and the method's state; one :meth:`step` at a time.

    Args:
        config: the run's configuration.
        out_dir: output folder (config, metrics, checkpoint, video, mesh); None writes nothing.
        prior: an already loaded :class:`sdlib.priors.DiffusionPrior` to reuse (else loaded).
        depth: an already loaded :class:`sdlib.priors.DepthPrior` (SSD's depth/normal baseline).
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        prior: Any = None,
        depth: Any = None,
    ) -> None:
        from sdlib.priors import DepthPrior, DiffusionPrior

        self.config = config
        self.device = torch.device(config.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if prior is None and self.device.type == "cuda":  # before anything is loaded
            from sdlib.preflight import check_gpu_memory

            check_gpu_memory(config)
        if config.deterministic:
            from sdlib.reproducibility import use_deterministic

            use_deterministic(True)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.prior = prior or DiffusionPrior(
            model=config.prior, device=config.device, dtype=config.prior_dtype
        )
        estimator_cls = ESTIMATORS[config.method]
        needs_depth = estimator_cls.needs_depth(config)
        self.depth_prior = depth if (depth is not None or not needs_depth) else DepthPrior(
            model=config.depth, device=config.device, dtype=config.depth_precision
        )
        self.embeddings = self.prior.text_embeddings(config.prompt)
        self.field = RadianceField(config.nerf).to(self.device)
        grid_params = list(self.field.encoding.parameters())
        grid_ids = {id(p) for p in grid_params}
        other = [p for p in self.field.parameters() if id(p) not in grid_ids]
        self.optimizer = torch.optim.Adam(
            [{"params": grid_params, "lr": config.lr_grid}, {"params": other, "lr": config.lr_mlp}],
            betas=(0.9, 0.99), eps=1e-15,
        )
        self.estimator = None
        """The occupancy-grid sampler (nerfacc; CUDA), not to be confused with the gradient
        estimator :attr:`method`."""
        if self.device.type == "cuda" and config.render.sampler != "dense":
            self.estimator = make_estimator(self.field, config.render, self.device)
        latent_shape = (
            self.prior.latent_channels,
            self.prior.image_size // self.prior.vae_scale_factor,
            self.prior.image_size // self.prior.vae_scale_factor,
        )
        self.priors = Priors(self.prior, self.depth_prior, latent_shape, self.device)
        self.method = estimator_cls.build(config, self.priors)
        """The gradient estimator (:class:`sdlib.distill.estimator.Estimator`)."""
        # training renders compute normals only when the estimator reads them (6 extra density
        # evaluations per sample otherwise spent for nothing)
        self._train_render = replace(
            config.render, compute_normals=config.render.compute_normals
            and getattr(self.method, "needs_normals", False),
        )
        self.compile_cache: Path | None = None
        """The persistent compile cache folder (``config.compile`` only;
        :func:`sdlib.accelerate.enable_compile_cache`)."""
        if config.compile:
            from sdlib import accelerate

            self.compile_cache = accelerate.enable_compile_cache()
            accelerate.compile_prior(self.prior)
            compile_method = getattr(self.method, "compile", None)
            if compile_method is not None:
                compile_method()
        self.cell_cv = self.new_cell_cv(config.cell_cv) if config.cell_cv.enabled else None
        """The cell control variate's table (``config.cell_cv.enabled`` only)."""
        self.last_draw = None
        """The draw (``t``, ``ε``, ...) of the latest :meth:`latent_gradient`."""
        self.grad_norm = GradNormEMA(decay=0.98)
        self.step_count = 0
        self._first_step_reported = False
        self.train_seconds = 0.0
        """Wall-clock seconds spent in :meth:`step` (evaluation and export excluded)."""
        if self.estimator is not None:
            update_occupancy(self.estimator, self.field, 0, config.render)

    # ------------------------------------------------------------------ one step
    def render(self, cameras: Cameras, size: int | None = None,
               normals: bool = False, views: ViewParameters | None = None) -> RenderOutput:
        """Renders the NeRF at ``cameras`` (differentiable), ``size²`` pixels, as training does:
        with normals when this trainer's estimator reads them (SSD's normal baseline) or when
        ``normals`` asks for them (another estimator's at the same renders), and
        ``config.render.compute_normals`` allows them; ``views``: per-view aliases of θ
        (:func:`sdlib.nerf.render.render_cameras`)."""
        size = size or self.config.render_size
        config = self._train_render
        if normals and not config.compute_normals:
            config = replace(config, compute_normals=self.config.render.compute_normals)
        return render_cameras(self.field, cameras, size, size, estimator=self.estimator,
                              config=config, generator=self.generator, views=views)

    def prior_images(self, out: RenderOutput) -> Tensor:
        """The renders ``[B, 3, S, S]`` resized to the prior's resolution (differentiable)."""
        images = out.rgb.permute(0, 3, 1, 2)
        size = self.prior.image_size
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return images

    def encode(self, out: RenderOutput) -> Tensor:
        """The prior's latents ``[B, C, h, w]`` of the renders (differentiable), float32."""
        return self.prior.encode_images(self.prior_images(out)).float()

    def pullback(self, out: RenderOutput, latents: Tensor, grad: Tensor) -> Tensor:
        """The surrogate loss whose θ-gradient is the step (``config.pullback``), per view."""
        if self.config.pullback == "decoded":
            images = self.prior_images(out).float()
            loss = decoded_pullback_loss(images, latents.detach(), grad,
                                         lambda z: self.prior.decode_latents(z).float(),
                                         check=False)
        else:
            loss = pullback_loss(latents, grad, check=False)
        return loss / self.config.batch_size

    def sample_views(self, n: int | None = None) -> tuple[Cameras, RenderOutput, Tensor]:
        """Draws the step's cameras, renders and encodes them: ``(cameras, render, latents)``.

        With ``antithetic`` only half the batch is rendered and every render appears twice
        (samples ``2i`` and ``2i + 1``), so the pull-back sums both members' gradients.
        """
        cameras, out, latents, _ = self._sample_views(n, apart=False)
        return cameras, out, latents

    def _sample_views(self, n: int | None, apart: bool
                      ) -> tuple[Cameras, RenderOutput, Tensor, ViewParameters | None]:
        """:meth:`sample_views`, and with ``apart`` the renders' samples see per-view aliases
        of θ (:class:`sdlib.nerf.per_view.ViewParameters`, the fourth value; None without
        ``apart``), so that one backward gives each render's θ-gradient (the cell control
        variate's per-sample gradients). The renders and latents are the batched ones."""
        cfg = self.config
        n = n or cfg.batch_size
        n_render = n // 2 if cfg.antithetic else n
        cameras = sample_cameras(cfg.cameras, n_render, self.generator, self.device,
                                 stratified=cfg.stratified)
        views = None
        if apart:
            views = ViewParameters(self.field, self._parameters(), n_render,
                                   cfg.render_size * cfg.render_size)
        out = self.render(cameras, views=views)
        latents = self.encode(out)
        if cfg.antithetic:
            idx = torch.arange(n_render, device=self.device).repeat_interleave(2)
            cameras = cameras[idx]
            out = out.select(idx)
            latents = latents[idx]
        return cameras, out, latents, views

    def make_draw(
        self,
        cameras: Cameras,
        out: RenderOutput,
        latents: Tensor,
        t: Tensor | None = None,
        eps: Tensor | None = None,
    ) -> Draw:
        """Draws ``t`` and ``ε`` for the batch (on the CPU generator, for the same numbers on
        every device), noises the latents and calls the prior once: a :class:`Draw`.

        ``t`` ``[B]`` and ``ε`` ``[B, C, h, w]`` (CPU tensors) may be given instead (the
        variance decomposition fixes them by design); then nothing is drawn.
        """
        cfg = self.config
        b = latents.shape[0]
        abar = self.prior.alphas_cumprod
        n = b // 2 if cfg.antithetic else b
        if t is not None and eps is not None:
            t_cpu, eps_cpu = t, eps
        else:
            t_cpu = sample_timesteps(cfg.timesteps, self.step_count, n,
                                     self.prior.num_train_timesteps, generator=self.generator,
                                     stratified=cfg.stratified)
            eps_cpu = torch.randn((n, *latents.shape[1:]), generator=self.generator)
            if cfg.antithetic:  # pairs (ε, −ε) at one t
                t_cpu = t_cpu.repeat_interleave(2)
                eps_cpu = torch.stack([eps_cpu, -eps_cpu], dim=1).flatten(0, 1)
        t = to_device(t_cpu, self.device)
        eps = to_device(eps_cpu, self.device)
        x = latents.detach()
        x_t = add_noise(x, eps, abar, t)
        _, sigma = alpha_sigma(abar, t)
        text_plain = self.embeddings.repeat(b)
        if cfg.view_dependent_prompts:
            text = self.embeddings.for_views(cameras.view_indices().to(self.device))
        else:
            text = text_plain
        with torch.no_grad():
            eps_pred = self.prior.predict_noise(x_t, t, text, cfg.guidance_scale).float()
        return Draw(cameras=cameras, render=out, x=x, t=t, eps=eps, x_t=x_t, sigma=sigma,
                    weight=weighting(cfg.timesteps, abar, t), eps_pred=eps_pred, text=text,
                    text_plain=text_plain, step=self.step_count, generator=self.generator)

    def latent_gradient(
        self,
        cameras: Cameras,
        out: RenderOutput,
        latents: Tensor,
        update_state: bool = True,
    ) -> tuple[Tensor, dict[str, Any]]:
        """The method's gradient ``[B, C, h, w]`` on the latents ``x`` of one batch of renders.

        Draws ``t`` and ``ε`` (:meth:`make_draw`), asks the estimator for its control term,
        and with ``update_state`` lets the estimator learn from this batch *after* the
        gradient is formed. The diagnostics are floats or 0-dim tensors.
        """
        draw = self.make_draw(cameras, out, latents)
        self.last_draw = draw
        estimate = self.method.control(draw)
        grad = distillation_gradient(draw, estimate.control)
        # values stay tensors until the step's end: a float() here would stall the host
        info: dict[str, Any] = {"t_mean": draw.t.float().mean(), **estimate.diagnostics}
        if update_state:
            info.update(self.method.update(draw, estimate))
        return grad, info

    def _parameters(self) -> list[Tensor]:
        """θ in the optimizer's order."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def new_cell_cv(self, config: CellCVConfig) -> CellControlVariate:
        """An empty cell control variate table for this trainer's θ, cameras and prior."""
        return CellControlVariate(config, [p.shape for p in self._parameters()],
                                  self.config.cameras.azimuth, self.prior.num_train_timesteps,
                                  self.device)

    def theta_gradient(self, update_state: bool = True, update_cells: bool | None = None
                       ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Draws a batch and leaves its θ-gradient in the parameters' ``.grad`` (no update).

        Returns ``(loss, grad, info)``: the surrogate loss (detached with the cell control
        variate), the gradient on the latents ``[B, C, h, w]`` and the diagnostics. With
        ``config.cell_cv.enabled`` one backward gives each render's θ-gradient (per-view
        aliases of θ, :mod:`sdlib.nerf.per_view`) and the batch's θ-gradient is the
        cell-corrected mean (:mod:`sdlib.cell_control_variate`); the table learns from
        the batch afterwards if ``update_cells`` (default: ``update_state``, which also lets the
        gradient estimator learn).
        """
        self.field.train()
        cameras, out, latents, views = self._sample_views(None, apart=self.cell_cv is not None)
        grad, info = self.latent_gradient(cameras, out, latents, update_state=update_state)
        info["opacity_mean"] = out.opacity.detach().mean()
        self.optimizer.zero_grad(set_to_none=True)
        if self.cell_cv is None:
            loss = self.pullback(out, latents, grad)
            loss.backward()
        else:
            update = update_state if update_cells is None else update_cells
            loss = self._cell_corrected_backward(cameras, out, latents, views, grad, update)
            info["cell_cv_filled"] = self.cell_cv.filled
        return loss, grad, info

    def _cell_corrected_backward(self, cameras: Cameras, out: RenderOutput, latents: Tensor,
                                 views: ViewParameters, grad: Tensor, update: bool) -> Tensor:
        """One backward of the batch's surrogate loss with respect to each render's aliases of
        θ (``views``, from :meth:`_sample_views` with ``apart``): every render's θ-gradient at
        once. Sets ``.grad`` to the cell-corrected mean and returns the (detached) loss.

        With antithetic pairs a render carries its pair's two samples (one ``t``, one cell):
        the table learns one visit per render, the pair's mean gradient."""
        cv, b, renders = self.cell_cv, grad.shape[0], len(views.aliases)
        loss = self.pullback(out, latents, grad)
        flat = views.flat_gradients(loss)  # [renders, P]: ∂L/∂θ_r, summing to ∂L/∂θ
        cells = cv.cells(cameras.azimuth, self.last_draw.t)  # [B]
        lo, hi = timestep_bounds(self.config.timesteps, self.step_count,
                                 self.prior.num_train_timesteps)
        # the batch's θ-gradient (the plain step's), corrected
        corrected = cv.correct(flat.sum(0), cells, cv.probabilities(lo, hi))
        for p, g in zip(self._parameters(), cv.unflatten(corrected)):
            p.grad = g
        if update:  # a render's samples' mean G_k, where G_k = B ∂L_k/∂θ
            per = b // renders
            cv.update(flat * (b / per), cells[::per])
        return loss.detach()

    def step(self) -> dict[str, float]:
        """One optimisation step; returns its metrics (also appended to ``metrics.jsonl``)."""
        cfg = self.config
        start = time.perf_counter()
        if cfg.compile:
            from sdlib.accelerate import mark_step

            mark_step()
        loss, grad, info = self.theta_gradient()
        check_finite(grad, "Trainer.step")  # after queueing the backward, before the update
        self.optimizer.step()
        self.step_count += 1
        if self.estimator is not None:
            update_occupancy(self.estimator, self.field, self.step_count, cfg.render)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        step_seconds = time.perf_counter() - start
        self.train_seconds += step_seconds
        if cfg.compile and not self._first_step_reported:  # this step compiled
            self._first_step_reported = True
            print(f"first step (compilation included) took {step_seconds:.1f} s; compile "
                  f"cache: {self.compile_cache}", flush=True)
        record = {
            "step": self.step_count,
            "loss": float(loss.detach()),
            "grad_norm": float(grad.flatten(1).norm(dim=1).mean()),
            "grad_var_proxy": self.grad_norm.update(grad),
            "grad_norm_ema": self.grad_norm.norm,
            "step_ms": 1000.0 * step_seconds,
            "train_seconds": self.train_seconds,
            **{k: float(v) for k, v in info.items()},
        }
        self._append("metrics.jsonl", record)
        return record

    # ------------------------------------------------------------------ run
    def run(self, progress: bool = True, resume: bool = True,
            callback: Callable[[Trainer, dict[str, Any]], None] | None = None) -> RunResult:
        """Trains to ``config.steps`` (resuming from ``out_dir/checkpoint.pt`` if present).

        ``callback(trainer, record)`` runs after every step (and its evaluation, before its
        checkpoint), with the step's ``metrics.jsonl`` record: e.g. a variance probe.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            if resume and (self.out_dir / "checkpoint.pt").exists():
                self.load_checkpoint(self.out_dir / "checkpoint.pt")
        bar = tqdm(total=cfg.steps, initial=self.step_count, disable=not progress,
                   desc=f"{cfg.method} '{cfg.prompt}'")
        metrics: dict[str, float] = {}
        while self.step_count < cfg.steps:
            record = self.step()
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3g}", ms=f"{record['step_ms']:.0f}")
            if cfg.eval_every and self.step_count % cfg.eval_every == 0:
                metrics = self.evaluate()
            if callback is not None:
                callback(self, record)
            if cfg.checkpoint_every and self.step_count % cfg.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        self.save_checkpoint()
        if self.is_shapezoo_prompt and metrics.get("step") != self.step_count:
            metrics = self.evaluate()
        turntable_path, mesh_path = self.export()
        if self.out_dir is not None:
            (self.out_dir / "final_metrics.json").write_text(json.dumps(metrics, indent=2))
        return RunResult(self.out_dir or Path("."), self.step_count, metrics, turntable_path,
                         mesh_path)

    # ------------------------------------------------------------------ evaluation, export
    @property
    def is_shapezoo_prompt(self) -> bool:
        from sdlib.shapezoo import PROMPTS, SCENE_PROMPTS

        return self.config.prompt in PROMPTS or self.config.prompt in SCENE_PROMPTS

    def render_eval(self, cameras: Cameras, size: int):
        """A :class:`sdlib.shapezoo.RenderResult` of the NeRF (no jitter) at ``cameras``
        (:func:`render_result`)."""
        return render_result(self.field, cameras, size, self.config.render, self.estimator)

    def evaluate(self) -> dict[str, float]:
        """Ground-truth metrics at the evaluation cameras (+ classifier accuracy); {} otherwise."""
        if not self.is_shapezoo_prompt:
            return {}
        from sdlib.cameras import eval_cameras
        from sdlib.priors import load_classifier
        from sdlib.shapezoo import evaluate, is_scene_prompt, object_index

        size = self.config.eval_size
        if not hasattr(self, "_classifier"):
            try:
                self._classifier = load_classifier("shapezoo", device=self.device)
            except OSError:  # no shipped classifier: report the other metrics
                self._classifier = None
        classifier = self._classifier
        if is_scene_prompt(self.config.prompt):  # inside-out views (shapezoo.scene_metrics)
            from sdlib.shapezoo.scene_metrics import evaluate_scene

            scores = evaluate_scene(lambda cams, h, w: self.render_eval(cams, h),
                                    self.config.prompt, height=size, width=size,
                                    classifier=classifier, device=self.device)
            scores["step"] = self.step_count
            self._append("eval.jsonl", scores)
            return scores
        cams = eval_cameras(8, device=self.device)
        result = self.render_eval(cams, size)
        scores = evaluate(result, self.config.prompt, height=size, width=size, device=self.device)
        if classifier is not None:
            images = result.rgb.permute(0, 3, 1, 2)
            if images.shape[-1] != classifier.config.image_size:
                images = F.interpolate(images, size=classifier.config.image_size, mode="bilinear",
                                       align_corners=False)
            pred = classifier.predict(images)
            target = object_index(self.config.prompt)
            scores["classifier_accuracy"] = float((pred == target).float().mean())
        scores["step"] = self.step_count
        scores["train_seconds"] = self.train_seconds
        self._append("eval.jsonl", scores)
        return scores

    def export(self) -> tuple[Path | None, Path | None]:
        """Writes the turntable video and the mesh into ``out_dir``; returns their paths."""
        if self.out_dir is None:
            return None, None
        from sdlib.nerf.export import extract_mesh, save_mesh, turntable

        video = mesh_path = None
        if self.config.turntable_frames:
            video = turntable(self.field, self.out_dir / "turntable.mp4",
                              n_frames=self.config.turntable_frames,
                              height=self.config.eval_size, width=self.config.eval_size,
                              distance=sum(self.config.cameras.distance) / 2,
                              fovy=sum(self.config.cameras.fovy) / 2,
                              estimator=self.estimator, config=self.config.render)
        if self.config.mesh_resolution:
            try:
                mesh = extract_mesh(self.field, self.config.mesh_resolution,
                                    self.config.mesh_threshold)
            except ValueError as err:  # empty or full field: say so, keep the rest
                self._append("eval.jsonl", {"step": self.step_count, "mesh_error": str(err)})
            else:
                mesh_path = save_mesh(mesh, self.out_dir / "mesh.obj")
                save_mesh(mesh, self.out_dir / "mesh.glb")
        return video, mesh_path

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": self.step_count,
            "field": self.field.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "rng": rng_state(),
            "grad_norm": dict(self.grad_norm.__dict__),
            "train_seconds": self.train_seconds,
            "config": self.config.to_dict(),
            "method_state": self.method.state_dict(),
        }
        if self.estimator is not None:
            state["estimator"] = self.estimator.state_dict()
        if self.cell_cv is not None:
            state["cell_cv"] = self.cell_cv.state_dict()
        return state

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Saves the full state (atomically) to ``path`` or ``out_dir/checkpoint.pt``."""
        if path is None:
            if self.out_dir is None:
                return None
            path = self.out_dir / "checkpoint.pt"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restores the state saved by :meth:`save_checkpoint`."""
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state["config"]["method"] != self.config.method or \
                state["config"]["prompt"] != self.config.prompt:
            raise ValueError(
                f"checkpoint {path} is for method={state['config']['method']!r}, prompt="
                f"{state['config']['prompt']!r}; this run is {self.config.method!r}, "
                f"{self.config.prompt!r}"
            )
        self.step_count = int(state["step"])
        self.field.load_state_dict(state["field"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        if "rng" in state:
            set_rng_state(state["rng"])
        self.grad_norm.__dict__.update(state["grad_norm"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if self.estimator is not None and "estimator" in state:
            self.estimator.load_state_dict(state["estimator"])
        if self.cell_cv is not None:
            if "cell_cv" not in state:
                raise ValueError(f"checkpoint {path} has no cell control variate table; this "
                                 "run has TrainConfig.cell_cv.enabled=True")
            self.cell_cv.load_state_dict(state["cell_cv"])
        self.load_method_state(state)

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restores the estimator's state (μ, LoRA, baseline network) from a checkpoint dict
        (also one written before the estimator interface, with "ssd" / "vsd" keys)."""
        if "method_state" in state:
            self.method.load_state_dict(state["method_state"])
        elif "ssd" in state:
            self.method.load_state_dict({"coefficient": state["ssd"]})
        elif "vsd" in state:
            self.method.load_state_dict(state["vsd"])

    def _append(self, name: str, record: dict[str, Any]) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / name, "a") as fh:
            fh.write(json.dumps(record) + "\n")
