"""The descriptive figures: every axis shows the range where the answer lives, counts sit where the reader
sees them, and no text of any report figure overlaps another, covers a marker or leaves the figure."""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from leafbn.report import analysis, answer_plot, plots, robustness, space_tables, write_report
from leafbn.report.figure_style import CAP, COLORS, figure, text_problems
from tests.fixtures.synthetic import LRS, make_curves, make_trials


def exploded():
    trials = make_trials(epochs=12)
    curves = make_curves(trials)
    tid = trials[(trials["bn"]) & (trials["lr"] == 1000.0)]["trial_id"]
    curves.loc[curves["trial_id"].isin(tid), "val_loss"] = 1e14  # finite, exploded
    return robustness.add_outcomes(trials, curves), curves


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_loss_vs_lr_caps_the_axis_and_names_off_scale_means_in_the_strip():
    trials, _ = exploded()
    fig = plots.plot_loss_vs_lr(analysis.aggregate(trials))
    val_ax = next(ax for ax in fig.axes if ax.get_ylabel().startswith("final validation"))
    assert val_ax.get_ylim()[1] <= CAP * 2
    assert "1e+14" in texts(fig)  # the exploded mean, named in the strip above the axes
    assert any(t.endswith("mean > 20") for t in texts(fig))


def test_loss_vs_lr_leaves_out_an_interval_that_reaches_zero_and_says_so():
    stats = analysis.aggregate(make_trials())
    stats.loc[0, "val_loss_ci"] = stats.loc[0, "val_loss_mean"] * 2  # mean - ci < 0: no log-axis bar
    fig = plots.plot_loss_vs_lr(stats)
    assert any("reach 0 nats: left out" in t for t in texts(fig))
    val_ax = next(ax for ax in fig.axes if ax.get_ylabel().startswith("final validation"))
    lows = [seg[:, 1].min() for c in val_ax.collections for seg in getattr(c, "get_segments", list)()]
    assert lows and min(lows) > 0  # every drawn bar is of positive values: none clipped to a floor


def test_loss_vs_lr_axis_holds_every_drawn_interval_whole():
    stats = analysis.aggregate(make_trials())
    low = stats["val_loss_mean"].min()
    stats.loc[0, ["val_loss_mean", "val_loss_ci"]] = [low * 2, low * 2 * 0.95]  # ends 20x below the means
    fig = plots.plot_loss_vs_lr(stats)
    val_ax = next(ax for ax in fig.axes if ax.get_ylabel().startswith("final validation"))
    ends = [seg[:, 1] for c in val_ax.collections for seg in getattr(c, "get_segments", list)()]
    bottom, top = val_ax.get_ylim()
    assert ends and all(bottom <= e.min() and e.max() <= max(top, CAP) for e in ends)


def test_learning_curves_draw_the_typical_run_and_count_what_leaves_the_axis():
    trials, curves = exploded()
    runs = plots.curve_runs(trials, curves)
    bands = plots.curve_bands(runs)
    row = bands[(bands["lr"] == 0.1) & bands["bn"] & (bands["epoch"] == 1)].iloc[0]
    finite = runs[(runs["lr"] == 0.1) & runs["bn"] & (runs["epoch"] == 1)]["val_loss"]
    assert row["val_median"] == pytest.approx(finite.median()) and row["n"] == 5
    fig = plots.plot_learning_curves(bands, runs)
    assert fig.axes[0].get_ylim()[1] <= CAP
    titles = [ax.get_title() for ax in fig.axes]
    assert any("BN: 5/5 spike above the axis" in t for t in titles)  # the exploded runs, in their panel
    assert any("no BN: 5/5 diverged" in t for t in titles)


def test_learning_curves_draw_quartile_bands_with_many_runs():
    trials, curves = exploded()
    runs = plots.curve_runs(trials, curves)
    fig = plots.plot_learning_curves(plots.curve_bands(runs), runs, few=2)
    assert any(len(ax.collections) for ax in fig.axes)  # interquartile bands instead of single runs


def test_bn_effect_is_a_forest_with_every_interval_visible_and_untested_lrs_named():
    effect = analysis.bn_effect(make_trials(depths=(2, 3)))
    effect.loc[effect["lr"] == 0.01, ["ci_low", "ci_high"]] = [-40.0, 40.0]  # one wide, others narrow
    fig = plots.plot_bn_effect(effect)
    ax = fig.axes[0]
    for line in ax.get_lines():
        y = np.asarray(line.get_ydata(), float)
        assert np.ptp(y) == 0 or line.get_xdata()[0] == line.get_xdata()[-1]  # no line between lrs
    tested = effect[effect["status"] == "ok"]
    px = ax.transData.transform(np.c_[tested["ci_low"], np.zeros(len(tested))])[:, 0]
    px_high = ax.transData.transform(np.c_[tested["ci_high"], np.zeros(len(tested))])[:, 0]
    assert (px_high - px >= 3).all()  # every interval at least 3 pixels wide
    assert "lr 1, 10, 100, 1000: no-BN diverged in all seeds" in texts(fig)  # named, in a row of their own


