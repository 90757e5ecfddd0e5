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
import psutil
import pytest

from leafbn.tuning.spaces import WORST_LOSS
from tests.study.test_study import run_main, run_main_output

ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, str(ROOT / "study" / "run.py")]


def test_too_large_a_grid_is_announced_and_refused(tmp_path):
    done = subprocess.run(
        [*RUN, "--space", "full", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert "7875 trials" in line and "CPUs" in line and "--max-trials" in line
    assert not any(tmp_path.iterdir())  # nothing written


def finished_trials(path: Path, epochs: int) -> dict[str, str]:
    """Trial folder → its result.json text, for trials that reported all their epochs."""
    out = {}
    for result in path.glob("*/result.json"):
        text = result.read_text()
        lines = text.strip().splitlines()
        try:
            last = json.loads(lines[-1]) if lines else {}
        except ValueError:  # a line being written
            continue
        if last.get("epoch") == epochs or last.get("diverged"):
            out[result.parent.name] = text
    return out


def recorded_finished(path: Path, epochs: int) -> dict[str, str]:
    """Like :func:`finished_trials`, for trials Ray Tune's latest experiment state records as done.

    Ray Tune writes that state periodically (``TUNE_GLOBAL_CHECKPOINT_S``): a trial that finished
    after the last write is unfinished to a restore, and runs again. So only these trials must not
    run again.
    """
    states = sorted(path.glob("experiment_state-*.json"))
    try:
        trials = (
            [json.loads(entry[0]) for entry in json.loads(states[-1].read_text())["trial_data"]]
            if states
            else []
        )
    except (ValueError, KeyError, IndexError, OSError):  # being written
        return {}
    done = {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}
    return {name: text for name, text in finished_trials(path, epochs).items() if name in done}


@pytest.mark.cluster
def test_sigkill_then_resume_runs_only_the_unfinished(tmp_path, capsys):
    epochs = 60
    args = ["--lr", "0.001,0.01,0.1,1", "--seeds", "2", "--seeds-per-trial", "2", "--epochs", str(epochs),
            "--out", str(tmp_path), "--name", "killed", "--num-cpus", "1"]  # fmt: skip
    path = tmp_path / "killed"
    # Ray Tune's "auto" period saves the experiment state no more often than every 10 s: with a
    # filled XLA cache the whole study can finish between two saves, with nothing recorded between.
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0.5"}
    study = subprocess.Popen([*RUN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, start_new_session=True, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while (
            len(recorded_finished(path, epochs)) < 2 and study.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.2)
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
    before = recorded_finished(path, epochs)
    assert 2 <= len(before) < 16 and not (path / "trials.csv").exists()

    code, err = run_main(capsys, *args, "--resume", "--epochs", "7", "--lr", "5,50")  # in this process
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--epochs 7 (the study's: 60)" in err and "--lr 5,50 (the study's: " in err
    assert not (path / "trials.csv").exists()  # refused before anything was written

    again = subprocess.run([*RUN, *args, "--resume"], capture_output=True, text=True, timeout=600,
                           stdin=subprocess.DEVNULL)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "16/16 done" in again.stdout  # the restored progress line still reports
    trials = pd.read_csv(path / "trials.csv")
    assert len(trials) == 16 and trials["trial_id"].is_unique
    assert ((trials["epochs_run"] == epochs) | trials["diverged"]).all()
    after = finished_trials(path, epochs)
    for name, text in before.items():  # finished trials were not run again
        assert after[name] == text, name
    meta = json.loads((path / "config.json").read_text())
    assert meta["run"]["complete"] and meta["run"]["trials_finished"] == 16
    assert meta["run"]["seeds_per_trial"] == 2  # 8 Ray trials, each training its 2 seeds side by side
    # the killed session's seconds (to its last saved state) are part of wall_time_s
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
        while not finished_trials(path, epochs) and study.poll() is None and time.monotonic() < deadline:
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
    for name in ("config.json", "trials.csv", "curves.csv", "tuner.pkl", "optuna.db", "report/report.md",
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
