"""A claims sweep across GPU sessions: keep each session's finished runs, carry them to the next.

A ``gpu_claims.sh`` call ends with ``claims.tgz`` (its sweep folder without checkpoints). Runs
that finished have ``done.json``; the sweep skips them when their folder is in the next
machine's sweep folder (``gpu_claims.sh`` seeds it from a carried ``outputs/claims_prev``).

    python scripts/claims_carry.py pack /work/.device/2/cl/claims.tgz \\
        --into notes/claims_2000_h200 --name 2026-11-29_s7 --machine "2x H200 (nvidia-h200-x2)" \\
        --command "bash scripts/gpu_claims.sh ..."
    python scripts/claims_carry.py unpack notes/claims_2000_h200 --out outputs/claims_prev

``pack`` keeps the finished runs that no earlier pack in ``--into`` holds, thins each run's
``metrics.jsonl`` to steps 1, 2 and every ``--keep-every``-th step (the evaluations carry their own
training seconds; the median step time is taken over the kept steps), writes them with the
sweep's ``priors.json`` and ``sweep.json`` as ``<into>/<name>.tgz`` (about 35 kB a run), and
rebuilds ``<into>/runs.json.gz`` (:func:`sdlib.claims.compact`) from every pack there, with
``meta["sessions"]`` naming each pack's machine and command. ``unpack`` merges all packs of a
folder into one sweep folder, to carry as ``outputs/claims_prev``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

SWEEP_FILES = ("priors.json", "sweep.json")


def _extract(archive: Path, dest: Path) -> Path:
    """Extracts ``archive`` into ``dest``; returns the sweep folder inside (holding the runs)."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    folders = [p.parent for p in dest.rglob("config.json")]
    if not folders:
        raise SystemExit(f"claims_carry: {archive} holds no run folder (no config.json)")
    roots = {f.parent for f in folders}
    if len(roots) != 1:
        raise SystemExit(f"claims_carry: {archive} holds runs under several folders {roots}")
    return roots.pop()


def _packed_runs(into: Path) -> set[str]:
    names: set[str] = set()
    for pack in sorted(into.glob("*.tgz")):
        with tarfile.open(pack) as tar:
            names |= {Path(m.name).parts[1] for m in tar.getmembers()
                      if len(Path(m.name).parts) > 2}
    return names


def thin_metrics(path: Path, keep_every: int) -> None:
    """Keeps the records of steps 1, 2 and every ``keep_every``-th step (and the last line)."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for i, ln in enumerate(lines)
            if json.loads(ln)["step"] <= 2 or json.loads(ln)["step"] % keep_every == 0
            or i == len(lines) - 1]
    path.write_text("".join(ln + "\n" for ln in kept))


def pack(archive: Path, into: Path, name: str, keep_every: int = 10, **meta: str) -> Path:
    """Adds ``archive``'s newly finished runs to ``into`` as ``<name>.tgz``; rebuilds
    ``runs.json.gz``."""
    into.mkdir(parents=True, exist_ok=True)
    out = into / f"{name}.tgz"
    if out.exists():
        raise SystemExit(f"claims_carry: {out} exists; choose another --name")
    old = _packed_runs(into)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = _extract(archive, Path(tmp) / "in")
        stage = Path(tmp) / "stage" / name
        stage.mkdir(parents=True)
        new = [d for d in sorted(sweep.iterdir())
               if d.is_dir() and (d / "done.json").exists() and d.name not in old]
        for d in new:
            shutil.copytree(d, stage / d.name)
            if (stage / d.name / "metrics.jsonl").exists():
                thin_metrics(stage / d.name / "metrics.jsonl", keep_every)
        for f in SWEEP_FILES:
            if (sweep / f).exists():
                shutil.copy(sweep / f, stage / f)
        (stage / "session.json").write_text(json.dumps({"name": name, "runs": len(new), **meta},
                                                       indent=1))
        with tarfile.open(out, "w:gz") as tar:
            tar.add(stage, arcname=name)
    print(f"{out}: {len(new)} finished runs new ({len(old)} in earlier packs)")
    compact_all(into)
    return out


def unpack(into: Path, out: Path) -> Path:
    """All packs of ``into`` merged into one sweep folder ``out`` (with the last pack's
    ``priors.json`` and ``sweep.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    sessions = []
    with tempfile.TemporaryDirectory() as tmp:
        for pack_file in sorted(into.glob("*.tgz")):  # names sort in session order
            with tarfile.open(pack_file) as tar:
                tar.extractall(tmp, filter="data")
            src = Path(tmp) / pack_file.stem
            for d in sorted(src.iterdir()):
                if d.is_dir():
                    shutil.copytree(d, out / d.name, dirs_exist_ok=True)
            for f in SWEEP_FILES:
                if (src / f).exists():
                    shutil.copy(src / f, out / f)
            sessions.append(json.loads((src / "session.json").read_text()))
    (out / "sessions.json").write_text(json.dumps(sessions, indent=1))
    return out


def compact_all(into: Path) -> Path:
    """``<into>/runs.json.gz`` from every pack in ``into``, ``meta["sessions"]`` from theirs."""
    from sdlib.claims import compact

    with tempfile.TemporaryDirectory() as tmp:
        merged = unpack(into, Path(tmp) / "merged")
        sessions = json.loads((merged / "sessions.json").read_text())
        path = compact(merged, into / "runs.json.gz", sessions=sessions)
    print(f"{path}: runs of {len(sessions)} packs")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="add a call's claims.tgz to a folder of packs")
    p.add_argument("archive", type=Path)
    p.add_argument("--into", type=Path, required=True)
    p.add_argument("--name", required=True,
                   help="the pack's name; names sort in session order, e.g. 2026-11-29_s7")
    p.add_argument("--keep-every", type=int, default=10)
    p.add_argument("--machine", default="")
    p.add_argument("--command", default="")
    u = sub.add_parser("unpack", help="merge a folder's packs into one sweep folder")
    u.add_argument("into", type=Path)
    u.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        if args.keep_every < 1:
            raise SystemExit(f"--keep-every {args.keep_every}: accepted: an integer >= 1")
        pack(args.archive, args.into, args.name, args.keep_every, machine=args.machine,
             command=args.command)
    else:
        if not any(args.into.glob("*.tgz")):
            raise SystemExit(f"claims_carry unpack: {args.into} holds no pack (*.tgz)")
        print(f"{unpack(args.into, args.out)}: merged")


if __name__ == "__main__":
    main()
