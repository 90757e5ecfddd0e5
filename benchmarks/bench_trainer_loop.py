"""Benchmark the trainer as a unit of runs uses it: many short runs through one process's programs.

Run from the repository root::

    python benchmarks/bench_trainer_loop.py [--lrs 4] [--seeds 3] [--epochs 1] [--shapes 8] [--cache 2]
                                            [--baseline DIR]

Two measurements, each in a fresh Python process (single-threaded TensorFlow, the embedded data):

1. the loop: the seed network, BN off and on; a first run (it traces and compiles, or loads from
   XLA's persistent cache), then ``--lrs`` learning rates × two momenta (BN momentum 0.9 and 0.99
   with BN on, SGD momentum 0.9 and 0.5 with BN off) × ``--seeds`` seeds, one :func:`train` call
   each. Prints the ms per run of the loop, the programs traced before and after it (a recompile per
   setting shows as more traces), and, where the code has :mod:`leafbn.train.programs`, the ms of the
   compiled program's call alone (the rest is the per-run overhead: reset, orders, results);
2. the cycle: ``--shapes`` architectures (depth 1, BN alternating, widths 16, 17, ...) trained one
   run each, twice round, with ``LEAFBN_PROGRAM_CACHE=--cache`` and again with a cache that holds
   every shape: peak and final RSS, the seconds per run of the cycle, and one full ``gc.collect()``
   at the end (what keeping programs unfrozen costs).

``--baseline DIR`` runs both again with the leafbn package of DIR (e.g. an older checkout's
``git archive``) in the same run, for the ratios. Other work on the machine skews timings: the
1-minute load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK = "BENCH-RESULT "


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _split():
    from leafbn.data import loaders as leafdata
    from leafbn.data import splits as leafsplits

    return leafsplits.split(leafdata.load_embedded(), val_fraction=0.2, split_seed=0)


def child_loop(lrs: int, seeds: int, epochs: int) -> dict:
    """Mode 1 (in its own process): ms per run of the loop, traces before/after, raw program ms."""
    import numpy as np

    from leafbn.train import tracing_counts, train
    from leafbn.train.model import ModelSpec

    split = _split()
    data = (split.x_train, split.y_train, split.x_val, split.y_val)
    out: dict = {}
    for bn in (False, True):
        spec = ModelSpec(n_classes=int(split.y_train.max()) + 1, bn=bn)
        start = time.perf_counter()
        train(spec, *data, lr=0.01, seed=0, epochs=epochs)
        first = time.perf_counter() - start
        traces = sum(tracing_counts())
        rates = np.geomspace(0.1, 1e-4, lrs)
        grid = [(lr, m, s) for lr in rates for m in (0.9, 0.99 if bn else 0.5) for s in range(1, seeds + 1)]
        start = time.perf_counter()
        for lr, m, s in grid:
            settings = {"momentum": 0.9} if bn else {"momentum": m}
            train(ModelSpec(n_classes=spec.n_classes, bn=bn, bn_momentum=m if bn else 0.99), *data,
                  lr=float(lr), seed=s, epochs=epochs, **settings)  # fmt: skip
        per_run = (time.perf_counter() - start) / len(grid)
        out[f"bn={bn}"] = {
            "first_s": first, "ms_per_run": 1e3 * per_run, "runs": len(grid), "traces_before": traces,
            "traces_after": sum(tracing_counts()), "raw_ms": _raw_ms(spec, data, epochs),
        }  # fmt: skip
    return out


def _raw_ms(spec, data, epochs: int) -> float | None:
    """The compiled program's call alone, ms (None for code without leafbn.train.programs)."""
    try:
        from leafbn.train import programs
    except ImportError:
        return None
    import numpy as np
    import tensorflow as tf

    key = programs.program_key(spec, 1, 10, False, len(data[0]), len(data[2]), epochs)
    program = programs.program_for(key)
    x, y, xv, yv = (tf.constant(v) for v in data)
    orders = tf.constant(np.tile(np.arange(len(data[0]), dtype=np.int32), (key.rows, 1, 1)))
    args = (x, y, orders, tf.constant(0), tf.constant(epochs), tf.constant([True]), xv, yv)
    program.epochs(*args)[0].numpy()
    start = time.perf_counter()
    for _ in range(10):
        program.epochs(*args)[0].numpy()
    return 1e3 * (time.perf_counter() - start) / 10


