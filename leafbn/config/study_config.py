"""One frozen :class:`StudyConfig`: every setting of a study, from the command line to the report.

The defaults are the seed experiment's: the blog's network and optimizer, seven learning rates
0.001·10^i (i = 0…6), BatchNormalization off and on, and 5 seeds per configuration (the blog ran one).
A study writes its config to ``config.json`` beside its results; nothing else keeps a copy.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

from leafbn.config.axes import AXES, BN_PLACEMENTS, INITS, TRIAL_FIELDS
from leafbn.errors import ConfigError

__all__ = [
    "StudyConfig", "ConfigError", "CURVE_FORMATS", "INITS", "LOGGERS", "SEED_LRS", "SPACES", "TRIAL_FIELDS",
    "WHERE_IT_RUNS", "contradictions", "flat_config", "lr_grid", "steps_per_epoch", "trial_seeds",
]  # fmt: skip

#: The seed experiment's learning rates: 0.001 · 10^i for i = 0…6.
SEED_LRS: tuple[float, ...] = tuple(float(f"1e{i - 3}") for i in range(7))


# INITS (the values of the init axis) is defined with the axes and offered here, as before.

#: The most epochs a trial may run (100 is the seed's; more is a typo, not a study).
MAX_EPOCHS = 10_000
#: Seeds are numpy/Keras seeds: 0 … 2**32 - 1.
MAX_SEED = 2**32 - 1

#: The named search spaces (``--space``): the axes each sets; axes it does not name keep the
#: StudyConfig defaults. ``seed`` is the blog's grid; ``full`` adds the architecture and BN's settings.
SPACES: dict[str, dict[str, tuple]] = {
    "seed": {},
    "full": {
        "depth": (1, 2, 3, 4, 5),
        "width": (25, 50, 100, 200, 400),
        "bn_momentum": (0.5, 0.9, 0.99, 0.999),
        "bn_placement": BN_PLACEMENTS,
    },
}

#: The files the learning curves may go to (``--curves``): ``curves.parquet`` or ``curves.csv``.
CURVE_FORMATS: tuple[str, ...] = ("parquet", "csv")

#: Ray Tune's standard logger callbacks a study can add (``--log``).
LOGGERS: tuple[str, ...] = ("tensorboard", "csv", "mlflow")


def lr_grid(lrs: tuple[float, ...], per_decade: int) -> tuple[float, ...]:
    """The range of ``lrs`` (lowest to highest) with ``per_decade`` log-spaced points per decade,
    both ends kept (the seed's 0.001 … 1000 at 4 per decade: 25 learning rates), to 6 digits."""
    if per_decade < 1:
        raise ConfigError(f"--lr-per-decade {per_decade}: must be >= 1 (4 or 5 recommended)")
    low, high = math.log10(min(lrs)), math.log10(max(lrs))
    points = max(round((high - low) * per_decade), 1) + 1
    grid = [float(f"{10**v:.6g}") for v in (low + (high - low) * k / (points - 1) for k in range(points))]
    return tuple(dict.fromkeys(grid))


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool) -> int:
    """Minibatches per epoch of ``n_train`` rows: Keras keeps the last, smaller batch, and so does
    the trainer unless ``drop_last`` (then 0 when ``batch_size > n_train``: nothing to train on)."""
    return n_train // batch_size if drop_last else math.ceil(n_train / batch_size)


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's Ray Tune config in one shape: a grid trial's ``trial`` dict merged into the rest."""
    return {**config.get("trial", {}), **{k: v for k, v in config.items() if k != "trial"}}


def trial_seeds(config: dict[str, Any]) -> list[int]:
    """The seeds of a trial's networks: its ``seeds`` list, or (a study from before) ``seed`` alone."""
    config = flat_config(config)
    return [int(s) for s in config["seeds"]] if "seeds" in config else [int(config.get("seed", 0))]


