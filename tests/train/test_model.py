"""leafbn.train.model: the blog's network and optimizer in Keras 3, and weights re-drawn in place."""

import keras
import numpy as np
import pytest

from leafbn.train.model import ModelSpec, build_model, build_optimizer, reset_weights


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
