"""Heat maps over learning rate × one architecture axis, per BN setting: the typical outcome on a
colour scale that ends at a uniform guess (a blown-up run cannot take it over) and the divergence rate.
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
from matplotlib.ticker import FuncFormatter

from leafbn.report.contexts import value_text as _fmt
from leafbn.report.figure_style import (
    AXIS_LABEL,
    FONT,
    LOSS_UNIT,
    LR_LABEL,
    NAMES,
    figure,
    plain_log_formatter,
    styled,
    suptitle,
    wrap,
)

__all__ = ["plot_heatmaps"]


# --- Heat maps -------------------------------------------------------------------------------------------
@styled
def plot_heatmaps(heat: pd.DataFrame, axis: str, chance: float = math.log(99)) -> Figure:
    """Typical outcome and divergence rate over learning rate × ``axis``, per BN setting.

    Args:
        heat: :func:`leafbn.report.space_tables.heatmap_data`'s table for ``axis`` (its ``val_loss_median``
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
