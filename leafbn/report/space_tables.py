"""Numbers over the study's space, for the figures that draw it: the learning curves' mean per
configuration and epoch (:func:`curve_summary`), and the tables of the heat maps over learning rate ×
one architecture axis (:func:`heatmap_axes`, :func:`heatmap_data`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from leafbn.report import analysis

__all__ = ["curve_summary", "heatmap_axes", "heatmap_data"]


# --- Curves and heatmaps ---------------------------------------------------------------------------------
def curve_summary(trials: pd.DataFrame, curves: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per configuration and epoch: the learning curves' mean over seeds with a CI.

    Args:
        trials: the trials table (gives each ``trial_id`` its configuration).
        curves: the curves table (``trial_id, epoch, train_loss, val_loss, val_accuracy``).
        confidence: level of the t-distribution confidence intervals.

    Returns:
        One row per configuration × epoch: the axis columns, ``epoch``, ``n`` (trials with a
        finite ``val_loss`` at that epoch), ``n_diverged`` (trials whose last, non-finite row is at
        that epoch), and ``train_loss_mean/_ci``, ``val_loss_mean/_ci``. Means are over the
        trials still finite at that epoch, so after a divergence they describe the survivors only.
        Empty when either table is empty or they share no ``trial_id``.
    """
    trials = analysis.prepare(trials)
    keys = analysis.config_axes(trials)
    columns = [
        *keys,
        "epoch",
        "n",
        "n_diverged",
        "train_loss_mean",
        "train_loss_ci",
        "val_loss_mean",
        "val_loss_ci",
    ]
    need = {"trial_id", "epoch", "train_loss", "val_loss"}
    if trials.empty or curves.empty or "trial_id" not in trials.columns or not need <= set(curves.columns):
        return pd.DataFrame(columns=columns)
    merged = curves.merge(trials[["trial_id", *keys]], on="trial_id", how="inner")
    rows = []
    for key, group in analysis.groups(merged, [*keys, "epoch"]):
        row: dict[str, Any] = dict(zip([*keys, "epoch"], key))
        train = group["train_loss"].astype(float)
        val = group["val_loss"].astype(float)
        row["n_diverged"] = int((~np.isfinite(val) | ~np.isfinite(train)).sum())
        _, m_tr, _, ci_tr = analysis._mean_std_ci(train[np.isfinite(train)], confidence)
        n_va, m_va, _, ci_va = analysis._mean_std_ci(val[np.isfinite(val)], confidence)
        row.update(n=n_va, train_loss_mean=m_tr, train_loss_ci=ci_tr, val_loss_mean=m_va, val_loss_ci=ci_va)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def heatmap_axes(trials: pd.DataFrame) -> list[str]:
    """The axes besides ``lr`` and ``bn`` that take more than one value in the study."""
    trials = analysis.prepare(trials)
    return [f for f in analysis.context_axes(trials) if trials[f].nunique(dropna=False) > 1]


def heatmap_data(trials: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Mean validation loss and divergence rate over learning rate × ``axis``, per BN setting.

    Other axes are pooled (all their trials count). For ``bn_momentum`` and ``bn_placement``,
    which mean nothing without BN, only the BN trials are kept.

    Returns:
        One row per ``bn`` × ``axis`` × ``lr``: those columns, ``val_loss_mean`` and
        ``val_loss_median`` (over the non-diverged trials with a finite loss), ``divergence_rate``
        and ``n_runs``.
    """
    trials = analysis.prepare(trials)
    columns = ["bn", axis, "lr", "val_loss_mean", "val_loss_median", "divergence_rate", "n_runs"]
    if trials.empty or axis not in trials.columns:
        return pd.DataFrame(columns=columns)
    if axis in ("bn_momentum", "bn_placement"):
        trials = trials[trials["bn"]]
    rows = []
    for (bn, value, lr), group in trials.groupby(["bn", axis, "lr"], sort=True):
        ok = analysis._finite_ok(group, "outcome")
        rows.append(
            {
                "bn": bool(bn),
                axis: value,
                "lr": lr,
                "val_loss_mean": float(ok.mean()) if ok.size else math.nan,
                "val_loss_median": float(ok.median()) if ok.size else math.nan,
                "divergence_rate": float(group["diverged"].mean()),
                "n_runs": len(group),
            }
        )
    return pd.DataFrame(rows, columns=columns)
