"""What a report says around its answer: what was run, and the caveats.

Each function takes the study's config.json record and tables and returns report blocks
(:mod:`leafbn.report.render`); nothing here computes a statistic.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from leafbn.config import TRIAL_FIELDS
from leafbn.report.prose import context_label, duration, values_text, varying
from leafbn.report.render import Block, fmt
from leafbn.results.record import StudyRecord

__all__ = ["expected_trials", "what_was_run", "caveats"]


def expected_trials(record: StudyRecord, trials: pd.DataFrame) -> int | None:
    """The trials the study meant to run: its run record's count, else its grid's size, else None."""
    expected = record.run.get("trials_expected")
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return int(expected)
    grid = _grid(record)
    return len(grid) if grid is not None else None


def _grid(record: StudyRecord) -> list[dict[str, Any]] | None:
    """The study's full grid from ``config.json``'s ``study`` (None when absent or invalid)."""
    study = record.study
    if not study:
        return None
    try:
        from leafbn.config import StudyConfig

        return StudyConfig.from_dict(study).trial_configs()
    except Exception as exc:
        warnings.warn(
            f"config.json's study settings are not a valid StudyConfig ({exc}); grid unknown", stacklevel=2
        )
        return None


#: The study's settings "What was run" lists, in this order (config.json's ``study`` keys).
_SETTINGS_SHOWN: tuple[str, ...] = (
    "seeds", "seed_base", "splits", "window", "epochs", "batch_size", "drop_last", "momentum", "decay",
    "val_fraction", "split_seed", "standardize",
)  # fmt: skip


def what_was_run(record: StudyRecord, trials: pd.DataFrame, expected: int | None) -> list[Block]:
    """The "What was run" section: data, grid, settings, trials, run and versions, one item each (from
    config.json where it has them, else what ``trials.csv`` shows)."""
    data, run, versions = record.data, record.run, record.versions
    items: list[str] = []
    if data:
        sha = str(data.get("sha256", ""))[:12]
        shown = ", ".join(f"{k} {data[k]}" for k in ("source", "rows", "classes", "features") if k in data)
        items.append("Data: " + shown + (f", sha256 {sha}…" if sha else ""))
    items += _grid_items(record.study, trials)
    items.append(_trials_item(trials, expected))
    if run:
        wall = run.get("wall_time_s")
        wall_text = duration(wall) if isinstance(wall, (int, float)) else "unknown"
        items.append(
            f"Run: started {run.get('started', '?')}, finished {run.get('finished', '?')}, "
            f"wall time {wall_text}, "
            f"Ray nodes {run.get('ray_nodes', '?')}, CPUs {run.get('ray_cpus', '?')}, "
            f"trials finished {run.get('trials_finished', '?')}"
        )
    elif "node_id" in trials.columns and len(trials):
        items.append(
            f"Run: config.json has no run record; trials ran on {trials['node_id'].nunique()} Ray node(s)"
        )
    if versions:
        items.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if not record:
        items.append("config.json is missing: data record, settings and run times unknown")
    return [("h2", "What was run"), ("ul", items)]


def _grid_items(study: dict, trials: pd.DataFrame) -> list[str]:
    """The grid and the settings from config.json's ``study``; without it, the grid trials.csv shows."""
    if study:
        axes = ", ".join(f"{k} {values_text(study[k])}" for k in TRIAL_FIELDS if k in study)
        training = ", ".join(f"{k} {study[k]}" for k in _SETTINGS_SHOWN if k in study)
        return [f"Grid: {axes}", f"Settings: {training}".replace("window ", "outcome window (epochs) ")]
    if trials.empty:
        return []
    axes = ", ".join(
        f"{k} {values_text(sorted(trials[k].dropna().unique().tolist()))}"
        for k in TRIAL_FIELDS
        if k in trials.columns
    )
    return [f"Grid (from trials.csv; config.json missing): {axes}"]


