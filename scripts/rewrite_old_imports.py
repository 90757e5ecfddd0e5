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
#: The modules of the packages that took an old module's name (``leafbn.data.loaders`` is new already).
_INSIDE = {old: {p.stem for p in (REPO / "leafbn" / old).glob("*")} for old in _OLD}


def _new_path(match: re.Match) -> str:
    """The new path of one dotted old path (with the name after it), or the text as it was if new."""
    old, after = match.group(1), match.group(2) or ""
    if after.split()[-1:] and after.split()[-1].lstrip(".(") in _INSIDE.get(old, ()):
        return match.group(0)
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
            if file.name == "moved.py":
                continue  # the table of old paths itself
            text = file.read_text()
            new = rewrite(text)
            if new != text:
                file.write_text(new)
                print(file)


if __name__ == "__main__":
    main()
