"""One Ray Tune trial: train a configuration's networks (one per seed) and report as they go.

Ray Tune runs :func:`trainable` in its worker processes; this module imports only what a worker
needs (TensorFlow comes with :mod:`leafbn.train.trainer`, imported when the first trial starts), so a
worker starts without the driver's modules (Optuna, pandas, the tables, the report).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import ray
from ray import tune

from leafbn.config import AXES, TRIAL_FIELDS, flat_config, trial_seeds
from leafbn.tuning.spaces import objective
from leafbn.tuning.trainer_process import train_groups

if TYPE_CHECKING:
    from leafbn.data.splits import Split

__all__ = ["trainable", "train_group_with", "unit_trainable", "worker_trainer"]

#: Ray Tune can stop a trial (Ctrl-C, SIGTERM, ASHA) only when it reports: a trial reports at least
#: this often, whatever ``report_every`` says, and trains at most CHUNK_EPOCHS epochs per call of its
#: compiled program between two looks at the clock.
STOPPABLE_S = 1.0
CHUNK_EPOCHS = 10


def _params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's own settings, as it reports them with every result (the tables take them from there)."""
    return {
        **{axis.name: axis.type(config.get(axis.name, axis.default)) for axis in AXES},
        "drop_last": bool(config.get("drop_last", False)), "epochs": int(config["epochs"]),
        "split": int(config.get("split") or 0), "momentum": float(config["momentum"]),
        "decay": float(config["decay"]),
    }  # fmt: skip


@contextmanager
def _not_installed(*names: str) -> Iterator[None]:
    """Inside, importing ``names`` fails as if they were not installed, unless already imported;
    afterwards they import as usual."""
    absent = [name for name in names if name not in sys.modules]
    for name in absent:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not installed"
    try:
        yield
    finally:
        for name in absent:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def worker_trainer() -> ModuleType:
    """:mod:`leafbn.train.trainer`, imported as a Ray worker needs it.

    Keras imports scikit-learn (for its scikit-learn wrappers) and IPython (to show its file editor
    in a notebook) whenever they are installed, and works without either: 1.3 s of every worker's
    start (measured) for code a trainer never calls. A worker is a process of its own, so Keras is
    imported there without them; in any other process leafbn.train.trainer imports Keras as usual.
    """
    with _not_installed("sklearn", "IPython"):
        from leafbn.train import trainer as train
    return train


def trainable(config: dict[str, Any], splits: tuple[Split, ...]) -> None:
    """Ray Tune function trainable: train a trial's networks, one per seed, on ``splits[config["split"]]``.

    ``config`` holds the trial's axes (``lr``, ``bn``, ``depth``, ``width``, ``bn_momentum``,
    ``bn_placement``, ``batch_size``), its ``split`` and ``seeds`` (or one ``seed``), and the
    study's ``epochs``, ``drop_last``, ``momentum``, ``decay`` and ``report_every`` (a grid trial's
    own values arrive under ``"trial"``, an Optuna trial's flat: :func:`leafbn.config.flat_config`
    makes them one shape). The networks train together, as one XLA program
    (:func:`leafbn.train.trainer.train_networks`). Each report carries the trial's ``params`` (its settings),
    the latest ``epoch``, the median over its networks of the validation loss (``val_loss``) and of
    the ``objective`` (what Optuna and ASHA minimise; a diverged network counts as
    :data:`leafbn.tuning.spaces.WORST_LOSS`), ``diverged`` (every network has), the trainer's cumulative
    ``time_s``, the Ray ``node_id``, and per network (``networks``) its ``seed``, ``diverged`` and a
    ``curve`` list with every epoch since the previous report.
    """
    trainer = worker_trainer()  # here, in the worker: the driver never needs TensorFlow
    start = time.perf_counter()
    flat = flat_config(config)
    params, seeds = _params(flat), trial_seeds(flat)
    split = splits[params["split"]]
    every = int(flat.get("report_every", 1))
    report = _reporter(params, seeds, every, start, ray.get_runtime_context().get_node_id())
    trainer.train_networks(
        _model_spec(split, params),
        split.x_train,
        split.y_train,
        split.x_val,
        split.y_val,
        lr=params["lr"],
        seeds=seeds,
        epochs=params["epochs"],
        batch_size=params["batch_size"],
        drop_last=params["drop_last"],
        momentum=params["momentum"],
        decay=params["decay"],
        on_epoch=report,
        chunk=min(every, CHUNK_EPOCHS),
    )


