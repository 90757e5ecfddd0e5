"""Measure every figure a study's report draws, as saved: overlapping texts, texts outside the figure,
texts on markers (:func:`leafbn.report.figure_style.text_problems`). Optional, not part of the suite.

    python scripts/check_figures.py STUDY_DIR [--resamples 1000] [--verbose]

Writes the report of a copy of STUDY_DIR (in a temporary folder, so the study's own report is left as
it is), measures each figure at the moment it is saved as PNG, prints one line per problem
(``figure.png: problem``) and a last line with the figures measured. Exit 1 when any figure has a
problem, 2 when STUDY_DIR holds no study.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.text import Text

from leafbn.report.figure_style import text_problems
from leafbn.report.writer import write_report


def measure(study: Path, resamples: int) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each PNG the report of ``study`` saves, by file name, with its :func:`text_problems`, and how
    many non-empty visible texts it holds."""
    checked: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    save = Figure.savefig

    def measured(fig: Figure, fname, *args, **kwargs):
        if str(fname).endswith(".png"):
            name = Path(fname).name
            checked[name] = text_problems(fig, dpi=kwargs.get("dpi", 100))
            counts[name] = sum(t.get_visible() and bool(t.get_text().strip()) for t in fig.findobj(Text))
        return save(fig, fname, *args, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / study.name
        shutil.copytree(study, copy, ignore=shutil.ignore_patterns("report", "ray"))
        Figure.savefig = measured
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_report(copy, resamples=resamples)
        finally:
            Figure.savefig = save
    return checked, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (holds trials.csv)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--verbose", action="store_true", help="a line per figure: texts measured, problems")
    args = parser.parse_args(argv)
    if not (args.study / "trials.csv").is_file():
        print(f"check_figures: no trials.csv in {args.study}: give a study folder", file=sys.stderr)
        return 2
    checked, counts = measure(args.study, args.resamples)
    for name, problems in checked.items():
        for problem in problems:
            print(f"{name}: {problem}")
        if args.verbose:
            print(f"{name}: {counts[name]} texts, {len(problems)} problem(s)")
    bad = sum(bool(p) for p in checked.values())
    print(f"{len(checked)} figures measured ({', '.join(checked)}); {bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