def child_cycle(shapes: int, epochs: int) -> dict:
    """Mode 2 (in its own process): RSS and time while cycling through ``shapes`` shapes twice."""
    import gc
    import resource

    from leafbn.train import train
    from leafbn.train.model import ModelSpec

    split = _split()
    data = (split.x_train, split.y_train, split.x_val, split.y_val)
    n_classes = int(split.y_train.max()) + 1
    rss, start = [], time.perf_counter()
    for round_ in range(2):
        for k in range(shapes):
            spec = ModelSpec(n_classes=n_classes, depth=1, width=16 + k, bn=k % 2 == 1)
            train(spec, *data, lr=0.01, seed=round_, epochs=epochs)
            rss.append(_rss_mb())
    seconds = (time.perf_counter() - start) / (2 * shapes)
    start = time.perf_counter()
    gc.collect()
    collect = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_run": seconds, "rss_first_mb": rss[0], "rss_round1_mb": rss[shapes - 1],
            "rss_final_mb": rss[-1], "peak_mb": peak, "gc_collect_ms": 1e3 * collect,
            "gc_objects": len(gc.get_objects())}  # fmt: skip


def run_child(mode: str, args: argparse.Namespace, code: Path, cache: int | None = None) -> dict:
    env = os.environ | {"PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if cache is not None:
        env["LEAFBN_PROGRAM_CACHE"] = str(cache)
    command = [sys.executable, __file__, "--child", mode, "--lrs", str(args.lrs), "--seeds", str(args.seeds),
               "--epochs", str(args.epochs), "--shapes", str(args.shapes)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"child {mode} ({code}) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lrs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--shapes", type=int, default=8, help="0: the loop only")
    parser.add_argument("--cache", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="a folder holding another version's leafbn package")
    parser.add_argument("--child", choices=["loop", "cycle"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from leafbn.train import single_thread

        single_thread()
        result = child_loop(args.lrs, args.seeds, args.epochs) if args.child == "loop" else (
            child_cycle(args.shapes, args.epochs))  # fmt: skip
        print(MARK + json.dumps(result))
        return
    codes = {"this checkout": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    print(f"load average {os.getloadavg()[0]:.2f}; {args.lrs} lrs x 2 momenta x {args.seeds} seeds, "
          f"{args.epochs} epoch(s), seed network")  # fmt: skip
    print("| code | BN | first run s | ms per run | raw program ms | traces before → after |")
    print("|---|---|---|---|---|---|")
    for name, code in codes.items():
        for bn, row in run_child("loop", args, code).items():
            raw = "–" if row["raw_ms"] is None else f"{row['raw_ms']:.1f}"
            print(f"| {name} | {bn} | {row['first_s']:.2f} | {row['ms_per_run']:.1f} | {raw} | "
                  f"{row['traces_before']} → {row['traces_after']} |")  # fmt: skip
    if args.shapes == 0:
        return
    print(f"\ncycling {args.shapes} shapes twice (depth 1, widths 16..{15 + args.shapes}, BN alternating)")
    print("| code | cache | s per run | RSS MB: 1st run | round 1 | final | peak | gc.collect ms | objects |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, code in codes.items():
        # The cache that holds every shape first: it fills XLA's persistent cache for the second.
        for cache in (2 * args.shapes, args.cache):
            r = run_child("cycle", args, code, cache)
            cells = [r["s_per_run"], r["rss_first_mb"], r["rss_round1_mb"], r["rss_final_mb"], r["peak_mb"]]
            print(f"| {name} | {cache} | {cells[0]:.2f} | " + " | ".join(f"{c:.0f}" for c in cells[1:])
                  + f" | {r['gc_collect_ms']:.0f} | {r['gc_objects']} |")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
