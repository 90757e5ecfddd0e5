"""The seed's network in Keras 3, and its optimizer.

The blog's network: Dense(n_features) → depth × Dense(width) → Dense(n_classes, softmax), ReLU,
uniform initialisation (Keras 2's ``init='uniform'``: U(-0.05, 0.05), zero biases). With BN on, a
BatchNormalization layer follows each hidden Dense, before the ReLU (``bn_placement="before"``, the
blog's order) or after it (``"after"``).

The optimizer: SGD, Nesterov, momentum 0.9, and Keras 2's ``decay=1e-6``, whose meaning
lr_t = lr / (1 + decay · t) (t = optimizer steps taken) is Keras 3's ``InverseTimeDecay`` with
``decay_steps=1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

__all__ = ["ModelSpec", "build_model", "build_optimizer", "reset_weights", "INIT_LIMIT"]

#: Keras 2's ``init='uniform'`` draws from U(-INIT_LIMIT, INIT_LIMIT).
INIT_LIMIT = 0.05


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of one trial's network (everything but the weights' seed)."""

    n_features: int = 192
    n_classes: int = 99
    depth: int = 3  # hidden Dense(width) layers after the first Dense(n_features)
    width: int = 100
    bn: bool = False
    bn_momentum: float = 0.99
    bn_placement: str = "before"  # BatchNormalization "before" or "after" the ReLU


def build_model(spec: ModelSpec, seed: int) -> keras.Model:
    """Build the network for ``spec`` with weights drawn from ``seed``.

    Returns an un-compiled ``keras.Sequential`` whose input is ``(batch, spec.n_features)`` float32
    and whose output is the softmax over ``spec.n_classes``. The same ``spec`` and ``seed`` give the
    same initial weights.
    """
    widths = [spec.n_features] + [spec.width] * spec.depth
    init = keras.initializers.RandomUniform(-INIT_LIMIT, INIT_LIMIT)
    # Fixed names (not Keras' per-process counters: dense_7, ...) keep a compiled program's
    # XLA cache key the same in every process, whatever it built before.
    layers: list[keras.layers.Layer] = [keras.Input((spec.n_features,), name="features")]
    for i, units in enumerate(widths):
        if not spec.bn:
            layers.append(
                keras.layers.Dense(units, activation="relu", kernel_initializer=init, name=f"dense_{i}")
            )
            continue
        bn = keras.layers.BatchNormalization(momentum=spec.bn_momentum, name=f"bn_{i}")
        relu = keras.layers.ReLU(name=f"relu_{i}")
        pair = [bn, relu] if spec.bn_placement == "before" else [relu, bn]
        layers += [keras.layers.Dense(units, kernel_initializer=init, name=f"dense_{i}"), *pair]
    layers.append(
        keras.layers.Dense(spec.n_classes, activation="softmax", kernel_initializer=init, name="softmax")
    )
    model = keras.Sequential(layers, name="leafbn")
    reset_weights(model, seed)
    return model


def reset_weights(model: keras.Model, seed: int) -> None:
    """Re-draw every weight of ``model`` in place, as a new model built with ``seed`` would have it.

    Each layer's own initializers are used (Dense kernels with the seed ``seed * 1000 + i`` for the
    i-th Dense layer, so layers differ); moving statistics return to their initial values. This lets
    a trainer reuse one model, and the programs compiled for it, across trials.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for i, layer in enumerate(dense):
        config = layer.kernel_initializer.get_config() | {"seed": seed * 1000 + i}
        initializer = type(layer.kernel_initializer).from_config(config)
        layer.kernel.assign(initializer(layer.kernel.shape))
        layer.bias.assign(layer.bias_initializer(layer.bias.shape))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for name in ("gamma", "beta", "moving_mean", "moving_variance"):
                variable = getattr(layer, name)
                variable.assign(getattr(layer, f"{name}_initializer")(variable.shape))


def build_optimizer(
    lr: float | tf.Variable, momentum: float = 0.9, decay: float = 1e-6
) -> keras.optimizers.SGD:
    """The blog's optimizer in Keras 3: Nesterov SGD with legacy inverse-time decay per step.

    ``lr`` may be a ``tf.Variable``: the schedule reads it at every step, so a compiled training
    program can be reused for another learning rate by assigning the variable.
    """
    schedule = keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, nesterov=True, name="sgd")
