"""The study's answer, made robust and given its own uncertainty.

Does BatchNormalization make the network robust to its learning rate? This module turns the runs of
a study into that answer (the arithmetic on arrays is :mod:`leafbn.report.lr_range`'s):

1. **A per-run outcome** (:func:`add_outcomes`): the *median* validation loss over the run's last
   ``window`` epochs (default 10), so one spiking epoch cannot set it. A diverged run (a non-finite
   loss) has no outcome; it stays in the table as ``diverged``, never dropped.
2. **Per configuration** (:func:`stability`): how many of its runs diverged, are stuck at chance,
   are behind, and *train* (one target for both arms: finite, clearly better than chance, within
   ``tolerance`` nats of the best configuration of the context, BN or not), with a Wilson interval.
3. **The answer with its uncertainty** (:func:`bootstrap_answer`): per arm, the area under the
   success-rate curve over log10(lr) (the width, in decades, of learning rates in which a run trains)
   and its lower and upper edges (where the rate crosses one half); the (split, seed) units resampled
   jointly across every cell; the paired difference BN − no BN; Holm's correction across contexts;
   one of four verdicts (:data:`leafbn.report.lr_range.VERDICTS`).

A context is everything but the learning rate and BN (and the nuisance seed and split); BN is compared
with no BN inside each context, the no-BN runs shared by every BN momentum and placement
(:func:`leafbn.report.analysis.pair_nobn`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from leafbn.config import StudyConfig, axis_names
from leafbn.report import analysis, lr_range
from leafbn.report.expected_best import BEST_BAND, expected_best
from leafbn.report.settings import ReportSettings

__all__ = [
    "DEFAULT_WINDOW",
    "DEFAULT_RESAMPLES",
    "BEST_BAND",
    "VERDICTS",
    "add_outcomes",
    "stability",
    "contexts",
    "bootstrap_answer",
    "expected_best",
    "answer_record",
    "SEED_FAMILY",
]

#: Epochs a run's outcome is the median over (the study's ``--window`` when config.json has it).
DEFAULT_WINDOW: int = ReportSettings.DEFAULT_WINDOW
#: Bootstrap resamples of the answer.
DEFAULT_RESAMPLES: int = ReportSettings.resamples
VERDICTS = lr_range.VERDICTS
#: The outcome columns a specification may use: the window median, the final epoch, the best epoch.
OUTCOME_COLUMNS: dict[str, str] = {"window": "outcome", "final": "final_val_loss", "best": "best_val_loss"}


# --- 1. Outcomes -----------------------------------------------------------------------------------------
def add_outcomes(trials: pd.DataFrame, curves: pd.DataFrame, window: int = DEFAULT_WINDOW) -> pd.DataFrame:
    """``trials`` with an ``outcome`` column: the median validation loss of its last ``window`` epochs.

    Args:
        trials: the trials table (:func:`leafbn.results.tables.load_tables`).
        curves: the curves table (``trial_id, epoch, val_loss, ...``), one row per epoch.
        window: how many of the last epochs the median is over (>= 1).

    Returns:
        A copy of ``trials`` with ``outcome`` (float; NaN for a diverged run) and
        ``outcome_from_curves`` (bool). A run with no rows in ``curves`` takes its final validation
        loss instead, with a warning saying how many did; the answer says so in a visible line.
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
    trials["outcome_from_curves"] = ~missing if len(trials) else pd.Series(dtype=bool)
    if len(trials):
        outcome[trials["diverged"]] = np.nan
    trials["outcome"] = outcome
    return trials


# --- 2. Per configuration --------------------------------------------------------------------------------
def contexts(trials: pd.DataFrame):
    """Yield ``(axes, key, ctx, lrs)`` per context of the (no-BN-paired) ``trials`` that has both
    arms: ``lrs`` are the learning rates both arms ran (sorted), ``ctx`` has a ``split`` column."""
    paired = analysis.pair_nobn(trials)
    if "split" not in paired.columns:
        paired = paired.assign(split=0)
    paired = paired.assign(split=paired["split"].fillna(0).astype(int))
    if "seed" not in paired.columns:
        paired = paired.assign(seed=paired.groupby(["bn", "lr", "split"]).cumcount())
    axes = analysis.context_axes(paired)
    for key, ctx in analysis.groups(paired, axes):
        if ctx["bn"].nunique() < 2:
            continue
        both = set(ctx.loc[ctx["bn"], "lr"].astype(float)) & set(ctx.loc[~ctx["bn"], "lr"].astype(float))
        if both:
            yield axes, key, ctx, np.array(sorted(both))


