"""Write a study's report: ``python study/report.py RESULTS_DIR [--tolerance NATS] [--margin DECADES] ...``.

Writes ``RESULTS_DIR/report/report.md``, ``report.html`` (self-contained), ``answer.json`` (the
verdict, machine-readable; docs/results.md) and the PNGs (``--figure-format png,svg,pdf``: vector
files beside them), and prints
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


def compare_versions(folder: Path) -> tuple[str | None, bool]:
    """The line comparing the installed versions with those the study in ``folder`` recorded, and
    whether one differs (:func:`leafbn.results.provenance.version_line`); ``(None, False)`` without a readable
    config.json, whose absence the report itself states."""
    from leafbn.results.provenance import version_line
    from leafbn.results.record import StudyRecord

    try:
        return version_line(StudyRecord.read(folder / "config.json"))
    except (OSError, ValueError):
        return None, False


def settings_of(args: argparse.Namespace) -> tuple[str | None, object]:
    """``(None, ReportSettings)`` from the parsed flags, or ``(one-line problem naming the flag, None)``."""
    from leafbn.report.settings import ReportSettings

    options = dict(
        confidence=args.confidence, margin=args.margin, window=args.window, resamples=args.resamples,
        random_seed=args.seed, figure_formats=args.figure_format,
    )  # fmt: skip
    if args.tolerance is not None:
        options["tolerance"] = args.tolerance
    try:
        return None, ReportSettings(**options)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("figure format: "):
            return f"--figure-format {args.figure_format}: {message.removeprefix('figure format: ')}", None
        return f"--{message.replace('_', '-')}", None


def build_parser() -> argparse.ArgumentParser:
    """The command line; every default is :class:`leafbn.report.settings.ReportSettings`'s."""
    from leafbn.report.settings import ReportSettings as D

    parser = argparse.ArgumentParser(prog="study/report.py", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="a study's folder (holds trials.csv)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="a run trains when its outcome is within this many nats of its context's best, BN or not "
        f"(default {D.tolerance:g})",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=D.margin,
        help="decades within which BN's and no-BN's trainable widths count as no difference "
        "(default %(default)g)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="each run's outcome is its median validation loss over its last WINDOW epochs "
        f"(default: the study's --window, else {D.DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=D.resamples,
        help="bootstrap resamples of the answer (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=D.random_seed, help="the bootstrap's random seed (default %(default)s)"
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=D.confidence,
        help="confidence level of CIs and tests (default %(default)g)",
    )
    parser.add_argument(
        "--figure-format",
        default="png",
        metavar="FORMATS",
        help="the figures as png, svg and/or pdf, comma-separated, e.g. png,svg,pdf (default png; a PNG "
        "is always written, the one report.html embeds)",
    )
    parser.add_argument(
        "--strict-versions",
        action="store_true",
        help="refuse (exit 2) where an installed version differs from the study's recorded ones, "
        "instead of warning",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    # Cheap checks first, so bad input fails before the heavy imports: the settings module is light.

    folder = Path(args.results_dir)
    problem, settings = None, None
    if not folder.is_dir():
        problem = f"{folder}: no such results directory"
    elif not (folder / "trials.csv").is_file():
        problem = f"{folder / 'trials.csv'}: no trials.csv (has the study run?)"
    else:
        problem, settings = settings_of(args)
    versions, differ = compare_versions(folder) if problem is None else (None, False)
    if differ and args.strict_versions:
        problem = versions
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)

    from leafbn.report.writer import write_report

    try:
        path = write_report(args.results_dir, settings)
    except (FileNotFoundError, NotADirectoryError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if versions:  # after the report's own checks: bad input stays one line
        print(f"{'warning' if differ else 'note'}: {versions}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
