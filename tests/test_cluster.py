"""The study on a real multi-node Ray cluster, on this machine, through the real CLI.

The test starts its own cluster: a head and worker nodes, 1 CPU each, every node with its own
raylet, object store, agents and temp folder (``ray.cluster_utils.Cluster`` run in a helper process
of its own, ``python tests/test_cluster.py --serve``), then runs ``python study/run.py --address
127.0.0.1:PORT ...`` in a subprocess and reads ``trials.csv``. The driver joins that loopback
address in Ray's single-machine mode (``leafbn.session.ray_session``); without it Ray dials the
machine's network address instead, where nothing listens, and the study hangs for minutes.

On one cluster, two studies in turn:

* ``study_spreads_over_nodes``: the trials ran on more than one node, each exactly once.
* ``study_survives_a_lost_node``: a worker node is killed (SIGKILL of its raylet and agents;
  its trial processes die with the raylet) while one of its trials runs; Ray Tune retries that trial
  on the surviving node (``FailureConfig(max_failures=3)``), and the study still finishes with every
  trial once, the lost one with ``retries >= 1`` on the head node, and no error rows.

Safety on a shared machine: every server of the cluster listens on 127.0.0.1 only (checked),
with random ports and a temp folder of its own; the cluster uses Ray's token authentication with a
token of its own. Teardown kills exactly the processes of the cluster's own session (``ray stop``,
which would stop every developer's Ray, is never used), also when a test fails.

Why not ``ray start``: on Linux ``ray start --address 127.0.0.1:PORT`` rewrites the address to the
machine's network address (where a loopback-only head does not listen), and with Ray's
single-machine switch on it refuses to start a worker node at all. ``Cluster`` starts the nodes
directly, with the switch on, as a local study does (``leafbn.session._loopback_only``).

``LocalCluster`` and ``run_cli`` are also used by ``benchmarks/bench_scaling.py``.
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

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "study" / "run.py"


# --------------------------------------------------------------------------------------------
# A cluster of separate Ray nodes on this machine, loopback only.
# --------------------------------------------------------------------------------------------
def _session_pids(sid: int) -> list[int]:
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


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid``: ours alone, whatever else runs on the machine."""
    for _ in range(20):
        pids = _session_pids(sid)
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
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(self.root), str(self.workers),
             str(self.cpus)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
            start_new_session=True,  # its session holds every process of the cluster (teardown)
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        info = json.loads(self._expect("{", timeout))
        self.address, self.node_ids = info["address"], info["nodes"]
        exposed = [
            (addr, pid)
            for addr, pid in _listening(set(_session_pids(self.proc.pid)))
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
            _kill_session(self.proc.pid)
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
        _kill_session(proc.pid)
    log_file = (
        Path(proc.args[proc.args.index("--out") + 1]) / f"{proc.args[proc.args.index('--name') + 1]}.log"
    )
    log = log_file.read_text() if log_file.exists() else ""
    return proc.wait(), log  # -9 when it was killed here


def run_cli(cluster: LocalCluster, out: Path, name: str, *args: str, timeout: float = 300) -> tuple[int, str]:
    return finish_cli(start_cli(cluster, out, name, *args), timeout)


def _tail(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if not line.startswith("[20"))[-3000:]


def _read_study(path: Path):
    import pandas as pd

    trials = pd.read_csv(path / "trials.csv", dtype={"trial_id": str, "node_id": str, "error": str})
    curves = pd.read_parquet(path / "curves.parquet")
    meta = json.loads((path / "config.json").read_text())
    return trials, curves, meta


def _check_every_trial_once(trials, curves, meta, expected: int, epochs: int) -> None:
    assert len(trials) == expected and trials["trial_id"].is_unique, trials[["trial_id", "node_id"]]
    assert (trials["error"].fillna("") == "").all(), trials[["trial_id", "error"]]
    assert (trials["epochs_run"] == epochs).all(), trials[["trial_id", "epochs_run"]]
    # curves.csv keeps each trial's last attempt only: epochs 1..N once.
    for trial_id, rows in curves.groupby("trial_id"):
        assert sorted(rows["epoch"]) == list(range(1, epochs + 1)), trial_id
    assert meta["run"]["complete"] and meta["run"]["trials_finished"] == expected, meta["run"]


# --------------------------------------------------------------------------------------------
# The tests.
# --------------------------------------------------------------------------------------------
def test_study_spreads_over_nodes_then_survives_a_lost_node(tmp_path: Path) -> None:
    # One cluster for both (starting one costs seconds): the lost node goes last.
    with LocalCluster(workers=1) as cluster:
        study_spreads_over_nodes(cluster, tmp_path)
        study_survives_a_lost_node(cluster, tmp_path)


def study_spreads_over_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    epochs = 3
    rc, log = run_cli(
        cluster, tmp_path, "spread", "--lr", "0.01,0.1", "--bn", "on,off", "--seeds", "2",
        "--seeds-per-trial", "2", "--epochs", str(epochs),
    )  # fmt: skip
    assert rc == 0, _tail(log)
    trials, curves, meta = _read_study(tmp_path / "spread")
    _check_every_trial_once(trials, curves, meta, expected=8, epochs=epochs)  # 4 Ray trials of 2 seeds
    assert meta["run"]["seeds_per_trial"] == 2 and trials["ray_trial"].nunique() == 4
    assert meta["run"]["ray_nodes"] == 2 and meta["run"]["ray_cpus"] == 2, meta["run"]
    used = set(trials["node_id"])
    assert used <= set(cluster.node_ids.values()), (used, cluster.node_ids)
    assert used == set(cluster.node_ids.values()), (
        f"all trials on one node: {trials[['trial_id', 'node_id']]}"
    )
    assert (trials["retries"] == 0).all()


def _trial_running_on(cluster: LocalCluster, node: str) -> str | None:
    """The trial a trial process of node ``node`` is training right now, or None.

    Live and exact: Ray Tune runs each trial in its own working directory under the node's temp
    folder (``.../working_dirs/<trial_id>``), and the process title is ``ray::ImplicitFunc.train``
    while it trains. (``result.json`` is written by the driver, buffered: not a live signal.)
    """
    assert cluster.proc is not None
    for pid in _session_pids(cluster.proc.pid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, UnicodeDecodeError):
            continue
        if (
            title == "ray::ImplicitFunc.train"
            and cwd.is_relative_to(cluster.root / node)
            and cwd.parent.name == "working_dirs"
        ):
            return cwd.name
    return None


def _reports_by_node(experiment: Path, trial_id: str) -> list[tuple[str, int]]:
    """``(node_id, epoch)`` of every report of a trial, every attempt (its ``result.json``)."""
    rows = []
    for line in (experiment / trial_id / "result.json").read_text().splitlines():
        report = json.loads(line)
        rows.append((report["node_id"], int(report["epoch"])))
    return rows


def study_survives_a_lost_node(cluster: LocalCluster, tmp_path: Path) -> None:
    epochs = 150  # several seconds a trial of 2 seeds: still training when its node goes
    head, worker = cluster.node_ids["head"], cluster.node_ids["w1"]
    proc = start_cli(
        cluster, tmp_path, "fault", "--lr", "0.01,0.1,1", "--bn", "on", "--seeds", "2",
        "--seeds-per-trial", "2", "--epochs", str(epochs), "--report-every", "10",
    )  # fmt: skip
    try:
        deadline, since, lost = time.monotonic() + 150, None, None
        while proc.poll() is None and time.monotonic() < deadline:
            running = _trial_running_on(cluster, "w1")
            if running is None or running != lost:
                lost, since = running, time.monotonic()
            elif time.monotonic() - since > 1.0:  # past its start (loading, compiling or training): kill now
                break
            time.sleep(0.2)
        assert lost and _trial_running_on(cluster, "w1") == lost, "no trial ran on the worker node"
        cluster.kill_node("w1")
        rc, log = finish_cli(proc, timeout=240)
    finally:
        _kill_session(proc.pid)
    assert rc == 0, _tail(log)
    trials, curves, meta = _read_study(tmp_path / "fault")
    _check_every_trial_once(trials, curves, meta, expected=6, epochs=epochs)  # 3 Ray trials of 2 seeds
    rows = trials[trials["ray_trial"] == lost]  # both seeds of the lost trial
    assert len(rows) == 2 and (rows["retries"] >= 1).all() and (rows["node_id"] == head).all(), (
        lost, trials[["trial_id", "node_id", "retries"]],
    )  # fmt: skip
    # Its reports: whatever it sent from the lost node stops short, then a full run on the head.
    reports = _reports_by_node(tmp_path / "fault", lost)
    assert all(epoch < epochs for node, epoch in reports if node == worker), reports
    assert {node for node, _ in reports} <= {head, worker} and reports[-1] == (head, epochs), reports
    # Every other trial ran once, without a failure, on a node that stayed (or finished before).
    others = trials[trials["ray_trial"] != lost]
    assert (others["retries"] == 0).all() and others["node_id"].isin([head, worker]).all(), others
    assert not (meta["run"].get("trial_status") or {}).get("ERROR"), meta["run"]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"usage: {sys.argv[0]} --serve ROOT WORKERS CPUS  (the cluster helper of the tests)")
