"""The report's lead figures: the answer on one learning-rate axis, and the specification curve.

Each figure is split into "compute the numbers" (:func:`answer_data`, :func:`specification_data`,
returning DataFrames) and "draw them" (:func:`plot_answer`, :func:`plot_specification`, returning a
:class:`matplotlib.figure.Figure`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from leafbn.report.contexts import context_text, in_context
from leafbn.report.figure_style import COLORS, FONT, NAMES, figure, lr_axis, note_handle, styled, wrap

__all__ = ["answer_data", "context_label", "plot_answer", "specification_data", "plot_specification"]

#: A verdict's colour: the arm it favours in that arm's colour, the others neutral.
_VERDICT_COLORS = {
    "bn_more_robust": COLORS[True], "bn_less_robust": COLORS[False],
    "no_difference": "#009E73", "inconclusive": "#999999",
}  # fmt: skip


def verdict_text(verdict: object) -> str:
    """A verdict as a figure prints it: ``bn_more_robust`` → "BN more robust"."""
    return str(verdict).replace("_", " ").replace("bn ", "BN ")


def answer_data(stab: pd.DataFrame, answer: dict[str, Any]) -> pd.DataFrame:
    """Per arm and learning rate of the answer's context: the share of runs that train (Wilson
    interval) and that diverged, with the arm's edges and their intervals repeated on every row.

    Args:
        stab: :func:`leafbn.report.robustness.stability`'s table.
        answer: one context's answer (:func:`leafbn.report.robustness.main_answer`).

    Returns:
        Columns ``bn``, ``lr``, ``success_rate``, ``success_ci_low``, ``success_ci_high``,
        ``diverged_share``, ``lower``, ``lower_low``, ``lower_high``, ``upper``, ``upper_low``,
        ``upper_high`` (learning rates; NaN where undefined), ``lower_at_grid``, ``upper_at_grid``
        (the edge is the grid's end: the range may reach further), ``verdict``, ``p_bn_wider``.
    """
    rows = in_context(stab, answer["family"])
    out = rows[["bn", "lr", "success_rate", "success_ci_low", "success_ci_high"]].copy()
    out["diverged_share"] = rows["n_diverged"] / rows["n_runs"].clip(lower=1)
    for edge in ("lower", "upper"):
        for bn, arm in ((False, "no_bn"), (True, "bn")):
            iv = answer[f"{edge}_edge_lr"][arm]
            mask = out["bn"] == bn
            for suffix, key in (("", "estimate"), ("_low", "ci_low"), ("_high", "ci_high")):
                out.loc[mask, edge + suffix] = np.nan if iv[key] is None else iv[key]
            out.loc[mask, f"{edge}_at_grid"] = bool(answer.get("edge_at_grid", {}).get(arm, {}).get(edge))
    out["verdict"] = answer["verdict"]
    out["p_bn_wider"] = answer["p_bn_wider"]
    return out.sort_values(["bn", "lr"]).reset_index(drop=True)


def context_label(answer: dict[str, Any], answers: list[dict[str, Any]]) -> str:
    """The axes on which ``answer``'s context differs from the other ``answers``' as a figure names it
    (``"depth=3 · width=100"``); empty with one context."""
    families = [a["family"] for a in answers]
    varying = [k for k in answer["family"] if len({str(f.get(k)) for f in families}) > 1]
    return context_text({k: answer["family"][k] for k in varying})


@styled
def plot_answer(data: pd.DataFrame, context: str = "") -> Figure:
    """Both arms on one log-lr axis: success share with its band, diverged share (×), and below, each
    arm's trainable range as a bar with whiskers at both edges' 95% intervals; verdict (and, with
    several contexts, the ``context`` it is of, :func:`context_label`) in the title."""
    fig = figure(8, 5)
    ax = fig.add_subplot()
    for i, (bn, arm) in enumerate(data.groupby("bn", sort=True)):
        _draw_arm(ax, arm, bool(bn), -0.1 - 0.09 * i)
    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
    lr_axis(ax, data["lr"])
    ax.set_ylim(-0.32, 1.05)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("share of runs")
    verdict = verdict_text(data["verdict"].iloc[0]) if len(data) else "no answer"
    p = data["p_bn_wider"].iloc[0] if len(data) else float("nan")
    title = (
        f"Verdict{f' ({context})' if context else ''}: {verdict}, P(BN's trainable range wider) = {p:.3f}\n"
        "bars: where at least half the runs train; whiskers: 95% intervals of both edges"
    )
    ax.set_title(wrap(title, 7.5, FONT["title"]))
    fig.legend(loc="outside lower center", ncols=2)
    return fig


def _draw_arm(ax: Any, arm: pd.DataFrame, bn: bool, y: float) -> None:
    """One arm's success share (band), diverged share (×) and, at height ``y``, its trainable range
    with both edges' intervals; the range is named in the legend, never as text on the axes."""
    color, name = COLORS[bn], NAMES[bn]
    ax.plot(arm["lr"], arm["success_rate"], marker="o", color=color, label=f"{name}: share that trains")
    ax.fill_between(arm["lr"], arm["success_ci_low"], arm["success_ci_high"], color=color, alpha=0.2, lw=0)
    ax.plot(arm["lr"], arm["diverged_share"], ls=":", marker="x", ms=7, color=color,
            label=f"{name}: share that diverged")  # fmt: skip
    first = arm.iloc[0]
    if not (np.isfinite(first["lower"]) and np.isfinite(first["upper"])):
        ax.plot([], [], color=color, lw=6, alpha=0.3, label=f"{name} trains at no learning rate of the grid")
        return
    ax.plot([first["lower"], first["upper"]], [y, y], color=color, lw=6, solid_capstyle="butt",
            label=range_label(first, name))  # fmt: skip
    for edge, marker in (("lower", "<"), ("upper", ">")):
        lo, hi = first[f"{edge}_low"], first[f"{edge}_high"]
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar(first[edge], y, xerr=[[first[edge] - lo], [hi - first[edge]]], color="black",
                        capsize=3, lw=1)  # fmt: skip
        if first.get(f"{edge}_at_grid", False):  # the grid ends here: the range may reach further
            ax.plot([first[edge]], [y], marker=marker, ms=9, color=color, ls="")


def range_label(row: pd.Series, name: str) -> str:
    """An arm's trainable range as its legend reads it: the edges (``≤``/``≥`` where an edge is the
    grid's end, drawn as an arrow head), and, when both edges' intervals have no width, that every
    resample gave the same edges (the whiskers then show nothing)."""
    lower = f"{'≤' if row.get('lower_at_grid', False) else ''}{row['lower']:.2g}"
    upper = f"{'≥' if row.get('upper_at_grid', False) else ''}{row['upper']:.2g}"
    exact = all(row[f"{e}_low"] == row[f"{e}_high"] for e in ("lower", "upper"))
    return f"{name} trains: {lower} to {upper}" + ("\n(same edges in every resample)" if exact else "")


def specification_data(spec: dict[str, Any]) -> pd.DataFrame:
    """The specification rows sorted by their estimate, with their rank (``x``)."""
    frame = pd.DataFrame(spec["rows"])
    if frame.empty:
        return frame
    frame = frame.sort_values(["estimate", "outcome", "tolerance", "measure"], kind="stable").reset_index(
        drop=True
    )
    frame["x"] = np.arange(len(frame))
    return frame


@styled
def plot_specification(data: pd.DataFrame) -> Figure:
    """Top: BN − no BN per specification with its 95% interval, coloured by verdict; bottom: the
    choices of each specification (outcome, tolerance, measure) as marks."""
    fig = figure(9, 5.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1.4])
    for verdict, part in data.groupby("verdict", sort=True):
        color = _VERDICT_COLORS.get(str(verdict), "black")
        top.errorbar(part["x"], part["estimate"], yerr=[part["estimate"] - part["ci_low"],
                     part["ci_high"] - part["estimate"]], fmt="o", color=color, ms=4, capsize=2,
                     label=verdict_text(verdict))  # fmt: skip
    top.axhline(0, color="grey", lw=0.8)
    top.set_ylabel("BN − no BN (decades)")
    top.set_title("The answer under every reasonable analysis: BN − no BN trainable width")
    handles, _ = top.get_legend_handles_labels()
    if (data["ci_low"] == data["ci_high"]).any():  # a point alone: its interval has no width
        handles.append(note_handle("no whisker:\nevery resample\nagrees"))
    fig.legend(handles=handles, loc="outside right upper", title="verdict")
    labels = []
    for axis in ("outcome", "tolerance", "measure"):
        for value in sorted(data[axis].unique(), key=str):
            labels.append((axis, value))
    for row, (axis, value) in enumerate(labels):
        hit = data[data[axis] == value]
        bottom.scatter(hit["x"], np.full(len(hit), row), marker="s", s=12, color="black")
    bottom.set_yticks(range(len(labels)), [f"{a}: {v}" for a, v in labels])
    bottom.invert_yaxis()
    bottom.set_xlabel("specification (sorted by estimate)")
    return fig
