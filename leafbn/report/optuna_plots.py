"""Draw an Optuna study's results: its optimisation history and hyperparameter importances.

Optuna draws them (``optuna.visualization.matplotlib``); here they get our titles and font sizes
(:mod:`leafbn.report.figure_style`) and stay out of matplotlib's global style.
:mod:`leafbn.report.optuna_results` finds the study beside the tables.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from leafbn.report.figure_style import FONT

__all__ = ["plot_optimization_history", "plot_param_importances"]


def plot_optimization_history(study: Any) -> Figure:
    """Optuna's optimisation history (``optuna.visualization.matplotlib.plot_optimization_history``)."""
    import optuna

    with warnings.catch_warnings(), rc_context():  # Optuna sets a global style: keep it to this figure
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    return _retitle(ax, f"Optuna optimisation history ({study.study_name})")


def plot_param_importances(study: Any) -> Figure:
    """Optuna's hyperparameter importances (``optuna.visualization.matplotlib.plot_param_importances``)."""
    import optuna

    with warnings.catch_warnings(), rc_context():  # Optuna sets a global style: keep it to this figure
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_param_importances(study)
    return _retitle(ax, f"Optuna hyperparameter importances ({study.study_name})")


def _retitle(ax: Any, title: str) -> Figure:
    """Replace Optuna's titles (it sets them at any of the three places) with ours; the Figure."""
    ax = ax if isinstance(ax, Axes) else np.ravel(ax)[0]
    for loc in ("left", "center", "right"):
        ax.set_title("", loc=loc)
    ax.set_title(title, fontsize=FONT["title"])
    for each in ax.figure.axes:  # our font scheme over Optuna's style
        each.tick_params(labelsize=FONT["tick"])
        each.xaxis.label.set_fontsize(FONT["label"])
        each.yaxis.label.set_fontsize(FONT["label"])
    return ax.figure
