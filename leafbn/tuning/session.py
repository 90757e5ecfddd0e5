"""Where a study runs: a Ray session of its own on 127.0.0.1, or a cluster it was asked to join.

Ray has no authentication that leafbn relies on: a local instance started here listens on
127.0.0.1 only, runs no dashboard, and its processes end with the driver however it ends
(:mod:`leafbn.tuning.reaper`). A cluster address is checked to answer as Ray does before ``ray.init``
waits on it. SIGTERM ends a study as Ctrl-C does.
"""

from __future__ import annotations

import os
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

__all__ = ["StudyError", "ray_session", "check_reachable", "term_as_interrupt", "sigterm_ignored"]


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
                hint = (
                    ""
                    if os.environ.get("RAY_AUTH_MODE")
                    else "; a cluster with token authentication needs RAY_AUTH_MODE=token"
                )
                raise StudyError(
                    f"--address {config.address}: cannot join ({str(exc).splitlines()[0]}){hint}"
                ) from exc
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
