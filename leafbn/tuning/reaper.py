"""Leave no Ray process of a study behind when its driver is killed (SIGKILL, the OOM killer).

A driver that ends normally, or on SIGINT/SIGTERM, shuts its local Ray instance down itself. One
that is killed cannot: Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``, one of them
listening on a loopback port) then live on, adopted by PID 1. :func:`watch` starts a small watcher
process that learns the driver's descendants every second and, when the driver is gone (the pipe
it holds closes), ends every one of them still alive: SIGTERM, then SIGKILL after 3 s. Processes
are recognised by PID and start time, so a reused PID is never hit. Linux only (``/proc``);
elsewhere :func:`watch` does nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["watch"]

_WATCHER = r"""
import os, select, signal, sys, time

driver, me = int(sys.argv[1]), os.getpid()


def table():
    kids, started = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(name)
        kids.setdefault(int(fields[1]), []).append(pid)
        started[pid] = fields[19]
    return kids, started


def below(roots, kids):
    found, todo = set(), list(roots)
    while todo:
        for child in kids.get(todo.pop(), ()):
            if child != me and child not in found:
                found.add(child)
                todo.append(child)
    return found


known = {}  # pid -> start time
while True:
    ready, _, _ = select.select([sys.stdin], [], [], 1.0)
    kids, started = table()
    if not ready:
        known.update((pid, started[pid]) for pid in below([driver], kids) if pid in started)
        continue
    if os.read(sys.stdin.fileno(), 1):
        continue
    break  # end of file: the driver is gone, or has finished with Ray

for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
    kids, started = table()
    alive = [pid for pid, start in known.items() if started.get(pid) == start]
    alive += [pid for pid in below(alive, kids) if pid not in known]
    if not alive:
        break
    for pid in alive:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in alive):
        time.sleep(0.1)
"""


@contextmanager
def watch() -> Iterator[None]:
    """While inside, a watcher ends this process's descendants if this process is killed.

    On a normal exit from the block the watcher also ends whatever descendant is still alive (Ray
    has shut down by then) and exits.
    """
    if not os.path.isdir("/proc/self"):
        yield
        return
    watcher = subprocess.Popen(
        [sys.executable, "-c", _WATCHER, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C meant for the study does not end its watcher first
    )
    try:
        yield
    finally:
        watcher.stdin.close()
        try:
            watcher.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watcher.kill()
