"""Compute the numbers of a study from its tables: aggregates, robustness metrics, BN effect.

Every function takes the DataFrames that :func:`leafbn.results.tables.load_tables` returns (``trials.csv``
and ``curves.csv``, see ``docs/results.md``) and returns a DataFrame; nothing here draws or prints
(except :func:`format_summary`, which only formats). :mod:`leafbn.report.plots` draws these tables and
:mod:`leafbn.report.writer` writes them up.

Vocabulary (Google's tuning playbook): BN is the *scientific* axis; the learning rate and the seed
are *nuisance* axes.

* A **configuration** is one value of every axis in :data:`leafbn.config.TRIAL_FIELDS` that the
  table has (everything but the seed); its trials are its seeds.
* A **family** is a configuration without its learning rate: ``bn`` × ``depth`` × ``width`` ×
  ``bn_momentum`` × ``bn_placement``, whichever the table has.
* A trial **diverged** when its ``diverged`` column is true (when the column is missing: when its
  ``final_val_loss`` is not finite). Means, standard deviations and confidence intervals are over
  the *non-diverged* trials with a finite value; divergence is counted separately, never averaged in.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from leafbn.config import TRIAL_FIELDS
from leafbn.report.settings import ReportSettings
from leafbn.results.tables import normalise_trials

__all__ = [
    "DEFAULT_TOLERANCE",
    "pair_nobn",
    "prepare",
    "config_axes",
    "context_axes",
    "groups",
    "aggregate",
    "summary",
    "format_summary",
    "bn_effect",
    "holm",
]

#: Default tolerance of a run's success (:func:`leafbn.report.robustness.stability`), in nats of
#: validation cross-entropy: a run succeeds when its outcome is at most its family's best + 0.5
#: nats (e^0.5 ≈ 1.65: the geometric-mean probability of the true class at most 1.65× lower).
DEFAULT_TOLERANCE: float = ReportSettings.tolerance

#: Columns ``trials.csv`` must have for any analysis.
#: The per-trial metrics aggregated by :func:`aggregate`, with their short output names.
_METRICS = {
    "outcome": "val_loss",
    "final_val_accuracy": "val_accuracy",
    "final_train_loss": "train_loss",
}


# --- Preparing ---------------------------------------------------------------------------------------------


def prepare(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` as :func:`leafbn.results.tables.load_tables` returns it, with an ``outcome`` column
    (normalised once; a loaded table passes through). Without
    :func:`leafbn.report.robustness.add_outcomes`, a run's outcome is its final validation loss (NaN when
    it diverged)."""
    if not (
        "diverged" in trials.columns
        and trials["diverged"].dtype == bool
        and ("bn" not in trials.columns or trials["bn"].dtype == bool)
    ):
        trials = normalise_trials(trials)
    if "outcome" not in trials.columns:
        trials = trials.assign(outcome=trials["final_val_loss"].astype(float).where(~trials["diverged"]))
    return trials


# --- Aggregates ------------------------------------------------------------------------------------------
def config_axes(trials: pd.DataFrame) -> list[str]:
    """The configuration's axes: the fields of TRIAL_FIELDS the table has (never the seed or the split)."""
    return [f for f in TRIAL_FIELDS if f in trials.columns]


def _family_axes(trials: pd.DataFrame) -> list[str]:
    return [f for f in config_axes(trials) if f != "lr"]


def context_axes(trials: pd.DataFrame) -> list[str]:
    """A family without bn: what BN is compared within."""
    return [f for f in config_axes(trials) if f not in ("lr", "bn")]


