"""How easy each BN arm is to tune: the best outcome of n runs drawn at random, with exact quantiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from leafbn.report import analysis

__all__ = ["BEST_BAND", "expected_best"]

#: The quantiles of the best of n runs that :func:`expected_best` gives as ``low`` and ``high``.
BEST_BAND: tuple[float, float] = (0.05, 0.95)


def _budgets(big_n: int, most: int = 200) -> np.ndarray:
    """Every budget up to 100 runs, then about ``most`` log-spaced ones up to ``big_n``."""
    if big_n <= 100 + most:
        return np.arange(1, big_n + 1)
    return np.unique(np.concatenate([np.arange(1, 101), np.geomspace(100, big_n, most).round().astype(int)]))


def expected_best(trials: pd.DataFrame, chance: float = math.log(99)) -> pd.DataFrame:
    """The best (lowest) outcome of ``n`` runs drawn at random from each BN arm: its mean and quantiles.

    Dodge et al. (2019)'s expected validation performance over a budget of trials. With the arm's N
    outcomes sorted, v_(1) <= ... <= v_(N), the best of n draws with replacement is v_(i) with
    probability (1 - (i-1)/N)^n - (1 - i/N)^n, so its q-quantile is exactly v_(i) with
    i = ceil(N (1 - (1 - q)^(1/n))): one sort and O(1) per budget. A diverged run, and one no better
    than a uniform guess, counts as ``chance`` (it found nothing). Budgets: every n up to 100, then
    about 200 log-spaced ones up to N (40,000 runs: about a second on this 2-core machine).

    Returns:
        Columns ``bn``, ``n``, ``expected`` (the mean), ``sd``, ``low`` and ``high`` (the
        :data:`BEST_BAND` quantiles: values the runs reached, so positive when the losses are).
    """
    trials = analysis.prepare(trials)
    columns = ["bn", "n", "expected", "sd", "low", "high"]
    frames = []
    if "outcome" in trials.columns and len(trials):
        for bn, arm in trials.groupby("bn", sort=True):
            v = np.sort(np.minimum(np.nan_to_num(arm["outcome"].to_numpy(float), nan=chance), chance))
            big_n = v.size
            n = _budgets(big_n)
            # E[f(min)] = f(v_1) + sum_i (f(v_(i+1)) - f(v_(i))) P(all n draws above v_(i)), i = 1..N-1
            log_tail = np.log(1 - np.arange(1, big_n) / big_n)  # log P(a draw is above v_(i))
            steps = np.stack([np.diff(v), np.diff(v**2)], axis=1)  # (N-1, 2)
            moments = np.empty((n.size, 2))
            for start in range(0, n.size, 64):  # (64, N) blocks: bounded memory at any N
                moments[start : start + 64] = np.exp(n[start : start + 64, None] * log_tail[None, :]) @ steps
            mean, second = v[0] + moments[:, 0], v[0] ** 2 + moments[:, 1]
            quantile = {}
            for q in BEST_BAND:
                i = np.ceil(big_n * (1 - (1 - q) ** (1 / n)) - 1e-9).astype(int)
                quantile[q] = v[np.clip(i, 1, big_n) - 1]
            frames.append(pd.DataFrame({
                "bn": bool(bn), "n": n, "expected": mean, "sd": np.sqrt(np.maximum(second - mean**2, 0.0)),
                "low": quantile[BEST_BAND[0]], "high": quantile[BEST_BAND[1]],
            }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
