"""The fast trainer: a trial's epochs (every minibatch step and validation pass) in one XLA program.

Keras ``model.fit`` spends most of a trial of this tiny network on framework overhead (about 14 s for
100 epochs on one core). Here the Keras model and the Keras SGD optimizer run inside
``tf.function(jit_compile=True)`` around a ``tf.while_loop`` over the minibatches, with
``tf.slice`` taking each batch's indices (Python slicing of a tensor there costs 30× more).
Every minibatch runs the same step: when the batch size does not divide the training rows, the
last batch (smaller in Keras too) is padded to full size and its padding masked out of the loss
and out of BatchNormalization's batch statistics (Keras' own ``mask``). One step body instead of a
second copy for that batch makes the program about a quarter cheaper to trace and compile. With
``drop_last`` that batch is left out instead (its rows are trained in other epochs, whose
shuffles differ): with BN on, a batch of a few rows normalises by their statistics alone.
Around the epoch, a second loop runs a chunk of epochs (by default all of them) in one call, and
the program returns every epoch's losses: Python and TensorFlow take their per-call time once per
chunk, not once per epoch (a BN-on epoch 7.1 → 6.2 ms on one core, measured).

Compiling costs more than an epoch, so a compiled program is kept per process and reused by every
later trial with the same architecture and data shapes: a trial re-draws the model's weights
(:func:`leafbn.train.model.reset_weights`), zeroes the optimizer's state and assigns its learning rate
to a variable the schedule reads. Ray Tune's ``reuse_actors`` keeps the process, so a worker
compiles each architecture once per study. XLA's persistent cache (``LEAFBN_XLA_CACHE``, default
``~/.cache/leafbn/xla``, one folder per CPU model and feature set; ``off`` disables it) lets a
new process skip most of the compiling: a
program is traced under names that do not depend on what the process traced before, so every
worker, in any order, finds what another worker or an earlier study compiled.

Several seeds of one configuration can train side by side in one program
(:func:`train_networks`, :class:`leafbn.train.model.StackedNetworks`): one compile for all of them;
per network 18% faster at 5 seeds on one CPU, 20% slower on another (docs/benchmarks.md), so a
study trains one per Ray trial unless asked. A single network keeps the plain Keras model
(``Dense`` layers): the stacked one is about 1.5x slower for one network.

Divergence is a result, not an error: a network stops after the first epoch whose training or
validation loss is not finite, and its result says so; the others go on.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from leafbn.train.xla_cache import use_xla_cache, use_xla_options

use_xla_options()  # before the cache: its folder depends on XLA_FLAGS
use_xla_cache()  # both before XLA compiles anything: it reads its flags once

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import ops as tf_ops  # noqa: E402

from leafbn.config import steps_per_epoch  # noqa: E402
from leafbn.train.model import ModelSpec, StackedNetworks, build_model, build_optimizer, reset_weights  # noqa: E402

__all__ = [
    "EpochResult", "TrialResult", "train", "train_networks", "single_thread", "epoch_order",
    "compiled_model", "stacked_model", "tracing_counts",
]  # fmt: skip


@dataclass(frozen=True)
class EpochResult:
    """One epoch's numbers (``epoch`` is 1-based)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.train_loss) and math.isfinite(self.val_loss)


@dataclass
class TrialResult:
    """A finished trial: its epochs, whether it diverged, and the trainer's own time."""

    epochs: list[EpochResult] = field(default_factory=list)
    diverged: bool = False
    diverged_epoch: int | None = None
    time_s: float = 0.0

    @property
    def final(self) -> EpochResult | None:
        return self.epochs[-1] if self.epochs else None

    @property
    def best(self) -> EpochResult | None:
        finite = [e for e in self.epochs if math.isfinite(e.val_loss)]
        return min(finite, key=lambda e: e.val_loss) if finite else None


def single_thread() -> None:
    """Make TensorFlow use one thread in this process (Ray runs one trial per CPU).

    Must run before TensorFlow executes anything; later calls are harmless no-ops.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already started: its thread pools are fixed for this process


def epoch_order(seed: int, epochs: int, n: int) -> np.ndarray:
    """The minibatch order of every epoch: ``(epochs, n)`` int32 permutations drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int32)


