"""Study folders written before leafbn's rooms (the flat layout) still load, report and resume.

``tests/fixtures/flat_layout_study`` was written by the flat layout's code (``study/run.py --grid``):
``done/`` holds a finished study's tables and ``config.json``; ``part/`` a study whose driver was
killed (SIGKILL) with two of its six trials finished, its ``tuner.pkl`` naming
``leafbn.progress.ProgressLine``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest

from leafbn.moved import MOVED
from leafbn.tuning.progress import ProgressLine
from tests.study.test_study import run_main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "flat_layout_study"
ROOT = Path(__file__).resolve().parents[1]


def test_every_old_module_path_imports_as_its_new_module() -> None:
    for old, new in MOVED.items():
        module = importlib.import_module(new)
        alias = importlib.import_module(old)
        if alias is not module:  # an old path that is a package now offers the old module's names
            missing = [n for n in module.__all__ if getattr(alias, n, None) is not getattr(module, n)]
            assert not missing, f"{old} lacks {missing} of {new}"


def test_the_tuner_pickled_before_the_move_loads() -> None:
    tuner = pickle.loads((FIXTURE / "part" / "tuner.pkl").read_bytes())
    callbacks = tuner["_run_config"].callbacks
    assert any(isinstance(c, ProgressLine) for c in callbacks)


def _report_main(*args: str) -> int:
    spec = importlib.util.spec_from_file_location("leafbn_report_cli", ROOT / "study" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(args))


def test_a_study_written_before_the_move_reports(tmp_path: Path) -> None:
    study = shutil.copytree(FIXTURE / "done", tmp_path / "done")
    assert _report_main(str(study)) == 0
    text = (study / "report" / "report.md").read_text()
    assert "0.1" in text and (study / "report" / "answer.json").is_file()


@pytest.mark.cluster
def test_a_study_killed_before_the_move_resumes_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(FIXTURE / "part", tmp_path / "part")
    code, err = run_main(capsys, "--resume", "--out", str(tmp_path), "--name", "part")
    assert code == 0, err
    study = json.loads((FIXTURE / "part" / "config.json").read_text())["study"]
    trials = pd.read_csv(tmp_path / "part" / "trials.csv").set_index("trial_id")
    assert len(trials) == len(study["lr"]) * len(study["bn"]) and set(trials["lr"]) == set(study["lr"])
    for result in FIXTURE.glob("part/*/result.json"):  # a trial finished before the kill is kept, not rerun
        if result.stat().st_size:
            last = json.loads(result.read_text().splitlines()[-1])
            assert trials.loc[result.parent.name, "final_val_loss"] == pytest.approx(last["val_loss"])
    assert _report_main(str(tmp_path / "part")) == 0
