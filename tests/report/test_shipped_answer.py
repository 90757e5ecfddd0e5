"""The shipped example reproduces from what is shipped, and the README quotes it as it is."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from leafbn.report import lr_range, robustness
from leafbn.results import tables

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "docs" / "kaggle-seed-grid"


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads((STUDY / "report" / "answer.json").read_text())


def test_the_shipped_tables_give_the_shipped_answer(shipped):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the final epoch: the curves are shipped
        trials, curves, record = tables.load_tables(STUDY)
        trials = robustness.add_outcomes(trials, curves, shipped["settings"]["window"])
    assert trials["outcome_from_curves"].all()
    s = shipped["settings"]
    answers, _ = robustness.bootstrap_answer(
        trials, s["tolerance"], lr_range.chance_bar(record.data["classes"]), s["resamples"], s["random_seed"],
        s["margin"],
    )  # fmt: skip
    main = robustness.main_answer(answers)
    assert main["verdict"] == shipped["verdict"]
    assert main["p_bn_wider"] == pytest.approx(shipped["p_bn_wider"], abs=0.01)
    for arm in ("bn", "no_bn"):
        assert main["width_decades"][arm]["estimate"] == pytest.approx(
            shipped["width_decades"][arm]["estimate"], abs=0.05
        )


def test_the_readme_quotes_the_shipped_answer(shipped):
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert shipped["verdict"] == "bn_more_robust" and "BN makes this network more robust" in readme
    assert f"P(BN's trainable range is wider) = {shipped['p_bn_wider']:.3f}" in readme
    bn, d = shipped["width_decades"]["bn"], shipped["difference_decades"]
    width = f"over {bn['estimate']:.2f} decades of learning rate (95% interval {bn['ci_low']:.2f} to "
    assert width in readme
    assert f"+{d['estimate']:.2f} decades (95% interval +{d['ci_low']:.2f} to +{d['ci_high']:.2f})" in readme
    n = len(shipped["specification"]["rows"])
    assert shipped["specification"]["holds"] and f"holds under all {n} specifications" in readme
