"""Timing for the benchmark scripts: CUDA events after warm-up, median of repeats (the host's
clock on the CPU).

>>> t = cuda_timings(lambda: model(x), repeats=30, warmup=5)   # doctest: +SKIP
>>> t["median"], t["q1"], t["q3"]                               # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["cuda_timings", "summarize_ms", "timings", "wall_timings"]


def cuda_timings(fn: Callable[[], object], repeats: int = 30, warmup: int = 5) -> dict[str, float]:
    """Milliseconds per call of ``fn``: ``{"median", "q1", "q3", "n"}``.

    ``warmup`` calls first (compilation, autotuning, caches), then one synchronisation, then
    ``repeats`` calls, each between two CUDA events and synchronised on the second.
    """
    if repeats < 2:
        raise ValueError(f"cuda_timings: repeats={repeats} must be >= 2")
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    q1, _, q3 = statistics.quantiles(times, n=4)
    return {"median": statistics.median(times), "q1": q1, "q3": q3, "n": repeats}


def summarize_ms(times: list[float]) -> dict[str, float]:
    """``{"median", "q1", "q3", "n"}`` of a list of milliseconds (at least 2)."""
    if len(times) < 2:
        raise ValueError(f"summarize_ms: {len(times)} times; at least 2 are needed")
    q1, _, q3 = statistics.quantiles(times, n=4)
    return {"median": statistics.median(times), "q1": q1, "q3": q3, "n": len(times)}


def wall_timings(fn: Callable[[], object], repeats: int = 30, warmup: int = 5) -> dict[str, float]:
    """As :func:`cuda_timings`, timed by the host's clock (``time.perf_counter``): for the CPU."""
    if repeats < 2:
        raise ValueError(f"wall_timings: repeats={repeats} must be >= 2")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - start))
    return summarize_ms(times)


def timings(fn: Callable[[], object], device: torch.device | str, repeats: int = 30,
            warmup: int = 5) -> dict[str, float]:
    """:func:`cuda_timings` on a CUDA device, :func:`wall_timings` elsewhere."""
    if torch.device(device).type == "cuda":
        return cuda_timings(fn, repeats=repeats, warmup=warmup)
    return wall_timings(fn, repeats=repeats, warmup=warmup)
