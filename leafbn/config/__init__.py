"""The study's settings: one frozen :class:`StudyConfig` that every room reads, and the facts it
rests on (the axes, the named spaces, the learning rates of the seed experiment).

The bottom room: it imports no other part of leafbn, and every other room may import it.
"""

from leafbn.config.axes import AXES, Axis, axis_names
from leafbn.config.study_config import (
    CURVE_FORMATS,
    INITS,
    LOGGERS,
    SEED_LRS,
    SPACES,
    TRIAL_FIELDS,
    WHERE_IT_RUNS,
    ConfigError,
    StudyConfig,
    contradictions,
    flat_config,
    lr_grid,
    steps_per_epoch,
    trial_seeds,
)

__all__ = [
    "StudyConfig", "ConfigError", "CURVE_FORMATS", "INITS", "LOGGERS", "SEED_LRS", "SPACES", "TRIAL_FIELDS",
    "WHERE_IT_RUNS",
    "contradictions", "flat_config", "lr_grid", "steps_per_epoch", "trial_seeds",
    "AXES", "Axis", "axis_names",
]  # fmt: skip
