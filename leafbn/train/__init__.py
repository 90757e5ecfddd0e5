"""Training one configuration's networks: the seed's Keras network and optimizer
(:mod:`~leafbn.train.model`), the compiled trainer that runs a trial's epochs as one XLA program
(:mod:`~leafbn.train.trainer`), and XLA's settings and persistent cache (:mod:`~leafbn.train.xla_cache`).

What a Ray worker imports to train (with TensorFlow): it imports :mod:`leafbn.config` and nothing of
the tuning, results or report rooms, so no Optuna and none of our figures.
"""

from leafbn.train.model import ModelSpec
from leafbn.train.trainer import (
    EpochResult,
    TrialResult,
    compiled_model,
    epoch_order,
    single_thread,
    stacked_model,
    tracing_counts,
    train,
    train_networks,
)

__all__ = [
    "ModelSpec", "EpochResult", "TrialResult", "train", "train_networks", "single_thread", "epoch_order",
    "compiled_model", "stacked_model", "tracing_counts",
]  # fmt: skip