_TRACED: Counter = Counter()  # programs traced per key in this process (normally one)


@contextmanager
def _stable_uids(key: tuple) -> Iterator[None]:
    """Trace with TensorFlow unique ids that depend on ``key`` only, not on the process's history.

    XLA's persistent cache keys a compiled program by its function and HLO names, and TensorFlow
    numbers those from one process-wide counter (``__inference_epoch_1994``). A worker that traced
    BN first and no-BN second named both differently from one that went the other way, so the
    cache missed and the program was compiled again. Here a program's ids come from a range of its
    own (2**21 ids, one of 2**30 ranges picked by a hash of ``key`` and how many times this process
    traced it before), far above the process counter: every process names the same program alike.
    Layer and optimizer names are fixed for the same reason (:func:`leafbn.train.model.build_model`).
    """
    digest = hashlib.sha256(repr((key, _TRACED[key])).encode()).digest()
    _TRACED[key] += 1
    ids = itertools.count((1 << 40) + (int.from_bytes(digest[:8], "big") % (1 << 30)) * (1 << 21))
    process_uid = tf_ops.uid
    tf_ops.uid = lambda: next(ids)
    try:
        yield
    finally:
        tf_ops.uid = process_uid


class _Key(NamedTuple):
    """What a compiled program depends on: trials that agree on all of it share one program."""

    spec: ModelSpec
    networks: int  # trained side by side (StackedNetworks) when more than one
    momentum: float
    decay: float
    batch_size: int
    drop_last: bool
    n_train: int
    n_val: int
    rows: int  # epochs whose minibatch orders a call takes (:func:`_rows`)


def _rows(epochs: int) -> int:
    """Room for ``epochs`` epochs' minibatch orders, in hundreds: runs of up to 100 epochs share one
    program (a program's inputs have fixed shapes)."""
    return max(1, math.ceil(epochs / 100)) * 100


def _epochs_program(epoch: Callable, key: _Key) -> Any:
    """The compiled program of a trial, traced for ``key``: ``epoch`` (one epoch of
    ``key.networks`` networks, returning their train loss, validation loss and accuracy) for epochs
    ``start`` … ``stop - 1`` in one call. ``orders`` holds every epoch's minibatch order
    (``key.rows`` of them); ``alive`` says which networks have not diverged. The loop stops early
    after an epoch that leaves none alive (a loss not finite). Returns the losses
    ``[rows, 3, networks]`` (NaN for epochs not run) and the epoch it stopped before."""
    networks, rows = key.networks, key.rows

    @tf.function(jit_compile=True, autograph=False)  # no Python control flow to convert: traces faster
    def run(x, y, orders, start, stop, alive, x_val, y_val):
        def body(e, losses, alive):
            now = tf.reshape(tf.stack(epoch(x, y, tf.gather(orders, e), x_val, y_val)), [3, networks])
            alive = alive & tf.reduce_all(tf.math.is_finite(now[:2]), axis=0)
            return e + 1, tf.tensor_scatter_nd_update(losses, [[e]], now[None]), alive

        state = (start, tf.fill([rows, 3, networks], math.nan), alive)
        stopped, losses, _ = tf.while_loop(lambda e, _, alive: (e < stop) & tf.reduce_any(alive), body, state)
        return losses, stopped

    # Traced now, under names that depend on ``key`` only (:func:`_stable_uids`).
    n_features, n_train, n_val = key.spec.n_features, key.n_train, key.n_val
    specs = [
        ((n_train, n_features), tf.float32), ((n_train,), tf.int32),
        ((rows, networks, n_train), tf.int32), ((), tf.int32), ((), tf.int32),
        ((networks,), tf.bool), ((n_val, n_features), tf.float32), ((n_val,), tf.int32),
    ]  # fmt: skip
    with _stable_uids(tuple(key)), warnings.catch_warnings():
        # The mask reaches every layer inside the model; Keras warns that the model's output
        # carries none, which is as it should be.
        warnings.filterwarnings("ignore", message=".*does not support masking.*")
        run.get_concrete_function(*(tf.TensorSpec(shape, dtype) for shape, dtype in specs))
    return run


