"""leafbn.tuning: Ray Tune's reader of results stays quiet about trials that never started; a trial
of several seeds gives each seed its own row, as that seed trained alone would."""

import json
import logging

import pytest

from leafbn.config import StudyConfig
from leafbn.tuning import _never_started


def test_only_never_started_trials_are_quiet_in_ray_tunes_reader():
    def record(message):
        return logging.LogRecord("ray", logging.WARNING, __file__, 1, message, None, None)

    missing = (
        "Failed to fetch metrics for 2 trial(s):\n- a: FileNotFoundError('x')\n- b: FileNotFoundError('y')"
    )
    assert not _never_started(record(missing))
    assert _never_started(record(missing + "\n- c: ValueError('corrupt json')"))
    assert _never_started(record("something else"))


@pytest.mark.cluster
def test_a_trial_of_several_seeds_gives_a_row_per_seed_as_each_seed_alone(tmp_path):
    from leafbn import data as leafdata
    from leafbn import splits as leafsplits
    from leafbn.model import ModelSpec
    from leafbn.train import train
    from leafbn.tuning import run_study

    config = StudyConfig(
        lr=(0.001,), bn=(True,), seeds=4, seeds_per_trial=2, epochs=4, report_every=3,
        out=str(tmp_path), name="grain", num_cpus=2,
    )  # fmt: skip
    result = run_study(config, echo=lambda _: None)
    trials, curves = result.trials, result.curves
    meta = json.loads((result.path / "config.json").read_text())
    assert result.complete and meta["run"]["seeds_per_trial"] == 2
    assert meta["run"]["trials_expected"] == meta["run"]["trials_finished"] == 4
    assert len(trials) == 4 and trials["trial_id"].is_unique and trials["ray_trial"].nunique() == 2
    assert sorted(trials.groupby("ray_trial")["seed"].apply(sorted).tolist()) == [[0, 1], [2, 3]]
    assert sorted(curves.groupby("trial_id")["epoch"].apply(list).tolist()) == [[1, 2, 3, 4]] * 4

    split = leafsplits.split(leafdata.load(config.data), config.val_fraction, config.split_seed)
    for row in trials.itertuples():  # lr 0.001: not chaotic; within the fit test's 1%
        spec = ModelSpec(n_features=split.x_train.shape[1], n_classes=int(split.y_train.max()) + 1, bn=row.bn)
        alone = train(spec, split.x_train, split.y_train, split.x_val, split.y_val, lr=row.lr, seed=row.seed,
                      epochs=4)  # fmt: skip
        mine = curves[curves["trial_id"] == row.trial_id].sort_values("epoch")["val_loss"].to_numpy()
        assert mine == pytest.approx([e.val_loss for e in alone.epochs], rel=1e-2), row.trial_id
