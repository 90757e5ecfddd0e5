"""A figure's contexts: the rows of a table split by the axes (other than lr and bn) that vary, each
with a label a panel can print. Shared by the plot modules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from leafbn.config import TRIAL_FIELDS

__all__ = ["contexts", "context_text", "in_context", "value_text", "varying"]


def varying(df: pd.DataFrame, exclude: tuple[str, ...] = ()) -> list[str]:
    """The axes of TRIAL_FIELDS that ``df`` has and that take several values there, less ``exclude``."""
    present = [f for f in TRIAL_FIELDS if f in df.columns and f not in exclude]
    return [f for f in present if df[f].nunique(dropna=False) > 1]


def contexts(df: pd.DataFrame) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
    """Split ``df`` by the axes other than lr and bn that vary: (label, key, rows) per context."""
    axes = varying(df, exclude=("lr", "bn"))
    if not axes:
        return [("", {}, df)]
    out = []
    for key, rows in df.groupby(axes, dropna=False, sort=True):
        values = dict(zip(axes, key if isinstance(key, tuple) else (key,)))
        out.append((context_text(values), values, rows))
    return out


def context_text(values: dict[str, Any]) -> str:
    """A context as a figure names it: ``"depth=3 · width=100"`` (empty for no axes)."""
    return " · ".join(f"{k}={value_text(v)}" for k, v in values.items())


def value_text(value: Any) -> str:
    """An axis value as a label prints it: floats by ``:g``, others as they are."""
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def in_context(df: pd.DataFrame, family: dict[str, Any]) -> pd.DataFrame:
    """The rows of ``df`` in the context ``family`` (axis -> value; an axis ``df`` lacks is ignored,
    and a missing value matches a missing one, as :func:`contexts` groups them)."""
    keep = pd.Series(True, index=df.index)
    for k, v in family.items():
        if k in df.columns:
            keep &= df[k].isna() if pd.isna(v) else df[k] == v
    return df[keep]
