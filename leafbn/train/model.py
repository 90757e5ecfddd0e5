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

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from leafbn.config.study_config import INITS

__all__ = [
    "ModelSpec", "StackedNetworks", "RuntimeSGD", "BNMomentum", "build_model", "build_optimizer",
    "reset_weights", "initial_weights", "INIT_LIMIT",
]  # fmt: skip

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
    init: str = "uniform"  # Dense kernels: the blog's U(-0.05, 0.05), "he_normal" or "glorot_uniform"


def kernel_initializer(name: str) -> keras.initializers.Initializer:
    """The Dense kernels' initializer named ``name`` (one of :data:`leafbn.config.study_config.INITS`)."""
    if name not in INITS:
        raise ValueError(f"init {name!r}: must be one of {', '.join(INITS)}")
    if name == "uniform":
        return keras.initializers.RandomUniform(-INIT_LIMIT, INIT_LIMIT)
    return keras.initializers.get(name)


def build_model(spec: ModelSpec, seed: int) -> keras.Model:
    """Build the network for ``spec`` with weights drawn from ``seed``.

    Returns an un-compiled ``keras.Sequential`` whose input is ``(batch, spec.n_features)`` float32
    and whose output is the softmax over ``spec.n_classes``. The same ``spec`` and ``seed`` give the
    same initial weights.
    """
    widths = [spec.n_features] + [spec.width] * spec.depth
    init = kernel_initializer(spec.init)
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


def initial_weights(model: keras.Model, seed: tf.Tensor) -> list[tf.Tensor]:
    """The weights :func:`reset_weights` gives ``model`` (a :func:`build_model` network) for ``seed``,
    as tensors in ``model.weights`` order, for use inside a ``tf.function`` (``seed``: an int
    scalar tensor, an input there, so one traced function serves every seed).

    The same draws as Keras' seeded ``RandomUniform`` (TensorFlow's stateless uniform under the seed
    pair ``(seed * 1000 + i, 0)``, folded into int32 as Keras does), so the values agree to the bit.
    """
    values: list[tf.Tensor] = []
    dense = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            pair = tf.stack([tf.cast(seed, tf.int64) * 1000 + dense, tf.constant(0, tf.int64)])
            pair = tf.cast(tf.math.floormod(pair, tf.int32.max - 1), tf.int32)  # Keras' _cast_seed
            values.append(_kernel_draw(layer.kernel_initializer, tuple(layer.kernel.shape), pair))
            values.append(layer.bias_initializer(layer.bias.shape))
            dense += 1
        elif isinstance(layer, keras.layers.BatchNormalization):
            for name in ("gamma", "beta", "moving_mean", "moving_variance"):
                values.append(getattr(layer, f"{name}_initializer")(getattr(layer, name).shape))
    return values


def _kernel_draw(init: keras.initializers.Initializer, shape: tuple[int, ...], pair: tf.Tensor) -> tf.Tensor:
    """What Keras' seeded ``init`` (RandomUniform, or a VarianceScaling such as he_normal and
    glorot_uniform) draws for a Dense kernel of ``shape`` under the stateless seed ``pair``: the same
    TensorFlow call with the same arguments, so the values agree to the bit."""
    if not isinstance(init, keras.initializers.VarianceScaling):
        config = init.get_config()  # RandomUniform: minval, maxval
        low, high = tf.cast(config["minval"], tf.float32), tf.cast(config["maxval"], tf.float32)
        return tf.random.stateless_uniform(shape, pair, low, high, tf.float32)
    fan_in, fan_out = shape
    fans = {"fan_in": fan_in, "fan_out": fan_out}.get(init.mode, (fan_in + fan_out) / 2.0)
    scale = init.scale / max(1.0, fans)
    if init.distribution == "truncated_normal":
        stddev = math.sqrt(scale) / 0.87962566103423978  # Keras' correction for the truncation
        return tf.random.stateless_truncated_normal(shape, pair, 0.0, stddev, tf.float32)
    if init.distribution == "untruncated_normal":
        return tf.random.stateless_normal(shape, pair, 0.0, math.sqrt(scale), tf.float32)
    limit = math.sqrt(3.0 * scale)
    return tf.random.stateless_uniform(shape, pair, tf.cast(-limit, tf.float32), tf.cast(limit, tf.float32))


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

    def set_stacked(self, values: list[tf.Tensor]) -> None:
        """Every network's weights at once: ``values[k]`` is ``[S, *shape]``, network s's k-th weight
        (in :func:`build_model`'s ``get_weights()`` order) at index s. Works inside a ``tf.function``."""
        for value, (variable, axis) in zip(values, self._parts(), strict=True):
            variable.assign(value if axis == 0 else tf.reshape(value, [-1]))

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


