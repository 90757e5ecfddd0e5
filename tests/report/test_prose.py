"""The answer in sentences: each verdict, its intervals, and the batch-size section."""

from __future__ import annotations

import pandas as pd

from leafbn.report import analysis, prose, robustness
from tests.fixtures.synthetic import make_trials

SETTINGS = dict(window=10, tolerance=0.5, bar=2.29, margin=0.25, resamples=500, random_seed=0)


def answer(**changes) -> dict:
    """The real answer of the synthetic study (BN trains 0.01 ... 10, no BN 0.01 ... 0.1), changed."""
    (base,), _ = robustness.bootstrap_answer(make_trials(), resamples=200, random_seed=0)
    return {**base, **changes}


def text(answers: list[dict], settings: dict = SETTINGS, spec: dict | None = None) -> str:
    blocks = prose.answer(answers, pd.DataFrame(), pd.DataFrame(), settings, 0.95, spec)
    return " ".join(str(b[1]) for b in blocks if b[0] == "p")


def test_decisive_verdict_states_probability_widths_and_edges():
    a = answer()
    t = text([a])
    assert "**Verdict: BN more robust** — P(BN's trainable range is wider) " in t
    assert "over 5 seeds per learning rate and arm" in t
    w = a["width_decades"]["bn"]
    assert f"a run trains: with BN {w['estimate']:.2f} decades (the same in every resample)" in t
    assert "BN − no BN: +" in t
    up = a["upper_edge_lr"]["bn"]["estimate"]
    assert f"the highest learning rate at which at least half train is {up:.3g}" in t
    assert "(Holm-corrected two-sided p < 0.001)" in t
    assert "median validation loss over its last 10 epochs" in t and "stuck" in t
    assert "Outcome read from the final epoch" not in t
    sens = a["lr_sensitivity"]["difference"]["estimate"]
    assert sens < 0 and f"BN − no BN {sens:+.2f} nats" in t  # BN's loss stays nearer its best


def test_every_verdict_has_its_words_and_a_fallback_is_said_in_one_line():
    for verdict, words in (("bn_less_robust", "BN less robust"), ("no_difference", "no difference"),
                           ("inconclusive", "inconclusive")):  # fmt: skip
        assert f"**Verdict: {words}**" in text([answer(verdict=verdict)])
    t = text([answer()], {**SETTINGS, "fallback_runs": 12})
    assert "**Outcome read from the final epoch for 12 runs**" in t


def test_no_comparison_is_said():
    assert "BN cannot be compared" in text([])


def test_the_specification_headline_leads_its_table():
    spec = {"rows": [{"outcome": "final epoch", "tolerance": 0.5, "measure": "area", "estimate": 1.0,
                      "ci_low": 0.5, "ci_high": 1.5, "p_bn_wider": 0.99, "verdict": "bn_more_robust"}],
            "holds": True, "headline": "The verdict (BN more robust) holds under all 1 specifications.",
            "drop_last": False}  # fmt: skip
    blocks = prose.answer([answer()], pd.DataFrame(), pd.DataFrame(), SETTINGS, 0.95, spec)
    assert blocks[-2][1].startswith("**The verdict (BN more robust) holds under all 1 specifications.**")
    assert "drop_last off" in blocks[-2][1]
    assert blocks[-1][1]["verdict"].tolist() == ["BN more robust"]


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
