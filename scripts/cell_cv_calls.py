"""Operator calls per batch of each variance-reduction design: a CPU proxy for GPU launches.

    python scripts/cell_cv_calls.py [--real-encoding]

At the probe's sizes (``scripts/cell_cv_probe.py``: 32² renders, an 8-level grid, batches of 8
UNet evaluations) the step is launch-bound on a GPU: on the H200 SDS took 38 ms per batch and
the cell design with per-view graphs 121 ms, the same 3.2× as the number of operator calls the
CPU profiler counts here. This script counts, per design, the top-level ``aten`` calls of one
batch (after warm-up) and those that are not views, reshapes or dtype moves (closer to kernel
launches). On CUDA the hash encoding is one Triton kernel each way, while the CPU's torch
reference makes ~340 calls per field evaluation; by default it is replaced, for counting only,
by a stand-in of one call each way (``--real-encoding`` keeps the reference). Timings printed
are the CPU's and say nothing about the GPU.
"""

from __future__ import annotations

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

import sdlib.nerf.hashgrid as hashgrid
from sdlib.cell_control_variate import CellCVConfig
from sdlib.distill import SDS
from sdlib.gradient_variance import _sampling, pullback_loss
from sdlib.nerf.field import FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.train import Trainer, shapezoo_config

VIEW_LIKE = {
    "aten::reshape", "aten::view", "aten::select", "aten::unsqueeze", "aten::transpose",
    "aten::slice", "aten::expand", "aten::as_strided", "aten::squeeze", "aten::permute",
    "aten::t", "aten::detach", "aten::alias", "aten::split", "aten::split_with_sizes",
    "aten::unbind", "aten::_reshape_alias", "aten::flatten", "aten::narrow", "aten::contiguous",
    "aten::view_as", "aten::lift_fresh", "aten::item", "aten::_local_scalar_dense",
    "aten::is_nonzero", "aten::empty", "aten::empty_like", "aten::to", "aten::_to_copy",
    "aten::chunk", "aten::resolve_conj", "aten::resolve_neg",
}


class _OneCallEncoding(torch.autograd.Function):
    """Counting stand-in for the Triton encoding: one call forward, one backward."""

    @staticmethod
    def forward(ctx, x, table, dim):
        ctx.table_shape = table.shape
        return x.new_zeros(x.shape[0], dim)

    @staticmethod
    def backward(ctx, grad):
        return None, grad.new_zeros(ctx.table_shape), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real-encoding", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = shapezoo_config(
        "a red car with yellow headlights", "sds", device="cpu", steps=10, batch_size=2,
        render_size=32, eval_every=0, checkpoint_every=0, eval_size=64, turntable_frames=0,
        mesh_resolution=0,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=8, log2_table_size=14, base_resolution=8,
                                             growth_factor=1.5)),
        render=RenderConfig(n_samples=32, chunk=65536, compute_normals=False))
    trainer = Trainer(cfg)
    for _ in range(3):
        trainer.step()
    if not args.real_encoding:
        hashgrid.encode_reference = lambda x, table, layout: _OneCallEncoding.apply(
            x, table, len(layout.resolutions) * table.shape[1])
    params = trainer._parameters()
    both = {"antithetic": True, "stratified": True}
    cells = CellCVConfig(enabled=True)
    designs = {"sds": {}, "sds_antithetic_stratified": both, "cells": {"cell_cv": cells},
               "cells_antithetic_stratified": {**both, "cell_cv": cells}}
    print(f"{'design':30s} {'calls':>6s} {'non-view':>9s} {'CPU ms':>7s}")
    for name, changes in designs.items():
        with _sampling(trainer, method=SDS(), batch_size=8, **changes):
            with_cells = "cell_cv" in changes
            if with_cells:
                trainer.cell_cv = trainer.new_cell_cv(trainer.config.cell_cv)

            def batch(with_cells: bool = with_cells) -> None:
                if with_cells:  # as gradient_variance.batch_variance times them
                    trainer.theta_gradient(update_state=False, update_cells=True)
                else:
                    cameras, out, latents = trainer.sample_views()
                    grad, _ = trainer.latent_gradient(cameras, out, latents, update_state=False)
                    loss = pullback_loss(latents, grad) / 8
                    torch.autograd.grad(loss, params, allow_unused=True)

            for _ in range(3):
                batch()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                batch()
            trainer.cell_cv = None
        events = [e for e in prof.events() if e.name.startswith("aten::")]
        top = [e for e in events
               if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
        counts = collections.Counter(e.name for e in top)
        non_view = sum(v for k, v in counts.items() if k not in VIEW_LIKE)
        ms = sum(e.cpu_time_total for e in top) / 1000.0
        print(f"{name:30s} {len(top):6d} {non_view:9d} {ms:7.0f}", flush=True)


if __name__ == "__main__":
    main()
