"""Run a study on Ray Tune: the trainable, the Tuner, and the tables written at the end.

``run_study(config)`` is the one call behind ``study/run.py``: it loads and splits the data once,
puts the split in Ray's object store (``tune.with_parameters``, so worker nodes need no data
files), runs one function trainable per trial (1 CPU each; ``reuse_actors`` keeps a worker's
TensorFlow and compiled programs warm), and writes ``config.json``, ``trials.csv`` and
``curves.csv`` beside Ray Tune's own experiment folder in ``OUT/NAME/``.

Where it runs is :mod:`leafbn.session`'s (a local Ray on 127.0.0.1, or a cluster); where its
files live, :mod:`leafbn.storage`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from leafbn import data as leafdata
from leafbn import splits as leafsplits
from leafbn import unit_study
from leafbn.config import StudyConfig, contradictions, flat_config, steps_per_epoch, trial_seeds
from leafbn.loggers import check_loggers, logger_callbacks
from leafbn.progress import ProgressLine
from leafbn.record import StudyRecord
from leafbn.session import StudyError, check_reachable, ray_session, sigterm_ignored, term_as_interrupt
from leafbn.spaces import estimate_seconds, optuna_space
from leafbn.storage import (
    check_not_running,
    experiment_path,
    fetch,
    is_uri,
    killed_session_seconds,
    prepare_dir,
    publish,
    read_record,
    remote,
    study_dir,
    study_lock,
    versions,
)  # fmt: skip
from leafbn.tables import (
    CURVE_COLUMNS,
    curves_from_history,
    load_tables,
    network_id,
    read_table,
    trial_row,
    trials_frame,
    write_curves,
)
from leafbn.trial import trainable

__all__ = [
    "StudyError",
    "StudyResult",
    "build_tuner",
    "run_study",
    "study_dir",
    "experiment_path",
]


@dataclass(frozen=True)
class StudyResult:
    """Where a finished (or interrupted) study's files are, and its trials table (one row per run).
    The learning curves stay on disk until asked for (:attr:`curves`)."""

    path: Path
    trials: pd.DataFrame
    complete: bool

    @property
    def curves(self) -> pd.DataFrame:
        """The study's learning curves, read from its folder (``curves.parquet`` or ``curves.csv``)."""
        return load_tables(self.path)[1]


