"""Where a study's results live: its folder ``OUT/NAME`` (or a storage URI), owned by one study
at a time, with its ``config.json``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from leafbn.config import StudyConfig
from leafbn.results.provenance import versions  # what a study records it ran on; re-exported here
from leafbn.results.record import StudyRecord
from leafbn.tuning.session import StudyError

__all__ = [
    "is_uri", "experiment_path", "study_dir", "study_lock", "check_not_running", "prepare_dir", "read_record",
    "versions", "publish", "fetch", "remote", "killed_session_seconds",
]  # fmt: skip


def is_uri(out: str) -> bool:
    """Whether ``--out`` names a storage URI (``s3://``, ``gs://``, ``file://`` …), not a folder."""
    return "://" in out


def experiment_path(config: StudyConfig) -> str:
    """Where Ray Tune keeps the study's experiment folder: ``OUT/NAME`` (a folder or a URI)."""
    if is_uri(config.out):
        return f"{config.out.rstrip('/')}/{config.name}"
    return str(study_dir(config))


def study_dir(config: StudyConfig) -> Path:
    """The local folder of the study's own files (tables, ``config.json``, report).

    ``OUT/NAME`` for a local ``--out``. For a URI, a working folder under ``LEAFBN_STAGING``
    (default ``~/.cache/leafbn/studies``) whose files are copied to ``OUT/NAME`` at the end.
    """
    if is_uri(config.out):
        digest = hashlib.sha1(experiment_path(config).encode()).hexdigest()[:10]
        root = Path(os.environ.get("LEAFBN_STAGING", Path.home() / ".cache" / "leafbn" / "studies"))
        return (root / f"{config.name}-{digest}").resolve()
    return (Path(config.out).expanduser() / config.name).resolve()


def remote(config: StudyConfig) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of ``OUT/NAME`` for a URI ``--out``."""
    try:
        return pafs.FileSystem.from_uri(experiment_path(config))
    except Exception as exc:  # pyarrow raises several kinds for a bad or unreachable URI
        raise StudyError(f"--out {config.out}: cannot use this storage ({str(exc).splitlines()[0]})") from exc


def publish(config: StudyConfig, path: Path) -> None:
    """Copy the study's own files from ``path`` to ``OUT/NAME`` when ``--out`` is a URI."""
    if is_uri(config.out):
        fs, base = remote(config)
        pafs.copy_files(str(path), base, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def fetch(config: StudyConfig, path: Path) -> None:
    """Bring ``config.json``, ``optuna.db`` and the record of finished units (``units/``) back from
    ``OUT/NAME`` (a URI) to resume there."""
    fs, base = remote(config)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "optuna.db", "units"):
        if fs.get_file_info(f"{base}/{name}").type in (pafs.FileType.File, pafs.FileType.Directory):
            pafs.copy_files(f"{base}/{name}", str(path / name), source_filesystem=fs,
                            destination_filesystem=pafs.LocalFileSystem())  # fmt: skip


@contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """Own the study folder ``path`` while a study runs there (``path/.lock``, an flock).

    Raises :class:`StudyError` naming the holder if another study holds it. The operating system
    frees the lock when its process ends, however it ends (SIGKILL included), so a crashed study
    never leaves it stuck; Ray's processes do not inherit it.
    """
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise StudyError(
                f"{path}: another study is running there ({holder}); "
                "wait for it to end, or use another --name"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_not_running(path: Path) -> None:
    """Raise :class:`StudyError` naming the study running in folder ``path`` now, if one is.

    Checked first, so that a second study started there hears of the first, not of its files.
    """
    if path.is_dir():
        try:
            with study_lock(path):
                pass
        except OSError:
            pass  # a folder that cannot be written: the checks that follow say so


def prepare_dir(config: StudyConfig, path: Path) -> None:
    """Make sure the study's folder (and, for a URI ``--out``, its storage) can be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".leafbn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StudyError(
            f"--out {config.out if not is_uri(config.out) else path}: "
            f"cannot write there ({exc.strerror or exc})"
        ) from exc
    if is_uri(config.out):
        fs, base = remote(config)
        try:
            fs.create_dir(base, recursive=True)
            with fs.open_output_stream(f"{base}/.leafbn-write-test") as probe:
                probe.write(b"")
            fs.delete_file(f"{base}/.leafbn-write-test")
        except Exception as exc:
            raise StudyError(f"--out {config.out}: cannot write there ({str(exc).splitlines()[0]})") from exc


def read_record(path: Path) -> StudyRecord:
    """The study's ``config.json`` in folder ``path``; :class:`StudyError` (one line) if unreadable."""
    try:
        return StudyRecord.read(path / "config.json")
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path / 'config.json'}: cannot read the study's configuration ({exc})") from exc


def killed_session_seconds(run: dict[str, Any], path: Path) -> float:
    """Seconds the previous session ran if it was killed before writing its end (SIGKILL, a power
    cut): from its start to Ray Tune's last saved experiment state. 0 if it ended normally."""
    started, ended = run.get("session_started"), run.get("session_ended")
    if started is None or (ended is not None and ended >= started):
        return 0.0
    saved = [*path.glob("experiment_state-*.json"), *path.glob("units/*")]  # Ray Tune's state, or units'
    states = [state.stat().st_mtime for state in saved]
    return max(0.0, max(states, default=started) - started)
