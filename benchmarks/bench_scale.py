"""Benchmark: grid studies from 240 to 4,000 runs (optionally 40,000 and the full space), in one go.

Run from the repository root::

    python benchmarks/bench_scale.py [--data ../shared/data/leaf/kaggle/train.csv] [--huge] [--full]
    python benchmarks/bench_scale.py --code ../main --seeds 6,100   # another checkout: a baseline

Each study is the real CLI (``python study/run.py``) on a local Ray instance with ``--epochs 1``:
20 learning rates (10^-3 … 10^3) × BN off/on × N seeds, for N = 6 (240 runs), 25 (1,000) and 100
(4,000); ``--huge`` adds N = 1,000 (40,000 runs), ``--full`` adds ``--space full --seeds 1``
(1,575 runs); ``--kill-half`` adds the largest of them SIGKILLed at half its units, then resumed
(:func:`kill_at_half`). For each it prints (a markdown table):

* ``wall_s``: the whole command (Python start, Ray, the study, the tables); ``runs_per_s``;
* ``first_unit_s``: from the command's start to the first unit's record (``units/u*.json``);
* ``driver_gb`` / ``worker_gb`` / ``trial_gb``: peak resident memory of the driver, of the largest
  Ray worker process (a trainer, as a rule), and of the largest unit trial's own process (sampled
  every 0.2 s with psutil);
* ``folder_mb``: the study folder at the end (``ray_mb``: Ray Tune's part of it, ``units_mb``: the
  record of finished units);
* ``units``: Ray trials, from ``config.json``; from the record of units: ``unit_extra_s`` (median
  time of a unit in its worker outside the trainer), ``run_ms`` (median trainer time per run),
  ``record_kb`` (mean size of a unit's record), ``trainers`` (trainer processes the study started).

and the ratio of the 4,000-run study's wall time to the 240-run one's (the goal: at most 3×).
XLA's persistent compilation cache (``LEAFBN_XLA_CACHE``) is used as a study uses it, so the first
study may compile what the later ones find cached.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
LRS = ",".join(f"{10 ** (-3 + 6 * i / 19):.4g}" for i in range(20))


def folder_mb(path: Path) -> float:
    """Size of every file under ``path`` in MB (0 when it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6 if path.exists() else 0.0


def _sample(proc: psutil.Process, peaks: dict[str, float]) -> None:
    """Update the driver's and the largest worker's peak RSS (GB) from one look at the processes."""
    try:
        peaks["driver"] = max(peaks["driver"], proc.memory_info().rss / 1e9)
        for child in proc.children(recursive=True):
            try:
                name = child.cmdline()[0] if child.cmdline()[:1] else ""
                if name.startswith("ray::"):
                    rss = child.memory_info().rss / 1e9
                    peaks["worker"] = max(peaks["worker"], rss)
                    if name.startswith("ray::ImplicitFunc"):  # a Ray Tune trial's own process
                        peaks["trial"] = max(peaks["trial"], rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    except psutil.NoSuchProcess:
        pass


def unit_figures(path: Path) -> dict:
    """From the study's record: the median per-unit time outside the trainer inside the worker
    (``unit_extra_s``: the record's two writes, the report), the median trainer time per run
    (``run_ms``) and the mean size of a unit's record (``record_kb``)."""
    import numpy as np

    extra, per_run, sizes, trainers = [], [], [], set()
    if not (path / "units").is_dir():  # a study of --code from before units: a Ray trial per run
        return {"unit_extra_s": None, "run_ms": None, "record_kb": None, "trainers": None}
    for record in sorted((path / "units").glob("u*.json")):
        unit = json.loads(record.read_text())
        times = [row["time_s"] for row in unit["rows"]]
        extra.append(unit["finished"] - unit["started"] - sum(times))
        per_run += times
        sizes.append(record.stat().st_size)
        trainers.update(unit.get("trainer_pids", []))
    return {
        "unit_extra_s": round(float(np.median(extra)), 3),
        "run_ms": round(1000 * float(np.median(per_run)), 1),
        "record_kb": round(float(np.mean(sizes)) / 1e3, 1),
        "trainers": len(trainers) or None,
    }  # fmt: skip


def seed_grid(seeds: int) -> list[str]:
    """The flags of a benchmark grid: 20 learning rates × BN off/on × ``seeds`` seeds."""
    return ["--lr", LRS, "--bn", "on,off", "--seeds", str(seeds)]


def study_command(name: str, args: list[str], out: Path, data: str, code: Path) -> tuple[list[str], dict]:
    """The command line (one-epoch runs, no budget) and environment of study ``name`` in ``out``
    with the checkout ``code``."""
    run_py = code / "study" / "run.py"
    budget = "--max-runs" if '"--max-runs"' in run_py.read_text() else "--max-trials"  # before units
    command = [sys.executable, str(run_py), "--data", data, "--epochs", "1", budget, "1000000",
               "--out", str(out), "--name", name, *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])}
    return command, env


