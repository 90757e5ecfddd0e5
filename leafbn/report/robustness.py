"""The study's answer, made robust and given its own uncertainty.

Does BatchNormalization make the network robust to its learning rate? This module turns the runs of
a study into that answer in four steps, each a function returning a DataFrame or a dict:

1. **A per-run outcome** (:func:`add_outcomes`): the *median* validation loss over the run's last
   ``window`` epochs (default 10). One epoch whose loss spikes moves a median of ten epochs by at
   most one rank, where it would set the last epoch's loss outright. A run that diverged (a
   non-finite loss) has no outcome; it stays in the table as ``diverged``, never dropped.
2. **Per-seed stability** (:func:`stability`): a run *succeeds* when it did not diverge, its outcome
   beats a uniform guess (``ln`` of the number of classes) and is within ``tolerance`` nats of its
   family's best (the lowest median outcome over the family's learning rates). A learning rate is
   *stable* when its success rate (over seeds, and splits) reaches ``threshold`` (default 0.8: four
   of five seeds). A family's **stable range** is the contiguous run of stable learning rates around
   its best stable one, ``log10(max / min)`` decades wide (0: one rate; NaN: none).
3. **The answer's uncertainty** (:func:`bootstrap_answer`): the runs are resampled within each
   configuration (seeds with replacement; splits too when there are several, the same split draw
   for every configuration as a split is shared by them) ``resamples`` times, vectorised with
   numpy, and the whole answer is recomputed each time: each family's best, success rates, stable
   ranges, their difference, the highest learning rate without divergence.
4. **The verdict** per BN family: ``bn_more_robust`` when P(BN's stable range is wider) ≥ 0.95,
   ``bn_not_more_robust`` when it is ≤ 0.05, else ``inconclusive``, with the number of seeds that
   would likely settle it (the same resampling drawing more seeds per configuration).

A family here is everything but the learning rate (and the nuisance seed and split); BN is compared
with no BN inside each *context* (depth × width × BN momentum × placement × batch size), the no-BN
runs shared by every BN momentum and placement (:func:`leafbn.report.analysis.pair_nobn`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from leafbn.config import StudyConfig, axis_names
from leafbn.report import analysis

__all__ = [
    "DEFAULT_WINDOW",
    "DEFAULT_THRESHOLD",
    "DEFAULT_RESAMPLES",
    "VERDICTS",
    "add_outcomes",
    "stability",
    "bootstrap_answer",
    "expected_best",
    "answer_record",
    "SEED_FAMILY",
]

#: Epochs a run's outcome is the median over (the study's ``--window`` when config.json has it).
DEFAULT_WINDOW: int = 10
#: Success rate at which a learning rate is stable: 0.8 is four of five seeds, so one seed that
#: spikes or diverges cannot unmake a stable learning rate of a five-seed study.
DEFAULT_THRESHOLD: float = 0.8
#: Bootstrap resamples of the answer.
DEFAULT_RESAMPLES: int = 2000
#: The three verdicts, in answer.json's spelling.
VERDICTS: tuple[str, ...] = ("bn_more_robust", "bn_not_more_robust", "inconclusive")
#: P(BN's range is wider) at or above which BN is more robust; at or below 1 - this, it is not.
DECISIVE: float = 0.95
#: Seed multipliers tried when a verdict is inconclusive, to say how many seeds would settle it.
_MORE_SEEDS: tuple[int, ...] = (2, 4, 8)


# --- 1. Outcomes -----------------------------------------------------------------------------------------
def add_outcomes(trials: pd.DataFrame, curves: pd.DataFrame, window: int = DEFAULT_WINDOW) -> pd.DataFrame:
    """``trials`` with an ``outcome`` column: the median validation loss of its last ``window`` epochs.

    Args:
        trials: the trials table (:func:`leafbn.results.tables.load_tables`).
        curves: the curves table (``trial_id, epoch, val_loss, ...``), one row per epoch.
        window: how many of the last epochs the median is over (>= 1).

    Returns:
        A copy of ``trials`` with ``outcome`` (float; NaN for a diverged run). A run with no rows in
        ``curves`` falls back to its final validation loss, with a warning saying how many did.
    """
    if window < 1:
        raise ValueError(f"window {window}: must be >= 1 epoch")
    trials = analysis.prepare(trials).copy()
    outcome = pd.Series(np.nan, index=trials.index, dtype=float)
    need = {"trial_id", "epoch", "val_loss"}
    if len(trials) and len(curves) and need <= set(curves.columns) and "trial_id" in trials.columns:
        c = curves[["trial_id", "epoch", "val_loss"]].sort_values(["trial_id", "epoch"], kind="stable")
        tail = c.groupby("trial_id", sort=False).tail(window)
        median = tail.groupby("trial_id", sort=False)["val_loss"].median()
        outcome = trials["trial_id"].astype(str).map(median).astype(float)
    missing = outcome.isna() & ~trials["diverged"] if len(trials) else pd.Series(dtype=bool)
    if missing.any():
        warnings.warn(
            f"{int(missing.sum())} run(s) have no learning curve in curves.csv: their outcome is their "
            "final validation loss, not the median of their last epochs",
            stacklevel=2,
        )
        outcome[missing] = trials.loc[missing, "final_val_loss"].astype(float)
    if len(trials):
        outcome[trials["diverged"]] = np.nan
    trials["outcome"] = outcome
    return trials


# --- 2. Stability per configuration ----------------------------------------------------------------------
def _wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _runs(group: pd.DataFrame) -> np.ndarray:
    """A configuration's outcomes with +inf for a diverged run (so it never succeeds)."""
    return np.where(group["diverged"].to_numpy(), np.inf, group["outcome"].to_numpy(dtype=float))


