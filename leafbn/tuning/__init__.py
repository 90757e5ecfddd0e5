"""The study on Ray Tune: the trainable each worker runs (:mod:`~leafbn.tuning.trial`), the search
spaces (:mod:`~leafbn.tuning.spaces`), the Tuner and the study's run (:mod:`~leafbn.tuning.runner`),
where it runs (:mod:`~leafbn.tuning.session`, :mod:`~leafbn.tuning.reaper`), its folder
(:mod:`~leafbn.tuning.storage`), and what a person or a tool watches (:mod:`~leafbn.tuning.progress`,
:mod:`~leafbn.tuning.loggers`).

The names below load on first use: a Ray worker imports :mod:`leafbn.tuning.trial` (the trainable) and
must not pay for the driver's modules (Optuna, the tables) that :mod:`~leafbn.tuning.runner` imports.
"""

from importlib import import_module
from typing import Any

#: Public name → the module of this package that defines it.
_EXPORTS = {
    "StudyError": "session", "StudyResult": "runner", "build_tuner": "runner", "run_study": "runner",
    "study_dir": "storage", "experiment_path": "storage", "trainable": "trial",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
