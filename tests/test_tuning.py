"""leafbn.tuning's guards: one study per folder, an --address that is not Ray, a resume that contradicts."""

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from leafbn.config import StudyConfig
from leafbn.tuning import StudyError, _check_reachable, _token_without_home, contradictions, study_lock

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"pid %d on testhost" % os.getpid())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_study_folder_is_owned_by_one_study_at_a_time(tmp_path, capsys):
    from test_study import run_main  # the CLI in this process

    folder = tmp_path / "busy"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(
                StudyError, match=rf"another study is running there \(pid {holder.pid} on testhost\)"
            ),
            study_lock(folder),
        ):
            pass
        args = ("--lr", "0.1", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path), "--name", "busy")
        code, stderr = run_main(capsys, *args)
        assert code == 2 and len(stderr.strip().splitlines()) == 1
        assert f"another study is running there (pid {holder.pid} on testhost)" in stderr
        assert "use another --name" in stderr
        assert not (folder / "config.json").exists()  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)  # a crashed study: the lock must not stay stuck
        holder.wait(timeout=10)
    with study_lock(folder):
        assert (folder / ".lock").read_text() == f"pid {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(StudyError, match="another study is running there"), study_lock(folder):
            pass  # a second study in this very process is refused too


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
                _check_reachable(address, timeout=2.0)
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
        _check_reachable(f"127.0.0.1:{port}")


def test_resume_refuses_flags_that_contradict_the_stored_study():
    stored = StudyConfig(lr=(0.01, 0.1), epochs=20, seeds=2)
    given = StudyConfig(lr=(5.0, 50.0), epochs=7, seeds=2, num_cpus=1, out="elsewhere")
    asked = {"lr", "epochs", "seeds", "num_cpus", "out"}
    assert contradictions(stored, given, asked) == [
        "--epochs 7 (the study's: 20)",
        "--lr 5,50 (the study's: 0.01,0.1)",
    ]  # seeds agrees; where it runs (CPUs, --out) may change
    assert contradictions(stored, given, {"seeds", "num_cpus"}) == []
    assert contradictions(stored, StudyConfig(bn=(True,)), {"bn"}) == ["--bn on (the study's: off,on)"]


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


def test_only_never_started_trials_are_quiet_in_ray_tunes_reader():
    import logging

    from leafbn.tuning import _never_started

    def record(message):
        return logging.LogRecord("ray", logging.WARNING, __file__, 1, message, None, None)

    missing = (
        "Failed to fetch metrics for 2 trial(s):\n- a: FileNotFoundError('x')\n- b: FileNotFoundError('y')"
    )
    assert not _never_started(record(missing))
    assert _never_started(record(missing + "\n- c: ValueError('corrupt json')"))
    assert _never_started(record("something else"))