def build_tuner(
    config: StudyConfig,
    splits: tuple[leafsplits.Split, ...],
    callbacks: list[tune.Callback] | None = None,
    grain: int = 1,
) -> tune.Tuner:
    """The study's ``tune.Tuner``, 1 CPU per trial, ``grain`` networks (seeds) per trial.

    The grid (``config.optuna == 0``) runs every network of ``config.trial_configs()``, the seeds
    of each configuration in trials of ``grain`` (``config.trial_groups``); otherwise Optuna's TPE
    sampler (Ray Tune's ``OptunaSearch``, its study stored in ``optuna.db`` beside the results)
    draws ``config.optuna`` trials from the same axes, each training ``grain`` seeds from
    ``seed_base``, minimising ``objective`` (the median over the trial's networks of the validation
    loss, :data:`leafbn.spaces.WORST_LOSS` for a diverged one). ``config.asha`` adds Ray Tune's
    ASHA scheduler on the same metric.
    """
    fixed = {k: getattr(config, k) for k in ("epochs", "drop_last", "momentum", "decay", "report_every")}
    search_alg = scheduler = None
    if config.optuna:
        searched, constant = optuna_space(config)
        seeds = list(range(config.seed_base, config.seed_base + grain))
        param_space = {**constant, "seeds": seeds, "split": 0, **fixed}
        storage_url = f"sqlite:///{study_dir(config) / 'optuna.db'}"
        search_alg = OptunaSearch(
            searched, metric="objective", mode="min", seed=config.seed_base,
            storage=optuna.storages.RDBStorage(storage_url), study_name=config.name,
        )  # fmt: skip
        if config.max_concurrent:
            search_alg = ConcurrencyLimiter(search_alg, max_concurrent=config.max_concurrent)
    else:
        param_space = {"trial": tune.grid_search(config.trial_groups(grain)), **fixed}
    if config.asha:
        scheduler = ASHAScheduler(
            time_attr="epoch", max_t=config.epochs, grace_period=config.asha_grace_epochs
        )
    return tune.Tuner(
        _with_resources(splits),
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


def _with_resources(splits: tuple[leafsplits.Split, ...]):
    """:func:`trainable` with the splits in Ray's object store and 1 CPU per trial."""
    return tune.with_resources(tune.with_parameters(trainable, splits=splits), {"cpu": 1})


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
    """``trials.csv`` and ``curves.csv`` (one row per network: per seed) from Ray Tune's experiment
    folder at ``path`` (or URI).

    Read from disk (``tune.ExperimentAnalysis``), so a finished, an interrupted and a resumed
    study are read alike. Also returns the count of networks per Ray Tune status (their trial's).
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
        config, seeds = flat_config(trial.config), trial_seeds(trial.config)
        for seed in seeds:
            name = network_id(trial.trial_id, seed, len(seeds))
            rows.append(
                trial_row(name, config, history, trial.num_failures, error, seed, len(seeds), trial.trial_id)
            )
            curves.append(curves_from_history(name, history, int(config.get("split") or 0), seed))
        statuses[trial.status] = statuses.get(trial.status, 0) + len(seeds)
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    return trials_frame(rows), curves_df, statuses


def _refuse_a_held_folder(experiment: str, path: Path) -> None:
    """Raise :class:`StudyError` if ``OUT/NAME`` already holds a study (Ray Tune's or our files)."""
    held = tune.Tuner.can_restore(experiment) or any(
        (path / n).exists() for n in ("config.json", "trials.csv")
    )
    if held:
        raise StudyError(
            f"{experiment} already holds a study: continue it with --resume, or use another --name"
        )


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
        check_reachable(config.address)  # before anything is written
    if is_uri(config.out):
        remote(config)  # a bad URI fails here, before anything is written
    check_not_running(path)
    meta = None
    if resume:
        if is_uri(config.out):
            fetch(config, path)
        if not (path / "config.json").is_file() and not tune.Tuner.can_restore(experiment):
            raise StudyError(f"{experiment}: no study to resume there (check --out and --name)")
        meta = read_record(path)
        stored = StudyConfig.from_dict(meta.study)
        differ = contradictions(stored, config, set(asked))
        if differ:
            raise StudyError(
                f"--resume: {'; '.join(differ)} contradict{'s' if len(differ) == 1 else ''} the stored "
                "study: drop them to resume it as it began, or start a new study with another --name"
            )
        where = {k: getattr(config, k) for k in ("address", "num_cpus", "out")}
        config = stored.replace(**where)
        if not _in_units(config, meta, path) and not tune.Tuner.can_restore(experiment):
            raise StudyError(f"{experiment}: no study to resume there (check --out and --name)")
        if meta.run.get("complete"):
            echo(
                f"leafbn: {path} is already complete "
                f"({meta.run.get('trials_finished')} runs): nothing to resume"
            )
            if _in_units(config, meta, path):
                return StudyResult(path, read_table(path / "trials.csv"), True)
            trials_df, _, _ = collect_tables(experiment)
            return StudyResult(path, trials_df, True)
    else:
        _refuse_a_held_folder(experiment, path)
    data = leafdata.load(config.data)
    if resume and data.record()["sha256"] != meta.data.get("sha256"):
        raise StudyError(f"--data {config.data}: not the data this study started with (sha256 differs)")
    most = leafsplits.distinct_splits(data, config.val_fraction)
    if config.splits > most:
        raise StudyError(
            f"--splits {config.splits}: must be <= {most}, the distinct stratified validation draws of the "
            f"smallest class at --val-fraction {config.val_fraction}: lower --splits"
        )
    n_train = leafsplits.split_sizes(data, config.val_fraction)[0]
    for size in config.batch_size:
        if steps_per_epoch(n_train, size, config.drop_last) == 0:
            raise StudyError(
                f"--batch-size {size}: must be <= the {n_train} training rows with "
                "--drop-last, or no batch is left: lower it or leave out --drop-last"
            )
    # networks (runs): one per configuration, split and seed
    expected = config.optuna * config.seeds_per_trial if config.optuna else len(config.trial_configs())
    if not config.optuna:
        unit_study.check_budget(config, n_train)
    if not resume:
        prepare_dir(config, path)
    with study_lock(path), ThreadPoolExecutor(max_workers=1) as background:
        if not resume:
            _refuse_a_held_folder(experiment, path)  # another study may have started here meanwhile
        # The splits (and scikit-learn's import, 1 s) are made while Ray starts
        splits = background.submit(_splits, data, config)
        return _run(config, path, experiment, data, splits, expected, meta, echo, report, background)


def _splits(data: leafdata.LeafData, config: StudyConfig) -> tuple[leafsplits.Split, ...]:
    """The study's ``config.splits`` validation splits of ``data``."""
    return tuple(
        leafsplits.split(data, config.val_fraction, config.split_seed + k, config.standardize)
        for k in range(config.splits)
    )


def _in_units(config: StudyConfig, meta: StudyRecord | None, path: Path) -> bool:
    """Whether the study trains its runs in units (:mod:`leafbn.unit_study`): a grid without ASHA,
    new or begun in units. A grid begun before units resumes as it began (a Ray trial per run),
    unless none of its trials ever reported (killed before its first trial finished): it starts over."""
    if config.optuna or config.asha:
        return False
    if meta is None or meta.run.get("layout") == "units":
        return True
    return not any(path.glob("*/result.json"))


def _run(
    config: StudyConfig,
    path: Path,
    experiment: str,
    data: leafdata.LeafData,
    splitting: Future[tuple[leafsplits.Split, ...]],
    expected: int,
    meta: StudyRecord | None,
    echo,
    report: Callable[[Path], Path] | None,
    background: ThreadPoolExecutor,
) -> StudyResult:
    """The study itself, in its locked folder: ``meta`` is the stored config.json when resuming;
    ``splitting`` makes the splits in ``background``, which also reads the tables at the end."""
    resume = meta is not None
    units = _in_units(config, meta, path)
    if meta is None:
        meta = StudyRecord(
            study=config.to_dict(),
            data=data.record(),
            versions=versions(),
            run={"started": datetime.now(UTC).isoformat(timespec="seconds"), "trials_expected": expected},
        )
    earlier = meta.run.get("wall_time_s", 0) if resume else 0
    if resume:
        earlier += killed_session_seconds(meta.run, path)
    if units:
        meta.run["layout"] = "units"
    meta.run["session_started"] = time.time()  # a killed session's time is counted on resume
    meta.write(path / "config.json")
    with ExitStack() as after_trials:
        start = time.perf_counter()
        with ray_session(config):
            splits = splitting.result()
            cpus = int(ray.cluster_resources().get("CPU", 0))
            meta.run.update(ray_nodes=len([n for n in ray.nodes() if n["Alive"]]), ray_cpus=cpus)
            run = _run_units if units else _run_trials
            tables = run(config, path, experiment, data, splits, expected, meta, cpus, echo, background)
            # Once the trials end, the tables are written whatever comes; before, SIGTERM ends the
            # study as the process's handler says (a killed start loses nothing)
            after_trials.enter_context(sigterm_ignored())
        trials_df, finished, statuses = tables()
        complete = finished == expected
        meta.run.update(
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            wall_time_s=round(time.perf_counter() - start + earlier, 2),
            session_ended=time.time(),
            trials_finished=finished,
            trial_status=statuses,
            complete=complete,
        )
        meta.write(path / "config.json")
        if report is not None:
            echo(f"report: {report(path)}")
        publish(config, path)
        return StudyResult(path, trials_df, complete)


def _run_units(
    config: StudyConfig, path: Path, experiment: str, data: leafdata.LeafData, splits: tuple,
    expected: int, meta: StudyRecord, cpus: int, echo, background: ThreadPoolExecutor,
) -> Callable[[], tuple[pd.DataFrame, int, dict[str, int]]]:  # fmt: skip
    """A grid study in units, inside its Ray session; returns what writes and reads its tables."""
    n_train = len(splits[0].x_train)
    resumed = "unit_runs" in meta.run
    the_plan = unit_study.plan(config, n_train, cpus, meta.run.get("unit_runs"))
    meta.run.update(unit_runs=the_plan.size, units_expected=len(the_plan.units))
    meta.write(path / "config.json")  # before any unit: a resumed study cuts its runs alike
    done = len(unit_study.finished_units(path))
    echo(
        f"leafbn: {'resuming ' if resumed else ''}"
        f"{the_plan.describe(config, n_train, cpus)}; {done} units done before; "
        f"{data.record()['rows']} rows of {data.source} → {path}"
    )
    errors = unit_study.run_units(config, path, splits, the_plan, echo)

    def tables() -> tuple[pd.DataFrame, int, dict[str, int]]:
        finished, _ = unit_study.write_tables(config, path, the_plan, errors)
        statuses = {"TERMINATED": finished}
        if errors:
            statuses["ERROR"] = sum(the_plan.units[u][1] - the_plan.units[u][0] for u in errors)
        meta.run["units_finished"] = len(unit_study.finished_units(path))
        return read_table(path / "trials.csv"), finished, statuses

    return tables


def _run_trials(
    config: StudyConfig, path: Path, experiment: str, data: leafdata.LeafData, splits: tuple,
    expected: int, meta: StudyRecord, cpus: int, echo, background: ThreadPoolExecutor,
) -> Callable[[], tuple[pd.DataFrame, int, dict[str, int]]]:  # fmt: skip
    """An Optuna or ASHA study (or a grid begun before units): a Ray trial per configuration,
    inside its Ray session; returns what writes and reads its tables."""
    resume = tune.Tuner.can_restore(experiment)  # a new study's folder holds no Tuner (refused before)
    n_train = len(splits[0].x_train)
    # a resumed study keeps its Ray trials (one from before the setting trained one seed each)
    grain = int(meta.run.setdefault("seeds_per_trial", 1 if resume else config.seeds_per_trial))
    meta.write(path / "config.json")
    ray_trials = config.optuna or len(config.trial_groups(grain))
    guess = estimate_seconds(config, config.trial_configs(), n_train, cpus, n_trials=expected)
    mode = f"Optuna TPE, {expected} runs" if config.optuna else f"{expected} runs"
    if grain > 1:
        mode += f" ({grain} seeds per Ray trial: {ray_trials} Ray trials)"
    echo(
        f"leafbn: {'resuming ' if resume else ''}{mode} on {cpus} CPUs, "
        f"{data.record()['rows']} rows of {data.source}; "
        f"estimated {timedelta(seconds=int(guess))} → {experiment}"
    )
    progress = ProgressLine(expected, echo=echo)
    if resume:
        tuner = tune.Tuner.restore(
            experiment, trainable=_with_resources(splits), resume_unfinished=True, resume_errored=True
        )
    else:
        tuner = build_tuner(config, splits, callbacks=[progress], grain=grain)
    try:
        with term_as_interrupt(), _quiet_never_started():
            tuner.fit()
    except KeyboardInterrupt:
        echo("leafbn: interrupted; writing what finished (continue with --resume)")
    # Read from disk while Ray shuts down (it waits on its processes one by one, ~1.3 s)
    reading = background.submit(collect_tables, experiment)

    def tables() -> tuple[pd.DataFrame, int, dict[str, int]]:
        trials_df, curves_df, statuses = reading.result()
        trials_df.to_csv(path / "trials.csv", index=False)
        # a study begun with curves.csv keeps it (its curves are written whole, as before)
        fmt = "csv" if (path / "curves.csv").exists() else config.curves
        write_curves(curves_df, path, fmt)
        return trials_df, statuses.get("TERMINATED", 0), statuses

    return tables
