"""A study's Optuna results: the Optuna study kept beside the tables, and its parameter importances.

Only an ``--optuna`` study has one; every function returns None or an empty table, with a warning
where a file exists but cannot be read, never raises.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["load_optuna_study", "param_importances"]


def load_optuna_study(results_dir: str | Path) -> Any | None:
    """The study's Optuna study, or None when it has none.

    Reads ``RESULTS_DIR/optuna_study.pkl`` (an ``optuna.Study`` saved with ``joblib.dump`` or
    ``pickle``; only unpickle files you wrote) and, when that is absent, the SQLite storage
    ``RESULTS_DIR/optuna.db`` (the single study in it, or the last one when it holds several).
    A file that exists but cannot be read warns and returns None. Imports Optuna only if one exists.
    """
    root = Path(results_dir)
    pkl, db = root / "optuna_study.pkl", root / "optuna.db"
    if pkl.is_file():
        try:
            import optuna  # the pickle needs its classes

            try:
                import joblib

                return joblib.load(pkl)
            except ImportError:  # pragma: no cover - joblib ships with scikit-learn/optuna users
                import pickle

                with pkl.open("rb") as fh:
                    return pickle.load(fh)
        except Exception as exc:
            warnings.warn(f"{pkl}: cannot load the Optuna study ({type(exc).__name__}: {exc})", stacklevel=2)
            return None
    if db.is_file():
        try:
            import optuna

            storage = f"sqlite:///{db.resolve()}"
            names = optuna.get_all_study_names(storage)
            if not names:
                warnings.warn(f"{db}: no study in this storage", stacklevel=2)
                return None
            if len(names) > 1:
                warnings.warn(f"{db}: {len(names)} studies; reading the last, {names[-1]!r}", stacklevel=2)
            return optuna.load_study(study_name=names[-1], storage=storage)
        except Exception as exc:
            warnings.warn(f"{db}: cannot load the Optuna study ({type(exc).__name__}: {exc})", stacklevel=2)
            return None
    return None


def param_importances(study: Any) -> pd.DataFrame:
    """Optuna's hyperparameter importances of ``study`` (``optuna.importance.get_param_importances``).

    Returns:
        Columns ``param`` and ``importance`` (normalised to sum 1), most important first; empty,
        with a warning, when Optuna cannot compute them (too few complete trials, multi-objective).
    """
    try:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            values = optuna.importance.get_param_importances(study)
    except Exception as exc:
        warnings.warn(f"no Optuna parameter importances ({type(exc).__name__}: {exc})", stacklevel=2)
        values = {}
    return pd.DataFrame({"param": list(values), "importance": [float(v) for v in values.values()]})
