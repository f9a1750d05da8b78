"""Shared pieces of the prior training commands: rendered data, argparse from dataclasses, logs.

Data are ShapeZoo renders made on the fly on the training device (``sdlib.shapezoo.sample_views``):
objects (camera preset ``SHAPEZOO_CAMERAS``, view-suffixed captions) and, a fraction
:data:`SCENE_FRACTION` of them, scenes seen from inside (``SCENE_CAMERAS``, captioned with the
scene prompt alone), in the same format. Class indices (``object_index``) index
:func:`default_prompts`: the objects' prompts, then the scenes'. The views are rendered once per
run into a tensor dataset (optionally cached to a file so the three commands can share it) and
sampled from with replacement.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "ViewData",
    "render_views",
    "load_or_render",
    "parse_config",
    "LossLog",
    "default_views_fn",
]


@dataclass
class ViewData:
    """A rendered dataset, all tensors on one device.

    images ``[N, 3, H, W]`` in [0, 1]; depth ``[N, 1, H, W]`` (along the ray, 0 on background);
    mask ``[N, 1, H, W]``; object_index, view_index ``[N]``; captions: N strings.
    """

    images: Tensor
    depth: Tensor
    mask: Tensor
    object_index: Tensor
    view_index: Tensor
    captions: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: str | torch.device) -> ViewData:
        return ViewData(
            self.images.to(device),
            self.depth.to(device),
            self.mask.to(device),
            self.object_index.to(device),
            self.view_index.to(device),
            self.captions,
        )

    def split(self, n_held_out: int) -> tuple[ViewData, ViewData]:
        """(train, held-out): the last ``n_held_out`` views are held out."""
        k = len(self) - n_held_out

        def part(sl: slice) -> ViewData:
            return ViewData(
                self.images[sl],
                self.depth[sl],
                self.mask[sl],
                self.object_index[sl],
                self.view_index[sl],
                self.captions[sl],
            )

        return part(slice(0, k)), part(slice(k, None))

    def inverse_depth(self, idx: Tensor | slice | None = None) -> Tensor:
        """``[n, 1, H, W]`` ``1 / depth`` inside the mask, 0 outside."""
        d = self.depth if idx is None else self.depth[idx]
        m = self.mask if idx is None else self.mask[idx]
        return torch.where(m > 0.5, 1.0 / d.clamp_min(1e-3), torch.zeros_like(d))


OVERHEAD_FRACTION = 0.15
"""Fraction of training views drawn overhead (elevation 60.5-85 degrees): ``SHAPEZOO_CAMERAS``
never goes above 45 degrees, but the priors are asked for every view suffix, "overhead view" too."""
SCENE_FRACTION = 0.25
"""Fraction of training views that are scenes seen from inside (``SCENE_CAMERAS``)."""
DATA_VERSION = "objects+scenes-1"
"""Names what :func:`default_views_fn` renders; a cached dataset of another version is rendered
again (``load_or_render``)."""


def default_views_fn(batch_size: int, generator: torch.Generator, device: str, size: int):
    """ShapeZoo renders: objects from ``SHAPEZOO_CAMERAS`` (distance 1.75, fovy 55), a fraction
    :data:`OVERHEAD_FRACTION` of them with elevation in [60.5, 85] degrees, and a fraction
    :data:`SCENE_FRACTION` of the batch scenes from ``SCENE_CAMERAS`` (inside, captioned without
    view suffix, ``object_index`` offset by the number of objects: see :func:`default_prompts`)."""
    from dataclasses import replace

    from sdlib.cameras import SCENE_CAMERAS, SHAPEZOO_CAMERAS
    from sdlib.shapezoo import OBJECTS, SCENES, sample_views

    n_scene = int(round(batch_size * SCENE_FRACTION))
    n_over = int(round((batch_size - n_scene) * OVERHEAD_FRACTION))
    configs = [
        (batch_size - n_scene - n_over, SHAPEZOO_CAMERAS, OBJECTS, 0),
        (n_over, replace(SHAPEZOO_CAMERAS, elevation=(60.5, 85.0)), OBJECTS, 0),
        (n_scene, SCENE_CAMERAS, SCENES, len(OBJECTS)),
    ]
    batches = [
        (sample_views(b, objects=objs, camera_config=c, height=size, width=size,
                      generator=generator, device=device), offset)
        for b, c, objs, offset in configs
        if b > 0
    ]
    return ViewData(
        *(
            torch.cat([getattr(b, k) for b, _ in batches])
            for k in ("images", "depth", "mask")
        ),
        object_index=torch.cat([b.object_index + offset for b, offset in batches]),
        view_index=torch.cat([b.view_index for b, _ in batches]),
        captions=[c for b, _ in batches for c in b.captions],
    )


def default_prompts() -> list[str]:
    """The class names of the priors: ShapeZoo's object prompts, then its scene prompts."""
    from sdlib.shapezoo import PROMPTS, SCENE_PROMPTS

    return list(PROMPTS) + list(SCENE_PROMPTS)


