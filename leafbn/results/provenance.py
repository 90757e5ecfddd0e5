"""What a study ran on, and how the installed versions differ from that.

:func:`versions` reads the installed versions (package metadata, no TensorFlow import) and the git
commit of the code; a study records them in ``config.json`` (``versions`` for its first session, one
entry of ``resumes`` for each later one). :func:`check_versions` compares a study's record with what is
installed now, for ``study/report.py`` and ``study/run.py --resume``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TextIO

from leafbn.results.record import StudyRecord

__all__ = [
    "UNKNOWN", "COMPARED", "versions", "code_state", "version_differences", "version_line", "check_versions",
]  # fmt: skip

UNKNOWN = "unknown"
#: The recorded names a report or a resume compares, in the order a warning names them.
COMPARED = ("leafbn", "commit", "python", "ray", "tensorflow", "keras", "numpy")
#: Distributions read for a name, the first one installed wins (TensorFlow's CPU build: tensorflow-cpu).
DISTRIBUTIONS = {
    "ray": ("ray",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "numpy": ("numpy",),
}


def code_state(root: Path | None = None) -> dict[str, str]:
    """``{"commit": SHA, "tree": "clean" | "changed"}`` of the git checkout holding leafbn (``root``,
    default: the folder above the package), ``tree`` saying whether files differed from the commit
    (untracked ones included, ignored ones not). Both ``"unknown"`` where leafbn is not a checkout's
    own (an installed wheel) or git cannot tell."""
    root = (root or Path(__file__).resolve().parents[2]).resolve()
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never take the index lock of a running git

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20,
                              env=env, check=True)  # fmt: skip
        return done.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return {"commit": UNKNOWN, "tree": UNKNOWN}
        commit, changes = git("rev-parse", "HEAD"), git("status", "--porcelain")
        return {"commit": commit, "tree": "changed" if changes else "clean"}
    except (OSError, subprocess.SubprocessError):
        return {"commit": UNKNOWN, "tree": UNKNOWN}


def versions() -> dict[str, str]:
    """Installed versions: leafbn, Python, Ray, TensorFlow, Keras, NumPy (a name with no installed
    distribution is left out), and the code's ``commit`` and ``tree`` (:func:`code_state`)."""
    from leafbn import __version__

    found = {"leafbn": __version__, "python": platform.python_version()}
    for name, dists in DISTRIBUTIONS.items():
        for dist in dists:
            try:
                found[name] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return found | code_state()


def _recorded(record: StudyRecord) -> dict[str, list[str]]:
    """Name → the distinct versions the study's sessions recorded, first session first."""
    sessions = [record.versions] + [r.get("versions") for r in record.resumes if isinstance(r, dict)]
    values: dict[str, list[str]] = {}
    for session in sessions:
        for name, value in (session if isinstance(session, dict) else {}).items():
            if str(value) != UNKNOWN and str(value) not in values.setdefault(name, []):
                values[name].append(str(value))
    return values


def _show(name: str, value: str) -> str:
    return value[:12] if name == "commit" and value != UNKNOWN else value


def version_differences(record: StudyRecord, installed: dict[str, str]) -> tuple[list[str], list[str]]:
    """``(differences, unknowns)`` between a study's recorded versions and ``installed``, as text:
    ``"tensorflow 2.20.0 (installed 2.21.0)"``; a name the study did not record (or whose installed
    version is unknown) is an unknown, ``"numpy (not recorded; installed 2.4.6)"``, not a difference."""
    recorded, differ, unknown = _recorded(record), [], []
    for name in COMPARED:
        was, now = recorded.get(name, []), installed.get(name, UNKNOWN)
        shown = "/".join(_show(name, v) for v in was)
        if not was:
            unknown.append(f"{name} (not recorded; installed {_show(name, now)})")
        elif now == UNKNOWN:
            unknown.append(f"{name} {shown} (installed: unknown)")
        elif was != [now]:
            differ.append(f"{name} {shown} (installed {_show(name, now)})")
    return differ, unknown


def version_line(record: StudyRecord, installed: dict[str, str] | None = None) -> tuple[str | None, bool]:
    """The one line comparing ``record``'s versions with ``installed`` (default: :func:`versions`),
    ``versions differ from the study's: ...; versions the study did not record: ...``, and whether a
    version differs; ``(None, False)`` where everything compared was recorded and matches."""
    differ, unknown = version_differences(record, versions() if installed is None else installed)
    parts = ([f"versions differ from the study's: {', '.join(differ)}"] if differ else []) + (
        [f"versions the study did not record: {', '.join(unknown)}"] if unknown else []
    )
    return ("; ".join(parts) or None), bool(differ)


def check_versions(
    record: StudyRecord,
    strict: bool = False,
    installed: dict[str, str] | None = None,
    out: TextIO | None = None,
) -> str | None:
    """Say how ``record``'s versions compare with the installed ones in one line on ``out`` (default
    stderr): ``warning: <line>`` where a version differs, ``note: <line>`` where the study only
    recorded fewer (:func:`version_line`). With ``strict`` and a difference, print nothing and return
    the line for the caller to refuse with."""
    line, differs = version_line(record, installed)
    if line is None:
        return None
    if differs and strict:
        return line
    print(f"{'warning' if differs else 'note'}: {line}", file=out or sys.stderr)
    return None
