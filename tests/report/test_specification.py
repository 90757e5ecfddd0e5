"""The answer under every specification, and the figures of the answer."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
from matplotlib.figure import Figure

from leafbn.report import answer_plot, lr_range, robustness, specification
from tests.fixtures.synthetic import make_curves, make_trials


def outcomes() -> pd.DataFrame:
    trials = make_trials(epochs=20)
    return robustness.add_outcomes(trials, make_curves(trials))


def test_every_specification_agrees_on_a_clear_effect():
    trials = outcomes()
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=200)
    spec = specification.specification_table(
        trials, ans["family"], ans["verdict"], lr_range.chance_bar(99), 200
    )
    rows = pd.DataFrame(spec["rows"])
    assert len(rows) == 3 * len(specification.TOLERANCES) * len(lr_range.MEASURES)
    assert set(rows["outcome"]) == {"window median", "final epoch", "best epoch"}
    assert (
        spec["holds"]
        and spec["headline"] == "The verdict (BN more robust) holds under all 27 specifications."
    )
    without = specification.specification_table(
        trials, ans["family"], ans["verdict"], 2.29, 200, has_curves=False
    )
    assert "window median" not in {r["outcome"] for r in without["rows"]}
    assert specification.specification_table(trials, {"depth": 99}, "inconclusive", 2.29, 200) is None


def test_the_headline_names_the_choice_the_verdict_depends_on():
    rows = [
        {"outcome": o, "tolerance": t, "measure": "area", "verdict": "no" if o == "final epoch" else "x"}
        for o in ("window median", "final epoch") for t in (0.25, 0.5)
    ]  # fmt: skip
    text = specification.headline(rows, "x")
    assert text.startswith("The verdict (x) holds under 2 of 4 specifications")
    assert "outcome = final epoch" in text
    mixed = [{**rows[0], "verdict": "no_difference"}, *rows[1:]]
    assert "the others read" in specification.headline(mixed, "x")


def test_answer_figures_are_drawn_from_their_numbers():
    trials = outcomes()
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=200)
    data = answer_plot.answer_data(robustness.stability(trials), ans)
    assert set(data["bn"]) == {False, True} and data["success_rate"].between(0, 1).all()
    bn = data[data["bn"]].iloc[0]
    assert bn["lower"] < bn["upper"] and bn["upper"] == ans["upper_edge_lr"]["bn"]["estimate"]
    fig = answer_plot.plot_answer(data)
    assert isinstance(fig, Figure) and "BN more robust" in fig.axes[0].get_title()
    spec = specification.specification_table(trials, ans["family"], ans["verdict"], 2.29, 200)
    curve = answer_plot.specification_data(spec)
    assert curve["estimate"].is_monotonic_increasing and list(curve["x"]) == list(range(len(curve)))
    curve.loc[0, ["ci_low", "ci_high"]] = curve.loc[0, "estimate"]  # every resample agrees
    fig = answer_plot.plot_specification(curve)
    assert len(fig.axes) == 2
    assert any("every resample" in t.get_text() for t in fig.legends[0].get_texts())


def test_the_answer_legend_says_where_a_range_meets_the_grid_and_when_its_whiskers_have_no_width():
    row = pd.Series({"lower": 0.001, "upper": 0.3162, "lower_low": 0.001, "lower_high": 0.001,
                     "upper_low": 0.3162, "upper_high": 0.3162,
                     "lower_at_grid": True, "upper_at_grid": False})  # fmt: skip
    assert answer_plot.range_label(row, "BN") == "BN trains: ≤0.001 to 0.32\n(same edges in every resample)"
    wide = row.copy()
    wide[["lower_at_grid", "upper_low"]] = [False, 0.1]
    assert answer_plot.range_label(wide, "BN") == "BN trains: 0.001 to 0.32"


def test_the_answer_figure_names_its_context_when_there_are_several():
    answers = [{"family": {"depth": d, "width": 100, "bn_momentum": 0.99}} for d in (2, 3)]
    assert answer_plot.context_label(answers[1], answers) == "depth=3"
    assert answer_plot.context_label(answers[1], answers[1:]) == ""
    trials = outcomes()
    (ans,), _ = robustness.bootstrap_answer(trials, resamples=50)
    fig = answer_plot.plot_answer(answer_plot.answer_data(robustness.stability(trials), ans), "depth=3")
    assert fig.axes[0].get_title().startswith("Verdict (depth=3): ")
