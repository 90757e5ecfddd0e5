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

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from leafbn.report import (
    analysis,
    answer_plot,
    caveats,
    lr_range,
    optuna_plots,
    optuna_results,
    plots,
    prose,
    robustness,
    robustness_plots,
    specification,
)
from leafbn.report.render import Block, to_html, to_markdown
from leafbn.results import tables
from leafbn.results.record import StudyRecord

__all__ = ["write_report", "FIGURE_FORMATS", "figure_formats_of"]

#: The files a figure can be written as; PNG is the one the report embeds.
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
#: Resolution of the PNGs (and of the checks that measure their texts), dots per inch.
FIGURE_DPI: int = 100


def figure_formats_of(formats: str | Sequence[str]) -> tuple[str, ...]:
    """The formats to write from ``"png,svg"`` or ``["svg"]``: PNG first, always; each known.

    Raises:
        ValueError: a format outside :data:`FIGURE_FORMATS`.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [n.strip().lower().lstrip(".") for n in names if n.strip()]
    for name in names:
        if name not in FIGURE_FORMATS:
            raise ValueError(f"figure format {name!r}: must be one of {', '.join(FIGURE_FORMATS)}")
    return tuple(dict.fromkeys(["png", *names]))


def write_report(
    results_dir: str | Path,
    tolerance: float = analysis.DEFAULT_TOLERANCE,
    confidence: float = 0.95,
    margin: float = lr_range.MARGIN,
    resamples: int = robustness.DEFAULT_RESAMPLES,
    window: int | None = None,
    random_seed: int = 0,
    figure_formats: Sequence[str] = ("png",),
) -> Path:
    """Write ``RESULTS_DIR/report/`` (report.md, report.html, answer.json, PNGs); return the .md path.

    Args:
        results_dir: the study's folder (``trials.csv``; ``curves.csv``, ``config.json``,
            ``optuna_study.pkl`` or ``optuna.db`` when present).
        tolerance: nats above its family's best a successful run may end.
        confidence: the level of the intervals; tests are significant at ``1 - confidence``.
        margin: decades within which BN − no BN counts as no difference (> 0).
        resamples: bootstrap resamples of the answer (>= 100).
        window: epochs each run's outcome is the median over (None: the study's ``window`` in
            config.json, else :data:`leafbn.report.robustness.DEFAULT_WINDOW`).
        random_seed: the bootstrap's seed.
        figure_formats: the files each figure is written as, from :data:`FIGURE_FORMATS`; a PNG is
            always written (the report embeds it), ``svg`` and ``pdf`` beside it for print.

    Raises:
        FileNotFoundError: no such folder, or no ``trials.csv`` in it.
        ValueError: ``trials.csv`` is unreadable, or an option is out of range.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance {tolerance}: must be >= 0 nats")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence}: must be in (0, 1)")
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin {margin}: must be > 0 decades")
    if resamples < 100:
        raise ValueError(f"resamples {resamples}: must be >= 100")
    if window is not None and window < 1:
        raise ValueError(f"window {window}: must be >= 1 epoch")
    formats = figure_formats_of(figure_formats)
    root = Path(results_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, curves, record = tables.load_tables(root)
        if window is None:
            window = int(record.study.get("window") or robustness.DEFAULT_WINDOW)
        settings = dict(
            window=window,
            tolerance=tolerance,
            margin=margin,
            edge_level=lr_range.EDGE_LEVEL,
            resamples=resamples,
            random_seed=random_seed,
        )
        out = root / "report"
        out.mkdir(parents=True, exist_ok=True)
        for old in [p for fmt in FIGURE_FORMATS for p in out.glob(f"*.{fmt}")]:
            old.unlink()
        blocks, answer = _build(root, out, trials, curves, record, settings, confidence, caught, formats)
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
    settings: dict[str, Any],
    confidence: float,
    caught: list,
    formats: tuple[str, ...] = ("png",),
) -> tuple[list[Block], dict[str, Any]]:
    name = record.study.get("name")
    blocks: list[Block] = [("h1", f"leafbn report: {name or root.resolve().name}")]
    expected = caveats.expected_trials(record, trials)
    if expected is not None and len(trials) < expected:
        warnings.warn(f"partial study: {len(trials)} of {expected} expected trials present", stacklevel=2)
    body: list[Block] = caveats.what_was_run(record, trials, expected)
    tolerance = settings["tolerance"]
    if trials.empty:
        body += [("h2", "Answer"), ("p", "No trials in `trials.csv`: nothing to analyse yet.")]
        body += caveats.caveats(record, trials, expected, None, None, tolerance, confidence)
        return blocks + _warning_block(caught) + body, robustness.answer_record([], settings)

    data, study = record.data, record.study
    classes = data.get("classes")
    chance = math.log(classes if isinstance(classes, int) and classes > 1 else 99)
    settings["bar"] = lr_range.chance_bar(classes)
    trials = robustness.add_outcomes(trials, curves, settings["window"])
    fallback = int((~trials["outcome_from_curves"]).sum())
    settings["fallback_runs"] = fallback
    settings["outcome_source"] = (
        f"median of the last {settings['window']} epochs"
        if not fallback
        else f"final epoch for {fallback} of {len(trials)} runs (no curves); median of the last "
        f"{settings['window']} epochs for the others"
    )
    stats = analysis.aggregate(trials, confidence)
    paired = analysis.pair_nobn(trials)  # no-BN runs shared by every BN momentum/placement
    stab = robustness.stability(trials, tolerance, settings["bar"], confidence)
    answers, draws = robustness.bootstrap_answer(
        trials, tolerance, settings["bar"], settings["resamples"], settings["random_seed"],
        settings["margin"], chance=chance,
    )  # fmt: skip
    main = robustness.main_answer(answers)
    spec = (
        specification.specification_table(
            trials, main["family"], main["verdict"], settings["bar"], settings["resamples"],
            settings["random_seed"], settings["margin"], has_curves=not fallback,
        )  # fmt: skip
        if main
        else None
    )
    effect = analysis.bn_effect(paired, confidence)
    body += [("h2", "Answer")]
    body += prose.answer(answers, analysis.aggregate(paired, confidence), effect, settings, confidence, spec)
    rows, val_fraction = data.get("rows"), study.get("val_fraction")
    n_train = (
        rows - math.ceil(rows * val_fraction)
        if isinstance(rows, int) and isinstance(val_fraction, float)
        else None
    )
    body += prose.batch_size_section(answers, n_train, bool(study.get("drop_last")))
    body += prose.best(stats)
    body += _figures(
        root, out, trials, curves, stats, stab, answers, draws, effect, settings, chance, confidence, spec,
        formats,
    )
    body += _tables(trials, stats, stab, effect, confidence)
    body += caveats.caveats(record, trials, expected, stats, effect, tolerance, confidence)
    return blocks + _warning_block(caught) + body, robustness.answer_record(answers, settings, spec)


