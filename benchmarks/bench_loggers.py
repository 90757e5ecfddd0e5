"""Benchmark: what each of Ray Tune's standard loggers (``--log``) adds to a study.

Run from the repository root (mlflow must be installed for its row: ``pip install 'leafbn[mlflow]'``)::

    python benchmarks/bench_loggers.py [--lr 0.001,0.01,0.1,1,10] [--seeds 2] [--epochs 100] [--repeat 2]

Each measurement runs the real CLI, ``python study/run.py`` with the grid ``--lr`` × BN on/off ×
``--seeds`` (20 trials by default) on a local Ray instance of 2 CPUs, once with no logger and once
with each of ``--log tensorboard``, ``csv`` and ``mlflow`` (a logger whose package is missing is
skipped and said so). The settings alternate ``--repeat`` times. It prints (pandas ``to_markdown``)
per setting the median of the study's own ``wall_time_s`` (``config.json``: Ray session and
``Tuner.fit``), the median per trial, and the ratio to no logger measured in the same run.
The XLA cache is warmed by one unmeasured run first, so compiling does not decide the order.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"none": None, "tensorboard": "tensorboardX", "csv": None, "mlflow": "mlflow"}


def run(out: Path, name: str, args: list[str], log: str) -> float:
    """One study; its wall_time_s from config.json."""
    extra = [] if log == "none" else ["--log", log]
    done = subprocess.run(
        [sys.executable, str(REPO / "study" / "run.py"), *args, *extra, "--out", str(out), "--name", name],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        sys.exit(f"bench_loggers: {log}: the study failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(json.loads((out / name / "config.json").read_text())["run"]["wall_time_s"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lr", default="0.001,0.01,0.1,1,10")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    study = ["--lr", args.lr, "--seeds", str(args.seeds), "--epochs", str(args.epochs), "--num-cpus", "2"]
    trials = len(args.lr.split(",")) * 2 * args.seeds
    settings = [s for s, module in SETTINGS.items() if module is None or importlib.util.find_spec(module)]
    for skipped in sorted(set(SETTINGS) - set(settings)):
        print(f"skipped --log {skipped}: {SETTINGS[skipped]} is not installed")
    seconds: dict[str, list[float]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run(out, "warm", study, "none")  # fills the XLA cache
        for r in range(args.repeat):
            for setting in settings:
                seconds[setting].append(run(out, f"{setting}-{r}", study, setting))
    base = statistics.median(seconds["none"])
    rows = [
        {
            "--log": setting,
            "study_s (median)": statistics.median(values),
            "runs": ", ".join(f"{v:.1f}" for v in values),
            "per trial s": statistics.median(values) / trials,
            "vs none": statistics.median(values) / base,
        }
        for setting, values in seconds.items()
    ]
    print(
        f"# --log cost: {trials} trials x {args.epochs} epochs, 2 CPUs, {os.cpu_count()} cores, "
        f"{args.repeat} repeats"
    )
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
