"""Writing a study's tables: ``trials.csv`` and its curves (``curves.parquet`` or ``curves.csv``).

A grid's tables are streamed from its record of finished units (:func:`write_unit_tables`), one
unit at a time, so they are never whole in memory; an Optuna or ASHA study's curves are written
whole (:func:`write_curves`). Each file is written beside its place and renamed over it. Reading
them back is :mod:`leafbn.results.tables`'.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leafbn.results.tables import CURVE_COLUMNS, CURVE_FILES, trials_frame

__all__ = ["write_curves", "write_unit_tables"]

#: curves.parquet's columns and types (CURVE_COLUMNS).
_CURVE_SCHEMA = pa.schema(
    [("trial_id", pa.string()), ("split", pa.int64()), ("epoch", pa.int64()),
     ("train_loss", pa.float64()), ("val_loss", pa.float64()), ("val_accuracy", pa.float64())]
)  # fmt: skip
#: Curve rows gathered before a row group of curves.parquet is written.
_ROW_GROUP = 250_000


def write_curves(curves: pd.DataFrame, folder: Path, fmt: str = "parquet") -> Path:
    """Write a whole curves table (an Optuna or ASHA study's) to ``folder`` as ``fmt``; its path."""
    path = folder / CURVE_FILES[fmt]
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        curves.to_csv(tmp, index=False)
    else:
        table = pa.Table.from_pandas(curves[CURVE_COLUMNS].astype(_CURVE_DTYPES), schema=_CURVE_SCHEMA,
                                     preserve_index=False)  # fmt: skip
        pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


_CURVE_DTYPES = {"trial_id": str, "split": "int64", "epoch": "int64", "train_loss": float,
                 "val_loss": float, "val_accuracy": float}  # fmt: skip


def write_unit_tables(folder: Path, units: Iterable[dict[str, Any]], fmt: str = "parquet") -> int:
    """Write ``trials.csv`` and the curves (``fmt``) of a grid study in ``folder`` from its finished
    ``units`` (:func:`leafbn.tuning.units.iter_units`), one unit at a time: the tables are never whole in
    memory. Each file is written beside and renamed over the old one. Returns the rows written."""
    trials_path, curves_path = folder / "trials.csv", folder / CURVE_FILES[fmt]
    trials_tmp, curves_tmp = (p.with_name(p.name + ".tmp") for p in (trials_path, curves_path))
    rows = 0
    pending: list[pd.DataFrame] = []
    writer = pq.ParquetWriter(curves_tmp, _CURVE_SCHEMA, compression="zstd") if fmt == "parquet" else None
    with open(trials_tmp, "w", newline="") as trials_out, ExitStack() as closing:
        csv_out = None if writer else closing.enter_context(open(curves_tmp, "w", newline=""))
        if writer is not None:
            closing.callback(writer.close)
        trials_frame([]).to_csv(trials_out, index=False)
        if csv_out is not None:
            pd.DataFrame(columns=CURVE_COLUMNS).to_csv(csv_out, index=False)
        for unit in units:
            frame = trials_frame(unit["rows"])
            frame.to_csv(trials_out, index=False, header=False)
            rows += len(frame)
            curves = pd.DataFrame(unit["curves"], columns=CURVE_COLUMNS).astype(_CURVE_DTYPES)
            if csv_out is not None:
                curves.to_csv(csv_out, index=False, header=False)
                continue
            pending.append(curves)
            if sum(map(len, pending)) >= _ROW_GROUP:
                writer.write_table(pa.Table.from_pandas(pd.concat(pending), schema=_CURVE_SCHEMA,
                                                        preserve_index=False))  # fmt: skip
                pending = []
        if writer is not None and pending:
            writer.write_table(pa.Table.from_pandas(pd.concat(pending), schema=_CURVE_SCHEMA,
                                                    preserve_index=False))  # fmt: skip
    trials_tmp.replace(trials_path)
    curves_tmp.replace(curves_path)
    return rows
