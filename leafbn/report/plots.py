"""Draw the tables of :mod:`leafbn.report.analysis`. Every function only draws and returns a Figure.

The figures are built with :class:`matplotlib.figure.Figure` on an Agg canvas, so nothing here
touches pyplot's global state or needs a display; save them with ``fig.savefig(path)``. The Optuna
plots are :mod:`leafbn.report.optuna_plots`'s, the robust answer's :mod:`leafbn.report.robustness_plots`'.

Conventions: learning rate on a log-scale x axis; BN off in orange, BN on in blue; diverged runs as
an ``X`` in the side's colour along the top edge, labelled ``diverged/runs``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from leafbn.config import AXES, TRIAL_FIELDS
from leafbn.report.robustness_plots import CAP, off_scale

__all__ = [
    "plot_loss_vs_lr",
    "plot_bn_effect",
    "plot_learning_curves",
    "plot_heatmaps",
]

_COLORS = {False: "tab:orange", True: "tab:blue"}
_NAMES = {False: "no BN", True: "BN"}
#: Where along the top edge (axes fraction) each side's divergence markers sit.
_DIV_Y = {False: 0.95, True: 0.88}
_AXIS_LABEL = {axis.name: axis.label for axis in AXES}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


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


def _plain_log_y(ax: Axes) -> None:
    """Log y axis with ticks written as plain numbers (0.2, 0.5, 1, 2), not powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(
        FuncFormatter(
            lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""
        )
    )


def _log_ylim(ax: Axes, values: np.ndarray, headroom: float = 6.0) -> None:
    """Log y limits around the finite positive ``values`` up to :data:`CAP` nats (larger ones are
    off-scale markers, not the scale), with room at the top for the markers."""
    v = values[np.isfinite(values) & (values > 0) & (values <= CAP)]
    if v.size:
        ax.set_ylim(v.min() / 1.5, v.max() * headroom)
    else:  # nothing finite to draw (every run diverged): a fixed range keeps the log axis valid
        ax.set_ylim(0.1, 10)


