"""Draw the robust answer: every run against the learning rate, success rates, the answer per family
with its bootstrap, the expected best over a budget. Each function takes the tables
:mod:`leafbn.report.robustness` computes and returns a matplotlib Figure; nothing here computes a number of
the answer.

Every validation-loss axis shows the range where the answer lives: up to :data:`CAP` nats (a
uniform guess over 99 classes is 4.6). Runs that diverged, and finite values above the cap, are
counted in a strip above the axes (:func:`leafbn.report.figure_style.fill_strip`), never drawn as the point
that sets the scale and never as text on the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from leafbn.report.contexts import context_text, in_context
from leafbn.report.contexts import contexts as context_groups
from leafbn.report.figure_style import (
    CAP,
    COLORS,
    FONT,
    LOSS_UNIT,
    NAMES,
    STRIP_ROW,
    figure,
    fill_strip,
    grid_shape,
    log_loss_axis,
    lr_axis,
    note_handle,
    plain_log_formatter,
    strip_fit,
    strip_panels,
    styled,
    suptitle,
    wrap,
)

__all__ = [
    "CAP",
    "plot_runs_vs_lr",
    "plot_success_rate",
    "plot_bootstrap",
    "plot_expected_best",
    "count_rows",
]

# Kept for modules written against the old names; the style lives in leafbn.report.figure_style.
_COLORS, _NAMES, _figure = COLORS, NAMES, figure
_VERDICT_TEXT = {
    "bn_more_robust": "BN more robust",
    "bn_not_more_robust": "BN not more robust",
    "inconclusive": "inconclusive",
}


def _hide_unused(panels: list[tuple[Axes | None, Axes]], used: int) -> None:
    for strip, ax in panels[used:]:
        ax.set_visible(False)
        if strip is not None:
            strip.set_visible(False)


# --- Count strips ----------------------------------------------------------------------------------------
def count_rows(
    counts: pd.DataFrame, kinds: list[tuple[bool, str]], all_lrs: Any, width_in: float
) -> list[tuple[str, str, list[float], list[str]]]:
    """The strip rows of one panel: per ``(bn, kind)`` in ``kinds``, the non-zero counts per lr.

    Args:
        counts: one row per ``bn`` × ``lr`` with ``n`` (runs) and a count column per kind.
        kinds: ``(bn, column)`` pairs, column ``"diverged"`` or ``"above"``.
        all_lrs: every learning rate of the figure (for the fit of ``k/n`` between two of them).
        width_in: the panel's width in inches.
    """
    names = {"diverged": "diverged", "above": f"> {CAP:g} {LOSS_UNIT}"}
    rows = []
    for bn, kind in kinds:
        side = counts[(counts["bn"] == bn) & (counts[kind] > 0)]
        texts = [f"{int(k)}/{int(n)}" for k, n in zip(side[kind], side["n"])]
        if not strip_fit(all_lrs, width_in * 0.8, texts):
            texts = [f"{int(k)}" for k in side[kind]]
        rows.append((f"{NAMES[bn]} {names[kind]}", COLORS[bn], list(side["lr"]), texts))
    return rows


def _run_counts(trials: pd.DataFrame, cap: float) -> pd.DataFrame:
    """Runs, diverged runs and finite outcomes above ``cap`` per ``bn`` × ``lr``."""
    y = trials["outcome"].to_numpy(float)
    frame = trials.assign(_div=trials["diverged"].astype(bool), _above=np.isfinite(y) & (y > cap))
    return (
        frame.groupby(["bn", "lr"], sort=True)
        .agg(n=("_div", "size"), diverged=("_div", "sum"), above=("_above", "sum"))
        .reset_index()
    )


def _kinds(counts: pd.DataFrame) -> list[tuple[bool, str]]:
    """The strip rows a figure needs: (arm, kind) pairs with any count."""
    return [
        (bn, kind)
        for kind in ("diverged", "above")
        for bn in (False, True)
        if (counts.loc[counts["bn"] == bn, kind] > 0).any()
    ]


# --- Figures ---------------------------------------------------------------------------------------------
@styled
def plot_runs_vs_lr(trials: pd.DataFrame, cap: float = CAP) -> Figure:
    """The tuning playbook's axis plot: every run's outcome against its learning rate.

    Args:
        trials: trials with ``outcome`` (:func:`leafbn.report.robustness.add_outcomes`).
        cap: the highest outcome the axis shows, nats.

    Returns:
        A Figure, one panel per context: a point per run (the arms side by side), and above each
        panel a strip counting, per arm and learning rate, the runs that diverged and those above
        ``cap``.
    """
    contexts = context_groups(trials)
    kinds = _kinds(_run_counts(trials, cap))
    nrows, ncols = grid_shape(len(contexts), 2 if len(contexts) <= 6 else 3)
    width = 7.5 if ncols == 1 else 5.0 * ncols
    fig = figure(width, (3.0 + STRIP_ROW * len(kinds) + 0.5) * nrows + 1.0)
    panels = strip_panels(fig, nrows, ncols, len(kinds), 3.0)
    lrs = np.unique(trials["lr"].to_numpy(float))
    dodge = 10 ** (0.12 * (np.diff(np.log10(lrs)).min() if lrs.size > 1 else 1.0))
    for (strip, ax), (label, _, rows) in zip(panels, contexts):
        for bn in (False, True):
            side = rows[rows["bn"] == bn]
            x = side["lr"].to_numpy(float) * (dodge if bn else 1 / dodge)
            y = side["outcome"].to_numpy(float)
            shown = np.isfinite(y) & (y <= cap)
            ax.scatter(x[shown], y[shown], s=14, alpha=0.6, color=COLORS[bn], label=NAMES[bn])
        fill_strip(strip, count_rows(_run_counts(rows, cap), kinds, lrs, width / ncols))
        lr_axis(ax, lrs)
        log_loss_axis(ax, rows["outcome"].to_numpy(float), cap)
        ax.set_ylabel(f"run outcome ({LOSS_UNIT})")
        if label:
            (strip or ax).set_title(wrap(label, width / ncols - 1.2, FONT["title"]))
        ax.grid(True, alpha=0.3)
    _hide_unused(panels, len(contexts))
    handles = [
        Line2D([], [], color=COLORS[b], marker="o", linestyle="", label=NAMES[b]) for b in (False, True)
    ]
    if kinds:
        handles.append(note_handle("strip: runs per learning rate that diverged or ended off the axis"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(fig, "Every run's outcome against its learning rate")
    return fig


@styled
def plot_success_rate(stab: pd.DataFrame, threshold: float) -> Figure:
    """Share of runs that train against learning rate per BN arm, with Wilson bands and the edge level.

    Args:
        stab: :func:`leafbn.report.robustness.stability`'s table (of the no-BN-paired trials).
        threshold: the share at which an arm's trainable range starts and ends (a dashed line).
    """
    contexts = context_groups(stab)
    nrows, ncols = grid_shape(len(contexts), 2 if len(contexts) <= 6 else 3)
    fig = figure(7.5 if ncols == 1 else 5.0 * ncols, 3.2 * nrows + 1.0)
    panels = strip_panels(fig, nrows, ncols, 0, 3.0)
    for (_, ax), (label, _, rows) in zip(panels, contexts):
        for bn in (False, True):
            side = rows[rows["bn"] == bn].sort_values("lr")
            if side.empty:
                continue
            ax.plot(side["lr"], side["success_rate"], marker="o", color=COLORS[bn], label=NAMES[bn])
            ax.fill_between(side["lr"], side["success_ci_low"], side["success_ci_high"], color=COLORS[bn],
                            alpha=0.18, linewidth=0)  # fmt: skip
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        lr_axis(ax, stab["lr"])
        ax.set_ylim(-0.03, 1.05)
        ax.set_ylabel("share of runs that train")
        if label:
            ax.set_title(wrap(label, 3.8, FONT["title"]))
        ax.grid(True, alpha=0.3)
    _hide_unused(panels, len(contexts))
    handles = [Line2D([], [], color=COLORS[b], marker="o", label=f"{NAMES[b]}") for b in (False, True)]
    handles += [
        Patch(color="grey", alpha=0.3, label="Wilson 95% interval"),
        Line2D([], [], color="grey", linestyle="--", label=f"range edge at {threshold:.0%}"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(fig, "Share of runs that train at each learning rate")
    return fig


@styled
def plot_bootstrap(draws: pd.DataFrame, answers: list[dict[str, Any]]) -> Figure:
    """The answer per family as a forest: each arm's trainable width and BN's minus no-BN's, in decades,
    with their bootstrap intervals; behind the difference, the share of resamples at each value.

    Args:
        draws: :func:`leafbn.report.robustness.bootstrap_answer`'s per-resample table.
        answers: its per-family answers.
    """
    n = max(len(answers), 1)
    cols = [("no_bn", f"{NAMES[False]} trainable width"), ("bn", f"{NAMES[True]} trainable width"),
            ("difference", f"{NAMES[True]} − {NAMES[False]}")]  # fmt: skip
    fig = figure(10, 0.55 * n + 2.0)
    axes = fig.subplots(1, 3, sharey=True)
    axes[1].sharex(axes[0])  # the two arms' ranges on one scale
    labels = []
    keys = {k for a in answers for k in a["family"]}
    varying = [k for k in keys if len({str(a["family"].get(k)) for a in answers}) > 1]
    for i, ans in enumerate(answers):
        family = {k: v for k, v in ans["family"].items() if k in varying}
        verdict = _VERDICT_TEXT.get(ans["verdict"], str(ans["verdict"]).replace("_", " "))
        p = ans.get("p_bn_wider")
        labels.append(
            (context_text(family) or "all runs")
            + f"\n{verdict}"
            + (f", P(BN wider) {p:.2f}" if p is not None else "")
        )
        part = in_context(draws, ans["family"])
        for ax, (name, _) in zip(axes, cols):
            interval = ans["difference_decades"] if name == "difference" else ans["width_decades"][name]
            color = "black" if name == "difference" else COLORS[name == "bn"]
            if name == "difference" and "difference" in part.columns:
                _draw_shares(ax, part["difference"].to_numpy(float), i)
            _draw_interval(ax, interval, i, color)
    for ax, (_, title) in zip(axes, cols):
        ax.set_title(title)
        ax.set_xlabel("decades of learning rate")
        ax.grid(True, axis="x", alpha=0.3)
        ax.margins(x=0.15)
    axes[2].axvline(0, color="grey", linewidth=1)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)
    handles = [
        Line2D([], [], color="black", marker="o", label="estimate, bootstrap 95% interval"),
        Line2D([], [], color="grey", marker="o", linestyle="", alpha=0.4, label="share of resamples (area)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    suptitle(fig, "How wide each arm's trainable learning-rate range is, and how sure (paired bootstrap)")
    return fig


def _draw_interval(ax: Axes, interval: dict[str, Any], row: int, color: str) -> None:
    """A point at ``interval["estimate"]`` on ``row`` with a line over its interval (where finite)."""
    est, low, high = (interval.get(k) for k in ("estimate", "ci_low", "ci_high"))
    if low is not None and high is not None:
        ax.plot([low, high], [row, row], color=color, linewidth=2, solid_capstyle="butt")
        ax.plot([low, high], [row, row], color=color, marker="|", markersize=10, linestyle="")
    if est is not None:
        ax.plot([est], [row], color=color, marker="o", markersize=7, linestyle="")


def _draw_shares(ax: Axes, values: np.ndarray, row: int) -> None:
    """Grey discs at the distinct resampled values of ``values`` (rounded to 0.01), area ∝ share."""
    v = np.round(values[np.isfinite(values)], 2)
    if not v.size:
        return
    uniq, count = np.unique(v, return_counts=True)
    ax.scatter(uniq, [row] * uniq.size, s=400 * count / v.size, color="grey", alpha=0.35, linewidth=0)


@styled
def plot_expected_best(eb: pd.DataFrame) -> Figure:
    """Dodge et al.'s expected best validation loss against the number of runs drawn, per BN arm.

    Args:
        eb: :func:`leafbn.report.robustness.expected_best`'s table. With ``low`` and ``high`` (quantiles of
            the best of n, positive) a band is drawn between them; without them none, and the
            legend says so (a mean ± s.d. band would reach below zero on a log axis).
    """
    fig = figure(7.5, 4.4)
    ax = fig.subplots()
    band = {"low", "high"} <= set(eb.columns)
    for bn, arm in eb.groupby("bn", sort=True):
        n, m = arm["n"].to_numpy(float), arm["expected"].to_numpy(float)
        ax.plot(n, m, color=COLORS[bool(bn)], label=NAMES[bool(bn)])
        if band:
            low, high = arm["low"].to_numpy(float), arm["high"].to_numpy(float)
            ok = np.isfinite(low) & np.isfinite(high) & (low > 0)
            ax.fill_between(n[ok], low[ok], high[ok], color=COLORS[bool(bn)], alpha=0.18, linewidth=0)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(plain_log_formatter))
    values = eb[[c for c in ("expected", "low", "high") if c in eb.columns]].to_numpy(float)
    log_loss_axis(ax, values, headroom=1.3)
    ax.set_xlabel("runs drawn at random from the arm's grid (budget, log scale)")
    ax.set_ylabel(f"expected best run outcome ({LOSS_UNIT})")
    ax.grid(True, alpha=0.3, which="both")
    handles = [Line2D([], [], color=COLORS[b], label=NAMES[b]) for b in (False, True)]
    handles.append(
        Patch(color="grey", alpha=0.3, label="band: quantiles of the best of n")
        if band
        else note_handle("no band: this table has no quantiles of the best")
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(fig, "Expected best outcome against the tuning budget (lower: easier to tune)")
    return fig
