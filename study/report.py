"""Write a study's report: ``python study/report.py RESULTS_DIR [--tolerance NATS]``.

Writes ``RESULTS_DIR/report/report.md``, ``report.html`` (self-contained) and the PNGs, and prints
the path of ``report.md``. Warnings go to stderr as ``warning: ...`` lines. Bad input (no such
folder, no ``trials.csv``, an unreadable table, a bad option) prints one ``error: ...`` line on
stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="study/report.py", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="a study's folder (holds trials.csv)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="stable-LR tolerance in nats over the family's best mean validation loss "
        "(default: leafbn.analysis.DEFAULT_TOLERANCE, 0.5)",
    )
    parser.add_argument(
        "--confidence", type=float, default=0.95, help="confidence level of CIs and tests (default 0.95)"
    )
    args = parser.parse_args(argv)

    # Cheap checks first, so bad input fails before the heavy imports (write_report checks again).
    folder = Path(args.results_dir)
    problem = None
    if not folder.is_dir():
        problem = f"{folder}: no such results directory"
    elif not (folder / "trials.csv").is_file():
        problem = f"{folder / 'trials.csv'}: no trials.csv (has the study run?)"
    elif args.tolerance is not None and not args.tolerance >= 0:
        problem = f"--tolerance {args.tolerance}: must be >= 0 nats"
    elif not 0 < args.confidence < 1:
        problem = f"--confidence {args.confidence}: must be in (0, 1)"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)

    from leafbn.report import write_report

    try:
        options = {"confidence": args.confidence}
        if args.tolerance is not None:
            options["tolerance"] = args.tolerance
        path = write_report(args.results_dir, **options)
    except (FileNotFoundError, NotADirectoryError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
