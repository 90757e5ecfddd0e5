"""The compiled trainer: same numbers as Keras model.fit, divergence as a result, reproducible."""

import gc
import math
import os
import subprocess
import sys
import weakref
from dataclasses import replace

import numpy as np
import pytest

from leafbn.data import loaders as leafdata
from leafbn.data import splits as leafsplits
from leafbn.train import (
    compiled_model,
    epoch_order,
    programs,
    stacked_model,
    train,
    train_networks,
)
from leafbn.train.model import ModelSpec, build_model, build_optimizer
from leafbn.train.programs import program_key
from leafbn.train.xla_cache import cpu_key


@pytest.fixture(scope="module")
def split():
    return leafsplits.split(leafdata.load_embedded(), val_fraction=0.2, split_seed=0)


def spec_for(split, **kw):
    return ModelSpec(n_features=split.x_train.shape[1], n_classes=int(split.y_train.max()) + 1, **kw)


def fit_with_keras(spec, split, lr, seed, epochs, batch_size=10, rows=None):
    """Keras model.fit with the trainer's initial weights, batch order, optimizer and schedule.

    ``rows``: train on only the first ``rows`` of each epoch's order (what dropping the last batch
    leaves).
    """
    model = build_model(spec, seed)
    model.compile(optimizer=build_optimizer(lr), loss="sparse_categorical_crossentropy")
    order = epoch_order(seed, epochs, len(split.x_train))
    train_losses, val_losses = [], []
    for e in range(epochs):
        x, y = split.x_train[order[e][:rows]], split.y_train[order[e][:rows]]
        history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        train_losses.append(history.history["loss"][0])
        val_losses.append(model.evaluate(split.x_val, split.y_val, batch_size=len(split.x_val), verbose=0))
    return model, np.array(train_losses), np.array(val_losses)


# Two different compiled programs (Keras' train step and ours) round differently, and so do two
# CPUs (AVX2 vs AVX-512 reduce in a different order). With batches of 10 such differences grow once
# training leaves its first plateau at a learning rate where the dynamics are chaotic (BN at lr
# 0.01: equal to 1e-6 in epoch 1, 1-3% apart by epoch 2, depending on the CPU). So the proof is in
# two parts that hold on any CPU:
# - after one epoch (127 steps, the last a smaller batch), before rounding has grown, every weight
#   and moving statistic agrees to float precision, so later epochs run the same arithmetic from
#   the same state;
# - over several epochs at a learning rate where training is not chaotic, the losses agree within
#   1% (seen here: at most 0.25%, also with XLA limited to SSE4.2 and with oneDNN off).
@pytest.mark.parametrize("bn, lr", [(False, 0.1), (True, 0.01)], ids=["no-bn", "bn"])
def test_one_epoch_matches_keras_fit(split, bn, lr):
    spec = spec_for(split, bn=bn)
    assert len(split.x_train) % 10 != 0, "the data should exercise the last, smaller batch"
    args = (spec, split.x_train, split.y_train, split.x_val, split.y_val)
    one = train(*args, lr=lr, seed=3, epochs=1)
    model, fit_train, fit_val = fit_with_keras(spec, split, lr=lr, seed=3, epochs=1)
    assert one.epochs[0].train_loss == pytest.approx(fit_train[0], rel=1e-5)
    assert one.epochs[0].val_loss == pytest.approx(fit_val[0], rel=1e-5)
    trained = compiled_model(spec)
    for ours, theirs in zip(trained.variables, model.variables, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6, err_msg=ours.path)


@pytest.mark.parametrize("bn, lr, epochs", [(False, 0.1, 3), (True, 0.001, 5)], ids=["no-bn", "bn"])
def test_several_epochs_match_keras_fit(split, bn, lr, epochs):
    spec = spec_for(split, bn=bn)
    args = (spec, split.x_train, split.y_train, split.x_val, split.y_val)
    ours = train(*args, lr=lr, seed=3, epochs=epochs)
    _, fit_train, fit_val = fit_with_keras(spec, split, lr=lr, seed=3, epochs=epochs)
    ours_train = np.array([e.train_loss for e in ours.epochs])
    assert ours_train[-1] < ours_train[0] - 0.05  # it learns, so the comparison means something
    np.testing.assert_allclose(ours_train, fit_train, rtol=1e-2)
    np.testing.assert_allclose([e.val_loss for e in ours.epochs], fit_val, rtol=1e-2)


