"""Search spaces: named sets of axis values, their Optuna form, and what a space costs.

``seed`` is the blog's grid (learning rate × BN at the seed architecture); ``full`` adds hidden
depth, hidden width, BN momentum and BN placement as axes. Command-line axis flags narrow or
override any of them. Google's tuning playbook's terms: BN is the scientific axis, the learning
rate and the seed are nuisance axes, and the architecture axes are what the answer may depend on.
"""

from __future__ import annotations

import math
from typing import Any

from leafbn.config import SPACES, TRIAL_FIELDS, StudyConfig, steps_per_epoch

__all__ = [
    "SPACES", "space_axes", "optuna_space", "objective", "WORST_LOSS", "estimate_seconds", "run_seconds",
    "program_count", "grid_estimate",
]  # fmt: skip

#: The cross-entropy of giving the true class probability 1e-7 (Keras' epsilon): the objective's
#: ceiling. A diverged trial is worth exactly this to Optuna and ASHA, so they learn the region is
#: bad without ever seeing NaN or inf, and no finite loss counts as worse than diverging.
WORST_LOSS = -math.log(1e-7)


def space_axes(name: str) -> dict[str, tuple]:
    """Every axis of space ``name``: its own values, else the StudyConfig default."""
    if name not in SPACES:
        raise KeyError(name)
    defaults = StudyConfig()
    return {axis: SPACES[name].get(axis, getattr(defaults, axis)) for axis in TRIAL_FIELDS}


def objective(val_loss: float) -> float:
    """The value a searcher minimises: the validation loss capped at :data:`WORST_LOSS`, which is
    also the value of a non-finite (diverged) loss."""
    return min(val_loss, WORST_LOSS) if math.isfinite(val_loss) else WORST_LOSS


