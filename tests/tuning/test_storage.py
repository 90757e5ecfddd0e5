"""leafbn.tuning.storage: a study folder is owned by one running study at a time."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from leafbn.tuning.session import StudyError
from leafbn.tuning.storage import study_lock

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"pid %d on testhost" % os.getpid())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_study_folder_is_owned_by_one_study_at_a_time(tmp_path, capsys):
    from tests.study.test_study import run_main  # the CLI in this process

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
