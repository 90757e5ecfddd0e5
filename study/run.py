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

from leafbn.config.axes import AXES
from leafbn.config.study_config import CURVE_FORMATS, SEED_LRS, SPACES, ConfigError, StudyConfig, lr_grid
from leafbn.tuning.spaces import space_axes

T = TypeVar("T")
DEFAULTS = StudyConfig()
AXIS_TYPES = {axis.name: axis.type for axis in AXES}
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


N_INT, N_FLOAT = number(int), number(float)
#: How one value of an axis of each type is read from the command line.
AXIS_PARSERS: dict[type, Callable[[str], object]] = {int: N_INT, float: N_FLOAT, bool: on_off, str: str}
AXES_GROUP = "axes (comma-separated values; default: the --space's)"
TRAINING, DATA, RUNS = "training", "data", "where it runs and what it writes"


def flag(group: str | None, name: str, help: str, **kwargs: object) -> tuple[str | None, str, dict]:
    """One row of :data:`FLAGS`: the flag's group (None: the top), its name and argparse's keywords."""
    return group, name, {**kwargs, "help": help}


def axis_flag(axis: str, help: str) -> tuple[str | None, str, dict]:
    """An axis's flag: comma-separated values, each parsed by the axis's type (from ``AXES``)."""
    name = "--" + axis.replace("_", "-")
    return flag(AXES_GROUP, name, help, type=listed(AXIS_PARSERS[AXIS_TYPES[axis]], name), default=None)


