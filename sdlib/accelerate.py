r"""Compiled forms of the fixed-shape networks in a distillation step (DESIGN.md §6).

At the paper's size (SD 2.1-base at 64² latents, a 512² VAE, DPT-Hybrid at 384²) eager PyTorch
spends most of a step launching kernels from the host: the UNet alone costs the same at batch
1, 2 and 4. What a step calls at fixed shapes can be compiled once and replayed:

====================================  ===============================  =======================
network                               called                           compiled as
====================================  ===============================  =======================
prior UNet, guided ``ε̂`` ``[2B,4,h,w]``  no gradient                      Inductor + CUDA graphs
                                                                       (``reduce-overhead``)
VAE encoder ``[B,3,H,W] → [B,8,h,w]``   forward + backward to the input  Inductor, channels-last
VAE decoder (SSD's φ)                 forward + backward to the input  Inductor, channels-last,
                                                                       sub-pixel upsamplers
depth model (SSD's φ)                 forward + backward to the input  Inductor + CUDA graphs
VSD's LoRA UNet                       no-grad prediction; training     Inductor + CUDA graphs,
                                                                       channels-last
====================================  ===============================  =======================

The VAE's attention uses the explicit softmax(QKᵀ)V processor and its convolutions run
channels-last inside the compiled graph (see :func:`compile_prior`); the decoder's "nearest 2×
upsample, then 3×3 convolution" runs as the equal 2×2 convolutions at low resolution
(:class:`SubpixelUpsample2D`, tested against diffusers' module). Measured and *not* done:
channels-last *weights* (eager or compiled) and cuDNN autotuning made the VAE slower; forced
channels-last made DPT-Hybrid slower and did nothing for the prior's no-grad UNet (7.80 vs 7.86
ms, while it takes a UNet forward + backward from 18.1 to 14.0 ms); φ on a second CUDA stream
beside the UNet made the pair slower (``notes/perf_paper_step.md``). The NeRF renderer stays
eager: nerfacc's packed samples change in number every step.

Functions here replace modules *in place* with ``torch.compile`` wrappers (the originals stay
reachable as ``module._orig_mod``) and are idempotent. Results match the eager modules up to
floating-point reassociation; ``scripts/bench_paper_step.py`` measures both the speed and the
difference.

CUDA-graph replay (``reduce-overhead``) reuses its output buffers: a caller that keeps the
UNet's output across two calls must copy it (the trainer converts it to float32 at once), and
each optimisation step begins with :func:`mark_step`.

**Compilation time.** Compilation happens at a module's first call and costs minutes at the
paper's size (H200, 16 host cores: 2-3 minutes per method). Each compiled module prints one line
when its first call (in each of no-grad and grad mode) starts compiling and one with its
seconds when it is done, and the same for its first backward. :func:`enable_compile_cache`
(called by the trainer when ``TrainConfig.compile``) keeps Inductor's compiled graphs, Triton
kernels and AOTAutograd's joint graphs in a persistent folder, so a second process compiling
the same networks at the same shapes loads them instead (Dynamo's tracing and the CUDA-graph
recording still run in every process).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SubpixelUpsample2D",
    "compile_depth",
    "compile_prior",
    "compile_vsd",
    "enable_compile_cache",
    "is_compiled",
    "mark_step",
    "subpixel_conv_weights",
    "subpixel_upsamplers",
]


def is_compiled(module: Any) -> bool:
    """True if ``module`` is a ``torch.compile`` wrapper."""
    return hasattr(module, "_orig_mod")


COMPILE_CACHE_ENV = "SDLIB_COMPILE_CACHE"
"""Environment variable naming the compile cache folder (:func:`enable_compile_cache`)."""


def default_compile_cache() -> Path:
    """``$SDLIB_COMPILE_CACHE`` if set, else ``~/.cache/sdlib/inductor``."""
    env = os.environ.get(COMPILE_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sdlib" / "inductor"


def enable_compile_cache(path: str | os.PathLike | None = None) -> Path:
    """Keeps compiled graphs between processes: Inductor's FX graph cache (with its Triton
    kernels) and AOTAutograd's cache, in one persistent folder.

    The folder is ``path`` if given; else an already set ``TORCHINDUCTOR_CACHE_DIR`` (left as
    it is); else ``$SDLIB_COMPILE_CACHE``; else ``~/.cache/sdlib/inductor``. It is written to
    ``TORCHINDUCTOR_CACHE_DIR`` (Triton's kernels go to its ``triton/`` subfolder unless
    ``TRITON_CACHE_DIR`` is set) and ``torch._inductor.config.fx_graph_cache`` and
    ``torch._functorch.config.enable_autograd_cache`` are turned on (where this torch has them).
    Call it before the first compilation of the process: Inductor reads the folder when it
    first compiles. Idempotent; returns the folder (created).

    The caches are keyed by the graph, the input shapes, the torch / Triton versions and the
    GPU, so a warm cache is only reused by the same code at the same sizes on the same machine
    kind (``notes/perf_paper_step.md`` has the cold and warm times).
    """
    if path is not None:
        folder = Path(path).expanduser()
    elif os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        folder = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    else:
        folder = default_compile_cache()
    folder = folder.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    if hasattr(inductor_config, "fx_graph_cache"):
        inductor_config.fx_graph_cache = True
    if hasattr(functorch_config, "enable_autograd_cache"):
        functorch_config.enable_autograd_cache = True
    return folder


def compile_cache_dir() -> str:
    """The folder Inductor caches in now (``TORCHINDUCTOR_CACHE_DIR`` or its temp default)."""
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env:
        return env
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return default_cache_dir()
    except ImportError:  # an older layout of torch._inductor
        return "(Inductor's default temporary folder)"


def compile_cache_counters() -> dict[str, int]:
    """This process's cache hits and misses so far (Inductor's FX graph cache and AOTAutograd's
    cache), from ``torch._dynamo.utils.counters``: e.g. ``{"fxgraph_cache_hit": 12, ...}``."""
    from torch._dynamo.utils import counters

    out: dict[str, int] = {}
    for group in ("inductor", "aot_autograd"):
        for key, value in counters.get(group, {}).items():
            if "cache" in key:
                out[key] = int(value)
    return out


def _tensor_leaves(obj: Any) -> list[Tensor]:
    """The tensors in a module's output (a tensor, a tuple/list, or a dict-like output)."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensor_leaves(item)]
    return []


