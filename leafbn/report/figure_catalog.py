"""Which figures a report holds, in which order, with the caption that says how to read each.

:func:`report_figures` lists them as :class:`Figure` entries (how to draw it, its file stem, its
caption); :func:`leafbn.report.writer.write_report` saves each and embeds its PNG. Nothing here computes
a number of the answer or draws a line: the numbers come in, the drawing is in the plot modules.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import pandas as pd

from leafbn.report import (
    answer_plot,
    optuna_plots,
    optuna_results,
    plots,
    robustness,
    robustness_plots,
    space_tables,
)
from leafbn.report.render import Block

__all__ = ["Figure", "Numbers", "report_figures", "optuna_blocks"]


class Figure(NamedTuple):
    """One figure of the report: ``draw()`` returns it, ``stem`` names its files, ``caption`` reads it."""

    draw: Callable[[], Any]
    stem: str
    caption: str


class Numbers(NamedTuple):
    """The tables a report's figures draw (computed once by the writer)."""

    trials: pd.DataFrame
    curves: pd.DataFrame
    stats: pd.DataFrame
    stab: pd.DataFrame
    answers: list[dict[str, Any]]
    draws: pd.DataFrame
    effect: pd.DataFrame
    spec: dict[str, Any] | None
    chance: float


def report_figures(
    n: Numbers, settings: dict[str, Any], confidence: float, optuna_study: Any = None
) -> list[Figure]:
    """Every figure of the report, in the order the reader meets them: the answer (and, with several
    contexts, the answer per context) first, then the runs, the descriptive figures and Optuna's
    (:func:`leafbn.report.optuna_results.load_optuna_study`'s study, or None)."""
    several = len(n.answers) > 1
    figures = answer_figures(n, settings, per_context=several)
    figures += robustness_figures(n, settings, bootstrap=not several)
    figures += descriptive_figures(n, settings, confidence)
    return figures + optuna_figures(optuna_study)


def answer_figures(n: Numbers, settings: dict[str, Any], per_context: bool = False) -> list[Figure]:
    """The report's lead figures: the answer, the answer per context when ``per_context`` (a forest
    ordered by context), then its specification curve."""
    main = robustness.main_answer(n.answers)
    figures = []
    if main is not None:
        figures.append(Figure(
            lambda: answer_plot.plot_answer(
                answer_plot.answer_data(n.stab, main), answer_plot.context_label(main, n.answers)
            ),
            "answer",
            "The answer: the share of runs that train at each learning rate, per arm (band: Wilson 95% "
            "interval), on one log axis; the bars below are each arm's trainable range (where at least half "
            "train), whiskers the 95% intervals of both edges; dotted, ×: the share of runs that diverged.",
        ))  # fmt: skip
    if per_context and n.answers:
        figures.append(_bootstrap_figure(n, settings))
    if n.spec is not None and n.spec["rows"]:
        figures.append(Figure(
            lambda: answer_plot.plot_specification(answer_plot.specification_data(n.spec)),
            "specification",
            "The answer under every specification: BN − no BN width (decades) with its 95% interval, "
            "sorted; the choices of each specification are marked beneath; colour: the verdict.",
        ))  # fmt: skip
    return figures


def _bootstrap_figure(n: Numbers, settings: dict[str, Any]) -> Figure:
    """The answer per context as a forest (one row per context, in the contexts' order)."""
    return Figure(
        lambda: robustness_plots.plot_bootstrap(n.draws, n.answers),
        "bootstrap",
        "How sure the answer is: per family, each arm's trainable width of learning rates and BN's minus "
        f"no-BN's, in decades, with 95% intervals over {settings['resamples']} paired resamples of the "
        "(split, seed) pairs; grey discs: the share of resamples at each difference.",
    )


def robustness_figures(n: Numbers, settings: dict[str, Any], bootstrap: bool = True) -> list[Figure]:
    """Every run against the learning rate, the success rates, the answer's bootstrap (when
    ``bootstrap``; with several contexts it leads the report instead) and the expected best."""
    cap, window = robustness_plots.CAP, settings["window"]
    figures = [
        Figure(
            lambda: robustness_plots.plot_runs_vs_lr(n.trials),
            "runs_vs_lr",
            f"Every run: its outcome (median validation loss over its last {window} epochs) against its "
            "learning rate, the two arms side by side; the strip above each panel counts, per learning rate, "
            f"the runs that diverged and those that ended above {cap:g} nats. Where one colour's points stay "
            "low over more learning rates, that arm is more robust.",
        ),
        Figure(
            lambda: robustness_plots.plot_success_rate(n.stab, settings["edge_level"]),
            "success_rate",
            "Share of runs that train at each learning rate (band: Wilson 95% interval); the dashed line is "
            "one half, where each arm's trainable range starts and ends.",
        ),
    ]
    if bootstrap and n.answers:
        figures.append(_bootstrap_figure(n, settings))
    eb = robustness.expected_best(n.trials, n.chance)
    if len(eb):
        band = (
            "band: the quantiles of the best of n runs"
            if {"low", "high"} <= set(eb.columns)
            else "no band: this table has no quantiles of the best, and mean ± s.d. would reach below 0 "
            "on the log axis"
        )
        figures.append(Figure(
            lambda: robustness_plots.plot_expected_best(eb),
            "expected_best",
            "Expected best outcome when tuning each arm with n runs drawn at random from its grid "
            f"(Dodge et al. 2019; {band}): the lower curve is easier to tune at that budget; a diverged "
            "run counts as a uniform guess.",
        ))  # fmt: skip
    return figures


