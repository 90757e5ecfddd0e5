"""Ray Tune's results → the study's two tables, ``trials.csv`` and ``curves.csv``.

See ``docs/results.md`` for every column. A trial reports once per epoch; a trial Ray Tune retried
after a failure starts again from epoch 1, so only its last attempt's rows are kept.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leafbn.config import TRIAL_FIELDS

__all__ = [
    "CURVE_COLUMNS", "TRIAL_COLUMNS", "NUMERIC_COLUMNS", "BOOLEAN_COLUMNS", "TableError",
    "curves_from_history", "epochs_of", "flat_config", "last_attempt", "read_table", "trial_row",
    "trials_frame",
]  # fmt: skip

CURVE_COLUMNS = ["trial_id", "split", "epoch", "train_loss", "val_loss", "val_accuracy"]
# The trial's own settings, copied from its Ray Tune config into its trials.csv row.
_CONFIG_COLUMNS = (*TRIAL_FIELDS, "drop_last", "epochs", "split", "seed")
TRIAL_COLUMNS = [
    "trial_id", *_CONFIG_COLUMNS,
    "final_val_loss", "best_val_loss", "best_epoch", "final_val_accuracy", "final_train_loss",
    "diverged", "diverged_epoch", "epochs_run", "time_s", "node_id", "retries", "error",
]  # fmt: skip


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's Ray Tune config in one shape: a grid trial's ``trial`` dict merged into the rest."""
    return {**config.get("trial", {}), **{k: v for k, v in config.items() if k != "trial"}}


#: Columns of either table that hold numbers (empty, nan and inf included) or booleans.
NUMERIC_COLUMNS = frozenset(
    ("lr", "depth", "width", "bn_momentum", "batch_size", "epochs", "split", "seed", "final_val_loss",
     "best_val_loss", "best_epoch", "final_val_accuracy", "final_train_loss", "diverged_epoch", "epochs_run",
     "time_s", "retries", "epoch", "train_loss", "val_loss", "val_accuracy")
)  # fmt: skip
BOOLEAN_COLUMNS = frozenset(("bn", "diverged", "drop_last"))
_BOOLEANS = {"true", "false", "1", "0", "1.0", "0.0", "yes", "no", "t", "f", "y", "n", ""}


class TableError(ValueError):
    """A malformed table: the message names the file, the line and what is wrong there."""


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
    return pd.read_csv(io.StringIO(text))


def epochs_of(history: pd.DataFrame) -> pd.DataFrame:
    """One row per epoch from a trial's report history (Ray Tune's rows of ``result.json``).

    A report carries the epochs since the previous one in its ``curve`` list
    (``[epoch, train_loss, val_loss, val_accuracy]`` each); a report without one is one epoch.
    """
    metrics = CURVE_COLUMNS[2:]
    if history.empty or "epoch" not in history:
        return pd.DataFrame(columns=metrics)
    if "curve" not in history:
        return history[[c for c in metrics if c in history]].reset_index(drop=True)
    rows = [entry for curve in history["curve"] if isinstance(curve, list) for entry in curve]
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


def curves_from_history(trial_id: str, history: pd.DataFrame, split: int = 0) -> pd.DataFrame:
    """``curves.csv`` rows of one trial (on train/validation split ``split``) from its report history."""
    rows = last_attempt(epochs_of(history))
    out = pd.DataFrame({c: rows[c].to_numpy() if c in rows else [] for c in CURVE_COLUMNS[2:]})
    out.insert(0, "split", int(split))
    out.insert(0, "trial_id", trial_id)
    return out


def trial_row(
    trial_id: str,
    config: dict[str, Any],
    history: pd.DataFrame,
    retries: int = 0,
    error: str = "",
) -> dict[str, Any]:
    """One ``trials.csv`` row from a trial's config and its report history."""
    rows = last_attempt(epochs_of(history))
    row: dict[str, Any] = {"trial_id": trial_id}
    row.update({k: config.get(k) for k in _CONFIG_COLUMNS})
    row["split"] = int(config.get("split") or 0)  # a study from before splits ran on split 0
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
        time_s=math.nan if report is None else float(report["time_s"]),
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
    return frame.sort_values(
        ["bn", "lr", "depth", "width", "bn_momentum", "batch_size", "split", "seed"], kind="stable"
    )
