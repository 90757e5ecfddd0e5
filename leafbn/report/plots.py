"""Draw the tables of :mod:`leafbn.report.analysis`: mean loss per learning rate, the BN effect as a forest
plot, the typical run's learning curves, heat maps over the architecture's axes.

The learning curves live in :mod:`leafbn.report.curve_plots` and the heat maps in
:mod:`leafbn.report.heatmap_plots`; their public names are re-exported here.

Every drawing function only draws and returns a Figure built by :func:`leafbn.report.figure_style.figure`
(Agg canvas, no pyplot state); save it with ``fig.savefig(path)``. The numbers come from
:mod:`leafbn.report.analysis`, except the learning curves' quantiles, computed here by
:func:`curve_runs` and :func:`curve_bands` before :func:`plot_learning_curves` draws them.

Conventions (:mod:`leafbn.report.figure_style`): learning rate on a log x axis; one colour per arm; counts of
diverged and off-scale runs in a strip above the axes or in a panel's title, never on the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from leafbn.report.contexts import contexts as _contexts
from leafbn.report.curve_plots import FEW_RUNS, curve_bands, curve_runs, plot_learning_curves
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
    strip_fit,
    strip_panels,
    styled,
    suptitle,
    wrap,
)
from leafbn.report.heatmap_plots import plot_heatmaps

__all__ = [
    "plot_loss_vs_lr",
    "plot_bn_effect",
    "curve_runs",
    "curve_bands",
    "plot_learning_curves",
    "plot_heatmaps",
    "FEW_RUNS",
    "MAX_CONTEXTS",
]

#: With more architectures (contexts) than this, figures trim them to stay legible: the learning
#: curves pool them per learning rate, the loss against learning rate shows validation only.
MAX_CONTEXTS: int = 4


# --- Mean loss per learning rate -------------------------------------------------------------------------
def _loss_strip_rows(
    rows: pd.DataFrame, metric: str, kinds: list[tuple[bool, str]], lrs: np.ndarray, width_in: float
) -> list[tuple[str, str, list[float], list[str]]]:
    """Strip rows of one loss panel: diverged runs (k/n) and means above :data:`CAP` (their value)."""
    out = []
    for bn, kind in kinds:
        side = rows[rows["bn"] == bn]
        if kind == "diverged":
            hit = side[side["n_diverged"] > 0]
            texts = [f"{int(k)}/{int(n)}" for k, n in zip(hit["n_diverged"], hit["n_runs"])]
            if not strip_fit(lrs, width_in * 0.8, texts):
                texts = [f"{int(k)}" for k in hit["n_diverged"]]
            out.append((f"{NAMES[bn]} diverged", COLORS[bn], list(hit["lr"]), texts))
        else:
            mean = side[f"{metric}_mean"].to_numpy(float)
            hit = side[np.isfinite(mean) & (mean > CAP)]
            texts = [f"{v:.0e}" for v in hit[f"{metric}_mean"]]
            if not strip_fit(lrs, width_in * 0.8, texts):
                texts = ["▲"] * len(texts)
            out.append((f"{NAMES[bn]} mean > {CAP:g}", COLORS[bn], list(hit["lr"]), texts))
    return out


@styled
def plot_loss_vs_lr(stats: pd.DataFrame, confidence: float = 0.95) -> Figure:
    """The seed's Figure 2 done right: final validation and training cross-entropy vs learning rate.

    Args:
        stats: :func:`leafbn.report.analysis.aggregate`'s table (one row per configuration).
        confidence: the level its ``*_ci`` columns were computed at (for the legend).

    Returns:
        A Figure with a row per context (depth × width × ... when they vary) and two columns
        (validation, training): mean over non-diverged seeds per BN setting with its CI as an
        error bar where the interval stays above 0 (a log axis cannot show the rest; the legend
        counts those left out), and a strip above each panel counting diverged runs and naming
        means above :data:`CAP`.
    """
    contexts = _contexts(stats)
    metrics = (("val_loss", "validation"), ("train_loss", "training"))
    kinds = [
        (bn, "diverged") for bn in (False, True) if (stats.loc[stats["bn"] == bn, "n_diverged"] > 0).any()
    ]
    for bn in (False, True):
        means = stats.loc[stats["bn"] == bn, [f"{m}_mean" for m, _ in metrics]].to_numpy(float)
        if (np.isfinite(means) & (means > CAP)).any():
            kinds.append((bn, "above"))
    if len(contexts) > MAX_CONTEXTS:  # many architectures: validation only, panels wrapped
        metrics = metrics[:1]
    nrows, ncols = (len(contexts), 2) if len(metrics) == 2 else grid_shape(len(contexts), 3)
    fig = figure(5.5 * ncols, (3.2 + STRIP_ROW * len(kinds) + 0.5) * nrows + 1.0)
    panels = strip_panels(fig, nrows, ncols, len(kinds), 3.2)
    lrs = np.unique(stats["lr"].to_numpy(float))
    dodge = 10 ** (0.06 * (np.diff(np.log10(lrs)).min() if lrs.size > 1 else 1.0))
    left_out = 0
    for i, (label, _, rows) in enumerate(contexts):
        for j, (metric, name) in enumerate(metrics):
            strip, ax = panels[len(metrics) * i + j]
            for bn in (False, True):
                side = rows[rows["bn"] == bn].sort_values("lr")
                if side.empty:
                    continue
                left_out += _mean_with_ci(ax, side, metric, bn, dodge if bn else 1 / dodge)
            fill_strip(strip, _loss_strip_rows(rows, metric, kinds, lrs, 5.5), width_in=5.5 * 0.8, lrs=lrs)
            lr_axis(ax, lrs)
            log_loss_axis(ax, _drawn_values(rows, metric))
            ax.set_ylabel(f"final {name} loss ({LOSS_UNIT})")
            title = f"{name.capitalize()}" + (f" — {label}" if label else "")
            (strip or ax).set_title(wrap(title, 4.5, FONT["title"]))
            ax.grid(True, which="major", alpha=0.3)
    for strip, ax in panels[len(metrics) * len(contexts) :]:
        ax.set_visible(False)
        if strip is not None:
            strip.set_visible(False)
    handles = [Line2D([], [], color=COLORS[b], marker="o", label=f"{NAMES[b]}: mean, {confidence:.0%} CI")
               for b in (False, True)]  # fmt: skip
    if left_out:
        handles.append(note_handle(f"{left_out} interval(s) reach 0 nats: left out (log axis)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(fig, "Final cross-entropy against learning rate (mean over the runs that did not diverge)")
    return fig


def _drawn_values(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """The means of ``rows`` and the ends of the intervals :func:`_mean_with_ci` draws, so that the
    y axis shows every drawn interval whole (an end above :data:`CAP` is left to the axis' top)."""
    mean, ci = rows[f"{metric}_mean"].to_numpy(float), rows[f"{metric}_ci"].to_numpy(float)
    drawn = np.isfinite(mean) & (mean <= CAP) & np.isfinite(ci) & (mean - ci > 0)
    return np.concatenate([mean, mean[drawn] - ci[drawn], mean[drawn] + ci[drawn]])


def _mean_with_ci(ax: Axes, side: pd.DataFrame, metric: str, bn: bool, shift: float) -> int:
    """The arm's means joined by a line, each with its CI where that stays above 0; how many not."""
    x = side["lr"].to_numpy(float) * shift
    mean, ci = side[f"{metric}_mean"].to_numpy(float), side[f"{metric}_ci"].to_numpy(float)
    shown = np.isfinite(mean) & (mean <= CAP)
    ax.plot(x[shown], mean[shown], marker="o", markersize=4, color=COLORS[bn], linewidth=1.2)
    drawable = shown & np.isfinite(ci) & (mean - ci > 0)
    ax.errorbar(x[drawable], mean[drawable], yerr=ci[drawable], fmt="none", ecolor=COLORS[bn], capsize=3)
    return int((shown & np.isfinite(ci) & ~(mean - ci > 0)).sum())


# --- The BN effect as a forest plot ----------------------------------------------------------------------
@styled
def plot_bn_effect(effect: pd.DataFrame, confidence: float = 0.95) -> Figure:
    """BN − no-BN difference in mean final validation loss per learning rate: a forest plot.

    Args:
        effect: :func:`leafbn.report.analysis.bn_effect`'s table.
        confidence: the level its CI was computed at (for the labels).

    Returns:
        A Figure with one row per learning rate (grouped by context when other axes vary): the
        difference as a point (filled where the paired t-test is significant after Holm's correction,
        hollow where not) with its interval as a horizontal bar, no line between rows; a column
        beside it prints each row's numbers; the learning rates where no test was possible are
        named there, one row per reason (a strip of their own, no point). The x axis turns
        symmetric-log when a linear one would hide the narrowest interval; a row whose interval does
        not reach ``ZOOM_MARGIN_PT`` out of its point a side gets a zoom at the column's right
        (:func:`_forest_zoom`), so that every interval can be seen, none drawn wider than it is at
        its own scale.
    """
    labels, items = _forest_rows(effect)
    fig = figure(10, 0.27 * len(labels) + 1.9)
    ax, side = _forest_axes(fig)
    ax.axvline(0, color="grey", linewidth=1)
    tested = [it for it in items if it is not None and it["status"] == "ok"]
    width_pt = 0.55 * fig.get_figwidth() * 72
    _forest_x(ax, tested, width_pt)
    zoomed = 0
    for y, it in enumerate(items):
        if it is None:
            continue
        if it["status"] != "ok":
            side.text(0, y, it["text"], va="center", ha="left", fontsize=FONT["note"], color="#a0522d")
            continue
        _forest_point(ax, y, it["ci_low"], it["diff"], it["ci_high"], it["significant"])
        text = f"{it['diff']:+.3f} [{it['ci_low']:+.3f}, {it['ci_high']:+.3f}]"
        side.text(0, y, text, va="center", ha="left", fontsize=FONT["note"], family="monospace")
        if _hidden_intervals(ax, [it], width_pt, point_pt=FOREST_POINT_PT + 2 * ZOOM_MARGIN_PT):
            _forest_zoom(side, y, it)
            zoomed += 1
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    scale = "; symmetric log scale" if ax.get_xscale() == "symlog" else ""
    ax.set_xlabel(f"BN − no-BN mean outcome ({LOSS_UNIT}{scale}); below 0: BN ends lower")
    ax.grid(True, axis="x", alpha=0.3)
    side.set_title(f"difference [{confidence:.0%} paired-t CI]", fontsize=FONT["label"], loc="left")
    handles = [
        Line2D([], [], color="black", marker="o", linestyle="", label="significant (Holm)"),
        Line2D(
            [], [], color="black", marker="o", markerfacecolor="white", linestyle="", label="not significant"
        ),
    ]
    if zoomed:
        side.set_title("zoom", fontsize=FONT["label"], loc="right")
        note = f"zoom: {zoomed} CI(s) too narrow to see here, magnified to fill the box's middle half"
        handles.append(note_handle(note))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(fig, "Effect of BN on the outcome per learning rate (forest plot)")
    return fig


#: The forest's point diameter, and how far an interval must reach out of it a side to be seen (points);
#: where a row's zoom sits in the text column (axes fraction).
FOREST_POINT_PT: float = 6
ZOOM_MARGIN_PT: float = 2
ZOOM_SPAN: tuple[float, float] = (0.74, 0.98)


def _forest_point(ax: Axes, y: float, low: float, mid: float, high: float, significant: bool) -> None:
    """One forest row on ``ax`` at height ``y``: the interval ``low``..``high`` as a bar with end caps
    and the point ``mid`` (filled if ``significant``, hollow if not) drawn under the bar's ends."""
    ax.plot([low, high], [y, y], color="black", linewidth=1.6, zorder=3)
    ax.plot([low, high], [y, y], color="black", marker="|", markersize=8, linestyle="", zorder=3)
    face = "black" if significant else "white"
    ax.plot(
        [mid], [y], marker="o", markersize=FOREST_POINT_PT, color="black", markerfacecolor=face,
        linestyle="", zorder=2,
    )  # fmt: skip


def _forest_zoom(side: Axes, y: float, it: dict[str, Any]) -> None:
    """Row ``y``'s interval magnified in a box at the right of the text column ``side``: the interval
    spans the box's middle half (a linear map, so the point keeps its place inside it)."""
    x0, x1 = ZOOM_SPAN
    side.add_patch(Rectangle((x0, y - 0.38), x1 - x0, 0.76, fill=False, edgecolor="0.75", linewidth=0.8))
    low, high = it["ci_low"], it["ci_high"]
    width = high - low

    def to_box(v: float) -> float:
        share = (v - low) / width if width > 0 else 0.5
        return x0 + (x1 - x0) * (0.25 + 0.5 * min(max(share, -0.5), 1.5))

    _forest_point(side, y, to_box(low), to_box(it["diff"]), to_box(high), it["significant"])


def _forest_axes(fig: Figure) -> tuple[Axes, Axes]:
    """The forest's data axes and, right of it, a text column sharing its rows."""
    ax, side = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    side.set_xlim(0, 1)
    side.set_axis_off()
    return ax, side


def _forest_rows(effect: pd.DataFrame) -> tuple[list[str], list[dict[str, Any] | None]]:
    """Row labels and items of the forest: per context a heading row (item None, only when there are
    several), one row per tested learning rate, then one "no test" row per reason naming its rates."""
    labels: list[str] = []
    items: list[dict[str, Any] | None] = []
    contexts = _contexts(effect)
    for label, _, rows in contexts:
        if len(contexts) > 1:
            labels.append(label)
            items.append(None)
        rows = rows.sort_values("lr")
        for row in rows[rows["status"] == "ok"].to_dict("records"):
            labels.append(f"lr {row['lr']:g}")
            items.append(row)
        for status, part in rows[rows["status"] != "ok"].groupby("status", sort=False):
            lrs = part["lr"].to_numpy(float)
            named = (
                ", ".join(f"{v:g}" for v in lrs)
                if lrs.size <= 4
                else f"{lrs.size} rates, {lrs.min():g}–{lrs.max():g}"
            )
            labels.append("no test")
            items.append({"status": status, "text": f"lr {named}: {status}"})
    return labels, items


def _hidden_intervals(ax: Axes, tested: list[dict[str, Any]], width_pt: float, point_pt: float = 6) -> int:
    """How many intervals of ``tested`` would be narrower than their point (``point_pt``) on ``ax``'s
    x scale, the axes being about ``width_pt`` points wide."""
    to_unit = ax.transScale + ax.transLimits  # data -> axes fraction, before the layout
    count = 0
    for it in tested:
        (x0, _), (x1, _) = to_unit.transform([(it["ci_low"], 0.0), (it["ci_high"], 0.0)])
        count += int(abs(x1 - x0) * width_pt < point_pt)
    return count


def _forest_x(ax: Axes, tested: list[dict[str, Any]], width_pt: float) -> None:
    """A linear x axis when the narrowest interval spans >= 1% of the range, else symmetric-log with
    its linear part as wide as that interval, so that every interval shows; linear again when the
    symmetric-log one would hide as many intervals (narrow ones far from 0 shrink on it) in axes
    about ``width_pt`` points wide."""
    if not tested:
        ax.set_xlim(-1, 1)
        return
    low = min(min(it["ci_low"], 0.0) for it in tested)
    high = max(max(it["ci_high"], 0.0) for it in tested)
    narrowest = min(it["ci_high"] - it["ci_low"] for it in tested)
    span = high - low
    pad = 0.05 * span if span > 0 else 1.0
    ax.set_xlim(low - pad, high + pad)
    if span > 0 and narrowest < 0.01 * span:
        hidden_linear = _hidden_intervals(ax, tested, width_pt)
        linthresh = max(narrowest, span * 1e-6)
        ax.set_xscale("symlog", linthresh=linthresh)
        ticks = _symlog_ticks(linthresh, low - pad, high + pad)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if _hidden_intervals(ax, tested, width_pt) >= hidden_linear:
            ax.set_xscale("linear")  # its default ticks again
            ax.set_xlim(low - pad, high + pad)


def _symlog_ticks(linthresh: float, low: float, high: float) -> list[float]:
    """Ticks of a symmetric-log axis from ``low`` to ``high``: 0 and, a decade above ``linthresh``
    and on, 1, 2 and 5 × each power of ten while they fit (at most 4 a side), else powers of ten at
    most 3 a side, so that a reader can read every point's value off the axis."""
    first, last = math.ceil(math.log10(linthresh)) + 1, math.floor(math.log10(max(-low, high)))
    reach = max(-low, high)
    mags = [m * 10.0**k for k in range(first, last + 1) for m in (1, 2, 5) if m * 10.0**k <= reach]
    side = max(sum(-v >= low for v in mags), sum(v <= high for v in mags))
    if side > 4:
        powers = [10.0**k for k in range(first, last + 1)][::-1]
        mags = powers[:: max(1, math.ceil(len(powers) / 3))]  # <= 3 a side: labels 2 decades apart
    return sorted({-v for v in mags if -v >= low} | {0.0} | {v for v in mags if v <= high})
