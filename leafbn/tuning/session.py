"""Where a study runs: a Ray session of its own on 127.0.0.1, or a cluster it was asked to join.

Ray has no authentication that leafbn relies on: a local instance started here listens on
127.0.0.1 only, runs no dashboard, and its processes end with the driver however it ends
(:mod:`leafbn.tuning.reaper`). A cluster address is checked to answer as Ray does before ``ray.init``
waits on it. SIGTERM ends a study as Ctrl-C does.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls from a study
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # the loggers we want are named in tuning

import ray

from leafbn.config import StudyConfig
from leafbn.errors import StudyError
from leafbn.tuning import reaper

__all__ = [
    "StudyError",
    "ray_session",
    "check_reachable",
    "check_cluster_version",
    "join_error",
    "term_as_interrupt",
    "sigterm_ignored",
]


#: An HTTP/2 client's first bytes (the connection preface and an empty SETTINGS frame). Ray's GCS
#: and its client server speak gRPC, so they answer with a SETTINGS frame; anything else does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line if ``host:port`` (or ``ray://host:port``) does not answer as Ray does.

    A closed port, or a port where something else listens (an HTTP server, say; ``ray.init`` would
    wait there for minutes), is refused within ``timeout`` seconds. With ``RAY_USE_TLS`` only the
    TCP connection is checked.
    """
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            if os.environ.get("RAY_USE_TLS", "0") in ("0", ""):
                sock.sendall(_H2_PREFACE)
                head = b""
                while len(head) < 9 and (chunk := sock.recv(9 - len(head))):
                    head += chunk
                if len(head) < 9 or head[3] != 4:  # frame type 4: SETTINGS
                    raise StudyError(
                        f"--address {address}: something answers there, but not Ray "
                        "(point it at the head node's GCS port, 6379 by default, or ray://HOST:10001)"
                    )
    except OSError as exc:
        raise StudyError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})"
        ) from exc
    if not address.startswith("ray://"):
        check_cluster_version(hostport, timeout)


def check_cluster_version(hostport: str, timeout: float = 5.0) -> None:
    """One line naming both versions if the cluster whose GCS is ``hostport`` runs another Ray (or
    Python) than this process: checked before anything of the study is written.

    Asks the GCS for the cluster's metadata as ``ray.init`` does (Ray's own comparison, a private
    API of Ray); where it cannot answer (token authentication without this machine's token, an
    older GCS), nothing is said here and ``ray.init``'s own check, turned into one line by
    :func:`join_error`, stays.
    """
    from ray._private import ray_constants
    from ray._private.utils import check_version_info

    try:
        from ray._common.usage.usage_constants import CLUSTER_METADATA_KEY
        from ray._raylet import GcsClient

        with _stderr_silenced():  # Ray's C++ client logs a refused token itself
            raw = GcsClient(address=hostport).internal_kv_get(
                CLUSTER_METADATA_KEY, namespace=ray_constants.KV_NAMESPACE_CLUSTER, timeout=timeout
            )
        metadata = json.loads(raw) if raw else None
    except Exception:  # best effort: ray.init checks again
        return
    if metadata and "ray_version" in metadata and "python_version" in metadata:
        try:
            check_version_info(metadata, "this machine")
        except RuntimeError as exc:
            raise StudyError(join_error(hostport, exc)) from exc


