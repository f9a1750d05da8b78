"""The colour grid on the H200: decoded against latent pull-back, paired by prompt and seed.

    python scripts/colour_h200.py [--runs notes/colour_h200/runs.json.gz] \\
        [--figure notes/colour_h200/colour_h200.png]

Reads the compact sweep of ``scripts/claims_sweep.py colour`` (SDS only, ``pullback=latent``
and ``pullback=decoded``) and prints, as Markdown, the final metrics' paired differences
decoded − latent (mean over the (prompt, seed) pairs, 95% bootstrap interval:
``sdlib.claims.final_quality``, with the latent runs as the reference: ``pullback="latent"`` is
the preset, so they are plain SDS runs), the per-prompt split of ΔE and the seconds per step.
Draws the per-prompt paired values and the mean along training (notes/colour_h200/README.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sdlib import claims

RUNS = Path(__file__).resolve().parents[1] / "notes" / "colour_h200" / "runs.json.gz"
METRICS = ("color_delta_e", "color_delta_e_overlap", "color_delta_e_of_mean",
           "uncovered_fraction", "mask_iou", "psnr", "depth_pearson")
NAMES = {"color_delta_e": "ΔE", "color_delta_e_overlap": "ΔE where both masks",
         "color_delta_e_of_mean": "ΔE of the mean colour", "uncovered_fraction": "uncovered",
         "mask_iou": "mask IoU", "psnr": "PSNR (dB)", "depth_pearson": "depth Pearson"}
LATENT, DECODED = "pullback=latent", "pullback=decoded"


def table(runs: list[claims.Run], n_boot: int = 2000) -> str:
    q = claims.final_quality(claims.as_reference(runs, LATENT), METRICS, n_boot=n_boot)
    dec = q[claims.label_of("sds", DECODED)]
    lines = ["| metric | latent (preset) | decoded | decoded − latent, 95% CI |",
             "|---|---|---|---|"]
    for m in METRICS:
        a, b, d = q["SDS"][m]["mean"], dec[m]["mean"], dec[m]["diff_to_sds"]
        f = ".3f" if m in ("uncovered_fraction", "mask_iou", "depth_pearson") else ".2f"
        lines.append(f"| {NAMES[m]} | {a.estimate:{f}} | {b.estimate:{f}} | "
                     f"{d.estimate:+{f}} [{d.lo:+{f}}, {d.hi:+{f}}] (n={d.n}) |")
    return "\n".join(lines)


def pairs(runs: list[claims.Run]) -> dict[tuple[str, int], dict[str, claims.Run]]:
    out: dict[tuple[str, int], dict[str, claims.Run]] = {}
    for r in runs:
        if r.done:
            out.setdefault(r.pair, {})[r.variant] = r
    return {p: d for p, d in sorted(out.items()) if {LATENT, DECODED} <= set(d)}


def _cell(a: claims.Run, b: claims.Run, m: str, f: str) -> str:
    return f"{a.final(m):{f}} → {b.final(m):{f}}"


def per_prompt(runs: list[claims.Run]) -> str:
    lines = ["| prompt | ΔE latent → decoded | ΔE of the mean colour | where both masks | "
             "uncovered | IoU | ms/step |", "|---|---|---|---|---|---|---|"]
    for (prompt, _), d in pairs(runs).items():
        a, b = d[LATENT], d[DECODED]
        cell = lambda m, f, a=a, b=b: _cell(a, b, m, f)
        lines.append(f"| {prompt} | {cell('color_delta_e', '.1f')} | "
                     f"{cell('color_delta_e_of_mean', '.1f')} | "
                     f"{cell('color_delta_e_overlap', '.1f')} | "
                     f"{cell('uncovered_fraction', '.3f')} | {cell('mask_iou', '.3f')} | "
                     f"{a.step_ms:.0f} → {b.step_ms:.0f} |")
    return "\n".join(lines)


def timing(runs: list[claims.Run]) -> str:
    ps = pairs(runs).values()
    ms = {v: claims.bootstrap_ci([d[v].step_ms for d in ps]) for v in (LATENT, DECODED)}
    ratio = claims.bootstrap_ci([d[DECODED].step_ms / d[LATENT].step_ms for d in ps])
    secs = {v: claims.bootstrap_ci([d[v].final("train_seconds") for d in ps])
            for v in (LATENT, DECODED)}
    return (f"median ms/step (16 runs sharing one GPU: contended): latent {ms[LATENT]}, decoded "
            f"{ms[DECODED]}; ratio decoded/latent {ratio}; training seconds to step 1000: "
            f"latent {secs[LATENT]}, decoded {secs[DECODED]}")


def figure(runs: list[claims.Run], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = pairs(runs)
    names = [p.replace("a ", "", 1).split(" with ")[0] for p, _ in ps]
    colours = {LATENT: "#7f7f7f", DECODED: "#ff7f0e"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), gridspec_kw=dict(width_ratios=[3, 3, 2]))
    for ax, m, title in ((axes[0], "color_delta_e_of_mean", "(a) ΔE of the mean colour"),
                         (axes[1], "color_delta_e", "(b) ΔE (per pixel, inside the true mask)")):
        x = np.arange(len(ps))
        for i, d in enumerate(ps.values()):
            ax.plot([i, i], [d[LATENT].final(m), d[DECODED].final(m)], color="k", lw=0.8)
        for v in (LATENT, DECODED):
            ax.plot(x, [d[v].final(m) for d in ps.values()], "o", color=colours[v], ms=6,
                    label=f"pullback={v.split('=')[1]!r}")
        if m == "color_delta_e":
            for v, dx in ((LATENT, -0.15), (DECODED, 0.15)):
                ax.plot(x + dx, [d[v].final("color_delta_e_overlap") for d in ps.values()], "_",
                        color=colours[v], ms=8, mew=1.5)
            ax.plot([], [], "_", color="k", ms=8, mew=1.5, label="dashes: where both masks")
            ax.set_ylim(0, 40)
            ax.legend(fontsize=7, loc="upper center", ncol=3)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, ax.get_ylim()[1])
        ax.set_ylabel("CIE76 ΔE (lower is better)", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", lw=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    ax = axes[2]
    for v in (LATENT, DECODED):
        rs = [d[v] for d in ps.values()]
        steps = [e["step"] for e in rs[0].evals]
        for m, ls in (("color_delta_e", "-"), ("color_delta_e_of_mean", "--")):
            ax.plot(steps, [np.mean([r.evals[i][m] for r in rs]) for i in range(len(steps))],
                    ls, color=colours[v],
                    label=f"{v.split('=')[1]}, {'ΔE' if ls == '-' else 'of the mean'}")
    ax.set_ylim(0, 44)
    ax.set_yticks(range(0, 40, 10))
    ax.set_ylabel("ΔE", fontsize=8)
    ax.set_xlabel("step", fontsize=8)
    ax.set_title("(c) mean over the 8 prompts", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    ax.grid(lw=0.3)
    fig.suptitle("SDS, decoded against latent pull-back: H200, 8 prompts × seed 0, 1,000 steps, "
                 "64² renders", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=RUNS)
    ap.add_argument("--figure", type=Path, default=None, help="write the figure here (PNG)")
    args = ap.parse_args()
    runs = claims.load_runs(args.runs)
    print(claims.describe(args.runs, runs, claims.load_meta(args.runs)))
    print(table(runs), "", per_prompt(runs), "", timing(runs), sep="\n")
    if args.figure:
        figure(runs, args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
