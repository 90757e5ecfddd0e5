"""Checks of a Ray cluster-launcher file (``cluster.yaml``, ``cluster-local.yaml``) that Ray's own
schema cannot make: the nodes get this repository's code and install leafbn from it, and they
install the Ray version this machine runs.

Ray accepts a file without ``file_mounts``; its nodes then have no study code and the study fails
on the cluster, minutes later. ``study/check_cluster.py FILE`` says so in one line before
``ray up``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from leafbn.errors import ClusterFileError

__all__ = ["ClusterFileError", "load_cluster_file", "repository_mounts", "cluster_file_problems"]

#: ``ray==X`` or ``ray[extras]==X`` in a setup command.
_RAY_PIN = re.compile(r"(?<![\w./-])ray(?:\[[\w,\s-]*\])?==(?P<version>[\w.]+)")


def load_cluster_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; :class:`ClusterFileError` if it is missing or not a mapping."""
    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterFileError(f"{path}: cannot read it ({str(exc).splitlines()[0]})") from exc
    if not isinstance(cfg, dict):
        raise ClusterFileError(f"{path}: not a Ray cluster file (a YAML mapping)")
    return cfg


def repository_mounts(cfg: dict[str, Any], root: Path) -> set[str]:
    """Remote paths of ``file_mounts`` whose local side is the repository ``root``.

    A relative local side is read from ``root``: ``ray up`` is run from the repository root.
    """
    mounts = set()
    for remote, local in (cfg.get("file_mounts") or {}).items():
        local_path = Path(str(local)).expanduser()
        if not local_path.is_absolute():
            local_path = root / local_path
        if local_path.resolve() == root.resolve():
            mounts.add(str(remote).rstrip("/"))
    return mounts


def _editable_installs(commands: list[str]) -> list[str]:
    """Paths given to ``pip install -e`` / ``--editable`` in shell ``commands``."""
    paths = []
    for command in commands:
        for part in re.split(r";|&&|\|\||\n", command):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            if not any(Path(w).name.startswith("pip") for w in words) or "install" not in words:
                continue
            for i, word in enumerate(words):
                if word in ("-e", "--editable") and i + 1 < len(words):
                    paths.append(words[i + 1].rstrip("/"))
                elif word.startswith("--editable="):
                    paths.append(word.split("=", 1)[1].rstrip("/"))
    return paths


def cluster_file_problems(cfg: dict[str, Any], root: Path, ray_version: str) -> list[str]:
    """One line per problem of the cluster file ``cfg`` for the repository ``root``; [] if none.

    Checked: a ``file_mounts`` entry copies ``root`` to the nodes, the setup commands (``setup_commands``
    with ``head_setup_commands``) ``pip install -e`` that copy, and every Ray they pin is ``ray_version``.
    """
    mounts = repository_mounts(cfg, root)
    if not mounts:
        return [
            "file_mounts copies no directory from the repository root, so the nodes would have no "
            'study code: add  "~/leafbn": "."  under file_mounts (and run ray up from the repository root)'
        ]
    commands = list(cfg.get("setup_commands") or []) + list(cfg.get("head_setup_commands") or [])
    problems = []
    if not set(_editable_installs(commands)) & mounts:
        problems.append(
            f"setup_commands install leafbn from none of the repository copies {sorted(mounts)}: "
            f"add  pip install -e {sorted(mounts)[0]}"
        )
    for command in commands:
        for match in _RAY_PIN.finditer(command):
            if match["version"] != ray_version:
                problems.append(
                    f"setup_commands install Ray {match['version']}, this machine runs Ray {ray_version}: "
                    f"a cluster and its driver need one version ({command.strip()})"
                )
    return problems
