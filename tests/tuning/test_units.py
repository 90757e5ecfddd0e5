"""Runs packed into units: the plan, the durable record, and a study killed with SIGKILL then resumed."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import psutil
import pytest

from leafbn.config import StudyConfig
from leafbn.results.table_writer import write_unit_tables
from leafbn.results.tables import CURVE_COLUMNS, TRIAL_COLUMNS, load_tables
from leafbn.tuning.units import (
    UNIT_KEY,
    UnitRecord,
    finished_units,
    grid_runs,
    iter_units,
    plan_units,
    run_curves,
    run_row,
    start_counts,
    unit_size,
)

ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, str(ROOT / "study" / "run.py")]


def test_units_cover_every_run_once_and_never_mix_programs():
    config = StudyConfig(space="full", depth=(1, 2), width=(25, 50), seeds=3, splits=2)
    runs = grid_runs(config)
    assert len(runs) == len(config.trial_configs())
    assert len({r["run_id"] for r in runs}) == len(runs)
    units = plan_units(runs, size=5)
    covered = [i for start, stop in units for i in range(start, stop)]
    assert covered == list(range(len(runs)))  # each run once, in order
    for start, stop in units:
        assert 1 <= stop - start <= 5
        assert len({tuple(r[k] for k in UNIT_KEY) for r in runs[start:stop]}) == 1


def test_unit_size_keeps_cpus_busy_and_units_short():
    assert unit_size(4000, cpus=2, run_seconds=0.03) == 250  # capped by runs: a small record
    assert unit_size(240, cpus=2, run_seconds=0.03) == 15  # 8 units per CPU
    assert unit_size(240, cpus=2, run_seconds=10.0) == 6  # at most a minute of work
    assert unit_size(3, cpus=16, run_seconds=0.03) == 1


def test_the_record_writes_a_unit_once_and_counts_its_starts(tmp_path):
    record = UnitRecord(str(tmp_path))
    assert record.start(3, "t3") == 1 and record.start(3, "t3") == 2  # a retry
    assert record.finish(3, {"unit": 3, "rows": [], "curves": {}})
    assert not record.finish(3, {"unit": 3, "rows": [{"x": 1}], "curves": {}})  # the first one stays
    assert record.start(3, "t3") == 0  # finished: nothing to train
    assert finished_units(tmp_path) == [3] and start_counts(tmp_path) == {3: 2}
    with open(tmp_path / "units" / "starts.log", "a") as log:
        log.write("4\tt4")  # a line cut by a crash
    assert UnitRecord(str(tmp_path)).starts == {3: 2}


def epoch(e, train, val, acc):
    return SimpleNamespace(epoch=e, train_loss=train, val_loss=val, val_accuracy=acc)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tables_stream_from_the_record_and_load_back(tmp_path, fmt):
    config = StudyConfig(lr=(0.1, 100.0), seeds=2, epochs=2)
    runs = grid_runs(config)
    record = UnitRecord(str(tmp_path))
    settings = {"drop_last": False, "epochs": 2}
    for unit, (start, stop) in enumerate(plan_units(runs, 2)):
        rows, curves = [], {}
        for run in runs[start:stop]:
            epochs = [epoch(1, 2.0, 1.5, 0.5), epoch(2, 1.0, 1.0, 0.6)]
            if run["lr"] == 100.0:
                epochs[1] = epoch(2, math.inf, math.nan, 0.0)
            rows.append(run_row(run, settings, epochs, 0.5, "node", f"t{unit}", 0))
            run_curves(run, epochs, curves)
        record.finish(unit, {"unit": unit, "rows": rows, "curves": curves})
    assert write_unit_tables(tmp_path, iter_units(tmp_path), fmt) == len(runs)
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert list(trials.columns) == TRIAL_COLUMNS and len(trials) == 8 and trials["trial_id"].is_unique
    wild = trials[trials["lr"] == 100.0]
    assert wild["diverged"].all() and wild["final_val_loss"].isna().all()
    assert (wild["diverged_epoch"] == 2).all()
    tame = trials[trials["lr"] == 0.1]
    assert (tame["final_val_loss"] == 1.0).all() and (tame["best_epoch"] == 2).all()
    with pytest.warns(UserWarning, match="config.json"):
        loaded, curves, _ = load_tables(tmp_path)
    assert (tmp_path / ("curves.parquet" if fmt == "parquet" else "curves.csv")).is_file()
    assert list(curves.columns) == CURVE_COLUMNS and len(curves) == 16
    assert set(curves["trial_id"]) == set(loaded["trial_id"])


def _units_done(path: Path) -> dict[int, str]:
    """Finished unit → its record's text."""
    return {u: (path / "units" / f"u{u:06d}.json").read_text() for u in finished_units(path)}


