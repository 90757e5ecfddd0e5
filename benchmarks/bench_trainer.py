"""Benchmark the compiled-epoch trainer and the Ray Tune study against Keras ``model.fit``.

Run from the repository root::

    python benchmarks/bench_trainer.py [--quick] [--full] [--repeat N] [--data SPEC]

It prints tables (pandas ``to_markdown``) of measured figures, their ratios against a Keras
``model.fit`` baseline measured in the same run, and PASS/MISS against the project's targets.
Every single-trial figure comes from a FRESH Python process (this script's ``--child`` mode), with
single-threaded TensorFlow (:func:`leafbn.train.trainer.single_thread`), so tracing and XLA compiling are
counted honestly:

1. baseline: Keras ``model.fit`` of the seed network (100 epochs, batch 10, lr 0.01, validation
   data passed), BN off and on, XLA persistent cache off;
2. trainer :func:`leafbn.train.trainer.train_networks`, same settings: (a) "cold" = fresh process, empty
   XLA persistent cache; (b) "warm" = another fresh process with the cache (a) filled; (c)
   "reused" = a second trial (next seed) in the same process as (a), the compiled program reused:
   the per-trial cost inside a Ray worker; each for one network (the default study's trial) and,
   for comparison, for 5 seeds in one program (``--seeds-per-trial 5``; seconds per network);
3. the same model.fit and cold trainer pinned to one core (``os.sched_setaffinity``): without it,
   model.fit's input pipeline and XLA's two code-generation threads both use the second core;
4. the seed grid end to end: ``python study/run.py --seeds 1`` (14 trials), cold and warm cache;
5. with ``--full``, the default study (``--seeds 5``, 70 trials), cold and warm cache, and its
   wall time against one ``model.fit`` BN trial measured in the same run;
6. from each study's ``trials.csv``, the trainer's cost per trial as the study pays it, every
   worker's compiles included: Σ time_s ÷ Σ epochs_run per BN value, scaled to 100 epochs.

Every single-trial measurement runs ``--repeat`` times (default 3), each in its own fresh process
(a cold run with its own empty cache); the tables give the median and the range.

``--quick`` runs a reduced version only to check the script works (10 epochs; BN on only; a
2-trial grid, learning rates 0.01 and 1 with BN on, cold cache only); its figures are not
comparable with the targets. Other work on the machine skews timings:
the 1-minute load average is recorded at the start and end of every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK = "BENCH-RESULT "  # the child's one result line on stdout

# Targets (the full settings only).
TARGET_SPEEDUP = 7.0  # trainer vs model.fit, compile included
TARGET_SEED_GRID_S = 40.0  # 14 trials, wall
TARGET_FULL_GRID_S = 90.0  # 70 trials, wall
TARGET_RAY_OVERHEAD_S = 0.5  # per trial, in the default study (70 trials)
TARGET_FIRST_TRIAL = 10.0  # a first trial of the default study (one network), cold
TARGET_STUDY_RATIO, BAR_STUDY_RATIO = 1.5, 1.8  # default study wall ÷ one model.fit BN trial
STACKED = 5  # seeds side by side in one program, as `--seeds-per-trial 5` trains them (for comparison)


# ------------------------------------------------------------------------------------------------
# Child mode: one measurement in a fresh process.
# ------------------------------------------------------------------------------------------------
def _child(job: dict) -> dict:
    if job.get("cpu") is not None:  # before TensorFlow starts its threads
        os.sched_setaffinity(0, {job["cpu"]})
    t_proc = time.perf_counter()
    from leafbn.data import loaders as leafdata
    from leafbn.data import splits as leafsplits
    from leafbn.train.model import ModelSpec, build_model, build_optimizer
    from leafbn.train.trainer import single_thread, train_networks  # sets TF_XLA_FLAGS from LEAFBN_XLA_CACHE

    single_thread()  # before TensorFlow executes anything
    import keras
    import tensorflow as tf

    split = leafsplits.split(leafdata.load(job["data"]))
    n_classes = int(max(split.y_train.max(), split.y_val.max())) + 1
    spec = ModelSpec(n_features=split.x_train.shape[1], n_classes=n_classes, bn=job["bn"])
    out: dict = {"import_s": time.perf_counter() - t_proc, "n_train": len(split.x_train)}
    lr, seed, epochs, batch = job["lr"], job["seed"], job["epochs"], job["batch_size"]

    if job["mode"] in ("fit", "fit_xla"):
        t0 = time.perf_counter()
        keras.utils.set_random_seed(seed)  # fit's shuffling
        model = build_model(spec, seed)
        jit = {"jit_compile": True} if job["mode"] == "fit_xla" else {}  # "auto" resolves to False here
        model.compile(optimizer=build_optimizer(lr), loss=keras.losses.SparseCategoricalCrossentropy(), **jit)
        history = model.fit(
            split.x_train,
            split.y_train,
            batch_size=batch,
            epochs=epochs,
            validation_data=(split.x_val, split.y_val),
            shuffle=True,
            verbose=0,
        )
        out["time_s"] = time.perf_counter() - t0
        out["val_loss"] = float(history.history["val_loss"][-1])
        out["jit_compile"] = bool(model.jit_compile)
    else:  # trainer: a first trial (program built and compiled) and a second one (program reused)
        networks = int(job.get("networks", 1))  # seeds trained together in one program
        for key, first_seed in (("first", seed), ("second", seed + networks)):
            t0 = time.perf_counter()
            results = train_networks(
                spec,
                split.x_train,
                split.y_train,
                split.x_val,
                split.y_val,
                lr=lr,
                seeds=list(range(first_seed, first_seed + networks)),
                epochs=epochs,
                batch_size=batch,
            )
            out[f"{key}_s"] = (time.perf_counter() - t0) / networks  # per network
            result = results[0]
            out[f"{key}_val_loss"] = result.final.val_loss if result.final else float("nan")
            out[f"{key}_epochs"] = len(result.epochs)
    out["threads"] = [
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    ]
    return out


# ------------------------------------------------------------------------------------------------
# Parent: run children and commands, keep load averages.
# ------------------------------------------------------------------------------------------------
def _env(xla_cache: str) -> dict:
    env = dict(os.environ)
    env.pop("TF_XLA_FLAGS", None)  # only LEAFBN_XLA_CACHE decides the persistent cache
    env["LEAFBN_XLA_CACHE"] = xla_cache
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def _load1() -> float:
    return os.getloadavg()[0]


LOADS: list[tuple[str, tuple, tuple]] = []  # (measurement, loadavg at start, at end)


def _run(
    label: str, cmd: list[str], env: dict, log: Path, timeout: float = 3600
) -> tuple[float, str, tuple, tuple]:
    """Run ``cmd``; returns (wall seconds, stdout, loadavg at start, at end). Exits on failure."""
    start_load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    end_load = os.getloadavg()
    LOADS.append((label, start_load, end_load))
    log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        sys.exit(f"bench_trainer: {label} failed (exit {proc.returncode}); log {log}\n{tail}")
    print(f"  {label}: {wall:.1f} s (load {start_load[0]:.2f} → {end_load[0]:.2f})", flush=True)
    return wall, proc.stdout, start_load, end_load


def _child_run(label: str, job: dict, xla_cache: str, tmp: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    _, stdout, l0, l1 = _run(label, cmd, _env(xla_cache), tmp / f"{label.replace(' ', '_')}.log")
    line = next(x for x in stdout.splitlines() if x.startswith(MARK))
    return {**json.loads(line[len(MARK) :]), "load": (l0[0], l1[0])}


def _is_true(column: pd.Series) -> pd.Series:  # noqa: F821 (pandas is imported where used)
    """A trials.csv boolean column as bools, whether pandas read it as bool or as text."""
    return column.astype(str).str.lower().eq("true")


def _grid_run(label: str, args: list[str], xla_cache: str, tmp: Path, name: str) -> dict:
    out = tmp / "results"
    cmd = [sys.executable, "study/run.py", *args, "--out", str(out), "--name", name]
    wall, _, l0, l1 = _run(label, cmd, _env(xla_cache), tmp / f"{name}.log")
    import pandas as pd

    trials = pd.read_csv(out / name / "trials.csv")
    meta = json.loads((out / name / "config.json").read_text())
    cpus = int(meta.get("run", {}).get("ray_cpus") or os.cpu_count() or 1)
    n = len(trials)
    total = float(trials["time_s"].sum())
    return {
        "wall_s": wall,
        "trials": n,
        "cpus": cpus,
        "sum_time_s": total,
        "mean_time_s": total / n,
        "tuner_wall_s": float(meta.get("run", {}).get("wall_time_s", float("nan"))),
        "overhead_s": (wall * cpus - total) / n,
        "load": (l0[0], l1[0]),
        "ray_overhead_s": (float(meta.get("run", {}).get("wall_time_s", float("nan"))) * cpus - total) / n,
        "diverged": int(_is_true(trials["diverged"]).sum()),
        "first_time_s": float(trials["time_s"].max()),
        "min_time_s": float(trials["time_s"].min()),
        # Per BN value: the trainer's seconds per epoch over the whole study, every worker's
        # tracing and compiling included (trials that diverged or stopped early count their epochs).
        "per_epoch_s": {
            bool(bn): float(g["time_s"].sum() / g["epochs_run"].sum())
            for bn, g in trials.groupby(_is_true(trials["bn"]))
        },
    }


def _pairs(args: argparse.Namespace, job: dict, data: str, tmp: Path) -> list[dict]:
    """``args.pairs`` rounds of (one model.fit BN trial, the default study with a filled XLA cache,
    the same study with 5 seeds side by side per Ray trial), one after the other, so a change in
    the machine's speed hits every column of a round alike."""
    cache = tmp / "xla-pairs"
    cache.mkdir()
    study = ["--data", data, "--seeds", "5"]
    _grid_run("default study, filling the XLA cache", study, str(cache), tmp, "bench-pairs-cache")
    pairs = []
    for r in range(args.pairs):
        fit = _child_run(f"model.fit BN on, pair {r + 1}", {**job, "bn": True, "mode": "fit"}, "off", tmp)
        run = _grid_run(f"default study, pair {r + 1}", study, str(cache), tmp, f"bench-pair-{r}")
        label = f"default study with --seeds-per-trial {STACKED}, pair {r + 1}"
        stacked = [*study, "--seeds-per-trial", str(STACKED)]
        side = _grid_run(label, stacked, str(cache), tmp, f"bench-pair-stacked-{r}")
        walls = {"study wall s": run["wall_s"], "stacked study wall s": side["wall_s"]}
        pairs.append({"model.fit BN s": fit["time_s"], **walls})
    return pairs


