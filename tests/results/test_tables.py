"""Report history → trials.csv/curves.csv rows: batched reports, retries, divergence."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from leafbn.report import analysis
from leafbn.results.tables import (
    TableError,
    curves_from_history,
    epochs_of,
    load_tables,
    read_table,
    trial_row,
)
from tests.fixtures.synthetic import make_curves, make_trials

CONFIG = {"lr": 0.1, "bn": True, "depth": 3, "width": 100, "bn_momentum": 0.99, "bn_placement": "before",
          "batch_size": 10, "epochs": 4, "seed": 0}  # fmt: skip


def report(epochs, time_s, node="n1"):
    last = epochs[-1]
    return {"epoch": last[0], "train_loss": last[1], "val_loss": last[2], "val_accuracy": last[3],
            "time_s": time_s, "node_id": node, "curve": [list(e) for e in epochs]}  # fmt: skip


def test_batched_reports_expand_to_every_epoch():
    history = pd.DataFrame([
        report([(1, 4.0, 3.0, 0.1), (2, 3.0, 2.0, 0.3)], 1.0),
        report([(3, 2.0, 1.5, 0.5), (4, 1.0, 1.8, 0.6)], 2.0),
    ])  # fmt: skip
    assert epochs_of(history)["epoch"].tolist() == [1, 2, 3, 4]
    row = trial_row("t", CONFIG, history)
    assert (row["final_val_loss"], row["best_val_loss"], row["best_epoch"]) == (1.8, 1.5, 3)
    assert (row["epochs_run"], row["time_s"], row["diverged"]) == (4, 2.0, False)
    assert curves_from_history("t", history)["val_loss"].tolist() == [3.0, 2.0, 1.5, 1.8]


def test_a_retried_trial_keeps_only_its_last_attempt():
    history = pd.DataFrame([
        report([(1, 4.0, 3.0, 0.1), (2, 3.0, 2.0, 0.3)], 1.0, node="lost"),
        report([(1, 4.1, 3.1, 0.1), (2, 3.1, 2.1, 0.3)], 1.1, node="n2"),
        report([(3, 2.1, 1.6, 0.5), (4, 1.1, 1.7, 0.6)], 2.2, node="n2"),
    ])  # fmt: skip
    curves = curves_from_history("t", history)
    assert curves["epoch"].tolist() == [1, 2, 3, 4] and curves["val_loss"].iat[0] == 3.1
    row = trial_row("t", CONFIG, history, retries=1)
    assert row["node_id"] == "n2" and row["retries"] == 1 and row["final_val_loss"] == 1.7


def test_divergence_is_read_from_the_last_epoch():
    history = pd.DataFrame([report([(1, 4.0, 3.0, 0.1), (2, math.nan, math.nan, 0.01)], 0.5)])
    row = trial_row("t", CONFIG, history)
    assert row["diverged"] and row["diverged_epoch"] == 2 and row["epochs_run"] == 2
    assert math.isnan(row["final_val_loss"]) and row["best_val_loss"] == 3.0 and row["best_epoch"] == 1


def test_a_trial_that_never_reported():
    row = trial_row("t", CONFIG, pd.DataFrame(), error="worker died")
    assert row["epochs_run"] == 0 and math.isnan(row["final_val_loss"]) and row["error"] == "worker died"


def write(path, text):
    path.write_text(text)
    return path


def test_read_table_reads_what_pandas_wrote(tmp_path):
    frame = pd.DataFrame({"trial_id": ["a", "b"], "lr": [0.1, 1.0], "bn": [True, False],
                          "final_val_loss": [0.5, math.nan], "error": ["", "x, y"]})  # fmt: skip
    frame.to_csv(tmp_path / "trials.csv", index=False)
    back = read_table(tmp_path / "trials.csv")
    assert back["lr"].tolist() == [0.1, 1.0] and back["bn"].tolist() == [True, False]
    assert math.isnan(back["final_val_loss"].iat[1]) and back["error"].iat[1] == "x, y"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "trial_id,lr,final_val_loss\na,0.1,0.01157\nb,0.1,0.011",
            "line 3 ends without a line end: the file was cut",
        ),
        ("trial_id,lr,final_val_loss,error\na,0.1,0.5,\nb,0.1\n", "line 3 has 2 fields, the header 4"),
        ("trial_id,lr,final_val_loss\na,0.1,0.5\nb,0.1x,0.4\n", "line 3, column lr: '0.1x' is not a number"),
        ("trial_id,bn,final_val_loss\na,maybe,0.5\n", "line 2, column bn: 'maybe' is not true or false"),
    ],
)
def test_read_table_names_the_file_and_the_bad_line(tmp_path, text, message):
    path = write(tmp_path / "trials.csv", text)
    with pytest.raises(TableError) as info:
        read_table(path)
    assert str(info.value) == f"{path}: {message}" or str(info.value).startswith(f"{path}: {message}")


def test_load_tables_round_trip_and_tolerance(tmp_path):
    trials = make_trials()
    trials.to_csv(tmp_path / "trials.csv", index=False)
    with pytest.warns(UserWarning) as record:
        loaded, curves, config = load_tables(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "curves.csv" in messages and "config.json" in messages
    assert curves.empty and not config and config.run == {}
    assert loaded["bn"].dtype == bool and loaded["diverged"].dtype == bool
    assert loaded["diverged"].sum() == 20
    make_curves(trials).to_csv(tmp_path / "curves.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps({"run": {"trials_expected": 70}}))
    loaded, curves, config = load_tables(tmp_path)
    assert len(curves) > 0 and config.run["trials_expected"] == 70
    (tmp_path / "config.json").write_text("{not json")
    with pytest.warns(UserWarning, match="config.json"):
        load_tables(tmp_path)


def test_load_tables_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tables(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        load_tables(tmp_path)
    pd.DataFrame({"lr": [0.1], "seed": [0]}).to_csv(tmp_path / "trials.csv", index=False)
    with pytest.raises(ValueError, match="missing column"):
        load_tables(tmp_path)
    (tmp_path / "trials.csv").write_text("")
    with pytest.warns(UserWarning) as record:
        trials, _, _ = load_tables(tmp_path)
    assert any("is empty" in str(w.message) for w in record)
    assert trials.empty
    assert analysis.aggregate(trials).empty
    assert analysis.bn_effect(trials).empty and analysis.summary(trials).empty


def test_a_hand_edited_config_json_reads_as_empty_parts(tmp_path):
    make_trials().to_csv(tmp_path / "trials.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps({"study": [1, 2], "run": {"trials_expected": 70}}))
    with pytest.warns(UserWarning, match="curves.csv"):
        _, _, record = load_tables(tmp_path)
    assert record.study == {} and record.data == {} and record.run == {"trials_expected": 70}


def test_load_tables_reads_curves_parquet_before_curves_csv(tmp_path):
    trials = make_trials()
    trials.to_csv(tmp_path / "trials.csv", index=False)
    curves = make_curves(trials)
    curves.assign(val_loss=99.0).to_csv(tmp_path / "curves.csv", index=False)  # stale: must not be read
    compact = curves.astype({"val_loss": "float32", "train_loss": "float32", "val_accuracy": "float32"})
    compact.to_parquet(tmp_path / "curves.parquet", compression="zstd", index=False)
    with pytest.warns(UserWarning, match="config.json"):
        _, loaded, _ = load_tables(tmp_path)
    assert len(loaded) == len(curves) and (loaded["val_loss"].dropna() < 99).all()
    np.testing.assert_allclose(loaded["val_loss"], curves["val_loss"], rtol=1e-6)
