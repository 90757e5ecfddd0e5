"""The progress line: counts, best trial, and a clock that restarts when a study is resumed."""

import pickle
from types import SimpleNamespace

from leafbn.tuning.progress import ProgressLine


def trial(status, val_loss=None, diverged=False, lr=0.01, bn=True):
    result = {} if val_loss is None else {"val_loss": val_loss, "diverged": diverged}
    return SimpleNamespace(status=status, last_result=result, config={"trial": {"lr": lr, "bn": bn}})


def test_counts_best_and_remaining():
    lines = []
    progress = ProgressLine(total=6, echo=lines.append)
    progress.line([trial("PENDING")])  # the first line sets the baseline: nothing done yet
    trials = [
        trial("TERMINATED", 0.5, lr=0.1),
        trial("TERMINATED", float("nan"), diverged=True, lr=10, bn=False),
        trial("TERMINATED", 0.2, lr=0.001),
        trial("RUNNING"),
    ]
    line = progress.line(trials)
    assert "3/6 done · 1 running · 2 pending · 1 diverged" in line
    assert "best val_loss 0.200 (lr=0.001 bn=on)" in line
    assert "left" in line
    progress.on_experiment_end(trials)  # the end summary line
    assert len(lines) == 1 and "3/6 done" in lines[0]


def test_a_restored_callback_restarts_its_clock_and_rate():
    progress = ProgressLine(total=4)
    progress.start -= 3600  # as if pickled an hour ago, when the study was interrupted
    restored = pickle.loads(pickle.dumps(progress))
    restored.setup(total_num_samples=4)  # Ray Tune calls setup when the resumed run starts
    done_before = [trial("TERMINATED", 0.3), trial("TERMINATED", 0.4), trial("PENDING"), trial("PENDING")]
    first = restored.line(done_before)
    assert first.startswith("[leafbn 00:00] 2/4 done")
    assert "left" not in first  # no trial finished in this run yet: no rate to extrapolate from
    later = restored.line([*done_before[:2], trial("TERMINATED", 0.5), trial("RUNNING")])
    assert "3/4 done" in later and "left" in later


def test_an_interrupted_study_is_not_all_done():
    def ran(epoch, epochs=100):
        t = trial("TERMINATED", 0.4)
        t.last_result["epoch"], t.config["epochs"] = epoch, epochs
        return t

    progress = ProgressLine(total=4, echo=lambda _: None)
    line = progress.line([ran(100), ran(30), trial("TERMINATED"), trial("TERMINATED")])  # Ctrl-C
    assert line.startswith("[leafbn 00:00] 1/4 done · 1 stopped early · 0 running · 2 pending")
