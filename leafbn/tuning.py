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

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import platform
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls from a study
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # the loggers we want are named below

import optuna
import pandas as pd
import pyarrow.fs as pafs
import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from leafbn import data as leafdata
from leafbn import reaper
from leafbn.config import StudyConfig, steps_per_epoch
from leafbn.progress import ProgressLine
from leafbn.spaces import estimate_seconds, objective, optuna_space
from leafbn.tables import CURVE_COLUMNS, curves_from_history, trial_row, trials_frame

__all__ = [
    "StudyError",
    "StudyResult",
    "trainable",
    "build_tuner",
    "run_study",
    "study_dir",
    "experiment_path",
]


class StudyError(RuntimeError):
    """The study cannot start or go on; the message is one line for the user."""


@dataclass(frozen=True)
class StudyResult:
    """Where a finished (or interrupted) study's files are, and its trials table."""

    path: Path
    trials: pd.DataFrame
    curves: pd.DataFrame
    complete: bool


def is_uri(out: str) -> bool:
    """Whether ``--out`` names a storage URI (``s3://``, ``gs://``, ``file://`` …), not a folder."""
    return "://" in out


def experiment_path(config: StudyConfig) -> str:
    """Where Ray Tune keeps the study's experiment folder: ``OUT/NAME`` (a folder or a URI)."""
    if is_uri(config.out):
        return f"{config.out.rstrip('/')}/{config.name}"
    return str(study_dir(config))


def study_dir(config: StudyConfig) -> Path:
    """The local folder of the study's own files (tables, ``config.json``, report).

    ``OUT/NAME`` for a local ``--out``. For a URI, a working folder under ``LEAFBN_STAGING``
    (default ``~/.cache/leafbn/studies``) whose files are copied to ``OUT/NAME`` at the end.
    """
    if is_uri(config.out):
        digest = hashlib.sha1(experiment_path(config).encode()).hexdigest()[:10]
        root = Path(os.environ.get("LEAFBN_STAGING", Path.home() / ".cache" / "leafbn" / "studies"))
        return (root / f"{config.name}-{digest}").resolve()
    return (Path(config.out).expanduser() / config.name).resolve()


def _remote(config: StudyConfig) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of ``OUT/NAME`` for a URI ``--out``."""
    try:
        return pafs.FileSystem.from_uri(experiment_path(config))
    except Exception as exc:  # pyarrow raises several kinds for a bad or unreachable URI
        raise StudyError(f"--out {config.out}: cannot use this storage ({str(exc).splitlines()[0]})") from exc


def _publish(config: StudyConfig, path: Path) -> None:
    """Copy the study's own files from ``path`` to ``OUT/NAME`` when ``--out`` is a URI."""
    if is_uri(config.out):
        fs, base = _remote(config)
        pafs.copy_files(str(path), base, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def _fetch(config: StudyConfig, path: Path) -> None:
    """Bring ``config.json`` and ``optuna.db`` back from ``OUT/NAME`` (a URI) to resume there."""
    fs, base = _remote(config)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "optuna.db"):
        if fs.get_file_info(f"{base}/{name}").type == pafs.FileType.File:
            pafs.copy_files(f"{base}/{name}", str(path / name), source_filesystem=fs,
                            destination_filesystem=pafs.LocalFileSystem())  # fmt: skip


