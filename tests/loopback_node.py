"""A Ray node on this machine's loopback for Ray's cluster launcher (tests/test_ray_up.py): an sshd
of its own on 127.0.0.1, a home with a virtual environment first on its PATH, and a ``ray`` whose
``stop`` ends only the processes of this node's sessions (found by a marker in their environment).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

MARKER_VAR = "LEAFBN_RAY_UP_CLUSTER"  # in the environment of every process of the cluster's sessions
LAUNCHER_VAR = "LEAFBN_RAY_UP_LAUNCHER"  # in the environment of the launcher and its ssh processes


def find_sshd() -> str | None:
    """Path of the OpenSSH server (it lives in sbin, often not on a user's PATH)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    return shutil.which("sshd", path=path)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------------------------
# Processes: found by the marker in their environment, or by their session
# --------------------------------------------------------------------------------------------
def marked_pids(marker: str, var: str = MARKER_VAR) -> list[int]:
    """Live processes whose environment holds ``var=marker`` (this process excluded)."""
    needle = f"{var}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and not _zombie(entry):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _zombie(entry: Path) -> bool:
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def alive(pid: int) -> bool:
    try:
        return not _zombie(Path(f"/proc/{pid}"))
    except OSError:
        return False


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (all that a ``start_new_session`` child started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def kill_pids(find, grace: float = 5.0) -> list[int]:
    """SIGTERM what ``find()`` returns, SIGKILL what is left after ``grace`` s; what still lives."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        for pid in find():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while find() and time.monotonic() < deadline:
            time.sleep(0.1)
    return find()


# The `ray stop` of the test's sessions: the same marker search, run on the "node".
STOP_SCRIPT = '''"""ray stop for one cluster: end the processes carrying {var}={marker}, not their callers."""
import os, signal, time
from pathlib import Path

needle = b"{var}={marker}"
mine = set()
pid = os.getpid()
while pid > 1:  # this script and the shell that runs it carry the marker too
    mine.add(pid)
    pid = int(Path(f"/proc/{{pid}}/stat").read_text().rsplit(")", 1)[1].split()[1])


def marked():
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in mine:
            try:
                if needle in (entry / "environ").read_bytes().split(b"\\0"):
                    if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 3.0)):
    for pid in marked():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    end = time.monotonic() + wait
    while marked() and time.monotonic() < end:
        time.sleep(0.1)
print(f"stopped this cluster's processes; {{len(marked())}} left")
'''

# ssh_proxy_command: stdin/stdout to 127.0.0.1:PORT (Ray's auth has no port field).
RELAY_SCRIPT = """import os, selectors, socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
sel = selectors.DefaultSelector()
sel.register(0, selectors.EVENT_READ)
sel.register(sock, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj == 0:
            data = os.read(0, 65536)
            if not data:
                sel.unregister(0)
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.sendall(data)
        else:
            data = sock.recv(65536)
            if not data:
                sys.exit(0)
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
"""


# --------------------------------------------------------------------------------------------
# The "node": a home, a venv, wrappers, and an sshd of its own
# --------------------------------------------------------------------------------------------
def make_node_home(root: Path, marker: str) -> Path:
    """``root/home``: a venv first on the PATH of its ``~/.bashrc``, with ``pip`` and ``ray`` wrappers."""
    home, bin_dir, venv = root / "home", root / "home" / "bin", root / "home" / "venv"
    bin_dir.mkdir(parents=True)
    (root / "tmp").mkdir()
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    (bin_dir / "stop_cluster.py").write_text(STOP_SCRIPT.format(var=MARKER_VAR, marker=marker))
    wrappers = {
        "pip": f'exec {python} -m pip "$@"',
        "ray": f'if [ "$1" = stop ]; then exec {python} {bin_dir / "stop_cluster.py"}; fi\n'
        f'exec {python} -c \'import sys; from ray.scripts.scripts import main; sys.argv[0] = "ray"; '
        f'sys.exit(main())\' "$@"',
    }
    for name, body in wrappers.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(venv / "bin"), os.environ.get("PATH", "/usr/bin:/bin")])
    (home / ".bashrc").write_text(
        f"export PATH={shlex.quote(path)}\n"
        "export RAY_USAGE_STATS_ENABLED=0 PIP_NO_INDEX=1 PIP_NO_BUILD_ISOLATION=0"
        " PIP_DISABLE_PIP_VERSION_CHECK=1\n"
    )
    return home


@contextlib.contextmanager
def private_sshd(root: Path, home: Path, marker: str) -> Iterator[tuple[int, Path, dict]]:
    """An sshd on 127.0.0.1 at a free port for this user and a fresh key: ``(port, key, closed)``.

    Every session gets ``HOME=home``, ``TMPDIR`` in ``root`` and the cluster's marker. On exit the
    launcher's ssh connections (Ray keeps them open 10 s for reuse) and sshd are ended with SIGTERM;
    ``closed["left"]`` lists sshd's processes (the listener, its per-connection children) still
    alive 5 s later, and ``closed["sessions"]`` the marked session processes; both are then killed.
    """
    sshd, keys = find_sshd(), root / "ssh"
    keys.mkdir(mode=0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
    (port,) = free_ports(1)
    config = keys / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {keys / 'host_key'}\nPidFile {keys / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nAuthenticationMethods publickey\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"PermitRootLogin prohibit-password\nAllowUsers {getpass.getuser()}\nStrictModes no\n"
        f"SetEnv HOME={home} TMPDIR={root / 'tmp'} {MARKER_VAR}={marker}\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege-separation folder
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config)], stdout=(keys / "sshd.log").open("w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(keys / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.05)
        closed: dict[str, list[int]] = {}
        yield port, keys / "client_key", closed
    finally:
        kill_pids(lambda: marked_pids(marker, LAUNCHER_VAR), grace=2.0)  # Ray's ssh ControlMasters
        tree = [proc.pid, *descendants(proc.pid)]
        proc.terminate()
        deadline = time.monotonic() + 5
        while any(alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        if "closed" in locals():
            closed.update(left=[p for p in tree if alive(p)], sessions=marked_pids(marker))
        kill_pids(lambda: [p for p in tree if alive(p)] + marked_pids(marker))
        proc.wait(timeout=10)


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, their children, …)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit():
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return [p for p in found if alive(p)]
