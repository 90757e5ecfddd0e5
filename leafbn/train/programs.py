"""The trainer's compiled programs: one per network *shape*, kept in a bounded cache.

A program trains ``networks`` networks of one architecture for a chunk of epochs
(:func:`leafbn.train.train_networks`). What it is compiled for, its :class:`ProgramKey`: the
architecture without BN momentum (depth, width, BN on/off and placement, features, classes), the
number of networks, batch size, ``drop_last`` and the data's row counts. Everything else is a runtime
input, so one compile serves every value of it: the data (``x``, ``y``, ``x_val``, ``y_val`` are
arguments: any split of the same shape), the seeds (initial weights drawn inside a small traced
function, :func:`leafbn.train.model.initial_weights`), each network's learning rate, SGD momentum, decay
and BN momentum (variables the program reads, assigned before a run: :meth:`Program.reset`).

Compiling costs more than an epoch, so programs are reused by later runs of the same key: Ray Tune's
``reuse_actors`` keeps the process, so a worker compiles each shape once per study. The cache holds
at most :func:`program_cache_size` programs (:data:`PROGRAM_CACHE_SIZE`, or ``LEAFBN_PROGRAM_CACHE``)
and drops the least recently used one to make room, so a worker cycling through many shapes keeps a
bounded number. XLA's persistent cache (:mod:`leafbn.train.xla_cache`) makes a rebuild after eviction, or
in a new process, skip most of the compiling: a program is traced under names that depend on its key
only (:func:`_stable_uids`), so every worker, in any order, finds what another compiled.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import math
import os
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, NamedTuple

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from leafbn.config import steps_per_epoch
from leafbn.train.model import (
    BNMomentum,
    ModelSpec,
    RuntimeSGD,
    StackedNetworks,
    build_model,
    initial_weights,
)

__all__ = [
    "PROGRAM_CACHE_SIZE", "ProgramKey", "Program", "program_for", "program_key", "program_cache_size",
    "compiled_model", "stacked_model", "tracing_counts",
]  # fmt: skip

#: Compiled programs a process keeps (least recently used dropped first); ``LEAFBN_PROGRAM_CACHE``
#: overrides it. A seed-network program holds a few MB of Python graph and compiled code.
PROGRAM_CACHE_SIZE = 8


class ProgramKey(NamedTuple):
    """What a compiled program depends on: runs that agree on all of it share one program."""

    spec: ModelSpec  # with bn_momentum at its default: momentum is a runtime input
    networks: int  # trained side by side (StackedNetworks) when more than one
    batch_size: int
    drop_last: bool
    n_train: int
    n_val: int
    rows: int  # epochs whose minibatch orders a call takes (:func:`_rows`)


def program_key(spec: ModelSpec, networks: int, batch_size: int, drop_last: bool, n_train: int, n_val: int,
                epochs: int) -> ProgramKey:  # fmt: skip
    """The key of the program that trains ``networks`` networks of ``spec`` for ``epochs`` epochs on
    ``n_train`` training and ``n_val`` validation rows: BN momentum is left out (a runtime input), and
    runs of up to 100 epochs share one program (room for their minibatch orders, in hundreds)."""
    rows = max(1, math.ceil(epochs / 100)) * 100
    shape = replace(spec, bn_momentum=ModelSpec.bn_momentum)
    return ProgramKey(shape, networks, batch_size, drop_last, n_train, n_val, rows)


def program_cache_size() -> int:
    """How many compiled programs this process keeps: ``LEAFBN_PROGRAM_CACHE`` if set, else
    :data:`PROGRAM_CACHE_SIZE`. ValueError naming the variable if it is not an integer >= 1."""
    text = os.environ.get("LEAFBN_PROGRAM_CACHE", str(PROGRAM_CACHE_SIZE))
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"LEAFBN_PROGRAM_CACHE={text!r}: must be an integer >= 1 (programs per process)")
    return int(text)


@contextmanager
def _stable_uids(key: tuple, generation: int) -> Iterator[None]:
    """Trace with TensorFlow unique ids that depend on ``key`` only, not on the process's history.

    XLA's persistent cache keys a compiled program by its function and HLO names, and TensorFlow
    numbers those from one process-wide counter (``__inference_epoch_1994``). A worker that traced
    BN first and no-BN second named both differently from one that went the other way, so the
    cache missed and the program was compiled again. Here a program's ids come from a range of its
    own (2**21 ids, one of 2**30 ranges picked by a hash of ``key`` and ``generation``), far above
    the process counter: every process names the same program alike. ``generation`` is 0 unless a
    program of the same key is still alive in this process (:func:`program_for`): a program rebuilt
    after its eviction gets its old names, so XLA's caches (in memory and on disk) find its code.
    Layer and optimizer names are fixed for the same reason (:func:`leafbn.train.model.build_model`).
    """
    first, stop = _uid_range(key, generation)
    _forget_gradients(first, stop)
    ids = itertools.count(first)
    process_uid = tf_ops.uid
    tf_ops.uid = lambda: next(ids)
    try:
        yield
    finally:
        tf_ops.uid = process_uid


def _uid_range(key: tuple, generation: int) -> tuple[int, int]:
    """The TensorFlow unique ids ``first`` … ``stop - 1`` that ``key``'s program of ``generation``
    is traced with (:func:`_stable_uids`)."""
    digest = hashlib.sha256(repr((key, generation)).encode()).digest()
    first = (1 << 40) + (int.from_bytes(digest[:8], "big") % (1 << 30)) * (1 << 21)
    return first, first + (1 << 21)


def _forget_gradients(low: int, high: int) -> None:
    """Drop from TensorFlow's process-wide gradient registry the custom gradients named with ids in
    ``low`` … ``high - 1`` (``CustomGradient-<id>``): an earlier, evicted trace of the same program
    registered them, and a trace under the same ids would otherwise be refused (registered twice)."""
    registry = tf_ops.gradient_registry._registry  # a dict name -> entry; no public way to unregister
    for name in [n for n in registry if n.startswith("CustomGradient-")]:
        if low <= int(name.rpartition("-")[2]) < high:
            del registry[name]


def _epochs_program(epoch: Callable, key: ProgramKey, generation: int) -> Any:
    """The compiled program, traced for ``key``: ``epoch`` (one epoch of ``key.networks`` networks,
    returning their train loss, validation loss and accuracy) for epochs ``start`` … ``stop - 1`` in
    one call. ``orders`` holds every epoch's minibatch order (``key.rows`` of them); ``alive`` says
    which networks have not diverged. The loop stops early after an epoch that leaves none alive (a
    loss not finite). Returns the losses ``[rows, 3, networks]`` (NaN for epochs not run) and the
    epoch it stopped before."""
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
    with _stable_uids(tuple(key), generation), warnings.catch_warnings():
        # The mask reaches every layer inside the model; Keras warns that the model's output
        # carries none, which is as it should be.
        warnings.filterwarnings("ignore", message=".*does not support masking.*")
        run.get_concrete_function(*(tf.TensorSpec(shape, dtype) for shape, dtype in specs))
    return run


class Program:
    """One key's model, optimizer, runtime settings and compiled epochs program (:attr:`epochs`).

    One network (``key.networks == 1``) is the plain Keras model of :func:`build_model`; more are
    :class:`StackedNetworks` side by side, each with its own minibatch order, initial weights, BN
    statistics, optimizer state and learning rate (only the step count is shared).
    :meth:`reset` readies it for a run.
    """

    def __init__(self, key: ProgramKey, generation: int = 0):
        self.key, self.generation, networks = key, generation, key.networks
        self.single = build_model(key.spec, seed=0)  # its layers draw each network's initial weights
        self.model = self.single if networks == 1 else StackedNetworks(key.spec, networks)
        self.lr = tf.Variable(tf.zeros([] if networks == 1 else [networks]), trainable=False, name="lr")
        self.momentum = tf.Variable(0.0, trainable=False, name="momentum")
        self.decay = tf.Variable(0.0, trainable=False, name="decay")
        self.bn_momentum = BNMomentum()
        bns = self.model.norm if networks > 1 else [
            layer for layer in self.model.layers if isinstance(layer, keras.layers.BatchNormalization)
        ]  # fmt: skip
        for bn in bns:  # read by BN's moving-statistics update at every step; not a weight of the model
            object.__setattr__(bn, "momentum", self.bn_momentum)
        self.optimizer = RuntimeSGD(self.lr, self.momentum, self.decay, networks)
        self.optimizer.build(self.model.trainable_variables)
        epoch = self._single_epoch() if networks == 1 else self._stacked_epoch()
        self.epochs = _epochs_program(epoch, key, generation)
        self._reset = self._reset_function()

    def _single_epoch(self) -> Callable:
        """One epoch of the Keras model: minibatch steps, then the validation pass."""
        model, optimizer, key = self.model, self.optimizer, self.key
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
        batch_size, n_train, n_val = key.batch_size, key.n_train, key.n_val
        steps = steps_per_epoch(n_train, batch_size, key.drop_last)
        padding = max(steps * batch_size - n_train, 0)
        n_trained = min(steps * batch_size, n_train)  # rows trained per epoch
        positions = tf.range(batch_size)

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

        return epoch

    def _stacked_epoch(self) -> Callable:
        """As :meth:`_single_epoch`, for :class:`StackedNetworks`: every loss per network."""
        model, optimizer, key, networks = self.model, self.optimizer, self.key, self.key.networks
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
        batch_size, n_train, n_val = key.batch_size, key.n_train, key.n_val
        steps = steps_per_epoch(n_train, batch_size, key.drop_last)
        padding = max(steps * batch_size - n_train, 0)
        n_trained = min(steps * batch_size, n_train)
        positions = tf.range(batch_size)

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

        return epoch

    def _reset_function(self) -> Any:
        """A traced (not XLA-compiled) function that readies a run in one call: every weight drawn
        from its network's seed, the optimizer's state zeroed, the runtime settings assigned."""
        single, model, optimizer, networks = self.single, self.model, self.optimizer, self.key.networks
        shapes = [w.shape for w in single.weights]

        @tf.function(autograph=False)
        def reset(seeds, lr, momentum, decay, bn_momentum, bn_complement):
            if networks == 1:
                for variable, value in zip(model.weights, initial_weights(single, seeds[0]), strict=True):
                    variable.assign(value)
            else:
                draw = lambda seed: tuple(initial_weights(single, seed))  # noqa: E731
                signature = tuple(tf.TensorSpec(shape, tf.float32) for shape in shapes)
                model.set_stacked(list(tf.map_fn(draw, seeds, fn_output_signature=signature)))
            for variable in optimizer.variables:  # iterations and momentum buffers
                variable.assign(tf.zeros_like(variable))
            for variable, value in ((self.lr, lr), (self.momentum, momentum), (self.decay, decay)):
                variable.assign(value)
            self.bn_momentum.set(bn_momentum, bn_complement)

        lr_shape = [] if networks == 1 else [networks]
        reset.get_concrete_function(
            tf.TensorSpec([networks], tf.int64), tf.TensorSpec(lr_shape, tf.float32),
            *(tf.TensorSpec([], tf.float32) for _ in range(4)),
        )  # fmt: skip
        return reset

    def reset(self, seeds: Sequence[int], lrs: Sequence[float], momentum: float, decay: float,
              bn_momentum: float) -> None:  # fmt: skip
        """Ready a run: network s drawn from ``seeds[s]`` (the weights ``build_model(spec, seed)``
        has) and stepping with learning rate ``lrs[s]``; zeroed optimizer state; the SGD momentum,
        decay and BN momentum of this run. One call of a traced function."""
        lr = lrs[0] if self.key.networks == 1 else lrs
        scalars = (tf.constant(v, tf.float32) for v in (momentum, decay, bn_momentum, 1.0 - bn_momentum))
        self._reset(tf.constant(seeds, tf.int64), tf.constant(lr, tf.float32), *scalars)


_PROGRAMS: OrderedDict[ProgramKey, Program] = OrderedDict()  # least recently used first
_LIVE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # (key, generation) -> program alive
_HEAP_FROZEN = False  # whether the first build froze the process's libraries (:func:`program_for`)


def program_for(key: ProgramKey) -> Program:
    """This process's compiled program for ``key``: reused if cached (and marked most recently used),
    else built (traced and compiled; seconds) after dropping the least recently used programs beyond
    :func:`program_cache_size` - 1."""
    program = _PROGRAMS.get(key)
    if program is not None:
        _PROGRAMS.move_to_end(key)
        return program
    global _HEAP_FROZEN
    evicted = 0
    while _PROGRAMS and len(_PROGRAMS) >= program_cache_size():
        _, dropped = _PROGRAMS.popitem(last=False)
        # Its custom gradients stay in TensorFlow's process-wide registry, and their closures hold
        # the program's graphs (every FuncGraph of it) alive: drop them with the program.
        _forget_gradients(*_uid_range(tuple(dropped.key), dropped.generation))
        del dropped  # before the collection below: nothing here keeps it alive
        evicted += 1
    if evicted:
        gc.collect()  # a program's graph is cyclic: free it now, not at some later full collection
    if not _HEAP_FROZEN:
        # TensorFlow, Keras and Ray leave ~0.5 million long-lived objects: one full collection of
        # them costs 0.2-0.3 s. They live as long as the process; the collector leaves frozen
        # objects alone. Only once: a program frozen would never be freed when it is evicted.
        gc.freeze()
        _HEAP_FROZEN = True
    # Tracing creates objects that live as long as the program: collections during it only walk
    # them (0.2 of a 0.55 s build, measured), so the collector waits until the program is built.
    enabled = gc.isenabled()
    gc.disable()
    try:
        generation = next(g for g in itertools.count() if (key, g) not in _LIVE)
        program = _PROGRAMS[key] = _LIVE[key, generation] = Program(key, generation)
    finally:
        if enabled:
            gc.enable()
    return program


def _find(spec: ModelSpec, networks: int, drop_last: bool) -> Program:
    shape = replace(spec, bn_momentum=ModelSpec.bn_momentum)
    for key, program in reversed(_PROGRAMS.items()):  # the most recently used first
        if key.spec == shape and key.drop_last == drop_last and key.networks == networks:
            return program
    raise KeyError(f"no compiled program for {networks} network(s) of {spec} (drop_last={drop_last}) here")


def compiled_model(spec: ModelSpec, drop_last: bool = False) -> keras.Model:
    """The model inside this process's compiled program for one network of ``spec`` (the most
    recently used one), with the weights its last run left. KeyError if none is cached."""
    return _find(spec, 1, drop_last).model


def stacked_model(spec: ModelSpec, networks: int, drop_last: bool = False) -> StackedNetworks:
    """The :class:`StackedNetworks` inside this process's program for ``networks`` networks of
    ``spec``, with the weights its last run left. KeyError if none is cached."""
    return _find(spec, networks, drop_last).model


def tracing_counts() -> list[int]:
    """How often each cached program's epochs function was traced (1 each when reuse works)."""
    return sorted(program.epochs.experimental_get_tracing_count() for program in _PROGRAMS.values())
