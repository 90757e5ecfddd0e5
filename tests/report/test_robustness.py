"""The robust answer: outcomes, success rates, the bootstrap verdict, expected best over a budget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from leafbn.report import robustness
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


def test_stability_success_rates_and_wilson_interval():
    trials = noisy_trials(NARROW, WIDE, noise=0.02)
    st = robustness.stability(trials, tolerance=0.5)
    on = st[st["bn"]].set_index("lr")
    off = st[~st["bn"]].set_index("lr")
    assert list(on.index[on["stable"]]) == [1e-2, 1e-1, 1.0, 10.0]
    assert list(off.index[off["stable"]]) == [1e-2, 1e-1]
    assert off.loc[1.0, "n_diverged"] == 5 and off.loc[1.0, "success_rate"] == 0
    # Wilson 95% interval of 5/5: [0.5655, 1]
    assert on.loc[0.1, "success_ci_low"] == pytest.approx(0.5655, abs=1e-4)
    assert on.loc[0.1, "success_ci_high"] == pytest.approx(1.0)
    fin = on.dropna(subset=["outcome_median"])
    assert (fin["outcome_q1"] <= fin["outcome_median"]).all() and (
        fin["outcome_median"] <= fin["outcome_q3"]
    ).all()


def test_planted_effect_is_bn_more_robust():
    trials = noisy_trials(NARROW, WIDE, noise=0.05)
    answers, draws = robustness.bootstrap_answer(trials, resamples=1000, random_seed=1)
    (ans,) = answers
    assert ans["p_bn_wider"] >= 0.95
    assert ans["verdict"] == "bn_more_robust"
    assert ans["stable_decades"]["bn"]["estimate"] == pytest.approx(3.0)
    assert ans["stable_decades"]["no_bn"]["estimate"] == pytest.approx(1.0)
    assert ans["difference_decades"]["estimate"] == pytest.approx(2.0)
    assert ans["max_lr_no_divergence"]["no_bn"]["estimate"] == pytest.approx(0.1)
    assert len(draws) == 1000 and set(draws.columns) >= {"decades_bn", "decades_no_bn", "difference"}


@pytest.mark.parametrize("seed", range(6))
def test_no_effect_is_never_decisive_for_bn(seed):
    trials = noisy_trials(WIDE, WIDE, noise=0.15, seed=seed)
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=1000, random_seed=seed)
    assert ans["verdict"] != "bn_more_robust"
    assert ans["p_bn_wider"] < 0.95


def test_one_spiking_seed_of_five_cannot_flip_the_verdict():
    trials = make_trials(epochs=20)
    curves = make_curves(trials)
    base = robustness.add_outcomes(trials, curves)
    (before,), _ = robustness.bootstrap_answer(base, resamples=1000, random_seed=0)
    for lr in (1e-2, 1e-1, 1.0):  # inside BN's stable range
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


def test_splits_are_resampled_and_counted():
    trials = noisy_trials(NARROW, WIDE, seeds=3, splits=3, noise=0.05)
    (ans,), draws = robustness.bootstrap_answer(trials, resamples=300, random_seed=0)
    assert ans["splits"] == 3 and ans["seeds"] == 3
    assert ans["verdict"] == "bn_more_robust"


def test_inconclusive_says_how_many_seeds_would_settle_it():
    # BN's extra learning rate succeeds in about 4 of 5 runs: a coin flip for the threshold
    rng_bn = dict(WIDE)
    trials = noisy_trials(WIDE, rng_bn, seeds=5, noise=0.02)
    spot = trials.index[(trials["bn"]) & (trials["lr"] == 10.0) & (trials["seed"] == 0)]
    trials.loc[spot, ["outcome", "final_val_loss"]] = 3.0  # one of five fails at BN's top LR
    no_bn_top = trials.index[(~trials["bn"]) & (trials["lr"] == 10.0) & (trials["seed"].isin([0, 1]))]
    trials.loc[no_bn_top, ["outcome", "final_val_loss"]] = 3.0  # two of five fail without BN
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=1000, random_seed=0)
    assert 0.05 < ans["p_bn_wider"] < 0.95
    assert ans["verdict"] == "inconclusive"
    assert ans["seeds_to_settle"] is None or ans["seeds_to_settle"] > 5


def test_expected_best_over_a_budget():
    trials = noisy_trials(NARROW, WIDE, noise=0.05)
    eb = robustness.expected_best(trials)
    for bn, arm in eb.groupby("bn"):
        side = trials[trials["bn"] == bn]
        clipped = np.minimum(side["outcome"].fillna(math.log(99)), math.log(99))
        assert arm["expected"].iloc[0] == pytest.approx(clipped.mean())  # one draw: the mean
        assert (np.diff(arm["expected"]) <= 1e-12).all()  # more draws never expect worse
        assert arm["expected"].iloc[-1] >= clipped.min()
        assert len(arm) == len(side)


def point(trials: pd.DataFrame, **options) -> dict:
    """The answer's point estimate for a one-family study (a few resamples: only the estimate is read)."""
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=10, **options)
    return ans


