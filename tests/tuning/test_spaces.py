"""leafbn.tuning.spaces: the named spaces, their Optuna form, the objective and the time estimate."""

import importlib.util
import math
from pathlib import Path

from leafbn.config import StudyConfig
from leafbn.tuning.spaces import WORST_LOSS, estimate_seconds, objective, optuna_space, space_axes

ROOT = Path(__file__).resolve().parents[2]


def test_objective_never_rewards_divergence():
    assert objective(0.5) == 0.5
    assert objective(math.nan) == objective(math.inf) == WORST_LOSS
    assert objective(40.0) == WORST_LOSS  # no finite loss counts as worse than diverging


def test_full_space():
    axes = space_axes("full")
    assert axes["depth"] == (1, 2, 3, 4, 5) and axes["width"] == (25, 50, 100, 200, 400)
    assert min(axes["bn_momentum"]) == 0.5 and max(axes["bn_momentum"]) == 0.999
    assert axes["lr"] == StudyConfig().lr and set(axes["bn_placement"]) == {"before", "after"}
    searched, fixed = optuna_space(StudyConfig(**axes))
    assert searched["lr"].log and searched["lr"].low == 0.001 and searched["lr"].high == 1000
    assert set(searched) == {"lr", "bn", "depth", "width", "bn_momentum", "bn_placement"}
    assert fixed == {"batch_size": 10, "init": "uniform"}


def test_an_axis_flag_overrides_the_full_space_and_the_optuna_space_follows():
    spec = importlib.util.spec_from_file_location("leafbn_run_cli", ROOT / "study" / "run.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = cli.parse_args(["--space", "full", "--depth", "2", "--lr", "0.01,0.1", "--data", "embedded"])
    config = cli.config_from_args(args)
    full = space_axes("full")
    assert config.depth == (2,) and config.lr == (0.01, 0.1)
    assert (config.width, config.bn_momentum, config.bn_placement) == (
        full["width"], full["bn_momentum"], full["bn_placement"]
    )  # fmt: skip
    searched, fixed = optuna_space(config)
    assert fixed == {"depth": 2, "batch_size": 10, "init": "uniform"} and "depth" not in searched
    assert (searched["lr"].low, searched["lr"].high) == (0.01, 0.1)
    assert searched["width"].choices == full["width"]


def test_estimate_grows_with_the_space():
    seed = StudyConfig(seeds=1)
    small = estimate_seconds(seed, seed.trial_configs(), 1267, cpus=2)
    wide = StudyConfig(**{**space_axes("full"), "seeds": 1})
    assert estimate_seconds(wide, wide.trial_configs(), 1267, cpus=2) > 20 * small
    assert estimate_seconds(seed, seed.trial_configs(), 1267, cpus=4) < small


def test_grid_memory_estimate_counts_programs_up_to_the_trainers_limit(monkeypatch):
    """A trainer keeps memory for each program it compiled (evicted or not) until it passes its
    limit and is replaced: the full space (75 programs) needs more than the seed space (2), the
    limit bounds it, and more workers need more."""
    from leafbn.tuning.spaces import grid_estimate
    from leafbn.tuning.units import grid_runs

    full = StudyConfig(**{k: v for k, v in space_axes("full").items()}, seeds=1, epochs=1)
    seed = StudyConfig(seeds=1, epochs=1)
    full_runs, seed_runs = grid_runs(full), grid_runs(seed)
    monkeypatch.setenv("LEAFBN_TRAINER_GB", "100")
    _, unbounded = grid_estimate(full, full_runs, 225, 792, 2)
    monkeypatch.setenv("LEAFBN_TRAINER_GB", "1.5")
    _, full_gb = grid_estimate(full, full_runs, 225, 792, 2)
    _, seed_gb = grid_estimate(seed, seed_runs, 8, 792, 2)
    _, full_gb_4 = grid_estimate(full, full_runs, 225, 792, 4)
    assert unbounded > seed_gb + 2 * 70 * 0.02
    assert seed_gb < full_gb < unbounded
    assert full_gb_4 > full_gb


def test_the_time_estimate_expects_runs_of_high_learning_rates_to_stop_early():
    """A run stops when it diverges: the estimate counts fewer epochs for high learning rates, and
    the upper bound (no run diverges) counts them all."""
    from leafbn.tuning.spaces import SHARE_FLOOR, epochs_share, grid_seconds
    from leafbn.tuning.units import grid_runs

    shares = [epochs_share(lr) for lr in (0.001, 0.1, 1, 10, 100, 1000, 1e6)]
    assert shares[:2] == [1.0, 1.0] and shares == sorted(shares, reverse=True) and shares[-1] == SHARE_FLOOR
    sweep = StudyConfig(lr=(0.001, 0.1, 10, 1000), seeds=2)
    low = StudyConfig(lr=(0.001, 0.01, 0.1), seeds=2)
    for config, fewer in ((sweep, True), (low, False)):
        runs = grid_runs(config)
        expected, most = grid_seconds(config, runs, 8, 792, 2), grid_seconds(config, runs, 8, 792, 2, False)
        assert (expected < most) is fewer and expected <= most
