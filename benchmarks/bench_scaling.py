"""Benchmark: the same study on a 1-node and on a 2-node Ray cluster (1 CPU per node).

Run from the repository root::

    python benchmarks/bench_scaling.py [--epochs 30] [--seeds 1] [--repeat 1]

Each measurement starts a fresh cluster on this machine (loopback only, its own temp folder and
token; :class:`leafbn.tuning.local_cluster.LocalCluster`): a head alone, or a head and one worker
node, 1 CPU each. It then runs the real CLI against it, ``python study/run.py --address
127.0.0.1:PORT`` with the seed grid (7 learning rates × BN off/on × ``--seeds``, so 14 trials by
default) and ``--epochs`` (30 by default), and prints (pandas ``to_markdown``):

* ``command_s``: wall time of the whole command (Python start, imports, joining, the study, tables);
* ``study_s``: the study's own ``wall_time_s`` from ``config.json`` (Ray session and ``Tuner.fit``);
* ``trainer_s``: the trainers' own time summed over the trials (``time_s``, compiling included):
  the part of the work that more nodes share out;
* the trials each node ran, and the 1-minute load average before and after;
* the ratio 1-node / 2-node of both times (2.0 would be perfect scaling).

XLA's persistent compilation cache is off for the trial processes (``LEAFBN_XLA_CACHE=off`` on the
nodes), so both runs compile alike: every worker process compiles each architecture it meets.
The cluster start itself is not timed. With ``--repeat N`` the two sizes alternate N times.
Both nodes share this machine's cores (and whatever else runs on it): on a 2-core machine the
2-node figure is a lower bound of what two real machines give.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout, too

from leafbn.tuning.local_cluster import LocalCluster, run_cli  # noqa: E402


def measure(workers: int, args: argparse.Namespace, out: Path, name: str) -> dict:
    """One study on a fresh cluster of ``1 + workers`` nodes; its timings and where trials ran."""
    import pandas as pd

    with LocalCluster(
        workers=workers, fast_failure_detection=False, extra_env={"LEAFBN_XLA_CACHE": "off"}
    ) as cluster:
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        rc, log = run_cli(
            cluster, out, name, "--lr", args.lr, "--bn", "on,off", "--seeds", str(args.seeds),
            "--epochs", str(args.epochs), timeout=args.timeout,
        )  # fmt: skip
        command_s = time.perf_counter() - start
        load_after = os.getloadavg()[0]
        if rc != 0:
            tail = "\n".join(line for line in log.splitlines() if not line.startswith("[20"))[-2000:]
            raise SystemExit(f"bench_scaling: the {1 + workers}-node study failed (exit {rc}):\n{tail}")
        trials = pd.read_csv(out / name / "trials.csv", dtype={"node_id": str})
        run = json.loads((out / name / "config.json").read_text())["run"]
        names = {node_id: node for node, node_id in cluster.node_ids.items()}
        per_node = trials["node_id"].map(names).value_counts().sort_index()
    return {
        "nodes": 1 + workers,
        "CPUs": run["ray_cpus"],
        "trials": len(trials),
        "epochs": args.epochs,
        "command_s": command_s,
        "study_s": run["wall_time_s"],
        "trainer_s": trials["time_s"].sum(),
        "trials per node": ", ".join(f"{node} {count}" for node, count in per_node.items()),
        "load before": load_before,
        "load after": load_after,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_scaling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=30, help="epochs per trial (default: 30)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per configuration (default: 1: 14 trials)")
    p.add_argument(
        "--lr", default="0.001,0.01,0.1,1,10,100,1000", help="learning rates (default: the seed's seven)"
    )
    p.add_argument("--repeat", type=int, default=1, help="alternate the two cluster sizes this many times")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per study")
    args = p.parse_args(argv)

    import pandas as pd

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        for i in range(args.repeat):
            for workers in (0, 1):
                row = measure(workers, args, Path(tmp), f"n{1 + workers}-{i}")
                print(f"{row['nodes']} node(s): {row['command_s']:.1f} s", file=sys.stderr, flush=True)
                rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".1f"))
    mean = table.groupby("nodes")[["command_s", "study_s"]].mean()
    ratio = pd.DataFrame(
        [{"": "1-node / 2-node", **{c: mean.loc[1, c] / mean.loc[2, c] for c in ("command_s", "study_s")}}]
    )
    print()
    print(ratio.to_markdown(index=False, floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