@contextmanager
def ray_session(config: StudyConfig) -> Iterator[None]:
    """Connect to ``config.address`` or start a local Ray on 127.0.0.1; shut down afterwards."""
    if ray.is_initialized():
        yield
        return
    common = dict(log_to_driver=False, configure_logging=False)
    if config.address:
        check_reachable(config.address)
        # A cluster on this machine's loopback: join it as a local study starts one, or Ray dials
        # the machine's network address, where such a cluster does not listen.
        with _loopback_only() if _is_loopback(config.address) else nullcontext():
            try:
                _init(address=config.address, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise StudyError(join_error(config.address, exc)) from exc
            try:
                yield
            finally:
                ray.shutdown()
        return
    _token_without_home()
    with reaper.watch(), _loopback_only():  # a killed driver leaves none of its Ray processes behind
        _init(  # "local": a new instance of our own, never a cluster that happens to run here
            address="local",
            num_cpus=config.num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            **common,
        )
        try:
            yield
        finally:
            _stop_monitor()
            ray.shutdown()


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside (native code's logging included)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def join_error(address: str, exc: Exception) -> str:
    """The one line for a cluster at ``address`` that ``ray.init`` refused with ``exc``.

    Ray's version check (a multi-line ``Version mismatch`` error giving the cluster's Ray and
    Python, then this process's) becomes one line naming both versions and the fix.
    """
    text = str(exc)
    if text.startswith("Version mismatch"):
        rays = re.findall(r"Ray: (\S+)", text)
        pythons = re.findall(r"Python: (\S+)", text)
        if len(rays) == 2 and len(pythons) == 2:
            return (
                f"--address {address}: the cluster runs Ray {rays[0]} on Python {pythons[0]}, this "
                f"machine Ray {rays[1]} on Python {pythons[1]}; a driver must match its cluster: "
                f"install ray[tune]=={rays[0]} here (on that Python), or start the cluster with Ray {rays[1]}"
            )
    hint = (
        ""
        if os.environ.get("RAY_AUTH_MODE")
        else "; a cluster with token authentication needs RAY_AUTH_MODE=token"
    )
    return f"--address {address}: cannot join ({text.splitlines()[0] if text else type(exc).__name__}){hint}"


def _stop_monitor() -> None:
    """End the local Ray instance's autoscaler monitor at once, before ``ray.shutdown``.

    ``ray.shutdown`` stops the GCS first and the monitor after it with SIGTERM, on which the
    monitor reports its end to that GCS: it hangs until Ray kills it a second later, a second of
    every study (measured: ``ray.shutdown`` 1.1 s, 0.1-0.6 s without it). A single machine has
    nothing to autoscale. Reaches into Ray's private node object: where that changes, shutting
    down only takes its second again.
    """
    from ray._private import ray_constants

    node = getattr(ray._private.worker, "_global_node", None)
    processes = getattr(node, "all_processes", None)
    if not isinstance(processes, dict):
        return
    for info in processes.pop(ray_constants.PROCESS_TYPE_MONITOR, []):
        info.process.kill()
        with suppress(subprocess.TimeoutExpired):
            info.process.wait(timeout=1)


def _init(**kwargs: Any) -> None:
    """``ray.init(**kwargs)``, this process's SIGTERM handler kept.

    ``ray.init`` installs a handler that exits at once: a SIGTERM after the trials would then end
    the driver before its tables are written. What SIGTERM does in a study is
    :func:`sigterm_ignored`'s and :func:`term_as_interrupt`'s to say.
    """
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(**kwargs)
    finally:
        if main:
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def term_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM (``kill``, a batch scheduler, a closed session) ends the study as Ctrl-C does.

    Ray Tune stops gracefully on SIGINT and the tables of what finished are written; Ray's own
    SIGTERM handler would end the driver at once, with no table. Only the main thread can do this.
    """
    with _on_sigterm(lambda signum, frame: signal.raise_signal(signal.SIGINT)):
        yield


@contextmanager
def sigterm_ignored() -> Iterator[None]:
    """Inside, SIGTERM is ignored: a study whose trials have ended writes its tables, then ends on
    its own within seconds, instead of dying with nothing written. :func:`term_as_interrupt`
    nested inside takes precedence while the trials run."""
    with _on_sigterm(signal.SIG_IGN):
        yield


@contextmanager
def _on_sigterm(handler: Any) -> Iterator[None]:
    """``handler`` for SIGTERM inside, the previous one restored after; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _token_without_home() -> None:
    """Give a local Ray instance its auth token in the environment where ``~/.ray`` cannot be written.

    Ray's local instance turns on token authentication and saves a new token in
    ``~/.ray/auth_token``; on a read-only home folder (locked-down nodes, some CI) that raises
    inside ``ray.init``. The token then goes in ``RAY_AUTH_TOKEN``, which Ray's processes inherit.
    """
    if {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ):
        return
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    token_file = Path.home() / ".ray" / "auth_token"
    if token_file.is_file():
        return
    try:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        probe = token_file.parent / ".leafbn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError:
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # as Ray's own token generator does


def _is_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` (or ``ray://HOST:PORT``) names this machine's loopback interface."""
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Keep a local Ray on 127.0.0.1: every server it starts listens on loopback only.

    On Linux Ray rewrites a 127.0.0.1 node address to the machine's network address unless its
    single-machine mode (the default on macOS and Windows) is on; Ray reads that switch from
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when it is imported, so the cached value is set too.
    Both are restored afterwards, so a later session can join a real cluster.
    """
    from ray._private import ray_constants

    saved = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # inherited by Ray's processes
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
