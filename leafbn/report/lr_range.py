"""The learning rates in which a run trains, per BN arm, and their paired bootstrap.

The numbers behind the verdict, on arrays (no tables, no prose):

* **One success target for both arms** (:func:`success_rates`). A run *trains* when its outcome is
  finite, clearly better than chance (below ``bar``: by default :func:`chance_bar`, a geometric-mean
  probability of the true class about ten times a uniform guess's) and within ``tolerance`` nats
  of the best configuration of its *context*, BN or not (the lowest median outcome over both arms and
  every learning rate). Otherwise it diverged (non-finite), is *stuck* (finite, not clearly better
  than chance) or is *behind* (better than chance, farther than the tolerance from the best).
* **A measure that does not jump** (:func:`measures`). Each arm's success rate per learning rate,
  linearly interpolated over ``log10(lr)``: its *area* (in decades) is the width of learning rates in
  which a run trains; its *lower* and *upper edges* are where it crosses one half. The range at a
  level t (``range@t``) is the length of ``log10(lr)`` where the interpolated rate is at least t.
* **Paired resampling** (:func:`unit_draws`). Every cell (arm × learning rate) of a context runs the
  same (split, seed) units, so a resample draws units, each unit's runs in every cell together; the
  seeds are drawn with replacement within each split (the splits are kept: three are too few to
  resample).
* **Four verdicts** (:func:`verdict`) on the paired difference BN − no BN of a measure.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from leafbn.report.settings import ReportSettings

__all__ = [
    "CHANCE_FACTOR", "EDGE_LEVEL", "MARGIN", "DECISIVE", "VERDICTS", "MEASURES", "chance_bar",
    "unit_cube", "unit_draws", "success_rates", "measures", "lr_sensitivity", "p_bn_wider", "p_two_sided",
    "verdict",
]  # fmt: skip

#: A run is clearly better than chance when its loss is below ln(classes / CHANCE_FACTOR).
CHANCE_FACTOR: float = 10.0
#: The success rate at which an arm's range starts and ends (its edges).
EDGE_LEVEL: float = ReportSettings.edge_level
#: Decades within which BN − no BN counts as no difference (an equivalence margin, fixed in advance).
MARGIN: float = ReportSettings.margin
#: P(BN wider) at or above which (or P(BN narrower)) the verdict takes a side.
DECISIVE: float = 0.95
#: The four verdicts, in answer.json's spelling.
VERDICTS: tuple[str, ...] = ("bn_more_robust", "bn_less_robust", "no_difference", "inconclusive")
#: The width measures: the area under the success-rate curve, and the range where it is >= t.
MEASURES: tuple[str, ...] = ("area", "range@0.5", "range@0.8")


def chance_bar(classes: int | None) -> float:
    """The loss a run must end below to be clearly better than chance: ``ln(classes) - ln(f)`` with
    ``f = min(10, sqrt(classes))``, the true class's (geometric-mean) probability at least f times a
    uniform guess's (99 classes: f = 9.95, 2.30 nats; 4 classes: f = 2)."""
    k = classes if isinstance(classes, int) and classes > 1 else 99
    return max(math.log(k / CHANCE_FACTOR), math.log(k) / 2)


