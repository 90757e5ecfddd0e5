"""Draw the robust answer: every run against the learning rate, success rates, the bootstrap, the
expected best over a budget. Each function takes the tables :mod:`leafbn.report.robustness` computes and
returns a matplotlib Figure; nothing here computes a number of the answer.

Every validation-loss axis shows the range where the answer lives: up to :data:`CAP` nats (a
uniform guess over 99 classes is 4.6). A finite value above it is drawn as a ▲ at the top edge with
its count, never as the point that sets the scale; a diverged run is a red × at the top edge.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

__all__ = ["CAP", "off_scale", "plot_runs_vs_lr", "plot_success_rate", "plot_bootstrap", "plot_expected_best"]

#: The highest validation loss any plot's axis shows, in nats; larger finite values are off-scale markers.
CAP: float = 20.0
_COLORS = {False: "tab:orange", True: "tab:blue"}
_NAMES = {False: "no BN", True: "BN"}
_VERDICT_TEXT = {
    "bn_more_robust": "BN more robust",
    "bn_not_more_robust": "BN not more robust",
    "inconclusive": "inconclusive",
}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _label(key: dict[str, Any]) -> str:
    return " · ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in key.items())


def _contexts(df: pd.DataFrame, axes: list[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    vary = [a for a in axes if a in df.columns and df[a].nunique(dropna=False) > 1]
    if not vary:
        return [({}, df)]
    return [
        (dict(zip(vary, k if isinstance(k, tuple) else (k,))), g)
        for k, g in df.groupby(vary, dropna=False, sort=True)
    ]


def _context_axes(df: pd.DataFrame) -> list[str]:
    from leafbn.report.analysis import context_axes

    return context_axes(df)


def off_scale(ax: Axes, x: np.ndarray, y: np.ndarray, color: str, cap: float = CAP) -> int:
    """Draw the finite ``y`` above ``cap`` as ▲ at the top edge of ``ax`` with their count; return it."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    hit = np.isfinite(y) & (y > cap)
    if not hit.any():
        return 0
    trans = ax.get_xaxis_transform()
    ax.scatter(x[hit], [0.9] * int(hit.sum()), marker="^", s=40, color=color, transform=trans, clip_on=False)
    for xv in np.unique(x[hit]):
        k = int((x[hit] == xv).sum())
        top = float(np.nanmax(y[hit][x[hit] == xv]))
        ax.annotate(f"{k} off scale (≤{top:.0e})", (xv, 0.9), xycoords=trans, xytext=(0, -10),
                    textcoords="offset points", fontsize=6, ha="center", color=color)  # fmt: skip
    return int(hit.sum())


def _log_loss_axis(ax: Axes, values: np.ndarray, cap: float = CAP) -> None:
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0) & (v <= cap)]
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))
    ax.yaxis.set_minor_formatter(
        FuncFormatter(
            lambda t, _: f"{t:g}" if t > 0 and round(t / 10 ** math.floor(math.log10(t))) in (2, 5) else ""
        )
    )
    ax.set_ylim(*(v.min() / 1.5, v.max() * 3) if v.size else (0.1, 10))


