"""Every error leafbn raises for a person to read. Each message is one line that names the file,
flag or value, what is wrong with it and, where there is one, the fix; the commands print it and
exit with status 2, without a traceback.

Each room raises its own (``ConfigError`` from :mod:`leafbn.config`, ``DataError`` from
:mod:`leafbn.data`, ``TableError`` from :mod:`leafbn.results`, ``StudyError`` from
:mod:`leafbn.tuning`), and each module that raised one before still offers it by its old name.
"""

__all__ = ["ClusterFileError", "ConfigError", "DataError", "StudyError", "TableError"]


class ConfigError(ValueError):
    """A setting is out of bounds; the message names the flag, the value, the bound and the fix."""


class DataError(ValueError):
    """A data file is missing or malformed; the message is one line: ``<file>: <problem>``."""


class TableError(ValueError):
    """A malformed table: the message names the file, the line and what is wrong there."""


class StudyError(RuntimeError):
    """The study cannot start or go on; the message is one line for the user."""


class ClusterFileError(ValueError):
    """A cluster-launcher file cannot be read as a mapping; the message is one line."""