class _Program:
    """One architecture's model, optimizer and compiled program (:func:`_epochs_program`), reusable
    across trials."""

    def __init__(self, key: _Key):
        spec, _, momentum, decay, batch_size, drop_last, n_train, n_val, _ = key
        self.model = build_model(spec, seed=0)
        self.lr = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.optimizer = build_optimizer(self.lr, momentum=momentum, decay=decay)
        self.optimizer.build(self.model.trainable_variables)
        self.loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
        steps = steps_per_epoch(n_train, batch_size, drop_last)
        padding = max(steps * batch_size - n_train, 0)
        n_trained = min(steps * batch_size, n_train)  # rows trained per epoch
        positions = tf.range(batch_size)
        model, optimizer, loss_fn = self.model, self.optimizer, self.loss

        def step(x: tf.Tensor, y: tf.Tensor, perm: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
            idx = tf.slice(perm, [i * batch_size], [batch_size])
            real = i * batch_size + positions < n_train  # False only for the last batch's padding
            weight = tf.cast(real, tf.float32)
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            with tf.GradientTape() as tape:
                total = loss_fn(yb, model(xb, training=True, mask=real), sample_weight=weight)
                loss = total / tf.reduce_sum(weight)  # the mean over the batch's real rows
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return total

        def epoch(x, y, perm, x_val, y_val):  # perm: [1, n]
            perm = tf.concat([perm[0], tf.zeros([padding], tf.int32)], axis=0)
            body = lambda i, total: (i + 1, total + step(x, y, perm, i))  # noqa: E731
            _, total = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), tf.constant(0.0)))
            probs = model(x_val, training=False)
            val_loss = loss_fn(y_val, probs) / n_val
            hits = tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int32), y_val)
            return total / n_trained, val_loss, tf.reduce_mean(tf.cast(hits, tf.float32))

        self.epochs = _epochs_program(epoch, key)

    def reset(self, seeds: Sequence[int], lr: float) -> None:
        (seed,) = seeds
        reset_weights(self.model, seed)
        for variable in self.optimizer.variables:  # iterations and momentum buffers
            variable.assign(tf.zeros_like(variable))
        self.lr.assign(lr)


class _StackedProgram:
    """As :class:`_Program`, for ``key.networks`` networks side by side (:class:`StackedNetworks`):
    each network has its own minibatch order, initial weights, BN statistics and optimizer state;
    only the learning rate and the step count are shared. One compile serves them all."""

    def __init__(self, key: _Key):
        spec, networks, momentum, decay, batch_size, drop_last, n_train, n_val, _ = key
        self.single = build_model(spec, seed=0)  # draws each network's initial weights
        self.model = StackedNetworks(spec, networks)
        self.lr = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.optimizer = build_optimizer(self.lr, momentum=momentum, decay=decay)
        self.optimizer.build(self.model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
        steps = steps_per_epoch(n_train, batch_size, drop_last)
        padding = max(steps * batch_size - n_train, 0)
        n_trained = min(steps * batch_size, n_train)
        positions = tf.range(batch_size)
        model, optimizer = self.model, self.optimizer

        def step(x: tf.Tensor, y: tf.Tensor, perm: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
            idx = tf.transpose(tf.slice(perm, [0, i * batch_size], [networks, batch_size]))  # [B, S]
            real = i * batch_size + positions < n_train  # [B]: False only for the last batch's padding
            weight = tf.cast(real, tf.float32)
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)  # [B, S, F], [B, S]
            with tf.GradientTape() as tape:
                rows = loss_fn(yb, model(xb, training=True, mask=real))  # [B, S]
                total = tf.reduce_sum(rows * weight[:, None], axis=0)  # [S]: each network's sum
                # The sum of the networks' mean losses: its gradient in network s's slice of every
                # variable is network s's own gradient.
                loss = tf.reduce_sum(total) / tf.reduce_sum(weight)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return total

        def epoch(x, y, perm, x_val, y_val):
            perm = tf.concat([perm, tf.zeros([networks, padding], tf.int32)], axis=1)
            body = lambda i, total: (i + 1, total + step(x, y, perm, i))  # noqa: E731
            start = (tf.constant(0), tf.zeros([networks]))
            _, total = tf.while_loop(lambda i, _: i < steps, body, start)
            xv = tf.broadcast_to(x_val[:, None], [n_val, networks, x_val.shape[-1]])
            yv = tf.broadcast_to(y_val[:, None], [n_val, networks])
            probs = model(xv, training=False)  # [V, S, C]
            val_loss = tf.reduce_sum(loss_fn(yv, probs), axis=0) / n_val
            hits = tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int32), yv)
            return total / n_trained, val_loss, tf.reduce_mean(tf.cast(hits, tf.float32), axis=0)

        self.epochs = _epochs_program(epoch, key)

    def reset(self, seeds: Sequence[int], lr: float) -> None:
        weights = []
        for seed in seeds:
            reset_weights(self.single, seed)  # the weights build_model(spec, seed) draws
            weights.append(self.single.get_weights())
        self.model.set_networks(weights)
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        self.lr.assign(lr)


