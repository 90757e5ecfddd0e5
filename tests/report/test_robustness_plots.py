"""The robust answer's figures: they draw what they are given, keep exploded values off the scale and
count diverged and off-scale runs in the strip above the axes."""

from __future__ import annotations

import pandas as pd
from matplotlib.collections import PolyCollection

from leafbn.report import robustness, robustness_plots
from leafbn.report.figure_style import text_problems
from tests.fixtures.synthetic import make_curves, make_trials


def outcomes() -> pd.DataFrame:
    trials = make_trials(epochs=12)
    out = robustness.add_outcomes(trials, make_curves(trials))
    spot = out.index[(out["bn"]) & (out["lr"] == 1000.0) & (out["seed"] == 0)]
    out.loc[spot, "outcome"] = 1e14  # one exploded but finite run
    return out


def strip_texts(fig) -> dict[str, list[str]]:
    """Per strip row (its label), the counts written in it."""
    (strip,) = [ax for ax in fig.axes if ax.get_yticklabels() and ax.texts]
    rows = [t.get_text() for t in strip.get_yticklabels()]
    out: dict[str, list[str]] = {r: [] for r in rows}
    for t in strip.texts:
        out[rows[round(t.get_position()[1])]].append(t.get_text())
    return out


def test_runs_vs_lr_keeps_an_exploded_run_off_the_scale_and_counts_it():
    fig = robustness_plots.plot_runs_vs_lr(outcomes())
    ax = next(a for a in fig.axes if a.get_ylabel().startswith("run outcome"))
    low, high = ax.get_ylim()
    assert high <= robustness_plots.CAP * 2 and low > 0
    rows = strip_texts(fig)
    assert rows["BN > 20 nats"] == ["1/5"]
    assert rows["no BN diverged"] == ["5/5"] * 4  # lr 1, 10, 100, 1000: every no-BN run diverged
    assert ax.get_xlim()[1] >= 1000.0  # learning rates with only diverged runs are on the axis
    assert not text_problems(fig)


def test_success_rate_bootstrap_and_expected_best_draw_every_family():
    trials = make_trials(depths=(2, 3))
    trials = robustness.add_outcomes(trials, make_curves(trials))
    stab = robustness.stability(trials)
    assert len([a for a in robustness_plots.plot_success_rate(stab, 0.8).axes if a.get_visible()]) == 2
    answers, draws = robustness.bootstrap_answer(trials, resamples=100)
    fig = robustness_plots.plot_bootstrap(draws, answers)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 2 and all("BN more robust" in t for t in labels)
    assert not text_problems(fig)


def test_expected_best_band_only_from_positive_quantiles():
    trials = make_trials()
    eb = robustness.expected_best(robustness.add_outcomes(trials, make_curves(trials)))
    assert {"low", "high"} <= set(eb.columns)  # the order-statistic quantiles of the best of n
    fig = robustness_plots.plot_expected_best(eb.drop(columns=["low", "high"]))
    assert len(fig.axes[0].lines) == 2
    assert not [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]  # no low/high: no band
    assert any("no band" in t.get_text() for t in fig.legends[0].get_texts())
    fig = robustness_plots.plot_expected_best(eb)
    bands = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2 and all(b.get_paths()[0].vertices[:, 1].min() > 0 for b in bands)
