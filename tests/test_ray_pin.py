"""One Ray version, written once: ``pyproject.toml`` pins ``ray[tune]`` to one exact version, and every
tracked file that names a Ray version (the cluster files, their docs, the lock, CI) names that one.

A Ray cluster runs one Ray version on every node, and the driver must match it. The files are found,
not listed: every file ``git ls-files`` knows with a suffix below (or under ``.ci/``) is read for the
forms in :data:`PATTERNS`. A recorded study (a folder holding ``trials.csv``) keeps the versions it ran
on and is not read. Raising Ray is one edit of the pin plus the files the failure message names.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".yaml", ".yml", ".md", ".toml", ".txt", ".cfg", ".sh"}
VERSION = r"(\d+(?:\.\d+){2}\S*?)"
#: The ways a file names a Ray version: a pip requirement (``ray==X``, ``ray[default]==X``), Ray's
#: image tag (``rayproject/ray:X-py311-cpu``), and prose (``Ray X.Y.Z``).
PATTERNS = (
    re.compile(r"(?<![\w./-])ray(?:\[[\w,\s-]*\])?\s*==\s*" + VERSION + r"(?=[\s\"'`;,)]|$)", re.I),
    re.compile(r"rayproject/ray(?:-ml)?:" + r"(\d+(?:\.\d+){2})"),
    re.compile(r"\bRay (\d+(?:\.\d+){2})\b"),
)
#: A version range for Ray: a cluster needs one version, so no file may ask for a range.
RANGE = re.compile(r"(?<![\w./-])ray(?:\[[\w,\s-]*\])?\s*(?:>=|~=|<=|!=|>|<)\s*\d", re.I)


def ray_pin(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The exact Ray version ``pyproject.toml``'s dependencies pin; AssertionError naming the problem."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    rays = [Requirement(d) for d in deps if Requirement(d).name.lower() == "ray"]
    assert len(rays) == 1, f"{pyproject.name}: {len(rays)} Ray requirements, expected exactly one"
    specs = list(rays[0].specifier)
    assert len(specs) == 1 and specs[0].operator == "==", (
        f"{pyproject.name}: {rays[0]} is not one exact version: write ray[tune]==X.Y.Z"
    )
    return specs[0].version


def tracked_files(root: Path) -> list[Path]:
    """The files git tracks under ``root`` that may name a Ray version (a plain walk outside git)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True, text=True
        ).stdout.split("\0")
        paths = [root / p for p in listed if p]
    except (OSError, subprocess.CalledProcessError):  # an unpacked archive: all but hidden and results
        skipped = lambda p: any(d.startswith(".") or d in ("results", "build") for d in p.parts[:-1])  # noqa: E731
        paths = [p for p in root.rglob("*") if not skipped(p.relative_to(root))]
        paths += list((root / ".ci").glob("*"))
    studies = {p.parent for p in paths if p.name == "trials.csv"}
    return sorted(
        p
        for p in paths
        if p.is_file()
        and (p.suffix in SUFFIXES or p.relative_to(root).parts[0] == ".ci")
        and not any(folder in p.parents for folder in studies)
    )


def named_ray_versions(text: str) -> list[tuple[int, str, str]]:
    """Every Ray version ``text`` names: (line number, version, the line); a range reads as ``range``."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        found += [(number, m.group(1), line.strip()) for pattern in PATTERNS for m in pattern.finditer(line)]
        found += [(number, "range", line.strip()) for _ in RANGE.finditer(line)]
    return found


def ray_version_problems(root: Path, pin: str) -> list[str]:
    """``FILE:LINE: names Ray X (the line)`` for every tracked file's Ray version other than ``pin``."""
    problems = []
    for path in tracked_files(root):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for number, named, line in named_ray_versions(text):
            if named != pin:
                problems.append(f"{path.relative_to(root)}:{number}: names Ray {named}: {line[:100]}")
    return list(dict.fromkeys(problems))  # a line naming it twice is one problem


def test_pyproject_pins_one_exact_ray():
    assert re.fullmatch(r"\d+\.\d+\.\d+", ray_pin()), ray_pin()


def test_every_file_names_the_pinned_ray():
    pin = ray_pin()
    problems = ray_version_problems(ROOT, pin)
    assert not problems, (
        f"pyproject.toml pins Ray {pin}; these files name another version (make them say {pin}, "
        "or refresh requirements-lock.txt with scripts/refresh_lock.sh):\n  " + "\n  ".join(problems)
    )


def test_another_pin_names_each_file_to_update():
    """A raised pin (here a version no file names) makes the check name every file and line."""
    problems = ray_version_problems(ROOT, "99.0.0")
    named = {p.split(":")[0] for p in problems}
    assert {"cluster.yaml", "docs/cluster.md", "pyproject.toml"} <= named, named
    lines = (ROOT / "cluster.yaml").read_text().splitlines()
    image = next(number for number, line in enumerate(lines, 1) if "image:" in line)
    assert any(p.startswith(f"cluster.yaml:{image}: names Ray ") for p in problems), problems


def test_every_form_of_a_ray_version_is_found():
    text = (
        'pip install "ray[default]==2.61.0" boto3\n'
        "    image: rayproject/ray:2.59.1-py311-cpu\n"
        "on Ray 2.58.0 (prose), not ray 2.57.0 (a study's record) nor Ray 2.60 (a series)\n"
        "ray==2.56.0 ; pyray==1.0.0 and array==3.0.0 are other packages\n"
        'dependencies = ["ray[tune]>=2.40"]\n'
    )
    assert [(n, v) for n, v, _ in named_ray_versions(text)] == [
        (1, "2.61.0"), (2, "2.59.1"), (3, "2.58.0"), (4, "2.56.0"), (5, "range"),
    ]  # fmt: skip


def test_installed_ray_is_the_pin():
    """The Ray this suite runs on is the pinned one: a driver joins only a cluster of its own Ray
    version, and the cluster files take the pin, so a local Ray off the pin fails there first."""
    pin, installed = ray_pin(), version("ray")
    assert installed == pin, (
        f"installed ray {installed}, pyproject.toml pins {pin}: reinstall with pip install -e '.[dev]' "
        "(or -c requirements-lock.txt for the tested set)"
    )
