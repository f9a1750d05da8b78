r"""Text-to-3D by score distillation: one explicit, steppable training loop for SDS, VSD and SSD.

A step (DESIGN.md §2), for a batch of ``B`` cameras ``c`` drawn from the camera config:

1. render the NeRF: ``rgb, depth, opacity = g(θ, c)`` at ``render_size²``;
2. resize to the prior's resolution and encode: ``x = E(rgb)`` (differentiable);
3. draw ``t``, ``ε``; ``x_t = α_t x + σ_t ε``; guided prediction ``ε̂`` with view-dependent
   prompts (no gradient through the UNet);
4. the method's gradient on ``x``: SDS ``ω(ε̂ − ε)``, VSD ``ω(ε̂ − ε̂_φ)``, SSD ``ω(ε̂ − μ ⊙ h)``;
5. pull it back to ``θ`` through ``loss = 0.5 ||x − (x − grad).detach()||² / B`` and step Adam;
   then the method's own update (VSD's LoRA step, SSD's ``μ``) and the occupancy grid.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sdlib.cameras import PAPER_CAMERAS, SHAPEZOO_CAMERAS, CameraConfig, Cameras, sample_cameras
from sdlib.control_variates import CoefficientConfig
from sdlib.distill.common import (
    TimestepConfig,
    add_noise,
    alpha_sigma,
    check_finite,
    pullback_loss,
    sample_timesteps,
    to_device,
    weighting,
)
from sdlib.distill.sds import sds_gradient
from sdlib.distill.ssd import SSD, SSDConfig, constant_baseline, depth_baseline, normal_baseline
from sdlib.distill.vsd import VSD, VSDConfig, vsd_gradient
from sdlib.nerf.field import FieldConfig, RadianceField
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import (
    RenderConfig,
    RenderOutput,
    make_estimator,
    render_cameras,
    update_occupancy,
)
from sdlib.variance import GradNormEMA

__all__ = [
    "METHODS",
    "TrainConfig",
    "shapezoo_config",
    "paper_config",
    "Trainer",
    "RunResult",
    "default_device",
]

Method = Literal["sds", "vsd", "ssd"]
METHODS: tuple[str, ...] = ("sds", "vsd", "ssd")


def default_device() -> str:
    """``"cuda"`` when a GPU is present, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one text-to-3D run needs (presets: shapezoo_config, paper_config)."""

    prompt: str
    """The text prompt (without view suffix)."""
    method: Method = "ssd"
    """Score distillation method: "sds", "vsd" or "ssd"."""
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
    device: str = field(default_factory=default_device)
    """Torch device."""
    compile: bool = False
    """Compile the priors' fixed-shape networks (UNet as CUDA graphs, VAE, depth model, VSD's
    LoRA UNet; :mod:`sdlib.accelerate`). CUDA only; pays off at the paper's size."""
    seed: int = 0
    """Seed of every random draw (cameras, t, ε, initialisation)."""
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
        if not (self.guidance_scale >= 0 and math.isfinite(self.guidance_scale)):
            raise ValueError(f"TrainConfig.guidance_scale={self.guidance_scale} must be >= 0")
        for name in ("lr_grid", "lr_mlp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be > 0")
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
    """
    device = overrides.get("device", default_device())
    cuda = str(device).startswith("cuda")
    common = dict(
        prompt=prompt, method=method, batch_size=1, render_size=64, cameras=PAPER_CAMERAS,
        nerf=FieldConfig(grid=HashGridConfig()), prior="stabilityai/stable-diffusion-2-1-base",
        depth="Intel/dpt-hybrid-midas", lr_grid=1e-2, lr_mlp=1e-3, device=device,
        prior_dtype="float16" if cuda else "float32", compile=cuda,
    )
    if method == "vsd":
        base = TrainConfig(
            **common, steps=25000, guidance_scale=7.5,
            timesteps=TimestepConfig(t_max_end=0.5, anneal_start=5000, anneal_end=5001),
            vsd=VSDConfig(lora_rank=16, lr=1e-4),
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


def _camera_normals(normals: Tensor, cameras: Cameras) -> Tensor:
    """World normals ``[B, H, W, 3]`` → camera frame (x right, y up, z towards the camera)."""
    rot = cameras.c2w[:, :3, :3]
    return torch.einsum("bji,bhwj->bhwi", rot, normals)


def normals_from_inverse_depth(inv_depth: Tensor) -> Tensor:
    """Camera-frame normals ``[B, 3, H, W]`` from an inverse-depth image ``[B, H, W]``.

    ``n ∝ (−∂d/∂x, ∂d/∂y, 1)`` with ``d = 1 / inv_depth`` up to scale: an estimator-derived
    normal map for SSD's normal baseline (any φ keeps SSD unbiased; a better one lowers variance).
    """
    depth = 1.0 / inv_depth.clamp_min(1e-3)
    d = depth[:, None]
    dx = F.pad(d[..., :, 2:] - d[..., :, :-2], (1, 1, 0, 0), mode="replicate") * 0.5
    dy = F.pad(d[..., 2:, :] - d[..., :-2, :], (0, 0, 1, 1), mode="replicate") * 0.5
    scale = d.shape[-1] / 2.0
    n = torch.cat([-dx * scale, dy * scale, torch.ones_like(d)], dim=1)
    return F.normalize(n, dim=1)


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
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.prior = prior or DiffusionPrior(
            model=config.prior, device=config.device, dtype=config.prior_dtype
        )
        needs_depth = config.method == "ssd" and config.ssd.baseline in ("depth", "normal")
        self.depth_prior = depth if (depth is not None or not needs_depth) else DepthPrior(
            model=config.depth, device=config.device, dtype=config.prior_dtype
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
        # training renders compute normals only for SSD's normal baseline (6 extra density
        # evaluations per sample otherwise spent for nothing)
        self._train_render = replace(
            config.render,
            compute_normals=config.render.compute_normals
            and config.method == "ssd" and config.ssd.baseline == "normal",
        )
        self.estimator = None
        if self.device.type == "cuda" and config.render.sampler != "dense":
            self.estimator = make_estimator(self.field, config.render, self.device)
        latent_shape = (
            self.prior.latent_channels,
            self.prior.image_size // self.prior.vae_scale_factor,
            self.prior.image_size // self.prior.vae_scale_factor,
        )
        self.ssd = SSD(config.ssd, latent_shape, device=self.device) if config.method == "ssd" \
            else None
        self.vsd = VSD(self.prior.unet, self.prior.alphas_cumprod, self.prior.prediction_type,
                       config.vsd) if config.method == "vsd" else None
        if config.compile:
            from sdlib import accelerate

            accelerate.compile_prior(self.prior,
                                     decoder=needs_depth and config.ssd.decoder == "vae")
            if needs_depth:
                accelerate.compile_depth(self.depth_prior)
            if self.vsd is not None:
                accelerate.compile_vsd(self.vsd)
        self.grad_norm = GradNormEMA(decay=0.98)
        self.step_count = 0
        if self.estimator is not None:
            update_occupancy(self.estimator, self.field, 0, config.render)

    # ------------------------------------------------------------------ one step
    def render(self, cameras: Cameras, size: int | None = None) -> RenderOutput:
        """Renders the NeRF at ``cameras`` (differentiable), ``size²`` pixels, as training does
        (normals only when SSD's normal baseline needs them)."""
        size = size or self.config.render_size
        return render_cameras(self.field, cameras, size, size, estimator=self.estimator,
                              config=self._train_render, generator=self.generator)

    def _encode(self, out: RenderOutput) -> Tensor:
        images = out.rgb.permute(0, 3, 1, 2)
        size = self.prior.image_size
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return self.prior.encode_images(images).float()

    def _baseline(self, out: RenderOutput, cameras: Cameras):
        kind = self.config.ssd.baseline
        if kind == "constant":
            return constant_baseline
        decode = (self.prior.decode_latents_linear if self.config.ssd.decoder == "linear"
                  else self.prior.decode_latents)
        if kind == "depth":
            return depth_baseline(decode, self.depth_prior, out.depth, out.opacity,
                                  self.config.ssd.mask_threshold)
        normals = out.normals if out.normals is not None else torch.zeros_like(out.rgb)
        return normal_baseline(
            decode, lambda img: normals_from_inverse_depth(self.depth_prior(img)),
            _camera_normals(normals, cameras), out.opacity, self.config.ssd.mask_threshold,
        )

    def latent_gradient(
        self,
        cameras: Cameras,
        out: RenderOutput,
        latents: Tensor,
        update_state: bool = True,
    ) -> tuple[Tensor, dict[str, Any]]:
        """The method's gradient ``[B, C, h, w]`` on the latents ``x`` of one batch of renders.

        Draws ``t`` and ``ε`` (on the CPU generator, for the same numbers on every device);
        with ``update_state`` SSD's ``μ`` and VSD's LoRA learn from this batch *after* the
        gradient is formed. The diagnostics are floats or 0-dim tensors.
        """
        cfg = self.config
        b = latents.shape[0]
        abar = self.prior.alphas_cumprod
        t_cpu = sample_timesteps(cfg.timesteps, self.step_count, b,
                                 self.prior.num_train_timesteps, generator=self.generator)
        t = to_device(t_cpu, self.device)
        eps = to_device(torch.randn(latents.shape, generator=self.generator), self.device)
        x = latents.detach()
        x_t = add_noise(x, eps, abar, t)
        w = weighting(cfg.timesteps, abar, t)
        if cfg.view_dependent_prompts:
            text = self.embeddings.for_views(cameras.view_indices().to(self.device))
        else:
            text = self.embeddings.repeat(b)
        with torch.no_grad():
            eps_pred = self.prior.predict_noise(x_t, t, text, cfg.guidance_scale).float()
        # values stay tensors until the step's end: a float() here would stall the host
        info: dict[str, Any] = {"t_mean": float(t_cpu.float().mean())}
        if cfg.method == "sds":
            grad = sds_gradient(eps_pred, eps, w)
        elif cfg.method == "ssd":
            assert self.ssd is not None
            _, sigma = alpha_sigma(abar, t)
            phi = self._baseline(out, cameras)
            grad, ssd_info = self.ssd.gradient(eps_pred, eps, x_t, sigma, w, phi,
                                               update=update_state)
            info.update(phi_mean=ssd_info["phi"].mean(), mu_mean=ssd_info["mu_mean"])
        else:
            assert self.vsd is not None
            eps_lora = self.vsd.predict_noise(x_t, t, text, cameras.c2w).float()
            grad = vsd_gradient(eps_pred, eps_lora, w)
            if update_state:
                for _ in range(cfg.vsd.train_steps_per_step):
                    info["lora_loss"] = self.vsd.train_step(x, text, cameras.c2w,
                                                            generator=self.generator)
        return grad, info

    def step(self) -> dict[str, float]:
        """One optimisation step; returns its metrics (also appended to ``metrics.jsonl``)."""
        cfg = self.config
        start = time.perf_counter()
        if cfg.compile:
            from sdlib.accelerate import mark_step

            mark_step()
        self.field.train()
        cameras = sample_cameras(cfg.cameras, cfg.batch_size, self.generator, self.device)
        out = self.render(cameras)
        latents = self._encode(out)
        grad, info = self.latent_gradient(cameras, out, latents)
        loss = pullback_loss(latents, grad, check=False) / cfg.batch_size
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        check_finite(grad, "Trainer.step")  # after queueing the backward, before the update
        self.optimizer.step()
        self.step_count += 1
        if self.estimator is not None:
            update_occupancy(self.estimator, self.field, self.step_count, cfg.render)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        record = {
            "step": self.step_count,
            "loss": float(loss.detach()),
            "grad_norm": float(grad.flatten(1).norm(dim=1).mean()),
            "grad_var_proxy": self.grad_norm.update(grad),
            "grad_norm_ema": self.grad_norm.norm,
            "opacity_mean": float(out.opacity.detach().mean()),
            "step_ms": 1000.0 * (time.perf_counter() - start),
            **{k: float(v) for k, v in info.items()},
        }
        self._append("metrics.jsonl", record)
        return record

    # ------------------------------------------------------------------ run
    def run(self, progress: bool = True, resume: bool = True) -> RunResult:
        """Trains to ``config.steps`` (resuming from ``out_dir/checkpoint.pt`` if present)."""
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

    @torch.no_grad()
    def render_eval(self, cameras: Cameras, size: int):
        """A :class:`sdlib.shapezoo.RenderResult` of the NeRF (no jitter) at ``cameras``."""
        from sdlib.shapezoo import RenderResult

        was_training = self.field.training
        self.field.eval()
        config = replace(self.config.render, stratified=False)
        out = render_cameras(self.field, cameras, size, size, estimator=self.estimator,
                             config=config)
        self.field.train(was_training)
        normals = out.normals if out.normals is not None else torch.zeros_like(out.rgb)
        return RenderResult(rgb=out.rgb, depth=out.depth, normals=normals,
                            mask=(out.opacity > 0.5).float())

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
            "grad_norm": dict(self.grad_norm.__dict__),
            "config": self.config.to_dict(),
        }
        if self.estimator is not None:
            state["estimator"] = self.estimator.state_dict()
        if self.ssd is not None:
            state["ssd"] = self.ssd.coefficient.state_dict()
        if self.vsd is not None:
            state["vsd"] = {
                "params": [p.detach().clone() for p in self.vsd.parameters],
                "optimizer": self.vsd.optimizer.state_dict(),
            }
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
        self.grad_norm.__dict__.update(state["grad_norm"])
        if self.estimator is not None and "estimator" in state:
            self.estimator.load_state_dict(state["estimator"])
        if self.ssd is not None and "ssd" in state:
            self.ssd.coefficient.load_state_dict(state["ssd"])
        if self.vsd is not None and "vsd" in state:
            with torch.no_grad():
                for p, v in zip(self.vsd.parameters, state["vsd"]["params"]):
                    p.copy_(v)
            self.vsd.optimizer.load_state_dict(state["vsd"]["optimizer"])

    def _append(self, name: str, record: dict[str, Any]) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / name, "a") as fh:
            fh.write(json.dumps(record) + "\n")