_PROGRAMS: dict[_Key, _Program | _StackedProgram] = {}


def compiled_model(spec: ModelSpec, drop_last: bool = False) -> keras.Model:
    """The model inside this process's compiled program for ``spec``, with the weights its last
    trial left (for checking them against another implementation). KeyError if none was built."""
    for key, program in _PROGRAMS.items():
        if key.spec == spec and key.drop_last == drop_last and key.networks == 1:
            return program.model
    raise KeyError(f"no compiled program for {spec} (drop_last={drop_last}) in this process")


def stacked_model(spec: ModelSpec, networks: int, drop_last: bool = False) -> StackedNetworks:
    """The :class:`StackedNetworks` inside this process's program for ``networks`` networks of
    ``spec``, with the weights its last trial left. KeyError if none was built."""
    for key, program in _PROGRAMS.items():
        if key.spec == spec and key.drop_last == drop_last and key.networks == networks:
            return program.model
    raise KeyError(f"no compiled program for {networks} networks of {spec} in this process")


def tracing_counts() -> list[int]:
    """How often each compiled program of this process was traced (1 each when reuse works)."""
    return sorted(program.epochs.experimental_get_tracing_count() for program in _PROGRAMS.values())


def train(
    spec: ModelSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
    **settings: Any,
) -> TrialResult:
    """Train one network (seed ``seed``): :func:`train_networks` for one seed, whose ``settings``
    (``lr``, ``epochs``, ...) it takes; ``on_epoch`` gets the network's :class:`EpochResult`.
    Never raises on divergence: the result's ``diverged`` and ``diverged_epoch`` say where it
    stopped."""
    callback = None if on_epoch is None else (lambda results: on_epoch(results[0]))
    data = (x_train, y_train, x_val, y_val)
    (result,) = train_networks(spec, *data, seeds=[seed], on_epoch=callback, **settings)
    return result


