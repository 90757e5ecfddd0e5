"""The report's tables: how the runs ended per configuration, the paired BN effect, and the per
configuration statistics, as render blocks (:mod:`leafbn.report.render`)."""

from __future__ import annotations

import math

import pandas as pd

from leafbn.report import prose
from leafbn.report.render import Block

__all__ = ["tables_blocks"]


def tables_blocks(
    trials: pd.DataFrame,
    stats: pd.DataFrame,
    stab: pd.DataFrame,
    effect: pd.DataFrame,
    confidence: float,
) -> list[Block]:
    """The "Tables" section: outcomes per configuration, the paired effect (when any) and the
    per-configuration statistics, each under its heading."""
    vary = prose.varying(trials, exclude=("lr", "bn"))
    blocks: list[Block] = [("h2", "Tables"), *_outcome_table(stab, vary)]
    if len(effect):
        blocks += _effect_table(effect, vary, confidence)
    return blocks + _per_configuration_table(stats, vary, confidence)


def _outcome_table(stab: pd.DataFrame, vary: list[str]) -> list[Block]:
    """How the runs ended per configuration (train / behind / stuck / diverged)."""
    s = stab[[*[c for c in ("bn", *vary, "lr") if c in stab.columns]]].copy()
    s["train"] = [f"{k}/{n}" for k, n in zip(stab["n_success"], stab["n_runs"])]
    s["success rate [Wilson 95%]"] = [
        f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
        for r, lo, hi in zip(stab["success_rate"], stab["success_ci_low"], stab["success_ci_high"])
    ]
    s["diverged"] = stab["n_diverged"]
    s["median [IQR]"] = [
        "—" if not math.isfinite(m) else f"{m:.4f} [{a:.4f}, {b:.4f}]"
        for m, a, b in zip(stab["outcome_median"], stab["outcome_q1"], stab["outcome_q3"])
    ]
    s["stuck"] = stab["n_stuck"]
    s["behind"] = stab["n_behind"]
    s["context best"] = stab["context_best"]
    s["half train"] = stab["trains"]
    title = "How the runs ended per configuration (train / behind / stuck / diverged)"
    return [("h3", title), ("table", s)]


def _effect_table(effect: pd.DataFrame, vary: list[str], confidence: float) -> list[Block]:
    """BN − no-BN outcome per learning rate, paired by (split, seed), with its tests."""
    level = f"{confidence:.0%}"
    shown = ["lr", "n_pairs", "val_loss_nobn", "val_loss_bn", "diff", "ci_low", "ci_high", "p_value",
             "p_holm", "p_rank", "p_rank_holm", "significant", "tests_agree", "status"]  # fmt: skip
    e = effect[[*vary, *shown]]
    e = e.rename(columns={
        "ci_low": f"{level} CI low", "ci_high": f"{level} CI high", "diff": "BN − no BN (paired)",
        "p_value": "p paired t", "p_holm": "p paired t (Holm)", "p_rank": "p Wilcoxon",
        "p_rank_holm": "p Wilcoxon (Holm)", "tests_agree": "tests agree", "n_pairs": "pairs",
    })  # fmt: skip
    title = f"BN − no-BN outcome per learning rate, paired by (split, seed) ({level} CI; Holm across LRs)"
    return [("h3", title), ("table", e)]


def _per_configuration_table(stats: pd.DataFrame, vary: list[str], confidence: float) -> list[Block]:
    """Mean ± std [CI] of the outcome, accuracy and training loss per configuration."""
    level = f"{confidence:.0%}"

    def cell(mean: float, std: float, ci: float) -> str:
        if not math.isfinite(mean):
            return "—"
        text = f"{mean:.4f}" + (f" ± {std:.4f}" if math.isfinite(std) else "")
        return text + (f" [{mean - ci:.4f}, {mean + ci:.4f}]" if math.isfinite(ci) else "")

    per = stats[[*[c for c in ("lr", "bn", *vary) if c in stats.columns]]].copy()
    per["runs"] = stats["n_runs"]
    per["diverged"] = stats["n_diverged"]
    per[f"outcome mean ± std [{level} CI]"] = [
        cell(m, s, c) for m, s, c in zip(stats["val_loss_mean"], stats["val_loss_std"], stats["val_loss_ci"])
    ]
    per["outcome median"] = stats["val_loss_median"]
    per["val accuracy mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["val_accuracy_mean"], stats["val_accuracy_std"])
    ]
    per["train loss mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["train_loss_mean"], stats["train_loss_std"])
    ]
    return [("h3", "Per configuration (non-diverged runs)"), ("table", per)]