def _show(value: Any) -> str:
    """An axis value as the command line spells it (BN as on/off)."""
    return (
        ("on" if value else "off")
        if isinstance(value, bool)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def _fail(flag: str, value: Any, bound: str) -> None:
    """Refuse ``value`` of ``--flag``: a :class:`ConfigError` naming it and its ``bound``."""
    raise ConfigError(f"--{flag} {value}: {bound}")


@dataclass(frozen=True)
class StudyConfig:
    """Every setting of a study. Build it with keyword arguments; it validates itself.

    The axis fields (``lr``, ``bn``, ``depth``, ``width``, ``bn_momentum``, ``bn_placement``,
    ``batch_size``) are tuples: a grid study runs their full product, each with ``seeds`` seeds on
    each of ``splits`` train/validation splits.
    """

    # --- where results go -------------------------------------------------------------------
    name: str = "leafbn-grid"  # the study's folder under `out`
    out: str = "results"  # a local folder, or a URI Ray Tune's storage_path accepts
    # --- data -------------------------------------------------------------------------------
    data: str = "embedded"  # embedded | openml | a Kaggle train.csv | a folder of the UCI files
    val_fraction: float = 0.2  # stratified held-out validation part
    split_seed: int = 0  # seed of the train/validation split (split k uses split_seed + k)
    splits: int = 1  # stratified train/validation splits, a nuisance axis crossed with the seeds
    standardize: bool = True  # z-score features, fitted on the training part only
    # --- the grid's axes (the blog's values as defaults) ------------------------------------
    lr: tuple[float, ...] = SEED_LRS  # base learning rates
    bn: tuple[bool, ...] = (False, True)  # BatchNormalization off / on: the scientific axis
    depth: tuple[int, ...] = (3,)  # hidden layers after the first Dense(n_features)
    width: tuple[int, ...] = (100,)  # units in those layers
    bn_momentum: tuple[float, ...] = (0.99,)  # Keras BatchNormalization momentum
    bn_placement: tuple[str, ...] = ("before",)  # BN before or after the ReLU
    batch_size: tuple[int, ...] = (10,)  # minibatch sizes (BN normalises each batch by its own statistics)
    init: tuple[str, ...] = ("uniform",)  # Dense kernel initialisations (INITS); the blog's U(±0.05)
    # --- seeds: a nuisance axis, several per configuration ----------------------------------
    seeds: int = 5  # trials per configuration
    seed_base: int = 0  # their seeds are seed_base, seed_base + 1, ...
    # networks of one configuration (its seeds) trained side by side, as one XLA program, in one
    # Ray trial; 1: a trial per seed, the plain Keras model (faster per network on this project's
    # CPU; bench_trainer.py measures both on yours)
    seeds_per_trial: int = 1
    # --- training (the blog's) --------------------------------------------------------------
    epochs: int = 100
    # a run's outcome: the median validation loss of its last `window` epochs (None: min(10, epochs))
    window: int | None = None
    # drop each epoch's last, smaller batch (Keras keeps it; BN then normalises its few rows)
    drop_last: bool = False
    # epochs per Ray Tune report, each carrying every epoch's numbers (None: one report at a trial's
    # end, or every epochs/10 with ASHA, which decides there; a report costs Ray ~7 ms, an epoch);
    # a trial also reports once a second, so Ray Tune can stop it (leafbn.tuning.trial.STOPPABLE_S)
    report_every: int | None = None
    momentum: float = 0.9  # SGD momentum, Nesterov
    decay: float = 1e-6  # legacy Keras decay: lr_t = lr / (1 + decay * iterations)
    # --- how the space is searched -----------------------------------------------------------
    space: str = "seed"  # named space the axes came from (SPACES): seed | full
    optuna: int = 0  # 0: the full grid; N > 0: N trials sampled by Optuna (TPE) instead
    max_concurrent: int | None = None  # trials at once (None: as many as there are CPUs)
    asha: bool = False  # Ray Tune's ASHA scheduler stops hopeless trials early
    # a grid of more runs (configuration × split × seed) than this is refused before it starts; high
    # enough for the full space with 5 seeds (7,875 runs). `--max-trials` is its deprecated alias.
    max_runs: int = 10_000
    curves: str = "parquet"  # the learning curves' file: curves.parquet, or curves.csv as before
    # --- where it runs ----------------------------------------------------------------------
    address: str | None = None  # None: start Ray locally; "auto", "host:port" or "ray://..."
    num_cpus: int | None = None  # CPUs of a local Ray instance (None: all of this machine's)
    max_failures: int = 3  # Ray Tune retries of a trial whose worker died
    log: tuple[str, ...] = ()  # Ray Tune's standard loggers to add: tensorboard, csv, mlflow

    def __post_init__(self) -> None:
        # Normalise sequences to tuples so a config built from lists stays hashable and frozen.
        for name in TRIAL_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (str, int, float, bool)):  # one value (an older config.json's batch_size)
                object.__setattr__(self, name, (value,))
            elif not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.log, str):
            object.__setattr__(self, "log", tuple(v for v in self.log.split(",") if v))
        elif not isinstance(self.log, tuple):
            object.__setattr__(self, "log", tuple(self.log))
        if self.report_every is None and isinstance(self.epochs, int):
            every = self.asha_grace_epochs if self.asha else self.epochs
            object.__setattr__(self, "report_every", every)
        if self.window is None:
            object.__setattr__(self, "window", min(10, self.epochs) if isinstance(self.epochs, int) else 10)
        self._validate()

    # ------------------------------------------------------------------------------------------
    def _validate(self) -> None:
        """Refuse (:class:`ConfigError`, one line naming the flag, the value and the bound) any
        setting out of its bounds: the axes first, then the runs, then how and where they run."""
        self._validate_axes()
        self._validate_runs()
        self._validate_search()

    def _validate_axes(self) -> None:
        """The axes: each names its values once, finite, within its bounds."""
        for flag in TRIAL_FIELDS:
            values = getattr(self, flag)
            if len(values) == 0:
                _fail(flag.replace("_", "-"), "''", "must name at least one value")
            twice = sorted({v for v in values if values.count(v) > 1}, key=values.index)
            if twice:
                shown = ",".join(_show(v) for v in values)
                _fail(
                    flag.replace("_", "-"),
                    shown,
                    f"names {', '.join(_show(v) for v in twice)} twice: each value once "
                    "(seeds, not repeated values, give repeated runs)",
                )
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, float) and not math.isfinite(v):
                    _fail(field.name.replace("_", "-"), v, "must be a finite number")
        for axis in AXES:
            for v in getattr(self, axis.name) if axis.valid else ():
                if not axis.valid(v):
                    _fail(axis.name.replace("_", "-"), v, axis.bound)

    def _validate_runs(self) -> None:
        """Seeds, splits, epochs and what a run reports."""
        if self.seeds < 1:
            _fail("seeds", self.seeds, "must be >= 1")
        if not 1 <= self.epochs <= MAX_EPOCHS:
            _fail("epochs", self.epochs, f"must be in [1, {MAX_EPOCHS}]")
        for flag, seed in (("seed-base", self.seed_base), ("split-seed", self.split_seed)):
            if not 0 <= seed <= MAX_SEED - max(self.seeds, self.splits):
                _fail(
                    flag,
                    seed,
                    f"must be in [0, {MAX_SEED} - --seeds/--splits] (numpy's seeds are non-negative)",
                )
        if self.seeds_per_trial < 1:
            _fail("seeds-per-trial", self.seeds_per_trial, "must be >= 1")
        if not self.optuna and self.seeds_per_trial > self.seeds:
            _fail("seeds-per-trial", self.seeds_per_trial, f"must be <= --seeds {self.seeds}")
        if self.report_every < 1:
            _fail("report-every", self.report_every, "must be >= 1")
        if self.splits < 1:
            _fail("splits", self.splits, "must be >= 1")
        if not 1 <= self.window <= self.epochs:
            _fail("window", self.window, f"must be in [1, --epochs {self.epochs}]")
        if not 0.0 < self.val_fraction < 1.0:
            _fail("val-fraction", self.val_fraction, "must be in (0, 1)")
        if not 0.0 <= self.momentum < 1.0:
            _fail("momentum", self.momentum, "must be in [0, 1)")

    def _validate_search(self) -> None:
        """How the space is searched, where it runs and what it writes."""
        if self.decay < 0:
            _fail("decay", self.decay, "must be >= 0")
        if self.num_cpus is not None and self.num_cpus < 1:
            _fail("num-cpus", self.num_cpus, "must be >= 1")
        if self.space not in SPACES:
            _fail("space", self.space, f"must be one of {', '.join(SPACES)}")
        if self.optuna < 0:
            _fail("optuna", self.optuna, "must be >= 0 (0 runs the grid)")
        if self.optuna and self.splits > 1:
            _fail("splits", self.splits, "must be 1 with --optuna (splits are an axis of the grid)")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            _fail("max-concurrent", self.max_concurrent, "must be >= 1")
        if self.max_runs < 1:
            _fail("max-runs", self.max_runs, "must be >= 1")
        if self.curves not in CURVE_FORMATS:
            _fail("curves", self.curves, f"must be one of {', '.join(CURVE_FORMATS)}")
        if self.max_failures < 0:
            _fail("max-failures", self.max_failures, "must be >= 0")
        for v in self.log:
            if v not in LOGGERS:
                _fail("log", v, f"must be one of {', '.join(LOGGERS)}")
        if len(set(self.log)) < len(self.log):
            _fail("log", ",".join(self.log), "names a logger twice")
        if not self.name or "/" in self.name or self.name in (".", ".."):
            _fail("name", repr(self.name), "must be a plain folder name")

    # ------------------------------------------------------------------------------------------
    @property
    def asha_grace_epochs(self) -> int:
        """The epochs ASHA lets every trial run before it may stop one: its first decision point."""
        return max(1, self.epochs // 10)

    def trial_configs(self) -> list[dict[str, Any]]:
        """The grid: one dict per trial (every axis value × every split × every seed), in a stable order.

        Trials without BN take only the first ``bn_momentum`` and ``bn_placement`` value.
        """
        axes = [getattr(self, name) for name in TRIAL_FIELDS]
        seeds = range(self.seed_base, self.seed_base + self.seeds)
        configs: list[dict[str, Any]] = []
        for values in itertools.product(*axes):
            trial = dict(zip(TRIAL_FIELDS, values))
            # A network without BN has no BN momentum or placement: run it once, not once per value.
            if not trial["bn"] and (trial["bn_momentum"], trial["bn_placement"]) != (
                self.bn_momentum[0],
                self.bn_placement[0],
            ):
                continue
            configs += [dict(trial, split=k, seed=seed) for k in range(self.splits) for seed in seeds]
        return configs

    def trial_groups(self, grain: int) -> list[dict[str, Any]]:
        """The grid as Ray trials: each configuration and split of :meth:`trial_configs` once, its
        seeds split into ``ceil(seeds / grain)`` groups as equal as possible (a ``seeds`` list in
        place of ``seed``), in the same order."""
        by_config: dict[tuple, list[int]] = {}
        for config in self.trial_configs():
            by_config.setdefault(tuple((k, v) for k, v in config.items() if k != "seed"), []).append(
                config["seed"]
            )
        groups: list[dict[str, Any]] = []
        for key, seeds in by_config.items():
            k = math.ceil(len(seeds) / max(grain, 1))
            bounds = [round(i * len(seeds) / k) for i in range(k + 1)]
            groups += [dict(key, seeds=seeds[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        return groups

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudyConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if "max_trials" in values:  # the budget's name before it counted runs: today's default
            values = {k: v for k, v in values.items() if k != "max_trials"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown study setting(s): {', '.join(unknown)}")
        if values.get("seeds_per_trial") == 0:  # "chosen from the CPUs" in earlier versions; the
            values = {**values, "seeds_per_trial": 1}  # run's record keeps what was chosen
        return cls(**values)

    def replace(self, **changes: Any) -> StudyConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


#: Settings a resumed study takes from the command line: where it runs, not what it runs.
WHERE_IT_RUNS = ("address", "num_cpus", "out", "name", "data")


def contradictions(stored: StudyConfig, given: StudyConfig, asked: set[str]) -> list[str]:
    """The flags in ``asked`` whose values in ``given`` differ from the ``stored`` study's, as text."""

    def show(value: Any) -> str:
        if isinstance(value, tuple):
            return ",".join(_show(v) for v in value) or "none"
        return _show(value)

    return [
        f"--{name.replace('_', '-')} {show(getattr(given, name))} "
        f"(the study's: {show(getattr(stored, name))})"
        for name in sorted(asked)
        if name not in WHERE_IT_RUNS
        and hasattr(stored, name)
        and getattr(given, name) != getattr(stored, name)
    ]
