"""One look for every figure of a report: arm colours and names, font sizes, axes, count strips, and a
checker that no text of a drawn figure overlaps another, covers a marker or leaves the figure.

Every drawing function of :mod:`leafbn.report.plots`, :mod:`leafbn.report.robustness_plots` (and the answer's
figure) builds its Figure with :func:`figure` inside :func:`styled`, colours an arm by
:data:`COLORS` and names it by :data:`NAMES`. Counts and notes never sit inside the data's axes:
they go into a *strip* of their own above it (:func:`strip_panels`, :func:`fill_strip`), one row per
arm and kind, one column per learning rate, so they cannot collide with each other or with a marker.
:func:`text_problems` measures that on a drawn figure (renderer extents, as saved).
"""

from __future__ import annotations

import functools
import itertools
import math
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from leafbn.config import AXES

__all__ = [
    "CAP",
    "COLORS",
    "NAMES",
    "FONT",
    "AXIS_LABEL",
    "LR_LABEL",
    "LOSS_UNIT",
    "figure",
    "styled",
    "suptitle",
    "wrap",
    "lr_axis",
    "log_loss_axis",
    "plain_log_formatter",
    "strip_panels",
    "fill_strip",
    "grid_shape",
    "note_handle",
    "text_problems",
]

#: The highest validation loss any axis shows, in nats (a uniform guess over 99 classes is 4.6);
#: a larger finite value is counted in a strip, never drawn as the point that sets the scale.
CAP: float = 20.0
#: One colour per arm in every figure: Okabe & Ito's colour-blind-safe vermillion and blue.
COLORS: dict[bool, str] = {False: "#D55E00", True: "#0072B2"}
#: The arms' names as every figure prints them.
NAMES: dict[bool, str] = {False: "no BN", True: "BN"}
#: Font sizes in points: one scheme for every figure.
FONT: dict[str, float] = {"suptitle": 12, "title": 10, "label": 9, "tick": 8, "legend": 8, "note": 8}
#: Axis labels with their units.
LR_LABEL = "learning rate (SGD step size, log scale)"
LOSS_UNIT = "nats"
#: Each context axis's label, from its one definition (:data:`leafbn.config.axes.AXES`).
AXIS_LABEL: dict[str, str] = {a.name: a.label for a in AXES if a.role == "context"}
_RC = {
    "font.size": FONT["label"],
    "axes.titlesize": FONT["title"],
    "axes.labelsize": FONT["label"],
    "xtick.labelsize": FONT["tick"],
    "ytick.labelsize": FONT["tick"],
    "legend.fontsize": FONT["legend"],
    "figure.titlesize": FONT["suptitle"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
}
#: Height of one strip row, inches.
STRIP_ROW: float = 0.2


def figure(width: float, height: float) -> Figure:
    """A Figure of ``width`` × ``height`` inches on an Agg canvas, laid out by constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a drawing function under the report's font scheme; its tick labels keep the scheme when
    the figure is drawn later (they are created lazily, outside the context)."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with rc_context(_RC):
            fig = draw(*args, **kwargs)
        for ax in fig.axes:
            ax.tick_params(labelsize=FONT["tick"], which="both")
        return fig

    return wrapper


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines no wider than ``width_in`` inches at ``fontsize`` (an average glyph
    is taken as 0.6 em wide), each existing line wrapped on its own."""
    per_line = max(12, int(width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, per_line) for line in text.split("\n"))


def suptitle(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to the figure's width."""
    fig.suptitle(wrap(text, fig.get_figwidth() - 0.2, FONT["suptitle"]))


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """Rows and columns of a wrapped grid of ``n`` panels (1 column up to 2 panels)."""
    ncols = 1 if n <= 2 else min(max_cols, n)
    return math.ceil(max(n, 1) / ncols), ncols


# --- Axes ------------------------------------------------------------------------------------------------
def plain_log_formatter(v: float, _: Any = None) -> str:
    """A log tick as a plain number (0.001, 0.5, 20, 1000); powers of ten beyond 1e4 as 1e+05."""
    if not (v > 0 and math.isfinite(v)):
        return ""
    return f"{v:g}"


def lr_axis(ax: Axes, lrs: Any, label: bool = True) -> None:
    """Log learning-rate x axis over every value of ``lrs`` (a decade tick each, minor ticks unlabelled)."""
    v = np.asarray(lrs, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    ax.set_xscale("log")
    if v.size:
        ax.set_xlim(v.min() / 2.5, v.max() * 2.5)
        decades = np.arange(math.floor(math.log10(v.min())), math.ceil(math.log10(v.max())) + 1)
        step = max(1, math.ceil(decades.size / 9))  # at most ~9 labels: they never touch
        ax.xaxis.set_major_locator(FixedLocator(10.0 ** decades[::step]))
    ax.xaxis.set_major_formatter(FuncFormatter(plain_log_formatter))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if label:
        ax.set_xlabel(LR_LABEL)


def log_loss_axis(ax: Axes, values: Any, cap: float = CAP, headroom: float = 1.6) -> None:
    """Log y axis (plain-number ticks) fitted to the finite positive ``values`` up to ``cap``."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0) & (v <= cap)]
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(plain_log_formatter))
    low, high = (v.min() / headroom, v.max() * headroom) if v.size else (0.1, 10.0)
    high = max(high, low * 10)  # at least a decade: a log axis needs a labelled tick
    ax.set_ylim(low, high)
    if high / low < 100:  # under two decades: label 2 and 5 as well
        ax.yaxis.set_minor_formatter(
            FuncFormatter(lambda t, _: plain_log_formatter(t) if _leading(t) in (2, 5) else "")
        )
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def _leading(v: float) -> int:
    return round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0


def note_handle(text: str) -> Line2D:
    """A legend entry with no symbol: a note the legend lays out with the rest (never on the data)."""
    return Line2D([], [], linestyle="", marker="", label=text)


# --- Count strips ----------------------------------------------------------------------------------------
def strip_panels(
    fig: Figure, nrows: int, ncols: int, strip_rows: int, panel_height: float
) -> list[tuple[Axes | None, Axes]]:
    """A grid of data panels, each with a count strip of ``strip_rows`` rows above it (none when 0).

    Returns ``(strip, main)`` per panel in row-major order; the strip shares the panel's x axis.
    """
    ratios = []
    for _ in range(nrows):
        ratios += [max(strip_rows, 1) * STRIP_ROW, panel_height] if strip_rows else [panel_height]
    per = 2 if strip_rows else 1
    gs = fig.add_gridspec(per * nrows, ncols, height_ratios=ratios)
    out = []
    for r, c in itertools.product(range(nrows), range(ncols)):
        main = fig.add_subplot(gs[per * r + per - 1, c])
        strip = fig.add_subplot(gs[per * r, c], sharex=main) if strip_rows else None
        out.append((strip, main))
    return out


def fill_strip(
    strip: Axes | None,
    rows: Sequence[tuple[str, str, Sequence[float], Sequence[str]]],
    fontsize: float = FONT["note"],
    width_in: float | None = None,
    lrs: Sequence[float] | None = None,
) -> None:
    """Write counts into ``strip``: one row per ``(name, colour, xs, texts)``, a text centred at each x
    (``width_in``: the strip's width in inches, by default as its axes is placed now; ``lrs``: the
    learning rates its axis spans, by default each row's own).

    The rows are the strip's own y positions, so texts of two rows never meet; along a row the texts
    sit at distinct learning rates, which :func:`strip_fit` keeps apart.
    """
    if strip is None:
        return
    strip.set_ylim(len(rows) - 0.5, -0.5)
    strip.yaxis.set_major_locator(FixedLocator(range(len(rows))))
    strip.yaxis.set_major_formatter(FuncFormatter(lambda v, _: rows[int(v)][0] if 0 <= v < len(rows) else ""))
    strip.yaxis.set_minor_locator(NullLocator())
    for lab_row, tick in zip(rows, strip.get_yticklabels()):
        tick.set_color(lab_row[1])
    strip.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    strip.tick_params(axis="y", length=0, labelsize=FONT["tick"])
    for side in ("top", "right", "bottom", "left"):
        strip.spines[side].set_visible(False)
    strip.grid(False)
    strip.set_facecolor("#f4f4f4")
    width_in = width_in or strip.get_position().width * strip.figure.get_figwidth()
    for i, (_, color, xs, texts) in enumerate(rows):
        # texts too wide for their neighbours' spacing alternate above and below the row's middle,
        # so that neighbours are two learning rates apart
        shift = 0.0 if strip_fit(xs if lrs is None else lrs, width_in, texts, fontsize) else 0.22
        for j, (x, t) in enumerate(sorted(zip(xs, texts))):
            y = i + (shift if j % 2 else -shift)
            strip.text(x, y, t, ha="center", va="center", fontsize=fontsize, color=color, clip_on=False)


def strip_fit(lrs: Any, axes_width_in: float, texts: Sequence[str], fontsize: float = FONT["note"]) -> bool:
    """Whether the widest of ``texts`` fits between the two closest learning rates of ``lrs`` on a
    log axis ``axes_width_in`` inches wide (spanning the lrs ×/÷ 2.5, as :func:`lr_axis` sets it)."""
    v = np.unique(np.asarray(lrs, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 2 or not texts:
        return True
    logs = np.log10(v)
    span = logs[-1] - logs[0] + 2 * math.log10(2.5)
    gap_pt = np.diff(logs).min() / span * axes_width_in * 72
    return max(len(t) for t in texts) * 0.62 * fontsize < 0.9 * gap_pt


# --- The checker -----------------------------------------------------------------------------------------
def _drawn_texts(fig: Figure) -> list[Text]:
    """Every Text a draw of ``fig`` renders with something in it (tick labels of drawn ticks only)."""
    tick_labels, drawn = set(), []
    for ax in fig.axes:
        for axis in ax._axis_map.values():
            for tick in [*axis.majorTicks, *axis.minorTicks]:
                tick_labels.update((id(tick.label1), id(tick.label2)))
            if not (ax.get_visible() and ax.axison and axis.get_visible()):
                continue
            for tick in axis._update_ticks():
                drawn += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    others = [t for t in fig.findobj(Text) if id(t) not in tick_labels]
    texts = []
    for t in [*drawn, *others]:
        if not t.get_text().strip() or not _shown(t):
            continue
        texts.append(t)
    return list({id(t): t for t in texts}.values())


def _shown(text: Text) -> bool:
    """Whether ``text`` and the axes it belongs to (if any) are visible."""
    return text.get_visible() and (text.axes is None or text.axes.get_visible())


def _marker_points(fig: Figure) -> list[tuple[float, float, str]]:
    """Display positions of every drawn marker (line markers, scatter points) inside its axes."""
    points = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        box = ax.get_window_extent()
        artists = [a for a in ax.get_children() if isinstance(a, (Line2D, PathCollection))]
        for a in artists:
            if not a.get_visible():
                continue
            if isinstance(a, Line2D):
                if a.get_marker() in (None, "None", "none", "", " ") or not len(a.get_xydata()):
                    continue
                xy = a.get_transform().transform(a.get_xydata())
            else:
                offsets = a.get_offsets()
                if not len(offsets):
                    continue
                xy = a.get_offset_transform().transform(offsets)
            for x, y in np.asarray(xy, float):
                if np.isfinite(x) and np.isfinite(y) and (box.contains(x, y) or not a.get_clip_on()):
                    points.append((float(x), float(y), a.get_label()))
    return points


def text_problems(fig: Figure, dpi: float = 100, overlap: float = 0.15) -> list[str]:
    """What keeps a reader from reading ``fig`` as saved at ``dpi``, one sentence each (empty: nothing).

    Draws the figure, then reports every pair of texts whose renderer boxes overlap by more than
    ``overlap`` of the smaller box, every text that covers a drawn marker, every text not wholly
    inside the figure, and every text rotated by other than a multiple of 90° (its box would not be
    its extent).
    """
    fig.set_dpi(dpi)
    fig.draw_without_rendering()  # lays the figure out and places every text, as a save does
    renderer = fig.canvas.get_renderer()
    texts = _drawn_texts(fig)
    boxes = [t.get_window_extent(renderer) for t in texts]
    width, height = fig.bbox.width, fig.bbox.height
    problems = []
    for t, b in zip(texts, boxes):
        if b.x0 < -1 or b.y0 < -1 or b.x1 > width + 1 or b.y1 > height + 1:
            problems.append(
                f"{t.get_text()!r} leaves the figure ({b.x0:.0f}..{b.x1:.0f} × {b.y0:.0f}..{b.y1:.0f})"
            )
        if t.get_rotation() % 90:
            problems.append(f"{t.get_text()!r} is rotated by {t.get_rotation():g}°")
    for (t1, b1), (t2, b2) in itertools.combinations(zip(texts, boxes), 2):
        w = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
        h = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
        smaller = min(b1.width * b1.height, b2.width * b2.height)
        if w > 0 and h > 0 and smaller > 0 and w * h > overlap * smaller:
            problems.append(f"{t1.get_text()!r} overlaps {t2.get_text()!r} ({w * h / smaller:.0%})")
    for x, y, label in _marker_points(fig):
        for t, b in zip(texts, boxes):
            if b.x0 + 1 < x < b.x1 - 1 and b.y0 + 1 < y < b.y1 - 1:
                problems.append(f"{t.get_text()!r} covers a marker ({label}) at ({x:.0f}, {y:.0f})")
    return problems
