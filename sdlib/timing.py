"""GPU timing for the benchmark scripts: CUDA events after warm-up, median of repeats.

>>> t = cuda_timings(lambda: model(x), repeats=30, warmup=5)   # doctest: +SKIP
>>> t["median"], t["q1"], t["q3"]                               # doctest: +SKIP
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

__all__ = ["cuda_timings"]


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
