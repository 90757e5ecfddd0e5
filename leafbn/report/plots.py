"""Draw the tables of :mod:`leafbn.report.analysis`: mean loss per learning rate, the BN effect as a forest
plot, the typical run's learning curves, heat maps over the architecture's axes.

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
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from leafbn.config import TRIAL_FIELDS
from leafbn.report.figure_style import (
    AXIS_LABEL,
    CAP,
    COLORS,
    FONT,
    LOSS_UNIT,
    LR_LABEL,
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
    "plot_loss_vs_lr",
    "plot_bn_effect",
    "curve_runs",
    "curve_bands",
    "plot_learning_curves",
    "plot_heatmaps",
    "FEW_RUNS",
    "MAX_CONTEXTS",
]

#: With at most this many runs per arm, a learning-curve panel draws each run instead of quantiles.
FEW_RUNS: int = 5
#: With more architectures (contexts) than this, figures trim them to stay legible: the learning
#: curves pool them per learning rate, the loss against learning rate shows validation only.
MAX_CONTEXTS: int = 4


def _contexts(df: pd.DataFrame) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
    """Split ``df`` by the axes other than lr and bn that vary: (label, key, rows) per context."""
    axes = [
        f
        for f in TRIAL_FIELDS
        if f in df.columns and f not in ("lr", "bn") and df[f].nunique(dropna=False) > 1
    ]
    if not axes:
        return [("", {}, df)]
    out = []
    for key, rows in df.groupby(axes, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(axes, key))
        out.append((" · ".join(f"{k}={_fmt(v)}" for k, v in values.items()), values, rows))
    return out


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


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
            fill_strip(strip, _loss_strip_rows(rows, metric, kinds, lrs, 5.5))
            lr_axis(ax, lrs)
            log_loss_axis(ax, rows[f"{metric}_mean"].to_numpy(float))
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
        difference as a point (filled where Welch's test is significant after Holm's correction,
        hollow where not) with its interval as a horizontal bar, no line between rows; a column
        beside it prints each row's numbers; the learning rates where no test was possible are
        named there, one row per reason (a strip of their own, no point). The x axis turns
        symmetric-log when a linear one would hide the narrowest interval.
    """
    labels, items = _forest_rows(effect)
    fig = figure(10, 0.27 * len(labels) + 1.9)
    ax, side = _forest_axes(fig)
    ax.axvline(0, color="grey", linewidth=1)
    tested = [it for it in items if it is not None and it["status"] == "ok"]
    for y, it in enumerate(items):
        if it is None:
            continue
        if it["status"] == "ok":
            color = "black"
            ax.plot([it["ci_low"], it["ci_high"]], [y, y], color=color, linewidth=1.6)
            ax.plot(
                [it["ci_low"], it["ci_high"]], [y, y], color=color, marker="|", markersize=8, linestyle=""
            )
            face = color if it["significant"] else "white"
            ax.plot(
                [it["diff"]], [y], marker="o", markersize=6, color=color, markerfacecolor=face, linestyle=""
            )
            text = f"{it['diff']:+.3f} [{it['ci_low']:+.3f}, {it['ci_high']:+.3f}]"
            side.text(0, y, text, va="center", ha="left", fontsize=FONT["note"], family="monospace")
        else:
            side.text(0, y, it["text"], va="center", ha="left", fontsize=FONT["note"], color="#a0522d")
    _forest_x(ax, tested)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel(f"BN − no-BN mean outcome ({LOSS_UNIT}); below 0: BN ends lower")
    ax.grid(True, axis="x", alpha=0.3)
    side.set_title(f"difference [{confidence:.0%} Welch CI]", fontsize=FONT["label"], loc="left")
    handles = [
        Line2D([], [], color="black", marker="o", linestyle="", label="significant (Holm)"),
        Line2D(
            [], [], color="black", marker="o", markerfacecolor="white", linestyle="", label="not significant"
        ),
    ]
    hidden = _hidden_intervals(ax, tested, width_pt=0.55 * fig.get_figwidth() * 72)
    if hidden:
        handles.append(note_handle(f"{hidden} interval(s) narrower than their point: see the numbers"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(fig, "Effect of BN on the outcome per learning rate (forest plot)")
    return fig


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


def _forest_x(ax: Axes, tested: list[dict[str, Any]]) -> None:
    """A linear x axis when the narrowest interval spans >= 1% of the range, else symmetric-log with
    its linear part as wide as that interval, so that every interval shows."""
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
        linthresh = max(narrowest, span * 1e-6)
        ax.set_xscale("symlog", linthresh=linthresh)
        first, last = math.ceil(math.log10(linthresh)) + 1, math.floor(math.log10(max(-low, high)))
        powers = [10.0**k for k in range(first, last + 1)][::-1]
        powers = powers[:: max(1, math.ceil(len(powers) / 3))]  # <= 3 a side: labels 2 decades apart
        ticks = [-p for p in powers if -p >= low - pad] + [0.0] + [p for p in powers[::-1] if p <= high + pad]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


# --- Learning curves of the typical run ------------------------------------------------------------------
def curve_runs(trials: pd.DataFrame, curves: pd.DataFrame, pool: bool = False) -> pd.DataFrame:
    """Each run's curve with its configuration: ``curves`` joined to the trials' axes and ``diverged``.

    Args:
        trials, curves: the study's tables.
        pool: keep only ``lr`` and ``bn`` of the axes, so that the curves of every architecture
            at a learning rate form one panel (a space with many architectures).

    Returns:
        One row per run × epoch: the configuration axes, ``trial_id``, ``diverged`` (the run's),
        ``epoch``, ``val_loss``, ``train_loss``. Empty when the tables share no ``trial_id``.
    """
    from leafbn.report.analysis import config_axes, prepare

    trials = prepare(trials)
    keys = [k for k in config_axes(trials) if not pool or k in ("lr", "bn")]
    columns = [*keys, "trial_id", "diverged", "epoch", "val_loss", "train_loss"]
    need = {"trial_id", "epoch", "val_loss", "train_loss"}
    if trials.empty or curves.empty or "trial_id" not in trials.columns or not need <= set(curves.columns):
        return pd.DataFrame(columns=columns)
    merged = curves[list(need)].merge(trials[["trial_id", "diverged", *keys]], on="trial_id", how="inner")
    return merged[columns].sort_values([*keys, "trial_id", "epoch"], kind="stable").reset_index(drop=True)


def curve_bands(runs: pd.DataFrame) -> pd.DataFrame:
    """The typical run per configuration and epoch: quantiles over the runs finite at that epoch.

    Returns:
        One row per configuration × epoch: the axes, ``epoch``, ``n`` (finite runs), ``val_q1``,
        ``val_median``, ``val_q3``, ``train_median``.
    """
    keys = [c for c in runs.columns if c not in ("trial_id", "diverged", "epoch", "val_loss", "train_loss")]
    columns = [*keys, "epoch", "n", "val_q1", "val_median", "val_q3", "train_median"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    finite = runs[np.isfinite(runs["val_loss"].to_numpy(float))]
    out = finite.groupby([*keys, "epoch"], sort=True, dropna=False).agg(
        n=("val_loss", "size"),
        val_q1=("val_loss", lambda v: float(np.percentile(v, 25))),
        val_median=("val_loss", "median"),
        val_q3=("val_loss", lambda v: float(np.percentile(v, 75))),
        train_median=("train_loss", lambda v: float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan),
    )
    return out.reset_index()[columns]


def _curve_ylim(bands: pd.DataFrame, runs: pd.DataFrame, few: int) -> tuple[float, float]:
    """The shared log y range of the runs that train: their quartiles (or values, with few runs),
    up to :data:`CAP`."""
    counts = runs.groupby([c for c in runs.columns if c in TRIAL_FIELDS], dropna=False)["trial_id"].nunique()
    values = [bands[["val_q1", "val_q3", "train_median"]].to_numpy(float).ravel()]
    if len(counts) and counts.min() <= few:
        trained = runs[~runs["diverged"].astype(bool)]
        values.append(trained[["val_loss", "train_loss"]].to_numpy(float).ravel())
    v = np.concatenate(values)
    v = v[np.isfinite(v) & (v > 0) & (v <= CAP)]
    return (v.min() / 1.3, v.max() * 1.3) if v.size else (0.1, 10.0)


@styled
def plot_learning_curves(
    bands: pd.DataFrame, runs: pd.DataFrame, ncols: int = 4, few: int = FEW_RUNS
) -> Figure:
    """The typical run's learning curves per learning rate (small multiples), BN vs no BN.

    Args:
        bands: :func:`curve_bands`'s table.
        runs: :func:`curve_runs`'s table (the runs behind it).
        ncols: panels per row.
        few: an arm with at most this many runs in a panel is drawn run by run.

    Returns:
        A Figure with one panel per learning rate (× context when other axes vary): per arm the
        median validation loss with its interquartile band and the median training loss (dashed),
        or, with few runs, each run's validation loss as a thin line. The log y axis, shared, is
        fitted to the runs that train; each panel's title counts per arm the runs that diverged
        and those that leave the axis.
    """
    panels = []
    for label, _, rows in _contexts(runs):
        for lr, part in rows.groupby("lr", sort=True):
            panels.append((f"lr {lr:g}" + (f" · {label}" if label else ""), part))
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(max(len(panels), 1) / ncols)
    fig = figure(max(3.6 * ncols, 7.5), 3.1 * nrows + 1.2)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    low, high = _curve_ylim(bands, runs, few)
    high = max(high, low * 10)  # at least a decade, as the axis is drawn
    for ax, (title, part) in zip(grid.flat, panels):
        notes = [_curve_arm(ax, part[part["bn"] == bn], bands, bn, few, high) for bn in (False, True)]
        text = "\n".join([title, *[n for n in notes if n]])
        ax.set_title(wrap(text, 3.3, FONT["tick"] + 0.5), fontsize=FONT["tick"] + 0.5)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    _curve_axes(fig, grid, len(panels), low, high)
    handles = [Line2D([], [], color=COLORS[b], label=f"{NAMES[b]} validation") for b in (False, True)]
    handles += [
        Line2D([], [], color="grey", linestyle="--", label="training (median)"),
        Patch(color="grey", alpha=0.3, label="interquartile band"),
        note_handle(f"≤ {few} runs: one thin line per run"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    suptitle(fig, "Learning curves of the typical run per learning rate (median and quartiles over runs)")
    return fig


def _curve_arm(ax: Axes, side: pd.DataFrame, bands: pd.DataFrame, bn: bool, few: int, high: float) -> str:
    """Draw one arm's curves in a panel (each run, or median and quartiles); its note: how many of its
    runs diverged and how many leave the axis above ``high`` ("" when none)."""
    if side.empty:
        return ""
    n_runs = side["trial_id"].nunique()
    if n_runs <= few:
        for _, run in side.groupby("trial_id", sort=True):
            ax.plot(run["epoch"], run["val_loss"], color=COLORS[bn], linewidth=0.8, alpha=0.8)
    else:
        keys = [c for c in bands.columns if c in TRIAL_FIELDS]
        band = bands.merge(side[keys].drop_duplicates(), on=keys, how="inner").sort_values("epoch")
        ax.fill_between(
            band["epoch"], band["val_q1"], band["val_q3"], color=COLORS[bn], alpha=0.2, linewidth=0
        )
        ax.plot(band["epoch"], band["val_median"], color=COLORS[bn], linewidth=1.5)
        ax.plot(band["epoch"], band["train_median"], color=COLORS[bn], linewidth=1, linestyle="--")
    diverged = int(side.groupby("trial_id")["diverged"].first().astype(bool).sum())
    finite = side["val_loss"].where(np.isfinite(side["val_loss"].to_numpy(float)))
    above = int((finite.groupby(side["trial_id"]).max() > high).sum())
    parts = [f"{diverged}/{n_runs} diverged"] * bool(diverged) + [f"{above} off axis"] * bool(above)
    return f"{NAMES[bn]}: " + ", ".join(parts) if parts else ""


def _curve_axes(fig: Figure, grid: np.ndarray, used: int, low: float, high: float) -> None:
    """Shared limits, labels on the outer panels only, unused panels hidden."""
    ncols = grid.shape[1]
    for i, ax in enumerate(grid.flat):
        if i >= used:
            ax.set_visible(False)
            continue
        if i + ncols >= used:  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch")
        ax.yaxis.set_major_formatter(FuncFormatter(plain_log_formatter))
        ax.yaxis.set_minor_formatter(NullFormatter())
    grid.flat[0].set_ylim(low, high)
    for ax in grid[:, 0]:
        ax.set_ylabel(f"cross-entropy ({LOSS_UNIT})")


# --- Heat maps -------------------------------------------------------------------------------------------
@styled
def plot_heatmaps(heat: pd.DataFrame, axis: str, chance: float = math.log(99)) -> Figure:
    """Typical outcome and divergence rate over learning rate × ``axis``, per BN setting.

    Args:
        heat: :func:`leafbn.report.analysis.heatmap_data`'s table for ``axis`` (its ``val_loss_median``
            when present, else its mean).
        axis: the column of ``heat`` on the y axis (``depth``, ``width``, ``bn_momentum``, ...).
        chance: the loss of a uniform guess, nats: the colour scale ends there, so a blown-up cell
            takes the scale's last colour and no more.

    Returns:
        A Figure: top row the outcome (log colour scale up to ``chance``; grey where every run
        diverged), bottom row the divergence rate (0–1), one column per BN setting present.
        Cells carry their values when they fit.
    """
    sides = sorted(heat["bn"].unique()) if len(heat) else [True]
    metric = "val_loss_median" if "val_loss_median" in heat.columns else "val_loss_mean"
    n_lr = max(heat["lr"].nunique(), 1)
    width = min(max(4.0, 0.45 * n_lr + 1.8), 8.0)
    fig = figure(width * len(sides), 7.4)
    grid = fig.subplots(2, len(sides), squeeze=False)
    loss = heat[metric].to_numpy(float)
    loss = loss[np.isfinite(loss) & (loss > 0)]
    floor = min(loss.min(), chance / 10) if loss.size else chance / 10
    loss_norm = LogNorm(floor, chance)
    word = "median" if metric == "val_loss_median" else "mean"
    for col, bn in enumerate(sides):
        side = heat[heat["bn"] == bn]
        for row, (column, norm, cmap, title) in enumerate(
            (
                (metric, loss_norm, "viridis", f"{word} outcome ({LOSS_UNIT}, capped at chance)"),
                ("divergence_rate", Normalize(0, 1), "Reds", "share of runs that diverged"),
            )
        ):
            ax = grid[row, col]
            table = side.pivot_table(index=axis, columns="lr", values=column, aggfunc="mean", dropna=False)
            _heat_panel(fig, ax, table, norm, cmap, chance if row == 0 else None, width)
            ax.set_ylabel(AXIS_LABEL.get(axis, axis))
            ax.set_title(wrap(f"{NAMES[bool(bn)]}: {title}", width - 1.2, FONT["title"]))
    suptitle(fig, f"Learning rate × {AXIS_LABEL.get(axis, axis)}: outcome and divergence (other axes pooled)")
    return fig


def _heat_panel(
    fig: Figure, ax: Axes, table: pd.DataFrame, norm: Any, cmap: str, chance: float | None, width: float
) -> None:
    """One heat map: cells coloured by ``norm`` (values above ``chance`` in the scale's end colour),
    values written in the cells when they fit, lr labels thinned so they never touch."""
    data = table.to_numpy(float)
    cm = colormaps[cmap].with_extremes(bad="lightgrey")
    if chance is not None:
        cm = cm.with_extremes(over="#440154" if cmap != "viridis" else "#fde725")
    image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", origin="lower", cmap=cm, norm=norm)
    cell_pt = (width - 1.6) * 72 / max(data.shape[1], 1)
    if cell_pt > 4 * FONT["note"] * 0.62 + 4:
        for (i, j), v in np.ndenumerate(data):
            if chance is None:
                text = f"{v:.0%}" if np.isfinite(v) else "—"
            else:
                text = "div" if not np.isfinite(v) else (f">{chance:.2g}" if v > chance else f"{v:.2g}")
            dark = np.isfinite(v) and (
                norm(min(v, chance or v)) < 0.55 if cmap == "viridis" else norm(v) > 0.6
            )
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=FONT["note"] - 1,
                color="white" if dark else "black",
            )
    names = [f"{v:.3g}" for v in table.columns]
    widest = max((len(n) for n in names), default=1) + 1  # a character's room between two labels
    step = max(1, math.ceil(len(names) * widest * FONT["tick"] * 0.62 / ((width - 1.6) * 72 * 0.85)))
    ax.set_xticks(range(0, len(names), step), names[::step])
    ax.set_yticks(range(len(table.index)), [_fmt(v) for v in table.index])
    ax.set_xlabel(LR_LABEL.replace("log scale", "one column per value"))
    ax.grid(False)
    bar = fig.colorbar(image, ax=ax, shrink=0.9, extend="max" if chance is not None else "neither")
    if chance is not None:
        bar.ax.yaxis.set_major_formatter(FuncFormatter(plain_log_formatter))
        bar.ax.yaxis.set_minor_formatter(
            FuncFormatter(
                lambda t, _: (
                    plain_log_formatter(t) if round(t / 10 ** math.floor(math.log10(t))) in (2, 5) else ""
                )
            )
        )
