"""Write a study's report: ``RESULTS_DIR/report/`` with ``report.md``, ``report.html``, the PNGs and
``answer.json``.

:func:`write_report` reads the tables (:func:`leafbn.results.tables.load_tables`), computes the
numbers (:mod:`leafbn.report.analysis`, :mod:`leafbn.report.robustness`), draws them
(:mod:`leafbn.report.plots`, :mod:`leafbn.report.robustness_plots`), words them
(:mod:`leafbn.report.prose`, :mod:`leafbn.report.caveats`) and renders the same content twice
(:mod:`leafbn.report.render`): Markdown linking the PNGs beside it, and a self-contained HTML file.
``answer.json`` is the verdict, machine-readable (docs/results.md).

A partial or empty study still gets a report that says what is missing; problems become warnings
(re-emitted as :class:`UserWarning` and listed in the report), never a crash. Only a missing results
folder or ``trials.csv``, or an unreadable ``trials.csv``, raise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from leafbn.report import (
    analysis,
    caveats,
    figure_catalog,
    lr_range,
    optuna_results,
    prose,
    robustness,
    specification,
)
from leafbn.report.figure_catalog import Numbers
from leafbn.report.render import Block, to_html, to_markdown
from leafbn.report.report_tables import tables_blocks
from leafbn.report.settings import FIGURE_FORMATS, ReportSettings, figure_formats_of
from leafbn.results import tables
from leafbn.results.record import StudyRecord

__all__ = ["write_report", "FIGURE_FORMATS", "figure_formats_of", "ReportSettings"]

#: Resolution of the PNGs (and of the checks that measure their texts), dots per inch.
FIGURE_DPI: int = 100
#: The figures shown under the answer's heading, before the words (the rest follow under "Figures"):
#: the answer, and the answer per context where there are several.
_LEAD_FIGURES: tuple[str, ...] = ("answer.png", "bootstrap.png")


def write_report(results_dir: str | Path, settings: ReportSettings | None = None, **overrides: Any) -> Path:
    """Write ``RESULTS_DIR/report/`` (report.md, report.html, answer.json, PNGs); return the .md path.

    Args:
        results_dir: the study's folder (``trials.csv``; ``curves.csv``, ``config.json``,
            ``optuna_study.pkl`` or ``optuna.db`` when present).
        settings: how to read the study (:class:`~leafbn.report.settings.ReportSettings`; default: its
            defaults, the window from config.json).
        overrides: fields of ``settings`` to replace, by name (``tolerance=0.1``, ``resamples=100``,
            ``figure_formats="png,svg"``), validated with the record.

    Raises:
        FileNotFoundError: no such folder, or no ``trials.csv`` in it.
        ValueError: ``trials.csv`` is unreadable, or a setting is out of range.
    """
    settings = dataclasses.replace(settings or ReportSettings(), **overrides)
    root = Path(results_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, curves, record = tables.load_tables(root)
        settings = settings.for_study(record.study.get("window"))
        out = root / "report"
        out.mkdir(parents=True, exist_ok=True)
        for old in [p for fmt in FIGURE_FORMATS for p in out.glob(f"*.{fmt}")]:
            old.unlink()
        blocks, answer = _build(root, out, trials, curves, record, settings, caught)
    (out / "answer.json").write_text(json.dumps(answer, indent=2) + "\n", encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(to_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(to_html(blocks, out), encoding="utf-8")
    for message in _messages(caught):
        warnings.warn(message, UserWarning, stacklevel=2)
    return md_path


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct messages of the UserWarnings/RuntimeWarnings caught so far, in order."""
    seen: dict[str, None] = {}
    for w in caught:
        noise = w.category.__name__ in ("ExperimentalWarning", "FutureWarning", "DeprecationWarning")
        if issubclass(w.category, (UserWarning, RuntimeWarning)) and not noise:
            seen.setdefault(str(w.message), None)
    return list(seen)