#: Every flag of run.py, in --help's order; a study setting's default is its StudyConfig field's.
FLAGS = (
    flag(None, "--grid", "run the grid of every axis value × seeds (the default)", action="store_true"),
    flag(
        None, "--space",
        "named space: seed (LR × BN) or full (+ depth, width, BN momentum and placement)",
        default=DEFAULTS.space, choices=list(SPACES),
    ),
    flag(
        None, "--optuna",
        "sample N trials with Optuna (TPE) instead of the grid; each Ray trial trains one "
        "configuration (its --seeds-per-trial seeds), as Optuna needs one objective per trial",
        type=N_INT, default=DEFAULTS.optuna, metavar="N",
    ),
    flag(None, "--max-concurrent", "trials at once (default: one per CPU)", type=N_INT, default=None),
    flag(
        None, "--asha",
        "stop hopeless trials early (Ray Tune's ASHA scheduler); each Ray trial then trains one "
        "configuration, as ASHA needs one objective per trial (a grid otherwise packs its runs into units)",
        action="store_true",
    ),
    flag(
        None, "--max-runs",
        "refuse a grid of more runs (configurations x splits x seeds) than this; the study prints "
        "its runs, units, compiled programs and estimated time and memory before it starts "
        f"(default: {DEFAULTS.max_runs})",
        type=N_INT, default=DEFAULTS.max_runs,
    ),
    flag(None, "--max-trials", "deprecated: the old name of --max-runs", type=N_INT, dest="max_runs"),
    flag(None, "--resume", "continue the interrupted study in --out/--name", action="store_true"),
    axis_flag("lr", "learning rates (default: 0.001,0.01,…,1000)"),
    flag(
        AXES_GROUP, "--lr-per-decade",
        "N log-spaced learning rates per decade over the --lr range (4 or 5 recommended: "
        "the seed's 0.001 … 1000 becomes 25 or 31 learning rates)",
        type=N_INT, default=None, metavar="N",
    ),
    axis_flag("bn", "BatchNormalization: on,off (default: both)"),
    axis_flag("depth", f"hidden layers after the first (default: {DEFAULTS.depth[0]})"),
    axis_flag("width", f"units in those layers (default: {DEFAULTS.width[0]})"),
    axis_flag("bn_momentum", f"BN momentum (default: {DEFAULTS.bn_momentum[0]})"),
    axis_flag("bn_placement", f"BN before or after the ReLU (default: {DEFAULTS.bn_placement[0]})"),
    axis_flag(
        "init",
        "Dense kernel initialisations: uniform (the blog's U(±0.05)), he_normal, glorot_uniform "
        "(default: uniform); separates a bad initialisation (the lower edge) from large steps (the upper)",
    ),
    flag(
        AXES_GROUP, "--seeds", f"seeds per configuration (default: {DEFAULTS.seeds})",
        type=N_INT, default=DEFAULTS.seeds,
    ),
    flag(
        AXES_GROUP, "--seed-base", f"first seed (default: {DEFAULTS.seed_base})", type=N_INT,
        default=DEFAULTS.seed_base,
    ),
    flag(
        AXES_GROUP, "--seeds-per-trial",
        "seeds of a configuration trained together, as one XLA program (within a grid's unit, or "
        "as an Optuna/ASHA trial); trials.csv still has a row per seed, and Optuna and ASHA judge a "
        "trial by its seeds' median "
        "(default: 1; benchmarks/bench_trainer.py measures which is faster on your CPU)",
        type=N_INT, default=DEFAULTS.seeds_per_trial, metavar="N",
    ),
    flag(
        AXES_GROUP, "--splits",
        "stratified train/validation splits, each run with every seed; "
        "split k uses --split-seed + k (default: 1)",
        type=N_INT, default=DEFAULTS.splits,
    ),
    flag(TRAINING, "--epochs", f"(default: {DEFAULTS.epochs})", type=N_INT, default=DEFAULTS.epochs),
    axis_flag("batch_size", f"minibatch sizes (default: {DEFAULTS.batch_size[0]})"),
    flag(
        TRAINING, "--window",
        "each run's outcome is its median validation loss over its last WINDOW epochs, "
        "so one spiking epoch cannot set it (default: 10, or --epochs if fewer)",
        type=N_INT, default=None,
    ),
    flag(
        TRAINING, "--drop-last",
        "drop each epoch's last, smaller batch, which Keras keeps (default: keep it)",
        action="store_true",
    ),
    flag(
        TRAINING, "--report-every",
        "epochs per Ray Tune report, besides one a second so a trial can be stopped; every "
        "epoch is kept either way (default: a trial's end; every --epochs/10 with --asha, "
        "which decides there)",
        type=N_INT, default=None,
    ),
    flag(
        TRAINING, "--momentum", f"SGD Nesterov momentum (default: {DEFAULTS.momentum})",
        type=N_FLOAT, default=DEFAULTS.momentum,
    ),
    flag(
        TRAINING, "--decay", f"legacy Keras lr decay per step (default: {DEFAULTS.decay})",
        type=N_FLOAT, default=DEFAULTS.decay,
    ),
    flag(
        DATA, "--data",
        "embedded | openml | a Kaggle train.csv | a folder of the UCI files "
        "(default: $LEAFBN_DATA or embedded)",
        default=None,
    ),
    flag(
        DATA, "--val-fraction", f"stratified validation share (default: {DEFAULTS.val_fraction})",
        type=N_FLOAT, default=DEFAULTS.val_fraction,
    ),
    flag(
        DATA, "--split-seed", f"seed of the split (default: {DEFAULTS.split_seed})",
        type=N_INT, default=DEFAULTS.split_seed,
    ),
    flag(
        DATA, "--no-standardize", "keep raw features (default: z-score, fitted on the training part)",
        dest="standardize", action="store_false",
    ),
    flag(RUNS, "--out", f"results folder (default: {DEFAULTS.out})", default=DEFAULTS.out),
    flag(
        RUNS, "--name", f"study name, a folder under --out (default: {DEFAULTS.name})", default=DEFAULTS.name
    ),
    flag(
        RUNS, "--address",
        "join a Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start Ray locally)",
        default=None,
    ),
    flag(RUNS, "--num-cpus", "CPUs of the local Ray instance (default: all)", type=N_INT, default=None),
    flag(
        RUNS, "--max-failures", f"retries of a trial whose worker died (default: {DEFAULTS.max_failures})",
        type=N_INT, default=DEFAULTS.max_failures,
    ),
    flag(
        RUNS, "--log",
        "add Ray Tune's standard loggers: tensorboard (event files with each trial's lr and bn: "
        "tensorboard --logdir OUT/NAME), csv (progress.csv per trial), mlflow (OUT/NAME/mlflow.db: "
        "mlflow ui --backend-store-uri sqlite:///OUT/NAME/mlflow.db); needs pip install "
        "'leafbn[tensorboard]' or 'leafbn[mlflow]'. Measured cost (20 trials x 100 epochs, 2 cores): "
        "tensorboard and csv none beyond the noise, mlflow about 0.5 s per trial; docs/benchmarks.md "
        "(default: none)",
        type=listed(str, "--log"), default=DEFAULTS.log,
    ),
    flag(
        RUNS, "--curves",
        "where the learning curves go: curves.parquet (compressed, columnar; pandas.read_parquet) "
        "or curves.csv (default: parquet)",
        choices=CURVE_FORMATS, default=DEFAULTS.curves,
    ),
    flag(RUNS, "--report", "write the robustness report when the study ends", action="store_true"),
    flag(
        RUNS, "--figure-format",
        "with --report: the report's figures as png, svg and/or pdf, comma-separated (default png; "
        "a PNG is always written, the one report.html embeds)",
        default="png", metavar="FORMATS",
    ),
    flag(
        None, "--strict-versions",
        "with --resume: refuse (exit 2) where an installed version differs from the study's "
        "recorded ones (leafbn's commit, Python, Ray, TensorFlow, Keras, NumPy), instead of warning",
        action="store_true",
    ),
)  # fmt: skip


def build_parser() -> Parser:
    """run.py's parser, built from :data:`FLAGS` (each group placed where its first flag is)."""
    p = Parser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups: dict[str | None, argparse._ActionsContainer] = {None: p}
    for group, name, kwargs in FLAGS:
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        groups[group].add_argument(name, **kwargs)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse run.py's command line; ``args.asked`` holds the study settings given (not defaulted)."""
    p = build_parser()
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
    from leafbn.tuning.trainer_process import trainer_limit_gb

    try:
        trainer_limit_gb()  # read by every unit study and its workers: checked before anything is written
    except ValueError as exc:
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