def _lr_xlim(ax: Axes, lrs: Any) -> None:
    """Log x limits spanning every learning rate in ``lrs``, with room for the labels at the edges."""
    v = np.asarray(lrs, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size:
        ax.set_xlim(v.min() / 2.5, v.max() * 2.5)


def _mark_divergence(ax: Axes, lrs: pd.Series, n_div: pd.Series, n_runs: pd.Series, bn: bool) -> None:
    """An X at the top edge for each LR with diverged runs, labelled ``diverged/runs``."""
    hit = n_div > 0
    if not hit.any():
        return
    trans = ax.get_xaxis_transform()
    y = _DIV_Y[bn]
    ax.scatter(
        lrs[hit],
        [y] * int(hit.sum()),
        marker="X",
        s=70,
        color=_COLORS[bn],
        edgecolor="black",
        linewidth=0.6,
        transform=trans,
        zorder=5,
        clip_on=False,
    )
    for lr, k, n in zip(lrs[hit], n_div[hit], n_runs[hit]):
        ax.annotate(
            f"{int(k)}/{int(n)}",
            (lr, y),
            xycoords=trans,
            xytext=(7, -3),
            textcoords="offset points",
            fontsize=7,
            color=_COLORS[bn],
        )


def _legend_handles(diverged: set[bool]) -> list[Line2D]:
    handles = [
        Line2D([], [], color=_COLORS[b], marker="o", label=f"{_NAMES[b]} (mean, CI band)")
        for b in (False, True)
    ]
    for b in sorted(diverged):
        handles.append(
            Line2D(
                [],
                [],
                color=_COLORS[b],
                marker="X",
                linestyle="",
                markeredgecolor="black",
                markersize=8,
                label=f"{_NAMES[b]} diverged (runs/total)",
            )
        )
    return handles


# ------------------------------------------------------------------------------------------------
def plot_loss_vs_lr(stats: pd.DataFrame, confidence: float = 0.95) -> Figure:
    """The seed's Figure 2 done right: final validation and training cross-entropy vs learning rate.

    Args:
        stats: :func:`leafbn.report.analysis.aggregate`'s table (one row per configuration).
        confidence: the level its ``*_ci`` columns were computed at (for the legend).

    Returns:
        A Figure with a row per context (depth × width × ... when they vary) and two columns
        (validation, training): mean over non-diverged seeds per BN setting with its CI band, and
        an X at the top edge wherever runs diverged.
    """
    contexts = _contexts(stats)
    fig = _figure(11, 3.8 * len(contexts) + 0.6)
    grid = fig.subplots(len(contexts), 2, squeeze=False)
    diverged: set[bool] = set()
    for (label, _, rows), axes in zip(contexts, grid):
        for ax, metric, name in zip(axes, ("val_loss", "train_loss"), ("validation", "training")):
            for bn in (False, True):
                side = rows[rows["bn"] == bn].sort_values("lr")
                if side.empty:
                    continue
                mean, ci = side[f"{metric}_mean"].to_numpy(float), side[f"{metric}_ci"].to_numpy(float)
                ax.plot(side["lr"], mean, marker="o", color=_COLORS[bn], label=_NAMES[bn])
                low = np.where(np.isfinite(ci), np.maximum(mean - ci, mean / 100), mean)
                ax.fill_between(
                    side["lr"],
                    low,
                    np.where(np.isfinite(ci), mean + ci, mean),
                    color=_COLORS[bn],
                    alpha=0.2,
                    linewidth=0,
                )
                _mark_divergence(ax, side["lr"], side["n_diverged"], side["n_runs"], bn)
                off_scale(ax, side["lr"].to_numpy(float), mean, _COLORS[bn])
                if (side["n_diverged"] > 0).any():
                    diverged.add(bn)
            ax.set_xscale("log")
            _plain_log_y(ax)
            _lr_xlim(ax, rows["lr"])
            _log_ylim(ax, rows[[f"{metric}_mean"]].to_numpy(float).ravel())
            ax.set_xlabel("learning rate")
            ax.set_ylabel(f"final {name} cross-entropy (nats)")
            ax.set_title(f"{name.capitalize()} loss" + (f" — {label}" if label else ""))
            ax.grid(True, which="major", alpha=0.3)
    handles = _legend_handles(diverged)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    fig.suptitle(
        f"Final cross-entropy vs learning rate, BN vs no BN "
        f"(mean over non-diverged seeds, {confidence:.0%} CI)"
    )
    return fig


def plot_bn_effect(effect: pd.DataFrame, confidence: float = 0.95) -> Figure:
    """BN − no-BN difference in mean final validation loss per learning rate, with its CI.

    Args:
        effect: :func:`leafbn.report.analysis.bn_effect`'s table.
        confidence: the level its CI was computed at (for the labels).

    Returns:
        A Figure with one line per context: filled markers where Welch's test is significant,
        hollow where not, and a labelled marker at the top edge for LRs with no test (a side
        diverged in all seeds, or too few seeds). Below zero: BN reached a lower loss.
    """
    fig = _figure(8, 4.6)
    ax = fig.subplots()
    ax.axhline(0, color="grey", linewidth=1)
    contexts = _contexts(effect)
    trans = ax.get_xaxis_transform()
    for i, (label, _, rows) in enumerate(contexts):
        rows = rows.sort_values("lr")
        color = f"C{i + 2}" if len(contexts) > 1 else "black"
        tested = rows[rows["status"] == "ok"]
        err = np.vstack([tested["diff"] - tested["ci_low"], tested["ci_high"] - tested["diff"]])
        ax.errorbar(
            tested["lr"],
            tested["diff"],
            yerr=err,
            color=color,
            capsize=3,
            linestyle="-",
            marker="",
            label=label or None,
        )
        sig = tested[tested["significant"]]
        ax.scatter(sig["lr"], sig["diff"], color=color, s=45, zorder=4)
        ns = tested[~tested["significant"]]
        ax.scatter(ns["lr"], ns["diff"], facecolor="white", edgecolor=color, s=45, zorder=4)
        untested = rows[rows["status"] != "ok"]
        for lr, status in zip(untested["lr"], untested["status"]):
            ax.scatter(
                [lr], [0.96 - 0.07 * i], marker="X", s=60, color="tab:red", transform=trans, clip_on=False
            )
            ax.annotate(
                status.replace(" in all seeds", ""),
                (lr, 0.96 - 0.07 * i),
                xycoords=trans,
                xytext=(0, -11),
                textcoords="offset points",
                fontsize=7,
                ha="center",
                color="tab:red",
            )
    ax.set_xscale("log")
    _lr_xlim(ax, effect["lr"])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("BN − no-BN mean final validation loss (nats)")
    ax.set_title(f"Effect of BN per learning rate ({confidence:.0%} Welch CI; filled = significant)")
    handles = [
        Line2D([], [], color="black", marker="o", linestyle="", label="significant"),
        Line2D(
            [], [], color="black", marker="o", markerfacecolor="white", linestyle="", label="not significant"
        ),
        Line2D([], [], color="tab:red", marker="X", linestyle="", label="no test (see label)"),
    ]
    if len(contexts) > 1:
        handles += [Line2D([], [], color=f"C{i + 2}", label=lab) for i, (lab, _, _) in enumerate(contexts)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8)
    ax.grid(True, alpha=0.3)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.35 * (hi - lo))
    return fig


