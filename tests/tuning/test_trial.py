"""leafbn.tuning.trial: what one Ray trial reports, read without Ray (its report and node lookup replaced)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from leafbn.data import loaders as leafdata
from leafbn.data import splits as leafsplits
from leafbn.tuning import trial
from leafbn.tuning.spaces import WORST_LOSS


def test_a_trial_reports_its_settings_and_every_epoch_of_each_seed(monkeypatch):
    reports = []
    monkeypatch.setattr(trial.tune, "report", reports.append)
    monkeypatch.setattr(
        trial.ray, "get_runtime_context", lambda: SimpleNamespace(get_node_id=lambda: "node-a")
    )
    monkeypatch.setattr(trial, "STOPPABLE_S", math.inf)  # a compile may take longer: by epochs only
    split = leafsplits.split(leafdata.load_embedded(), val_fraction=0.2, split_seed=0)
    config = {
        "trial": {"lr": 0.001, "bn": True, "depth": 1, "width": 16, "bn_momentum": 0.9,
                  "bn_placement": "after", "batch_size": 32, "split": 0, "seeds": [4, 9]},
        "epochs": 3, "drop_last": False, "momentum": 0.9, "decay": 1e-6, "report_every": 2,
    }  # fmt: skip
    trial.trainable(config, splits=(split,))

    assert [r["epoch"] for r in reports] == [2, 3]  # every 2 epochs, and at the end
    assert all(r["node_id"] == "node-a" and not r["diverged"] for r in reports)
    params = reports[-1]["params"]
    assert params["lr"] == 0.001 and params["bn"] is True and params["width"] == 16
    assert params["bn_placement"] == "after" and params["batch_size"] == 32 and params["epochs"] == 3
    for report in reports:
        assert [n["seed"] for n in report["networks"]] == [4, 9]
    epochs = [[row[0] for r in reports for row in r["networks"][i]["curve"]] for i in range(2)]
    assert epochs == [[1, 2, 3], [1, 2, 3]]  # each epoch of each seed exactly once
    last = [r["networks"][i]["curve"][-1][2] for r in reports[-1:] for i in range(2)]
    assert reports[-1]["val_loss"] == pytest.approx(sum(last) / 2)  # the median of two
    assert reports[-1]["objective"] == pytest.approx(min(reports[-1]["val_loss"], WORST_LOSS))
    assert last[0] != last[1]  # two seeds, two networks
    assert math.isfinite(reports[-1]["time_s"]) and reports[-1]["time_s"] > 0


def test_a_long_trial_reports_often_enough_to_be_stopped(monkeypatch):
    # Tune stops a trial (Ctrl-C, SIGTERM, ASHA) only at a report: with one due at the end only,
    # reports must still come as time passes, the program called for CHUNK_EPOCHS epochs at a time
    reports, chunks = [], []
    trainer = trial.worker_trainer()
    train_networks = trainer.train_networks

    def spy(*args, **kwargs):
        chunks.append(kwargs["chunk"])
        return train_networks(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_networks", spy)
    monkeypatch.setattr(trial.tune, "report", reports.append)
    monkeypatch.setattr(trial.ray, "get_runtime_context", lambda: SimpleNamespace(get_node_id=lambda: "n"))
    monkeypatch.setattr(trial, "STOPPABLE_S", 0.0)  # every look at the clock finds a report due
    monkeypatch.setattr(trial, "CHUNK_EPOCHS", 2)
    split = leafsplits.split(leafdata.load_embedded(), val_fraction=0.2, split_seed=0)
    config = {
        "trial": {"lr": 0.001, "bn": True, "depth": 1, "width": 16, "bn_momentum": 0.9,
                  "bn_placement": "after", "batch_size": 32, "split": 0, "seeds": [4]},
        "epochs": 5, "drop_last": False, "momentum": 0.9, "decay": 1e-6, "report_every": 5,
    }  # fmt: skip
    trial.trainable(config, splits=(split,))
    assert chunks == [2]  # not report_every's 5
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4, 5]  # each epoch: the clock is always due
    assert [row[0] for r in reports for row in r["networks"][0]["curve"]] == [1, 2, 3, 4, 5]


def test_a_worker_imports_keras_without_sklearn_or_ipython():
    # What a Ray worker imports: the trainable, the trainer, and its Split unpickled.
    import pickle
    import subprocess
    import sys

    from leafbn.data.splits import Split

    blob = pickle.dumps(Split(*(np.zeros((2, 2)),) * 4, standardized=True))
    code = (
        "import pickle, sys; import leafbn.tuning.trial; leafbn.tuning.trial.worker_trainer(); "
        f"pickle.loads({blob!r}); "
        "print(sorted({'sklearn', 'IPython'} & set(sys.modules))); "
        "import sklearn.base; print(sklearn.base.BaseEstimator.__name__)"  # afterwards it imports as usual
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "BaseEstimator"]


def test_a_runs_network_has_every_architecture_axis_of_the_run():
    split = leafsplits.split(leafdata.load_embedded(), val_fraction=0.2, split_seed=0)
    run = {"lr": 0.1, "bn": True, "depth": 2, "width": 16, "bn_momentum": 0.9, "bn_placement": "after",
           "batch_size": 8, "init": "he_normal", "split": 0, "seed": 3}  # fmt: skip
    spec = trial._model_spec(split, run)
    assert (spec.depth, spec.width, spec.bn, spec.bn_momentum) == (2, 16, True, 0.9)
    assert (spec.bn_placement, spec.init) == ("after", "he_normal")  # a grid unit's runs keep theirs
    assert spec.n_features == split.x_train.shape[1]
