"""The study end to end on a local Ray instance: both tables, config.json, the CLI's errors."""

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from leafbn.config import StudyConfig
from leafbn.results.tables import CURVE_COLUMNS, TRIAL_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "study" / "run.py"), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def run_main_output(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """study/run.py's main() in this process (no interpreter start): exit status, stdout, stderr."""
    spec = importlib.util.spec_from_file_location("leafbn_run_cli", ROOT / "study" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        code = module.main(list(args))
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """:func:`run_main_output`'s exit status and stderr."""
    code, _, err = run_main_output(capsys, *args)
    return code, err


def check_tables(path: Path, expected_trials: int, epochs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = pd.read_csv(path / "trials.csv")
    parquet = path / "curves.parquet"
    curves = pd.read_parquet(parquet) if parquet.exists() else pd.read_csv(path / "curves.csv")
    assert list(trials.columns) == TRIAL_COLUMNS
    assert list(curves.columns) == CURVE_COLUMNS
    assert len(trials) == expected_trials and trials["trial_id"].is_unique
    assert (trials["epochs"] == epochs).all()
    assert set(curves["trial_id"]) == set(trials["trial_id"])
    per_trial = curves.groupby("trial_id")["epoch"].agg(["count", "min", "max"])
    runs = trials.set_index("trial_id")["epochs_run"]
    assert (per_trial["count"] == runs[per_trial.index]).all()
    assert (per_trial["min"] == 1).all() and (per_trial["max"] == runs[per_trial.index]).all()
    assert trials["node_id"].notna().all() and (trials["time_s"] > 0).all()
    return trials, curves


def ray_listeners() -> list[str]:
    """Listening TCP addresses of Ray's processes (children of this one)."""
    pids = {p.pid for p in psutil.Process().children(recursive=True)}
    return [
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


@pytest.mark.cluster
def test_tiny_grid_on_local_ray(tmp_path):
    from leafbn.tuning.runner import ray_session, run_study

    config = StudyConfig(
        lr=(0.01, 0.1), batch_size=(10, 32), seeds=2, seeds_per_trial=2, epochs=3, out=str(tmp_path),
        name="tiny", num_cpus=1, log=("tensorboard", "csv"),
    )  # fmt: skip

    def mine(signum, frame):
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with ray_session(config):
            listeners = ray_listeners()
            handler = signal.getsignal(signal.SIGTERM)  # Ray's own would exit before the tables
            result = run_study(config, echo=lambda _: None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert handler is mine
    assert listeners, "Ray should have started servers"
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in listeners), listeners

    assert result.complete and result.path == tmp_path / "tiny"
    trials, curves = check_tables(result.path, expected_trials=16, epochs=3)  # 8 units of 2 runs
    assert sorted(set(zip(trials["lr"], trials["bn"]))) == [
        (0.01, False),
        (0.01, True),
        (0.1, False),
        (0.1, True),
    ]
    assert trials.groupby("batch_size").size().to_dict() == {10: 8, 32: 8}
    assert trials["ray_trial"].nunique() == 8  # one Ray trial per unit, not per run
    by_config = trials.groupby(["ray_trial", "lr"])
    assert all(sorted(seeds) == [0, 1] for _, seeds in by_config["seed"])  # 2 seeds side by side
    assert by_config["final_val_loss"].nunique().eq(2).all()  # each seed its own network
    assert not trials["diverged"].any() and (trials["epochs_run"] == 3).all()
    assert trials["final_val_loss"].between(0, 10).all()
    assert (trials["best_val_loss"] <= trials["final_val_loss"] + 1e-9).all()
    # the trials.csv summary agrees with the curves it came from
    last = curves.sort_values("epoch").groupby("trial_id").last()
    merged = trials.merge(last, left_on="trial_id", right_index=True, suffixes=("", "_curve"))
    assert (merged["final_val_loss"] - merged["val_loss"]).abs().max() < 1e-9

    meta = json.loads((result.path / "config.json").read_text())
    assert StudyConfig.from_dict(meta["study"]) == config
    assert meta["data"]["source"] == "embedded" and meta["data"]["rows"] == 1584
    assert set(meta["versions"]) >= {"leafbn", "ray", "tensorflow", "keras"}
    assert meta["run"]["trials_expected"] == meta["run"]["trials_finished"] == 16
    assert meta["run"]["layout"] == "units" and meta["run"]["units_expected"] == 8
    assert (result.path / "ray" / "tuner.pkl").exists()  # Ray Tune's own experiment folder, in ray/
    assert not list(result.path.glob("*/params.json"))  # no folder per run

    # --log tensorboard,csv: Ray Tune's own loggers, read back as TensorBoard and pandas read them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    for ray_trial, runs in trials.groupby("ray_trial"):
        folder = result.path / "ray" / ray_trial
        events = EventAccumulator(str(folder)).Reload()
        val = events.Scalars("ray/tune/val_loss")  # the unit's best final validation loss
        best = runs["final_val_loss"].min()
        assert [e.step for e in val] and val[-1].value == pytest.approx(best, rel=1e-6)
        start = HParamsPluginData.FromString(
            events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        )
        assert start.session_start_info.hparams["trial/runs"].number_value == len(runs)
        # small reports: about one a second while the unit trains, and one at its end
        progress = pd.read_csv(folder / "progress.csv")
        assert progress["runs_done"].iloc[-1] == len(runs) and progress["runs"].eq(len(runs)).all()


@pytest.mark.cluster
def test_cli_on_kaggle_data_records_divergence(tmp_path, kaggle_train_csv):
    # Kaggle's own train.csv where ../shared is present, else one written in its format; and a home
    # folder that cannot be written (locked-down nodes, some CI), where Ray keeps its auth token.
    train_csv = kaggle_train_csv
    xla = os.environ.get("LEAFBN_XLA_CACHE", str(Path.home() / ".cache" / "leafbn" / "xla"))
    args = (
        "--grid", "--data", str(train_csv), "--lr", "0.01,1000", "--seeds", "1", "--splits", "2",
        "--epochs", "4", "--out", str(tmp_path), "--name", "kaggle", "--num-cpus", "1",
    )  # fmt: skip
    done = run_cli(*args, env={**os.environ, "HOME": "/proc", "LEAFBN_XLA_CACHE": xla})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    trials, curves = check_tables(tmp_path / "kaggle", expected_trials=8, epochs=4)
    assert sorted(trials["split"].unique()) == [0, 1] and sorted(curves["split"].unique()) == [0, 1]
    ok = trials[~trials["diverged"]].set_index(["lr", "bn", "split"])["final_val_loss"]
    assert ok.xs(0, level="split").ne(ok.xs(1, level="split")).all()  # two different validation parts
    meta = json.loads((tmp_path / "kaggle" / "config.json").read_text())
    assert meta["data"]["rows"] == 990 and meta["data"]["classes"] == 99
    assert meta["data"]["source"].startswith("kaggle:")

    wild = trials[trials["lr"] == 1000]
    assert wild["diverged"].all()  # lr 1000 blows up, with or without BN...
    assert wild["final_val_loss"].isna().all() and (wild["diverged_epoch"] == wild["epochs_run"]).all()
    assert (wild["epochs_run"] < 4).any()
    tame = trials[trials["lr"] == 0.01]
    assert not tame["diverged"].any() and (tame["epochs_run"] == 4).all()
    last_wild = curves[curves["trial_id"].isin(wild["trial_id"])].groupby("trial_id").last()
    assert (
        not last_wild["train_loss"].map(math.isfinite).any()
        or not last_wild["val_loss"].map(math.isfinite).any()
    )
    # ...and the end summary says so, per learning rate and BN
    assert "diverged" in done.stdout and "2/2" in done.stdout
    # without --report, it says how to get the answer (--report itself: the storage URI test)
    assert f"python study/report.py {tmp_path / 'kaggle'}" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "-0.1"], "--lr -0.1: must be > 0"),
        (["--lr", "abc"], "--lr abc: 'abc' is not a number"),
        (["--lr", ","], "--lr ',': name at least one value"),
        (["--epochs", "0"], "--epochs 0: must be in [1, 10000]"),
        (["--seeds", "0"], "--seeds 0: must be >= 1"),
        (["--bn", "maybe"], "--bn maybe: 'maybe' is not on or off"),
        (["--data", "/nonexistent/train.csv"], "--data /nonexistent/train.csv: no such file"),
        (["--val-fraction", "0.99"], "--val-fraction 0.99: gives 15 training and 1569 validation rows"),
        (["--out", "/proc/leafbn"], "--out /proc/leafbn: cannot write there"),
        (["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers there"),
        (
            ["--drop-last", "--batch-size", "5000"],
            "--batch-size 5000: must be <= the 1267 training rows with --drop-last",
        ),
        (["--batch-size", "0,10"], "--batch-size 0: must be >= 1"),
        (["--splits", "0"], "--splits 0: must be >= 1"),
        (["--splits", "1000"], "--splits 1000: must be <= 560, the distinct stratified validation draws"),
        (["--splits", "2", "--optuna", "4"], "--splits 2: must be 1 with --optuna"),
        (["--window", "0"], "--window 0: must be in [1, --epochs 100]"),
        (["--window", "20", "--epochs", "5"], "--window 20: must be in [1, --epochs 5]"),
        (["--log", "nosuch"], "--log nosuch: must be one of tensorboard, csv, mlflow"),
        (["--decay", "nan"], "argument --decay: 'nan' is not a finite number"),
        (["--lr", "0.1,1e400"], "--lr 0.1,1e400: '1e400' is not a finite number"),
        (["--seed-base", "-1"], "--seed-base -1: must be in [0, 4294967295"),
        (["--epochs", "100000000"], "--epochs 100000000: must be in [1, 10000]"),
        (["--lr", "0.1,0.01,0.1"], "--lr 0.1,0.01,0.1: names 0.1 twice"),
        (["--bn", "on,on"], "--bn on,on: names on twice"),
        (["--log", "csv,csv"], "--log csv,csv: names a logger twice"),
        (["--lr-per-decade", "0"], "--lr-per-decade 0: must be >= 1"),
    ],
)
def test_cli_bad_values_one_line_exit_2(tmp_path, capsys, args, message):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path)]
    code, stderr = run_main(capsys, *args)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert message in lines[0]


