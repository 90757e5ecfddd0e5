"""Run a leafbn study on Ray Tune: ``python study/run.py --grid``.

The defaults are the seed experiment: 7 learning rates (0.001 … 1000) × BN off/on × 5 seeds ×
100 epochs on the embedded UCI leaf data, on a local Ray instance. Every axis can be overridden
(``--lr 0.01,0.1 --bn on,off --seeds 3 --epochs 20``). Results go to ``OUT/NAME/``. A grid's
runs are packed into units, one Ray trial each; with --optuna or --asha a Ray trial trains one
configuration, since they need one objective per trial.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, too

from leafbn.config.study_config import CURVE_FORMATS, SEED_LRS, SPACES, ConfigError, StudyConfig, lr_grid
from leafbn.tuning.spaces import space_axes

T = TypeVar("T")
DEFAULTS = StudyConfig()
#: Flags that say what to do with a study, not what it is: never part of its StudyConfig.
NOT_STUDY_SETTINGS = ("grid", "resume", "report", "strict_versions", "figure_format")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def listed(kind: Callable[[str], T], flag: str) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for comma-separated values: ``0.01,0.1`` → (0.01, 0.1)."""

    def parse(text: str) -> tuple[T, ...]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: name at least one value")
        try:
            return tuple(kind(item) for item in items)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{flag} {text}: {exc}") from None

    return parse


def on_off(text: str) -> bool:
    values = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
    if text.lower() not in values:
        raise ValueError(f"{text!r} is not on or off")
    return values[text.lower()]


class NotANumber(ValueError, argparse.ArgumentTypeError):
    """A value that is not a (finite) number; argparse prints its message as it is."""


