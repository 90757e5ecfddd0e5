"""leafbn.config.axes: the one definition of the axes, and what derives from it."""

from __future__ import annotations

import pandas as pd

from leafbn.config import AXES, TRIAL_FIELDS, StudyConfig, axis_names
from leafbn.results.tables import normalise_trials, trials_frame


def test_every_axis_is_a_grid_field_with_a_default_of_its_type() -> None:
    defaults = StudyConfig()
    assert tuple(a.name for a in AXES) == TRIAL_FIELDS
    for axis in AXES:
        assert all(type(v) is axis.type for v in getattr(defaults, axis.name)), axis.name
    assert axis_names(role="scientific") == ("bn",) and axis_names(role="nuisance") == ("lr",)


def test_trials_csv_rows_sort_by_every_axis_in_its_rank() -> None:
    """bn_placement too, which a hand-written sort key once left out."""
    base = {"lr": 0.1, "bn": True, "depth": 3, "width": 100, "bn_momentum": 0.99, "batch_size": 10,
            "split": 0, "seed": 0}  # fmt: skip
    rows = [
        {**base, "bn_placement": "before"},
        {**base, "bn_placement": "after"},
        {**base, "bn": False, "lr": 1.0, "bn_placement": "before"},
    ]
    frame = trials_frame(rows)
    order = list(zip(frame["bn"], frame["bn_placement"]))
    assert order == [(False, "before"), (True, "after"), (True, "before")]


def test_read_back_every_numeric_axis_is_a_number_and_every_int_axis_an_int() -> None:
    raw = pd.DataFrame(
        {name: ["10"] for name in axis_names(int, float)} | {"bn": ["True"], "final_val_loss": ["1"]}
    )
    trials = normalise_trials(raw)
    assert all(trials[name].dtype.kind == "i" for name in axis_names(int))
    assert all(trials[name].dtype.kind in "if" for name in axis_names(float))
    assert trials["bn"].dtype == bool