@pytest.mark.parametrize("logger, extra", [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_cli_refuses_a_logger_whose_package_is_missing(tmp_path, capsys, monkeypatch, logger, extra):
    module = {"mlflow": "mlflow", "tensorboard": "tensorboardX"}[logger]
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed, whatever this machine has
    code, stderr = run_main(capsys, "--log", f"csv,{logger}", "--out", str(tmp_path))
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert stderr.strip().endswith(
        f"--log {logger}: needs {module}, not installed: pip install 'leafbn[{extra}]'"
    )
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_cli_names_the_variable_a_bad_data_path_came_from(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LEAFBN_DATA", "/nonexistent")
    code, stderr = run_main(capsys, "--out", str(tmp_path))
    assert code == 2 and stderr.startswith("run.py: error: LEAFBN_DATA=/nonexistent: no such file or folder")


def test_cli_refuses_a_bad_trainer_limit_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LEAFBN_TRAINER_GB", "lots")
    code, stderr = run_main(capsys, "--out", str(tmp_path))
    assert (
        code == 2
        and stderr
        == "run.py: error: LEAFBN_TRAINER_GB='lots': must be a number > 0 (GB of RSS per trainer process)\n"
    )
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_cli_refuses_to_overwrite_a_study(tmp_path):
    # In a new interpreter, as a user runs it: one line, exit 2, nothing touched.
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "trials.csv").write_text("trial_id\nkeep-me\n")
    done = run_cli("--out", str(tmp_path), "--name", "old", timeout=120)
    assert done.returncode == 2 and "already holds a study" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert (tmp_path / "old" / "trials.csv").read_text() == "trial_id\nkeep-me\n"
