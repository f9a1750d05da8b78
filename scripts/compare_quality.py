"""Paired comparison of two object quality runs (``scripts/quality_shapezoo.py``'s quality.json).

    python scripts/compare_quality.py NEW.json OLD.json

Prints, per method, the mean of each ground-truth metric for the new and the old run and the
mean paired difference over the objects both have (issue 13: "object quality table not worse").
"""

import json
import statistics as st
import sys
from pathlib import Path

KEYS = ("mask_iou", "classifier_accuracy", "depth_pearson", "psnr", "color_delta_e")


def main(new_path: str, old_path: str) -> None:
    new, old = ({(r["object"], r["method"]): r for r in json.loads(Path(p).read_text())}
                for p in (new_path, old_path))
    print("method  n  " + "  ".join(f"{k:>22s}" for k in KEYS)
          + "   (new / old / paired mean difference)")
    for method in sorted({k[1] for k in new}):
        pairs = [(new[k], old[k]) for k in new if k[1] == method and k in old]
        cells = []
        for key in KEYS:
            if not pairs or key not in pairs[0][0] or key not in pairs[0][1]:
                cells.append(f"{'-':>22s}")
                continue
            a, b = [p[0][key] for p in pairs], [p[1][key] for p in pairs]
            diff = st.mean(x - y for x, y in zip(a, b))
            cells.append(f"{st.mean(a):6.3f}/{st.mean(b):6.3f}/{diff:+6.3f}")
        print(f"{method:6s} {len(pairs):2d}  " + "  ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/compare_quality.py NEW.json OLD.json")
    main(sys.argv[1], sys.argv[2])
