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

Compiling costs more than an epoch, so the compiled program is kept and reused by every later run
of the same network shape and data shapes (:mod:`leafbn.train.programs`: its key, its bounded cache, XLA's
persistent cache): the data, seeds, learning rates (one per network), SGD momentum, decay and BN
momentum are runtime inputs of the program, and a run re-draws the weights, zeroes the optimizer's
state and assigns those settings in one traced call. A unit of many runs (learning rates, seeds,
splits, momenta of one architecture) therefore loops through one program without compiling again.

Several seeds of one configuration can train side by side in one program
(:func:`train_networks`, :class:`leafbn.train.model.StackedNetworks`): one compile for all of them;
per network 18% faster at 5 seeds on one CPU, 20% slower on another (docs/benchmarks.md), so a
study trains one per Ray trial unless asked. A single network keeps the plain Keras model
(``Dense`` layers): the stacked one is about 1.5x slower for one network.

Divergence is a result, not an error: a network stops after the first epoch whose training or
validation loss is not finite, and its result says so; the others go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leafbn.train.xla_cache import use_xla_cache, use_xla_options

use_xla_options()  # before the cache: its folder depends on XLA_FLAGS
use_xla_cache()  # both before XLA compiles anything: it reads its flags once

import tensorflow as tf  # noqa: E402

from leafbn.config import steps_per_epoch  # noqa: E402
from leafbn.train.model import ModelSpec  # noqa: E402
from leafbn.train.programs import compiled_model, program_for, program_key, stacked_model, tracing_counts  # noqa: E402

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
    lr: float | Sequence[float],
    seeds: Sequence[int],
    epochs: int = 100,
    batch_size: int = 10,
    drop_last: bool = False,
    momentum: float = 0.9,
    decay: float = 1e-6,
    on_epoch: Callable[[list[EpochResult | None]], bool | None] | None = None,
    chunk: int | None = None,
) -> list[TrialResult]:  # 62 lines: 38 of them the docstring, the trainer's whole contract
    """Train one network per seed, all with ``spec``, side by side in one compiled program; never
    raises on divergence.

    The program is compiled once per :class:`leafbn.train.programs.ProgramKey` (``spec`` without its
    ``bn_momentum``, ``len(seeds)``, ``batch_size``, ``drop_last``, the data's row counts, epochs in
    hundreds) and reused: the data, seeds, learning rates, ``momentum``, ``decay`` and
    ``spec.bn_momentum`` are its runtime inputs.

    Parameters
    ----------
    spec : the architecture (its ``n_features``/``n_classes`` must match the data) and BN momentum.
    x_train, y_train, x_val, y_val : float32 features ``(n, n_features)`` and int labels ``(n,)``.
    lr : base learning rate: one for every network, or one per seed (``len(lr) == len(seeds)``).
    seeds : one network per seed: its initial weights and its minibatch order.
    epochs, batch_size, momentum, decay : the blog's SGD settings by default (shared by the networks).
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
    lrs = _checked_lrs(lr, seeds, n_train, batch_size, drop_last, chunk)
    key = program_key(spec, len(seeds), batch_size, drop_last, n_train, len(x_val), epochs)
    program = program_for(key)
    program.reset(seeds, lrs, momentum, decay, spec.bn_momentum)
    data = tuple(tf.constant(v, t) for v, t in zip((x_train, y_train, x_val, y_val), _DTYPES))
    orders = np.zeros((key.rows, len(seeds), n_train), np.int32)  # every epoch's order, per network
    orders[:epochs] = np.stack([epoch_order(seed, epochs, n_train) for seed in seeds], axis=1)
    results = [TrialResult() for _ in seeds]
    chunk = chunk or (1 if on_epoch is not None else epochs)
    _run_chunks(program.epochs, data, tf.constant(orders), results, epochs, chunk, on_epoch)
    for result in results:
        result.time_s = (time.perf_counter() - start) / len(seeds)
    return results


def _checked_lrs(
    lr: float | Sequence[float], seeds: Sequence[int], n_train: int, batch_size: int, drop_last: bool,
    chunk: int | None,
) -> list[float]:  # fmt: skip
    """:func:`train_networks`' learning rate per seed; a ValueError for settings it cannot train."""
    if steps_per_epoch(n_train, batch_size, drop_last) == 0:
        raise ValueError(f"batch_size {batch_size}: must be <= the {n_train} training rows with drop_last")
    if not seeds:
        raise ValueError("seeds: must name at least one seed")
    lrs = [float(lr)] * len(seeds) if np.ndim(lr) == 0 else [float(v) for v in lr]  # type: ignore[union-attr]
    if len(lrs) != len(seeds):
        raise ValueError(f"lr: {len(lrs)} values for {len(seeds)} seeds; give one per seed or one for all")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk {chunk}: must be >= 1")
    return lrs


_DTYPES = (tf.float32, tf.int32, tf.float32, tf.int32)  # x, y, x_val, y_val as the program takes them


def _run_chunks(
    epochs_program: Any,
    data: tuple[tf.Tensor, ...],
    orders: tf.Tensor,
    results: list[TrialResult],
    epochs: int,
    chunk: int,
    on_epoch: Callable[[list[EpochResult | None]], bool | None] | None,
) -> None:
    """Call the compiled program for ``chunk`` epochs at a time until ``epochs`` ran, every network
    diverged or ``on_epoch`` said stop, appending each network's epochs to ``results`` in place."""
    x, y, xv, yv = data
    done, stopped = 0, False  # epochs run; whether every network diverged or on_epoch said stop
    while done < epochs and not stopped:
        alive = tf.constant([not r.diverged for r in results])
        bounds = tf.constant(done), tf.constant(min(done + chunk, epochs))  # Python ints would retrace
        losses, reached = epochs_program(x, y, orders, *bounds, alive, xv, yv)
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