# --------------------------------------------------------------------------------------------
# The trainable: one trial, one CPU, a report every `report_every` epochs.
# --------------------------------------------------------------------------------------------
def trainable(config: dict[str, Any], splits: tuple[leafdata.Split, ...]) -> None:
    """Ray Tune function trainable: train one network on ``splits[config["split"]]``, reporting as it goes.

    ``config`` holds the trial's axes (``lr``, ``bn``, ``depth``, ``width``, ``bn_momentum``,
    ``bn_placement``, ``batch_size``), its ``split`` and ``seed``, and the study's ``epochs``,
    ``drop_last``, ``momentum``, ``decay`` and ``report_every``. Each report carries the latest epoch's
    losses, its
    ``objective``, ``diverged``, the trainer's cumulative ``time_s``, the Ray ``node_id``, and a
    ``curve`` list with every epoch since the previous report.
    """
    # Imported here, in the worker: the driver never needs TensorFlow.
    from leafbn.model import ModelSpec
    from leafbn.train import train

    start = time.perf_counter()
    split = splits[int(config.get("split") or 0)]
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

    every, epochs = int(config.get("report_every", 1)), int(config["epochs"])
    pending: list = []

    def report(epoch) -> None:
        # One Ray Tune report costs ~7 ms of framework time, as much as an epoch: report every
        # `every` epochs (and at the end or on divergence), each report carrying every epoch since.
        pending.append(epoch)
        if len(pending) < every and epoch.epoch < epochs and epoch.finite:
            return
        tune.report(
            {
                "epoch": epoch.epoch,
                "train_loss": epoch.train_loss,
                "val_loss": epoch.val_loss,
                "val_accuracy": epoch.val_accuracy,
                "objective": objective(epoch.val_loss),
                "diverged": not epoch.finite,
                "time_s": time.perf_counter() - start,
                "node_id": node_id,
                "curve": [[e.epoch, e.train_loss, e.val_loss, e.val_accuracy] for e in pending],
            }
        )
        pending.clear()

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
        drop_last=bool(config.get("drop_last", False)),
        momentum=float(config["momentum"]),
        decay=float(config["decay"]),
        on_epoch=report,
    )


#: What each of Ray Tune's standard loggers needs beyond leafbn's own dependencies, and its extra.
_LOGGER_NEEDS = {"tensorboard": ("tensorboardX", "tensorboard"), "mlflow": ("mlflow", "mlflow")}