def stability(
    trials: pd.DataFrame,
    tolerance: float = analysis.DEFAULT_TOLERANCE,
    chance: float = math.log(99),
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per configuration: how often its runs succeed, with a Wilson interval, and the outcome's spread.

    Args:
        trials: the trials table with ``outcome`` (:func:`add_outcomes`).
        tolerance: nats above the family's best median outcome a successful run may end.
        chance: the loss of a uniform guess; a run must beat it to succeed.
        threshold: the success rate at which a learning rate is stable.
        confidence: the level of the Wilson interval.

    Returns:
        One row per configuration: the axis columns, ``n_runs``, ``n_diverged``, ``n_success``,
        ``success_rate``, ``success_ci_low``, ``success_ci_high``, ``outcome_median``,
        ``outcome_q1``, ``outcome_q3`` (over the non-diverged runs), ``family_best`` and ``stable``.
    """
    trials = analysis.prepare(trials)
    keys = analysis.config_axes(trials)
    family = [k for k in keys if k != "lr"]
    columns = [
        *keys, "n_runs", "n_diverged", "n_success", "success_rate", "success_ci_low", "success_ci_high",
        "outcome_median", "outcome_q1", "outcome_q3", "family_best", "stable",
    ]  # fmt: skip
    if trials.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, fam in analysis.groups(trials, family):
        per_lr = [(lr, _runs(g)) for lr, g in fam.groupby("lr", sort=True)]
        medians = np.array([np.median(x) for _, x in per_lr])
        learnt = medians[medians < chance]
        best = float(learnt.min()) if learnt.size else math.nan
        for lr, x in per_lr:
            ok = (x <= best + tolerance) & (x < chance) if math.isfinite(best) else np.zeros(x.size, bool)
            finite = x[np.isfinite(x)]
            n_ok = int(ok.sum())
            low, high = _wilson(n_ok, x.size, confidence)
            q1, med, q3 = np.percentile(finite, [25, 50, 75]) if finite.size else (math.nan,) * 3
            row = dict(zip(family, key))
            row.update(
                lr=lr, n_runs=x.size, n_diverged=int(np.isinf(x).sum()), n_success=n_ok,
                success_rate=n_ok / x.size, success_ci_low=low, success_ci_high=high,
                outcome_median=float(med), outcome_q1=float(q1), outcome_q3=float(q3),
                family_best=best, stable=bool(n_ok / x.size >= threshold),
            )  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)[columns]


# --- 3. The answer, recomputed on resampled runs ---------------------------------------------------------
def _answer_arrays(
    x: np.ndarray, log_lrs: np.ndarray, tolerance: float, chance: float, threshold: float
) -> dict[str, np.ndarray]:
    """The answer of outcome arrays ``x`` of shape (B, F, L, R): B resamples, F families, L learning
    rates, R runs (+inf diverged, NaN absent). Returns (B, F) arrays: ``decades`` (NaN: no stable LR),
    ``lo``/``hi`` (log10 of the stable range's ends) and ``max_no_div`` (log10 of the highest LR
    without a diverged run; NaN when every LR had one)."""
    n = (~np.isnan(x)).sum(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: absent configurations
        med = np.nanmedian(x, axis=-1)
    best = np.where(med < chance, med, np.inf).min(-1)  # (B, F)
    ok = (x <= best[..., None, None] + tolerance) & (x < chance)
    rate = ok.sum(-1) / np.maximum(n, 1)
    stable = (rate >= threshold) & (n > 0)
    has = stable.any(-1)
    anchor = np.where(stable, med, np.inf).argmin(-1)[..., None]
    idx = np.arange(x.shape[2])
    lo = np.where(~stable & (idx < anchor), idx, -1).max(-1) + 1
    hi = np.where(~stable & (idx > anchor), idx, x.shape[2]).min(-1) - 1
    lo_v, hi_v = log_lrs[np.clip(lo, 0, None)], log_lrs[np.clip(hi, 0, None)]
    clean = (n > 0) & ~np.isinf(x).any(-1)
    top = np.where(clean, idx, -1).max(-1)
    return {
        "decades": np.where(has, hi_v - lo_v, np.nan),
        "lo": np.where(has, lo_v, np.nan),
        "hi": np.where(has, hi_v, np.nan),
        "max_no_div": np.where(top >= 0, log_lrs[np.clip(top, 0, None)], np.nan),
    }


def _cube(ctx: pd.DataFrame, lrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes of one context as (F=2 [no BN, BN], L, K splits, S) with NaN padding, and the run
    counts (F, L, K)."""
    splits = np.sort(ctx["split"].unique())
    size = ctx.groupby(["bn", "lr", "split"]).size()
    s_max = int(size.max()) if len(size) else 0
    cube = np.full((2, lrs.size, splits.size, s_max), np.nan)
    count = np.zeros((2, lrs.size, splits.size), dtype=int)
    for (bn, lr, split), g in ctx.groupby(["bn", "lr", "split"], sort=True):
        f, li, k = int(bool(bn)), int(np.searchsorted(lrs, lr)), int(np.searchsorted(splits, split))
        values = _runs(g)
        cube[f, li, k, : values.size] = values
        count[f, li, k] = values.size
    return cube, count


def _resample(cube: np.ndarray, count: np.ndarray, b: int, more: int, rng: np.random.Generator) -> np.ndarray:
    """``b`` bootstrap resamples of ``cube`` as (b, F, L, K * S * more): splits drawn with
    replacement (one draw per resample for every configuration), then each configuration's runs
    within the drawn split, as many as it had there times ``more``."""
    f_n, l_n, k_n, s_n = cube.shape
    ks = rng.integers(0, k_n, size=(b, 1, 1, k_n)) if k_n > 1 else np.zeros((b, 1, 1, 1), dtype=int)
    n = count[np.arange(f_n)[None, :, None, None], np.arange(l_n)[None, None, :, None], ks]  # (b,F,L,K)
    draws = s_n * more
    u = rng.random((b, f_n, l_n, k_n, draws))
    pick = np.minimum((u * n[..., None]).astype(int), max(s_n - 1, 0))
    out = cube[
        np.arange(f_n)[None, :, None, None, None],
        np.arange(l_n)[None, None, :, None, None],
        ks[..., None],
        pick,
    ]
    absent = np.arange(draws)[None, None, None, None, :] >= (n * more)[..., None]
    out = np.where(absent, np.nan, out)
    return out.reshape(b, f_n, l_n, k_n * draws)


def _interval(values: np.ndarray, estimate: float, unit: float = 1.0) -> dict[str, float | None]:
    """``{"estimate", "ci_low", "ci_high"}`` (95% percentile interval; None where undefined)."""
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (math.nan, math.nan)

    def num(v: float) -> float | None:
        return None if not math.isfinite(v) else float(unit**v if unit != 1.0 else v)

    return {"estimate": num(estimate), "ci_low": num(float(low)), "ci_high": num(float(high))}


def _p_wider(ans: dict[str, np.ndarray]) -> np.ndarray:
    """Per resample: is BN's stable range wider than no-BN's? (an empty range is narrower than any)."""
    d = np.where(np.isnan(ans["decades"]), -np.inf, ans["decades"])
    return (d[:, 1] > d[:, 0]).mean()


def _verdict(p: float) -> str:
    if p >= DECISIVE:
        return "bn_more_robust"
    if p <= 1 - DECISIVE:
        return "bn_not_more_robust"
    return "inconclusive"


def bootstrap_answer(
    trials: pd.DataFrame,
    tolerance: float = analysis.DEFAULT_TOLERANCE,
    chance: float = math.log(99),
    threshold: float = DEFAULT_THRESHOLD,
    resamples: int = DEFAULT_RESAMPLES,
    random_seed: int = 0,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The answer per context, with its bootstrap distribution.

    Args:
        trials: the trials table with ``outcome`` (:func:`add_outcomes`); ``split`` optional.
        tolerance, chance, threshold: as in :func:`stability`.
        resamples: bootstrap resamples (>= 1000 for a quotable interval).
        random_seed: the seed of the resampling (the same seed gives the same answer).

    Returns:
        ``(answers, draws)``. ``answers``: one dict per context (the axes besides lr and bn, as in
        ``"family"``) with ``verdict``, ``p_bn_wider``, ``stable_decades`` and
        ``max_lr_no_divergence`` per arm (``{"bn": {"estimate", "ci_low", "ci_high"}, "no_bn":
        ...}``), ``stable_lrs`` per arm (the point estimate's ends), ``difference_decades``,
        ``seeds_to_settle`` (the seeds per configuration that would likely make an inconclusive
        verdict decisive; None when 8× the seeds would not, or when decisive), ``seeds``,
        ``splits``. ``draws``: the per-resample stable-range widths and difference
        (``resample``, the context's axes, ``decades_bn``, ``decades_no_bn``, ``difference``).
    """
    if resamples < 1:
        raise ValueError(f"resamples {resamples}: must be >= 1")
    paired = analysis.pair_nobn(trials)
    if "outcome" not in paired.columns:
        raise ValueError("trials have no outcome column: call add_outcomes first")
    if "split" not in paired.columns:
        paired = paired.assign(split=0)
    paired = paired.assign(split=paired["split"].fillna(0).astype(int))
    context = analysis.context_axes(paired)
    rng = np.random.default_rng(random_seed)
    answers, frames = [], []
    for key, ctx in analysis.groups(paired, context):
        if ctx["bn"].nunique() < 2:
            continue
        lrs = np.sort(ctx["lr"].unique().astype(float))
        log_lrs = np.log10(lrs)
        cube, count = _cube(ctx, lrs)
        f_n, l_n, k_n, s_n = cube.shape
        point = _answer_arrays(cube.reshape(1, f_n, l_n, k_n * s_n), log_lrs, tolerance, chance, threshold)
        boot = _answer_arrays(
            _resample(cube, count, resamples, 1, rng), log_lrs, tolerance, chance, threshold
        )
        p = float(_p_wider(boot))
        verdict = _verdict(p)
        settle = None
        if verdict == "inconclusive":
            for more in _MORE_SEEDS:
                sim = _answer_arrays(
                    _resample(cube, count, min(resamples, 1000), more, rng),
                    log_lrs,
                    tolerance,
                    chance,
                    threshold,
                )
                if _verdict(float(_p_wider(sim))) != "inconclusive":
                    settle = int(more * count.max())
                    break
        diff_boot = boot["decades"][:, 1] - boot["decades"][:, 0]
        diff_point = float(point["decades"][0, 1] - point["decades"][0, 0])
        arms = {"no_bn": 0, "bn": 1}
        answers.append(
            {
                "family": {k: _plain(v) for k, v in zip(context, key)},
                "verdict": verdict,
                "p_bn_wider": p,
                "stable_decades": {
                    a: _interval(boot["decades"][:, f], float(point["decades"][0, f]))
                    for a, f in arms.items()
                },
                "stable_lrs": {a: [_lr(point["lo"][0, f]), _lr(point["hi"][0, f])] for a, f in arms.items()},
                "difference_decades": _interval(diff_boot, diff_point),
                "max_lr_no_divergence": {
                    a: _interval(boot["max_no_div"][:, f], float(point["max_no_div"][0, f]), unit=10.0)
                    for a, f in arms.items()
                },
                "empty_range_fraction": {
                    a: float(np.isnan(boot["decades"][:, f]).mean()) for a, f in arms.items()
                },
                "seeds_to_settle": settle,
                "seeds": int(ctx.groupby(["bn", "lr", "split"]).size().max()),
                "splits": int(k_n),
                "lrs": [float(v) for v in lrs],
            }
        )
        frame = pd.DataFrame(
            {
                "resample": np.arange(resamples),
                "decades_bn": boot["decades"][:, 1],
                "decades_no_bn": boot["decades"][:, 0],
                "difference": diff_boot,
            }
        )
        for k, v in zip(context, key):
            frame[k] = v
        frames.append(frame)
    draws = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["resample", "decades_bn", "decades_no_bn", "difference"])
    )
    return answers, draws


def _lr(log_value: float) -> float | None:
    return None if not math.isfinite(log_value) else float(f"{10.0**log_value:.6g}")


def _plain(value: Any) -> Any:
    """A numpy scalar as the JSON-able Python value."""
    return value.item() if hasattr(value, "item") else value


# --- How easy each arm is to tune ------------------------------------------------------------------------
def expected_best(trials: pd.DataFrame, chance: float = math.log(99)) -> pd.DataFrame:
    """Expected best (lowest) outcome of ``n`` runs drawn at random from each BN arm, n = 1…N.

    Dodge et al. (2019)'s expected validation performance over a budget of trials: with the arm's
    N outcomes sorted, E[min of n draws with replacement] = Σ v_(i) [(1 - (i-1)/N)^n - (1 - i/N)^n].
    A diverged run, and one no better than a uniform guess, counts as ``chance`` (it found nothing).

    Returns:
        Columns ``bn``, ``n``, ``expected``, ``sd`` (the standard deviation of that minimum).
    """
    trials = analysis.prepare(trials)
    rows = []
    if "outcome" in trials.columns and len(trials):
        for bn, arm in trials.groupby("bn", sort=True):
            v = np.sort(np.minimum(np.nan_to_num(arm["outcome"].to_numpy(float), nan=chance), chance))
            big_n = v.size
            i = np.arange(1, big_n + 1)
            for n in range(1, big_n + 1):
                w = (1 - (i - 1) / big_n) ** n - (1 - i / big_n) ** n
                mean = float((w * v).sum())
                sd = float(math.sqrt(max((w * v**2).sum() - mean**2, 0.0)))
                rows.append({"bn": bool(bn), "n": n, "expected": mean, "sd": sd})
    return pd.DataFrame(rows, columns=["bn", "n", "expected", "sd"])


# --- answer.json -----------------------------------------------------------------------------------------
#: The seed experiment's family: answer.json's top-level fields describe it when the study ran it.
SEED_FAMILY: dict[str, Any] = {name: getattr(StudyConfig(), name)[0] for name in axis_names(role="context")}


def answer_record(answers: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable answer (``report/answer.json``, documented in docs/results.md).

    Args:
        answers: :func:`bootstrap_answer`'s per-family answers.
        settings: ``window``, ``tolerance``, ``threshold``, ``resamples``, ``random_seed``.

    Returns:
        The top-level fields of the family closest to the seed experiment's (:data:`SEED_FAMILY`,
        its axes compared in ``trials.csv``'s order: depth 3, width 100, BN momentum 0.99, before
        the ReLU, batch size 10) with ``settings`` beside them, and
        every family's answer under ``families``. Without both arms: verdict ``inconclusive`` with a
        ``reason``.
    """
    record: dict[str, Any] = {"verdict": "inconclusive", "p_bn_wider": None}
    if answers:

        def score(a: dict[str, Any]) -> tuple[int, ...]:
            return tuple(int(a["family"].get(k, v) == v) for k, v in SEED_FAMILY.items())

        main = max(answers, key=score)
        record.update({k: v for k, v in main.items() if k != "lrs"})
    else:
        record["reason"] = "the study lacks runs with BN or without it: nothing to compare"
    record.update({k: settings[k] for k in ("window", "tolerance", "threshold", "resamples", "random_seed")})
    record["families"] = [{k: v for k, v in a.items() if k != "lrs"} for a in answers]
    return record