def _trials_item(trials: pd.DataFrame, expected: int | None) -> str:
    """How many trials are present (of how many expected), configurations, seeds per split, diverged."""
    fields = [f for f in TRIAL_FIELDS if f in trials.columns]
    n_conf = len(trials.drop_duplicates(fields)) if len(trials) else 0
    seeds = trials.groupby(fields, dropna=False).size() if len(trials) else None
    n_splits = int(trials["split"].nunique()) if len(trials) and "split" in trials.columns else 1
    if seeds is not None and n_splits > 1:
        seeds = seeds // n_splits  # runs per configuration = seeds × splits
    each = " (per split)" if n_splits > 1 else ""
    splits_text = f" × {n_splits} splits" if n_splits > 1 else ""
    seed_text = ""
    if seeds is not None:
        count = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
        seed_text = f", {count} seeds{each}{splits_text} each"
    n_div = int(trials["diverged"].sum()) if len(trials) else 0
    return (
        f"Trials: {len(trials)} present"
        + (f" of {expected} expected" if expected is not None else "")
        + f", {n_conf} configurations{seed_text}, {n_div} diverged"
    )


def caveats(
    record: StudyRecord,
    trials: pd.DataFrame,
    expected: int | None,
    stats: pd.DataFrame | None,
    effect: pd.DataFrame | None,
    tolerance: float,
    confidence: float,
) -> list[Block]:
    """The "Caveats" section: what is missing, what failed, how the numbers may mislead, and what the
    answer does not cover."""
    items = _presence_caveats(record, trials, expected) + _run_caveats(trials)
    if stats is not None and len(stats):
        items += _skew_caveat(stats, tolerance)
    if effect is not None:
        n_tests = int((effect["status"] == "ok").sum())
        if n_tests > 1:
            items.append(
                f"{n_tests} learning rates tested per test (paired t and Wilcoxon signed-rank), each family "
                f"of tests Holm-corrected at p < {1 - confidence:g}; the verdict rests on the bootstrap, "
                "not on them."
            )
    items += _scope_caveats(record, trials, tolerance)
    return [("h2", "Caveats"), ("ul", items)]


def _presence_caveats(record: StudyRecord, trials: pd.DataFrame, expected: int | None) -> list[str]:
    """How many trials are present of those expected, and which configurations are missing."""
    items: list[str] = []
    if expected is not None:
        items.append(
            f"{len(trials)} of {expected} expected trials are present"
            + (
                " (config.json run.trials_expected)."
                if "trials_expected" in record.run
                else " (from config.json's grid)."
            )
        )
        missing = _missing_configs(record, trials)
        if missing:
            items.append(
                "Missing: "
                + "; ".join(missing[:10])
                + (f"; and {len(missing) - 10} more" if len(missing) > 10 else "")
                + "."
            )
    else:
        items.append(
            f"{len(trials)} trials present; the expected number is unknown (no config.json run record)."
        )
    return items


def _run_caveats(trials: pd.DataFrame) -> list[str]:
    """Runs that diverged, failed, were restarted, or configurations with a single seed."""
    items: list[str] = []
    if len(trials):
        div = int(trials["diverged"].sum())
        if div:
            items.append(
                f"{div} trial(s) diverged: they count in divergence rates and are left out of every mean; "
                "where only some seeds of a configuration diverged, its mean describes the survivors."
            )
        na = int((~trials["diverged"] & ~np.isfinite(trials["final_val_loss"].astype(float))).sum())
        if na:
            items.append(
                f"{na} trial(s) did not diverge but have no finite final validation loss (failed?): left out."
            )
        if "retries" in trials.columns and trials["retries"].fillna(0).sum() > 0:
            items.append(
                f"{int((trials['retries'].fillna(0) > 0).sum())} trial(s) were restarted by Ray Tune "
                "after a failure."
            )
        keys = [f for f in TRIAL_FIELDS if f in trials.columns]
        few = trials.groupby(keys, dropna=False).size()
        if (few < 2).any():
            items.append(f"{int((few < 2).sum())} configuration(s) have a single seed: no CI or test there.")
    return items