def _warning_block(caught: list) -> list[Block]:
    messages = _messages(caught)
    return [("h2", "Warnings"), ("ul", messages)] if messages else []


def _figures(
    root: Path,
    out: Path,
    trials: pd.DataFrame,
    curves: pd.DataFrame,
    stats: pd.DataFrame,
    stab: pd.DataFrame,
    answers: list[dict[str, Any]],
    draws: pd.DataFrame,
    effect: pd.DataFrame,
    settings: dict[str, Any],
    chance: float,
    confidence: float,
    spec: dict[str, Any] | None = None,
    formats: tuple[str, ...] = ("png",),
) -> list[Block]:
    """Draw every figure into ``out`` as each of ``formats``; each becomes an image block (its PNG)
    whose caption says how to read it."""
    import matplotlib.pyplot as plt  # only to close Optuna's pyplot figures

    blocks: list[Block] = [("h2", "Figures")]

    def save(make, stem: str, caption: str) -> None:
        try:
            fig = make()
            # our figures lay themselves out (constrained); Optuna's need the tight bounding box
            tight = "tight" if fig.get_layout_engine() is None else None
            for fmt in formats:
                fig.savefig(out / f"{stem}.{fmt}", dpi=FIGURE_DPI, bbox_inches=tight)
            plt.close(fig)
            blocks.append(("img", f"{stem}.png", caption))
        except Exception as exc:
            warnings.warn(f"could not draw {stem}.png ({type(exc).__name__}: {exc})", stacklevel=2)

    for make, stem, caption in _answer_figures(stab, answers, spec):
        save(make, stem, caption)
    cap, window, level = robustness_plots.CAP, settings["window"], f"{confidence:.0%}"
    save(
        lambda: robustness_plots.plot_runs_vs_lr(trials),
        "runs_vs_lr",
        f"Every run: its outcome (median validation loss over its last {window} epochs) against its "
        "learning rate, the two arms side by side; the strip above each panel counts, per learning rate, "
        f"the runs that diverged and those that ended above {cap:g} nats. Where one colour's points stay "
        "low over more learning rates, that arm is more robust.",
    )
    save(
        lambda: robustness_plots.plot_success_rate(stab, settings["edge_level"]),
        "success_rate",
        "Share of runs that train at each learning rate (band: Wilson 95% interval); the dashed line is one "
        "half, where each arm's trainable range starts and ends.",
    )
    if answers:
        save(
            lambda: robustness_plots.plot_bootstrap(draws, answers),
            "bootstrap",
            "How sure the answer is: per family, each arm's trainable width of learning rates and BN's minus "
            f"no-BN's, in decades, with 95% intervals over {settings['resamples']} paired resamples of the "
            "(split, seed) pairs; grey discs: the share of resamples at each difference.",
        )
    eb = robustness.expected_best(trials, chance)
    if len(eb):
        band = (
            "band: the quantiles of the best of n runs"
            if {"low", "high"} <= set(eb.columns)
            else "no band: this table has no quantiles of the best, and mean ± s.d. would reach below 0 "
            "on the log axis"
        )
        save(
            lambda: robustness_plots.plot_expected_best(eb),
            "expected_best",
            "Expected best outcome when tuning each arm with n runs drawn at random from its grid "
            f"(Dodge et al. 2019; {band}): the lower curve is easier to tune at that budget; a diverged "
            "run counts as a uniform guess.",
        )
    save(
        lambda: plots.plot_loss_vs_lr(stats, confidence),
        "loss_vs_lr",
        f"Mean outcome (validation) and final training loss (up to {plots.MAX_CONTEXTS} architectures) per "
        f"learning rate, with the {level} CI as an "
        "error bar where it stays above 0 nats (a log axis cannot show an interval that reaches 0; the "
        f"legend counts those left out); the strips count diverged runs and name means above {cap:g} nats.",
    )
    if len(effect) and (~effect["status"].isin(["no BN side", "no no-BN side"])).any():
        save(
            lambda: plots.plot_bn_effect(effect, confidence),
            "bn_effect",
            f"Forest plot: BN minus no-BN outcome per learning rate, paired by (split, seed), with its "
            f"{level} paired-t interval (in numbers beside it); below 0 BN ends lower; filled points are "
            "significant after Holm's correction; rows marked 'no test' name the learning rates where none "
            "was possible.",
        )
    varying = analysis.heatmap_axes(trials)
    n_contexts = trials.groupby(varying, dropna=False).ngroups if varying else 1
    pool = n_contexts > plots.MAX_CONTEXTS
    runs = plots.curve_runs(trials, curves, pool=pool)
    if len(runs):
        save(
            lambda: plots.plot_learning_curves(plots.curve_bands(runs), runs),
            "learning_curves",
            (f"Every one of the {n_contexts} architectures pooled per learning rate. " if pool else "")
            + "The typical run per learning rate: median validation loss (solid) and training loss "
            f"(dashed) over the runs still finite at each epoch, band: their interquartile range; an arm "
            f"with at most {plots.FEW_RUNS} runs is drawn run by run. The y axis is fitted to the runs "
            "that train; each panel's title counts the runs that diverged and those that leave the axis.",
        )
    elif len(curves):
        warnings.warn("curves.csv shares no trial_id with trials.csv: no learning curves", stacklevel=2)
    for axis in analysis.heatmap_axes(trials):
        heat = analysis.heatmap_data(trials, axis)
        if len(heat):
            save(
                lambda heat=heat, axis=axis: plots.plot_heatmaps(heat, axis, chance),
                f"heatmap_{axis}",
                f"Typical outcome and divergence rate over learning rate × {axis}, per BN setting; the "
                f"colour scale ends at a uniform guess ({chance:.2f} nats), so a run that blew up takes "
                "the last colour and no more.",
            )
    study = optuna_results.load_optuna_study(root)
    if study is not None:
        save(
            lambda: optuna_plots.plot_optimization_history(study),
            "optuna_history",
            "Optuna optimisation history.",
        )
        importances = optuna_results.param_importances(study)
        if len(importances):
            save(
                lambda: optuna_plots.plot_param_importances(study),
                "optuna_importances",
                "Optuna hyperparameter importances.",
            )
            blocks += [
                ("h3", "Optuna hyperparameter importances (optuna.importance.get_param_importances)"),
                ("table", importances.assign(importance=importances["importance"].round(3))),
            ]
    return blocks


