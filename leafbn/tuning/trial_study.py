"""An Optuna or ASHA study on Ray Tune: one Ray trial per configuration (its seeds side by side).

Optuna's sampler and ASHA's scheduler judge one objective per trial, so these studies keep a Ray
trial per configuration: each trial reports every ``--report-every`` epochs with its curves, and the
tables are read back from Ray Tune's experiment folder (``OUT/NAME``) at the end. A grid begun
before units (a Ray trial per run) resumes here too. A grid is :mod:`leafbn.tuning.unit_study`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import optuna
import pandas as pd
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from leafbn.config import StudyConfig, flat_config, trial_seeds
from leafbn.data import loaders as leafdata
from leafbn.data import splits as leafsplits
from leafbn.results.record import StudyRecord
from leafbn.results.table_writer import write_curves
from leafbn.results.tables import CURVE_COLUMNS, curves_from_history, network_id, trial_row, trials_frame
from leafbn.tuning.loggers import logger_callbacks
from leafbn.tuning.progress import ProgressLine
from leafbn.tuning.session import term_as_interrupt
from leafbn.tuning.spaces import estimate_seconds, optuna_space
from leafbn.tuning.storage import is_uri, study_dir
from leafbn.tuning.trial import trainable

__all__ = ["build_tuner", "collect_tables", "quiet_never_started", "run_trials"]


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
    loss, :data:`leafbn.tuning.spaces.WORST_LOSS` for a diverged one). ``config.asha`` adds Ray Tune's
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
def quiet_never_started() -> Iterator[None]:
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
    with quiet_never_started():
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


def run_trials(
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
        with term_as_interrupt(), quiet_never_started():
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
