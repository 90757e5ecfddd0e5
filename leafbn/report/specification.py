"""The answer under every reasonable analysis: a specification table (Simonsohn et al. 2020).

The verdict of the main context (:func:`leafbn.report.robustness.main_answer`) recomputed under each
combination of the choices a careful reader could make: the run's outcome (the median of its last
epochs, its final epoch, its best epoch), the tolerance of "trains", and the width measure (the area
under the success-rate curve, or the range where at least half, or 80%, of the runs train). Every
specification uses the same resampled (split, seed) units, so they differ only by the choice.
``drop_last`` is a study-wide setting: a study run both ways gives two tables.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from leafbn.report import lr_range, robustness

__all__ = ["TOLERANCES", "specification_table", "headline"]

#: Tolerances of "trains" (nats above the context's best) tried.
TOLERANCES: tuple[float, ...] = (0.25, 0.5, 1.0)
#: The outcome names, as the table shows them.
OUTCOME_NAMES: dict[str, str] = {"window": "window median", "final": "final epoch", "best": "best epoch"}


def specification_table(
    trials: pd.DataFrame,
    family: dict[str, Any],
    verdict: str,
    bar: float,
    resamples: int,
    random_seed: int = 0,
    margin: float = lr_range.MARGIN,
    has_curves: bool = True,
) -> dict[str, Any] | None:
    """Verdict and P(BN wider) of the context ``family`` under every specification.

    Args:
        trials: the trials table with ``outcome`` (:func:`leafbn.report.robustness.add_outcomes`).
        family: the context's axes (an answer's ``family``).
        verdict: the main answer's verdict, which the headline compares every row with.
        bar, resamples, random_seed, margin: as in :func:`leafbn.report.robustness.bootstrap_answer`.
        has_curves: whether the window median could be read (else its rows are left out).

    Returns:
        ``{"rows": [...], "holds": bool, "headline": str, "drop_last": value or None}``; each row has
        ``outcome``, ``tolerance``, ``measure``, ``estimate``, ``ci_low``, ``ci_high`` (BN − no BN,
        decades), ``p_bn_wider`` and ``verdict``. None when the context is not in ``trials``.
    """
    found = [
        (ctx, lrs)
        for axes, key, ctx, lrs in robustness.contexts(trials)
        if {k: robustness._plain(v) for k, v in zip(axes, key)} == family
    ]
    if not found:
        return None
    ctx, lrs = found[0]
    outcomes = [o for o in robustness.OUTCOME_COLUMNS if o != "window" or has_curves]
    outcomes = [o for o in outcomes if robustness.OUTCOME_COLUMNS[o] in ctx.columns]
    _, unit_split = lr_range.unit_cube(ctx, "outcome", lrs)
    idx = lr_range.unit_draws(unit_split, resamples, np.random.default_rng(random_seed))
    rows = []
    for outcome, tolerance in itertools.product(outcomes, TOLERANCES):
        column = robustness.OUTCOME_COLUMNS[outcome]
        point, boot = robustness.measure_context(ctx, lrs, column, tolerance, bar, idx)
        for measure in lr_range.MEASURES:
            diff = boot[measure][:, 1] - boot[measure][:, 0]
            low, high = np.percentile(diff, [2.5, 97.5])
            rows.append({
                "outcome": OUTCOME_NAMES[outcome], "tolerance": tolerance, "measure": measure,
                "estimate": round(float(point[measure][0, 1] - point[measure][0, 0]), 4),
                "ci_low": round(float(low), 4), "ci_high": round(float(high), 4),
                "p_bn_wider": round(lr_range.p_bn_wider(diff), 4),
                "verdict": lr_range.verdict(diff, lr_range.p_two_sided(diff), margin),
            })  # fmt: skip
    drop_last = ctx["drop_last"].iloc[0] if "drop_last" in ctx.columns and len(ctx) else None
    return {
        "rows": rows,
        "holds": all(r["verdict"] == verdict for r in rows),
        "headline": headline(rows, verdict),
        "drop_last": None if drop_last is None or pd.isna(drop_last) else bool(drop_last),
    }


def headline(rows: list[dict[str, Any]], verdict: str) -> str:
    """One sentence: does ``verdict`` hold under every row, or which choice does it depend on?"""
    n = len(rows)
    if not n:
        return "No specification could be computed."
    same = sum(r["verdict"] == verdict for r in rows)
    name = _name(verdict)
    if same == n:
        return f"The verdict ({name}) holds under all {n} specifications."
    frame = pd.DataFrame(rows)
    culprits = []
    for axis in ("outcome", "tolerance", "measure"):
        for value, group in frame.groupby(axis, sort=False):
            rest = frame[frame[axis] != value]
            if (group["verdict"] != verdict).all() and (rest["verdict"] == verdict).all():
                culprits.append(f"{axis} = {_show(value)}")
    if culprits:
        return (
            f"The verdict ({name}) holds under {same} of {n} specifications; it depends on the choice "
            f"{' or '.join(culprits)}, under which it differs."
        )
    others = sorted(set(frame["verdict"]) - {verdict})
    return (
        f"The verdict ({name}) holds under {same} of {n} specifications; the others read "
        f"{', '.join(_name(v) for v in others)} (see the table)."
    )


def _name(verdict: str) -> str:
    """``bn_more_robust`` as ``BN more robust``."""
    return verdict.replace("_", " ").replace("bn ", "BN ")


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) and math.isfinite(value) else str(value)
