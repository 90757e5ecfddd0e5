"""Run a study on Ray Tune: the trainable, the Tuner, and the tables written at the end.

``run_study(config)`` is the one call behind ``study/run.py``: it loads and splits the data once,
puts the split in Ray's object store (``tune.with_parameters``, so worker nodes need no data
files), runs one function trainable per trial (1 CPU each; ``reuse_actors`` keeps a worker's
TensorFlow and compiled programs warm), and writes ``config.json``, ``trials.csv`` and
``curves.csv`` beside Ray Tune's own experiment folder in ``OUT/NAME/``.

Ray has no authentication: a local Ray instance started here listens on 127.0.0.1 only and runs no
dashboard.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls from a study
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the concise table reporter below

import pandas as pd  # noqa: E402
import ray  # noqa: E402
from ray import tune  # noqa: E402

from leafbn import data as leafdata  # noqa: E402
from leafbn.config import StudyConfig  # noqa: E402
from leafbn.tables import curves_from_history, trial_row, trials_frame  # noqa: E402

__all__ = ["StudyError", "StudyResult", "trainable", "build_tuner", "run_study", "study_dir"]


class StudyError(RuntimeError):
    """The study cannot start or go on; the message is one line for the user."""


@dataclass(frozen=True)
class StudyResult:
    """Where a finished (or interrupted) study's files are, and its trials table."""

    path: Path
    trials: pd.DataFrame
    curves: pd.DataFrame
    complete: bool


def study_dir(config: StudyConfig) -> Path:
    """``OUT/NAME`` as an absolute path."""
    return (Path(config.out).expanduser() / config.name).resolve()


# --------------------------------------------------------------------------------------------
# The trainable: one trial, one CPU, one report per epoch.
# --------------------------------------------------------------------------------------------
def trainable(config: dict[str, Any], split: leafdata.Split) -> None:
    """Ray Tune function trainable: train one network on ``split`` and report every epoch.

    ``config`` holds the trial's axes (``lr``, ``bn``, ``depth``, ``width``, ``bn_momentum``,
    ``bn_placement``), its ``seed``, and the study's ``epochs``, ``batch_size``, ``momentum`` and
    ``decay``. Each report carries the epoch's losses, ``diverged``, the trainer's cumulative
    ``time_s`` and the Ray ``node_id``.
    """
    from leafbn.model import ModelSpec
    from leafbn.train import train

    start = time.perf_counter()
    node_id = ray.get_runtime_context().get_node_id()
    spec = ModelSpec(
        n_features=split.x_train.shape[1],
        n_classes=int(max(split.y_train.max(), split.y_val.max())) + 1,
        depth=int(config["depth"]),
        width=int(config["width"]),
        bn=bool(config["bn"]),
        bn_momentum=float(config["bn_momentum"]),
        bn_placement=str(config["bn_placement"]),
    )

    def report(epoch) -> None:
        tune.report(
            {
                "epoch": epoch.epoch,
                "train_loss": epoch.train_loss,
                "val_loss": epoch.val_loss,
                "val_accuracy": epoch.val_accuracy,
                "diverged": not epoch.finite,
                "time_s": time.perf_counter() - start,
                "node_id": node_id,
            }
        )

    train(
        spec,
        split.x_train,
        split.y_train,
        split.x_val,
        split.y_val,
        lr=float(config["lr"]),
        seed=int(config["seed"]),
        epochs=int(config["epochs"]),
        batch_size=int(config["batch_size"]),
        momentum=float(config["momentum"]),
        decay=float(config["decay"]),
        on_epoch=report,
    )


class _RetryCounter(tune.Callback):
    """Counts, per trial, how often Ray Tune restarted it after a failure."""

    def __init__(self) -> None:
        self.retries: dict[str, int] = {}

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        self.retries[trial.trial_id] = self.retries.get(trial.trial_id, 0) + 1


def build_tuner(
    config: StudyConfig, split: leafdata.Split, callbacks: list[tune.Callback] | None = None
) -> tune.Tuner:
    """The study's ``tune.Tuner``: a grid over ``config.trial_configs()``, 1 CPU per trial."""
    fixed = {k: getattr(config, k) for k in ("epochs", "batch_size", "momentum", "decay")}
    param_space = {"trial": tune.grid_search(config.trial_configs()), **fixed}
    reporter = tune.CLIReporter(
        parameter_columns={f"trial/{k}": k for k in ("lr", "bn", "seed")},
        metric_columns={"epoch": "epoch", "val_loss": "val_loss", "val_accuracy": "val_acc"},
        max_report_frequency=15,
        max_progress_rows=8,
        sort_by_metric=True,
        metric="val_loss",
        mode="min",
    )
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(leafbn_trial, split=split), {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(reuse_actors=True, trial_dirname_creator=lambda trial: trial.trial_id),
        run_config=tune.RunConfig(
            name=config.name,
            storage_path=str(study_dir(config).parent),
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            progress_reporter=reporter,
            callbacks=callbacks,
            verbose=1,
        ),
    )


