"""A Ray cluster of several nodes on this one machine, loopback only, and the study's CLI against it.

For the tests (``tests/test_cluster.py``) and the benchmarks (``benchmarks/bench_scaling.py``,
``benchmarks/bench_scale.py``): a head and worker nodes, 1 CPU each, every node with its own
raylet, object store, agents and temp folder (``ray.cluster_utils.Cluster`` run in a helper process
of its own, ``python -m leafbn.tuning.local_cluster --serve``). Every server listens on 127.0.0.1 only
(checked), with random ports, a temp folder and a token of its own; teardown kills exactly the
processes of the cluster's own session (``ray stop``, which would stop every developer's Ray, is
never used). Why not ``ray start``: see ``tests/test_cluster.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = [
    "LocalCluster", "study_command", "start_cli", "finish_cli", "run_cli", "session_pids", "kill_session",
]  # fmt: skip

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "study" / "run.py"


# --------------------------------------------------------------------------------------------
# A cluster of separate Ray nodes on this machine, loopback only.
# --------------------------------------------------------------------------------------------
def session_pids(sid: int) -> list[int]:
    """Every live (not zombie) process of session ``sid``: all that a ``start_new_session`` child started."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z" and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid``: ours alone, whatever else runs on the machine."""
    for _ in range(20):
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """``(local address, pid)`` of every listening TCP/UDP socket that one of ``pids`` holds."""
    out = subprocess.run(["ss", "-ltunpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids and len(parts) >= 5:
            found.append((parts[4], min(owners & pids)))
    return found


def _is_loopback(local: str) -> bool:
    host = local.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
    return host == "::1" or host.startswith("127.")


class LocalCluster:
    """A head and ``workers`` worker nodes on 127.0.0.1, 1 CPU each (a context manager).

    ``address`` is the head's ``HOST:PORT``; ``node_ids`` maps ``head``, ``w1``, ``w2`` … to Ray
    node ids; ``env()`` is the environment a driver needs to join (the cluster's token).
    """

    def __init__(
        self,
        workers: int = 1,
        cpus: int = 1,
        fast_failure_detection: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workers, self.cpus, self.fast = workers, cpus, fast_failure_detection
        self.extra_env = dict(extra_env or {})  # for the nodes: trial processes inherit their raylet's
        # Short, private folder: Ray's unix socket paths must stay under ~107 characters.
        self.root = Path(tempfile.mkdtemp(prefix="lbc-", dir="/tmp"))
        self.token = self.root / "token"
        self.proc: subprocess.Popen | None = None
        self.address = ""
        self.node_ids: dict[str, str] = {}
        self._lines: queue.Queue[str] = queue.Queue()

    # -- the environment -----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            RAY_USAGE_STATS_ENABLED="0",
            RAY_AUTH_MODE="token",  # Ray 2.60 needs it set to join an explicit address with a token
            RAY_AUTH_TOKEN_PATH=str(self.token),  # this cluster's own token, not ~/.ray/auth_token
            PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        )
        env.update(self.extra_env)
        return env

    # -- start and stop --------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = 120.0) -> None:
        self.token.write_text(secrets.token_hex(32))
        self.token.chmod(0o600)
        env = self.env()
        if self.fast:  # the GCS declares a silent raylet dead after ~3-4 s instead of ~30 s
            env.update(RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="1000",
                       RAY_health_check_failure_threshold="3")  # fmt: skip
        self.log = self.root / "cluster.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leafbn.tuning.local_cluster", "--serve", str(self.root),
             str(self.workers), str(self.cpus)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
            start_new_session=True,  # its session holds every process of the cluster (teardown)
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        info = json.loads(self._expect("{", timeout))
        self.address, self.node_ids = info["address"], info["nodes"]
        exposed = [
            (addr, pid)
            for addr, pid in _listening(set(session_pids(self.proc.pid)))
            if not _is_loopback(addr)
        ]
        if exposed:
            raise RuntimeError(f"cluster servers listening beyond loopback: {exposed}")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put("")  # EOF

    def _expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line and line.startswith(prefix):
                return line
            if line is None or line == "":
                log = self.log.read_text()[-3000:] if self.log.exists() else ""
                raise RuntimeError(f"cluster helper: no '{prefix}…' line (exit {self.proc.poll()}):\n{log}")

    def kill_node(self, name: str, timeout: float = 60.0) -> None:
        """Remove worker node ``name`` the hard way: SIGKILL of its raylet and agents."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"kill {name}\n")
        self.proc.stdin.flush()
        self._expect(f"killed {name}", timeout)

    def close(self) -> None:
        """Stop every node (gracefully, then SIGKILL whatever of its session is left) and clean up."""
        if self.proc is not None:
            try:
                if self.proc.poll() is None:
                    self.proc.stdin.write("exit\n")
                    self.proc.stdin.flush()
                    self.proc.wait(timeout=30)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            kill_session(self.proc.pid)
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _serve(root: str, workers: int, cpus: int) -> None:
    """The helper process: start the nodes, print their ids, then obey ``kill NAME`` / ``exit``."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: loopback only
    from ray._common.network_utils import find_free_port

    # Cluster records its address in Ray's default temp folder whatever temp_dir says, and does
    # not create that folder: on a machine that never ran Ray before, it does not exist yet.
    from ray._private.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    os.makedirs(os.path.dirname(get_ray_address_file(None)), exist_ok=True)
    node = {"num_cpus": cpus, "node_ip_address": "127.0.0.1", "min_worker_port": 0, "max_worker_port": 0}
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        shutdown_at_exit=True,
        head_node_args=dict(node, include_dashboard=False, temp_dir=f"{root}/head",  # its own ports,
                            dashboard_port=find_free_port(),  # not 8265 (Ray still starts a job server)
                            dashboard_agent_listen_port=find_free_port()),  # not the fixed 52365
    )  # fmt: skip
    nodes = {"head": cluster.head_node}
    for i in range(1, workers + 1):
        nodes[f"w{i}"] = cluster.add_node(**node, temp_dir=f"{root}/w{i}")
    print(
        json.dumps({"address": cluster.address, "nodes": {k: n.node_id for k, n in nodes.items()}}),
        flush=True,
    )
    try:
        for line in sys.stdin:  # EOF (the test process died) stops the cluster too
            command = line.split()
            if command[:1] == ["kill"] and command[1] in nodes and command[1] != "head":
                cluster.remove_node(nodes.pop(command[1]), allow_graceful=False)
                print(f"killed {command[1]}", flush=True)
            elif command[:1] == ["exit"]:
                break
    finally:
        cluster.shutdown()


# --------------------------------------------------------------------------------------------
# The study's CLI against it.
# --------------------------------------------------------------------------------------------
def study_command(cluster: LocalCluster, out: Path, name: str, *args: str) -> list[str]:
    return [sys.executable, str(RUN), "--address", cluster.address, "--out", str(out), "--name", name, *args]


def start_cli(cluster: LocalCluster, out: Path, name: str, *args: str) -> subprocess.Popen:
    """``python study/run.py --address HOST:PORT --out OUT --name NAME ARGS`` in its own session."""
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        study_command(cluster, out, name, *args), cwd=REPO, env=cluster.env(),
        stdout=(out / f"{name}.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def finish_cli(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for a study started by :func:`start_cli`; its exit status and log (killed on timeout)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        kill_session(proc.pid)
    log_file = (
        Path(proc.args[proc.args.index("--out") + 1]) / f"{proc.args[proc.args.index('--name') + 1]}.log"
    )
    log = log_file.read_text() if log_file.exists() else ""
    return proc.wait(), log  # -9 when it was killed here


def run_cli(cluster: LocalCluster, out: Path, name: str, *args: str, timeout: float = 300) -> tuple[int, str]:
    return finish_cli(start_cli(cluster, out, name, *args), timeout)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"usage: {sys.argv[0]} --serve ROOT WORKERS CPUS  (the cluster helper of the tests)")