def test_drop_last_is_keras_fit_without_the_last_batch(split):
    spec = spec_for(split, bn=True)
    n = len(split.x_train)
    rows = n - n % 10
    one = train(spec, split.x_train, split.y_train, split.x_val, split.y_val, lr=0.01, seed=3, epochs=1,
                drop_last=True)  # fmt: skip
    model, fit_train, fit_val = fit_with_keras(spec, split, lr=0.01, seed=3, epochs=1, rows=rows)
    assert one.epochs[0].train_loss == pytest.approx(fit_train[0], rel=1e-5)
    assert one.epochs[0].val_loss == pytest.approx(fit_val[0], rel=1e-5)
    trained = compiled_model(spec, drop_last=True)
    for ours, theirs in zip(trained.variables, model.variables):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6, err_msg=ours.path)
    keep = train(spec, split.x_train, split.y_train, split.x_val, split.y_val, lr=0.01, seed=3, epochs=1)
    assert keep.epochs[0].val_loss != one.epochs[0].val_loss  # the last batch made a difference
    with pytest.raises(ValueError, match=f"batch_size {n + 1}: must be <= the {n} training rows"):
        train(spec, split.x_train, split.y_train, split.x_val, split.y_val, lr=0.01, seed=3, epochs=1,
              batch_size=n + 1, drop_last=True)  # fmt: skip


def test_same_seed_same_numbers_and_reuse_does_not_leak_state(split):
    spec = spec_for(split, bn=True)
    args = (spec, split.x_train, split.y_train, split.x_val, split.y_val)
    first = train(*args, lr=0.1, seed=7, epochs=2)
    other = train(*args, lr=0.01, seed=8, epochs=2)  # reuses the compiled program
    again = train(*args, lr=0.1, seed=7, epochs=2)
    assert [e.val_loss for e in first.epochs] == [e.val_loss for e in again.epochs]
    assert [e.val_loss for e in first.epochs] != [e.val_loss for e in other.epochs]


def _func_graphs() -> int:
    """How many TensorFlow function graphs this process holds, after a full collection."""
    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


def test_programs_are_a_bounded_least_recently_used_cache(split, monkeypatch):
    # A worker cycling through more shapes than the cache holds keeps a bounded number of programs,
    # and an evicted one is freed: nothing (gc.freeze included) keeps it alive.
    monkeypatch.setenv("LEAFBN_PROGRAM_CACHE", "2")
    data = (split.x_train, split.y_train, split.x_val, split.y_val)
    specs = [spec_for(split, bn=True, depth=1, width=w) for w in (11, 12, 13)]  # shapes no other test builds
    keys = [program_key(spec, 1, 10, False, len(split.x_train), len(split.x_val), 1) for spec in specs]
    first = train(specs[0], *data, lr=0.01, seed=0, epochs=1)
    assert gc.get_freeze_count() > 0  # the libraries, frozen by the process's first build
    frozen = gc.get_freeze_count()
    train(specs[1], *data, lr=0.01, seed=0, epochs=1)
    # later programs stay collectable: nothing new frozen (a frozen object freed meanwhile lowers the count)
    assert gc.get_freeze_count() <= frozen
    assert gc.isenabled()  # off only while a program was traced
    assert train(specs[0], *data, lr=0.01, seed=0, epochs=1).epochs == first.epochs  # now the most recent
    gone = weakref.ref(programs._PROGRAMS[keys[1]])
    train(specs[2], *data, lr=0.01, seed=0, epochs=1)
    assert list(programs._PROGRAMS) == [keys[0], keys[2]]  # the least recently used one left
    assert gone() is None  # and its program was freed
    # So are its graphs: TensorFlow's process-wide registry of custom gradients held them (about
    # 25 MB per shape in a worker) until the evicted program's entries left it with the program.
    graphs = _func_graphs()
    for width in (16, 17):  # nor these
        train(spec_for(split, bn=True, depth=1, width=width), *data, lr=0.01, seed=0, epochs=1)
    assert _func_graphs() == graphs  # two more shapes in, two out: the same graphs alive
    monkeypatch.setenv("LEAFBN_PROGRAM_CACHE", "0")
    with pytest.raises(ValueError, match="LEAFBN_PROGRAM_CACHE='0': must be an integer >= 1"):
        programs.program_cache_size()