def _scope_caveats(record: StudyRecord, trials: pd.DataFrame, tolerance: float) -> list[str]:
    """What the answer does not cover: the splits, the one data set, the choices of the width, and
    BN-only axes repeated without BN."""
    items: list[str] = []
    study = record.study
    split = (
        f" (split_seed {study['split_seed']}, validation fraction {study['val_fraction']})"
        if {"split_seed", "val_fraction"} <= set(study)
        else ""
    )
    n_splits = int(study.get("splits", 1) or 1)
    if n_splits > 1:
        items.append(
            f"{n_splits} stratified train/validation splits{split}. The bootstrap keeps them and draws "
            "each split's seeds with replacement (too few splits to resample them): the intervals are "
            "conditional on these splits; there is no separate test set."
        )
    else:
        items.append(
            f"One train/validation split{split}: the spread across seeds leaves out the split's variance "
            "(`--splits K` adds it); there is no separate test set."
        )
    data = record.data
    items.append(
        f"One data set ({data.get('source', 'Leaf Classification features')}): "
        "the answer may not carry over to other data or architectures."
    )
    items.append(
        f"The trainable width depends on the tolerance ({tolerance:g} nats), the bar of 'clearly better "
        "than chance' and the grid: the success rate is measured at the grid's learning rates and "
        "interpolated linearly between them, and a range that reaches the grid's end may extend beyond "
        "it. The specification table shows the verdict under the other reasonable choices."
    )
    if len(trials) and "bn_momentum" in trials.columns and trials["bn_momentum"].nunique() > 1:
        items.append(
            "bn_momentum (and bn_placement) do nothing without BN: "
            "no-BN trials that differ only there repeat each other."
        )
    return items


def _skew_caveat(stats: pd.DataFrame, tolerance: float) -> list[str]:
    """Configurations whose mean outcome exceeds its median by more than ``tolerance``: a few runs
    ended far above the rest, and the means and the t-tests follow them (the verdict does not)."""
    skewed = stats[stats["val_loss_mean"] - stats["val_loss_median"] > tolerance]
    if skewed.empty:
        return []
    axes = varying(stats) or ["lr"]
    shown = [
        f"{context_label({a: r[a] for a in axes})} (mean {fmt(r['val_loss_mean'])}, "
        f"median {fmt(r['val_loss_median'])})"
        for _, r in skewed.iterrows()
    ]
    more = f"; and {len(shown) - 10} more" if len(shown) > 10 else ""
    return [
        f"{len(shown)} configuration(s) have a mean outcome more than {tolerance:g} nats above their "
        f"median: {'; '.join(shown[:10])}{more}. A few runs ended far above the others; the means and "
        "the paired t-test follow them, the success rates, the verdict and the rank test do not."
    ]


def _missing_configs(record: StudyRecord, trials: pd.DataFrame) -> list[str]:
    """Configurations of the grid with fewer trials present than seeds asked for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = _grid(record)
    if grid is None:
        return []
    # an axis the table lacks (written before the axis existed: init) is not compared
    axes = [f for f in TRIAL_FIELDS if f in grid[0] and (trials.empty or f in trials.columns)] if grid else []

    def key(values: dict[str, Any]) -> tuple:
        # The tables hold the values the trials reported, written and read back exactly
        # (leafbn.results.tables.read_table parses floats round-trip): compared as they are.
        return tuple(values[a].item() if isinstance(values[a], np.generic) else values[a] for a in axes)

    want: dict[tuple, int] = {}
    for g in grid:
        want[key(g)] = want.get(key(g), 0) + 1
    have: dict[tuple, int] = {}
    if len(trials) and set(axes) <= set(trials.columns):
        for rec in trials[axes].to_dict("records"):
            have[key(rec)] = have.get(key(rec), 0) + 1
    out = []
    for k, n in want.items():
        if have.get(k, 0) < n:
            out.append(", ".join(f"{a}={fmt(v)}" for a, v in zip(axes, k)) + f" ({have.get(k, 0)}/{n} seeds)")
    return out