def plot_learning_curves(curve_stats: pd.DataFrame, ncols: int = 4) -> Figure:
    """Learning curves per learning rate (small multiples), BN vs no BN.

    Args:
        curve_stats: :func:`leafbn.report.analysis.curve_summary`'s table.
        ncols: panels per row.

    Returns:
        A Figure with one panel per learning rate (× context when other axes vary): validation
        loss (solid, with CI band) and training loss (dashed) per epoch, mean over the seeds still
        finite; an X at the top edge at epochs where runs diverged. Shared log y axis.
    """
    panels = []
    for label, _, rows in _contexts(curve_stats):
        for lr, part in rows.groupby("lr", sort=True):
            panels.append((f"lr={lr:g}" + (f" · {label}" if label else ""), part))
    n = max(len(panels), 1)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = _figure(3.4 * ncols, 2.9 * nrows + 0.8)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    values = curve_stats[["val_loss_mean", "train_loss_mean"]].to_numpy(float).ravel()
    diverged: set[bool] = set()
    for ax, (title, part) in zip(grid.flat, panels):
        for bn in (False, True):
            side = part[part["bn"] == bn]
            if side.empty:
                continue
            by_epoch = side.groupby("epoch", sort=True).agg(
                val=("val_loss_mean", "mean"),
                ci=("val_loss_ci", "mean"),
                train=("train_loss_mean", "mean"),
                div=("n_diverged", "sum"),
            )
            ep = by_epoch.index.to_numpy(float)
            ax.plot(ep, by_epoch["val"], color=_COLORS[bn], linewidth=1.4)
            ax.plot(ep, by_epoch["train"], color=_COLORS[bn], linewidth=1, linestyle="--")
            ci = by_epoch["ci"].to_numpy(float)
            val = by_epoch["val"].to_numpy(float)
            ok = np.isfinite(ci)
            ax.fill_between(
                ep[ok],
                np.maximum(val - ci, val / 100)[ok],
                (val + ci)[ok],
                color=_COLORS[bn],
                alpha=0.2,
                linewidth=0,
            )
            high = int((val > CAP).sum())
            if high:
                ax.text(0.02, 0.9 - 0.1 * bn, f"▲ {_NAMES[bn]}: {high} epoch(s) above {CAP:g} nats",
                        transform=ax.transAxes, fontsize=6, color=_COLORS[bn])  # fmt: skip
            hit = by_epoch["div"] > 0
            if hit.any():
                diverged.add(bn)
                ax.scatter(
                    ep[hit.to_numpy()],
                    [_DIV_Y[bn]] * int(hit.sum()),
                    marker="X",
                    s=45,
                    color=_COLORS[bn],
                    edgecolor="black",
                    linewidth=0.5,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                )
        ax.set_title(title, fontsize=9)
        _plain_log_y(ax)
        ax.grid(True, alpha=0.3)
    for i, ax in enumerate(grid.flat):
        if i >= len(panels):
            ax.set_visible(False)
        elif i + ncols >= len(panels):  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch")
    _log_ylim(grid.flat[0], values, headroom=4.0)
    for ax in grid[:, 0]:
        ax.set_ylabel("cross-entropy (nats)")
    handles = [Line2D([], [], color=_COLORS[b], label=f"{_NAMES[b]} validation") for b in (False, True)]
    handles += [Line2D([], [], color="grey", linestyle="--", label="training (dashed)")]
    handles += [
        Line2D(
            [],
            [],
            color=_COLORS[b],
            marker="X",
            linestyle="",
            markeredgecolor="black",
            label=f"{_NAMES[b]} run diverged",
        )
        for b in sorted(diverged)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    fig.suptitle("Learning curves per learning rate, BN vs no BN (mean over seeds still finite, CI band)")
    return fig


def plot_heatmaps(heat: pd.DataFrame, axis: str) -> Figure:
    """Mean validation loss and divergence rate over learning rate × ``axis``, per BN setting.

    Args:
        heat: :func:`leafbn.report.analysis.heatmap_data`'s table for ``axis``.
        axis: the column of ``heat`` on the y axis (``depth``, ``width``, ``bn_momentum``, ...).

    Returns:
        A Figure: top row mean final validation loss (log colour scale; grey where every run
        diverged), bottom row divergence rate (0–1), one column per BN setting present. Cells
        are annotated with their values.
    """
    sides = sorted(heat["bn"].unique()) if len(heat) else [True]
    fig = _figure(4.8 * len(sides) + 1.2, 7.2)
    grid = fig.subplots(2, len(sides), squeeze=False)
    loss = heat["val_loss_mean"].to_numpy(float)
    loss = loss[np.isfinite(loss) & (loss > 0)]
    loss_norm = LogNorm(loss.min(), max(loss.max(), loss.min() * 1.01)) if loss.size else Normalize(0, 1)
    for col, bn in enumerate(sides):
        side = heat[heat["bn"] == bn]
        for row, (metric, norm, cmap, title) in enumerate(
            (
                ("val_loss_mean", loss_norm, "viridis", "mean final validation loss"),
                ("divergence_rate", Normalize(0, 1), "Reds", "divergence rate"),
            )
        ):
            ax = grid[row, col]
            table = side.pivot_table(index=axis, columns="lr", values=metric, aggfunc="mean", dropna=False)
            data = table.to_numpy(float)
            masked = np.ma.masked_invalid(data)
            cm = colormaps[cmap].with_extremes(bad="lightgrey")
            image = ax.imshow(masked, aspect="auto", origin="lower", cmap=cm, norm=norm)
            for (i, j), v in np.ndenumerate(data):
                text = (
                    "div" if not np.isfinite(v) else (f"{v:.2f}" if metric == "val_loss_mean" else f"{v:.0%}")
                )
                dark = np.isfinite(v) and (norm(v) < 0.5 if cmap == "viridis" else norm(v) > 0.6)
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
            ax.set_xticks(range(len(table.columns)), [f"{v:g}" for v in table.columns], rotation=45)
            ax.set_yticks(range(len(table.index)), [_fmt(v) for v in table.index])
            ax.set_xlabel("learning rate (log scale, one column per value)")
            ax.set_ylabel(_AXIS_LABEL.get(axis, axis))
            ax.set_title(f"{_NAMES[bool(bn)]}: {title}", fontsize=10)
            fig.colorbar(image, ax=ax, shrink=0.85)
    fig.suptitle(f"Learning rate × {axis}: loss and divergence (other axes pooled)")
    return fig