def check_loggers(config: StudyConfig) -> None:
    """Raise :class:`StudyError` (one line, naming the extra) if a ``--log`` logger's package is missing."""
    for name in config.log:
        module, extra = _LOGGER_NEEDS.get(name, (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise StudyError(f"--log {name}: needs {module}, not installed: pip install 'leafbn[{extra}]'")


def logger_callbacks(config: StudyConfig) -> list[tune.Callback]:
    """Ray Tune's own logger callbacks for ``config.log``, besides the ``result.json`` leafbn reads.

    tensorboard: ``TBXLoggerCallback`` (event files in each trial's folder, the trial's config as
    hyperparameters: ``tensorboard --logdir OUT/NAME``); csv: ``CSVLoggerCallback``
    (``progress.csv`` per trial); mlflow: ``MLflowLoggerCallback``, one MLflow run per trial in
    the experiment NAME of the tracking store ``sqlite:///OUT/NAME/mlflow.db``.
    """
    check_loggers(config)
    callbacks: list[tune.Callback] = []
    if "tensorboard" in config.log:
        callbacks.append(TBXLoggerCallback())
    if "csv" in config.log:
        callbacks.append(CSVLoggerCallback())
    if "mlflow" in config.log:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(
            MLflowLoggerCallback(
                tracking_uri=f"sqlite:///{study_dir(config) / 'mlflow.db'}",
                experiment_name=config.name,
                save_artifact=False,
            )
        )
    return callbacks


def build_tuner(
    config: StudyConfig,
    splits: tuple[leafdata.Split, ...],
    callbacks: list[tune.Callback] | None = None,
) -> tune.Tuner:
    """The study's ``tune.Tuner``, 1 CPU per trial.

    The grid (``config.optuna == 0``) runs every trial of ``config.trial_configs()``; otherwise
    Optuna's TPE sampler (Ray Tune's ``OptunaSearch``, its study stored in ``optuna.db`` beside
    the results) draws ``config.optuna`` trials from the same axes, minimising ``objective`` (the
    validation loss; :data:`leafbn.spaces.WORST_LOSS` for a diverged trial). ``config.asha``
    adds Ray Tune's ASHA scheduler on the same metric.
    """
    fixed = {k: getattr(config, k) for k in ("epochs", "drop_last", "momentum", "decay", "report_every")}
    search_alg = scheduler = None
    if config.optuna:
        searched, constant = optuna_space(config)
        param_space = {**constant, "seed": config.seed_base, "split": 0, **fixed}
        storage_url = f"sqlite:///{study_dir(config) / 'optuna.db'}"
        search_alg = OptunaSearch(
            searched, metric="objective", mode="min", seed=config.seed_base,
            storage=optuna.storages.RDBStorage(storage_url), study_name=config.name,
        )  # fmt: skip
        if config.max_concurrent:
            search_alg = ConcurrencyLimiter(search_alg, max_concurrent=config.max_concurrent)
    else:
        param_space = {"trial": tune.grid_search(config.trial_configs()), **fixed}
    if config.asha:
        scheduler = ASHAScheduler(
            time_attr="epoch", max_t=config.epochs, grace_period=max(1, config.epochs // 10)
        )
    return tune.Tuner(
        _trainable(splits),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="objective" if (search_alg or scheduler) else None,
            mode="min" if (search_alg or scheduler) else None,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=config.optuna or 1,
            max_concurrent_trials=None if config.optuna else config.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=config.name,
            storage_path=config.out if is_uri(config.out) else str(study_dir(config).parent),
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            # result.json (what leafbn reads), and Ray Tune's other loggers only on request (--log)
            callbacks=[JsonLoggerCallback(), *logger_callbacks(config), *(callbacks or [])],
            verbose=0,
        ),
    )


def _trainable(splits: tuple[leafdata.Split, ...]):
    """The trial function with the splits in Ray's object store and 1 CPU per trial."""
    return tune.with_resources(tune.with_parameters(leafbn_trial, splits=splits), {"cpu": 1})


def leafbn_trial(config: dict[str, Any], splits: tuple[leafdata.Split, ...]) -> None:
    """One trial: unpack the grid's ``trial`` dict (if any) into the flat config :func:`trainable` takes."""
    trainable(flat_config(config), splits)


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config with the grid's ``trial`` dict merged in."""
    return {**config.get("trial", {}), **{k: v for k, v in config.items() if k != "trial"}}


# --------------------------------------------------------------------------------------------
# Ray: local on 127.0.0.1 by default, or an existing cluster.
# --------------------------------------------------------------------------------------------
#: An HTTP/2 client's first bytes (the connection preface and an empty SETTINGS frame). Ray's GCS
#: and its client server speak gRPC, so they answer with a SETTINGS frame; anything else does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line if ``host:port`` (or ``ray://host:port``) does not answer as Ray does.

    A closed port, or a port where something else listens (an HTTP server, say; ``ray.init`` would
    wait there for minutes), is refused within ``timeout`` seconds. With ``RAY_USE_TLS`` only the
    TCP connection is checked.
    """
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            if os.environ.get("RAY_USE_TLS", "0") in ("0", ""):
                sock.sendall(_H2_PREFACE)
                head = b""
                while len(head) < 9 and (chunk := sock.recv(9 - len(head))):
                    head += chunk
                if len(head) < 9 or head[3] != 4:  # frame type 4: SETTINGS
                    raise StudyError(
                        f"--address {address}: something answers there, but not Ray "
                        "(point it at the head node's GCS port, 6379 by default, or ray://HOST:10001)"
                    )
    except OSError as exc:
        raise StudyError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})"
        ) from exc


@contextmanager
def ray_session(config: StudyConfig) -> Iterator[None]:
    """Connect to ``config.address`` or start a local Ray on 127.0.0.1; shut down afterwards."""
    if ray.is_initialized():
        yield
        return
    common = dict(log_to_driver=False, configure_logging=False)
    if config.address:
        _check_reachable(config.address)
        # A cluster on this machine's loopback: join it as a local study starts one, or Ray dials
        # the machine's network address, where such a cluster does not listen.
        with _loopback_only() if _is_loopback(config.address) else nullcontext():
            try:
                ray.init(address=config.address, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                hint = (
                    ""
                    if os.environ.get("RAY_AUTH_MODE")
                    else "; a cluster with token authentication needs RAY_AUTH_MODE=token"
                )
                raise StudyError(
                    f"--address {config.address}: cannot join ({str(exc).splitlines()[0]}){hint}"
                ) from exc
            try:
                yield
            finally:
                ray.shutdown()
        return
    _token_without_home()
    with reaper.watch(), _loopback_only():  # a killed driver leaves none of its Ray processes behind
        ray.init(  # "local": a new instance of our own, never a cluster that happens to run here
            address="local",
            num_cpus=config.num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            **common,
        )
        try:
            yield
        finally:
            ray.shutdown()


@contextmanager
def _term_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM (``kill``, a batch scheduler, a closed session) ends the study as Ctrl-C does.

    Ray Tune stops gracefully on SIGINT and the tables of what finished are written; Ray's own
    SIGTERM handler would end the driver at once, with no table. Only the main thread can do this.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _token_without_home() -> None:
    """Give a local Ray instance its auth token in the environment where ``~/.ray`` cannot be written.

    Ray's local instance turns on token authentication and saves a new token in
    ``~/.ray/auth_token``; on a read-only home folder (locked-down nodes, some CI) that raises
    inside ``ray.init``. The token then goes in ``RAY_AUTH_TOKEN``, which Ray's processes inherit.
    """
    if {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ):
        return
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    token_file = Path.home() / ".ray" / "auth_token"
    if token_file.is_file():
        return
    try:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        probe = token_file.parent / ".leafbn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError:
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # as Ray's own token generator does


def _is_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` (or ``ray://HOST:PORT``) names this machine's loopback interface."""
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


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
    """Installed versions, read from package metadata (no TensorFlow import in the driver)."""
    from importlib.metadata import PackageNotFoundError, version

    from leafbn import __version__

    found = {"leafbn": __version__, "ray": ray.__version__, "python": platform.python_version()}
    for name, dists in (("tensorflow", ("tensorflow-cpu", "tensorflow")), ("keras", ("keras",))):
        for dist in dists:
            try:
                found[name] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return found


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


@contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """Own the study folder ``path`` while a study runs there (``path/.lock``, an flock).

    Raises :class:`StudyError` naming the holder if another study holds it. The operating system
    frees the lock when its process ends, however it ends (SIGKILL included), so a crashed study
    never leaves it stuck; Ray's processes do not inherit it.
    """
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise StudyError(
                f"{path}: another study is running there ({holder}); "
                "wait for it to end, or use another --name"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _prepare_dir(config: StudyConfig, path: Path) -> None:
    """Make sure the study's folder (and, for a URI ``--out``, its storage) can be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".leafbn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StudyError(
            f"--out {config.out if not is_uri(config.out) else path}: "
            f"cannot write there ({exc.strerror or exc})"
        ) from exc
    if is_uri(config.out):
        fs, base = _remote(config)
        try:
            fs.create_dir(base, recursive=True)
            with fs.open_output_stream(f"{base}/.leafbn-write-test") as probe:
                probe.write(b"")
            fs.delete_file(f"{base}/.leafbn-write-test")
        except Exception as exc:
            raise StudyError(f"--out {config.out}: cannot write there ({str(exc).splitlines()[0]})") from exc


def _never_started(record: logging.LogRecord) -> bool:
    """Drop Ray Tune's "Failed to fetch metrics" warning when each trial it names has no result file
    at all (an interrupted study's trials that never started: trials.csv records them with 0
    epochs); keep it when any other error is among them."""
    lines = record.getMessage().splitlines()
    if not lines or not lines[0].startswith("Failed to fetch metrics"):
        return True
    return not all("FileNotFoundError(" in line for line in lines[1:])


@contextmanager
def _quiet_never_started() -> Iterator[None]:
    """Inside, Ray Tune's reader of results drops the warning :func:`_never_started` describes."""
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    logger.addFilter(_never_started)
    try:
        yield
    finally:
        logger.removeFilter(_never_started)


def collect_tables(path: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """``trials.csv`` and ``curves.csv`` from Ray Tune's experiment folder at ``path`` (or URI).

    Read from disk (``tune.ExperimentAnalysis``), so a finished, an interrupted and a resumed
    study are read alike. Also returns the count of trials per Ray Tune status.
    """
    with _quiet_never_started():
        analysis = tune.ExperimentAnalysis(path)
        frames = analysis.trial_dataframes
    rows, curves, statuses = [], [], {}
    for trial in analysis.trials:
        history = frames.get(trial.trial_id)
        history = history if history is not None else pd.DataFrame()
        error = ""
        if trial.status == "ERROR":
            error = (str(trial.get_error() or "") or "error").strip().splitlines()[-1][:300]
        config = flat_config(trial.config)
        rows.append(trial_row(trial.trial_id, config, history, trial.num_failures, error))
        curves.append(curves_from_history(trial.trial_id, history, int(config.get("split") or 0)))
        statuses[trial.status] = statuses.get(trial.status, 0) + 1
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    return trials_frame(rows), curves_df, statuses


def _killed_session_seconds(run: dict[str, Any], path: Path) -> float:
    """Seconds the previous session ran if it was killed before writing its end (SIGKILL, a power
    cut): from its start to Ray Tune's last saved experiment state. 0 if it ended normally."""
    started, ended = run.get("session_started"), run.get("session_ended")
    if started is None or (ended is not None and ended >= started):
        return 0.0
    states = [state.stat().st_mtime for state in path.glob("experiment_state-*.json")]
    return max(0.0, max(states, default=started) - started)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path / 'config.json'}: cannot read the study's configuration ({exc})") from exc


#: Settings a resumed study takes from the command line: where it runs, not what it runs.
WHERE_IT_RUNS = ("address", "num_cpus", "out", "name", "data", "log")


def contradictions(stored: StudyConfig, given: StudyConfig, asked: set[str]) -> list[str]:
    """The flags in ``asked`` whose values in ``given`` differ from the ``stored`` study's, as text."""

    def show(value: Any) -> str:
        if isinstance(value, tuple):
            return ",".join(show(v) for v in value)
        if isinstance(value, bool):
            return "on" if value else "off"
        return f"{value:g}" if isinstance(value, float) else str(value)

    return [
        f"--{name.replace('_', '-')} {show(getattr(given, name))} "
        f"(the study's: {show(getattr(stored, name))})"
        for name in sorted(asked)
        if name not in WHERE_IT_RUNS
        and hasattr(stored, name)
        and getattr(given, name) != getattr(stored, name)
    ]


def run_study(
    config: StudyConfig,
    echo=print,
    resume: bool = False,
    report: Callable[[Path], Path] | None = None,
    asked: set[str] | frozenset[str] = frozenset(),
) -> StudyResult:
    """Run ``config``'s study on Ray Tune and write its results; returns where they are.

    With ``resume``, continue the study already in ``OUT/NAME`` (its own ``config.json`` wins;
    only where it runs — ``address``, ``num_cpus`` — comes from ``config``): finished trials are
    kept, unfinished and errored ones run again (Ray Tune's ``Tuner.restore``). A finished study
    is not run again. Raises :class:`StudyError` (one line) for an unwritable ``--out``, an
    unreachable ``--address``, a grid larger than ``max_trials``, or an existing study without
    ``resume``; :class:`leafbn.data.DataError` for bad data. An interrupted study still writes the
    tables of what it finished. ``report``: called with the study's folder at the end, before any
    copy to a URI ``--out`` (the CLI passes :func:`leafbn.report.write_report`); returns its path.
    ``asked``: the settings the user gave explicitly; on ``resume`` any of them (besides where the
    study runs) that contradicts the stored study is refused, naming each.
    With a URI ``--out``, Ray Tune writes there directly and the study's own files are copied
    there at the end; the returned path is the local working folder.
    """
    path, experiment = study_dir(config), experiment_path(config)
    check_loggers(config)  # before anything is written
    if config.address:
        _check_reachable(config.address)  # before anything is written
    if is_uri(config.out):
        _remote(config)  # a bad URI fails here, before anything is written
    restorable = tune.Tuner.can_restore(experiment)
    if resume:
        if not restorable:
            raise StudyError(f"{experiment}: no study to resume there (check --out and --name)")
        if is_uri(config.out):
            _fetch(config, path)
        meta = _read_meta(path)
        stored = StudyConfig.from_dict(meta["study"])
        differ = contradictions(stored, config, set(asked))
        if differ:
            raise StudyError(
                f"--resume: {'; '.join(differ)} contradict{'s' if len(differ) == 1 else ''} the stored "
                "study: drop them to resume it as it began, or start a new study with another --name"
            )
        where = {k: getattr(config, k) for k in ("address", "num_cpus", "out")}
        config = stored.replace(**where)
        if meta.get("run", {}).get("complete"):
            echo(
                f"leafbn: {path} is already complete "
                f"({meta['run'].get('trials_finished')} trials): nothing to resume"
            )
            trials_df, curves_df, _ = collect_tables(experiment)
            return StudyResult(path, trials_df, curves_df, True)
    elif restorable or (path / "trials.csv").exists():
        raise StudyError(
            f"{experiment} already holds a study: continue it with --resume, or use another --name"
        )
    data = leafdata.load(config.data)
    if resume and data.record()["sha256"] != meta["data"]["sha256"]:
        raise StudyError(f"--data {config.data}: not the data this study started with (sha256 differs)")
    most = leafdata.distinct_splits(data, config.val_fraction)
    if config.splits > most:
        raise StudyError(
            f"--splits {config.splits}: must be <= {most}, the distinct stratified validation draws of the "
            f"smallest class at --val-fraction {config.val_fraction}: lower --splits"
        )
    splits = tuple(
        leafdata.split(data, config.val_fraction, config.split_seed + k, config.standardize)
        for k in range(config.splits)
    )
    n_train = len(splits[0].x_train)
    for size in config.batch_size:
        if steps_per_epoch(n_train, size, config.drop_last) == 0:
            raise StudyError(
                f"--batch-size {size}: must be <= the {n_train} training rows with "
                "--drop-last, or no batch is left: lower it or leave out --drop-last"
            )
    expected = config.optuna or len(config.trial_configs())
    if not config.optuna and expected > config.max_trials:
        cpus = config.num_cpus or os.cpu_count() or 1
        guess = estimate_seconds(config, config.trial_configs(), n_train, cpus)
        raise StudyError(
            f"the grid has {expected} trials, about {timedelta(seconds=int(guess))} on {cpus} CPUs "
            f"(> --max-trials {config.max_trials}): narrow its axes (e.g. --depth 2,3 --width 50,100), "
            "use --optuna N, or raise --max-trials"
        )
    if not resume:
        _prepare_dir(config, path)
    with study_lock(path):
        if not resume and (tune.Tuner.can_restore(experiment) or (path / "config.json").exists()):
            raise StudyError(  # another study started here between the first check and the lock
                f"{experiment} already holds a study: continue it with --resume, or use another --name"
            )
        return _run(config, path, experiment, data, splits, expected, meta if resume else None, echo, report)


def _run(
    config: StudyConfig,
    path: Path,
    experiment: str,
    data: leafdata.LeafData,
    splits: tuple[leafdata.Split, ...],
    expected: int,
    meta: dict[str, Any] | None,
    echo,
    report: Callable[[Path], Path] | None,
) -> StudyResult:
    """The study itself, in its locked folder: ``meta`` is the stored config.json when resuming."""
    resume = meta is not None
    n_train = len(splits[0].x_train)
    if not resume:
        meta = {
            "study": config.to_dict(),
            "data": data.record(),
            "versions": _versions(),
            "run": {"started": datetime.now(UTC).isoformat(timespec="seconds"), "trials_expected": expected},
        }
        _write_json(path / "config.json", meta)
    earlier = meta["run"].get("wall_time_s", 0) if resume else 0
    if resume:
        earlier += _killed_session_seconds(meta["run"], path)
    meta["run"]["session_started"] = time.time()  # a killed session's time is counted on resume
    _write_json(path / "config.json", meta)

    start = time.perf_counter()
    with ray_session(config):
        cpus = int(ray.cluster_resources().get("CPU", 0))
        meta["run"].update(ray_nodes=len([n for n in ray.nodes() if n["Alive"]]), ray_cpus=cpus)
        guess = estimate_seconds(config, config.trial_configs(), n_train, cpus, n_trials=expected)
        mode = f"Optuna TPE, {expected} trials" if config.optuna else f"{expected} trials"
        echo(
            f"leafbn: {'resuming ' if resume else ''}{mode} on {cpus} CPUs, {data.record()['rows']} rows of "
            f"{data.source}; estimated {timedelta(seconds=int(guess))} → {experiment}"
        )
        progress = ProgressLine(expected, echo=echo)
        if resume:
            tuner = tune.Tuner.restore(
                experiment, trainable=_trainable(splits), resume_unfinished=True, resume_errored=True
            )
        else:
            tuner = build_tuner(config, splits, callbacks=[progress])
        try:
            with _term_as_interrupt(), _quiet_never_started():
                tuner.fit()
        except KeyboardInterrupt:
            echo("leafbn: interrupted; writing what finished (continue with --resume)")
    trials_df, curves_df, statuses = collect_tables(experiment)
    trials_df.to_csv(path / "trials.csv", index=False)
    curves_df.to_csv(path / "curves.csv", index=False)
    finished = statuses.get("TERMINATED", 0)
    complete = finished == expected
    meta["run"].update(
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        wall_time_s=round(time.perf_counter() - start + earlier, 2),
        session_ended=time.time(),
        trials_finished=finished,
        trial_status=statuses,
        complete=complete,
    )
    _write_json(path / "config.json", meta)
    if report is not None:
        echo(f"report: {report(path)}")
    _publish(config, path)
    return StudyResult(path, trials_df, curves_df, complete)
