"""Where a unit trial trains: a :class:`Trainer` actor of its own, replaced once it has grown too large.

TensorFlow keeps every XLA program a process compiles in an in-memory cache it never frees, whatever
leafbn's program cache drops (measured with jemalloc's heap profiler: ``DeviceCompiler::CompileStrict``
holds it, ~15-20 MB per network shape; neither clearing the kernel cache, nor a new eager context,
nor another allocator gives it back). A process that meets the full space's 75 shapes passes 2 GB.
So a unit trial (:func:`leafbn.tuning.trial.unit_trainable`) of a grid with many network shapes
(:func:`leafbn.tuning.spaces.separate_trainer`) does not train in its own process: it hands its
groups of runs to a :class:`Trainer` actor that

* lives on the trial's node and asks Ray for no CPU (the trial holds one, and waits while it trains);
* is kept by the trial's worker process for its later units (Ray Tune reuses that process), so its
  compiled programs are reused as before;
* takes as many groups per call as train in about a second (a call costs a few ms: the split goes
  with it), so the trial still reports about once a second and can be stopped;
* is killed after a call that leaves it above :func:`trainer_limit_gb` of RSS, and replaced by a
  new one for the next call (a new process: a few seconds of imports, and XLA's persistent cache
  makes its compiles cheap);
* ends with the trial's worker process, whatever ends that (Ray ties an actor to its owner).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from leafbn.tuning.units import run_curves, run_row

if TYPE_CHECKING:
    from leafbn.data.splits import Split

__all__ = ["TRAINER_GB", "Trainer", "trainer_limit_gb", "train_groups"]

#: RSS (GB) past which a trainer process is replaced; ``LEAFBN_TRAINER_GB`` overrides it. A trainer
#: holds ~1 GB with its first programs, and ~15-20 MB more per network shape it meets.
TRAINER_GB = 1.5


def trainer_limit_gb() -> float:
    """The RSS (GB) past which a trainer process is replaced: ``LEAFBN_TRAINER_GB`` if set, else
    :data:`TRAINER_GB`. ValueError naming the variable if it is not a number > 0."""
    text = os.environ.get("LEAFBN_TRAINER_GB", str(TRAINER_GB))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"LEAFBN_TRAINER_GB={text!r}: must be a number > 0 (GB of RSS per trainer process)")
    return value


def _rss_gb() -> float:
    """This process's resident set size, GB (Linux ``/proc``; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 1e9


class Trainer:
    """Trains groups of runs in its own process (a Ray actor): see the module's text."""

    def __init__(self) -> None:
        from leafbn.tuning.trial import worker_trainer

        self.trainer = worker_trainer()

    def train_groups(
        self, groups: list[list[dict[str, Any]]], splits: dict[int, Split], settings: dict[str, Any],
        row: dict[str, Any], seconds: float,
    ) -> tuple[list[dict[str, Any]], dict[str, list], int, int, float]:  # fmt: skip
        """Train ``groups`` (each: runs differing only in their seed) in order on their split of
        ``splits``, until all are done or ``seconds`` have passed (after a group). Returns the
        trained runs' ``trials.csv`` rows (:func:`leafbn.tuning.units.run_row`; ``row``: their
        ``node_id``, ``ray_trial`` and ``retries``), their curves' columns, how many groups were
        trained, this process's PID and its RSS afterwards (GB). Plain values only: the unit's
        process reads them without importing TensorFlow."""
        from leafbn.tuning.trial import train_group_with

        start, rows, curves, done = time.perf_counter(), [], {}, 0
        for group in groups:
            split = splits[int(group[0]["split"])]
            for run, result in zip(
                group, train_group_with(self.trainer, group, split, settings), strict=True
            ):
                rows.append(run_row(run, settings, result.epochs, result.time_s, **row))
                run_curves(run, result.epochs, curves)
            done += 1
            if time.perf_counter() - start >= seconds:
                break
        return rows, curves, done, os.getpid(), _rss_gb()


_ACTOR: Any = None  # this process's Trainer actor, once a unit asked for one


def _trainer() -> Any:
    """This process's :class:`Trainer` actor, started on this node if there is none."""
    global _ACTOR
    if _ACTOR is None:
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        _ACTOR = ray.remote(num_cpus=0, max_restarts=0)(Trainer).options(scheduling_strategy=here).remote()
    return _ACTOR


def _retire() -> None:
    """Kill this process's Trainer actor (if any); the next group starts a new one."""
    global _ACTOR
    actor, _ACTOR = _ACTOR, None
    if actor is not None:
        ray.kill(actor)


_LOCAL: Trainer | None = None  # this process's own trainer, where it trains its units itself


def train_groups(
    groups: list[list[dict[str, Any]]], splits: tuple[Split, ...], settings: dict[str, Any],
    row: dict[str, Any], seconds: float, separate: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, list], int, int]:  # fmt: skip
    """Train the first of ``groups`` in this process's trainer (:meth:`Trainer.train_groups`), as
    many as fit in about ``seconds``: their rows, their curves' columns, how many groups were
    trained (at least one) and the trainer's PID. With ``separate`` (a grid where
    :func:`leafbn.tuning.spaces.separate_trainer` says so) the trainer is a process of its own: one
    left above :func:`trainer_limit_gb` is replaced afterwards, one that died (its error is
    raised) at the next call. Without, this process trains them itself."""
    needed = {int(group[0]["split"]): splits[int(group[0]["split"])] for group in groups}
    if not separate:
        global _LOCAL
        _LOCAL = _LOCAL or Trainer()
        rows, curves, done, pid, _ = _LOCAL.train_groups(groups, needed, settings, row, seconds)
        return rows, curves, done, pid
    try:
        call = _trainer().train_groups.remote(groups, needed, settings, row, seconds)
        rows, curves, done, pid, rss = ray.get(call)
    except BaseException:
        _retire()
        raise
    if rss > trainer_limit_gb():
        _retire()
    return rows, curves, done, pid