def test_known_ranges_and_tolerance():
    ans = point(make_trials(), tolerance=0.5)
    # BN: best median 0.2 at 0.1; within 0.7: 0.01, 0.1, 1, 10 -> 3 decades; never diverges up to 1000
    assert ans["stable_lrs"]["bn"] == [0.01, 10.0] and ans["stable_decades"]["bn"]["estimate"] == 3.0
    assert ans["max_lr_no_divergence"]["bn"]["estimate"] == 1000.0
    # no BN: best 0.3 at 0.1; within 0.8: 0.01, 0.1 -> 1 decade; diverges from 1 on
    assert (
        ans["stable_lrs"]["no_bn"] == [0.01, 0.1] and ans["max_lr_no_divergence"]["no_bn"]["estimate"] == 0.1
    )
    loose = point(make_trials(), tolerance=10.0)
    assert loose["stable_decades"]["bn"]["estimate"] == pytest.approx(6.0)
    assert loose["stable_decades"]["no_bn"]["estimate"] == pytest.approx(2.0)  # divergence still bounds it


def test_range_is_contiguous_and_one_diverged_seed_of_five_does_not_cut_it():
    lrs = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    gap = {1e-3: 0.3, 1e-2: 2.0, 1e-1: 0.2, 1.0: 0.25, 10.0: 0.3}
    one = point(make_trials(nobn=gap, bn=gap, lrs=lrs, diverge={(True, 10.0, 0)}))
    assert one["stable_lrs"]["no_bn"] == [0.1, 10.0]  # 0.001 is good but cut off by 0.01
    assert one["stable_lrs"]["bn"] == [0.1, 10.0]  # 4 of 5 seeds succeed at 10: still stable
    assert one["max_lr_no_divergence"]["bn"]["estimate"] == 1.0
    two = point(make_trials(nobn=gap, bn=gap, lrs=lrs, diverge={(True, 10.0, 0), (True, 10.0, 1)}))
    assert two["stable_lrs"]["bn"] == [0.1, 1.0]


def test_every_lr_diverging_and_never_beating_chance_leave_no_stable_range():
    ans = point(make_trials(nobn={}, bn={1e-3: 1.0, 1e-2: 0.4}, lrs=[1e-3, 1e-2]))
    assert ans["stable_decades"]["no_bn"]["estimate"] is None
    assert ans["max_lr_no_divergence"]["no_bn"]["estimate"] is None
    assert ans["verdict"] == "bn_more_robust"  # a range where no BN has none
    near_chance = {1e-2: 4.62, 1e-1: 4.621, 1.0: 4.622}
    flat = point(make_trials(nobn=near_chance, bn=near_chance, lrs=list(near_chance)))
    assert (
        flat["stable_decades"]["bn"]["estimate"] is None
        and flat["stable_decades"]["no_bn"]["estimate"] is None
    )


def test_one_answer_per_family_with_a_depth_axis():
    answers, draws = robustness.bootstrap_answer(make_trials(depths=(2, 3)), resamples=200)
    assert [a["family"]["depth"] for a in answers] == [2, 3]
    assert all(a["verdict"] == "bn_more_robust" for a in answers)
    assert set(draws["depth"]) == {2, 3} and len(draws) == 400


def test_answer_record_prefers_the_seed_family():
    answers, _ = robustness.bootstrap_answer(make_trials(depths=(2, 3)), resamples=200)
    settings = dict(window=10, tolerance=0.5, threshold=0.8, resamples=200, random_seed=0)
    record = robustness.answer_record(answers, settings)
    assert record["family"]["depth"] == 3 and len(record["families"]) == 2
    assert record["verdict"] in robustness.VERDICTS and 0 <= record["p_bn_wider"] <= 1
    for key in (
        "stable_decades",
        "difference_decades",
        "seeds",
        "splits",
        "window",
        "tolerance",
        "resamples",
    ):
        assert key in record
    empty = robustness.answer_record([], settings)
    assert empty["verdict"] == "inconclusive" and "reason" in empty
