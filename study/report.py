"""Write a study's report: ``python study/report.py RESULTS_DIR [--tolerance NATS] [--threshold P] ...``.

Writes ``RESULTS_DIR/report/report.md``, ``report.html`` (self-contained), ``answer.json`` (the
verdict, machine-readable; docs/results.md) and the PNGs, and prints
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
        help="a run succeeds when its outcome is within this many nats of its family's best (default 0.5)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.8,
        help="success rate at which a learning rate is stable (default 0.8: 4 of 5 seeds)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="each run's outcome is its median validation loss over its last WINDOW epochs "
        "(default: the study's --window, else 10)",
    )
    parser.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples of the answer (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed (default 0)")
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
    elif not 0 < args.threshold <= 1:
        problem = f"--threshold {args.threshold}: must be in (0, 1]"
    elif args.window is not None and args.window < 1:
        problem = f"--window {args.window}: must be >= 1 epoch"
    elif args.resamples < 100:
        problem = f"--resamples {args.resamples}: must be >= 100 (use >= 1000 for a quotable interval)"
    elif args.seed < 0:
        problem = f"--seed {args.seed}: must be >= 0"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)

    from leafbn.report.writer import write_report

    try:
        options = dict(
            confidence=args.confidence, threshold=args.threshold, window=args.window,
            resamples=args.resamples, random_seed=args.seed,
        )  # fmt: skip
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
