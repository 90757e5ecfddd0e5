"""leafbn.tuning.session: an --address that is not Ray is refused quickly; a read-only home still works;
the local instance's monitor is ended before Ray's shutdown."""

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import ray
from ray._private import ray_constants

from leafbn.tuning.session import StudyError, _stop_monitor, _token_without_home, check_reachable


def _serve(handler_answers: bool):
    """A TCP server on 127.0.0.1 that answers as HTTP/1 does, or accepts and never says a word."""
    if handler_answers:
        server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server.server_address[1], server.shutdown
    sock = socket.create_server(("127.0.0.1", 0))
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    return sock.getsockname()[1], stop.set


@pytest.mark.parametrize("answers", [True, False], ids=["http-server", "silent-server"])
def test_an_address_where_something_else_listens_is_refused_quickly(answers):
    port, stop = _serve(answers)
    try:
        for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
            start = time.monotonic()
            with pytest.raises(StudyError) as info:
                check_reachable(address, timeout=1.0)
            assert time.monotonic() - start < 5
            message = str(info.value)
            assert message.startswith(f"--address {address}: ") and "\n" not in message
            assert ("not Ray" in message) if answers else ("timed out" in message)
    finally:
        stop()


def test_a_closed_port_is_refused():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    with pytest.raises(StudyError, match=rf"--address 127.0.0.1:{port}: no Ray cluster answers there"):
        check_reachable(f"127.0.0.1:{port}")


def test_a_read_only_home_gets_rays_token_in_the_environment(monkeypatch):
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.setenv(name, "")  # so that the teardown restores what was there, or nothing
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", "/proc")  # nothing can be created there
    _token_without_home()
    assert len(os.environ["RAY_AUTH_TOKEN"]) == 64
    token = os.environ["RAY_AUTH_TOKEN"]
    _token_without_home()
    assert os.environ["RAY_AUTH_TOKEN"] == token  # set once, kept


def test_the_monitor_is_killed_and_forgotten_and_nothing_else(monkeypatch):
    # ray.shutdown would SIGTERM it after the GCS is gone, and wait a second for it to die
    def sleeper() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    monitor, raylet = sleeper(), sleeper()
    try:
        processes = {
            ray_constants.PROCESS_TYPE_MONITOR: [SimpleNamespace(process=monitor)],
            ray_constants.PROCESS_TYPE_RAYLET: [SimpleNamespace(process=raylet)],
        }
        monkeypatch.setattr(ray._private.worker, "_global_node", SimpleNamespace(all_processes=processes))
        _stop_monitor()
        assert monitor.poll() == -signal.SIGKILL  # ended at once, its SIGTERM handler never ran
        assert list(processes) == [ray_constants.PROCESS_TYPE_RAYLET]  # shutdown will not wait on it
        assert raylet.poll() is None
        monkeypatch.setattr(ray._private.worker, "_global_node", None)
        _stop_monitor()  # no local instance: nothing to do
    finally:
        for process in (monitor, raylet):
            process.kill()
            process.wait()


def test_a_cluster_of_another_ray_version_is_one_line_naming_both(monkeypatch):
    """Ray's own version check (fed a cluster that runs another Ray) becomes one line, through
    ray_session as ``--address`` reaches it; study/run.py prints it and exits 2."""
    from ray._private.utils import check_version_info

    from leafbn.config import StudyConfig
    from leafbn.tuning import session

    python = ".".join(map(str, sys.version_info[:3]))

    def cluster_of_another_ray(**kwargs):
        check_version_info({"ray_version": "2.59.0", "python_version": python}, "127.0.0.1:6379")

    monkeypatch.setattr(session, "check_reachable", lambda address: None)
    monkeypatch.setattr(session, "_init", cluster_of_another_ray)
    with pytest.raises(StudyError) as caught, session.ray_session(StudyConfig(address="10.0.0.1:6379")):
        pass
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("--address 10.0.0.1:6379: the cluster runs Ray 2.59.0 on Python ")
    assert f"this machine Ray {ray.__version__}" in message and "ray[tune]==2.59.0" in message
