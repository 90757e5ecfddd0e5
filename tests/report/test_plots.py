"""The descriptive figures: every axis shows the range where the answer lives."""

from __future__ import annotations

from leafbn.report import analysis, plots, robustness
from leafbn.report.robustness_plots import CAP
from tests.fixtures.synthetic import make_curves, make_trials


def exploded():
    trials = make_trials(epochs=12)
    curves = make_curves(trials)
    tid = trials[(trials["bn"]) & (trials["lr"] == 1000.0)]["trial_id"]
    curves.loc[curves["trial_id"].isin(tid), "val_loss"] = 1e14  # finite, exploded
    return robustness.add_outcomes(trials, curves), curves


def test_loss_vs_lr_caps_the_axis_and_counts_off_scale_means():
    trials, _ = exploded()
    fig = plots.plot_loss_vs_lr(analysis.aggregate(trials))
    val_ax = fig.axes[0]
    assert val_ax.get_ylim()[1] <= CAP * 6
    assert any("off scale" in t.get_text() for t in val_ax.texts)


def test_learning_curves_share_a_capped_axis():
    trials, curves = exploded()
    fig = plots.plot_learning_curves(analysis.curve_summary(trials, curves))
    assert fig.axes[0].get_ylim()[1] <= CAP * 4
    assert any("above" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_bn_effect_and_heatmaps_draw():
    trials = make_trials(depths=(2, 3))
    assert plots.plot_bn_effect(analysis.bn_effect(trials)).axes
    heat = analysis.heatmap_data(trials, "depth")
    assert len(plots.plot_heatmaps(heat, "depth").axes) >= 2