def _model_spec(split: Split, values: dict[str, Any]) -> Any:
    """The :class:`leafbn.train.model.ModelSpec` of a run with ``values`` (its axes) on ``split``:
    the axes that are ModelSpec fields, and the split's feature and class counts."""
    from leafbn.train.model import ModelSpec  # imported with the trainer

    architecture = {f.name for f in dataclasses.fields(ModelSpec)} & set(TRIAL_FIELDS)
    return ModelSpec(
        n_features=split.x_train.shape[1],
        n_classes=int(max(split.y_train.max(), split.y_val.max())) + 1,
        **{k: values[k] for k in TRIAL_FIELDS if k in architecture},
    )


def _reporter(
    params: dict[str, Any], seeds: list[int], every: int, start: float, node_id: str
) -> Callable[[list], None]:
    """The ``on_epoch`` callback of :func:`trainable`: it keeps each network's epochs and reports
    them to Ray Tune every ``every`` epochs (and at the end, when a network diverges, or
    STOPPABLE_S after the last report)."""
    epochs = params["epochs"]
    pending: list[list] = [[] for _ in seeds]  # per network, its epochs since the last report
    diverged = [False] * len(seeds)
    last_report = time.perf_counter()

    def report(results: list) -> None:
        nonlocal last_report
        # One Ray Tune report costs ~7 ms of framework time, as much as an epoch: report every
        # `every` epochs (and at the end, when a network diverges, or STOPPABLE_S after the last
        # report), each carrying every epoch since.
        # `results` holds this epoch's EpochResult per network, None for one that diverged before.
        newly = False
        for i, r in enumerate(results):
            if r is not None:
                pending[i].append(r)
                newly |= not r.finite
                diverged[i] |= not r.finite
        epoch = max(r.epoch for r in results if r is not None)
        due = time.perf_counter() - last_report >= STOPPABLE_S
        if max(map(len, pending)) < every and epoch < epochs and not newly and not due:
            return
        last = [p[-1] if p else None for p in pending]
        losses = [r.val_loss if r is not None and r.finite else math.inf for r in last]
        tune.report(
            {
                "epoch": epoch,
                "val_loss": float(np.median(losses)),
                "objective": float(np.median([objective(v) for v in losses])),
                "diverged": all(diverged),
                "time_s": time.perf_counter() - start,
                "node_id": node_id,
                "params": params,
                "networks": [
                    {
                        "seed": seed,
                        "diverged": diverged[i],
                        "curve": [[e.epoch, e.train_loss, e.val_loss, e.val_accuracy] for e in pending[i]],
                    }
                    for i, seed in enumerate(seeds)
                ],
            }
        )
        for p in pending:
            p.clear()
        last_report = time.perf_counter()

    return report


