"""The typical run's learning curves: each run's curve joined to its configuration
(:func:`curve_runs`), the median and interquartile band per configuration and epoch
(:func:`curve_bands`), and one panel per learning rate and context (:func:`plot_learning_curves`).
The counts of runs that diverged or leave the axis go into each panel's title, never on the data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from leafbn.config import TRIAL_FIELDS
from leafbn.report.contexts import contexts as _contexts
from leafbn.report.figure_style import (
    CAP,
    COLORS,
    FONT,
    LOSS_UNIT,
    NAMES,
    figure,
    note_handle,
    plain_log_formatter,
    styled,
    suptitle,
    wrap,
)

__all__ = ["FEW_RUNS", "curve_runs", "curve_bands", "plot_learning_curves"]

#: With at most this many runs per arm, a learning-curve panel draws each run instead of quantiles.
FEW_RUNS: int = 5


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
    parts = [f"{diverged}/{n_runs} diverged"] * bool(diverged)
    parts += [f"{above}/{n_runs} spike above the axis"] * bool(above)
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
