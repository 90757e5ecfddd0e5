"""The robust answer: outcomes, success rates, the bootstrap verdict, expected best over a budget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from leafbn.report import lr_range, robustness
from tests.fixtures.synthetic import make_curves, make_trials

LRS = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]


def noisy_trials(
    nobn: dict, bn: dict, seeds: int = 5, splits: int = 1, noise: float = 0.1, seed: int = 0
) -> pd.DataFrame:
    """Runs with outcome = mean + N(0, noise); an LR missing from a side's means diverged."""
    rng = np.random.default_rng(seed)
    rows = []
    for lr in LRS:
        for on, means in ((False, nobn), (True, bn)):
            for split in range(splits):
                for s in range(seeds):
                    mean = means.get(lr)
                    div = mean is None
                    value = math.nan if div else max(mean + rng.normal(0, noise), 0.01)
                    rows.append(
                        dict(
                            trial_id=f"{lr:g}-{int(on)}-{split}-{s}", lr=lr, bn=on, depth=3, width=100,
                            bn_momentum=0.99, bn_placement="before", seed=s, split=split,
                            final_val_loss=value, outcome=value, diverged=div,
                        )
                    )  # fmt: skip
    return pd.DataFrame(rows)


WIDE = {1e-3: 1.0, 1e-2: 0.5, 1e-1: 0.3, 1.0: 0.35, 10.0: 0.5}  # stable 1e-2..10: 3 decades
NARROW = {1e-3: 1.0, 1e-2: 0.5, 1e-1: 0.3}  # stable 1e-2..1e-1: 1 decade, diverges from 1


def test_outcome_is_the_median_of_the_last_epochs_and_a_spike_does_not_move_it():
    trials = make_trials(epochs=20)
    curves = make_curves(trials)
    spiked = curves.copy()
    last = spiked.groupby("trial_id")["epoch"].transform("max") == spiked["epoch"]
    spiked.loc[last & ~spiked["val_loss"].isna(), "val_loss"] = 1e14  # every run spikes in its last epoch
    a = robustness.add_outcomes(trials, curves, window=10)
    b = robustness.add_outcomes(trials, spiked, window=10)
    ok = ~a["diverged"]
    # the curve is final + 1/epoch: the median of epochs 11..20 is final + mean(1/15.5-ish) -> between
    expected = trials.loc[ok, "final_val_loss"] + np.median(1 / np.arange(11, 21))
    np.testing.assert_allclose(a.loc[ok, "outcome"], expected, rtol=1e-12)
    assert (b.loc[ok, "outcome"] - a.loc[ok, "outcome"]).abs().max() < 0.01
    assert a.loc[a["diverged"], "outcome"].isna().all()
    with pytest.raises(ValueError, match="window 0"):
        robustness.add_outcomes(trials, curves, window=0)


def test_outcome_falls_back_to_the_final_loss_without_curves():
    trials = make_trials()
    with pytest.warns(UserWarning, match="no learning curve"):
        out = robustness.add_outcomes(trials, curves=pd.DataFrame(), window=5)
    ok = ~out["diverged"]
    np.testing.assert_array_equal(out.loc[ok, "outcome"], trials.loc[ok, "final_val_loss"])


def test_stability_one_target_for_both_arms_and_the_wilson_interval():
    trials = noisy_trials(NARROW, WIDE, noise=0.02)
    st = robustness.stability(trials, tolerance=0.5)
    on = st[st["bn"]].set_index("lr")
    off = st[~st["bn"]].set_index("lr")
    assert list(on.index[on["trains"]]) == [1e-2, 1e-1, 1.0, 10.0]
    assert list(off.index[off["trains"]]) == [1e-2, 1e-1]
    assert off.loc[1.0, "n_diverged"] == 5 and off.loc[1.0, "success_rate"] == 0
    assert (st["context_best"] == st["context_best"].iloc[0]).all()  # one best for both arms
    # Wilson 95% interval of 5/5: [0.5655, 1]
    assert on.loc[0.1, "success_ci_low"] == pytest.approx(0.5655, abs=1e-4)
    assert on.loc[0.1, "success_ci_high"] == pytest.approx(1.0)
    counts = st[["n_diverged", "n_stuck", "n_behind", "n_success"]].sum(axis=1)
    assert (counts == st["n_runs"]).all()


def test_a_run_stuck_at_chance_never_trains():
    # both arms end near chance (ln 99 = 4.6) or just above the 10x-chance bar: the best is poor, and
    # every run is within the tolerance of it, yet none is clearly better than chance
    stuck = {lr: 3.0 for lr in LRS}
    trials = noisy_trials(stuck, {lr: 4.6 for lr in LRS}, noise=0.01)
    st = robustness.stability(trials, tolerance=5.0)
    assert (st["n_success"] == 0).all() and (st["n_stuck"] == st["n_runs"]).all()
    (ans,), _ = robustness.bootstrap_answer(trials, tolerance=5.0, resamples=200)
    assert ans["width_decades"]["bn"]["estimate"] == 0 and ans["outcome_shares"]["no_bn"]["trains"] == 0
    assert ans["verdict"] in ("no_difference", "inconclusive")