def test_one_program_serves_every_lr_and_momentum_with_the_numbers_of_its_own(split):
    # Learning rate, SGD momentum, decay and BN momentum are inputs of the compiled program, not
    # constants: one trace serves them all, and each run's numbers are those of a program built
    # for it alone (to the bit: the same program, the same arithmetic).
    spec = spec_for(split, bn=True, depth=1, width=14)  # a shape no other test builds
    data = (split.x_train, split.y_train, split.x_val, split.y_val)
    runs = [(0.99, 0.01, 0.9, 1e-6), (0.9, 0.1, 0.5, 1e-3)]  # BN momentum, lr, momentum, decay
    key = program_key(spec, 2, 10, False, len(split.x_train), len(split.x_val), 2)
    shared = []
    for bn_momentum, lr, momentum, decay in runs:
        settings = dict(lr=[lr, lr / 10], seeds=[1, 2], epochs=2, momentum=momentum, decay=decay)
        shared.append((replace(spec, bn_momentum=bn_momentum), settings))
    together = [train_networks(s, *data, **settings) for s, settings in shared]
    assert programs._PROGRAMS[key].epochs.experimental_get_tracing_count() == 1
    for (s, settings), result in zip(reversed(shared), reversed(together)):
        programs._PROGRAMS.pop(key)  # a fresh program, built with this run's settings first
        assert [r.epochs for r in train_networks(s, *data, **settings)] == [r.epochs for r in result]
    assert together[0][0].epochs != together[1][0].epochs  # the settings made a difference


def test_divergence_is_recorded_not_raised(split):
    spec = spec_for(split, bn=False)
    seen = []
    result = train(
        spec, split.x_train, split.y_train, split.x_val, split.y_val,
        lr=1000.0, seed=0, epochs=20, on_epoch=seen.append,
    )  # fmt: skip
    assert result.diverged
    assert result.diverged_epoch == len(result.epochs) < 20
    assert not math.isfinite(result.epochs[-1].train_loss) or not math.isfinite(result.epochs[-1].val_loss)
    assert seen == result.epochs  # every epoch was reported, the diverged one too


def test_on_epoch_can_stop_early(split):
    spec = spec_for(split, bn=True)
    result = train(
        spec, split.x_train, split.y_train, split.x_val, split.y_val,
        lr=0.01, seed=0, epochs=50, on_epoch=lambda e: e.epoch >= 2,
    )  # fmt: skip
    assert len(result.epochs) == 2 and not result.diverged


def test_the_same_numbers_whatever_the_chunk_of_epochs_per_call(split):
    spec = spec_for(split, bn=True)
    args = (spec, split.x_train, split.y_train, split.x_val, split.y_val)
    whole = train(*args, lr=0.01, seed=4, epochs=6)  # every epoch in one call
    seen = []
    pieces = train(*args, lr=0.01, seed=4, epochs=6, chunk=4, on_epoch=seen.append)  # 4, then 2
    assert pieces.epochs == whole.epochs == seen  # to the bit
    early = train(*args, lr=0.01, seed=4, epochs=6, chunk=4, on_epoch=lambda e: e.epoch >= 2)
    assert early.epochs == whole.epochs[:2]  # the chunk's later epochs are left out
    with pytest.raises(ValueError, match="chunk 0: must be >= 1"):
        train(*args, lr=0.01, seed=4, epochs=6, chunk=0)


TRAIN_IN_ORDER = """
import sys
from leafbn import data as leafdata
from leafbn import splits as leafsplits
from leafbn.train.model import ModelSpec
from leafbn.train.trainer import tracing_counts, train
split = leafsplits.split(leafdata.load_embedded(), val_fraction=0.2, split_seed=0)
n_classes = int(split.y_train.max()) + 1
for bn in sys.argv[1:]:  # the architectures, in this order
    spec = ModelSpec(n_classes=n_classes, bn=bn == "bn", depth=1, width=16)  # small: quick to compile
    train(spec, split.x_train, split.y_train, split.x_val, split.y_val, lr=0.01, seed=0, epochs=1)
print("traces", tracing_counts())
"""