def _compiled_node(tensor: Tensor) -> Any:
    """The autograd node of the compiled graph behind ``tensor`` (a ``CompiledFunction``
    node within a few views of it), else ``tensor.grad_fn``."""
    frontier, seen = [tensor.grad_fn], 0
    while frontier and seen < 16:
        node = frontier.pop(0)
        seen += 1
        if node is None:
            continue
        if "CompiledFunction" in type(node).__name__ or "CompiledFunction" in node.name():
            return node
        frontier.extend(n for n, _ in node.next_functions)
    return tensor.grad_fn


class _FirstCallReport:
    """Prints when a compiled module's first call (per grad mode) and its first backward start
    compiling, and how many seconds each took. Attached by :func:`_compile`; never raises."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.seen: set[bool] = set()
        self.start: float | None = None
        self.backward_done = False

    def _print(self, text: str) -> None:
        print(text, flush=True)

    def pre(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        grad = torch.is_grad_enabled()
        if grad in self.seen:
            return
        self.seen.add(grad)
        self.start = time.perf_counter()
        what = "" if grad else ", no grad"
        self._print(f"compiling {self.name}{what} (first call: {self.kind}; minutes cold, "
                    f"seconds with a warm cache at {compile_cache_dir()})")

    def post(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if self.start is None:
            return
        seconds, self.start = time.perf_counter() - self.start, None
        self._print(f"compiled {self.name} in {seconds:.1f} s")
        if self.backward_done:
            return
        try:
            outs = [t for t in _tensor_leaves(output) if t.grad_fn is not None]
        except Exception:  # noqa: BLE001 - a progress line must never break a step
            return
        if outs:
            self._watch_backward(_compiled_node(outs[0]))

    def _watch_backward(self, node: Any) -> None:
        clock: dict[str, float] = {}

        def before(grad_outputs: Any) -> None:
            if not self.backward_done and "t" not in clock:
                clock["t"] = time.perf_counter()
                self._print(f"compiling {self.name} backward (first backward; minutes cold)")

        def after(grad_inputs: Any, grad_outputs: Any) -> None:
            if not self.backward_done and "t" in clock:
                self.backward_done = True
                self._print(f"compiled {self.name} backward in "
                            f"{time.perf_counter() - clock['t']:.1f} s")

        try:
            node.register_prehook(before)
            node.register_hook(after)
        except Exception:  # noqa: BLE001 - no hooks on this node: no backward lines
            pass


def _compile(module: nn.Module, mode: str | None, channels_last: bool = False,
             name: str = "module") -> nn.Module:
    """``torch.compile`` at fixed shapes; ``channels_last``: Inductor runs every convolution
    channels-last (``force_layout_optimization``) whatever the layout of the inputs. The first
    calls print their compilation time (:class:`_FirstCallReport`, under ``name``)."""
    if is_compiled(module):
        return module
    cudagraphs = mode == "reduce-overhead"
    options = {"force_layout_optimization": True} if channels_last else None
    if mode is not None and options is not None:
        options["triton.cudagraphs"] = cudagraphs
        mode = None  # torch.compile takes a mode or options, not both
    compiled = torch.compile(module, mode=mode, dynamic=False, options=options)
    report = _FirstCallReport(name, "Inductor + CUDA graphs" if cudagraphs else "Inductor")
    compiled.register_forward_pre_hook(report.pre, with_kwargs=True)
    compiled.register_forward_hook(report.post, with_kwargs=True)
    return compiled  # type: ignore[return-value]


def compile_prior(prior: Any, decoder: bool = False, unet_mode: str = "reduce-overhead") -> Any:
    """Compiles a :class:`sdlib.priors.DiffusionPrior`'s UNet and VAE encoder (and decoder).

    Args:
        prior: the prior; its ``unet``, ``vae.encoder`` (and ``vae.decoder``) are replaced.
        decoder: also compile the VAE decoder (SSD's depth and normal baselines decode ``x_t``).
        unet_mode: ``torch.compile`` mode of the UNet, called without gradient:
            ``"reduce-overhead"`` (CUDA graphs) or ``"default"``.

    Returns:
        ``prior``.
    """
    from diffusers.models.attention_processor import AttnProcessor

    # The VAE's one attention (64² = 4096 tokens, a single head of 512 channels) is too wide
    # for flash attention; SDPA's memory-efficient kernel takes 6.6 ms for its backward alone.
    # The explicit QKᵀ → softmax → V (a 4096² score matrix, 64 MB) is a few matmuls.
    prior.vae.set_attn_processor(AttnProcessor())
    prior.unet = _compile(prior.unet, None if unet_mode == "default" else unet_mode,
                          name="prior UNet")
    # cuDNN runs the VAE's 512² convolutions in NHWC; left NCHW, every convolution is wrapped in
    # two layout transposes (4 ms of the decoder's 24). Inductor's forced channels-last layout
    # removes them: encoder fwd+bwd 11.6 → 9.9 ms, decoder 24.0 → 19.0 ms with the sub-pixel
    # upsamplers, which also replace the nearest-upsample backward's scatter (bench_vae.py).
    prior.vae.encoder = _compile(prior.vae.encoder, None, channels_last=True,
                                 name="VAE encoder")
    if decoder:
        compile_decoder(prior)
    return prior


def compile_decoder(prior: Any) -> Any:
    """Compiles a prior's VAE decoder (channels-last, sub-pixel upsamplers); SSD's depth and
    normal baselines decode ``x_t`` through it, forward and backward. Returns ``prior``."""
    if is_compiled(prior.vae.decoder):
        return prior
    from diffusers.models.attention_processor import AttnProcessor

    prior.vae.set_attn_processor(AttnProcessor())
    subpixel_upsamplers(prior.vae.decoder)
    prior.vae.decoder = _compile(prior.vae.decoder, None, channels_last=True,
                                 name="VAE decoder")
    return prior


def compile_depth(depth: Any, mode: str = "reduce-overhead") -> Any:
    """Compiles a :class:`sdlib.priors.DepthPrior`'s model (forward and backward to the input).

    ``"reduce-overhead"``: DPT-Hybrid's BiT stem standardises every convolution's weights on
    each call, hundreds of small kernels that CUDA graphs replay at once (fwd+bwd 24.4 → 7.8
    ms). Forced channels-last convolutions, which pay in the VAE, made it slower (8.6 ms).
    """
    depth.model = _compile(depth.model, None if mode == "default" else mode,
                           name="depth model")
    return depth


def compile_vsd(vsd: Any, mode: str = "reduce-overhead") -> Any:
    """Compiles a :class:`sdlib.distill.vsd.VSD`'s LoRA UNet (prediction and training step).

    ``"reduce-overhead"`` replays both the no-grad prediction and the training forward and
    backward as CUDA graphs (the LoRA weights are updated in place, so the graphs stay valid).
    Convolutions run channels-last (no cuDNN layout transposes): the training step 26.4 → 23.5
    ms on the H100.
    """
    vsd.unet = _compile(vsd.unet, None if mode == "default" else mode, channels_last=True,
                        name="VSD LoRA UNet")
    return vsd


def mark_step() -> None:
    """Tells CUDA-graph replay that a new optimisation step begins (outputs may be reused)."""
    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
    if mark is not None:
        mark()


# ---------------------------------------------------------------------- sub-pixel upsampling
def subpixel_conv_weights(weight: Tensor) -> Tensor:
    r"""The four 2×2 kernels equal to "nearest 2× upsample, then a 3×3 convolution".

    With ``U[p, q] = x[⌊p/2⌋, ⌊q/2⌋]`` and ``y = w ⋆ U`` (3×3, padding 1), output row ``2i + a``
    reads ``U`` rows ``2i + a − 1 … 2i + a + 1``, i.e. ``x`` rows ``(i − 1, i, i)`` for ``a = 0``
    and ``(i, i, i + 1)`` for ``a = 1``. Folding the repeated rows (and columns alike):

        a = 0:  taps (i − 1, i)  with kernel rows (w₀, w₁ + w₂)
        a = 1:  taps (i, i + 1)  with kernel rows (w₀ + w₁, w₂)

    Args:
        weight: ``[O, C, 3, 3]``.

    Returns:
        ``[4·O, C, 2, 2]``: phases ``(a, b) = (0,0), (0,1), (1,0), (1,1)``, ``O`` channels each.
    """
    if weight.ndim != 4 or tuple(weight.shape[-2:]) != (3, 3):
        raise ValueError(f"subpixel_conv_weights: expected [O, C, 3, 3], got {tuple(weight.shape)}")

    def fold(w: Tensor, phase: int, dim: int) -> Tensor:
        w0, w1, w2 = w.unbind(dim)
        pair = (w0, w1 + w2) if phase == 0 else (w0 + w1, w2)
        return torch.stack(pair, dim)

    rows = [fold(weight, a, 2) for a in (0, 1)]  # [O, C, 2, 3]
    return torch.cat([fold(r, b, 3) for r in rows for b in (0, 1)])


class SubpixelUpsample2D(nn.Module):
    r"""diffusers' ``Upsample2D`` (nearest 2×, then a 3×3 convolution), computed at low resolution.

    The upsampled map repeats every pixel four times, so the 3×3 convolution over it equals,
    phase by phase, a 2×2 convolution over the input (:func:`subpixel_conv_weights`): one
    convolution ``[B, C, H + 2, W + 2] → [B, 4·O, H + 1, W + 1]`` whose four phases are
    interleaved into ``[B, O, 2H, 2W]``. The same function (up to floating-point reassociation)
    for 16 instead of 36 multiply-adds per ``H·W·C·O``; the SD VAE decoder's three upsamplers
    are 28% of its FLOPs, so it does 16% fewer. The weights are folded on every call from the
    wrapped ``conv`` (3×3 kernels: a few kernels), so they stay the module's own.
    """

    def __init__(self, upsample: nn.Module) -> None:
        super().__init__()
        conv = getattr(upsample, "conv", None)
        ok = (
            isinstance(conv, nn.Conv2d) and upsample.use_conv and not upsample.use_conv_transpose
            and upsample.interpolate and upsample.norm is None and conv.kernel_size == (3, 3)
            and conv.padding == (1, 1) and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1
        )
        if not ok:
            raise ValueError(
                "SubpixelUpsample2D: accepts an Upsample2D with use_conv=True, interpolate=True, "
                f"no norm and a 3×3 convolution of padding 1; got {upsample!r}"
            )
        self.channels = upsample.channels
        self.out_channels = upsample.out_channels
        self.conv = conv

    def forward(self, hidden_states: Tensor, output_size: Any = None, *args: Any,
                **kwargs: Any) -> Tensor:
        """``[B, C, H, W] → [B, O, 2H, 2W]``."""
        b, c, h, w = hidden_states.shape
        if output_size is not None and tuple(output_size) != (2 * h, 2 * w):
            raise ValueError(f"SubpixelUpsample2D: output_size={output_size}; accepted: None "
                             f"or {(2 * h, 2 * w)} (exact 2× upsampling)")
        conv = self.conv
        bias = None if conv.bias is None else conv.bias.repeat(4)
        y = F.conv2d(F.pad(hidden_states, (1, 1, 1, 1)), subpixel_conv_weights(conv.weight), bias)
        o = self.out_channels
        y = y.unflatten(1, (2, 2, o))  # [B, a, b, O, H + 1, W + 1]
        rows = [torch.stack([y[:, a, 0, :, a:a + h, :w], y[:, a, 1, :, a:a + h, 1:]], dim=-1)
                for a in (0, 1)]  # [B, O, H, W, 2] each
        out = torch.stack([r.flatten(-2) for r in rows], dim=3)  # [B, O, H, 2, 2W]
        return out.reshape(b, o, 2 * h, 2 * w)


def subpixel_upsamplers(module: nn.Module) -> int:
    """Replaces, in place, every eligible diffusers ``Upsample2D`` under ``module`` by a
    :class:`SubpixelUpsample2D` sharing its convolution. Returns how many were replaced."""
    from diffusers.models.upsampling import Upsample2D

    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Upsample2D):
                try:
                    sub = SubpixelUpsample2D(child)
                except ValueError:
                    continue
                setattr(parent, name, sub)  # also right for a ModuleList: its names are "0", "1", …
                count += 1
    return count