def _kill_when(study: subprocess.Popen, ready, deadline_s: float = 300) -> None:
    """SIGKILL the driver alone once ``ready()``; its Ray processes must end with it."""
    try:
        deadline = time.monotonic() + deadline_s
        while not ready() and study.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert study.poll() is None, "the study ended before it could be killed: make it longer"
        ray_processes = psutil.Process(study.pid).children(recursive=True)
        assert any("raylet" in p.name() or "gcs_server" in p.name() for p in ray_processes)
        study.send_signal(signal.SIGKILL)  # the driver alone, as the OOM killer would
        study.wait(timeout=30)
        _, alive = psutil.wait_procs(ray_processes, timeout=15)  # its watcher ends them
        assert not alive, [p.name() for p in alive]
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*RUN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def _resume(args: list[str], path: Path, expected: int) -> tuple[pd.DataFrame, str]:
    """``--resume`` the study in ``path`` to its end: its trials.csv (checked) and its output."""
    again = subprocess.run([*RUN, *args, "--resume"], capture_output=True, text=True, timeout=600,
                           stdin=subprocess.DEVNULL)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    trials = pd.read_csv(path / "trials.csv")
    assert len(trials) == expected and trials["trial_id"].is_unique
    assert not trials.duplicated(["lr", "bn", "split", "seed"]).any()  # each run once
    assert (trials["epochs_run"] > 0).all()
    meta = json.loads((path / "config.json").read_text())
    assert meta["run"]["complete"] and meta["run"]["trials_finished"] == expected
    return trials, again.stdout


@pytest.mark.cluster
def test_a_study_killed_before_its_first_unit_finished_resumes(tmp_path):
    args = ["--lr", "0.1", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path), "--name", "early",
            "--num-cpus", "1"]  # fmt: skip
    path = tmp_path / "early"
    _kill_when(_start(args), lambda: (path / "ray" / "tuner.pkl").exists())
    assert (path / "config.json").is_file() and not finished_units(path)
    _resume(args, path, expected=2)


def test_a_grid_over_initialisations_keeps_each_runs_own():
    config = StudyConfig(lr=(0.1,), bn=(True,), init=("uniform", "he_normal"), seeds=2, epochs=2)
    runs = grid_runs(config)
    for start, stop in plan_units(runs, size=4):
        assert len({r["init"] for r in runs[start:stop]}) == 1  # one initialisation per unit
    rows = [
        run_row(run, {"drop_last": False, "epochs": 2}, [epoch(1, 1.0, 1.0, 0.5)], 0.1, "n", "t", 0)
        for run in runs
    ]
    assert sorted(row["init"] for row in rows) == ["he_normal", "he_normal", "uniform", "uniform"]


def test_an_interrupted_unit_study_names_no_never_started_unit(monkeypatch, tmp_path):
    """Ray Tune's reader warns once per unit that never started (no result file) when a study is
    interrupted: hundreds of lines for a big grid. Inside run_units that warning is dropped."""
    import logging
    from unittest import mock

    from leafbn.tuning import unit_study

    def fit():
        missing = "\n".join(f"- u{i}: FileNotFoundError('no result.json')" for i in range(3))
        logging.getLogger("ray.tune.analysis.experiment_analysis").warning(
            f"Failed to fetch metrics for 3 trial(s):\n{missing}"
        )
        return []

    monkeypatch.setattr(unit_study, "ray", mock.MagicMock())
    monkeypatch.setattr(unit_study, "NodeAffinitySchedulingStrategy", mock.MagicMock())
    monkeypatch.setattr(unit_study, "_unit_tuner", lambda *a, **k: SimpleNamespace(fit=fit))
    the_plan = SimpleNamespace(units=[(0, 2), (2, 4)], runs=[{}] * 4)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # Ray's loggers do not propagate
    ray_reader = logging.getLogger("ray.tune.analysis.experiment_analysis")
    ray_reader.addHandler(handler)
    try:
        assert unit_study.run_units(None, tmp_path, (), the_plan, echo=lambda line: None) == {}
        fit()  # outside run_units the warning still goes out: the handler sees it
    finally:
        ray_reader.removeHandler(handler)
    assert len(seen) == 1 and seen[0].startswith("Failed to fetch metrics")
