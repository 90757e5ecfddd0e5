"""Run a study on Ray Tune: its checks, its folder, resume, and the tables written at the end.

``run_study(config)`` is the one call behind ``study/run.py``: it loads and splits the data once,
puts the splits in Ray's object store (``tune.with_parameters``, so worker nodes need no data
files), runs function trainables of 1 CPU each (``reuse_actors`` keeps a worker's TensorFlow and
compiled programs warm) and writes ``config.json``, ``trials.csv`` and the curves
(``curves.parquet``) in ``OUT/NAME/``. A grid trains its runs in units
(:mod:`leafbn.tuning.unit_study`); an Optuna or ASHA study a configuration per Ray trial
(:mod:`leafbn.tuning.trial_study`).

Where it runs is :mod:`leafbn.tuning.session`'s (a local Ray on 127.0.0.1, or a cluster); where its
files live, :mod:`leafbn.tuning.storage`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import ray
from ray import tune

from leafbn.config import StudyConfig, contradictions, steps_per_epoch
from leafbn.data import loaders as leafdata
from leafbn.data import splits as leafsplits
from leafbn.results.provenance import check_versions
from leafbn.results.record import StudyRecord
from leafbn.results.tables import load_tables, read_table
from leafbn.tuning import trial_study, unit_study
from leafbn.tuning.loggers import check_loggers
from leafbn.tuning.session import StudyError, check_reachable, ray_session, sigterm_ignored
from leafbn.tuning.storage import (
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
from leafbn.tuning.trial_study import build_tuner, collect_tables

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


def _refuse_a_held_folder(experiment: str, path: Path) -> None:
    """Raise :class:`StudyError` if ``OUT/NAME`` already holds a study (Ray Tune's or our files)."""
    held = tune.Tuner.can_restore(experiment) or any(
        (path / n).exists() for n in ("config.json", "trials.csv")
    )
    if held:
        raise StudyError(
            f"{experiment} already holds a study: continue it with --resume, or use another --name"
        )


def _stored(
    config: StudyConfig,
    path: Path,
    experiment: str,
    asked: set[str] | frozenset[str],
    echo,
    strict_versions: bool = False,
) -> tuple[StudyConfig, StudyRecord, StudyResult | None]:
    """The stored study in ``path`` to resume: its config (where it runs taken from ``config``), its
    record, and its result if it is already complete (nothing to run); :class:`StudyError` if there
    is none, ``asked`` flags contradict it, or (``strict_versions``) installed versions differ from
    the recorded ones, which is otherwise one warning line."""
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
    refusal = check_versions(meta, strict_versions)
    if refusal:
        raise StudyError(refusal)
    config = stored.replace(**{k: getattr(config, k) for k in ("address", "num_cpus", "out")})
    units = _in_units(config, meta, path)
    if not units and not tune.Tuner.can_restore(experiment):
        raise StudyError(f"{experiment}: no study to resume there (check --out and --name)")
    if not meta.run.get("complete"):
        return config, meta, None
    echo(f"leafbn: {path} is already complete ({meta.run.get('trials_finished')} runs): nothing to resume")
    trials = read_table(path / "trials.csv") if units else collect_tables(experiment)[0]
    return config, meta, StudyResult(path, trials, True)


def run_study(
    config: StudyConfig,
    echo=print,
    resume: bool = False,
    report: Callable[[Path], Path] | None = None,
    asked: set[str] | frozenset[str] = frozenset(),
    strict_versions: bool = False,
) -> StudyResult:
    """Run ``config``'s study on Ray Tune and write its results; returns where they are.

    With ``resume``, continue the study already in ``OUT/NAME`` (its own ``config.json`` wins;
    only where it runs — ``address``, ``num_cpus`` — comes from ``config``): a grid trains the
    units not in its record (``units/``), an Optuna/ASHA study restores Ray Tune's state (finished
    trials kept, unfinished and errored ones run again). A finished study is not run again. Raises
    :class:`StudyError` (one line) for an unwritable ``--out``, an unreachable ``--address``, a
    grid of more runs than ``max_runs`` (with its estimate), or an existing study without
    ``resume``; :class:`leafbn.data.DataError` for bad data. An interrupted study still writes the
    tables of what it finished. ``report``: called with the study's folder at the end, before any
    copy to a URI ``--out`` (the CLI passes :func:`leafbn.report.write_report`); returns its path.
    ``asked``: the settings the user gave explicitly; on ``resume`` any of them (besides where the
    study runs) that contradicts the stored study is refused, naming each. On ``resume``, installed
    versions other than the study's recorded ones are one warning line on stderr, or with
    ``strict_versions`` a :class:`StudyError` with that line, before anything runs.
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
        config, meta, done = _stored(config, path, experiment, asked, echo, strict_versions)
        if done is not None:
            return done
    else:
        _refuse_a_held_folder(experiment, path)
    data, n_train = _checked_data(config, meta)
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


def _checked_data(config: StudyConfig, meta: StudyRecord | None) -> tuple[leafdata.LeafData, int]:
    """``config``'s data and its training rows per split, refused (:class:`StudyError`) where it is
    not a resumed study's (``meta``: its record, None for a new study), has fewer distinct splits
    than ``--splits`` or fewer training rows than a ``--batch-size`` with ``--drop-last``."""
    data = leafdata.load(config.data)
    if meta is not None and data.record()["sha256"] != meta.data.get("sha256"):
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
    return data, n_train


def _splits(data: leafdata.LeafData, config: StudyConfig) -> tuple[leafsplits.Split, ...]:
    """The study's ``config.splits`` validation splits of ``data``."""
    return tuple(
        leafsplits.split(data, config.val_fraction, config.split_seed + k, config.standardize)
        for k in range(config.splits)
    )


def _in_units(config: StudyConfig, meta: StudyRecord | None, path: Path) -> bool:
    """Whether the study trains its runs in units (:mod:`leafbn.tuning.unit_study`): a grid without ASHA,
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
        now = datetime.now(UTC).isoformat(timespec="seconds")
        meta.resumes.append({"started": now, "versions": versions()})  # beside the first session's
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
            run = _run_units if units else trial_study.run_trials
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