def descriptive_figures(n: Numbers, settings: dict[str, Any], confidence: float) -> list[Figure]:
    """Mean loss per learning rate, the BN effect as a forest, learning curves and heat maps."""
    cap, level = robustness_plots.CAP, f"{confidence:.0%}"
    figures = [Figure(
        lambda: plots.plot_loss_vs_lr(n.stats, confidence),
        "loss_vs_lr",
        f"Mean outcome (validation) and final training loss (up to {plots.MAX_CONTEXTS} architectures) per "
        f"learning rate, with the {level} CI as an "
        "error bar where it stays above 0 nats (a log axis cannot show an interval that reaches 0; the "
        f"legend counts those left out); the strips count diverged runs and name means above {cap:g} nats.",
    )]  # fmt: skip
    if len(n.effect) and (~n.effect["status"].isin(["no BN side", "no no-BN side"])).any():
        figures.append(Figure(
            lambda: plots.plot_bn_effect(n.effect, confidence),
            "bn_effect",
            f"Forest plot: BN minus no-BN outcome per learning rate, paired by (split, seed), with its "
            f"{level} paired-t interval (in numbers beside it); below 0 BN ends lower; filled points are "
            "significant after Holm's correction; an interval too narrow to see beside its point is drawn "
            "again, magnified, in a zoom box at the right of its row (the interval spans the box's middle "
            "half); rows marked 'no test' name the learning rates where none was possible.",
        ))  # fmt: skip
    return figures + curve_figures(n) + heatmap_figures(n)


def curve_figures(n: Numbers) -> list[Figure]:
    """The learning curves of the typical run (pooled over architectures when there are many)."""
    varying = space_tables.heatmap_axes(n.trials)
    n_contexts = n.trials.groupby(varying, dropna=False).ngroups if varying else 1
    pool = n_contexts > plots.MAX_CONTEXTS
    runs = plots.curve_runs(n.trials, n.curves, pool=pool)
    if not len(runs):
        if len(n.curves):
            warnings.warn("curves.csv shares no trial_id with trials.csv: no learning curves", stacklevel=2)
        return []
    return [Figure(
        lambda: plots.plot_learning_curves(plots.curve_bands(runs), runs),
        "learning_curves",
        (f"Every one of the {n_contexts} architectures pooled per learning rate. " if pool else "")
        + "The typical run per learning rate: median validation loss (solid) and training loss "
        f"(dashed) over the runs still finite at each epoch, band: their interquartile range; an arm "
        f"with at most {plots.FEW_RUNS} runs is drawn run by run. The y axis is fitted to the runs "
        "that train; each panel's title counts the runs that diverged and those whose curve goes above the "
        "axis at some epoch.",
    )]  # fmt: skip


def heatmap_figures(n: Numbers) -> list[Figure]:
    """One heat map per architecture axis that varies (learning rate × that axis, per BN setting)."""
    figures = []
    for axis in space_tables.heatmap_axes(n.trials):
        heat = space_tables.heatmap_data(n.trials, axis)
        if len(heat):
            figures.append(Figure(
                lambda heat=heat, axis=axis: plots.plot_heatmaps(heat, axis, n.chance),
                f"heatmap_{axis}",
                f"Typical outcome and divergence rate over learning rate × {axis}, per BN setting; the "
                f"colour scale ends at a uniform guess ({n.chance:.2f} nats), so a run that blew up takes "
                "the last colour and no more.",
            ))  # fmt: skip
    return figures


def optuna_figures(study: Any) -> list[Figure]:
    """Optuna's history and importances of ``study`` (none when it is None)."""
    if study is None:
        return []
    figures = [Figure(lambda: optuna_plots.plot_optimization_history(study), "optuna_history",
                      "Optuna optimisation history.")]  # fmt: skip
    if len(optuna_results.param_importances(study)):
        figures.append(Figure(lambda: optuna_plots.plot_param_importances(study), "optuna_importances",
                              "Optuna hyperparameter importances."))  # fmt: skip
    return figures


def optuna_blocks(study: Any) -> list[Block]:
    """The Optuna importances as a table under its heading (none without an Optuna study)."""
    importances = optuna_results.param_importances(study) if study is not None else pd.DataFrame()
    if not len(importances):
        return []
    return [
        ("h3", "Optuna hyperparameter importances (optuna.importance.get_param_importances)"),
        ("table", importances.assign(importance=importances["importance"].round(3))),
    ]