def train_networks(
    spec: ModelSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    lr: float,
    seeds: Sequence[int],
    epochs: int = 100,
    batch_size: int = 10,
    drop_last: bool = False,
    momentum: float = 0.9,
    decay: float = 1e-6,
    on_epoch: Callable[[list[EpochResult | None]], bool | None] | None = None,
    chunk: int | None = None,
) -> list[TrialResult]:
    """Train one network per seed, all with ``spec`` and ``lr``, side by side in one compiled
    program; never raises on divergence.

    Parameters
    ----------
    spec : the architecture (its ``n_features``/``n_classes`` must match the data).
    x_train, y_train, x_val, y_val : float32 features ``(n, n_features)`` and int labels ``(n,)``.
    lr : base learning rate, shared by the networks.
    seeds : one network per seed: its initial weights and its minibatch order.
    epochs, batch_size, momentum, decay : the blog's SGD settings by default.
    drop_last : leave out each epoch's last batch when it is smaller than ``batch_size`` (Keras
        keeps it: the default); needs ``batch_size <= len(x_train)``.
    on_epoch : called after every epoch with each network's :class:`EpochResult` (None for one
        that diverged in an earlier epoch); returning True stops every network (early stopping).
    chunk : epochs per call of the compiled program; ``on_epoch`` sees a chunk's epochs when the
        call returns, so a stop takes effect at the chunk's end (the later epochs of the chunk are
        left out of the results). Default: 1 with ``on_epoch``, else every epoch in one call.

    Returns
    -------
    One :class:`TrialResult` per seed, with an :class:`EpochResult` per epoch it ran. A network
    stops at the epoch a loss becomes NaN or inf (``diverged``, ``diverged_epoch``); the others go
    on. Each ``time_s`` is the trainer's time shared equally by the networks.
    """
    start = time.perf_counter()
    single_thread()
    n_train = len(x_train)
    if steps_per_epoch(n_train, batch_size, drop_last) == 0:
        raise ValueError(f"batch_size {batch_size}: must be <= the {n_train} training rows with drop_last")
    if not seeds:
        raise ValueError("seeds: must name at least one seed")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk {chunk}: must be >= 1")
    chunk = chunk or (1 if on_epoch is not None else epochs)
    rows = _rows(epochs)
    key = _Key(spec, len(seeds), momentum, decay, batch_size, drop_last, n_train, len(x_val), rows)
    program = _program(key)
    program.reset(seeds, lr)
    x, y = tf.constant(x_train, tf.float32), tf.constant(y_train, tf.int32)
    xv, yv = tf.constant(x_val, tf.float32), tf.constant(y_val, tf.int32)
    orders = np.zeros((rows, len(seeds), n_train), np.int32)  # every epoch's order, per network
    orders[:epochs] = np.stack([epoch_order(seed, epochs, n_train) for seed in seeds], axis=1)
    orders = tf.constant(orders)
    results = [TrialResult() for _ in seeds]
    done, stopped = 0, False  # epochs run; whether every network diverged or on_epoch said stop
    while done < epochs and not stopped:
        alive = tf.constant([not r.diverged for r in results])
        bounds = tf.constant(done), tf.constant(min(done + chunk, epochs))  # Python ints would retrace
        losses, reached = program.epochs(x, y, orders, *bounds, alive, xv, yv)
        losses = losses.numpy()
        for e in range(done, int(reached)):
            now: list[EpochResult | None] = []
            for s, result in enumerate(results):
                if result.diverged:  # it keeps running inside the program, in its own slices
                    now.append(None)
                    continue
                epoch = EpochResult(e + 1, *(float(v) for v in losses[e, :, s]))
                result.epochs.append(epoch)
                if not epoch.finite:
                    result.diverged, result.diverged_epoch = True, e + 1
                now.append(epoch)
            if (on_epoch is not None and on_epoch(now)) or all(r.diverged for r in results):
                stopped = True
                break
        done = int(reached)
    for result in results:
        result.time_s = (time.perf_counter() - start) / len(seeds)
    return results


def _program(key: _Key) -> _Program | _StackedProgram:
    """This process's compiled program for ``key``, built (traced and compiled) on first use."""
    program = _PROGRAMS.get(key)
    if program is None:
        # TensorFlow, Keras and Ray leave ~0.5 million long-lived objects: one full collection of
        # them costs 0.2-0.3 s, as much as a third of a trial. They live as long as the process,
        # and so does the program's graph; the collector leaves frozen objects alone.
        # Tracing creates objects that live as long as the program: collections during it only walk
        # them (0.2 of a 0.55 s build, measured), so the collector waits until the program is built.
        gc.freeze()
        enabled = gc.isenabled()
        gc.disable()
        try:
            program = _PROGRAMS[key] = (_Program if key.networks == 1 else _StackedProgram)(key)
        finally:
            if enabled:
                gc.enable()
        gc.freeze()
    return program
