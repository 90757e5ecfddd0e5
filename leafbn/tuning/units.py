"""Runs packed into units, and the study's own durable record of the units that finished.

A grid study's runs (configuration × split × seed) are trained in *units*: a unit is a slice of
runs that share every axis but the learning rate (network shape, BN settings, batch size and
initialisation: a worker keeps one compiled program for it), and one Ray trial trains one unit,
looping its runs through the trainer. Units are small enough that every CPU gets a few
(``UNITS_PER_CPU``) and that a lost unit costs little (``UNIT_SECONDS`` of work at most), so Ray
Tune sees hundreds of trials where a study has tens of thousands of runs.

What finished is leafbn's to record, not Ray Tune's (its experiment state lags by up to ~10 s,
and a study killed before it was first written could not be resumed): the study folder holds

* ``units/starts.log``: one line per start of a unit, ``unit<TAB>ray_trial<TAB>unix time``, each
  appended, flushed and fsynced before the unit trains;
* ``units/u000017.json``: one finished unit (its ``trials.csv`` rows and its curves, columnwise),
  written atomically (a temporary file fsynced, then renamed) when the unit ends.

:class:`UnitRecord` writes both; it runs as a Ray actor on the driver's node, so a worker on any
node hands its unit's results to the study folder without a shared filesystem. Resuming reads
``units/`` (:func:`finished_units`): no finished unit is trained again. This module imports
neither TensorFlow nor pandas: the driver, the record's actor and the workers all import it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from leafbn.config.axes import TRIAL_FIELDS, axis_names

__all__ = [
    "UNITS_DIR", "UNITS_PER_CPU", "UNIT_SECONDS", "MAX_UNIT_RUNS", "UnitRecord", "grid_runs", "unit_size",
    "plan_units", "finished_units", "read_unit", "iter_units", "start_counts", "run_row", "run_curves",
]  # fmt: skip

#: The folder of the record, inside the study folder.
UNITS_DIR = "units"
#: Units per CPU at least (when the grid has the runs for it): the last units finish close together.
#: Units of high learning rates end at their first diverged epoch, so units differ in cost; with 4
#: the seed study's last unit ran ~5 s alone on one of 2 CPUs (6-9% over the per-run code at a
#: load of 1-2), with 8 it came within 2% (docs/benchmarks.md).
UNITS_PER_CPU = 8
#: A unit holds at most this many seconds of estimated work: what a lost or interrupted unit costs.
UNIT_SECONDS = 60.0
#: And at most this many runs: its record stays a small file.
MAX_UNIT_RUNS = 250
#: Runs in one unit share these settings, every axis but the nuisance one (the learning rate, a
#: runtime input of the compiled program): one compiled program per worker, whatever the trainer keys.
UNIT_KEY = tuple(axis for axis in TRIAL_FIELDS if axis not in axis_names(role="nuisance"))
#: The grid's runs in this order: by unit key, then split, learning rate and seed.
_ORDER = (*UNIT_KEY, "split", *axis_names(role="nuisance"), "seed")


def grid_runs(config: Any) -> list[dict[str, Any]]:
    """Every run of ``config``'s grid (a :class:`leafbn.config.StudyConfig`) in unit order, each a
    dict of its axes, ``split``, ``seed`` and its ``run_id`` (``r000000`` …, its place in that
    order: the run's ``trial_id`` in both tables)."""
    runs = sorted(config.trial_configs(), key=lambda run: tuple(run[k] for k in _ORDER))
    return [dict(run, run_id=f"r{i:06d}") for i, run in enumerate(runs)]


def unit_size(n_runs: int, cpus: int, run_seconds: float) -> int:
    """Runs per unit: as many as gives each of ``cpus`` CPUs ``UNITS_PER_CPU`` units, but no more
    than ``UNIT_SECONDS`` of work (``run_seconds`` a run) nor ``MAX_UNIT_RUNS``; at least 1."""
    per_cpu = math.ceil(n_runs / max(cpus * UNITS_PER_CPU, 1))
    by_time = int(UNIT_SECONDS / max(run_seconds, 1e-6))
    return max(1, min(per_cpu, by_time, MAX_UNIT_RUNS))


def plan_units(runs: Sequence[dict[str, Any]], size: int) -> list[tuple[int, int]]:
    """The units of ``runs`` (in :func:`grid_runs` order) as ``(start, stop)`` slices: each run of
    one unit key, each key's runs cut into ``ceil(n / size)`` slices as equal as possible."""
    units: list[tuple[int, int]] = []
    start = 0
    while start < len(runs):
        key = tuple(runs[start][k] for k in UNIT_KEY)
        stop = start
        while stop < len(runs) and tuple(runs[stop][k] for k in UNIT_KEY) == key:
            stop += 1
        pieces = math.ceil((stop - start) / max(size, 1))
        bounds = [start + round(i * (stop - start) / pieces) for i in range(pieces + 1)]
        units += list(zip(bounds[:-1], bounds[1:]))
        start = stop
    return units


def _unit_file(folder: Path, unit: int) -> Path:
    return folder / UNITS_DIR / f"u{unit:06d}.json"


def finished_units(folder: str | Path) -> list[int]:
    """The units of the study in ``folder`` whose record is written, in order."""
    names = sorted((Path(folder) / UNITS_DIR).glob("u[0-9]*.json"))
    return [int(path.stem[1:]) for path in names]


def read_unit(folder: str | Path, unit: int) -> dict[str, Any]:
    """One finished unit's record: ``unit``, ``attempt``, ``ray_trial``, ``node_id``, ``started``,
    ``finished`` (unix times), ``rows`` (its ``trials.csv`` rows) and ``curves`` (column → list)."""
    return json.loads(_unit_file(Path(folder), unit).read_text())


def start_counts(folder: str | Path) -> dict[int, int]:
    """How often each unit was started (``units/starts.log``); a line cut by a crash is skipped."""
    counts: dict[int, int] = {}
    log = Path(folder) / UNITS_DIR / "starts.log"
    if log.is_file():
        for line in log.read_text().splitlines():
            first = line.split("\t", 1)[0]
            if line.count("\t") == 2 and first.isdigit():
                counts[int(first)] = counts.get(int(first), 0) + 1
    return counts


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UnitRecord:
    """Writes the study's record of units in ``folder`` (``units/``); a Ray actor on the driver's node.

    :meth:`start` and :meth:`finish` return only once what they wrote is on disk (fsync).
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        (self.folder / UNITS_DIR).mkdir(parents=True, exist_ok=True)
        self.starts = start_counts(self.folder)

    def start(self, unit: int, ray_trial: str) -> int:
        """Record that ``unit`` starts (in Ray trial ``ray_trial``); returns its attempt (1 the
        first time), or 0 if the unit already finished (nothing to train)."""
        if _unit_file(self.folder, unit).exists():
            return 0
        with open(self.folder / UNITS_DIR / "starts.log", "a") as log:
            log.write(f"{unit}\t{ray_trial}\t{time.time():.3f}\n")
            log.flush()
            os.fsync(log.fileno())
        self.starts[unit] = self.starts.get(unit, 0) + 1
        return self.starts[unit]

    def finish(self, unit: int, record: dict[str, Any]) -> bool:
        """Write ``unit``'s record atomically; False (and nothing written) if it was already written."""
        path = _unit_file(self.folder, unit)
        if path.exists():
            return False
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "w") as out:
            json.dump(record, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        _fsync_dir(path.parent)
        return True


def iter_units(folder: str | Path) -> Iterator[dict[str, Any]]:
    """Each finished unit's record (:func:`read_unit`), in unit order, one at a time."""
    for unit in finished_units(folder):
        yield read_unit(folder, unit)


def run_row(run: dict[str, Any], settings: dict[str, Any], epochs: Sequence[Any], time_s: float,
            node_id: str, ray_trial: str, retries: int) -> dict[str, Any]:  # fmt: skip
    """One run's ``trials.csv`` row (:data:`leafbn.results.tables.TRIAL_COLUMNS`) from its trainer epochs
    (:class:`leafbn.train.EpochResult` list); ``settings``: the study's ``drop_last`` and ``epochs``."""
    last = epochs[-1] if epochs else None
    finite = [e for e in epochs if math.isfinite(e.val_loss)]
    best = min(finite, key=lambda e: e.val_loss) if finite else None
    diverged = last is not None and not (math.isfinite(last.train_loss) and math.isfinite(last.val_loss))
    return {
        "trial_id": run["run_id"], "ray_trial": ray_trial,
        **{k: run[k] for k in TRIAL_FIELDS},
        "drop_last": bool(settings["drop_last"]), "epochs": int(settings["epochs"]),
        "split": int(run["split"]), "seed": int(run["seed"]),
        "final_val_loss": math.nan if last is None or diverged else last.val_loss,
        "best_val_loss": math.nan if best is None else best.val_loss,
        "best_epoch": None if best is None else best.epoch,
        "final_val_accuracy": math.nan if last is None or diverged else last.val_accuracy,
        "final_train_loss": math.nan if last is None else last.train_loss,
        "diverged": diverged, "diverged_epoch": last.epoch if diverged else None,
        "epochs_run": 0 if last is None else last.epoch, "time_s": time_s, "node_id": node_id,
        "retries": retries, "error": "",
    }  # fmt: skip


def run_curves(run: dict[str, Any], epochs: Sequence[Any], into: dict[str, list]) -> None:
    """Append one run's ``curves`` rows (one per epoch) to the columns in ``into``."""
    for e in epochs:
        for column, value in zip(
            ("trial_id", "split", "epoch", "train_loss", "val_loss", "val_accuracy"),
            (run["run_id"], int(run["split"]), e.epoch, e.train_loss, e.val_loss, e.val_accuracy),
        ):
            into.setdefault(column, []).append(value)
