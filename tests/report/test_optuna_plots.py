"""leafbn.report.optuna_plots: Optuna's own figures, with our titles, leaving matplotlib's style as it was."""

import matplotlib
from matplotlib.figure import Figure

from leafbn.report.figure_style import text_problems
from leafbn.report.optuna_plots import plot_optimization_history, plot_param_importances
from tests.fixtures.synthetic import make_optuna_study


def test_both_figures_carry_our_titles_and_leave_the_style_alone():
    style = dict(matplotlib.rcParams)
    study = make_optuna_study()
    history = plot_optimization_history(study)
    importances = plot_param_importances(study)
    assert isinstance(history, Figure) and isinstance(importances, Figure)
    assert history.axes[0].get_title() == "Optuna optimisation history (lr-search)"
    assert importances.axes[0].get_title() == "Optuna hyperparameter importances (lr-search)"
    assert all(ax.get_title(loc="left") == "" for ax in history.axes)
    assert dict(matplotlib.rcParams) == style
    assert text_problems(history) == [] and text_problems(importances) == []