def number(kind: type) -> Callable[[str], float | int]:
    """An argparse type: an int, or a finite float (``nan``, ``inf`` and ``1e400`` are refused)."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise NotANumber(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if kind is float and not math.isfinite(value):
            raise NotANumber(f"{text!r} is not a finite number")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    p.add_argument(
        "--grid", action="store_true", help="run the grid of every axis value × seeds (the default)"
    )
    p.add_argument(
        "--space",
        default=d.space,
        choices=list(SPACES),
        help="named space: seed (LR × BN) or full (+ depth, width, BN momentum and placement)",
    )
    p.add_argument(
        "--optuna",
        type=number(int),
        default=d.optuna,
        metavar="N",
        help="sample N trials with Optuna (TPE) instead of the grid; each Ray trial trains one "
        "configuration (its --seeds-per-trial seeds), as Optuna needs one objective per trial",
    )
    p.add_argument(
        "--max-concurrent",
        type=number(int),
        default=None,
        help="trials at once (default: one per CPU)",
    )
    p.add_argument(
        "--asha",
        action="store_true",
        help="stop hopeless trials early (Ray Tune's ASHA scheduler); each Ray trial then trains one "
        "configuration, as ASHA needs one objective per trial (a grid otherwise packs its runs into units)",
    )
    p.add_argument(
        "--max-runs",
        type=number(int),
        default=d.max_runs,
        help="refuse a grid of more runs (configurations x splits x seeds) than this; the study prints "
        f"its runs, units, compiled programs and estimated time and memory before it starts "
        f"(default: {d.max_runs})",
    )
    p.add_argument(
        "--max-trials", type=number(int), dest="max_runs", help="deprecated: the old name of --max-runs"
    )
    p.add_argument("--resume", action="store_true", help="continue the interrupted study in --out/--name")
    axes = p.add_argument_group("axes (comma-separated values; default: the --space's)")
    axes.add_argument(
        "--lr",
        type=listed(number(float), "--lr"),
        default=None,
        help="learning rates (default: 0.001,0.01,…,1000)",
    )
    axes.add_argument(
        "--lr-per-decade",
        type=number(int),
        default=None,
        metavar="N",
        help="N log-spaced learning rates per decade over the --lr range (4 or 5 recommended: "
        "the seed's 0.001 … 1000 becomes 25 or 31 learning rates)",
    )
    axes.add_argument(
        "--bn", type=listed(on_off, "--bn"), default=None, help="BatchNormalization: on,off (default: both)"
    )
    axes.add_argument(
        "--depth",
        type=listed(number(int), "--depth"),
        default=None,
        help="hidden layers after the first (default: 3)",
    )
    axes.add_argument(
        "--width",
        type=listed(number(int), "--width"),
        default=None,
        help="units in those layers (default: 100)",
    )
    axes.add_argument(
        "--bn-momentum",
        type=listed(number(float), "--bn-momentum"),
        default=None,
        help="BN momentum (default: 0.99)",
    )
    axes.add_argument(
        "--bn-placement",
        type=listed(str, "--bn-placement"),
        default=None,
        help="BN before or after the ReLU (default: before)",
    )
    axes.add_argument(
        "--init",
        type=listed(str, "--init"),
        default=None,
        help="Dense kernel initialisations: uniform (the blog's U(±0.05)), he_normal, glorot_uniform "
        "(default: uniform); separates a bad initialisation (the lower edge) from large steps (the upper)",
    )
    axes.add_argument(
        "--seeds",
        type=number(int),
        default=d.seeds,
        help=f"seeds per configuration (default: {d.seeds})",
    )
    axes.add_argument("--seed-base", type=number(int), default=d.seed_base, help="first seed (default: 0)")
    axes.add_argument(
        "--seeds-per-trial",
        type=number(int),
        default=d.seeds_per_trial,
        metavar="N",
        help="seeds of a configuration trained together, as one XLA program (within a grid's unit, or "
        "as an Optuna/ASHA trial); trials.csv still has a row per seed, and Optuna and ASHA judge a "
        "trial by its seeds' median "
        "(default: 1; benchmarks/bench_trainer.py measures which is faster on your CPU)",
    )
    axes.add_argument(
        "--splits",
        type=number(int),
        default=d.splits,
        help="stratified train/validation splits, each run with every seed; "
        "split k uses --split-seed + k (default: 1)",
    )
    tr = p.add_argument_group("training")
    tr.add_argument("--epochs", type=number(int), default=d.epochs, help=f"(default: {d.epochs})")
    axes.add_argument(
        "--batch-size",
        type=listed(number(int), "--batch-size"),
        default=None,
        help="minibatch sizes (default: 10)",
    )
    tr.add_argument(
        "--window",
        type=number(int),
        default=None,
        help="each run's outcome is its median validation loss over its last WINDOW epochs, "
        "so one spiking epoch cannot set it (default: 10, or --epochs if fewer)",
    )
    tr.add_argument(
        "--drop-last",
        action="store_true",
        help="drop each epoch's last, smaller batch, which Keras keeps (default: keep it)",
    )
    tr.add_argument(
        "--report-every",
        type=number(int),
        default=None,
        help="epochs per Ray Tune report, besides one a second so a trial can be stopped; every "
        "epoch is kept either way (default: a trial's end; every --epochs/10 with --asha, "
        "which decides there)",
    )
    tr.add_argument(
        "--momentum",
        type=number(float),
        default=d.momentum,
        help=f"SGD Nesterov momentum (default: {d.momentum})",
    )
    tr.add_argument(
        "--decay",
        type=number(float),
        default=d.decay,
        help=f"legacy Keras lr decay per step (default: {d.decay})",
    )
    da = p.add_argument_group("data")
    da.add_argument(
        "--data",
        default=None,
        help="embedded | openml | a Kaggle train.csv | a folder of the UCI files "
        "(default: $LEAFBN_DATA or embedded)",
    )
    da.add_argument(
        "--val-fraction",
        type=number(float),
        default=d.val_fraction,
        help=f"stratified validation share (default: {d.val_fraction})",
    )
    da.add_argument(
        "--split-seed",
        type=number(int),
        default=d.split_seed,
        help=f"seed of the split (default: {d.split_seed})",
    )
    da.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="keep raw features (default: z-score, fitted on the training part)",
    )
    ru = p.add_argument_group("where it runs and what it writes")
    ru.add_argument("--out", default=d.out, help=f"results folder (default: {d.out})")
    ru.add_argument("--name", default=d.name, help=f"study name, a folder under --out (default: {d.name})")
    ru.add_argument(
        "--address",
        default=None,
        help="join a Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start Ray locally)",
    )
    ru.add_argument(
        "--num-cpus",
        type=number(int),
        default=None,
        help="CPUs of the local Ray instance (default: all)",
    )
    ru.add_argument(
        "--max-failures",
        type=number(int),
        default=d.max_failures,
        help=f"retries of a trial whose worker died (default: {d.max_failures})",
    )
    ru.add_argument(
        "--log",
        type=listed(str, "--log"),
        default=d.log,
        help="add Ray Tune's standard loggers: tensorboard (event files with each trial's lr and bn: "
        "tensorboard --logdir OUT/NAME), csv (progress.csv per trial), mlflow (OUT/NAME/mlflow.db: "
        "mlflow ui --backend-store-uri sqlite:///OUT/NAME/mlflow.db); needs pip install "
        "'leafbn[tensorboard]' or 'leafbn[mlflow]'. Measured cost (20 trials x 100 epochs, 2 cores): "
        "tensorboard and csv none beyond the noise, mlflow about 0.5 s per trial; docs/benchmarks.md "
        "(default: none)",
    )
    ru.add_argument(
        "--curves",
        choices=CURVE_FORMATS,
        default=d.curves,
        help="where the learning curves go: curves.parquet (compressed, columnar; pandas.read_parquet) "
        "or curves.csv (default: parquet)",
    )
    ru.add_argument("--report", action="store_true", help="write the robustness report when the study ends")
    ru.add_argument(
        "--figure-format",
        default="png",
        metavar="FORMATS",
        help="with --report: the report's figures as png, svg and/or pdf, comma-separated (default png; "
        "a PNG is always written, the one report.html embeds)",
    )
    p.add_argument(
        "--strict-versions",
        action="store_true",
        help="with --resume: refuse (exit 2) where an installed version differs from the study's "
        "recorded ones (leafbn's commit, Python, Ray, TensorFlow, Keras, NumPy), instead of warning",
    )
    args = p.parse_args(argv)
    if any(arg.split("=")[0] == "--max-trials" for arg in (sys.argv[1:] if argv is None else argv)):
        print("run.py: warning: --max-trials is deprecated: use --max-runs (it counts runs)", file=sys.stderr)
    # Which flags were given (not defaulted): parse again with every default suppressed.
    for action in p._actions:
        action.default = argparse.SUPPRESS
    args.asked = {name for name in vars(p.parse_args(argv)) if name not in NOT_STUDY_SETTINGS}
    if "lr_per_decade" in args.asked:  # it sets the lr axis
        args.asked = (args.asked - {"lr_per_decade"}) | {"lr"}
    return args


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """Build the study's one :class:`StudyConfig` from parsed arguments."""
    from leafbn.data.loaders import default_spec

    fields = {k: v for k, v in vars(args).items() if k not in (*NOT_STUDY_SETTINGS, "asked")}
    per_decade = fields.pop("lr_per_decade", None)
    fields["data"] = args.data or default_spec()
    for axis, values in space_axes(args.space).items():
        if fields[axis] is None:
            fields[axis] = values
    if per_decade is not None:
        fields["lr"] = lr_grid(fields["lr"] or SEED_LRS, per_decade)
    return StudyConfig(**fields)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2

    from leafbn.data.loaders import DataError
    from leafbn.tuning.runner import StudyError, run_study

    report = None
    if args.report:  # matplotlib and the report's modules: 0.4 s of start, only when asked
        import functools

        from leafbn.report import ReportSettings, write_report

        try:
            settings = ReportSettings(figure_formats=args.figure_format)
        except ValueError as exc:
            print(f"run.py: error: --{exc}".replace("figure format:", "figure-format:"), file=sys.stderr)
            return 2
        report = functools.partial(write_report, settings=settings)
    try:
        result = run_study(
            config, resume=args.resume, report=report, asked=args.asked, strict_versions=args.strict_versions
        )
    except (DataError, StudyError) as exc:
        message = str(exc)
        if isinstance(exc, DataError) and message.startswith(f"{config.data}:"):
            # say where the value came from: the flag, or the environment variable
            message = f"--data {message}" if args.data else f"LEAFBN_DATA={message}"
        print(f"run.py: error: {message}", file=sys.stderr)
        return 2

    from leafbn.report.analysis import format_summary, summary
    from leafbn.tuning.storage import experiment_path, is_uri

    print(format_summary(summary(result.trials)))
    print(f"results: {result.path}")
    if not args.report:
        print(f"the answer, with how sure it is: python study/report.py {result.path}")
    if is_uri(config.out):
        print(f"copied to: {experiment_path(config)}")
    if not result.complete:
        print(
            "warning: the study is incomplete (interrupted or failed trials; see trials.csv): "
            "continue it with --resume",
            file=sys.stderr,
        )
    return 0 if result.complete else 1


if __name__ == "__main__":
    code = main()
    # The process ends here: Python's last full collection would walk every object Ray, pandas and
    # scikit-learn made (0.3 s, measured) only to free memory the exit frees anyway.
    gc.freeze()
    sys.exit(code)
