"""leafbn.optuna_plots: Optuna's own figures, with our titles, leaving matplotlib's style as it was."""

import math

import matplotlib
import optuna
from matplotlib.figure import Figure

from leafbn.optuna_plots import plot_optimization_history, plot_param_importances


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="lr-search", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(
        lambda t: (
            (math.log10(t.suggest_float("lr", 1e-3, 1e3, log=True)) - 1) ** 2
            + 0.01 * t.suggest_int("depth", 1, 4)
        ),
        n_trials=8,
    )
    return study


def test_both_figures_carry_our_titles_and_leave_the_style_alone():
    style = dict(matplotlib.rcParams)
    study = _study()
    history = plot_optimization_history(study)
    importances = plot_param_importances(study)
    assert isinstance(history, Figure) and isinstance(importances, Figure)
    assert history.axes[0].get_title() == "Optuna optimisation history (lr-search)"
    assert importances.axes[0].get_title() == "Optuna hyperparameter importances (lr-search)"
    assert all(ax.get_title(loc="left") == "" for ax in history.axes)
    assert dict(matplotlib.rcParams) == style
