"""The study on a real multi-node Ray cluster, on this machine, through the real CLI.

The test starts its own cluster: a head and worker nodes, 1 CPU each, every node with its own
raylet, object store, agents and temp folder (``ray.cluster_utils.Cluster`` run in a helper process
of its own, ``python tests/test_cluster.py --serve``), then runs ``python study/run.py --address
127.0.0.1:PORT ...`` in a subprocess and reads ``trials.csv``. The driver joins that loopback
address in Ray's single-machine mode (``leafbn.tuning.session.ray_session``); without it Ray dials the
machine's network address instead, where nothing listens, and the study hangs for minutes.

On one cluster, two studies in turn:

* ``study_spreads_over_nodes``: the trials ran on more than one node, each exactly once.
* ``study_survives_a_lost_node``: a worker node is killed (SIGKILL of its raylet and agents;
  its trial processes die with the raylet) while one of its units trains; Ray Tune retries that unit
  on the surviving node (``FailureConfig(max_failures=3)``), and the study still finishes with every
  run once, the lost unit's runs with ``retries >= 1`` on the head node, and no error rows.

Safety on a shared machine: every server of the cluster listens on 127.0.0.1 only (checked),
with random ports and a temp folder of its own; the cluster uses Ray's token authentication with a
token of its own. Teardown kills exactly the processes of the cluster's own session (``ray stop``,
which would stop every developer's Ray, is never used), also when a test fails.

Why not ``ray start``: on Linux ``ray start --address 127.0.0.1:PORT`` rewrites the address to the
machine's network address (where a loopback-only head does not listen), and with Ray's
single-machine switch on it refuses to start a worker node at all. ``Cluster`` starts the nodes
directly, with the switch on, as a local study does (``leafbn.tuning.session._loopback_only``).

``LocalCluster`` and the CLI helpers live in :mod:`leafbn.tuning.local_cluster` (the benchmarks use them too).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from leafbn.tuning.local_cluster import (
    LocalCluster,
    finish_cli,
    kill_session,
    run_cli,
    session_pids,
    start_cli,
)

pytestmark = pytest.mark.cluster


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
    _check_every_trial_once(trials, curves, meta, expected=8, epochs=epochs)  # in units, a Ray trial each
    assert meta["run"]["units_expected"] == trials["ray_trial"].nunique() >= 2
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
    for pid in session_pids(cluster.proc.pid):
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
    """``(node_id, runs_done)`` of every report of a unit's trial, every attempt (its ``result.json``)."""
    rows = []
    for line in (experiment / "ray" / trial_id / "result.json").read_text().splitlines():
        report = json.loads(line)
        rows.append((report["node_id"], int(report["runs_done"])))
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
        kill_session(proc.pid)
    assert rc == 0, _tail(log)
    trials, curves, meta = _read_study(tmp_path / "fault")
    _check_every_trial_once(trials, curves, meta, expected=6, epochs=epochs)  # in units, a Ray trial each
    rows = trials[trials["ray_trial"] == lost]  # the runs of the lost unit
    assert len(rows) >= 1 and (rows["retries"] >= 1).all() and (rows["node_id"] == head).all(), (
        lost, trials[["trial_id", "node_id", "retries"]],
    )  # fmt: skip
    # Its reports: whatever it sent from the lost node stops short, then the whole unit on the head.
    reports = _reports_by_node(tmp_path / "fault", lost)
    assert all(done < len(rows) for node, done in reports if node == worker), reports
    assert {node for node, _ in reports} <= {head, worker} and reports[-1] == (head, len(rows)), reports
    # Every other trial ran once, without a failure, on a node that stayed (or finished before).
    others = trials[trials["ray_trial"] != lost]
    assert (others["retries"] == 0).all() and others["node_id"].isin([head, worker]).all(), others
    assert not (meta["run"].get("trial_status") or {}).get("ERROR"), meta["run"]
