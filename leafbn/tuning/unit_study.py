"""A grid study on Ray Tune in units: its plan, its budget, its Tuner, and its tables.

One Ray trial trains one unit of runs (:mod:`leafbn.tuning.units`); each finished unit's rows and curves
reach the study folder through a :class:`leafbn.tuning.units.UnitRecord` actor before the trial ends.
A resumed study trains only the units without a record (those that were in flight, and those
never started): it needs nothing of Ray Tune's saved state, so a study killed at any moment, even
before its first unit finished, resumes. Ray Tune's own experiment folder is ``OUT/NAME/ray``.
Optuna and ASHA studies keep one configuration per Ray trial (:mod:`leafbn.tuning`): they need
one objective per trial.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from leafbn.config import StudyConfig, flat_config
from leafbn.results.table_writer import write_unit_tables
from leafbn.tuning.loggers import logger_callbacks
from leafbn.tuning.progress import ProgressLine
from leafbn.tuning.session import StudyError, term_as_interrupt
from leafbn.tuning.spaces import grid_estimate, grid_seconds, program_count, run_seconds, separate_trainer
from leafbn.tuning.storage import experiment_path
from leafbn.tuning.trial import unit_trainable
from leafbn.tuning.trial_study import quiet_never_started
from leafbn.tuning.units import (
    UnitRecord,
    finished_units,
    grid_runs,
    iter_units,
    plan_units,
    run_row,
    unit_size,
)

__all__ = ["RAY_EXPERIMENT", "UnitPlan", "check_budget", "plan", "run_units", "write_tables"]

#: Ray Tune's experiment folder of a unit study, inside the study folder.
RAY_EXPERIMENT = "ray"


class UnitPlan:
    """A grid study's runs (:func:`leafbn.tuning.units.grid_runs`), ``size`` runs per unit at most, and its
    ``units`` (``(start, stop)`` slices of ``runs``)."""

    def __init__(self, config: StudyConfig, n_train: int, cpus: int, size: int | None = None) -> None:
        self.runs = grid_runs(config)
        mean = sum(run_seconds(config, r, n_train) for r in self.runs) / max(len(self.runs), 1)
        self.size = size or unit_size(len(self.runs), cpus, mean)
        self.units = plan_units(self.runs, self.size)
        self.programs = program_count(self.runs)

    def describe(self, config: StudyConfig, n_train: int, cpus: int) -> str:
        """``N runs in U units, P compiled programs, about T (T' if no run diverges) and G GB at
        peak on C CPUs``."""
        seconds, memory = grid_estimate(config, self.runs, len(self.units), n_train, cpus)
        most = grid_seconds(config, self.runs, len(self.units), n_train, cpus, diverging=False)
        return (
            f"{len(self.runs)} runs in {len(self.units)} units of <= {self.size}, {self.programs} compiled "
            f"programs, about {timedelta(seconds=int(seconds))} ({timedelta(seconds=int(most))} if no run "
            f"diverges) and {memory:.1f} GB at peak on {cpus} CPUs"
        )


def plan(config: StudyConfig, n_train: int, cpus: int, size: int | None = None) -> UnitPlan:
    """The study's :class:`UnitPlan`; ``size``: the runs per unit a study already chose (resume)."""
    return UnitPlan(config, n_train, cpus, size)


def check_budget(config: StudyConfig, n_train: int) -> None:
    """Raise :class:`StudyError` (one line, with the estimate) if the grid has more runs than
    ``config.max_runs``; estimated for this machine's CPUs (``--num-cpus``, else all)."""
    n_runs = len(config.trial_configs())
    if n_runs <= config.max_runs:
        return
    cpus = config.num_cpus or os.cpu_count() or 1
    raise StudyError(
        f"the grid has {plan(config, n_train, cpus).describe(config, n_train, cpus)} "
        f"(> --max-runs {config.max_runs}): narrow its axes (e.g. --depth 2,3 --width 50,100), "
        "use --optuna N, or raise --max-runs"
    )


def _unit_tuner(
    config: StudyConfig, splits: tuple, the_plan: UnitPlan, todo: list[int], record: Any,
    callbacks: list[tune.Callback],
) -> tune.Tuner:  # fmt: skip
    """A Tuner with one trial per unit of ``todo``, 1 CPU each, workers reused."""
    names = ("epochs", "drop_last", "momentum", "decay", "seeds_per_trial")
    settings = {k: getattr(config, k) for k in names}
    settings["separate_trainer"] = separate_trainer(the_plan.programs)
    trainable = tune.with_parameters(
        unit_trainable, splits=splits, runs=the_plan.runs, units=the_plan.units, record=record,
        settings=settings,
    )  # fmt: skip
    units = [{"unit": u, "runs": the_plan.units[u][1] - the_plan.units[u][0]} for u in todo]
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"trial": tune.grid_search(units)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=config.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=RAY_EXPERIMENT,
            storage_path=experiment_path(config),
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            # result.json per unit (a few small reports), and Ray Tune's other loggers on request
            callbacks=[JsonLoggerCallback(), *logger_callbacks(config), *callbacks],
            verbose=0,
        ),
    )


