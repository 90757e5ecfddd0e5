"""A unit trial trains in a trainer process of its own: replaced past its memory limit, and a lost
one costs its unit a retry, never a run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from leafbn.tuning.spaces import separate_trainer
from leafbn.tuning.trainer_process import TRAINER_GB, trainer_limit_gb
from leafbn.tuning.units import finished_units

ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, str(ROOT / "study" / "run.py")]


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("LEAFBN_TRAINER_GB", raising=False)
    assert trainer_limit_gb() == TRAINER_GB
    monkeypatch.setenv("LEAFBN_TRAINER_GB", "0.75")
    assert trainer_limit_gb() == 0.75
    for bad in ("0", "-1", "lots", "nan"):
        monkeypatch.setenv("LEAFBN_TRAINER_GB", bad)
        with pytest.raises(ValueError, match=f"LEAFBN_TRAINER_GB='{bad}': must be a number > 0"):
            trainer_limit_gb()


def test_only_grids_of_many_shapes_train_in_a_separate_process(monkeypatch):
    """The seed grid (2 programs) trains in its trials' own processes; the full space (75) could
    pass the limit there, so it trains in trainer processes; a lower limit lowers the bar."""
    monkeypatch.delenv("LEAFBN_TRAINER_GB", raising=False)
    assert not separate_trainer(2) and separate_trainer(75)
    monkeypatch.setenv("LEAFBN_TRAINER_GB", "0.5")
    assert separate_trainer(1)


def _records(path: Path) -> list[dict]:
    return [json.loads((path / "units" / f"u{u:06d}.json").read_text()) for u in finished_units(path)]


def _check_every_run_once(path: Path, runs: int) -> pd.DataFrame:
    trials = pd.read_csv(path / "trials.csv")
    assert len(trials) == runs and not trials.duplicated(["lr", "bn", "split", "seed"]).any()
    assert (trials["epochs_run"] > 0).all()
    return trials


def _trainers(root: psutil.Process, name: str) -> list[psutil.Process]:
    """``root``'s descendants named ``name`` (a Ray worker names itself for what it runs)."""
    found = []
    for process in root.children(recursive=True):
        try:
            if process.name() == name:
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.cluster
def test_trainers_are_replaced_past_their_limit_and_a_lost_one_costs_a_retry(tmp_path):
    """Under a limit no trainer can stay below, every call gets a new trainer process; SIGKILL of one
    while it trains (as the OOM killer would) fails its unit's trial, Ray Tune runs the unit again
    in a new trainer, and every run is in trials.csv once."""
    args = ["--lr", "0.001,0.01", "--seeds", "1", "--epochs", "30", "--num-cpus", "1",
            "--out", str(tmp_path), "--name", "lost"]  # fmt: skip
    env = os.environ | {"LEAFBN_TRAINER_GB": "0.01"}
    study = subprocess.Popen([*RUN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL, start_new_session=True, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        trainers: list[psutil.Process] = []
        while not trainers and study.poll() is None and time.monotonic() < deadline:
            trainers = _trainers(psutil.Process(study.pid), "ray::Trainer.train_groups")
            time.sleep(0.05)
        assert trainers, "no trainer was seen training"
        assert not finished_units(tmp_path / "lost")
        trainers[0].send_signal(signal.SIGKILL)
        _, err = study.communicate(timeout=600)
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)
    assert study.returncode == 0, err[-2000:]
    trials = _check_every_run_once(tmp_path / "lost", runs=4)
    assert (trials["retries"] == 1).any()  # the unit that lost its trainer, trained again
    records = _records(tmp_path / "lost")
    assert any(record["attempt"] == 2 for record in records)
    pids = [pid for record in records for pid in record["trainer_pids"]]
    assert len(records) >= 2 and len(pids) == len(set(pids))  # no trainer reused past its limit
