"""The ``sdlib`` command line.

    sdlib figures list                    # the committed figures and their notebooks
    sdlib figures regenerate <fig_id>     # re-run the notebook behind a figure
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="sdlib", description="score distillation for text-to-3D")
    parser.add_argument("command", choices=["figures"], help="what to do")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of the command")
    args = parser.parse_args(argv)
    if args.command == "figures":
        from sdlib.figures import _main as figures_main

        return figures_main(args.rest)
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