def run_units(
    config: StudyConfig, path: Path, splits: tuple, the_plan: UnitPlan, echo: Callable[[str], Any]
) -> dict[int, str]:
    """Train every unit of ``the_plan`` without a record in ``path``; returns the error of each unit
    that ended in error (unit → last line). Ctrl-C and SIGTERM end it early (what finished is kept)."""
    done = set(finished_units(path))
    todo = [u for u in range(len(the_plan.units)) if u not in done]
    if not todo:
        return {}
    already = sum(stop - start for u, (start, stop) in enumerate(the_plan.units) if u in done)
    progress = ProgressLine(len(the_plan.runs), echo=echo, already=already)
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    record = ray.remote(num_cpus=0)(UnitRecord).options(scheduling_strategy=here).remote(str(path))
    tuner = _unit_tuner(config, splits, the_plan, todo, record, [progress])
    errors: dict[int, str] = {}
    try:
        with term_as_interrupt(), quiet_never_started():  # units never started: no line each
            grid = tuner.fit()
        for result in grid:
            if result.error is not None:
                lines = str(result.error).strip().splitlines() or ["error"]
                errors[int(flat_config(result.config)["unit"])] = lines[-1][:300]
    except KeyboardInterrupt:
        echo("leafbn: interrupted; writing what finished (continue with --resume)")
    return errors


def _unfinished(
    config: StudyConfig, path: Path, the_plan: UnitPlan, errors: dict[int, str]
) -> Iterator[dict]:
    """A record-shaped entry per unit without a record: its runs' rows with 0 epochs run."""
    settings = {"drop_last": config.drop_last, "epochs": config.epochs}
    done = set(finished_units(path))
    for unit, (start, stop) in enumerate(the_plan.units):
        if unit not in done:
            rows = [run_row(run, settings, [], math.nan, "", "", 0) for run in the_plan.runs[start:stop]]
            for row in rows:
                row["error"] = errors.get(unit, "")
            yield {"rows": rows, "curves": {}}


def write_tables(
    config: StudyConfig, path: Path, the_plan: UnitPlan, errors: dict[int, str] | None = None
) -> tuple[int, int]:
    """Write ``trials.csv`` (every run: the finished ones', then a row with 0 epochs per run still
    to train) and the curves from the study's record; returns (finished runs, all runs)."""

    def entries() -> Iterator[dict]:
        yield from iter_units(path)
        yield from _unfinished(config, path, the_plan, errors or {})

    finished = sum(
        the_plan.units[u][1] - the_plan.units[u][0] for u in finished_units(path) if u < len(the_plan.units)
    )
    write_unit_tables(path, entries(), config.curves)
    return finished, len(the_plan.runs)