def _print_pairs(pairs: list[dict], quick: bool) -> None:
    import pandas as pd

    table = pd.DataFrame(pairs)
    table.insert(0, "pair", [str(i + 1) for i in range(len(table))])
    table["study ÷ model.fit"] = table["study wall s"] / table["model.fit BN s"]
    table["stacked ÷ model.fit"] = table["stacked study wall s"] / table["model.fit BN s"]
    median = float(table["study ÷ model.fit"].median())
    table.loc[len(table)] = ["median", *table.drop(columns="pair").median()]
    print(
        "## The default study (70 runs, `python study/run.py --seeds 5`, filled XLA cache) against one "
        f"model.fit BN trial, measured in pairs (and the study with `--seeds-per-trial {STACKED}`)"
    )
    print()
    print(table.to_markdown(index=False, floatfmt=".2f"))
    print()
    print(
        f"median ratio {median:.2f}: goal ≤ {TARGET_STUDY_RATIO:g}× "
        f"{_status(median <= TARGET_STUDY_RATIO, quick)}, bar ≤ {BAR_STUDY_RATIO:g}× "
        f"{_status(median <= BAR_STUDY_RATIO, quick)}"
    )
    print()


def _status(ok: bool, quick: bool) -> str:
    return "n/a (quick)" if quick else ("PASS" if ok else "MISS")