def test_symlog_forest_names_its_scale_and_ticks_between_the_decades():
    effect = analysis.bn_effect(make_trials(depths=(2, 3)))
    ok = effect["status"] == "ok"
    effect.loc[ok, ["diff", "ci_low", "ci_high"]] = [-0.05, -0.09, -0.01]  # narrow, near 0
    effect.loc[effect.index[ok][0], ["diff", "ci_low", "ci_high"]] = [-3.95, -9.3, 1.39]  # wide
    fig = plots.plot_bn_effect(effect)
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and "symmetric log" in ax.get_xlabel()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert any(-9.3 < t < -1 for t in ticks)  # -3.95 can be read off the axis, not mistaken for -1.3
    assert sum(t < 0 for t in ticks) <= 4


def test_forest_stays_linear_where_symlog_would_hide_as_many_intervals():
    effect = analysis.bn_effect(make_trials(depths=(2, 3)))
    ok = effect["status"] == "ok"
    effect.loc[ok, ["diff", "ci_low", "ci_high"]] = [-3.62, -3.665, -3.576]  # narrow, far from 0
    effect.loc[effect.index[ok][0], ["diff", "ci_low", "ci_high"]] = [-3.95, -9.3, 1.39]  # wide
    fig = plots.plot_bn_effect(effect)
    assert fig.axes[0].get_xscale() == "linear"  # symlog would shrink the narrow ones further


def test_forest_zooms_an_interval_narrower_than_its_point_so_every_interval_shows():
    effect = analysis.bn_effect(make_trials())
    rows = {0.001: [-4.0, -9.0, 1.0, False], 0.01: [-4.375, -4.41, -4.34, True], 0.1: [0.1, -2.0, 2.2, False]}
    for lr, values in rows.items():
        effect.loc[effect["lr"] == lr, ["diff", "ci_low", "ci_high", "significant"]] = values
    fig = plots.plot_bn_effect(effect)
    assert text_problems(fig) == []  # lays the figure out at 100 dpi, as saved
    ax, side = fig.axes[:2]
    point_px = plots.FOREST_POINT_PT * fig.dpi / 72

    def drawn(axes, y):  # (interval's width, its zorder, the point's zorder, its face) drawn at row y
        bar = next(ln for ln in axes.get_lines() if ln.get_linewidth() == 1.6 and ln.get_ydata()[0] == y)
        point = next(ln for ln in axes.get_lines() if ln.get_marker() == "o" and ln.get_ydata()[0] == y)
        px = axes.transData.transform(np.c_[bar.get_xdata(), [y, y]])[:, 0]
        return px[1] - px[0], bar.get_zorder(), point.get_zorder(), point.get_markerfacecolor()

    width, _, _, _ = drawn(ax, 1)
    assert width < point_px  # at the common scale the narrow interval hides behind its point ...
    width, bar_z, point_z, face = drawn(side, 1)
    assert width > 3 * point_px and bar_z > point_z  # ... so its zoom shows it, drawn above its point
    assert face == "black"  # still filled: significant
    for y in (0, 2):  # the wide ones show on the common axis and get no zoom
        assert drawn(ax, y)[0] > point_px and not [ln for ln in side.get_lines() if ln.get_ydata()[0] == y]
    assert len(side.patches) == 1 and "zoom" in side.get_title(loc="right")


def test_heatmap_colours_stop_at_chance_so_a_blown_up_cell_cannot_set_the_scale():
    trials = make_trials(depths=(2, 3))
    trials = trials.assign(outcome=trials["final_val_loss"])
    trials.loc[trials.index[trials["bn"] & (trials["lr"] == 1000.0)], "outcome"] = 2.7e13
    fig = plots.plot_heatmaps(space_tables.heatmap_data(trials, "depth"), "depth", chance=math.log(99))
    image = fig.axes[0].images[0]
    assert image.norm.vmax == pytest.approx(math.log(99))


def test_checker_finds_overlap_a_covered_marker_and_text_outside():
    fig = figure(4, 3)
    ax = fig.subplots()
    ax.plot([0.5], [0.5], marker="o")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.text(0.5, 0.5, "on the marker", ha="center", va="center")
    ax.text(0.1, 0.9, "first")
    ax.text(0.1, 0.9, "first again")
    fig.text(0.98, 0.5, "runs off the edge")
    problems = " | ".join(text_problems(fig))
    assert "covers a marker" in problems
    assert "'first' overlaps 'first again'" in problems
    assert "'runs off the edge' leaves the figure" in problems
    assert not text_problems(figure(4, 3))