class RuntimeSGD(keras.optimizers.SGD):
    """:func:`build_optimizer`'s optimizer (Nesterov SGD, Keras 2's decay) whose learning rate,
    momentum and decay are ``tf.Variable`` s read at every step: a compiled program that uses it
    serves every value of them (assign the variables between calls).

    ``lr`` is a float32 scalar, or for :class:`StackedNetworks` of ``networks`` networks a vector
    ``[networks]``: network s's slice of every variable steps with ``lr[s]``. ``momentum`` and
    ``decay`` are float32 scalars. The arithmetic is Keras' SGD's, element by element.
    """

    def __init__(self, lr: tf.Variable, momentum: tf.Variable, decay: tf.Variable, networks: int = 1):
        schedule = keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)
        # Any momentum but 0 makes Keras build the momentum buffers; the variable is what steps use.
        super().__init__(learning_rate=schedule, momentum=0.5, nesterov=True, name="sgd")
        self.runtime_momentum, self.networks = momentum, networks

    def _lr_for(self, lr: tf.Tensor, variable: keras.Variable) -> tf.Tensor:
        """``lr`` laid out to multiply ``variable`` elementwise: networks on axis 0 of EinsumDense's
        kernels ``[S, in, out]`` and biases ``[S, out]``, in consecutive blocks of BN's ``[S*units]``."""
        if self.networks == 1:
            return lr
        rank = len(variable.shape)
        if rank == 1:
            return tf.repeat(lr, variable.shape[0] // self.networks)
        return tf.reshape(lr, [self.networks] + [1] * (rank - 1))

    def update_step(self, gradient: tf.Tensor, variable: keras.Variable, learning_rate: tf.Tensor) -> None:
        """Keras' Nesterov step: m = m·μ − g·lr; w += m·μ − g·lr (μ, lr read from the variables)."""
        learning_rate = tf.cast(self._lr_for(learning_rate, variable), variable.dtype)
        gradient = tf.cast(gradient, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        momentum = tf.cast(self.runtime_momentum, variable.dtype)
        self.assign(m, m * momentum - gradient * learning_rate)
        self.assign_add(variable, m * momentum - gradient * learning_rate)


class BNMomentum(keras.Variable):
    """BatchNormalization's momentum as a float32 variable (set it as each BN layer's ``momentum``):
    a compiled program that reads it serves every momentum.

    Keras updates the moving statistics as ``moving * momentum + batch * (1.0 - momentum)``; for a
    float momentum, ``1.0 - momentum`` is computed in double precision and then rounded. So that a
    variable gives the same numbers, ``1.0 - self`` is :attr:`complement`, a second variable that
    :meth:`set` fills with that rounded value (``1 - float32(m)`` in float32 differs in the last bits).
    """

    def __init__(self, name: str = "bn_momentum"):
        super().__init__(0.0, trainable=False, dtype="float32", name=name)
        self.complement = tf.Variable(0.0, trainable=False, dtype=tf.float32, name=f"{name}_complement")

    def __rsub__(self, other: float) -> tf.Tensor:
        return self.complement.read_value() if other == 1.0 else super().__rsub__(other)

    def set(self, momentum: float | tf.Tensor, complement: float | tf.Tensor) -> None:
        """Assign ``momentum`` and ``complement`` (``1.0 - momentum`` computed in float64)."""
        self.assign(momentum)
        self.complement.assign(complement)
