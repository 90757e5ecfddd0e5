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


# Axis names written as string literals in leafbn/ outside axes.py (docstrings aside), at most these
# many per module. Each is a use of one named axis, not a list of the axes (lists derive from AXES).
# leafbn/report/ is left out: its literals are its uses of the answer's two axes (lr, bn) by name.
AXIS_LITERALS_ALLOWED: dict[str, tuple[dict[str, int], str]] = {
    "leafbn/config/study_config.py": (
        {"depth": 1, "width": 1, "bn_momentum": 2, "bn_placement": 2, "bn": 1},
        "SPACES['full']'s values keyed by the axis each sets; a network without BN runs once per "
        "BN momentum and placement (trial_configs)",
    ),
    "leafbn/train/model.py": ({"bn_momentum": 1}, "the name of the TensorFlow variable that holds it"),
    "leafbn/train/programs.py": ({"lr": 1}, "the name of the TensorFlow variable that holds it"),
    "leafbn/tuning/progress.py": ({"lr": 2, "bn": 2}, "the progress line shows the best run's lr and bn"),
    "leafbn/tuning/spaces.py": (
        {"lr": 2, "depth": 4, "width": 4, "bn": 4, "bn_momentum": 1, "bn_placement": 2, "batch_size": 3},
        "the learning rate is searched on a log scale; the cost model's formula (steps from the batch "
        "size, a step's cost from depth, width and BN, the share of epochs a run of its learning rate "
        "trains, a compiled program per architecture)",
    ),
    "leafbn/tuning/trial.py": (
        {"lr": 4, "bn": 2, "batch_size": 2},
        "the trainer's lr and batch_size keywords; a unit's summary carries its best run's lr and bn",
    ),
}


def _axis_literals(source: str) -> dict[str, int]:
    """How often each axis name is a string literal in ``source``, docstrings left out."""
    import ast
    from collections import Counter

    tree = ast.parse(source)
    bodies = (n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef))
    docstrings = {
        id(b.body[0].value) for b in bodies
        if b.body and isinstance(b.body[0], ast.Expr) and isinstance(b.body[0].value, ast.Constant)
    }  # fmt: skip
    names = set(TRIAL_FIELDS)
    return Counter(
        n.value for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and n.value in names and id(n) not in docstrings
    )  # fmt: skip


def test_each_axis_name_is_written_once_outside_the_allowed_uses() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = {}
    for path in sorted((root / "leafbn").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name == "leafbn/config/axes.py" or name.startswith("leafbn/report/"):
            continue
        found[name] = _axis_literals(path.read_text(encoding="utf-8"))
    assert found["leafbn/tuning/units.py"] == {}  # the unit key and a run's row derive from AXES
    for name, counts in found.items():
        allowed = AXIS_LITERALS_ALLOWED.get(name, ({}, ""))[0]
        extra = {axis: n for axis, n in counts.items() if n > allowed.get(axis, 0)}
        assert not extra, f"{name}: axis names as literals {extra}: derive them from leafbn.config.AXES"
