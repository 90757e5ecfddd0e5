"""leafbn's errors live in one module, and the modules that raised them before still offer them."""

from __future__ import annotations

import ast
from pathlib import Path

from leafbn import errors
from leafbn.config import ConfigError
from leafbn.data import DataError
from leafbn.results import TableError
from leafbn.tuning import StudyError

LEAFBN = Path(__file__).resolve().parents[1] / "leafbn"


def test_the_old_names_are_the_classes_of_leafbn_errors() -> None:
    assert (ConfigError, DataError, TableError, StudyError) == (
        errors.ConfigError, errors.DataError, errors.TableError, errors.StudyError
    )  # fmt: skip
    assert all(issubclass(getattr(errors, name), Exception) for name in errors.__all__)


def test_no_other_module_defines_an_error() -> None:
    defined = [
        f"{path.relative_to(LEAFBN)}: {node.name}"
        for path in LEAFBN.rglob("*.py")
        if path.name != "errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any(getattr(base, "id", "").endswith(("Error", "Exception")) for base in node.bases)
    ]
    assert not defined, defined
