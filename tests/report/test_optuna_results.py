"""The Optuna study kept beside a study's tables, and its parameter importances."""

from __future__ import annotations

import joblib
import optuna
import pytest

from leafbn.report import optuna_results


def test_optuna_study_is_loaded_from_pickle_and_sqlite(tmp_path):
    assert optuna_results.load_optuna_study(tmp_path) is None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="s",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
    )
    study.optimize(
        lambda t: t.suggest_float("lr", 1e-3, 1, log=True) + t.suggest_int("depth", 1, 4) / 10, n_trials=6
    )
    assert len(optuna_results.load_optuna_study(tmp_path).trials) == 6
    joblib.dump(study, tmp_path / "optuna_study.pkl")
    loaded = optuna_results.load_optuna_study(tmp_path)
    assert loaded.study_name == "s"
    imp = optuna_results.param_importances(loaded)
    assert set(imp["param"]) == {"lr", "depth"} and imp["importance"].sum() == pytest.approx(1.0)
    (tmp_path / "optuna_study.pkl").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="cannot load"):
        assert optuna_results.load_optuna_study(tmp_path) is None
