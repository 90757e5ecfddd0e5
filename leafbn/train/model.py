"""The seed's network in Keras 3, and its optimizer.

The blog's network: Dense(n_features) → depth × Dense(width) → Dense(n_classes, softmax), ReLU,
uniform initialisation (Keras 2's ``init='uniform'``: U(-0.05, 0.05), zero biases). With BN on, a
BatchNormalization layer follows each hidden Dense, before the ReLU (``bn_placement="before"``, the
blog's order) or after it (``"after"``).

:class:`StackedNetworks` holds several such networks side by side (one per seed) in one Keras
model, their matrices batched, so one compiled program trains them all.

The optimizer: SGD, Nesterov, momentum 0.9, and Keras 2's ``decay=1e-6``, whose meaning
lr_t = lr / (1 + decay · t) (t = optimizer steps taken) is Keras 3's ``InverseTimeDecay`` with
``decay_steps=1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

__all__ = ["ModelSpec", "StackedNetworks", "build_model", "build_optimizer", "reset_weights", "INIT_LIMIT"]

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


class StackedNetworks(keras.Model):
    """``networks`` copies of ``spec``'s network side by side: input ``[B, S, F]`` (row b of each
    network's own minibatch), output the softmax ``[B, S, n_classes]``.

    Each Dense is an ``EinsumDense("bsi,sio->bso")`` (kernel ``[S, in, out]``, bias ``[S, out]``):
    one batched product, no arithmetic mixing two networks. Keras 3's BatchNormalization takes one
    axis and pools all others, so it runs on ``[B, S*units]``: each (network, unit) column has its
    own batch statistics over B and its own gamma, beta and moving statistics. Its masked moments
    use ``where``, so a network's NaNs stay in its own columns. Layer names follow
    :func:`build_model`.
    """

    def __init__(self, spec: ModelSpec, networks: int):
        super().__init__(name="leafbn_stacked")
        self.spec, self.networks = spec, networks
        init = keras.initializers.RandomUniform(-INIT_LIMIT, INIT_LIMIT)  # replaced by set_network
        widths = [spec.n_features] + [spec.width] * spec.depth

        def dense(units: int, name: str, activation: str | None) -> keras.layers.EinsumDense:
            return keras.layers.EinsumDense(
                "bsi,sio->bso", output_shape=(networks, units), bias_axes="so", activation=activation,
                kernel_initializer=init, name=name,
            )  # fmt: skip

        self.dense = [dense(u, f"dense_{i}", None if spec.bn else "relu") for i, u in enumerate(widths)]
        self.norm = [
            keras.layers.BatchNormalization(momentum=spec.bn_momentum, name=f"bn_{i}")
            for i in range(len(widths) if spec.bn else 0)
        ]
        self.out = dense(spec.n_classes, "softmax", "softmax")
        shape: tuple = (None, networks, spec.n_features)
        for i, (layer, units) in enumerate(zip(self.dense, widths)):
            layer.build(shape)
            shape = (None, networks, units)
            if spec.bn:
                self.norm[i].build((None, networks * units))
        self.out.build(shape)
        self.built = True

    def _normalise(self, i: int, h: tf.Tensor, training: bool, mask: tf.Tensor | None) -> tf.Tensor:
        rows, units = tf.shape(h)[0], h.shape[-1]
        flat = self.norm[i](tf.reshape(h, [rows, self.networks * units]), training=training, mask=mask)
        return tf.reshape(flat, [rows, self.networks, units])

    def call(self, x: tf.Tensor, training: bool = False, mask: tf.Tensor | None = None) -> tf.Tensor:
        """``mask``: ``[B]`` booleans, False for padding rows (left out of BN's batch statistics)."""
        h = x
        for i, dense in enumerate(self.dense):
            h = dense(h)
            if self.spec.bn and self.spec.bn_placement == "before":
                h = tf.nn.relu(self._normalise(i, h, training, mask))
            elif self.spec.bn:
                h = self._normalise(i, tf.nn.relu(h), training, mask)
        return self.out(h)

    def _parts(self) -> list[tuple[keras.Variable, int | None]]:
        """Each variable with the axis its networks lie on (0 for EinsumDense's, None: BN's columns)."""
        parts: list[tuple[keras.Variable, int | None]] = []
        for i, layer in enumerate(self.dense):
            parts += [(layer.kernel, 0), (layer.bias, 0)]
            if self.norm:
                bn = self.norm[i]
                parts += [(v, None) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]
        return parts + [(self.out.kernel, 0), (self.out.bias, 0)]

    def set_networks(self, weights: list[list[np.ndarray]]) -> None:
        """Network s's weights from ``weights[s]``, a :func:`build_model` network's ``get_weights()``."""
        for k, (variable, axis) in enumerate(self._parts()):
            values = [w[k] for w in weights]
            variable.assign(np.stack(values) if axis == 0 else np.concatenate(values))

    def network_weights(self, s: int) -> list[np.ndarray]:
        """Network s's weights in :func:`build_model`'s ``get_weights()`` order and shapes."""
        out = []
        for variable, axis in self._parts():
            value = np.asarray(variable.numpy())
            if axis == 0:
                out.append(value[s])
            else:
                width = value.shape[0] // self.networks
                out.append(value[s * width : (s + 1) * width])
        return out


def build_optimizer(
    lr: float | tf.Variable, momentum: float = 0.9, decay: float = 1e-6
) -> keras.optimizers.SGD:
    """The blog's optimizer in Keras 3: Nesterov SGD with legacy inverse-time decay per step.

    ``lr`` may be a ``tf.Variable``: the schedule reads it at every step, so a compiled training
    program can be reused for another learning rate by assigning the variable.
    """
    schedule = keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, nesterov=True, name="sgd")