def synthetic_study(folder: Path, depths=(3,), widths=(100,), lrs=LRS) -> Path:
    """A study with divergence in both arms and exploded but finite BN runs, per depth × width."""
    folder.mkdir(parents=True)
    parts = []
    for width in widths:
        part = make_trials(lrs=lrs, depths=depths, epochs=4, diverge={(True, 100.0, 0), (False, 0.1, 1)})
        parts.append(part.assign(width=width, trial_id=part["trial_id"] + f"-w{width}"))
    trials = pd.concat(parts, ignore_index=True)
    curves = make_curves(trials)
    blown = trials[trials["bn"] & (trials["lr"] >= 100.0) & (trials["seed"] <= 1)]["trial_id"]
    curves.loc[curves["trial_id"].isin(blown), "val_loss"] = 2.7e13
    trials.to_csv(folder / "trials.csv", index=False)
    curves.to_csv(folder / "curves.csv", index=False)
    return folder


@pytest.mark.parametrize(
    "shape", [dict(), dict(depths=(2, 3), widths=(50, 100), lrs=LRS[1:-1])], ids=["one", "2x2"]
)
def test_every_report_figure_is_legible_as_saved(tmp_path, monkeypatch, shape):
    checked: dict[str, list[str]] = {}
    save = Figure.savefig

    def measured(fig, fname, *args, **kwargs):
        if str(fname).endswith(".png"):
            checked[Path(fname).name] = text_problems(fig, dpi=kwargs.get("dpi", 100))
        return save(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", measured)
    folder = synthetic_study(tmp_path / "study", **shape)
    with pytest.warns(UserWarning):  # no config.json: the report says so
        write_report(folder, resamples=100, figure_formats="png" if shape else "png,svg")
    expected = {"answer.png", "specification.png", "runs_vs_lr.png", "loss_vs_lr.png", "bn_effect.png",
                "learning_curves.png", "bootstrap.png"}  # fmt: skip
    if shape:
        expected |= {"heatmap_depth.png", "heatmap_width.png"}
    assert expected <= set(checked)
    assert {name: p for name, p in checked.items() if p} == {}
    md = (folder / "report" / "report.md").read_text()
    if shape:  # several architectures: the answer per architecture follows the answer, before the words
        assert (
            md.index("![answer](answer.png)") < md.index("![bootstrap](bootstrap.png)") < md.index("How this")
        )
        return
    assert md.index("![answer](answer.png)") < md.index("How this") < md.index("![bootstrap](bootstrap.png)")
    svg = folder / "report" / "runs_vs_lr.svg"
    assert ET.parse(svg).getroot().tag.endswith("svg")  # the vector file is written and parses
    assert COLORS[True].lower() in svg.read_text().lower()  # in the arms' colours


def test_cli_refuses_an_unknown_figure_format_in_one_line(tmp_path):
    (tmp_path / "trials.csv").write_text(make_trials(lrs=[0.1]).to_csv(index=False))
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, str(root / "study" / "report.py"), str(tmp_path), "--figure-format", "png,gif"]
    bad = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert bad.stderr == "error: --figure-format png,gif: gif is not one of png, svg, pdf\n"
    assert not (tmp_path / "report").exists()


def test_the_answer_figure_finds_a_context_whose_axis_value_is_missing():
    # a study whose table left an axis empty (NaN) still gets its answer drawn: NaN matches NaN
    trials = make_trials().assign(init=float("nan"))
    stab = robustness.stability(robustness.add_outcomes(trials, make_curves(trials)))
    answers, _ = robustness.bootstrap_answer(trials, resamples=50)
    main = robustness.main_answer(answers)
    assert "init" in main["family"]
    data = answer_plot.answer_data(stab, main)
    assert len(data) == len(stab) and not text_problems(answer_plot.plot_answer(data))


def test_strip_counts_of_four_digits_on_a_fine_grid_stay_apart():
    # 20 learning rates and thousands of runs: neighbours' counts alternate above and below
    lrs = [float(v) for v in np.logspace(-3, 3, 20)]
    stats = analysis.aggregate(analysis.pair_nobn(analysis.prepare(make_trials(lrs=lrs))))
    stats["n_diverged"], stats["n_runs"] = 1990 + np.arange(len(stats)) % 10, 2000
    fig = plots.plot_loss_vs_lr(stats)
    assert not text_problems(fig)
    assert {t.get_text() for ax in fig.axes for t in ax.texts} >= {"1990", "1999"}