def render_views(
    n: int,
    seed: int,
    device: str,
    size: int = 64,
    chunk: int = 512,
    views_fn: Callable[..., Any] | None = None,
    progress: bool = True,
) -> ViewData:
    """Renders ``n`` random ShapeZoo views (``views_fn(batch, generator, device, size)``, default
    :func:`default_views_fn`: objects and scenes)."""
    from tqdm.auto import tqdm

    views_fn = views_fn or default_views_fn
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list] = {
        k: [] for k in ("images", "depth", "mask", "object_index", "view_index")
    }
    captions: list[str] = []
    with torch.no_grad(), tqdm(total=n, desc=f"render {n} views", disable=not progress) as bar:
        done = 0
        while done < n:
            b = min(chunk, n - done)
            batch = views_fn(b, gen, device, size)
            for k in parts:
                v = getattr(batch, k)
                parts[k].append(v.to(device).float() if v.is_floating_point() else v.to(device))
            captions += list(batch.captions)
            done += b
            bar.update(b)
    cat = {k: torch.cat(v) for k, v in parts.items()}
    return ViewData(
        cat["images"].clamp(0, 1),
        cat["depth"],
        cat["mask"].float(),
        cat["object_index"].long(),
        cat["view_index"].long(),
        captions,
    )


def load_or_render(
    n: int,
    seed: int,
    device: str,
    size: int,
    cache: str | None,
    views_fn: Callable[..., Any] | None = None,
) -> ViewData:
    """Loads ``cache`` if it holds >= ``n`` views of this size and seed, else renders and saves."""
    if cache and Path(cache).is_file():
        blob = torch.load(cache, map_location="cpu", weights_only=False)
        version = DATA_VERSION if views_fn is None else None
        if (blob["seed"] == seed and blob["size"] == size and blob["n"] >= n
                and blob.get("version") == version):
            d = blob["data"]
            return ViewData(
                d["images"][:n].float(),
                d["depth"][:n].float(),
                d["mask"][:n].float(),
                d["object_index"][:n],
                d["view_index"][:n],
                d["captions"][:n],
            ).to(device)
    data = render_views(n, seed, device, size, views_fn=views_fn)
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        cpu = dataclasses.asdict(data.to("cpu"))
        cpu["images"], cpu["depth"] = cpu["images"].half(), cpu["depth"].half()
        cpu["mask"] = cpu["mask"].to(torch.uint8)
        version = DATA_VERSION if views_fn is None else None
        torch.save({"seed": seed, "size": size, "n": n, "version": version, "data": cpu}, cache)
    return data


def _parse_bool(v: str) -> bool:
    if v.lower() in {"1", "true", "yes", "on"}:
        return True
    if v.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def parse_config(cls: type, argv: list[str] | None, description: str):
    """Builds ``cls`` (a frozen dataclass) from ``--field value`` overrides of its defaults."""
    parser = argparse.ArgumentParser(description=description)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        kw: dict[str, Any] = {"default": f.default, "help": f"(default: {f.default!r})"}
        if hint is bool:
            kw["type"] = _parse_bool
        elif origin is tuple:
            kw["type"] = type(f.default[0]) if f.default else float
            kw["nargs"] = "+"
        elif origin is typing.Literal:
            kw["choices"] = typing.get_args(hint)
        elif hint in (int, float, str):
            kw["type"] = hint
        else:  # Optional[...] and friends: str, converted by the dataclass where needed
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            kw["type"] = args[0] if args and args[0] in (int, float, str) else str
        parser.add_argument(f"--{f.name}", **kw)
    ns = vars(parser.parse_args(argv))
    ns = {k: tuple(v) if isinstance(v, list) else v for k, v in ns.items()}
    return cls(**ns)


class LossLog:
    """Appends rows to ``<folder>/log.csv`` as training goes; ``summary`` goes to ``log.json``."""

    def __init__(self, folder: str | os.PathLike, name: str = "log") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.csv = self.folder / f"{name}.csv"
        self.json = self.folder / f"{name}.json"
        self._keys: list[str] | None = None
        self.t0 = time.time()
        self.rows: list[dict[str, Any]] = []

    def write(self, **row: Any) -> None:
        row = {"time_s": round(time.time() - self.t0, 2), **row}
        new = not self.csv.exists() or self._keys is None
        if self._keys is None:
            self._keys = list(row)
        with self.csv.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self._keys, extrasaction="ignore")
            if new and self.csv.stat().st_size == 0:
                w.writeheader()
            w.writerow(row)
        self.rows.append(row)

    def summary(self, **info: Any) -> None:
        self.json.write_text(json.dumps(info, indent=2, default=str) + "\n")


def autocast(device: str, enabled: bool):
    """bf16 autocast on CUDA when ``enabled``, a no-op elsewhere."""
    on = enabled and str(device).startswith("cuda")
    return (
        torch.autocast("cuda", dtype=torch.bfloat16, enabled=on)
        if on
        else torch.autocast("cpu", enabled=False)
    )


def folder_size_mb(folder: str | os.PathLike) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
