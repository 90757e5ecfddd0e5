"""leafbn.train.model: the blog's network and optimizer in Keras 3, and weights re-drawn in place."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from leafbn.config.study_config import INITS
from leafbn.train.model import (
    BNMomentum,
    ModelSpec,
    RuntimeSGD,
    build_model,
    build_optimizer,
    initial_weights,
    reset_weights,
)


def test_model_matches_the_seed_architecture():
    model = build_model(ModelSpec(bn=True), seed=0)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [192, 100, 100, 100, 99]
    kinds = [type(layer).__name__ for layer in model.layers[:3]]
    assert kinds == ["Dense", "BatchNormalization", "ReLU"]  # BN before the ReLU
    after = build_model(ModelSpec(bn=True, bn_placement="after"), seed=0)
    assert [type(layer).__name__ for layer in after.layers[:3]] == ["Dense", "ReLU", "BatchNormalization"]
    weights = dense[1].kernel.numpy()
    assert np.abs(weights).max() <= 0.05 and weights.std() > 0.02  # U(-0.05, 0.05)
    assert not np.array_equal(weights, build_model(ModelSpec(bn=True), seed=1).layers[3].kernel.numpy())


def test_optimizer_is_nesterov_sgd_with_legacy_decay():
    optimizer = build_optimizer(0.1, momentum=0.9, decay=1e-6)
    assert optimizer.nesterov and optimizer.momentum == 0.9
    schedule = optimizer._learning_rate  # Keras keeps the schedule object there
    assert isinstance(schedule, keras.optimizers.schedules.InverseTimeDecay)
    for step in (0, 1000, 10**6):
        assert float(schedule(step)) == pytest.approx(0.1 / (1 + 1e-6 * step))


def test_reset_weights_is_a_new_model_with_that_seed():
    spec = ModelSpec(bn=True)
    model = build_model(spec, seed=0)
    model(np.ones((4, spec.n_features), np.float32), training=True)  # moves BN's statistics
    reset_weights(model, seed=5)
    fresh = build_model(spec, seed=5)
    for ours, theirs in zip(model.variables, fresh.variables, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)


def test_initial_weights_in_a_traced_function_are_reset_weights_to_the_bit_for_every_init():
    for init in INITS:  # the blog's uniform and the fan-scaled ones of the init axis
        spec = ModelSpec(bn=True, depth=1, width=8, init=init)
        model = build_model(spec, seed=0)
        draw = tf.function(lambda seed, model=model: initial_weights(model, seed), autograph=False)
        for seed in (5, 3_000_000):  # the second folds into int32 as Keras' seeds do
            expected = build_model(spec, seed).get_weights()
            got = draw(tf.constant(seed, tf.int64))
            assert len(got) == len(expected)
            for ours, theirs in zip(got, expected):
                np.testing.assert_array_equal(ours.numpy(), theirs)


def test_bn_momentum_variable_updates_as_the_float_does():
    # Keras computes 1.0 - momentum in double precision for a float momentum; the variable's
    # complement holds that value, so the moving statistics come out the same to the bit.
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    plain = keras.layers.BatchNormalization(momentum=0.99)
    runtime = keras.layers.BatchNormalization(momentum=0.5)  # replaced by the variable
    plain.build((None, 4))
    runtime.build((None, 4))
    momentum = BNMomentum()
    object.__setattr__(runtime, "momentum", momentum)
    momentum.set(0.99, 1.0 - 0.99)
    assert float(1.0 - momentum) != float(np.float32(1.0) - np.float32(0.99))  # the case that matters
    for layer in (plain, runtime):
        layer(x, training=True)
    np.testing.assert_array_equal(runtime.moving_mean.numpy(), plain.moving_mean.numpy())
    np.testing.assert_array_equal(runtime.moving_variance.numpy(), plain.moving_variance.numpy())
    assert len(runtime.weights) == 4  # the momentum is no weight of the layer


def test_runtime_sgd_steps_each_network_with_its_own_learning_rate():
    # Two stacked "networks" (a [2, 3] variable): each slice steps as Keras' SGD with its own lr.
    grad = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, -3.0]], np.float32)
    lr, mu, decay = tf.Variable([0.1, 0.01]), tf.Variable(0.9), tf.Variable(1e-3)
    weights = keras.Variable(np.ones((2, 3), np.float32))
    ours = RuntimeSGD(lr, mu, decay, networks=2)
    ours.build([weights])
    for _ in range(2):
        ours.apply_gradients([(tf.constant(grad), weights)])
    for s, rate in enumerate((0.1, 0.01)):
        alone = keras.Variable(np.ones(3, np.float32))
        keras_sgd = build_optimizer(rate, momentum=0.9, decay=1e-3)
        keras_sgd.build([alone])
        for _ in range(2):
            keras_sgd.apply_gradients([(tf.constant(grad[s]), alone)])
        np.testing.assert_array_equal(weights.numpy()[s], alone.numpy())


def test_the_init_axis_draws_kernels_by_fan_in_or_the_blogs_uniform():
    from leafbn.train.model import INIT_LIMIT

    uniform = build_model(ModelSpec(), seed=1).get_layer("dense_0").kernel.numpy()
    he = build_model(ModelSpec(init="he_normal"), seed=1).get_layer("dense_0").kernel.numpy()
    again = build_model(ModelSpec(init="he_normal"), seed=1).get_layer("dense_0").kernel.numpy()
    assert np.abs(uniform).max() <= INIT_LIMIT < np.abs(he).max()
    assert np.array_equal(he, again)  # seeded like the default
    assert abs(he.std() - np.sqrt(2 / 192)) < 0.02  # He: sd sqrt(2 / fan_in), truncated normal
