"""The robust answer's figures: they draw what they are given and keep exploded values off the scale."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leafbn.report import robustness, robustness_plots
from tests.fixtures.synthetic import make_curves, make_trials


def outcomes() -> pd.DataFrame:
    trials = make_trials(epochs=12)
    out = robustness.add_outcomes(trials, make_curves(trials))
    spot = out.index[(out["bn"]) & (out["lr"] == 1000.0) & (out["seed"] == 0)]
    out.loc[spot, "outcome"] = 1e14  # one exploded but finite run
    return out


def test_runs_vs_lr_keeps_an_exploded_run_off_the_scale():
    fig = robustness_plots.plot_runs_vs_lr(outcomes())
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert high <= robustness_plots.CAP * 3 and low > 0
    texts = [t.get_text() for t in ax.texts]
    assert any("1 off scale" in t for t in texts)
    assert any(t == "5" for t in texts)  # the count of diverged runs at a learning rate
    assert ax.get_xlim()[1] >= 1000.0  # learning rates with only diverged runs are on the axis


def test_off_scale_counts_only_finite_values_above_the_cap():
    fig = robustness_plots._figure(3, 3)
    ax = fig.subplots()
    n = robustness_plots.off_scale(ax, np.array([1, 1, 2, 3]), np.array([25.0, 1e9, 5.0, np.inf]), "k")
    assert n == 2


def test_success_rate_bootstrap_and_expected_best_draw_every_family():
    trials = make_trials(depths=(2, 3))
    trials = robustness.add_outcomes(trials, make_curves(trials))
    stab = robustness.stability(trials)
    assert len(robustness_plots.plot_success_rate(stab, 0.8).axes) == 2
    answers, draws = robustness.bootstrap_answer(trials, resamples=100)
    fig = robustness_plots.plot_bootstrap(draws, answers)
    assert len(fig.axes) == 2 and "BN more robust" in fig.axes[0].get_title()
    eb = robustness.expected_best(trials)
    assert len(robustness_plots.plot_expected_best(eb).axes[0].lines) == 2