def unit_cube(ctx: pd.DataFrame, column: str, lrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One context's runs as an array (2 arms [no BN, BN], L learning rates, U units).

    Args:
        ctx: the context's runs (``bn``, ``lr``, ``split``, ``seed``, ``diverged`` and ``column``).
        column: the outcome column; a diverged run is +inf, a unit missing from a cell NaN.
        lrs: the learning rates (sorted) to lay out.

    Returns:
        ``(cube, unit_split)``: the cube and each unit's split (units sorted by split, then seed).
    """
    value = np.where(ctx["diverged"].to_numpy(bool), np.inf, ctx[column].to_numpy(float))
    frame = ctx[["bn", "lr", "split", "seed"]].assign(_v=value)
    units = frame[["split", "seed"]].drop_duplicates().sort_values(["split", "seed"]).reset_index(drop=True)
    uid = frame.merge(units.reset_index(), on=["split", "seed"], how="left")["index"].to_numpy()
    cube = np.full((2, lrs.size, len(units)), np.nan)
    li = np.searchsorted(lrs, frame["lr"].to_numpy(float))
    keep = (li < lrs.size) & np.isclose(lrs[np.minimum(li, lrs.size - 1)], frame["lr"].to_numpy(float))
    f = frame["bn"].to_numpy(bool).astype(int)
    cube[f[keep], li[keep], uid[keep]] = frame["_v"].to_numpy()[keep]
    return cube, units["split"].to_numpy()


def unit_draws(unit_split: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``resamples`` rows of unit indices: each split's units drawn with replacement, as many as it
    has (the splits themselves are kept). Row 0 of the answer is never a draw: see the callers."""
    cols = []
    for split in np.unique(unit_split):
        members = np.flatnonzero(unit_split == split)
        cols.append(members[rng.integers(0, members.size, size=(resamples, members.size))])
    return np.concatenate(cols, axis=1) if cols else np.zeros((resamples, 0), dtype=int)


def success_rates(x: np.ndarray, tolerance: float, bar: float) -> dict[str, np.ndarray]:
    """Per resample, arm and learning rate: the share of runs in each outcome class.

    Args:
        x: outcomes (B, 2, L, U): +inf diverged, NaN absent.
        tolerance: nats above the context's best median outcome a run may end and still train.
        bar: the loss a run must end below to be clearly better than chance.

    Returns:
        ``trains``, ``diverged``, ``stuck``, ``behind`` (shares, (B, 2, L)), ``n`` (runs) and
        ``best`` ((B,): the context's best median outcome, BN or not).
    """
    present = ~np.isnan(x)
    n = present.sum(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: absent configurations
        med = np.nanmedian(x, axis=-1)
    best = np.where(np.isnan(med), np.inf, med).min(axis=(1, 2))
    finite = np.isfinite(x)
    clear = finite & (x < bar)
    trains = clear & (x <= best[:, None, None, None] + tolerance)
    denom = np.maximum(n, 1)
    return {
        "trains": trains.sum(-1) / denom,
        "diverged": (present & ~finite).sum(-1) / denom,
        "stuck": (finite & ~clear).sum(-1) / denom,
        "behind": (clear & ~trains).sum(-1) / denom,
        "n": n,
        "best": best,
    }


def measures(rate: np.ndarray, log_lrs: np.ndarray, level: float = EDGE_LEVEL) -> dict[str, np.ndarray]:
    """Widths and edges of success-rate curves ``rate`` (..., L) over ``log_lrs`` (L,), interpolated.

    Returns:
        ``area`` (decades), ``range@0.5`` and ``range@0.8`` (decades where the rate is at least that),
        ``lower`` / ``upper`` (log10 of where the rate first rises to ``level`` and last falls from
        it; NaN where it never reaches it), ``lower_at_grid`` / ``upper_at_grid`` (the edge is the
        grid's end: the range may extend beyond it).
    """
    h = np.diff(log_lrs)
    a, b = rate[..., :-1], rate[..., 1:]
    out = {"area": ((a + b) / 2 * h).sum(-1) if h.size else np.zeros(rate.shape[:-1])}
    for t in (0.5, 0.8):
        out[f"range@{t:g}"] = (_share_above(a, b, t) * h).sum(-1) if h.size else np.zeros(rate.shape[:-1])
    above = rate >= level
    has = above.any(-1)
    n_l = rate.shape[-1]
    i = np.argmax(above, axis=-1)
    j = n_l - 1 - np.argmax(above[..., ::-1], axis=-1)
    take = np.take_along_axis
    ri, rj = take(rate, i[..., None], -1)[..., 0], take(rate, j[..., None], -1)[..., 0]
    rp = take(rate, np.maximum(i - 1, 0)[..., None], -1)[..., 0]
    rn = take(rate, np.minimum(j + 1, n_l - 1)[..., None], -1)[..., 0]
    xi, xj = log_lrs[i], log_lrs[j]
    xp, xn = log_lrs[np.maximum(i - 1, 0)], log_lrs[np.minimum(j + 1, n_l - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(i > 0, xp + (level - rp) / (ri - rp) * (xi - xp), xi)
        upper = np.where(j < n_l - 1, xj + (rj - level) / (rj - rn) * (xn - xj), xj)
    out.update(
        lower=np.where(has, lower, np.nan),
        upper=np.where(has, upper, np.nan),
        lower_at_grid=has & (i == 0),
        upper_at_grid=has & (j == n_l - 1),
    )
    return out


def lr_sensitivity(x: np.ndarray, cap: float) -> np.ndarray:
    """Wortsman et al. (2023)'s LR sensitivity of each arm: the mean over learning rates of how far
    its mean outcome (each run capped at ``cap``, the loss of a uniform guess; a diverged run counts
    as ``cap``) lies above the arm's best learning rate's. Lower is more robust; needs no tolerance.

    Args:
        x: outcomes (B, 2, L, U): +inf diverged, NaN absent.
        cap: the loss at initialisation (``ln(classes)``).

    Returns:
        (B, 2) sensitivities in nats.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: absent configurations
        mean = np.nanmean(np.minimum(x, cap), axis=-1)  # (B, 2, L)
        return np.nanmean(mean, axis=-1) - np.nanmin(mean, axis=-1)


def _share_above(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The share of each segment from rate ``a`` to rate ``b`` (linear) where the rate is >= t."""
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(a >= t, (a - t) / (a - b), (b - t) / (b - a))
    both, neither = (a >= t) & (b >= t), (a < t) & (b < t)
    return np.where(both, 1.0, np.where(neither, 0.0, np.clip(frac, 0.0, 1.0)))


def p_bn_wider(diff: np.ndarray) -> float:
    """The share of resamples in which BN's measure is larger, a tie counting one half."""
    d = diff[np.isfinite(diff)]
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size) if d.size else math.nan


def p_two_sided(diff: np.ndarray) -> float:
    """The bootstrap's two-sided p-value of BN − no BN = 0: twice the smaller tail, at most 1."""
    p = p_bn_wider(diff)
    return math.nan if math.isnan(p) else min(1.0, 2 * min(p, 1 - p))


def verdict(diff: np.ndarray, p_adjusted: float, margin: float = MARGIN) -> str:
    """The verdict on resampled differences ``diff`` (BN − no BN, decades).

    ``no_difference`` when the 90% interval lies inside ±``margin`` (two one-sided tests at 5%,
    Schuirmann's equivalence test); else ``bn_more_robust`` / ``bn_less_robust`` when the
    (Holm-adjusted) two-sided p-value ``p_adjusted`` is below 2 × (1 − :data:`DECISIVE`), on the side
    most resamples take; else ``inconclusive``.
    """
    d = diff[np.isfinite(diff)]
    if not d.size:
        return "inconclusive"
    low, high = np.percentile(d, [5, 95])
    if -margin <= low and high <= margin:
        return "no_difference"
    if p_adjusted < 2 * (1 - DECISIVE):
        return "bn_more_robust" if p_bn_wider(d) > 0.5 else "bn_less_robust"
    return "inconclusive"
