"""The study's two tables: ``trials.csv`` (one row per run) and the learning curves
(``curves.parquet``, or ``curves.csv`` with ``--curves csv`` and in studies written before).

See ``docs/results.md`` for every column. A grid study's tables are written from its record of
finished units (:mod:`leafbn.tuning.units`), one unit at a time
(:mod:`leafbn.results.table_writer`); an Optuna or ASHA study's from Ray Tune's reports: a trial
reports once per epoch, and a trial Ray Tune retried after a failure starts again from epoch 1, so
only its last attempt's rows are kept.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from leafbn.config import TRIAL_FIELDS, axis_names
from leafbn.errors import TableError
from leafbn.results.record import StudyRecord

__all__ = [
    "CURVE_COLUMNS", "TRIAL_COLUMNS", "NUMERIC_COLUMNS", "BOOLEAN_COLUMNS", "CURVE_FILES", "TableError",
    "curves_from_history", "epochs_of", "last_attempt", "load_tables", "network_id",
    "normalise_trials", "read_table", "reported_params", "trial_row", "trials_frame", "curves_file",
]  # fmt: skip

CURVE_COLUMNS = ["trial_id", "split", "epoch", "train_loss", "val_loss", "val_accuracy"]
# The trial's own settings, copied from its Ray Tune config into its trials.csv row.
_CONFIG_COLUMNS = (*TRIAL_FIELDS, "drop_last", "epochs", "split", "seed")
TRIAL_COLUMNS = [
    "trial_id", "ray_trial", *_CONFIG_COLUMNS,
    "final_val_loss", "best_val_loss", "best_epoch", "final_val_accuracy", "final_train_loss",
    "diverged", "diverged_epoch", "epochs_run", "time_s", "node_id", "retries", "error",
]  # fmt: skip


#: Columns of either table that hold numbers (empty, nan and inf included) or booleans.
NUMERIC_COLUMNS = frozenset(
    (*axis_names(int, float), "epochs", "split", "seed", "final_val_loss",
     "best_val_loss", "best_epoch", "final_val_accuracy", "final_train_loss", "diverged_epoch", "epochs_run",
     "time_s", "retries", "epoch", "train_loss", "val_loss", "val_accuracy")
)  # fmt: skip
BOOLEAN_COLUMNS = frozenset((*axis_names(bool), "diverged", "drop_last"))
#: pandas before 3.1 reads every float as written only with its round-trip converter; from 3.1 every
#: mode is that converter and asking for it is deprecated.
_PANDAS = tuple(int(part) for part in pd.__version__.split(".")[:2])
_EXACT_FLOATS: dict[str, str] = {} if _PANDAS >= (3, 1) else {"float_precision": "round_trip"}
#: The spellings of true and false a boolean cell may have (pandas writes True/False; "" is false).
_TRUE = {"true", "1", "yes", "t", "y", "1.0"}
_BOOLEANS = _TRUE | {"false", "0", "no", "f", "n", "0.0", ""}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read ``trials.csv`` or ``curves.csv`` strictly, then with pandas.

    Every row must have the header's number of fields, every cell of a column in
    :data:`NUMERIC_COLUMNS` must be a number (or empty, ``nan``, ``inf``), every cell of a column in
    :data:`BOOLEAN_COLUMNS` a truth value, and the file must end with a line end (pandas writes
    one; a file without it was cut short, e.g. by a full disk). Raises :class:`TableError` naming
    the file and the first bad line; ``pandas.errors.EmptyDataError`` for a zero-byte file.
    """
    path = Path(path)
    text = path.read_text()
    if not text:
        raise pd.errors.EmptyDataError(f"{path}: empty")
    if not text.endswith("\n"):
        line = text.count("\n") + 1
        raise TableError(f"{path}: line {line} ends without a line end: the file was cut short (restore it)")
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    checks = [(i, name) for i, name in enumerate(header) if name in NUMERIC_COLUMNS | BOOLEAN_COLUMNS]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise TableError(f"{path}: line {number} has {len(row)} fields, the header {len(header)}")
        for i, name in checks:
            cell = row[i].strip()
            if name in BOOLEAN_COLUMNS:
                if cell.lower() not in _BOOLEANS:
                    raise TableError(f"{path}: line {number}, column {name}: {cell!r} is not true or false")
                continue
            try:
                float(cell or "nan")
            except ValueError:
                raise TableError(f"{path}: line {number}, column {name}: {cell!r} is not a number") from None
    return pd.read_csv(io.StringIO(text), **_EXACT_FLOATS)  # every float as written


