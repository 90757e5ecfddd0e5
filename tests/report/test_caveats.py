"""What a report says around its answer: what was run and the caveats."""

from __future__ import annotations

import json

from leafbn.report import analysis, caveats
from leafbn.results.record import StudyRecord
from tests.fixtures.synthetic import make_trials


def study(**extra) -> StudyRecord:
    return StudyRecord(
        study={"lr": [0.1], "bn": [False, True], "seeds": 5, "splits": 1, "window": 10, **extra}
    )


def test_what_was_run_lists_settings_and_counts():
    trials = analysis.prepare(make_trials())
    items = caveats.what_was_run(study(splits=3), trials, 70)[1][1]
    text = json.dumps(items)
    assert "splits 3" in text and "outcome window (epochs) 10" in text
    assert "Trials: 70 present of 70 expected, 14 configurations, 5 seeds each, 20 diverged" in items


def test_caveats_name_the_split_variance():
    trials = analysis.prepare(make_trials())
    one = " ".join(caveats.caveats(study(), trials, None, None, None, 0.5, 0.95)[1][1])
    assert "One train/validation split" in one and "--splits K" in one
    three = " ".join(caveats.caveats(study(splits=3), trials, None, None, None, 0.5, 0.95)[1][1])
    assert "3 stratified train/validation splits" in three


def test_expected_trials_from_the_run_record():
    trials = make_trials()
    assert caveats.expected_trials(StudyRecord(run={"trials_expected": 99}), trials) == 99
    assert caveats.expected_trials(StudyRecord(), trials) is None
