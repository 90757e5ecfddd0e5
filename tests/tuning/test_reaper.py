"""leafbn.tuning.reaper: a killed driver's descendants do not outlive it."""

import os
import signal
import subprocess
import sys
import time

DRIVER = """
import subprocess, sys, time
from leafbn import reaper
with reaper.watch():
    # like Ray's agents: a child in a session of its own, whose child outlives it
    grandchild = "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])"
    body = f"import subprocess, sys, time; {grandchild}; time.sleep(120)"
    child = subprocess.Popen([sys.executable, "-c", body], start_new_session=True)
    time.sleep(2.5)  # the watcher learns the tree every second
    print(child.pid, flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(name))
            except (OSError, IndexError):
                continue
    return found


def test_a_killed_drivers_descendants_end_within_seconds():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    child = int(driver.stdout.readline())
    grandchildren = _children(child)
    assert _alive(child) and len(grandchildren) == 1
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_alive(child) or _alive(grandchildren[0])):
        time.sleep(0.1)
    assert not _alive(child) and not _alive(grandchildren[0])


def test_a_normal_exit_ends_the_watcher():
    done = subprocess.run(
        [sys.executable, "-c", "from leafbn import reaper\nwith reaper.watch():\n    pass\nprint('ok')"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok"