def epochs_of(history: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """One row per epoch of one network (``seed``) from its trial's report history (Ray Tune's
    rows of ``result.json``).

    A report carries, per network, the epochs since the previous report (``networks``: ``seed``
    and a ``curve`` of ``[epoch, train_loss, val_loss, val_accuracy]``). Older studies' reports
    carry one network's ``curve``, or are one epoch each.
    """
    metrics = CURVE_COLUMNS[2:]
    if history.empty or "epoch" not in history:
        return pd.DataFrame(columns=metrics)
    if "networks" in history:
        rows = [
            entry
            for networks in history["networks"]
            if isinstance(networks, list)
            for network in networks
            if seed is None or network.get("seed") == seed
            for entry in network.get("curve", [])
        ]
    elif "curve" in history:
        rows = [entry for curve in history["curve"] if isinstance(curve, list) for entry in curve]
    else:
        return history[[c for c in metrics if c in history]].reset_index(drop=True)
    frame = pd.DataFrame(rows, columns=metrics).astype(float)
    frame["epoch"] = frame["epoch"].astype(int)
    return frame


def last_attempt(epochs: pd.DataFrame) -> pd.DataFrame:
    """The epochs of a trial since its last start (its last ``epoch == 1``): a trial Ray Tune
    retried from scratch reports its first epochs again."""
    if epochs.empty or "epoch" not in epochs:
        return epochs.iloc[0:0]
    starts = np.flatnonzero(epochs["epoch"].to_numpy() == 1)
    return epochs.iloc[starts[-1] if len(starts) else 0 :]


def network_id(ray_trial: str, seed: int, networks: int) -> str:
    """A network's ``trial_id`` in both tables: Ray Tune's trial id, and ``-s<seed>`` when the
    Ray trial trained several networks."""
    return ray_trial if networks == 1 else f"{ray_trial}-s{seed}"


def curves_from_history(
    trial_id: str, history: pd.DataFrame, split: int = 0, seed: int | None = None
) -> pd.DataFrame:
    """``curves.csv`` rows of one network (``seed``; None: the trial's only one), on train/validation
    split ``split``, from its trial's report history."""
    rows = last_attempt(epochs_of(history, seed))
    out = pd.DataFrame({c: rows[c].to_numpy() if c in rows else [] for c in CURVE_COLUMNS[2:]})
    out.insert(0, "split", int(split))
    out.insert(0, "trial_id", trial_id)
    return out


def reported_params(history: pd.DataFrame) -> dict[str, Any]:
    """The settings a trial reported (``params``), from its last report; empty if it reported none."""
    if history.empty:
        return {}
    last = history.iloc[-1]
    return {k.removeprefix("params/"): last[k] for k in history.columns if k.startswith("params/")}


def trial_row(
    trial_id: str,
    config: dict[str, Any],
    history: pd.DataFrame,
    retries: int = 0,
    error: str = "",
    seed: int | None = None,
    networks: int = 1,
    ray_trial: str | None = None,
) -> dict[str, Any]:
    """One ``trials.csv`` row: network ``seed`` of a trial that trained ``networks`` networks.

    Its settings are those the trial reported (``params``); a trial that never reported takes
    them from its Ray Tune ``config``. ``time_s`` is the trial's trainer time shared equally by
    its networks.
    """
    rows = last_attempt(epochs_of(history, seed))
    row: dict[str, Any] = {"trial_id": trial_id, "ray_trial": ray_trial or trial_id}
    own = {**config, **reported_params(history)}
    row.update({k: own.get(k) for k in _CONFIG_COLUMNS})
    row["seed"] = seed if seed is not None else own.get("seed")
    row["split"] = int(own.get("split") or 0)  # a study from before splits ran on split 0
    finite = rows[np.isfinite(rows["val_loss"].to_numpy(dtype=float))] if len(rows) else rows
    last = rows.iloc[-1] if len(rows) else None
    report = history.iloc[-1] if len(rows) else None  # the last report: time and node
    diverged = bool(
        last is not None and not (np.isfinite(last["train_loss"]) and np.isfinite(last["val_loss"]))
    )
    best = finite.loc[finite["val_loss"].idxmin()] if len(finite) else None
    row.update(
        final_val_loss=math.nan if last is None or diverged else float(last["val_loss"]),
        best_val_loss=math.nan if best is None else float(best["val_loss"]),
        best_epoch=None if best is None else int(best["epoch"]),
        final_val_accuracy=math.nan if last is None or diverged else float(last["val_accuracy"]),
        final_train_loss=math.nan if last is None else float(last["train_loss"]),
        diverged=diverged,
        diverged_epoch=int(last["epoch"]) if diverged else None,
        epochs_run=0 if last is None else int(last["epoch"]),
        time_s=math.nan if report is None else float(report["time_s"]) / max(networks, 1),
        node_id="" if report is None else str(report.get("node_id", "")),
        retries=int(retries),
        error=error,
    )
    return row


def trials_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The ``trials.csv`` table from :func:`trial_row` rows, with stable dtypes and order."""
    frame = pd.DataFrame(list(rows), columns=TRIAL_COLUMNS)
    for column in ("best_epoch", "diverged_epoch"):
        frame[column] = frame[column].astype("Int64")
    return frame.sort_values([*axis_names(by_sort=True), "split", "seed"], kind="stable")


#: The curves' file of each ``--curves`` format.
CURVE_FILES = {"parquet": "curves.parquet", "csv": "curves.csv"}


def curves_file(folder: str | Path) -> Path | None:
    """The study's curves file in ``folder``: ``curves.parquet`` if present, else ``curves.csv`` if
    present, else None."""
    for name in CURVE_FILES.values():
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


# ------------------------------------------------------------------------------------------------
# Reading a study's tables back
# ------------------------------------------------------------------------------------------------
#: Columns ``trials.csv`` must have for any analysis: the learning rate, BN and the outcome.
_REQUIRED = (*axis_names(role="nuisance"), *axis_names(role="scientific"), "final_val_loss")


def load_tables(results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, StudyRecord]:
    """Read a study's ``trials.csv``, its curves (``curves.parquet``, else ``curves.csv``) and
    ``config.json``.

    Args:
        results_dir: the study's folder (``OUT/NAME``).

    Returns:
        ``(trials, curves, record)``: ``trials`` with ``bn``/``diverged`` as booleans (``diverged``
        is derived from a non-finite ``final_val_loss`` when the column is missing) and numeric
        columns as floats; ``curves`` (empty with its documented columns when the file is missing);
        ``record``, the :class:`leafbn.results.record.StudyRecord` of ``config.json`` (empty when it
        is missing or unreadable).

    Raises:
        FileNotFoundError: ``results_dir`` or its ``trials.csv`` does not exist.
        ValueError: ``trials.csv`` cannot be parsed or lacks a required column
            (``lr``, ``bn``, ``final_val_loss``).

    A missing or unreadable ``curves.csv`` / ``config.json`` and an empty ``trials.csv`` only warn
    (:class:`UserWarning`).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results directory")
    trials_path = root / "trials.csv"
    if not trials_path.is_file():
        raise FileNotFoundError(f"{trials_path}: no trials.csv (has the study run?)")
    try:
        trials = read_table(trials_path)
    except pd.errors.EmptyDataError:  # a zero-byte file: an empty study, warned about below
        trials = pd.DataFrame(columns=list(_REQUIRED))
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{trials_path}: unreadable table ({exc})") from exc
    missing = [c for c in _REQUIRED if c not in trials.columns]
    if missing:
        raise ValueError(f"{trials_path}: missing column(s) {', '.join(missing)}")
    trials = normalise_trials(trials)
    if trials.empty:
        warnings.warn(f"{trials_path} is empty: no trials to analyse", stacklevel=2)

    curves = _load_curves(root)
    record = StudyRecord()
    config_path = root / "config.json"
    if config_path.is_file():
        try:
            record = StudyRecord.read(config_path)
        except (ValueError, OSError) as exc:  # bad JSON or text, not an object, unreadable
            warnings.warn(f"{config_path}: unreadable ({exc}); ignored", stacklevel=2)
    else:
        warnings.warn(f"{config_path} is missing: the report cannot say what was run", stacklevel=2)
    return trials, curves, record


def _load_curves(root: Path) -> pd.DataFrame:
    """The study's curves: ``curves.parquet`` when present, else ``curves.csv`` (studies written
    before, and ``--curves csv``); an empty table, with a warning, when neither can be read."""
    empty = pd.DataFrame(columns=["trial_id", "epoch", "train_loss", "val_loss", "val_accuracy"])
    path = curves_file(root)
    if path is None:
        warnings.warn(f"{root / 'curves.csv'} is missing: no learning curves", stacklevel=3)
        return empty
    try:
        curves = pd.read_parquet(path) if path.suffix == ".parquet" else read_table(path)
    except pd.errors.EmptyDataError:
        warnings.warn(f"{path} is empty: no learning curves", stacklevel=3)
        return empty
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, pa.ArrowException) as exc:
        warnings.warn(f"{path}: unreadable ({exc}); no learning curves", stacklevel=3)
        return empty
    # a malformed csv row (TableError) is an error: a number from a cut line must not be reported
    for col in ("epoch", "train_loss", "val_loss", "val_accuracy"):
        if col in curves.columns:
            curves[col] = pd.to_numeric(curves[col], errors="coerce")
    if "trial_id" in curves.columns:
        curves["trial_id"] = curves["trial_id"].astype(str)
    return curves


def _to_bool(series: pd.Series) -> pd.Series:
    """``True``/``False``/``1``/``0``/``yes``/``no`` (any case) → bool; anything else → False."""
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    return text.isin(_TRUE)


def normalise_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Booleans as bool, numbers as float, ``diverged`` present."""
    trials = trials.copy()
    for col in axis_names(bool):
        if col in trials.columns:
            trials[col] = _to_bool(trials[col])
    numeric = [
        *axis_names(int, float),
        "seed",
        "outcome",
        "final_val_accuracy",
        "final_train_loss",
        "final_val_loss",
        "split",
        "best_val_loss",
        "epochs_run",
        "diverged_epoch",
        "time_s",
        "retries",
    ]
    for col in numeric:
        if col in trials.columns:
            trials[col] = pd.to_numeric(trials[col], errors="coerce")
    for col in axis_names(int):
        if col in trials.columns and trials[col].notna().all():
            trials[col] = trials[col].astype(int)
    if "diverged" in trials.columns:
        trials["diverged"] = _to_bool(trials["diverged"])
    else:
        trials["diverged"] = ~np.isfinite(trials["final_val_loss"].astype(float))
    if "trial_id" in trials.columns:
        trials["trial_id"] = trials["trial_id"].astype(str)
    return trials
