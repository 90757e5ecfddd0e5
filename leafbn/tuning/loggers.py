"""Ray Tune's standard loggers on request (``--log``): TensorBoard, CSV, MLflow.

A study always writes Ray Tune's ``result.json`` (what :mod:`leafbn.results.tables` reads); these add
what a user's own tools read. Each needs an optional package, named in one line when missing.
"""

from __future__ import annotations

import importlib.util

from ray import tune
from ray.tune.logger import CSVLoggerCallback, TBXLoggerCallback

from leafbn.config import StudyConfig
from leafbn.tuning.session import StudyError
from leafbn.tuning.storage import study_dir

__all__ = ["check_loggers", "logger_callbacks"]


#: What each of Ray Tune's standard loggers needs beyond leafbn's own dependencies, and its extra.
_LOGGER_NEEDS = {"tensorboard": ("tensorboardX", "tensorboard"), "mlflow": ("mlflow", "mlflow")}


def check_loggers(config: StudyConfig) -> None:
    """Raise :class:`StudyError` (one line, naming the extra) if a ``--log`` logger's package is missing."""
    for name in config.log:
        module, extra = _LOGGER_NEEDS.get(name, (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise StudyError(f"--log {name}: needs {module}, not installed: pip install 'leafbn[{extra}]'")


def logger_callbacks(config: StudyConfig) -> list[tune.Callback]:
    """Ray Tune's own logger callbacks for ``config.log``, besides the ``result.json`` leafbn reads.

    tensorboard: ``TBXLoggerCallback`` (event files in each trial's folder, the trial's config as
    hyperparameters: ``tensorboard --logdir OUT/NAME``); csv: ``CSVLoggerCallback``
    (``progress.csv`` per trial); mlflow: ``MLflowLoggerCallback``, one MLflow run per trial in
    the experiment NAME of the tracking store ``sqlite:///OUT/NAME/mlflow.db``.
    """
    check_loggers(config)
    callbacks: list[tune.Callback] = []
    if "tensorboard" in config.log:
        callbacks.append(TBXLoggerCallback())
    if "csv" in config.log:
        callbacks.append(CSVLoggerCallback())
    if "mlflow" in config.log:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(
            MLflowLoggerCallback(
                tracking_uri=f"sqlite:///{study_dir(config) / 'mlflow.db'}",
                experiment_name=config.name,
                save_artifact=False,
            )
        )
    return callbacks
