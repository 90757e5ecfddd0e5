"""The answer in sentences: each verdict, its intervals, and the batch-size section."""

from __future__ import annotations

import pandas as pd

from leafbn.report import analysis, prose, robustness
from tests.fixtures.synthetic import make_trials

SETTINGS = dict(window=10, tolerance=0.5, threshold=0.8, resamples=500, random_seed=0)


def answer(**changes) -> dict:
    base = {
        "family": {"depth": 3}, "verdict": "bn_more_robust", "p_bn_wider": 0.991,
        "stable_decades": {"bn": {"estimate": 2.0, "ci_low": 1.0, "ci_high": 3.0},
                           "no_bn": {"estimate": 0.0, "ci_low": 0.0, "ci_high": 1.0}},
        "stable_lrs": {"bn": [0.001, 0.1], "no_bn": [0.01, 0.01]},
        "difference_decades": {"estimate": 2.0, "ci_low": 1.0, "ci_high": 3.0},
        "max_lr_no_divergence": {"bn": {"estimate": 1.0, "ci_low": 1.0, "ci_high": 10.0},
                                 "no_bn": {"estimate": None, "ci_low": None, "ci_high": None}},
        "seeds_to_settle": None, "seeds": 5, "splits": 2, "lrs": [0.001, 0.01, 0.1, 1.0],
    }  # fmt: skip
    return {**base, **changes}


def text(answers: list[dict]) -> str:
    blocks = prose.answer(answers, pd.DataFrame(), pd.DataFrame(), SETTINGS, 0.95)
    return " ".join(b[1] for b in blocks if b[0] == "p")


def test_decisive_verdict_states_probability_and_intervals():
    t = text([answer()])
    assert (
        "**Verdict: BN more robust** — P(BN's stable range is wider) = 0.991, over 5 seeds × 2 splits." in t
    )
    assert "Stable range with BN: 2.0 decades (95% interval 1.0 to 3.0), from 0.001 to 0.1" in t
    assert "BN − no BN: +2.0 decades (95% interval +1.0 to +3.0)" in t
    assert "1 (95% interval 1 to 10) with BN, none (every learning rate had a diverged run) without" in t
    assert "The BN range reaches the lowest learning rate tried" in t
    assert "median validation loss over its last 10 epochs" in t


def test_inconclusive_says_what_would_settle_it():
    t = text([answer(verdict="inconclusive", p_bn_wider=0.6, seeds_to_settle=20)])
    assert "**Verdict: inconclusive**" in t and "About 20 seeds per configuration would likely settle it" in t
    t = text([answer(verdict="inconclusive", p_bn_wider=0.6)])
    assert "Run more seeds" in t
    assert "**Verdict: BN not more robust**" in text([answer(verdict="bn_not_more_robust", p_bn_wider=0.0)])


def test_no_comparison_is_said():
    assert "BN cannot be compared" in text([])


def test_batch_size_section_only_when_the_batch_size_varies():
    assert prose.batch_size_section([answer()]) == []
    two = [answer(family={"batch_size": 10}), answer(family={"batch_size": 32}, verdict="inconclusive")]
    blocks = prose.batch_size_section(two)
    assert blocks[0] == ("h2", "BN's robustness by batch size")
    table = blocks[-1][1]
    assert list(table["batch_size"]) == [10, 32] and list(table["verdict"]) == [
        "BN more robust",
        "inconclusive",
    ]


def test_best_names_the_configuration_with_the_lowest_mean_outcome():
    stats = analysis.aggregate(make_trials())
    items = prose.best(stats)[1][1]
    assert items[0].startswith("Overall: lr=0.1, bn=on — mean outcome (validation loss) 0.2000")
    assert robustness.DEFAULT_THRESHOLD == 0.8
