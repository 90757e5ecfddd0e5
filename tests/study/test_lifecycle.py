"""A study's life: Optuna search, a grid too large, SIGKILL then --resume, a storage URI as --out."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from leafbn.tuning.spaces import WORST_LOSS
from leafbn.tuning.units import finished_units, start_counts
from tests.study.test_study import run_main, run_main_output
from tests.tuning.test_units import _kill_when, _resume, _start, _units_done

ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, str(ROOT / "study" / "run.py")]


def test_too_large_a_grid_is_announced_and_refused(tmp_path):
    done = subprocess.run(
        [*RUN, "--space", "full", "--seeds", "10", "--out", str(tmp_path)], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert "15750 runs in" in line and "compiled programs" in line and "GB at peak on" in line
    assert "CPUs" in line and "> --max-runs 10000" in line
    assert not any(tmp_path.iterdir())  # nothing written
    # the old name still works, with a warning, and counts runs
    done = subprocess.run(
        [*RUN, "--lr", "0.1", "--seeds", "3", "--max-trials", "5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "--max-trials is deprecated" in done.stderr
    assert "6 runs in" in done.stderr and "> --max-runs 5" in done.stderr


@pytest.mark.cluster
def test_sigkill_then_resume_trains_only_the_unfinished_units(tmp_path, capsys):
    # 24 runs in 8 units of 3 (1 CPU); killed once a unit is recorded: the others are still to run
    args = ["--lr", "0.001,0.01,0.1,1", "--seeds", "3", "--epochs", "30", "--out", str(tmp_path),
            "--name", "killed", "--num-cpus", "1"]  # fmt: skip
    path = tmp_path / "killed"
    _kill_when(_start(args), lambda: len(finished_units(path)) >= 1)
    before = _units_done(path)
    assert 1 <= len(before) < 8 and not (path / "trials.csv").exists()

    code, err = run_main(capsys, *args, "--resume", "--epochs", "7", "--lr", "5,50")  # in this process
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--epochs 7 (the study's: 30)" in err and "--lr 5,50 (the study's: " in err
    assert not (path / "trials.csv").exists()  # refused before anything was written

    trials, out = _resume(args, path, expected=24)
    assert "24/24 done" in out  # the progress line counts the units finished before the kill
    after, starts = _units_done(path), start_counts(path)
    assert sorted(after) == list(range(8))
    for unit, text in before.items():  # finished units: recorded once, never started again
        assert after[unit] == text and starts[unit] == 1, unit
    assert all(json.loads(after[u])["attempt"] == starts[u] for u in after)
    meta = json.loads((path / "config.json").read_text())
    assert meta["run"]["units_expected"] == 8 and meta["run"]["unit_runs"] == 3
    # the killed session's seconds (to its last record) are part of wall_time_s
    assert meta["run"]["wall_time_s"] > meta["run"]["session_ended"] - meta["run"]["session_started"] + 1

    code, out, _ = run_main_output(capsys, *args, "--resume")
    assert code == 0 and "already complete" in out
    assert pd.read_csv(path / "trials.csv").equals(trials)

    code, err = run_main(capsys, *args)
    assert code == 2 and "--resume" in err


@pytest.mark.cluster
def test_sigterm_ends_the_study_as_ctrl_c_does_with_its_tables(tmp_path):
    epochs = 100
    # 16 trials: when the first one's results show, most are still to run
    args = ["--lr", "0.001,0.01", "--seeds", "4", "--epochs", str(epochs), "--out", str(tmp_path),
            "--name", "termed", "--num-cpus", "1"]  # fmt: skip
    path = tmp_path / "termed"
    study = subprocess.Popen([*RUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not finished_units(path) and study.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert study.poll() is None, "the study ended before it could be stopped: make it longer"
        study.send_signal(signal.SIGTERM)  # kill, a batch scheduler's stop, a closed session
        out, err = study.communicate(timeout=120)
    finally:
        if study.poll() is None:
            study.kill()
    assert study.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert "continue it with --resume" in err
    trials = pd.read_csv(path / "trials.csv")  # the tables of what finished, written at once
    assert len(trials) == 16 and (trials["epochs_run"] == epochs).sum() >= 1
    assert "not run to the end)" in out  # the summary marks the trials that did not finish


@pytest.mark.cluster
def test_an_optuna_study_on_a_storage_uri_keeps_everything_in_one_place(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    env = {**os.environ, "LEAFBN_STAGING": str(tmp_path / "staging")}
    args = ["--out", f"file://{store}", "--name", "opt", "--optuna", "6", "--lr", "0.001,1000",
            "--epochs", "3", "--max-concurrent", "2", "--num-cpus", "2", "--seeds-per-trial", "2",
            "--asha", "--report-every", "1"]  # fmt: skip
    done = subprocess.run([*RUN, *args, "--report"], capture_output=True, text=True, timeout=600, env=env,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    here = store / "opt"
    for name in ("config.json", "trials.csv", "curves.parquet", "tuner.pkl", "optuna.db", "report/report.md",
                 "report/report.html", "report/answer.json"):  # fmt: skip
        assert (here / name).is_file(), name
    assert f"copied to: file://{store}/opt" in done.stdout

    # Optuna drew six learning rates log-uniformly, each trained with 2 seeds, and never saw a NaN:
    # a trial's value is the median over its seeds of the capped loss (a diverged seed: the cap)
    trials = pd.read_csv(here / "trials.csv")
    assert len(trials) == 12 and trials["trial_id"].is_unique and trials["ray_trial"].nunique() == 6
    assert trials["lr"].between(0.001, 1000).all() and trials["lr"].nunique() == 6
    assert all(sorted(seeds) == [0, 1] for _, seeds in trials.groupby("ray_trial")["seed"])
    study = optuna.load_study(study_name="opt", storage=f"sqlite:///{here / 'optuna.db'}")
    values = [t.value for t in study.trials]
    assert len(values) == 6 and all(v is not None and math.isfinite(v) for v in values)
    assert all(v <= WORST_LOSS for v in values)
    last = trials["final_val_loss"].where(~trials["diverged"], WORST_LOSS).clip(upper=WORST_LOSS)
    medians = last.groupby(trials["lr"]).median()
    for t in study.trials:
        assert t.value == pytest.approx(medians[t.params["lr"]], rel=1e-6), t.params
    assert json.loads((here / "config.json").read_text())["study"]["optuna"] == 6

    monkeypatch.setenv("LEAFBN_STAGING", str(tmp_path / "elsewhere"))  # another machine: nothing local
    code, out, err = run_main_output(capsys, *args, "--resume")  # in this process: no Ray starts
    assert code == 0 and "already complete" in out, err[-2000:]

    code, err = run_main(capsys, "--out", "nosuchscheme://bucket/x")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--out nosuchscheme://bucket/x: cannot use this storage" in err
