"""Rewrite the flat layout's import paths (``leafbn.tables``, ``from leafbn import analysis``) in
Python files to the sub-packages' paths, from :data:`leafbn.moved.MOVED`.

For code written against the flat layout (a branch begun before the move):
``python scripts/rewrite_old_imports.py FILE_OR_FOLDER ...``, then ``ruff check --fix --select I``.
Rewrites a file in place and prints its path when it changed.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leafbn.moved import MOVED  # noqa: E402

_OLD = {old.split(".")[1]: new for old, new in MOVED.items()}
_NAMES = "|".join(sorted(_OLD, key=len, reverse=True))
_DOTTED = re.compile(r"\bleafbn\.(" + _NAMES + r")\b(?![/\w])(\.\w+| import \(?\s*\w+)?")


def _public(package: Path) -> set[str]:
    """The names a package's ``__init__`` offers (its ``__all__``, or the keys of its ``_EXPORTS``)."""
    init = package / "__init__.py"
    if not init.is_file():
        return set()
    found: set[str] = set()
    for node in ast.parse(init.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("__all__", "_EXPORTS"):
            literal = isinstance(node.value, (ast.List, ast.Dict))
            found |= set(ast.literal_eval(node.value)) if literal else set()
    return found


#: What an old path that is a package now already means: its modules (``leafbn.data.loaders``) and
#: the names its ``__init__`` offers (``from leafbn.config import StudyConfig``).
_PACKAGES = {old: REPO / "leafbn" / old for old in _OLD if (REPO / "leafbn" / old).is_dir()}
_KEEP = {old: {p.stem for p in path.glob("*")} | _public(path) for old, path in _PACKAGES.items()}


def _new_path(match: re.Match) -> str:
    """The new path of one dotted old path (with the name after it), or the text as it was if new."""
    old, after = match.group(1), match.group(2) or ""
    if old in _KEEP and (not after or after.split()[-1].lstrip(".(") in _KEEP[old]):
        return match.group(0)  # the package itself, one of its modules, or a name it offers
    return _OLD[old] + after


def _from_leafbn(node: ast.ImportFrom, indent: str) -> list[str]:
    """``from leafbn import a, b as c`` → one line per name, each from its new package."""
    lines, kept = [], []
    for alias in node.names:
        if alias.name not in _OLD:
            kept.append(alias.name + (f" as {alias.asname}" if alias.asname else ""))
            continue
        package, module = _OLD[alias.name].rsplit(".", 1)
        local = alias.asname or alias.name
        lines.append(f"{indent}from {package} import {module}" + (f" as {local}" if local != module else ""))
    if kept:
        lines.insert(0, f"{indent}from leafbn import {', '.join(kept)}")
    return lines


def rewrite(text: str) -> str:
    """The file's text with every old path rewritten."""
    text = _DOTTED.sub(_new_path, text)  # first: the lines written below hold new paths only
    lines = text.splitlines(keepends=True)
    nodes = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and n.module == "leafbn"]
    for node in sorted(nodes, key=lambda n: n.lineno, reverse=True):
        first = lines[node.lineno - 1]
        indent = first[: len(first) - len(first.lstrip())]
        new = _from_leafbn(node, indent)
        lines[node.lineno - 1 : node.end_lineno] = [line + "\n" for line in new]
    return "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    for path in parser.parse_args().paths:
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if file.name in ("moved.py", "test_moved.py", Path(__file__).name):
                continue  # the table of old paths, its test, and this file: they name old paths on purpose
            text = file.read_text()
            new = rewrite(text)
            if new != text:
                file.write_text(new)
                print(file)


if __name__ == "__main__":
    main()