def test_planted_effect_is_bn_more_robust_with_interpolated_edges():
    # BN trains at 0.01 ... 10 (3 decades of grid), no BN at 0.01 ... 0.1 (1 decade)
    trials = noisy_trials(NARROW, WIDE, noise=0.05, splits=3)
    answers, draws = robustness.bootstrap_answer(trials, resamples=1000, random_seed=1)
    (ans,) = answers
    assert ans["p_bn_wider"] >= 0.95 and ans["verdict"] == "bn_more_robust"
    # the area counts half of each segment where the rate falls from 1 to 0: 3 + 1 decades
    assert ans["width_decades"]["bn"]["estimate"] == pytest.approx(4.0, abs=0.15)
    assert ans["width_decades"]["no_bn"]["estimate"] == pytest.approx(2.0, abs=0.15)
    assert ans["difference_decades"]["estimate"] == pytest.approx(2.0, abs=0.2)
    # the edges are where the rate crosses one half: half-way (in log10) between grid points
    assert ans["upper_edge_lr"]["bn"]["estimate"] == pytest.approx(10**1.5, rel=0.05)
    assert ans["upper_edge_lr"]["no_bn"]["estimate"] == pytest.approx(10**-0.5, rel=0.05)
    assert len(draws) == 1000 and set(draws.columns) >= {"decades_bn", "decades_no_bn", "difference"}
    # the tolerance-free check agrees: BN's losses stay nearer its best over the grid
    assert ans["lr_sensitivity"]["difference"]["ci_high"] < 0 and ans["lr_sensitivity"]["p_bn_lower"] == 1.0


def test_the_reverse_effect_is_bn_less_robust():
    (ans,), _ = robustness.bootstrap_answer(noisy_trials(WIDE, NARROW, noise=0.05), resamples=1000)
    assert ans["verdict"] == "bn_less_robust" and ans["p_bn_wider"] <= 0.05


def test_identical_arms_read_no_difference():
    trials = noisy_trials(WIDE, WIDE, noise=0.05)
    same = trials[~trials["bn"]].assign(bn=True, trial_id=lambda d: d["trial_id"] + "-bn")
    (ans,), _ = robustness.bootstrap_answer(pd.concat([trials[~trials["bn"]], same]), resamples=500)
    assert ans["verdict"] == "no_difference" and ans["p_bn_wider"] == 0.5  # every resample a tie


@pytest.mark.parametrize("seed", range(6))
def test_no_effect_is_never_more_or_less_robust(seed):
    trials = noisy_trials(WIDE, WIDE, noise=0.15, seed=seed)
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=1000, random_seed=seed)
    assert ans["verdict"] in ("no_difference", "inconclusive")


def test_the_width_moves_smoothly_and_its_interval_is_not_a_point():
    # one of five BN runs fails at 10: the width drops by a fifth of the segments around it, not a decade
    trials = noisy_trials(NARROW, WIDE, noise=0.02)
    spot = trials.index[(trials["bn"]) & (trials["lr"] == 10.0) & (trials["seed"] == 0)]
    (before,), _ = robustness.bootstrap_answer(trials, resamples=500)
    trials.loc[spot, "outcome"] = 4.0
    (after,), _ = robustness.bootstrap_answer(trials, resamples=500)
    drop = before["width_decades"]["bn"]["estimate"] - after["width_decades"]["bn"]["estimate"]
    assert drop == pytest.approx(0.2, abs=1e-9)  # 1/5 of (0.5 + 0.5) decades
    iv = after["width_decades"]["bn"]
    assert iv["ci_low"] < iv["ci_high"]


def test_one_spiking_seed_of_five_cannot_flip_the_verdict():
    trials = make_trials(epochs=20)
    curves = make_curves(trials)
    base = robustness.add_outcomes(trials, curves)
    (before,), _ = robustness.bootstrap_answer(base, resamples=1000, random_seed=0)
    for lr in (1e-2, 1e-1, 1.0):  # inside BN's range
        spiked = curves.copy()
        tid = trials[(trials["bn"]) & (trials["lr"] == lr) & (trials["seed"] == 3)]["trial_id"].iloc[0]
        last = (spiked["trial_id"] == tid) & (spiked["epoch"] == 20)
        spiked.loc[last, "val_loss"] = 1e14
        (after,), _ = robustness.bootstrap_answer(
            robustness.add_outcomes(trials, spiked), resamples=1000, random_seed=0
        )
        assert after["verdict"] == before["verdict"] == "bn_more_robust"


