"""StudyConfig: defaults are the seed experiment, bad values name the flag and the bound."""

import json
import math

import pytest

from leafbn.config import SEED_LRS, ConfigError, StudyConfig, contradictions, lr_grid


def test_defaults_are_the_seed_grid():
    config = StudyConfig()
    trials = config.trial_configs()
    assert len(trials) == 7 * 2 * 5
    assert {t["lr"] for t in trials} == set(SEED_LRS)
    assert {t["bn"] for t in trials} == {False, True}
    assert sorted({t["seed"] for t in trials}) == [0, 1, 2, 3, 4]
    assert (config.epochs, config.batch_size, config.momentum, config.decay) == (100, (10,), 0.9, 1e-6)
    assert (config.splits, config.window) == (1, 10) and {t["split"] for t in trials} == {0}


def test_the_seed_learning_rates_are_seven_decades_each_written_as_its_decimal():
    """0.001 · 10^i, each the float nearest its short decimal: trials.csv and the report show 0.001,
    never 0.0010000000000000002."""
    assert len(SEED_LRS) == 7 and SEED_LRS[0] == min(SEED_LRS) and math.isclose(SEED_LRS[0], 1e-3)
    assert all(math.isclose(high / low, 10) for low, high in zip(SEED_LRS, SEED_LRS[1:]))
    assert all(float(f"{lr:g}") == lr for lr in SEED_LRS)


def test_a_trial_reports_once_at_its_end_unless_asha_decides_on_the_way():
    # a Ray Tune report costs about an epoch: without ASHA nothing reads one before the trial ends
    assert StudyConfig().report_every == 100 and StudyConfig(epochs=7).report_every == 7
    assert StudyConfig(asha=True).report_every == 10 == StudyConfig(asha=True).asha_grace_epochs
    assert StudyConfig(asha=True, epochs=5).report_every == 1
    assert StudyConfig(report_every=3).report_every == 3
    assert StudyConfig(asha=True, report_every=3).report_every == 3


def test_trials_without_bn_are_not_repeated_over_bn_settings():
    config = StudyConfig(lr=(0.1,), bn_momentum=(0.9, 0.99), bn_placement=("before", "after"), seeds=2)
    trials = config.trial_configs()
    assert len([t for t in trials if t["bn"]]) == 2 * 2 * 2
    assert len([t for t in trials if not t["bn"]]) == 2  # once per seed
    assert len({tuple(sorted(t.items())) for t in trials}) == len(trials)


def test_round_trip_through_json():
    config = StudyConfig(lr=[0.01, 0.1], seeds=3, name="x")
    again = StudyConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr": (-0.1,)}, "--lr -0.1: must be > 0"),
        ({"lr": ()}, "--lr '': must name at least one value"),
        ({"epochs": 0}, "--epochs 0: must be in [1, 10000]"),
        ({"seeds": 0}, "--seeds 0: must be >= 1"),
        ({"seeds_per_trial": 0}, "--seeds-per-trial 0: must be >= 1"),
        ({"seeds_per_trial": 6}, "--seeds-per-trial 6: must be <= --seeds 5"),
        ({"bn_momentum": (1.0,)}, "--bn-momentum 1.0: must be in [0, 1)"),
        ({"bn_placement": ("middle",)}, "--bn-placement middle: must be one of before, after"),
        ({"val_fraction": 1.5}, "--val-fraction 1.5: must be in (0, 1)"),
        ({"name": "a/b"}, "--name 'a/b': must be a plain folder name"),
        ({"epochs": 100_000_000}, "--epochs 100000000: must be in [1, 10000]"),
        ({"seed_base": -1}, "--seed-base -1: must be in [0, 4294967295"),
        ({"split_seed": 2**40}, "--split-seed 1099511627776: must be in [0,"),
        ({"decay": float("nan")}, "--decay nan: must be a finite number"),
        ({"momentum": float("inf")}, "--momentum inf: must be a finite number"),
        ({"lr": (0.1, 0.01, 0.1)}, "--lr 0.1,0.01,0.1: names 0.1 twice"),
        ({"bn": (True, False, True)}, "--bn on,off,on: names on twice"),
        ({"depth": (2, 2, 3, 3)}, "--depth 2,2,3,3: names 2, 3 twice"),
        ({"log": ("csv", "nosuch")}, "--log nosuch: must be one of tensorboard, csv, mlflow"),
    ],
)
def test_bad_values_name_flag_value_and_bound(changes, message):
    with pytest.raises(ConfigError) as info:
        StudyConfig(**changes)
    assert str(info.value).startswith(message)


def test_a_stored_study_from_when_0_chose_the_seeds_per_trial_still_loads():
    stored = StudyConfig(seeds_per_trial=1).to_dict() | {"seeds_per_trial": 0}
    assert StudyConfig.from_dict(stored).seeds_per_trial == 1


def test_unknown_setting_is_an_error():
    with pytest.raises(ConfigError, match="unknown study setting"):
        StudyConfig.from_dict({"lrr": [0.1]})


def test_resume_refuses_flags_that_contradict_the_stored_study():
    stored = StudyConfig(lr=(0.01, 0.1), epochs=20, seeds=2)
    given = StudyConfig(lr=(5.0, 50.0), epochs=7, seeds=2, num_cpus=1, out="elsewhere")
    asked = {"lr", "epochs", "seeds", "num_cpus", "out"}
    assert contradictions(stored, given, asked) == [
        "--epochs 7 (the study's: 20)",
        "--lr 5,50 (the study's: 0.01,0.1)",
    ]  # seeds agrees; where it runs (CPUs, --out) may change
    assert contradictions(stored, given, {"seeds", "num_cpus"}) == []
    assert contradictions(stored, StudyConfig(bn=(True,)), {"bn"}) == ["--bn on (the study's: off,on)"]
    # the loggers were set up when the study began: a resume cannot add one
    assert contradictions(stored, StudyConfig(log=("csv",)), {"log"}) == ["--log csv (the study's: none)"]


def test_lr_grid_spans_the_same_range_with_n_points_per_decade():
    four = lr_grid(SEED_LRS, 4)
    assert len(four) == 25 and four[0] == 0.001 and four[-1] == 1000.0
    assert set(SEED_LRS) <= set(four)  # the seed's seven points stay on the finer grid
    assert four[1] == 0.00177828 and len(lr_grid(SEED_LRS, 5)) == 31
    assert lr_grid((0.01, 1.0), 1) == (0.01, 0.1, 1.0)
    with pytest.raises(ConfigError, match="--lr-per-decade 0: must be >= 1"):
        lr_grid(SEED_LRS, 0)


def test_the_init_axis_defaults_to_the_blogs_uniform_and_refuses_others():
    assert StudyConfig().init == ("uniform",)
    inits = {t["init"] for t in StudyConfig(init=("uniform", "he_normal")).trial_configs()}
    assert inits == {"uniform", "he_normal"}
    with pytest.raises(ConfigError, match="--init zeros: must be one of uniform, he_normal, glorot_uniform"):
        StudyConfig(init=("zeros",))


def test_a_stored_study_from_before_max_runs_still_loads():
    # config.json of a study written when the budget counted trials (--max-trials)
    stored = {k: v for k, v in StudyConfig().to_dict().items() if k not in ("max_runs", "curves")}
    stored["max_trials"] = 2000
    config = StudyConfig.from_dict(stored)
    assert config.max_runs == StudyConfig().max_runs >= 7875  # the full space x 5 seeds fits
    assert config.curves == "parquet"