def pair_nobn(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with each no-BN trial repeated in every BN momentum × placement family.

    A network without BN has no BN momentum or placement, so a study runs it once per depth ×
    width (see ``StudyConfig.trial_configs``). To compare BN with no BN within each BN family,
    the no-BN trials are shared by every (``bn_momentum``, ``bn_placement``) the BN trials of the
    same other axes have. Use it for comparisons only: it counts a no-BN trial more than once.
    """
    trials = prepare(trials)
    free = [f for f in ("bn_momentum", "bn_placement") if f in trials.columns]
    if not free or "bn" not in trials.columns or trials["bn"].all() or not trials["bn"].any():
        return trials
    rest = [f for f in context_axes(trials) if f not in free]
    on, off = trials[trials["bn"]], trials[~trials["bn"]]
    combos = on[[*rest, *free]].drop_duplicates()
    shared = (
        off.drop(columns=free).merge(combos, on=rest, how="inner")
        if rest
        else off.drop(columns=free).merge(combos, how="cross")
    )
    unmatched = (
        off.merge(combos[rest].drop_duplicates(), on=rest, how="left", indicator=True)
        if rest
        else off.iloc[0:0]
    )
    unmatched = unmatched[unmatched.get("_merge", pd.Series(dtype=str)) == "left_only"].drop(
        columns="_merge", errors="ignore"
    )
    return pd.concat([on, shared[trials.columns], unmatched[trials.columns]], ignore_index=True)


def _finite_ok(trials: pd.DataFrame, column: str) -> pd.Series:
    """Values of ``column`` of the non-diverged trials, non-finite ones dropped."""
    if column not in trials.columns:
        return pd.Series(dtype=float)
    values = trials.loc[~trials["diverged"], column].astype(float)
    return values[np.isfinite(values)]


def _mean_std_ci(values: pd.Series | np.ndarray, confidence: float) -> tuple[int, float, float, float]:
    """(n, mean, sample std, CI half-width from the t-distribution); NaN where n is too small."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n == 1:
        return 1, mean, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    return n, mean, std, half


def groups(trials: pd.DataFrame, keys: list[str]):
    """groupby over ``keys`` keeping NaN keys, or the whole table as one group when keys is empty."""
    if not keys:
        yield (), trials
        return
    for key, group in trials.groupby(keys, dropna=False, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), group


def aggregate(trials: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per configuration (every axis in TRIAL_FIELDS but the seed): seeds, divergence and metrics.

    Args:
        trials: the trials table (:func:`leafbn.results.tables.load_tables`).
        confidence: level of the t-distribution confidence intervals.

    Returns:
        One row per configuration: the axis columns, ``n_runs`` (trials, i.e. seeds),
        ``n_diverged``, ``divergence_rate``, ``n_ok`` (non-diverged trials with a finite validation
        loss) and, for ``val_loss`` (the run's outcome: the median of its last epochs when
        :func:`leafbn.report.robustness.add_outcomes` ran, else the final value), ``val_accuracy`` and
        ``train_loss`` (final values): ``<m>_mean``, ``<m>_std`` (sample std) and ``<m>_ci`` (the
        CI's half-width; NaN below two values), over the non-diverged trials with a finite value;
        and ``val_loss_median``, ``val_loss_q1``, ``val_loss_q3`` (median and quartiles), which a
        few seeds far above the rest cannot pull up as they pull up the mean.
    """
    trials = prepare(trials)
    keys = config_axes(trials)
    columns = [*keys, "n_runs", "n_diverged", "divergence_rate", "n_ok"]
    for short in _METRICS.values():
        columns += [f"{short}_mean", f"{short}_std", f"{short}_ci"]
    columns += ["val_loss_median", "val_loss_q1", "val_loss_q3"]
    rows = []
    if not trials.empty:
        for key, group in groups(trials, keys):
            row: dict[str, Any] = dict(zip(keys, key))
            n_div = int(group["diverged"].sum())
            row.update(n_runs=len(group), n_diverged=n_div, divergence_rate=n_div / len(group))
            row["n_ok"] = int(_finite_ok(group, "outcome").size)
            for col, short in _METRICS.items():
                _, mean, std, half = _mean_std_ci(_finite_ok(group, col), confidence)
                row.update({f"{short}_mean": mean, f"{short}_std": std, f"{short}_ci": half})
            ok = _finite_ok(group, "outcome")
            q1, med, q3 = np.percentile(ok, [25, 50, 75]) if len(ok) else (math.nan,) * 3
            row.update(val_loss_median=float(med), val_loss_q1=float(q1), val_loss_q3=float(q3))
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def summary(trials: pd.DataFrame) -> pd.DataFrame:
    """The end-of-study table: per learning rate × BN, the final validation loss's median and IQR
    (robust to the few runs whose loss exploded without diverging; the report's answer is
    :mod:`leafbn.report.robustness`'s).

    Args:
        trials: the trials table (as written to ``trials.csv``; ``diverged`` may be missing).

    Returns:
        Columns ``lr``, ``bn``, ``val_loss_median``, ``val_loss_q1``, ``val_loss_q3`` (over the
        finished, non-diverged trials with a finite loss; NaN when none), ``diverged`` (count),
        ``runs`` (finished trials: all their epochs run, or diverged) and ``unfinished`` (trials of
        an interrupted study that stopped before their last epoch or never started, or that ASHA
        stopped), sorted by ``lr`` then ``bn``.
        Any other axis (depth, width, ...) is pooled.
    """
    columns = ["lr", "bn", "val_loss_median", "val_loss_q1", "val_loss_q3", "diverged", "runs", "unfinished"]
    if trials.empty or not {"lr", "bn", "final_val_loss"} <= set(trials.columns):
        return pd.DataFrame(columns=columns)
    trials = normalise_trials(trials)
    finished = trials["diverged"].copy()
    if {"epochs_run", "epochs"} <= set(trials.columns):
        finished |= pd.to_numeric(trials["epochs_run"]) >= pd.to_numeric(trials["epochs"])
    else:
        finished[:] = True
    trials = trials.assign(_finished=finished)
    rows = []
    for (lr, bn), everything in trials.groupby(["lr", "bn"], sort=True):
        group = everything[everything["_finished"]]
        losses = _finite_ok(group, "final_val_loss")
        q1, median, q3 = losses.quantile([0.25, 0.5, 0.75]) if len(losses) else (math.nan,) * 3
        rows.append(
            dict(
                lr=lr,
                bn=bool(bn),
                val_loss_median=median,
                val_loss_q1=q1,
                val_loss_q3=q3,
                diverged=int(group["diverged"].sum()),
                runs=len(group),
                unfinished=len(everything) - len(group),
            )
        )
    return pd.DataFrame(rows, columns=columns)


def _number(value: float) -> str:
    """4 decimals, or scientific notation for a loss that exploded."""
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.3e}"


def format_summary(df: pd.DataFrame) -> str:
    """A terminal table of :func:`summary`'s output: ``lr  bn  val_loss median (IQR)  diverged/runs``."""
    if df.empty:
        return "(no trials)"
    lines = [f"{'lr':>8}  {'bn':<5}  {'val_loss median (IQR)':<26}  diverged/runs"]
    for row in df.itertuples(index=False):
        if math.isnan(row.val_loss_median):
            loss = "—"
        elif row.val_loss_q1 == row.val_loss_q3:
            loss = _number(row.val_loss_median)
        else:
            loss = f"{_number(row.val_loss_median)} ({_number(row.val_loss_q1)}–{_number(row.val_loss_q3)})"
        unfinished = f"  (+{row.unfinished} not run to the end)" if getattr(row, "unfinished", 0) else ""
        lines.append(
            f"{row.lr:>8g}  {'on' if row.bn else 'off':<5}  {loss:<26}  {row.diverged}/{row.runs}{unfinished}"
        )
    return "\n".join(lines)


# --- Robustness ------------------------------------------------------------------------------------------
def holm(p_values: np.ndarray | pd.Series) -> np.ndarray:
    """Holm's step-down adjusted p-values of a family of tests (NaN entries are not tests)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = tested.size
    if m:
        order = tested[np.argsort(p[tested], kind="stable")]
        adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out[order] = np.minimum(adjusted, 1.0)
    return out


def _paired(on: pd.DataFrame, off: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The finite outcomes of BN and no-BN runs that share a (split, seed) unit, in matching order."""
    keys = [k for k in ("split", "seed") if k in on.columns and k in off.columns]
    left = on.loc[~on["diverged"], [*keys, "outcome"]]
    right = off.loc[~off["diverged"], [*keys, "outcome"]]
    both = left.merge(right, on=keys, suffixes=("_bn", "_nobn")) if keys else left.iloc[0:0]
    both = both[np.isfinite(both["outcome_bn"]) & np.isfinite(both["outcome_nobn"])]
    return both["outcome_bn"].to_numpy(float), both["outcome_nobn"].to_numpy(float)


def bn_effect(trials: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per learning rate (and the other axes but bn): BN − no-BN outcome, paired by (split, seed).

    Every BN run has a no-BN twin on the same split with the same seed (the same data order and
    initial draw where the shapes agree). Over the pairs where both are finite, the paired t-test
    (``scipy.stats.ttest_rel``, with its confidence interval of the mean difference) and the Wilcoxon
    signed-rank test (``scipy.stats.wilcoxon``), which a few pairs far from the rest cannot drive.
    Both p-values are Holm-corrected across the learning rates of each context (``p_holm``,
    ``p_rank_holm``); ``significant`` is the Holm-corrected t-test p below ``1 - confidence``, and
    ``tests_agree`` says whether the rank test agrees. Negative ``diff`` (the mean paired difference)
    means BN reached a lower loss. No test is run (p NaN) when ``status`` says why:

    * ``"ok"``: tested;
    * ``"no-BN diverged in all seeds"`` / ``"BN diverged in all seeds"`` / ``"both diverged in
      all seeds"``: a side has runs but every one diverged — reported as divergence, not tested;
    * ``"no BN side"`` / ``"no no-BN side"``: a side has no runs at all;
    * ``"too few pairs"``: fewer than two pairs with both outcomes finite (means are still given);
    * ``"no variance"``: every pair differs by the same amount.

    Returns:
        One row per LR × context: the context axes, ``lr``, ``n_bn``, ``n_bn_ok``,
        ``n_bn_diverged``, ``n_nobn``, ``n_nobn_ok``, ``n_nobn_diverged``, ``n_pairs``,
        ``val_loss_bn``, ``val_loss_nobn`` (means of each side's finite runs), ``diff`` (the mean
        paired difference; without pairs, the difference of the means), ``ci_low``, ``ci_high``,
        ``t``, ``df``, ``p_value`` (paired t), ``p_rank`` (Wilcoxon), ``p_holm``, ``p_rank_holm``,
        ``significant``, ``tests_agree`` and ``status``.
    """
    trials = prepare(trials)
    context = context_axes(trials)
    keys = [*context, "lr"]
    columns = [
        *keys, "n_bn", "n_bn_ok", "n_bn_diverged", "n_nobn", "n_nobn_ok", "n_nobn_diverged", "n_pairs",
        "val_loss_bn", "val_loss_nobn", "diff", "ci_low", "ci_high", "t", "df", "p_value", "p_rank",
        "p_holm", "p_rank_holm", "significant", "tests_agree", "status",
    ]  # fmt: skip
    rows = []
    if not trials.empty and "bn" in trials.columns:
        for key, group in groups(trials, keys):
            on, off = group[group["bn"]], group[~group["bn"]]
            rows.append({**dict(zip(keys, key)), **_effect_row(on, off, confidence)})
    out = pd.DataFrame(rows, columns=columns)
    if out.empty:
        return out
    out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    alpha = 1 - confidence
    for _, idx in out.groupby(context, dropna=False).groups.items() if context else [((), out.index)]:
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"])
        out.loc[idx, "p_rank_holm"] = holm(out.loc[idx, "p_rank"])
    out["significant"] = (out["p_holm"] < alpha).to_numpy()
    out["tests_agree"] = ((out["p_holm"] < alpha) == (out["p_rank_holm"] < alpha)) | out["p_value"].isna()
    return out


def _effect_row(on: pd.DataFrame, off: pd.DataFrame, confidence: float) -> dict[str, Any]:
    """One learning rate's paired comparison (see :func:`bn_effect`)."""
    a, b = _paired(on, off)
    row: dict[str, Any] = dict(
        n_bn=len(on), n_bn_ok=int(_finite_ok(on, "outcome").size), n_bn_diverged=int(on["diverged"].sum()),
        n_nobn=len(off), n_nobn_ok=int(_finite_ok(off, "outcome").size),
        n_nobn_diverged=int(off["diverged"].sum()), n_pairs=int(a.size),
        ci_low=math.nan, ci_high=math.nan, t=math.nan, df=math.nan, p_value=math.nan, p_rank=math.nan,
    )  # fmt: skip
    for side, frame in (("bn", on), ("nobn", off)):
        values = _finite_ok(frame, "outcome")
        row[f"val_loss_{side}"] = float(values.mean()) if values.size else math.nan
    row["diff"] = float((a - b).mean()) if a.size else row["val_loss_bn"] - row["val_loss_nobn"]
    all_on = len(on) > 0 and row["n_bn_diverged"] == len(on)
    all_off = len(off) > 0 and row["n_nobn_diverged"] == len(off)
    if len(on) == 0:
        row["status"] = "no BN side"
    elif len(off) == 0:
        row["status"] = "no no-BN side"
    elif all_on and all_off:
        row["status"] = "both diverged in all seeds"
    elif all_off:
        row["status"] = "no-BN diverged in all seeds"
    elif all_on:
        row["status"] = "BN diverged in all seeds"
    elif a.size < 2:
        row["status"] = "too few pairs"
    elif np.ptp(a - b) == 0:
        row["status"] = "no variance"
    else:
        res = stats.ttest_rel(a, b)
        ci = res.confidence_interval(confidence_level=confidence)
        row.update(
            ci_low=float(ci.low), ci_high=float(ci.high), t=float(res.statistic), df=float(res.df),
            p_value=float(res.pvalue), p_rank=float(stats.wilcoxon(a, b).pvalue), status="ok",
        )  # fmt: skip
    return row