def _answer_figures(
    stab: pd.DataFrame, answers: list[dict[str, Any]], spec: dict[str, Any] | None
) -> list[tuple[Any, str, str]]:
    """The report's lead figures as (draw, file name, caption): the answer, then its specification curve."""
    main = robustness.main_answer(answers)
    figures = []
    if main is not None:
        figures.append((
            lambda: answer_plot.plot_answer(answer_plot.answer_data(stab, main)),
            "answer",
            "The answer: the share of runs that train at each learning rate, per arm (band: Wilson 95% "
            "interval), on one log axis; the bars below are each arm's trainable range (where at least half "
            "train), whiskers the 95% intervals of both edges; dotted, ×: the share of runs that diverged.",
        ))  # fmt: skip
    if spec is not None and spec["rows"]:
        figures.append((
            lambda: answer_plot.plot_specification(answer_plot.specification_data(spec)),
            "specification",
            "The answer under every specification: BN − no BN width (decades) with its 95% interval, "
            "sorted; the choices of each specification are marked beneath; colour: the verdict.",
        ))  # fmt: skip
    return figures


def _tables(
    trials: pd.DataFrame,
    stats: pd.DataFrame,
    stab: pd.DataFrame,
    effect: pd.DataFrame,
    confidence: float,
) -> list[Block]:
    level = f"{confidence:.0%}"
    vary = prose.varying(trials, exclude=("lr", "bn"))
    blocks: list[Block] = [("h2", "Tables")]
    s = stab[[*[c for c in ("bn", *vary, "lr") if c in stab.columns]]].copy()
    s["train"] = [f"{k}/{n}" for k, n in zip(stab["n_success"], stab["n_runs"])]
    s["success rate [Wilson 95%]"] = [
        f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
        for r, lo, hi in zip(stab["success_rate"], stab["success_ci_low"], stab["success_ci_high"])
    ]
    s["diverged"] = stab["n_diverged"]
    s["median [IQR]"] = [
        "—" if not math.isfinite(m) else f"{m:.4f} [{a:.4f}, {b:.4f}]"
        for m, a, b in zip(stab["outcome_median"], stab["outcome_q1"], stab["outcome_q3"])
    ]
    s["stuck"] = stab["n_stuck"]
    s["behind"] = stab["n_behind"]
    s["context best"] = stab["context_best"]
    s["half train"] = stab["trains"]
    title = "How the runs ended per configuration (train / behind / stuck / diverged)"
    blocks += [("h3", title), ("table", s)]
    if len(effect):
        shown = ["lr", "n_pairs", "val_loss_nobn", "val_loss_bn", "diff", "ci_low", "ci_high", "p_value",
                 "p_holm", "p_rank", "p_rank_holm", "significant", "tests_agree", "status"]  # fmt: skip
        e = effect[[*vary, *shown]]
        e = e.rename(columns={
            "ci_low": f"{level} CI low", "ci_high": f"{level} CI high", "diff": "BN − no BN (paired)",
            "p_value": "p paired t", "p_holm": "p paired t (Holm)", "p_rank": "p Wilcoxon",
            "p_rank_holm": "p Wilcoxon (Holm)", "tests_agree": "tests agree", "n_pairs": "pairs",
        })  # fmt: skip
        title = f"BN − no-BN outcome per learning rate, paired by (split, seed) ({level} CI; Holm across LRs)"
        blocks += [("h3", title), ("table", e)]

    def cell(mean: float, std: float, ci: float) -> str:
        if not math.isfinite(mean):
            return "—"
        text = f"{mean:.4f}" + (f" ± {std:.4f}" if math.isfinite(std) else "")
        return text + (f" [{mean - ci:.4f}, {mean + ci:.4f}]" if math.isfinite(ci) else "")

    per = stats[[*[c for c in ("lr", "bn", *vary) if c in stats.columns]]].copy()
    per["runs"] = stats["n_runs"]
    per["diverged"] = stats["n_diverged"]
    per[f"outcome mean ± std [{level} CI]"] = [
        cell(m, s, c) for m, s, c in zip(stats["val_loss_mean"], stats["val_loss_std"], stats["val_loss_ci"])
    ]
    per["outcome median"] = stats["val_loss_median"]
    per["val accuracy mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["val_accuracy_mean"], stats["val_accuracy_std"])
    ]
    per["train loss mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["train_loss_mean"], stats["train_loss_std"])
    ]
    blocks += [("h3", "Per configuration (non-diverged runs)"), ("table", per)]
    return blocks