def plot_runs_vs_lr(trials: pd.DataFrame, cap: float = CAP) -> Figure:
    """The tuning playbook's axis plot: every run's outcome against its learning rate.

    Args:
        trials: trials with ``outcome`` (:func:`leafbn.report.robustness.add_outcomes`).

    Returns:
        A Figure, one panel per context: a point per run (BN and no BN side by side), a red × at
        the top edge per diverged run with its count, ▲ for finite outcomes above ``cap``.
    """
    contexts = _contexts(trials, _context_axes(trials))
    fig = _figure(8, 3.8 * len(contexts) + 0.6)
    axes = fig.subplots(len(contexts), 1, squeeze=False)[:, 0]
    for ax, (key, rows) in zip(axes, contexts):
        trans = ax.get_xaxis_transform()
        for bn in (False, True):
            side = rows[rows["bn"] == bn]
            shift = 1.12 if bn else 1 / 1.12
            x = side["lr"].to_numpy(float) * shift
            y = side["outcome"].to_numpy(float)
            shown = np.isfinite(y) & (y <= cap)
            ax.scatter(x[shown], y[shown], s=14, alpha=0.6, color=_COLORS[bn], label=_NAMES[bn])
            off_scale(ax, x, y, _COLORS[bn], cap)
            div = side["diverged"].to_numpy(bool)
            for xv in np.unique(x[div]):
                k = int((x[div] == xv).sum())
                ax.scatter([xv], [0.97], marker="x", s=50, color="red", transform=trans, clip_on=False)
                ax.annotate(f"{k}", (xv, 0.97), xycoords=trans, xytext=(5, -3), textcoords="offset points",
                            fontsize=7, color="red")  # fmt: skip
        ax.set_xscale("log")
        lrs = rows["lr"].to_numpy(float)
        ax.set_xlim(lrs.min() / 2.5, lrs.max() * 2.5)  # every learning rate, diverged-only ones too
        _log_loss_axis(ax, rows["outcome"].to_numpy(float), cap)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("run outcome: median val loss, last epochs (nats)")
        ax.set_title("Every run" + (f" — {_label(key)}" if key else ""), fontsize=10)
        ax.grid(True, alpha=0.3)
    handles = [
        Line2D([], [], color=_COLORS[b], marker="o", linestyle="", label=_NAMES[b]) for b in (False, True)
    ]
    handles += [
        Line2D([], [], color="red", marker="x", linestyle="", label="diverged (count)"),
        Line2D([], [], color="grey", marker="^", linestyle="", label=f"above {cap:g} nats (count)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    return fig


def plot_success_rate(stab: pd.DataFrame, threshold: float) -> Figure:
    """Success rate against learning rate per BN arm, with Wilson bands and the stability threshold.

    Args:
        stab: :func:`leafbn.report.robustness.stability`'s table (of the no-BN-paired trials).
        threshold: the success rate at which a learning rate is stable (a dashed line).
    """
    axes_names = [a for a in stab.columns if a in _context_axes(stab)]
    contexts = _contexts(stab, axes_names)
    fig = _figure(8, 3.4 * len(contexts) + 0.6)
    axes = fig.subplots(len(contexts), 1, squeeze=False)[:, 0]
    for ax, (key, rows) in zip(axes, contexts):
        for bn in (False, True):
            side = rows[rows["bn"] == bn].sort_values("lr")
            if side.empty:
                continue
            ax.plot(side["lr"], side["success_rate"], marker="o", color=_COLORS[bn], label=_NAMES[bn])
            ax.fill_between(side["lr"], side["success_ci_low"], side["success_ci_high"], color=_COLORS[bn],
                            alpha=0.18, linewidth=0)  # fmt: skip
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("success rate (Wilson 95%)")
        ax.set_title("Runs that succeed" + (f" — {_label(key)}" if key else ""), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_bootstrap(draws: pd.DataFrame, answers: list[dict[str, Any]]) -> Figure:
    """The bootstrap distribution of BN's stable range minus no-BN's, in decades, per family,
    with the point estimate, its 95% interval and the verdict."""
    n = max(len(answers), 1)
    fig = _figure(7, 2.8 * n + 0.4)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, ans in zip(axes, answers):
        part = draws
        for k, v in ans["family"].items():
            if k in part.columns:
                part = part[part[k] == v]
        d = part["difference"].to_numpy(float)
        d = d[np.isfinite(d)]
        if d.size:
            edges = np.arange(np.floor(d.min()) - 0.75, np.ceil(d.max()) + 1.0, 0.5)
            ax.hist(d, bins=edges, color="tab:blue", alpha=0.7, rwidth=0.9)
        diff = ans["difference_decades"]
        if diff["estimate"] is not None:
            ax.axvline(diff["estimate"], color="black", linewidth=1.5, label="estimate")
        for bound in (diff["ci_low"], diff["ci_high"]):
            if bound is not None:
                ax.axvline(bound, color="black", linestyle=":", linewidth=1)
        ax.axvline(0, color="grey", linewidth=1)
        verdict = _VERDICT_TEXT[ans["verdict"]]
        label = _label({k: v for k, v in ans["family"].items() if len(answers) > 1})
        ax.set_title(f"{verdict}: P(BN wider) = {ans['p_bn_wider']:.3f}" + (f" — {label}" if label else ""),
                     fontsize=10)  # fmt: skip
        ax.set_xlabel("BN − no-BN stable range (decades), per bootstrap resample")
        ax.set_ylabel("resamples")
    return fig


def plot_expected_best(eb: pd.DataFrame) -> Figure:
    """Dodge et al.'s expected best validation loss against the number of runs drawn, per BN arm
    (band: ± one standard deviation of that best)."""
    fig = _figure(7, 4)
    ax = fig.subplots()
    for bn, arm in eb.groupby("bn", sort=True):
        n, m, sd = arm["n"].to_numpy(float), arm["expected"].to_numpy(float), arm["sd"].to_numpy(float)
        ax.plot(n, m, color=_COLORS[bool(bn)], label=_NAMES[bool(bn)])
        ax.fill_between(n, np.maximum(m - sd, 1e-3), m + sd, color=_COLORS[bool(bn)], alpha=0.18, linewidth=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))
    ax.set_xlabel("runs drawn at random from the arm's grid (budget)")
    ax.set_ylabel("expected best run outcome (nats)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if not math.isfinite(float(eb["expected"].max())) if len(eb) else True:
        ax.set_ylim(0.1, 10)
    return fig
