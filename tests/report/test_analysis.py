"""leafbn.report.analysis on small constructed tables whose answers are known by construction."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leafbn.config import TRIAL_FIELDS
from leafbn.report import analysis, space_tables
from tests.fixtures.synthetic import BN, LRS, NOBN, OFFS, STD, make_curves, make_trials  # noqa: F401


def row(df: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(df), bool)
    for k, v in where.items():
        mask &= np.isclose(df[k], v) if isinstance(v, float) else (df[k] == v).to_numpy()
    assert mask.sum() == 1, f"{where}: {mask.sum()} rows"
    return df[mask].iloc[0]


# ------------------------------------------------------------------------------------------------
def test_public_surface():
    assert all(hasattr(analysis, name) for name in analysis.__all__)
    assert list(inspect.signature(analysis.summary).parameters) == ["trials"]


def test_aggregate_known_values():
    agg = analysis.aggregate(make_trials())
    assert len(agg) == 14
    assert set(TRIAL_FIELDS) - {"init"} <= set(agg.columns)  # a table without init: written before it
    r = row(agg, lr=1e-2, bn=False)
    assert (r.n_runs, r.n_ok, r.n_diverged, r.divergence_rate) == (5, 5, 0, 0.0)
    assert r.val_loss_mean == pytest.approx(0.6)
    assert r.val_loss_std == pytest.approx(STD)
    assert r.val_loss_ci == pytest.approx(stats.t.ppf(0.975, 4) * STD / math.sqrt(5))
    assert r.train_loss_mean == pytest.approx(0.3)
    for lr in (1.0, 10.0, 100.0, 1000.0):
        r = row(agg, lr=lr, bn=False)
        assert (r.n_diverged, r.divergence_rate, r.n_ok) == (5, 1.0, 0)
        assert math.isnan(r.val_loss_mean)
    assert agg.loc[agg["bn"], "n_diverged"].sum() == 0


def test_aggregate_median_resists_one_spiking_seed():
    trials = make_trials()
    spike = (trials["lr"] == 1e-2) & trials["bn"] & (trials["seed"] == 4)
    trials.loc[spike, "final_val_loss"] = 100.0  # one seed's last epoch spiked
    r = row(analysis.aggregate(trials), lr=1e-2, bn=True)
    others = trials.loc[(trials["lr"] == 1e-2) & trials["bn"] & ~spike, "final_val_loss"]
    assert r.val_loss_mean == pytest.approx((others.sum() + 100.0) / 5)
    assert r.val_loss_median == pytest.approx(others.sort_values().iloc[2])  # the 3rd of 5 values
    assert r.val_loss_median < 0.5 < r.val_loss_mean
    assert math.isnan(row(analysis.aggregate(trials), lr=10.0, bn=False).val_loss_median)  # all diverged


def test_aggregate_ci_level_and_single_seed():
    agg = analysis.aggregate(make_trials(), confidence=0.99)
    assert row(agg, lr=1e-1, bn=True).val_loss_ci == pytest.approx(stats.t.ppf(0.995, 4) * STD / math.sqrt(5))
    one = analysis.aggregate(make_trials(seeds=1))
    r = row(one, lr=1e-2, bn=False)
    assert r.n_ok == 1 and math.isnan(r.val_loss_std) and math.isnan(r.val_loss_ci)


def test_bn_effect_significant_not_significant_and_diverged():
    trials = make_trials()
    eff = analysis.bn_effect(trials)
    assert len(eff) == 7
    sig = row(eff, lr=1e-2)
    assert sig.status == "ok" and sig.significant
    assert sig["diff"] == pytest.approx(-0.2)
    assert sig.ci_low < -0.2 < sig.ci_high < 0
    a = trials.query("bn and lr == 0.01").sort_values("seed")["final_val_loss"].to_numpy()
    b = trials.query("not bn and lr == 0.01").sort_values("seed")["final_val_loss"].to_numpy()
    assert sig.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)  # paired by seed
    assert sig.p_rank == pytest.approx(stats.wilcoxon(a, b).pvalue) and sig.n_pairs == 5
    ns = row(eff, lr=1e-3)
    assert ns.status == "ok" and not ns.significant and ns.p_value > 0.05
    assert ns["diff"] == pytest.approx(0.005) and ns.ci_low < 0 < ns.ci_high
    for lr in (1.0, 10.0, 100.0, 1000.0):
        r = row(eff, lr=lr)
        assert r.status == "no-BN diverged in all seeds"
        assert math.isnan(r.p_value) and not r.significant
        assert (r.n_nobn_diverged, r.n_nobn, r.n_bn_diverged) == (5, 5, 0)
        assert r.val_loss_bn == pytest.approx(BN[lr])


def test_bn_effect_other_statuses():
    lrs = [1e-2, 1e-1, 1.0]
    trials = make_trials(
        nobn={1e-2: 0.5, 1e-1: 0.5, 1.0: 0.5},
        bn={1e-2: 0.5},
        lrs=lrs,
        seeds=5,
        diverge={(False, 1e-1, s) for s in range(4)},
    )
    eff = analysis.bn_effect(trials)
    assert row(eff, lr=1e-1).status == "BN diverged in all seeds"
    assert row(eff, lr=1.0).status == "BN diverged in all seeds"
    single = analysis.bn_effect(make_trials(seeds=1))
    assert row(single, lr=1e-2).status == "too few pairs"
    assert row(single, lr=1e-2)["diff"] == pytest.approx(-0.2 + OFFS[2] - OFFS[0])
    both = analysis.bn_effect(make_trials(nobn={}, bn={}, lrs=[1.0]))
    assert both.iloc[0].status == "both diverged in all seeds"


def test_per_family_metrics_with_a_depth_axis():
    trials = make_trials(depths=(2, 3))
    eff = analysis.bn_effect(trials)
    assert len(eff) == 14 and "depth" in eff.columns
    assert row(eff, lr=1e-2, depth=2)["diff"] == pytest.approx(-0.2)
    assert space_tables.heatmap_axes(trials) == ["depth"]
    heat = space_tables.heatmap_data(trials, "depth")
    assert len(heat) == 28
    assert row(heat, bn=False, depth=2, lr=1.0).divergence_rate == 1.0
    assert row(heat, bn=True, depth=2, lr=1e-1).val_loss_mean == pytest.approx(0.1)
    assert space_tables.heatmap_axes(make_trials()) == []


def test_summary_and_format_summary():
    summ = analysis.summary(make_trials())
    assert list(summ.columns) == [
        "lr",
        "bn",
        "val_loss_median",
        "val_loss_q1",
        "val_loss_q3",
        "diverged",
        "runs",
        "unfinished",
    ]
    assert len(summ) == 14 and summ["runs"].eq(5).all()
    assert row(summ, lr=1.0, bn=False).diverged == 5 and math.isnan(
        row(summ, lr=1.0, bn=False).val_loss_median
    )
    r = row(summ, lr=1e-2, bn=True)  # 0.4 + (-0.02, -0.01, 0, 0.01, 0.02)
    assert (r.val_loss_q1, r.val_loss_median, r.val_loss_q3) == pytest.approx((0.39, 0.4, 0.41))
    text = analysis.format_summary(summ)
    assert len(text.splitlines()) == 15
    assert "0.4000 (0.3900–0.4100)" in text and "5/5" in text and "0/5" in text


def test_summary_is_not_moved_by_one_exploded_run():
    trials = make_trials(lrs=[1e-2])
    trials.loc[trials["bn"] & (trials["seed"] == 0), "final_val_loss"] = 6e15  # finite, not diverged
    r = row(analysis.summary(trials), lr=1e-2, bn=True)
    assert r.val_loss_median == pytest.approx(0.41) and r.diverged == 0
    assert analysis.format_summary(analysis.summary(make_trials().iloc[0:0])) == "(no trials)"


def test_summary_of_an_interrupted_study_counts_only_finished_runs():
    trials = make_trials(lrs=[1e-2])
    cut = (trials["bn"]) & (trials["seed"] >= 3)  # two BN seeds stopped: one half-way, one never ran
    trials.loc[cut, "epochs_run"] = [2, 0]
    trials.loc[cut, "final_val_loss"] = [9.0, math.nan]
    r = row(analysis.summary(trials), lr=1e-2, bn=True)
    assert (r.runs, r.unfinished, r.diverged) == (3, 2, 0)
    assert r.val_loss_median == pytest.approx(0.4 + OFFS[3])  # the median of seeds 0-2 only
    assert "0/3  (+2 not run to the end)" in analysis.format_summary(analysis.summary(trials))


def test_summary_accepts_the_runner_table_as_written(tmp_path):
    trials = make_trials().drop(columns=["diverged"])
    trials["bn"] = trials["bn"].map({True: "True", False: "False"})
    summ = analysis.summary(trials)
    assert row(summ, lr=10.0, bn=False).diverged == 5  # from the non-finite loss
    assert row(summ, lr=10.0, bn=True).diverged == 0


def test_curve_summary():
    trials = make_trials(lrs=[1e-2, 1.0])
    curves = make_curves(trials)
    cs = space_tables.curve_summary(trials, curves)
    r = row(cs, lr=1e-2, bn=True, epoch=4)
    assert r.n == 5 and r.val_loss_mean == pytest.approx(0.4 + 0.25)
    assert r.val_loss_ci == pytest.approx(stats.t.ppf(0.975, 4) * STD / math.sqrt(5))
    d = row(cs, lr=1.0, bn=False, epoch=2)
    assert d.n_diverged == 5 and d.n == 0 and math.isnan(d.val_loss_mean)
    assert row(cs, lr=1.0, bn=False, epoch=1).val_loss_mean == pytest.approx(4.0)
    assert space_tables.curve_summary(trials, curves.iloc[0:0]).empty


# --- no-BN trials shared across BN momentum/placement; "stable" requires learning -------------
def _row(lr, bn, momentum, loss, seed=0, diverged=False):
    return {"trial_id": f"{lr}-{bn}-{momentum}-{seed}", "lr": lr, "bn": bn, "depth": 3, "width": 100,
            "bn_momentum": momentum, "bn_placement": "before", "seed": seed,
            "final_val_loss": math.nan if diverged else loss, "final_val_accuracy": 0.5,
            "final_train_loss": loss, "diverged": diverged}  # fmt: skip


def test_pair_nobn_shares_nobn_trials_with_every_bn_family():
    rows = [_row(lr, True, m, 1.0 + 0.1 * s, s) for lr in (0.01, 0.1) for m in (0.9, 0.99) for s in (0, 1)]
    rows += [_row(lr, False, 0.9, 2.0 + 0.1 * s, s) for lr in (0.01, 0.1) for s in (0, 1)]  # run once
    trials = pd.DataFrame(rows)
    paired = analysis.pair_nobn(trials)
    nobn = paired[~paired["bn"]]
    assert sorted(nobn["bn_momentum"].unique()) == [0.9, 0.99] and len(nobn) == 8
    assert len(paired[paired["bn"]]) == 8  # BN trials untouched
    effect = analysis.bn_effect(paired)
    # every pair differs by exactly -1: nothing to test, but the paired difference is there
    assert len(effect) == 4 and (effect["status"] == "no variance").all() and (effect["n_pairs"] == 2).all()
    assert np.allclose(effect["diff"], -1.0)
    assert len(analysis.summary(trials)) == 4  # the summary still counts each trial once