def leafbn_trial(config: dict[str, Any], split: leafdata.Split) -> None:
    """Unpack the grid's ``trial`` dict into the flat config :func:`trainable` takes."""
    trainable({**config["trial"], **{k: v for k, v in config.items() if k != "trial"}}, split)


# --------------------------------------------------------------------------------------------
# Ray: local on 127.0.0.1 by default, or an existing cluster.
# --------------------------------------------------------------------------------------------
def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line if ``host:port`` (or ``ray://host:port``) does not answer."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise StudyError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})")


@contextmanager
def ray_session(config: StudyConfig) -> Iterator[None]:
    """Connect to ``config.address`` or start a local Ray on 127.0.0.1; shut down afterwards."""
    if ray.is_initialized():
        yield
        return
    common = dict(log_to_driver=False, configure_logging=False)
    if config.address:
        _check_reachable(config.address)
        try:
            ray.init(address=config.address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise StudyError(f"--address {config.address}: cannot join ({exc})".splitlines()[0])
        try:
            yield
        finally:
            ray.shutdown()
        return
    with _loopback_only():
        ray.init(num_cpus=config.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", **common)
        try:
            yield
        finally:
            ray.shutdown()


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Keep a local Ray on 127.0.0.1: every server it starts listens on loopback only.

    On Linux Ray rewrites a 127.0.0.1 node address to the machine's network address unless its
    single-machine mode (the default on macOS and Windows) is on; Ray reads that switch from
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when it is imported, so the cached value is set too.
    Both are restored afterwards, so a later session can join a real cluster.
    """
    from ray._private import ray_constants

    saved = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # inherited by Ray's processes
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]


# --------------------------------------------------------------------------------------------
# The study.
# --------------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from leafbn import __version__

    return {
        "leafbn": __version__,
        "ray": ray.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def _prepare_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".leafbn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StudyError(f"--out {path.parent}: cannot write there ({exc.strerror or exc})")


def collect_tables(results: tune.ResultGrid, retries: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trials.csv`` and ``curves.csv`` as DataFrames from a ResultGrid."""
    rows, curves = [], []
    for result in results:
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        config = {**result.config.get("trial", {}), **{k: v for k, v in result.config.items() if k != "trial"}}
        history = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
        error = str(result.error).splitlines()[0] if result.error else ""
        rows.append(trial_row(trial_id, config, history, retries.get(trial_id, 0), error))
        curves.append(curves_from_history(trial_id, history))
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return trials_frame(rows), curves_df


def run_study(config: StudyConfig, echo=print) -> StudyResult:  # noqa: ANN001
    """Run ``config``'s grid on Ray Tune and write its results; returns where they are.

    Raises :class:`StudyError` (one line) for an unwritable ``--out``, an unreachable
    ``--address`` or an existing study folder; :class:`leafbn.data.DataError` for bad data.
    An interrupted study (Ctrl-C) still writes the tables of what finished.
    """
    path = study_dir(config)
    if config.address:
        _check_reachable(config.address)  # before anything is written
    if (path / "trials.csv").exists() or tune.Tuner.can_restore(str(path)):
        raise StudyError(f"{path} already holds a study: use another --name or --out")
    _prepare_dir(path)
    data = leafdata.load(config.data)
    split = leafdata.split(data, config.val_fraction, config.split_seed, config.standardize)
    trials = config.trial_configs()
    meta: dict[str, Any] = {
        "study": config.to_dict(),
        "data": data.record(),
        "versions": _versions(),
        "run": {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trials_expected": len(trials)},
    }
    _write_json(path / "config.json", meta)
    echo(f"leafbn: {len(trials)} trials ({data.record()['rows']} rows of {data.source}) → {path}")

    start = time.perf_counter()
    counter = _RetryCounter()
    complete = True
    with ray_session(config):
        resources = ray.cluster_resources()
        meta["run"].update(ray_nodes=len([n for n in ray.nodes() if n["Alive"]]), ray_cpus=int(resources.get("CPU", 0)))
        tuner = build_tuner(config, split, callbacks=[counter])
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            complete = False
            results = tune.Tuner.restore(str(path), trainable=leafbn_trial).get_results()
    trials_df, curves_df = collect_tables(results, counter.retries)
    trials_df.to_csv(path / "trials.csv", index=False)
    curves_df.to_csv(path / "curves.csv", index=False)
    finished = int((trials_df["epochs_run"] > 0).sum()) if len(trials_df) else 0
    complete = complete and not results.errors and finished == len(trials)
    meta["run"].update(
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        wall_time_s=round(time.perf_counter() - start, 2),
        trials_finished=finished,
        complete=complete,
    )
    _write_json(path / "config.json", meta)
    return StudyResult(path, trials_df, curves_df, complete)

