"""A study's record and tables: ``config.json`` as one :class:`StudyRecord`
(:mod:`~leafbn.results.record`), and Ray Tune's results as ``trials.csv`` and ``curves.csv``
(:mod:`~leafbn.results.tables`, every column in ``docs/results.md``).

Written by the tuning room, read by the report; imports only :mod:`leafbn.config`.
"""

from leafbn.results.record import StudyRecord
from leafbn.results.tables import CURVE_COLUMNS, TRIAL_COLUMNS, TableError, load_tables

__all__ = ["StudyRecord", "load_tables", "TableError", "TRIAL_COLUMNS", "CURVE_COLUMNS"]