def _build(
    root: Path,
    out: Path,
    trials: pd.DataFrame,
    curves: pd.DataFrame,
    record: StudyRecord,
    settings: ReportSettings,
    caught: list,
) -> tuple[list[Block], dict[str, Any]]:
    """The report's blocks and answer.json's record: title, warnings, what was run, the answer and
    its sections, figures, tables and caveats."""
    name = record.study.get("name")
    blocks: list[Block] = [("h1", f"leafbn report: {name or root.resolve().name}")]
    expected = caveats.expected_trials(record, trials)
    if expected is not None and len(trials) < expected:
        warnings.warn(f"partial study: {len(trials)} of {expected} expected trials present", stacklevel=2)
    body: list[Block] = caveats.what_was_run(record, trials, expected)
    tolerance, confidence = settings.tolerance, settings.confidence
    if trials.empty:
        body += [("h2", "Answer"), ("p", "No trials in `trials.csv`: nothing to analyse yet.")]
        body += caveats.caveats(record, trials, expected, None, None, tolerance, confidence)
        return blocks + _warning_block(caught) + body, robustness.answer_record([], settings.as_dict())
    numbers, paired, facts = _numbers(trials, curves, record, settings)
    figures = _figures(root, out, numbers, facts, settings)
    leading = _LEAD_FIGURES if len(numbers.answers) > 1 else _LEAD_FIGURES[:1]  # per context: several
    lead = [b for b in figures if b[0] == "img" and b[1] in leading]  # the answer, seen first
    answer_blocks = prose.answer(
        numbers.answers,
        analysis.aggregate(paired, confidence),
        numbers.effect,
        facts,
        confidence,
        numbers.spec,
    )
    answer_blocks += prose.batch_size_section(
        numbers.answers, _n_train(record), bool(record.study.get("drop_last"))
    )
    body = [("h2", "Answer"), *lead, *answer_blocks, *prose.best(numbers.stats), *body]
    body += [b for b in figures if b not in lead]
    body += tables_blocks(numbers.trials, numbers.stats, numbers.stab, numbers.effect, confidence)
    body += caveats.caveats(
        record, numbers.trials, expected, numbers.stats, numbers.effect, tolerance, confidence
    )
    answer = robustness.answer_record(numbers.answers, facts, numbers.spec)
    return blocks + _warning_block(caught) + body, answer


def _n_train(record: StudyRecord) -> int | None:
    """Training rows per split from config.json (rows less the validation share), or None."""
    rows, val_fraction = record.data.get("rows"), record.study.get("val_fraction")
    if isinstance(rows, int) and isinstance(val_fraction, float):
        return rows - math.ceil(rows * val_fraction)
    return None


def _numbers(
    trials: pd.DataFrame, curves: pd.DataFrame, record: StudyRecord, settings: ReportSettings
) -> tuple[Numbers, pd.DataFrame, dict[str, Any]]:
    """Every table the report words and draws, the no-BN-paired trials, and the settings as
    answer.json records them (with the chance bar and where the outcomes came from)."""
    classes = record.data.get("classes")
    chance = math.log(classes if isinstance(classes, int) and classes > 1 else 99)
    facts: dict[str, Any] = settings.as_dict()
    facts["bar"] = lr_range.chance_bar(classes)
    trials = robustness.add_outcomes(trials, curves, settings.window)
    fallback = int((~trials["outcome_from_curves"]).sum())
    facts["fallback_runs"] = fallback
    facts["outcome_source"] = (
        f"median of the last {settings.window} epochs"
        if not fallback
        else f"final epoch for {fallback} of {len(trials)} runs (no curves); median of the last "
        f"{settings.window} epochs for the others"
    )
    confidence, bar, seed = settings.confidence, facts["bar"], settings.random_seed
    paired = analysis.pair_nobn(trials)  # no-BN runs shared by every BN momentum/placement
    answers, draws = robustness.bootstrap_answer(
        trials, settings.tolerance, bar, settings.resamples, seed, settings.margin, chance=chance
    )
    main = robustness.main_answer(answers)
    spec = (
        specification.specification_table(
            trials,
            main["family"],
            main["verdict"],
            bar,
            settings.resamples,
            seed,
            settings.margin,
            has_curves=not fallback,
        )  # fmt: skip
        if main
        else None
    )
    numbers = Numbers(
        trials=trials, curves=curves, stats=analysis.aggregate(trials, confidence),
        stab=robustness.stability(trials, settings.tolerance, bar, confidence), answers=answers, draws=draws,
        effect=analysis.bn_effect(paired, confidence), spec=spec, chance=chance,
    )  # fmt: skip
    return numbers, paired, facts


def _warning_block(caught: list) -> list[Block]:
    messages = _messages(caught)
    return [("h2", "Warnings"), ("ul", messages)] if messages else []


def _figures(
    root: Path, out: Path, numbers: Numbers, facts: dict[str, Any], settings: ReportSettings
) -> list[Block]:
    """Draw every figure (:func:`leafbn.report.figure_catalog.report_figures`) into ``out`` as each of
    the settings' formats; each becomes an image block (its PNG) whose caption says how to read it."""
    import matplotlib.pyplot as plt  # only to close Optuna's pyplot figures

    blocks: list[Block] = [("h2", "Figures")]
    study = optuna_results.load_optuna_study(root)
    for item in figure_catalog.report_figures(numbers, facts, settings.confidence, study):
        try:
            fig = item.draw()
            # our figures lay themselves out (constrained); Optuna's need the tight bounding box
            tight = "tight" if fig.get_layout_engine() is None else None
            for fmt in settings.figure_formats:
                fig.savefig(out / f"{item.stem}.{fmt}", dpi=FIGURE_DPI, bbox_inches=tight)
            plt.close(fig)
            blocks.append(("img", f"{item.stem}.png", item.caption))
        except Exception as exc:
            warnings.warn(f"could not draw {item.stem}.png ({type(exc).__name__}: {exc})", stacklevel=2)
    return blocks + figure_catalog.optuna_blocks(study)