def _wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


_STABILITY_COLUMNS = [
    "n_runs", "n_diverged", "n_stuck", "n_behind", "n_success", "success_rate", "success_ci_low",
    "success_ci_high", "outcome_median", "outcome_q1", "outcome_q3", "context_best", "trains",
]  # fmt: skip


def stability(
    trials: pd.DataFrame,
    tolerance: float = analysis.DEFAULT_TOLERANCE,
    bar: float = lr_range.chance_bar(99),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per configuration: how its runs ended (diverged, stuck, behind, trains), with a Wilson interval.

    Args:
        trials: the trials table with ``outcome`` (:func:`add_outcomes`).
        tolerance: nats above the context's best median outcome (BN or not) a run may end and train.
        bar: the loss a run must end below to be clearly better than chance
            (:func:`leafbn.report.lr_range.chance_bar`).
        confidence: the level of the Wilson interval.

    Returns:
        One row per configuration: the context axes, ``bn``, ``lr``, ``n_runs``, ``n_diverged``,
        ``n_stuck``, ``n_behind``, ``n_success`` (runs that train), ``success_rate``,
        ``success_ci_low``, ``success_ci_high``, ``outcome_median``, ``outcome_q1``, ``outcome_q3``
        (over the finite runs), ``context_best`` and ``trains`` (at least half its runs train).
    """
    rows = []
    for axes, key, ctx, lrs in contexts(analysis.prepare(trials)):
        cube, _ = lr_range.unit_cube(ctx, "outcome", lrs)
        r = lr_range.success_rates(cube[None], tolerance, bar)
        for f in (0, 1):
            for li, lr in enumerate(lrs):
                x = cube[f, li][~np.isnan(cube[f, li])]
                n = x.size
                finite = x[np.isfinite(x)]
                k = round(r["trains"][0, f, li] * n)
                low, high = _wilson(k, n, confidence)
                q1, med, q3 = np.percentile(finite, [25, 50, 75]) if finite.size else (math.nan,) * 3
                rows.append({
                    **dict(zip(axes, key)), "bn": bool(f), "lr": float(lr), "n_runs": n,
                    "n_diverged": n - finite.size, "n_stuck": round(r["stuck"][0, f, li] * n),
                    "n_behind": round(r["behind"][0, f, li] * n), "n_success": k,
                    "success_rate": k / n if n else math.nan, "success_ci_low": low, "success_ci_high": high,
                    "outcome_median": float(med), "outcome_q1": float(q1), "outcome_q3": float(q3),
                    "context_best": float(r["best"][0]), "trains": bool(n and k / n >= lr_range.EDGE_LEVEL),
                })  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=[*analysis.context_axes(analysis.prepare(trials)), "bn", "lr",
                                     *_STABILITY_COLUMNS])  # fmt: skip
    return pd.DataFrame(rows)


# --- 3. The answer, recomputed on resampled units --------------------------------------------------------
def measure_context(
    ctx: pd.DataFrame,
    lrs: np.ndarray,
    column: str,
    tolerance: float,
    bar: float,
    draws: np.ndarray | None,
    chance: float = math.log(99),
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The measures (:func:`leafbn.report.lr_range.measures`, plus the outcome shares) of one context: on
    its runs, row 0 of each (2,)-per-arm array, and on the resampled units ``draws`` (B, U)."""
    cube, _ = lr_range.unit_cube(ctx, column, lrs)
    log_lrs = np.log10(lrs)

    def of(x: np.ndarray) -> dict[str, np.ndarray]:
        r = lr_range.success_rates(x, tolerance, bar)
        sensitivity = lr_range.lr_sensitivity(x, chance)
        return {**lr_range.measures(r["trains"], log_lrs), **r, "sensitivity": sensitivity}

    point = of(cube[None])
    boot = of(np.moveaxis(cube[:, :, draws], 2, 0)) if draws is not None else {}
    return point, boot


def _interval(values: np.ndarray, estimate: float, power: bool = False) -> dict[str, float | None]:
    """``{"estimate", "ci_low", "ci_high"}``: the 95% percentile interval (None where undefined);
    ``power``: the values are log10 of learning rates, given as learning rates."""
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (math.nan, math.nan)

    def num(v: float) -> float | None:
        if not math.isfinite(v):
            return None
        return float(f"{10.0**v:.4g}") if power else round(float(v), 4)

    return {"estimate": num(estimate), "ci_low": num(float(low)), "ci_high": num(float(high))}


def _context_answer(
    point: dict[str, np.ndarray], boot: dict[str, np.ndarray], lrs: np.ndarray
) -> dict[str, Any]:
    arms = {"no_bn": 0, "bn": 1}
    diff = boot["area"][:, 1] - boot["area"][:, 0]
    sens = boot["sensitivity"][:, 1] - boot["sensitivity"][:, 0]
    low90, high90 = np.percentile(diff, [5, 95])
    rate = point["trains"][0]

    def per_arm(name: str, power: bool = False) -> dict[str, Any]:
        return {a: _interval(boot[name][:, f], float(point[name][0, f]), power) for a, f in arms.items()}

    return {
        "p_bn_wider": round(lr_range.p_bn_wider(diff), 4),
        "p_two_sided": lr_range.p_two_sided(diff),
        "width_decades": per_arm("area"),
        "difference_decades": {
            **_interval(diff, float(point["area"][0, 1] - point["area"][0, 0])),
            "ci90_low": round(float(low90), 4),
            "ci90_high": round(float(high90), 4),
        },  # fmt: skip
        "lower_edge_lr": per_arm("lower", True),
        "upper_edge_lr": per_arm("upper", True),
        "edge_at_grid": {
            a: {"lower": bool(point["lower_at_grid"][0, f]), "upper": bool(point["upper_at_grid"][0, f])}
            for a, f in arms.items()
        },
        "lr_sensitivity": {
            **per_arm("sensitivity"),
            "difference": _interval(sens, float(point["sensitivity"][0, 1] - point["sensitivity"][0, 0])),
            "p_bn_lower": round(lr_range.p_bn_wider(-sens), 4),
        },
        "no_edge_fraction": {a: float(np.isnan(boot["lower"][:, f]).mean()) for a, f in arms.items()},
        "success_rate": {a: [round(float(v), 4) for v in rate[f]] for a, f in arms.items()},
        "outcome_shares": {
            a: {
                k: round(float((point[k][0, f] * point["n"][0, f]).sum() / point["n"][0, f].sum()), 4)
                for k in ("trains", "behind", "stuck", "diverged")
            }
            for a, f in arms.items()
        },  # fmt: skip
        "context_best": round(float(point["best"][0]), 4),
        "lrs": [float(v) for v in lrs],
    }


def bootstrap_answer(
    trials: pd.DataFrame,
    tolerance: float = analysis.DEFAULT_TOLERANCE,
    bar: float = lr_range.chance_bar(99),
    resamples: int = DEFAULT_RESAMPLES,
    random_seed: int = 0,
    margin: float = lr_range.MARGIN,
    column: str = "outcome",
    chance: float = math.log(99),
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The answer per context, with its paired bootstrap distribution.

    Args:
        trials: the trials table with ``outcome`` (:func:`add_outcomes`); ``split`` optional.
        tolerance, bar: as in :func:`stability`.
        resamples: bootstrap resamples (>= 1000 for a quotable interval).
        random_seed: the seed of the resampling (the same seed gives the same answer).
        margin: decades within which BN − no BN is no difference (:func:`leafbn.report.lr_range.verdict`).
        column: the outcome column (:data:`OUTCOME_COLUMNS`).
        chance: the loss of a uniform guess, where the LR sensitivity caps each run.

    Returns:
        ``(answers, draws)``. ``answers``: one dict per context (``family``: its axes) with
        ``verdict``, ``p_bn_wider``, ``p_two_sided``, ``p_holm`` (Holm across contexts), and the
        fields of docs/results.md (``width_decades``, ``difference_decades``, ``lower_edge_lr``,
        ``upper_edge_lr``, ...). ``draws``: per resample and context, ``decades_bn``,
        ``decades_no_bn`` (areas) and ``difference``.
    """
    if resamples < 1:
        raise ValueError(f"resamples {resamples}: must be >= 1")
    trials = analysis.prepare(trials)
    if column not in trials.columns:
        raise ValueError(f"trials have no {column} column: call add_outcomes first")
    rng = np.random.default_rng(random_seed)
    answers, frames = [], []
    for axes, key, ctx, lrs in contexts(trials):
        _, unit_split = lr_range.unit_cube(ctx, column, lrs)
        idx = lr_range.unit_draws(unit_split, resamples, rng)
        point, boot = measure_context(ctx, lrs, column, tolerance, bar, idx, chance)
        ans = {"family": {k: _plain(v) for k, v in zip(axes, key)}, **_context_answer(point, boot, lrs)}
        ans["seeds"] = int(ctx.groupby(["split"])["seed"].nunique().max())
        ans["splits"] = int(np.unique(unit_split).size)
        ans["units"] = int(unit_split.size)
        answers.append(ans)
        frame = pd.DataFrame({
            "resample": np.arange(resamples), "decades_bn": boot["area"][:, 1],
            "decades_no_bn": boot["area"][:, 0], "difference": boot["area"][:, 1] - boot["area"][:, 0],
        })  # fmt: skip
        frames.append(frame.assign(**{k: v for k, v in zip(axes, key)}))
    adjusted = analysis.holm(np.array([a["p_two_sided"] for a in answers], dtype=float))
    for ans, p_adj, frame in zip(answers, adjusted, frames):
        ans["p_holm"] = float(p_adj)
        ans["verdict"] = lr_range.verdict(frame["difference"].to_numpy(), float(p_adj), margin)
    draws = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["resample", "decades_bn", "decades_no_bn", "difference"])
    )
    return answers, draws


def _plain(value: Any) -> Any:
    """A numpy scalar as the JSON-able Python value."""
    return value.item() if hasattr(value, "item") else value


# --- answer.json -----------------------------------------------------------------------------------------
#: The seed experiment's family: answer.json's top-level fields describe it when the study ran it.
SEED_FAMILY: dict[str, Any] = {name: getattr(StudyConfig(), name)[0] for name in axis_names(role="context")}


_SETTINGS = (
    "window",
    "tolerance",
    "bar",
    "margin",
    "edge_level",
    "resamples",
    "random_seed",
    "outcome_source",
)


def main_answer(answers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The answer of the context closest to the seed experiment's (BN momentum 0.99, before the ReLU,
    then depth 3, width 100, batch size 10); None without any."""
    if not answers:
        return None
    return max(answers, key=lambda a: tuple(int(a["family"].get(k, v) == v) for k, v in SEED_FAMILY.items()))


def answer_record(
    answers: list[dict[str, Any]], settings: dict[str, Any], specification: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The machine-readable answer (``report/answer.json``, every field documented in docs/results.md).

    Args:
        answers: :func:`bootstrap_answer`'s per-context answers.
        settings: ``window``, ``tolerance``, ``bar``, ``margin``, ``resamples``, ``random_seed`` and
            ``outcome_source`` (how the runs' outcomes were read).
        specification: :func:`leafbn.report.specification.specification_table`'s record, when computed.

    Returns:
        The main context's fields (:func:`main_answer`) with ``settings`` beside them, the
        specification, and every context's answer under ``families``. Without both arms: verdict
        ``inconclusive`` with a ``reason``.
    """
    record: dict[str, Any] = {"verdict": "inconclusive", "p_bn_wider": None}
    main = main_answer(answers)
    if main is not None:
        record.update(main)
    else:
        record["reason"] = "the study lacks runs with BN or without it: nothing to compare"
    record["settings"] = {k: settings[k] for k in _SETTINGS if k in settings}
    record["specification"] = specification
    record["families"] = [{k: v for k, v in a.items() if k not in ("success_rate", "lrs")} for a in answers]
    return record
