"""leafbn.tuning.spaces: the named spaces, their Optuna form, the objective and the time estimate."""

import math

from leafbn.config import StudyConfig
from leafbn.tuning.spaces import WORST_LOSS, estimate_seconds, objective, optuna_space, space_axes


def test_objective_never_rewards_divergence():
    assert objective(0.5) == 0.5
    assert objective(math.nan) == objective(math.inf) == WORST_LOSS
    assert objective(40.0) == WORST_LOSS  # no finite loss counts as worse than diverging


def test_full_space_and_overrides():
    axes = space_axes("full")
    assert axes["depth"] == (1, 2, 3, 4, 5) and axes["width"] == (25, 50, 100, 200, 400)
    assert min(axes["bn_momentum"]) == 0.5 and max(axes["bn_momentum"]) == 0.999
    assert axes["lr"] == StudyConfig().lr and set(axes["bn_placement"]) == {"before", "after"}
    searched, fixed = optuna_space(StudyConfig(**axes))
    assert searched["lr"].log and searched["lr"].low == 0.001 and searched["lr"].high == 1000
    assert set(searched) == {"lr", "bn", "depth", "width", "bn_momentum", "bn_placement"}
    assert fixed == {"batch_size": 10}


def test_estimate_grows_with_the_space():
    seed = StudyConfig(seeds=1)
    small = estimate_seconds(seed, seed.trial_configs(), 1267, cpus=2)
    wide = StudyConfig(**{**space_axes("full"), "seeds": 1})
    assert estimate_seconds(wide, wide.trial_configs(), 1267, cpus=2) > 20 * small
    assert estimate_seconds(seed, seed.trial_configs(), 1267, cpus=4) < small
