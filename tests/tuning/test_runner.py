"""leafbn.tuning.runner: Ray Tune's reader of results stays quiet about trials that never started (the
study itself is tested end to end in test_study.py, test_lifecycle.py and test_cluster.py)."""

import logging

from leafbn.tuning.trial_study import _never_started


def test_only_never_started_trials_are_quiet_in_ray_tunes_reader():
    def record(message):
        return logging.LogRecord("ray", logging.WARNING, __file__, 1, message, None, None)

    missing = (
        "Failed to fetch metrics for 2 trial(s):\n- a: FileNotFoundError('x')\n- b: FileNotFoundError('y')"
    )
    assert not _never_started(record(missing))
    assert _never_started(record(missing + "\n- c: ValueError('corrupt json')"))
    assert _never_started(record("something else"))