def _same_settings(runs: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """``runs`` (in unit order) as groups that train side by side: consecutive runs that differ only
    in their seed, at most ``size`` per group."""
    group: list[dict[str, Any]] = []
    for run in runs:
        same = group and all(group[0][k] == run[k] for k in run if k not in ("seed", "run_id"))
        if group and (not same or len(group) == size):
            yield group
            group = []
        group.append(run)
    if group:
        yield group


def unit_trainable(
    config: dict[str, Any], splits: tuple[Split, ...], runs: list[dict[str, Any]],
    units: list[tuple[int, int]], record: Any, settings: dict[str, Any],
) -> None:  # fmt: skip
    """Ray Tune function trainable of a grid study: train unit ``config["unit"]`` (the runs
    ``runs[start:stop]`` of ``units``), one group after another in this process's trainer
    (:func:`leafbn.tuning.trainer_process.train_groups`), and hand its rows and curves to the study's
    ``record`` (a :class:`leafbn.tuning.units.UnitRecord` actor) before its last report.

    ``settings``: the study's ``epochs``, ``drop_last``, ``momentum``, ``decay``,
    ``seeds_per_trial`` (runs differing only in their seed train side by side, that many at a time)
    and ``separate_trainer`` (train in a trainer process, not in this one).
    A unit already recorded as finished trains nothing. Reports stay small (no curves,
    :func:`_unit_summary`): about once a second while it trains (so Ray Tune can stop it), and at
    its end.
    """
    unit = int(flat_config(config)["unit"])
    start, stop = units[unit]
    node_id = ray.get_runtime_context().get_node_id()
    ray_trial = tune.get_context().get_trial_id() or ""
    started = time.time()
    attempt = ray.get(record.start.remote(unit, ray_trial))
    rows: list[dict[str, Any]] = []
    curves: dict[str, list] = {}
    trainer_pids: list[int] = []  # the trainer process of each group (:mod:`.trainer_process`)
    if attempt:  # 0: finished before (a retry after the record was written)
        row = {"node_id": node_id, "ray_trial": ray_trial, "retries": attempt - 1}
        last_report = time.perf_counter()
        groups = list(_same_settings(list(runs[start:stop]), int(settings.get("seeds_per_trial") or 1)))
        while groups:
            more_rows, more_curves, done, trainer_pid = train_groups(
                groups, splits, settings, row, STOPPABLE_S, bool(settings.get("separate_trainer", True))
            )
            groups = groups[done:]
            rows.extend(more_rows)
            for column, values in more_curves.items():
                curves.setdefault(column, []).extend(values)
            trainer_pids.append(trainer_pid)
            if time.perf_counter() - last_report >= STOPPABLE_S:
                tune.report(_unit_summary(unit, stop - start, rows, started, node_id, attempt))
                last_report = time.perf_counter()
        ray.get(record.finish.remote(unit, {
            "unit": unit, "attempt": attempt, "ray_trial": ray_trial, "node_id": node_id,
            "started": started, "finished": time.time(), "rows": rows, "curves": curves,
            "trainer_pids": sorted(set(trainer_pids)),
        }))  # fmt: skip
    tune.report(_unit_summary(unit, stop - start, rows, started, node_id, attempt))


def _unit_summary(
    unit: int, runs: int, rows: list[dict[str, Any]], started: float, node_id: str, attempt: int
) -> dict[str, Any]:
    """A unit's report so far (a few hundred bytes, every report alike): ``unit``, its ``runs``,
    ``runs_done``, how many ``diverged``, the best final ``val_loss`` with that run's ``lr`` and
    ``bn``, ``time_s`` since it started, ``node_id`` and ``attempt`` (0: recorded before, not trained)."""
    finals = [(r["final_val_loss"], r["lr"], r["bn"]) for r in rows if math.isfinite(r["final_val_loss"])]
    best = min(finals, default=(math.inf, None, None))
    return {
        "unit": unit, "runs": runs, "runs_done": len(rows), "diverged": sum(r["diverged"] for r in rows),
        "val_loss": best[0], "lr": best[1], "bn": best[2], "time_s": time.time() - started,
        "node_id": node_id, "attempt": attempt,
    }  # fmt: skip


def train_group_with(
    trainer: ModuleType, group: list[dict[str, Any]], split: Split, settings: dict[str, Any]
) -> list:
    """Train ``group`` (runs differing only in their seed) on ``split``: one TrialResult per run."""
    first = group[0]
    return trainer.train_networks(
        _model_spec(split, first), split.x_train, split.y_train, split.x_val, split.y_val,
        lr=float(first["lr"]), seeds=[int(run["seed"]) for run in group], epochs=int(settings["epochs"]),
        batch_size=int(first["batch_size"]), drop_last=bool(settings["drop_last"]),
        momentum=float(settings["momentum"]), decay=float(settings["decay"]),
    )  # fmt: skip