def _loads(load: tuple[float, float]) -> str:
    return f"{load[0]:.2f} → {load[1]:.2f}"


def _code_state() -> str:
    """The commit measured, and whether the measured code (leafbn/, study/) had local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "leafbn", "study"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split("\n")
        changed = [line[3:] for line in dirty if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"commit {head or '?'}" + (
        f" + uncommitted changes in {', '.join(changed)}" if changed else " (clean)"
    )


def default_data() -> tuple[str, str]:
    shared = Path(os.environ.get("LEAFBN_SHARED") or REPO.parent / "shared")
    kaggle = shared / "data" / "leaf" / "kaggle" / "train.csv"
    if kaggle.is_file():
        return str(kaggle), "Kaggle train.csv (default, found under LEAFBN_SHARED)"
    return "embedded", f"embedded UCI copy (default; {kaggle} not found)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_trainer.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="reduced run (10 epochs, BN on, 2-trial grid): checks the script only",
    )
    p.add_argument("--full", action="store_true", help="also the default 70-trial study (--seeds 5)")
    p.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="with --full or --only-pairs: rounds of (one model.fit BN trial, the default study with a "
        "filled XLA cache, the same with 5 seeds per Ray trial) run one after the other, for the "
        "study ÷ model.fit ratio (default 3)",
    )
    p.add_argument("--only-pairs", action="store_true", help="measure only those pairs")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="fresh processes per single-trial measurement (default 3; median reported)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="data spec as for study/run.py (default: Kaggle train.csv if present, else embedded)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error(f"--repeat {args.repeat}: must be >= 1")

    if args.child is not None:
        result = _child(json.loads(args.child))
        print(MARK + json.dumps(result), flush=True)
        return 0

    import pandas as pd

    if args.data:
        data, data_note = args.data, "given with --data"
    else:
        data, data_note = default_data()
    epochs = 10 if args.quick else 100
    lr, batch, seed = 0.01, 10, 0
    # --quick: BN on only, a 2-trial grid (2 LRs, BN on), cold cache only: about a minute idle.
    bn_values = (True,) if args.quick else (False, True)
    grid_extra = ["--epochs", "10", "--lr", "0.01,1", "--bn", "on"] if args.quick else []
    grid_states = ("cold",) if args.quick else ("cold", "warm")
    n_cpu = os.cpu_count()

    print(
        "# leafbn trainer benchmark"
        + (" (--quick: reduced, NOT comparable with the targets)" if args.quick else "")
    )
    print(f"data: {data} — {data_note}")
    print(
        f"settings: {epochs} epochs, batch {batch}, lr {lr}, seed {seed}; one TF thread per process; "
        f"{n_cpu} CPUs; python {sys.version.split()[0]}"
    )
    print(f"code: {_code_state()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("measuring (each in a fresh process):", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="leafbn-bench-"))
    try:
        job = dict(data=data, lr=lr, seed=seed, epochs=epochs, batch_size=batch)
        pairs = _pairs(args, job, data, tmp) if args.only_pairs else []
        if args.only_pairs:
            _print_pairs(pairs, args.quick)
            return 0
        single: dict[bool, dict[str, list[dict]]] = {}
        one_cpu = min(os.sched_getaffinity(0))
        for bn in bn_values:
            tag = "BN on" if bn else "BN off"
            runs: dict[str, list[dict]] = {
                k: [] for k in ("fit", "fit_xla", "cold", "warm", "fit_1cpu", "cold_1cpu", "cold_s", "warm_s")
            }
            for r in range(args.repeat):  # interleaved, so a change in the machine's load hits every kind
                n = f" #{r + 1}" if args.repeat > 1 else ""
                cache = tmp / f"xla-{'bn' if bn else 'nobn'}-{r}"
                cache.mkdir()
                pinned = tmp / f"xla-{'bn' if bn else 'nobn'}-{r}-1cpu"
                pinned.mkdir()
                train_job, fit_job = {**job, "bn": bn, "mode": "train"}, {**job, "bn": bn, "mode": "fit"}
                runs["fit"].append(_child_run(f"model.fit {tag}{n}", fit_job, "off", tmp))
                runs["fit_xla"].append(
                    _child_run(
                        f"model.fit jit_compile=True {tag}{n}", {**fit_job, "mode": "fit_xla"}, "off", tmp
                    )
                )
                runs["cold"].append(_child_run(f"trainer cold {tag}{n}", train_job, str(cache), tmp))
                runs["warm"].append(_child_run(f"trainer warm {tag}{n}", train_job, str(cache), tmp))
                # a configuration's 5 seeds in one program (``--seeds-per-trial 5``), for comparison
                stacked = tmp / f"xla-{'bn' if bn else 'nobn'}-{r}-stacked"
                stacked.mkdir()
                many = {**train_job, "networks": STACKED}
                for state in ("cold", "warm"):
                    label = f"trainer {state} {STACKED} seeds {tag}{n}"
                    runs[f"{state}_s"].append(_child_run(label, many, str(stacked), tmp))
                runs["fit_1cpu"].append(
                    _child_run(f"model.fit one core {tag}{n}", {**fit_job, "cpu": one_cpu}, "off", tmp)
                )
                runs["cold_1cpu"].append(
                    _child_run(
                        f"trainer cold one core {tag}{n}", {**train_job, "cpu": one_cpu}, str(pinned), tmp
                    )
                )
            single[bn] = runs

        grids: dict[str, dict] = {}
        grid_specs = [("seed grid", ["--seeds", "1"], TARGET_SEED_GRID_S)]
        if args.full:
            grid_specs.append(("default study", ["--seeds", "5"], TARGET_FULL_GRID_S))
        for name, seeds_args, _ in grid_specs:
            cache = tmp / f"xla-{name.replace(' ', '-')}"
            cache.mkdir()
            for state in grid_states:
                label = f"{name} {state}"
                grids[label] = _grid_run(
                    label,
                    ["--data", data, *seeds_args, *grid_extra],
                    str(cache),
                    tmp,
                    f"bench-{name.replace(' ', '-')}-{state}",
                )
        if args.full:
            pairs = _pairs(args, job, data, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---------------- single trial table ----------------
    def med(runs: list[dict], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def spread(runs: list[dict], key: str) -> str:
        return f"{min(r[key] for r in runs):.2f}–{max(r[key] for r in runs):.2f}"

    def loads(runs: list[dict]) -> str:
        return f"{min(r['load'][0] for r in runs):.2f}–{max(r['load'][1] for r in runs):.2f}"

    # The baseline per BN value is the faster of Keras' two ways to run fit: default (graph) and XLA.
    fit_base = {bn: min(med(m["fit"], "time_s"), med(m["fit_xla"], "time_s")) for bn, m in single.items()}
    rows = []
    for bn, m in single.items():
        tag = "on" if bn else "off"
        fit_s = fit_base[bn]
        fit_1cpu_s = med(m["fit_1cpu"], "time_s")
        for key, what, base, _target in (
            ("fit", "Keras model.fit (default compile)", fit_s, None),
            ("fit_xla", "Keras model.fit, jit_compile=True", fit_s, None),
            ("fit_1cpu", "Keras model.fit (default compile), one core", fit_1cpu_s, None),
        ):
            rows.append(
                {
                    "measurement": what,
                    "BN": tag,
                    "seconds (median)": med(m[key], "time_s"),
                    "range": spread(m[key], "time_s"),
                    "final val_loss": m[key][0]["val_loss"],
                    "model.fit / this": base / med(m[key], "time_s"),
                    "target": "—",
                    "status": "—",
                    "load 1m": loads(m[key]),
                }
            )
        for key, what, runs, field, base, targeted in (
            ("cold", "trainer, fresh process, empty XLA cache (cold)", m["cold"], "first_s", fit_s, True),
            ("warm", "trainer, fresh process, filled XLA cache (warm)", m["warm"], "first_s", fit_s, True),
            ("reused", "trainer, 2nd trial in same process (reused)", m["cold"], "second_s", fit_s, False),
            (
                "cold_s",
                f"trainer, {STACKED} seeds in one program, cold, per network",
                m["cold_s"],
                "first_s",
                fit_s,
                False,
            ),
            (
                "warm_s",
                f"trainer, {STACKED} seeds in one program, warm, per network",
                m["warm_s"],
                "first_s",
                fit_s,
                False,
            ),
            (
                "reused_s",
                f"trainer, {STACKED} seeds in one program, reused, per network",
                m["cold_s"],
                "second_s",
                fit_s,
                False,
            ),
            (
                "cold_1cpu",
                "trainer, cold, one core (vs model.fit on one core)",
                m["cold_1cpu"],
                "first_s",
                fit_1cpu_s,
                False,
            ),
        ):
            sec = med(runs, field)
            ratio = base / sec
            goal = TARGET_FIRST_TRIAL if key == "cold" else TARGET_SPEEDUP
            rows.append(
                {
                    "measurement": what,
                    "BN": tag,
                    "seconds (median)": sec,
                    "range": spread(runs, field),
                    "final val_loss": runs[0]["second_val_loss" if key == "reused" else "first_val_loss"],
                    "model.fit / this": ratio,
                    "target": f"≥ {goal:g}×" if targeted else "(info)",
                    "status": _status(ratio >= goal, args.quick) if targeted else "—",
                    "load 1m": loads(runs),
                }
            )
    table1 = pd.DataFrame(rows)

    # ---------------- grid table ----------------
    rows = []
    for label, g in grids.items():
        default_study = label.startswith("default study")
        target = TARGET_FULL_GRID_S if default_study else TARGET_SEED_GRID_S
        rows.append(
            {
                "measurement": f"{label} ({g['trials']} trials)",
                "wall s": g["wall_s"],
                "wall target": f"≤ {target:g} s",
                "wall status": _status(g["wall_s"] <= target, args.quick),
                "Tuner.fit s": g["tuner_wall_s"],
                "Σ time_s": g["sum_time_s"],
                "mean time_s": g["mean_time_s"],
                "CPUs": g["cpus"],
                "overhead s/trial (command)": g["overhead_s"],
                "overhead s/trial (Ray part)": g["ray_overhead_s"],
                # The overhead target is the default study's: in 14 trials, each worker's start-up
                # (TensorFlow import, a first compile) is spread over only 7 trials.
                "overhead target": f"≤ {TARGET_RAY_OVERHEAD_S:g} s" if default_study else "(info)",
                "status (command / Ray part)": (
                    f"{_status(g['overhead_s'] <= TARGET_RAY_OVERHEAD_S, args.quick)} / "
                    f"{_status(g['ray_overhead_s'] <= TARGET_RAY_OVERHEAD_S, args.quick)}"
                )
                if default_study
                else "—",
                "load 1m start → end": _loads(g["load"]),
            }
        )
    table2 = pd.DataFrame(rows)
    fit_bn = fit_base.get(True)
    ratios = [
        {
            "measurement": label,
            "wall s": g["wall_s"],
            "one model.fit BN trial s": fit_bn,
            "study ÷ model.fit": g["wall_s"] / fit_bn,
            "goal (bar)": f"≤ {TARGET_STUDY_RATIO:g}× ({BAR_STUDY_RATIO:g}×)",
            "status": _status(g["wall_s"] / fit_bn <= TARGET_STUDY_RATIO, args.quick)
            + f" / bar {_status(g['wall_s'] / fit_bn <= BAR_STUDY_RATIO, args.quick)}",
        }
        for label, g in grids.items()
        if label.startswith("default study") and fit_bn
    ]
    table_ratio = pd.DataFrame(ratios)

    # ---------------- the trainer inside a study ----------------
    # The reading of "compile included": a compiled program is reused by the later trials
    # of its worker, so a study pays each worker's compile once. Here: Σ time_s / Σ epochs_run of
    # the study's trials of one BN value, scaled to one trial of `epochs` epochs, against model.fit.
    rows = []
    for label, g in grids.items():
        for bn, per_epoch in sorted(g["per_epoch_s"].items()):
            if bn not in fit_base:
                continue
            fit_s, sec = fit_base[bn], per_epoch * epochs
            rows.append(
                {
                    "measurement": f"{label}: trainer per {epochs}-epoch trial, compiles included",
                    "BN": "on" if bn else "off",
                    "seconds": sec,
                    "model.fit / this": fit_s / sec,
                    "target": f"≥ {TARGET_SPEEDUP:g}×",
                    "status": _status(fit_s / sec >= TARGET_SPEEDUP, args.quick),
                }
            )
    table3 = pd.DataFrame(rows)

    print()
    print(
        f"## One trial ({args.repeat} fresh processes each; "
        "'seconds' = build + compile + train, imports excluded)"
    )
    print()
    print(table1.to_markdown(index=False, floatfmt=".2f"))
    print()
    print("## Study end to end (`python study/run.py`, Ray start included)")
    print()
    print(table2.to_markdown(index=False, floatfmt=".2f"))
    print()
    if not table_ratio.empty:
        print("## The default study against one model.fit BN trial (the faster model.fit above, same run)")
        print()
        print(table_ratio.to_markdown(index=False, floatfmt=".2f"))
        print()
    if pairs:
        _print_pairs(pairs, args.quick)
    if not table3.empty:
        print(
            "## The trainer inside the study "
            "(each worker compiles each program once; one trial per CPU at a time)"
        )
        print()
        print(table3.to_markdown(index=False, floatfmt=".2f"))
        print()
        print(
            "seconds = Σ time_s ÷ Σ epochs_run over the study's trials of that BN value × epochs: every "
            "worker's tracing and compiling included, trials that diverged counted by the epochs they ran; "
            "model.fit / this uses the same baseline as the first table (one process alone)."
        )
        print()
    print(
        "Formulas: model.fit / this = the faster model.fit's median seconds "
        "(default or jit_compile=True, same BN) "
        "÷ row seconds; for the one-core rows, model.fit on one core ÷ row seconds."
    )
    print(
        "Overhead per trial (command) = (wall s × CPUs − Σ time_s) / trials, wall s being the whole command "
        "(driver imports, data, Ray start, trials, tables); "
        "(Ray part) uses Tuner.fit s instead = config.json "
        "wall_time_s (Ray start + Tuner.fit + shutdown). time_s is each trial's trainer time (trials.csv: "
        "compile and training, without Ray's scheduling, worker start-up and result handling)."
    )
    some = next(iter(single.values()))["fit"][0]
    imports = [r["import_s"] for m in single.values() for runs in m.values() for r in runs]
    print(
        f"model.fit jit_compile={some['jit_compile']}; TF threads (intra, inter) in children: "
        f"{some['threads']}; TF import + data load per process ≈ {min(imports):.1f}–{max(imports):.1f} s "
        "(not in 'seconds')."
    )
    for label, g in grids.items():
        print(
            f"{label}: slowest trial time_s {g['first_time_s']:.2f} s (includes its worker's compile), "
            f"fastest {g['min_time_s']:.2f} s; diverged trials {g['diverged']}."
        )
    print(
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min); per measurement:"
    )
    for label, l0, l1 in LOADS:
        print(f"  {label}: {' '.join(f'{x:.2f}' for x in l0)} → {' '.join(f'{x:.2f}' for x in l1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
