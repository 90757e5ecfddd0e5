"""Where each module of the flat layout (before the sub-packages) lives now, and the import hook that
keeps the old paths working.

Ray Tune pickles objects by module path into a study folder (``tuner.pkl`` holds
``leafbn.progress.ProgressLine``), so a study started before the move resumes only if the old paths
still import. :func:`install` (called by ``import leafbn``) puts a finder in ``sys.meta_path``
that answers an old path that is no module of this layout with its new module, imported on first use: nothing
is imported before someone asks for it, so a Ray worker stays as light as before. Old paths that are
now packages (``leafbn.config``, ``leafbn.data``, ``leafbn.train``, ``leafbn.tuning``,
``leafbn.report``) need no alias: each package's ``__init__`` offers the old module's public names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

__all__ = ["MOVED", "install"]

#: Old module path → new module path, one entry per module of the flat layout.
MOVED = {
    # config: the one StudyConfig every room reads
    "leafbn.config": "leafbn.config.study_config",
    # data: the leaf files, UCI re-alignment, the embedded default, splits
    "leafbn.datafiles": "leafbn.data.files",
    "leafbn.uci": "leafbn.data.uci",
    "leafbn.data": "leafbn.data.loaders",
    "leafbn.splits": "leafbn.data.splits",
    # train: the network, the compiled trainer, XLA's settings
    "leafbn.model": "leafbn.train.model",
    "leafbn.train": "leafbn.train.trainer",
    "leafbn.xla_cache": "leafbn.train.xla_cache",
    # tuning: the study on Ray Tune
    "leafbn.trial": "leafbn.tuning.trial",
    "leafbn.tuning": "leafbn.tuning.runner",
    "leafbn.spaces": "leafbn.tuning.spaces",
    "leafbn.session": "leafbn.tuning.session",
    "leafbn.storage": "leafbn.tuning.storage",
    "leafbn.progress": "leafbn.tuning.progress",
    "leafbn.loggers": "leafbn.tuning.loggers",
    "leafbn.reaper": "leafbn.tuning.reaper",
    # results: the study's record and tables
    "leafbn.record": "leafbn.results.record",
    "leafbn.tables": "leafbn.results.tables",
    # report: numbers, sentences, figures, rendering
    "leafbn.analysis": "leafbn.report.analysis",
    "leafbn.robustness": "leafbn.report.robustness",
    "leafbn.prose": "leafbn.report.prose",
    "leafbn.caveats": "leafbn.report.caveats",
    "leafbn.render": "leafbn.report.render",
    "leafbn.plots": "leafbn.report.plots",
    "leafbn.robustness_plots": "leafbn.report.robustness_plots",
    "leafbn.optuna_plots": "leafbn.report.optuna_plots",
    "leafbn.optuna_results": "leafbn.report.optuna_results",
    "leafbn.report": "leafbn.report.writer",
}


#: The old paths that name no module of this layout (``leafbn.train`` is a package now, not an alias).
_ALIASES = {old: new for old, new in MOVED.items() if not new.startswith(old + ".")}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path that is no module of this layout, and loads it as its new module."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname not in _ALIASES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(_ALIASES[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The new module ran when it was imported: nothing to do."""


def install() -> None:
    """Put the old-path finder first in ``sys.meta_path`` (once): before any other finder, so an old
    checkout that an editable install of leafbn points to cannot answer an old path instead."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
