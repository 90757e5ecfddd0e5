"""The rooms of leafbn: imports run one way between its sub-packages, our code uses only the paths
of this layout, and a Ray worker's imports stay light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEAFBN = REPO / "leafbn"

#: Each room and the rooms it may import (data ← train ← tuning → results ← report; config under all).
MAY_IMPORT = {
    "config": set(),
    "data": {"config"},
    "train": {"config", "data"},
    "results": {"config"},
    "tuning": {"config", "data", "train", "results"},
    "report": {"config", "results"},
}
#: Modules at leafbn's top that every room may import.
SHARED = {"leafbn", "leafbn.errors"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute ``leafbn`` module path a file imports (at any depth of its code), with its line;
    ``from leafbn.x import y`` counts as ``leafbn.x.y`` where ``y`` is a module, else as ``leafbn.x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "leafbn"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "leafbn":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((node.lineno, sub if _exists(sub) else node.module))
    return found


def _exists(module: str) -> bool:
    """``module`` is a module or package of leafbn in this tree."""
    base = REPO.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _room(module: str) -> str | None:
    """The room (sub-package) ``module`` belongs to, or None for the top of leafbn."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else None


def test_the_rooms_are_the_packages_of_leafbn_and_its_top_is_small() -> None:
    """A new module goes into its room (docs/architecture.md), not beside them."""
    packages = {p.parent.name for p in LEAFBN.glob("*/__init__.py")}
    assert packages == set(MAY_IMPORT)
    assert {p.name for p in LEAFBN.glob("*.py")} == {"__init__.py", "errors.py", "moved.py"}


def test_imports_run_one_way_between_rooms() -> None:
    wrong = []
    for path in sorted(LEAFBN.rglob("*.py")):
        room = _room(".".join(path.relative_to(REPO).with_suffix("").parts))
        if room is None:
            continue
        for line, module in _imports(path):
            other = _room(module)
            if other not in (None, room) and other not in MAY_IMPORT[room]:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({room}) imports {module}")
            elif other is None and module not in SHARED:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({room}) imports {module} from leafbn's top")
    assert not wrong, "\n".join(wrong)


def test_our_code_imports_only_paths_of_this_layout() -> None:
    """Old paths still import (leafbn.moved, for stored studies), but our own code must not use them:
    ``python scripts/rewrite_old_imports.py PATH`` rewrites a file that does."""
    tops = ("leafbn", "study", "tests", "benchmarks", "scripts")
    files = [path for top in tops for path in (REPO / top).rglob("*.py")]
    old = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path)
        if not _exists(module)
    ]
    assert not old, "\n".join(old)


WORKER = """
import json, sys
import leafbn.data.splits, leafbn.tuning.trial
leafbn.tuning.trial.worker_trainer()
print(json.dumps(sorted(sys.modules)))
"""


def test_a_worker_imports_neither_optuna_nor_the_report() -> None:
    """What a Ray worker imports (the split it unpickles, the trainable, the trainer) pulls in neither
    Optuna nor the tables, the report or any figure of ours (matplotlib comes with Keras itself)."""
    done = subprocess.run(
        [sys.executable, "-c", WORKER], capture_output=True, text=True, timeout=300, cwd=REPO, check=True
    )
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "leafbn.train.trainer" in modules  # the trainer did load
    heavy = {m for m in modules if m.split(".")[0] == "optuna"}
    ours = {m for m in modules if m.startswith(("leafbn.report", "leafbn.results", "leafbn.tuning.runner"))}
    assert not heavy and not ours, sorted(heavy | ours)


UNIT_WORKER = """
import json, pickle, sys
import leafbn.tuning.trial
from leafbn.data import loaders, splits
split = splits.split(loaders.load_embedded(), val_fraction=0.2, split_seed=0)
pickle.loads(pickle.dumps(split))
print(json.dumps(sorted(sys.modules)))
"""


def test_a_unit_trials_process_imports_no_tensorflow() -> None:
    """A unit trial hands its runs to a trainer process (leafbn.tuning.trainer_process): the trial's
    own process, kept for the whole study, stays without TensorFlow and Keras."""
    done = subprocess.run(
        [sys.executable, "-c", UNIT_WORKER], capture_output=True, text=True, timeout=300, cwd=REPO, check=True
    )
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "leafbn.tuning.trainer_process" in modules
    heavy = {m.split(".")[0] for m in modules} & {"tensorflow", "keras", "optuna"}
    assert not heavy, sorted(heavy)