def measure(name: str, args: list[str], out: Path, data: str, timeout: float, code: Path) -> dict:
    """Run one study with the checkout ``code``; its figures (see the module's docstring)."""
    command, env = study_command(name, args, out, data, code)
    start = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    watched, peaks, first = psutil.Process(proc.pid), {"driver": 0.0, "worker": 0.0, "trial": 0.0}, None
    path = out / name
    while proc.poll() is None:
        _sample(watched, peaks)
        if first is None and any((path / "units").glob("u*.json")):
            first = time.time() - start
        if time.time() - start > timeout:
            proc.kill()
        time.sleep(0.2)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_scale: {name} failed (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
    run = json.loads((path / "config.json").read_text())["run"]
    runs = int(run["trials_finished"])
    return {
        "study": name, "runs": runs, "units": run.get("units_expected"), "wall_s": round(wall, 1),
        "runs_per_s": round(runs / wall, 1), "first_unit_s": None if first is None else round(first, 1),
        "driver_gb": round(peaks["driver"], 2), "worker_gb": round(peaks["worker"], 2),
        "trial_gb": round(peaks["trial"], 2),
        "folder_mb": round(folder_mb(path), 2), "ray_mb": round(folder_mb(path / "ray"), 2),
        "units_mb": round(folder_mb(path / "units"), 2), **unit_figures(path),
    }  # fmt: skip


def kill_at_half(seeds: int, out: Path, data: str, timeout: float, code: Path) -> dict:
    """The study of ``seeds`` seeds SIGKILLed (its driver alone, as the OOM killer would) once half
    its units have finished, then ``--resume``d: rows in ``trials.csv``, runs there more than once,
    units finished before the kill whose record changed or that started again, and the seconds of
    each part."""
    import pandas as pd

    path = out / "killed"
    command, env = study_command("killed", seed_grid(seeds), out, data, code)
    start = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)  # fmt: skip
    units, done = None, []
    while proc.poll() is None and time.time() - start < timeout:
        if units is None and (path / "config.json").is_file():
            units = json.loads((path / "config.json").read_text()).get("run", {}).get("units_expected")
        done = sorted((path / "units").glob("u*.json")) if units else []
        if units and len(done) >= units / 2:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        raise SystemExit("bench_scale: the study ended before half its units finished: make it longer")
    proc.kill()
    proc.wait()
    killed = time.time() - start
    before = {f.name: f.read_bytes() for f in (path / "units").glob("u*.json")}
    time.sleep(5)  # the driver's watcher ends its Ray processes
    start = time.time()
    subprocess.run([*command, "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                   check=True, timeout=timeout)  # fmt: skip
    resumed = time.time() - start
    trials = pd.read_csv(path / "trials.csv")
    starts = pd.read_csv(path / "units" / "starts.log", sep="\t", names=["unit", "ray_trial", "time"])
    again = starts[starts["unit"].isin([int(f[1:7]) for f in before])].groupby("unit").size()
    changed = sum((path / "units" / f).read_bytes() != text for f, text in before.items())
    return {
        "study": f"{len(trials)} runs, SIGKILL then --resume", "units": units,
        "finished_at_kill": len(before), "kill_at_s": round(killed, 1), "resume_s": round(resumed, 1),
        "rows": len(trials), "runs_twice": int(trials.duplicated(["lr", "bn", "split", "seed"]).sum()),
        "finished_units_started_again": int((again > 1).sum()), "finished_records_changed": changed,
        "rows_with_epochs": int((trials["epochs_run"] > 0).sum()),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "leaf" / "kaggle" / "train.csv"))
    p.add_argument("--huge", action="store_true", help="add 40,000 runs (20 LRs x BN x 1,000 seeds)")
    p.add_argument("--full", action="store_true", help="add --space full --seeds 1 (1,575 runs)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per study")
    p.add_argument("--seeds", default="6,25,100", help="seeds per configuration of each study")
    p.add_argument("--code", type=Path, default=REPO, help="the checkout whose study/run.py runs")
    p.add_argument("--kill-half", action="store_true",
                   help="also SIGKILL the largest study at half its units, then --resume it")  # fmt: skip
    args = p.parse_args()
    seeds = [int(n) for n in args.seeds.split(",")]
    studies = [(f"seeds{n}", seed_grid(n)) for n in seeds]
    if args.huge:
        studies.append(("seeds1000", seed_grid(1000)))
    if args.full:
        studies.append(("full", ["--space", "full", "--seeds", "1"]))
    import pandas as pd

    out = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        rows = []
        for name, extra in studies:
            rows.append(measure(name, extra, out, args.data, args.timeout, args.code.resolve()))
            print(json.dumps(rows[-1]), flush=True)
        if args.kill_half:
            killed = kill_at_half(max(seeds), out, args.data, args.timeout, args.code.resolve())
            print(json.dumps(killed), flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    wall = table.set_index("runs")["wall_s"]
    if {240, 4000} <= set(wall.index):
        print(f"\n4000/240 wall-time ratio: {wall[4000] / wall[240]:.2f}x (goal <= 3x)")
    if args.kill_half:
        print("\n" + pd.DataFrame([killed]).to_markdown(index=False))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; code {args.code}")


if __name__ == "__main__":
    main()
