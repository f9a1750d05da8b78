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

from sdlib import claims

RUNS = claims.PULLBACK_SWEEP
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
    return claims.variant_pairs(runs, LATENT, DECODED)


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
    fig = claims.pullback_figure(runs, LATENT, DECODED, title=(
        "SDS, decoded against latent pull-back: H200, 8 prompts × seed 0, 1,000 steps, 64² "
        "renders"))
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