def test_bootstrap_is_reproducible_and_seeded():
    trials = noisy_trials(NARROW, WIDE, noise=0.3, seed=3)
    a, da = robustness.bootstrap_answer(trials, resamples=500, random_seed=7)
    b, db = robustness.bootstrap_answer(trials, resamples=500, random_seed=7)
    c, dc = robustness.bootstrap_answer(trials, resamples=500, random_seed=8)
    assert a == b
    pd.testing.assert_frame_equal(da, db)
    assert not da["difference"].equals(dc["difference"])


def test_units_are_paired_and_splits_kept():
    trials = noisy_trials(NARROW, WIDE, seeds=3, splits=3, noise=0.05)
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=300, random_seed=0)
    assert ans["splits"] == 3 and ans["seeds"] == 3 and ans["units"] == 9
    draws = lr_range.unit_draws(np.repeat([0, 1, 2], 3), 200, np.random.default_rng(0))
    assert draws.shape == (200, 9)
    for k in range(3):  # each split's columns draw only that split's units
        assert set(np.unique(draws[:, 3 * k : 3 * k + 3])) <= {3 * k, 3 * k + 1, 3 * k + 2}


def test_holm_across_contexts_and_one_answer_per_context():
    answers, draws = robustness.bootstrap_answer(make_trials(depths=(2, 3)), resamples=200)
    assert [a["family"]["depth"] for a in answers] == [2, 3]
    assert all(a["verdict"] == "bn_more_robust" for a in answers)
    assert all(a["p_holm"] >= a["p_two_sided"] for a in answers)
    assert set(draws["depth"]) == {2, 3} and len(draws) == 400


def test_measures_interpolate_the_rate_curve():
    logs = np.array([0.0, 1.0, 2.0])
    m = lr_range.measures(np.array([[0.0, 1.0, 0.0]]), logs)
    assert m["area"][0] == pytest.approx(1.0)
    assert m["lower"][0] == pytest.approx(0.5) and m["upper"][0] == pytest.approx(1.5)
    assert m["range@0.5"][0] == pytest.approx(1.0) and m["range@0.8"][0] == pytest.approx(0.4)
    edge = lr_range.measures(np.array([[1.0, 1.0, 0.2]]), logs)
    assert edge["lower_at_grid"][0] and not edge["upper_at_grid"][0]
    none = lr_range.measures(np.array([[0.1, 0.2, 0.0]]), logs)
    assert np.isnan(none["lower"][0]) and none["area"][0] == pytest.approx(0.25)


def test_expected_best_quantiles_are_exact_and_positive():
    trials = noisy_trials(NARROW, WIDE, noise=0.05)
    eb = robustness.expected_best(trials)
    for bn, arm in eb.groupby("bn"):
        side = trials[trials["bn"] == bn]
        v = np.sort(np.minimum(side["outcome"].fillna(math.log(99)), math.log(99)))
        assert arm["expected"].iloc[0] == pytest.approx(v.mean())  # one draw: the mean
        assert (np.diff(arm["expected"]) <= 1e-12).all()  # more draws never expect worse
        assert len(arm) == len(side)
        assert (arm["low"] > 0).all() and (arm["low"] <= arm["expected"] + 1e-12).all()
        assert (arm["expected"] <= arm["high"] + 1e-12).all()
        # n = 3: check the quantiles against an enumeration of every draw
        n = 3
        mins = np.sort(np.min(np.array(np.meshgrid(v, v, v)).reshape(n, -1), axis=0))
        row = arm[arm["n"] == n].iloc[0]
        assert row["expected"] == pytest.approx(mins.mean())
        low_q, high_q = robustness.BEST_BAND
        assert row["low"] == mins[math.ceil(low_q * mins.size) - 1]
        assert row["high"] == mins[math.ceil(high_q * mins.size) - 1]


def test_expected_best_of_forty_thousand_runs_is_quick():
    rng = np.random.default_rng(0)
    big = pd.DataFrame({"bn": np.repeat([False, True], 20_000), "outcome": rng.gamma(2.0, 0.3, 40_000),
                        "lr": 0.1, "final_val_loss": 1.0, "diverged": False})  # fmt: skip
    eb = robustness.expected_best(big)
    assert eb["n"].max() == 20_000 and len(eb) < 700 and (eb["low"] > 0).all()


def test_answer_record_prefers_the_seed_family():
    answers, _ = robustness.bootstrap_answer(make_trials(depths=(2, 3)), resamples=200)
    settings = dict(window=10, tolerance=0.5, bar=2.29, margin=0.25, resamples=200, random_seed=0)
    record = robustness.answer_record(answers, settings)
    assert record["family"]["depth"] == 3 and len(record["families"]) == 2
    assert record["verdict"] in robustness.VERDICTS and 0 <= record["p_bn_wider"] <= 1
    for key in ("width_decades", "difference_decades", "lower_edge_lr", "upper_edge_lr", "seeds", "splits",
                "settings", "specification"):  # fmt: skip
        assert key in record
    assert record["settings"]["tolerance"] == 0.5
    empty = robustness.answer_record([], settings)
    assert empty["verdict"] == "inconclusive" and "reason" in empty