def optuna_space(config: StudyConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optuna distributions for the axes with several values, and the fixed values of the rest.

    The learning rate is log-uniform between the smallest and largest ``config.lr`` (a single
    value stays fixed); every other axis is categorical over its values.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    searched: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    for axis in TRIAL_FIELDS:
        values = getattr(config, axis)
        if len(values) == 1:
            fixed[axis] = values[0]
        elif axis == "lr":
            searched[axis] = FloatDistribution(min(values), max(values), log=True)
        else:
            searched[axis] = CategoricalDistribution(list(values))
    return searched, fixed


# A minibatch step's cost, one thread: a fixed part, a part per Dense layer, one per BN layer, and
# one per multiply-add. Fitted (least squares, each shape's median run) to the full space × 5 seeds
# on Kaggle (batch 10, 100 epochs, lr <= 0.01: no run stopped early; 2026-12-06, the 2-core
# development machine, docs/benchmarks.md): every shape within 0.88-1.06 of it; the seed network
# 89 µs (BN off) and 100 µs (BN on), as the trainer benchmark measures it (79 and 104).
_STEP_S, _LAYER_S, _BN_LAYER_S, _MAC_S = 24.5e-6, 2.65e-6, 2.8e-6, 0.59e-9


def step_seconds(depth: int, width: int, bn: bool) -> float:
    """One minibatch step of a network of ``depth`` hidden layers of ``width`` units (BN after each
    when ``bn``), 192 inputs and 99 classes, on one thread: seconds (see :data:`_STEP_S`)."""
    widths = [192] + [width] * depth + [99]
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return _STEP_S + _LAYER_S * (depth + 1) + (_BN_LAYER_S * depth if bn else 0.0) + _MAC_S * macs


_COMPILE_S = 2.5  # per worker and architecture, with an empty XLA cache
_START_S = 8.0  # Ray's start and end, worker processes importing TensorFlow, the tables


def estimate_seconds(
    config: StudyConfig, trials: list[dict[str, Any]], n_train: int, cpus: int, n_trials: int | None = None
) -> float:
    """A rough wall-time estimate, in seconds, of ``n_trials`` trials like ``trials`` (default: all
    of them) on ``cpus`` parallel workers."""
    total = 0.0
    for t in trials:
        total += _steps_seconds(config, t, n_train)
    if n_trials is not None and trials:
        total *= n_trials / len(trials)
    architectures = {(t["depth"], t["width"], t["bn"], t["bn_momentum"], t["bn_placement"]) for t in trials}
    # Every worker compiles each architecture it meets, in parallel with the others.
    return total / max(cpus, 1) + _COMPILE_S * len(architectures) + _START_S


# A grid study's runs are looped through the trainer in units (leafbn.tuning.units): besides its steps, a
# run costs the trainer's per-call work, a unit a Ray trial's start and end and its record's writes.
# Measured on the 2-core development machine (docs/benchmarks.md, benchmarks/bench_scale.py).
_RUN_OVERHEAD_S = 0.02
_UNIT_OVERHEAD_S = 0.15
#: A grid's start and end: Ray, a worker's TensorFlow import, the first compile, the tables (the
#: first unit's record came 17-24 s after the command, 1-7 s of it that unit's runs, at a load of 4-6).
_UNITS_START_S = 15.0
#: Resident memory: the driver (Ray, pandas, the tables streamed unit by unit), a unit trial's own
#: process (Ray, numpy: no TensorFlow), a trainer process (leafbn.tuning.trainer_process) with
#: TensorFlow imported, and what each program a trainer compiles adds to it for good: evicting a
#: program does not give its memory back (XLA's in-memory cache; ~0.02-0.03 GB per program measured,
#: docs/benchmarks.md), so a trainer is replaced once it passes its limit (``LEAFBN_TRAINER_GB``).
DRIVER_GB, UNIT_GB, WORKER_GB, PROGRAM_GB = 0.6, 0.3, 0.8, 0.031


def _steps_seconds(config: StudyConfig, run: dict[str, Any], n_train: int) -> float:
    """Every minibatch step of one run (or trial) of ``config``'s epochs on one CPU, seconds."""
    steps = config.epochs * steps_per_epoch(n_train, run["batch_size"], config.drop_last)
    return steps * step_seconds(run["depth"], run["width"], run["bn"])


def run_seconds(config: StudyConfig, run: dict[str, Any], n_train: int) -> float:
    """One run's estimated time on one CPU (its steps and the trainer's per-call work), seconds."""
    return _steps_seconds(config, run, n_train) + _RUN_OVERHEAD_S


#: A run stops at the first epoch whose loss is not finite (it diverged), so a sweep over learning
#: rates costs less than its epochs. The share of its steps' time a run is expected to spend, by
#: learning rate: all of it up to ~0.27, SHARE_AT_1 at 1, times SHARE_PER_DECADE a decade above,
#: never below SHARE_FLOOR. Measured over the full space × 5 seeds on Kaggle (7,875 runs,
#: 2026-12-06, docs/benchmarks.md; BN on and off together): 0.97 at 0.1, 0.51 at 1, 0.14 at 10,
#: 0.036 at 100, 0.030 at 1000.
SHARE_AT_1, SHARE_PER_DECADE, SHARE_FLOOR = 0.5, 0.28, 0.03


def epochs_share(lr: float) -> float:
    """The share of its epochs' time a run of learning rate ``lr`` is expected to train (see
    :data:`SHARE_AT_1`): 1 for low rates, less for high ones, where runs diverge and stop early."""
    return min(1.0, max(SHARE_FLOOR, SHARE_AT_1 * SHARE_PER_DECADE ** math.log10(lr)))


def program_count(runs: list[dict[str, Any]]) -> int:
    """Compiled programs a grid needs: one per network shape, BN setting and batch size."""
    return len({(r["depth"], r["width"], r["bn"], r["bn_placement"], r["batch_size"]) for r in runs})


def grid_seconds(
    config: StudyConfig, runs: list[dict[str, Any]], units: int, n_train: int, cpus: int,
    diverging: bool = True,
) -> float:  # fmt: skip
    """Estimated wall time (seconds) of a grid study of ``runs`` in ``units`` units on ``cpus`` CPUs
    of one machine: runs diverging as :func:`epochs_share` expects, or, with ``diverging=False``,
    every run training all its epochs (an upper bound)."""
    share = epochs_share if diverging else (lambda lr: 1.0)
    work = sum(_steps_seconds(config, run, n_train) * share(run["lr"]) + _RUN_OVERHEAD_S for run in runs)
    workers = max(1, min(cpus, units))
    # every worker compiles (in parallel with the others) each program it meets: most of them
    return (work + units * _UNIT_OVERHEAD_S) / workers + _COMPILE_S * program_count(runs) + _UNITS_START_S


def _all_programs_gb(programs: int) -> float:
    """A trainer process that compiled ``programs`` programs (and keeps them all), GB."""
    return WORKER_GB + PROGRAM_GB * programs


def separate_trainer(programs: int) -> bool:
    """Whether a grid of ``programs`` compiled programs trains each unit trial's runs in a trainer
    process of its own (:mod:`leafbn.tuning.trainer_process`): only where a process that compiled
    them all could pass the trainer's limit (``LEAFBN_TRAINER_GB``). Below that, the trial's own
    process trains, as a trainer process would cost the study's first unit a process start."""
    from leafbn.tuning.trainer_process import trainer_limit_gb

    return _all_programs_gb(programs) > trainer_limit_gb()


def grid_estimate(
    config: StudyConfig, runs: list[dict[str, Any]], units: int, n_train: int, cpus: int
) -> tuple[float, float]:
    """Estimated wall time (seconds, :func:`grid_seconds`, runs diverging as expected) and peak
    memory (GB, every process of the study together) of a grid study of ``runs`` in ``units``
    units on ``cpus`` CPUs of one machine."""
    from leafbn.tuning.trainer_process import trainer_limit_gb

    workers, programs = max(1, min(cpus, units)), program_count(runs)
    # every trainer meets (nearly) every program and keeps what compiling it took, up to its limit
    trainer = min(_all_programs_gb(programs), trainer_limit_gb() + PROGRAM_GB)
    memory = DRIVER_GB + workers * ((UNIT_GB if separate_trainer(programs) else 0.0) + trainer)
    return grid_seconds(config, runs, units, n_train, cpus), memory