def test_xla_cache_hits_whatever_the_order_programs_were_built_in(tmp_path):
    # Two Ray workers build the same programs in different orders; the second must find both
    # in XLA's persistent cache, not compile them again under other names.
    cache = tmp_path / "xla"
    env = {k: v for k, v in os.environ.items() if k != "TF_XLA_FLAGS"} | {"LEAFBN_XLA_CACHE": str(cache)}

    def run(*order):
        done = subprocess.run([sys.executable, "-c", TRAIN_IN_ORDER, *order], capture_output=True, text=True,
                              env=env, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "traces [1, 1]" in done.stdout  # traced once each: training reused the named trace
        assert [path.name for path in cache.iterdir()] == [cpu_key()]  # one folder, this CPU's
        return sorted(path.name for path in (cache / cpu_key()).iterdir())

    first = run("bn", "nobn")
    assert len(first) == 2  # one compiled program per architecture
    assert run("nobn", "bn") == first


# Networks trained side by side (one seed each, one program) must be the networks trained alone:
# the same proof as for Keras' fit, in the same two parts. BN at lr 0.01 is chaotic within the
# first epoch for some seeds (one rounding step in one weight moves them by 0.5 after an epoch),
# so BN is compared at lr 0.001.
@pytest.mark.parametrize("bn, lr", [(False, 0.1), (True, 0.001)], ids=["no-bn", "bn"])
def test_networks_trained_together_are_each_one_trained_alone_after_an_epoch(split, bn, lr):
    spec = spec_for(split, bn=bn)
    args = (spec, split.x_train, split.y_train, split.x_val, split.y_val)
    seeds = [3, 4, 5]
    together = train_networks(*args, lr=lr, seeds=seeds, epochs=1)
    stacked = stacked_model(spec, len(seeds))
    for s, seed in enumerate(seeds):
        alone = train(*args, lr=lr, seed=seed, epochs=1)
        assert together[s].epochs[0].train_loss == pytest.approx(alone.epochs[0].train_loss, rel=1e-5)
        assert together[s].epochs[0].val_loss == pytest.approx(alone.epochs[0].val_loss, rel=1e-5)
        ours = stacked.network_weights(s)
        for mine, theirs in zip(ours, compiled_model(spec).get_weights(), strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bn, lr, epochs", [(False, 0.01, 4), (True, 0.001, 5)], ids=["no-bn", "bn"])
def test_networks_trained_together_follow_each_one_trained_alone(split, bn, lr, epochs):
    spec = spec_for(split, bn=bn)
    args = (spec, split.x_train, split.y_train, split.x_val, split.y_val)
    together = train_networks(*args, lr=lr, seeds=[3, 4], epochs=epochs)
    for result, seed in zip(together, [3, 4]):
        alone = train(*args, lr=lr, seed=seed, epochs=epochs)
        np.testing.assert_allclose(
            [e.val_loss for e in result.epochs], [e.val_loss for e in alone.epochs], rtol=1e-2
        )
        np.testing.assert_allclose(
            [e.train_loss for e in result.epochs], [e.train_loss for e in alone.epochs], rtol=1e-2
        )


def test_a_network_that_diverges_leaves_the_others_as_they_were(split):
    spec = spec_for(split, bn=True)
    args = (spec, split.x_train, split.y_train, split.x_val, split.y_val)
    clean = train_networks(*args, lr=0.01, seeds=[0, 13, 1], epochs=3)
    seen = []
    dirty = train_networks(*args, lr=[0.01, 1e9, 0.01], seeds=[0, 13, 1], epochs=3, on_epoch=seen.append)
    assert dirty[1].diverged and dirty[1].diverged_epoch == 1 and len(dirty[1].epochs) == 1
    assert not clean[1].diverged and [r is None for r in seen[1]] == [False, True, False]
    for s in (0, 2):  # the same program, the same arithmetic: the same numbers to the bit
        assert not dirty[s].diverged and dirty[s].epochs == clean[s].epochs
    with pytest.raises(ValueError, match="lr: 2 values for 3 seeds; give one per seed or one for all"):
        train_networks(*args, lr=[0.01, 0.1], seeds=[0, 13, 1], epochs=1)
