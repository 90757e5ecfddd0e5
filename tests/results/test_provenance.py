"""What a study ran on: the versions and commit it records, and the warning (or, with
--strict-versions, the refusal) when a report or a resume runs on other versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leafbn.results.provenance import UNKNOWN, check_versions, code_state, version_differences, versions
from leafbn.results.record import StudyRecord
from tests.report.test_writer import write_study
from tests.study.test_study import run_main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "docs" / "kaggle-seed-grid"  # written before numpy and the commit were recorded
INSTALLED_TF = versions()["tensorflow"]


def report_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    command = [sys.executable, str(ROOT / "study" / "report.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def git(folder: Path, *args: str) -> str:
    command = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_versions_record_numpy_and_the_code_commit():
    found = versions()
    assert {"leafbn", "python", "ray", "tensorflow", "keras", "numpy", "commit", "tree"} <= set(found)
    assert found["numpy"] == __import__("numpy").__version__


def test_the_code_state_is_this_checkouts_own():
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is no git checkout: the commit is unknown there by design")
    assert code_state() == code_state(ROOT)
    assert code_state()["commit"] == git(ROOT, "rev-parse", "HEAD")


def test_code_state_names_the_commit_and_whether_files_changed(tmp_path):
    assert code_state(tmp_path) == {"commit": UNKNOWN, "tree": UNKNOWN}  # not a checkout
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-qm", "one")
    assert code_state(tmp_path) == {"commit": git(tmp_path, "rev-parse", "HEAD"), "tree": "clean"}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_state(tmp_path)["tree"] == "changed"
    (tmp_path / "sub").mkdir()  # a folder inside a checkout is not that checkout's root
    assert code_state(tmp_path / "sub") == {"commit": UNKNOWN, "tree": UNKNOWN}


def test_a_difference_names_both_versions_and_an_unrecorded_one_is_unknown():
    installed = {"leafbn": "0.1.0", "commit": "a" * 40, "python": "3.11.7", "ray": "2.60.0",
                 "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"}  # fmt: skip
    old = {k: v for k, v in installed.items() if k not in ("numpy", "commit")} | {"tensorflow": "2.20.0"}
    differ, unknown = version_differences(StudyRecord(versions=old), installed)
    assert differ == ["tensorflow 2.20.0 (installed 2.21.0)"]
    assert unknown == [
        f"commit (not recorded; installed {'a' * 12})",
        "numpy (not recorded; installed 2.4.6)",
    ]
    # a resume under 2.21.0 leaves the study mixed: both recorded versions are named
    record = StudyRecord(versions=old, resumes=[{"started": "x", "versions": installed}])
    assert version_differences(record, installed)[0] == ["tensorflow 2.20.0/2.21.0 (installed 2.21.0)"]
    assert version_differences(StudyRecord(versions=installed), installed) == ([], [])
    assert version_differences(StudyRecord(versions=installed), installed | {"commit": UNKNOWN}) == (
        [], [f"commit {'a' * 12} (installed: unknown)"],
    )  # fmt: skip
    assert check_versions(StudyRecord(versions=installed), strict=True, installed=installed) is None


def test_an_old_folder_still_reports_naming_what_it_did_not_record(tmp_path):
    study = tmp_path / "old"
    shutil.copytree(SHIPPED, study, ignore=shutil.ignore_patterns("report"))
    assert "numpy" not in json.loads((study / "config.json").read_text())["versions"]
    done = report_cli(str(study), "--strict-versions", "--resamples", "100")  # unknowns do not refuse
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "versions" in line]
    assert len(notes) == 1 and notes[0].startswith("note: versions the study did not record: "), notes
    assert "numpy (not recorded; installed" in notes[0] and "commit (not recorded" in notes[0]
    assert (study / "report" / "report.md").is_file()


def test_report_warns_of_another_tensorflow_and_refuses_with_strict_versions(tmp_path):
    write_study(tmp_path, lrs=[1e-1], curves=False)
    config = json.loads((tmp_path / "config.json").read_text())
    config["versions"] = versions() | {"tensorflow": "2.0.0"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    line = f"versions differ from the study's: tensorflow 2.0.0 (installed {INSTALLED_TF})"

    refused = report_cli(str(tmp_path), "--strict-versions")
    assert refused.returncode == 2 and refused.stderr.startswith(f"error: {line}"), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "report").exists()

    warned = report_cli(str(tmp_path))
    assert warned.returncode == 0, warned.stderr
    assert [w for w in warned.stderr.splitlines() if "versions" in w] == [refused.stderr.strip().replace(
        "error: ", "warning: ", 1)]  # fmt: skip
    assert (tmp_path / "report" / "report.md").is_file()


@pytest.mark.cluster
def test_resume_under_another_tensorflow_warns_records_its_versions_or_refuses(tmp_path, capsys):
    args = ["--lr", "0.1", "--bn", "off", "--seeds", "1", "--epochs", "2", "--num-cpus", "1",
            "--out", str(tmp_path), "--name", "v"]  # fmt: skip
    code, err = run_main(capsys, *args)
    assert code == 0, err
    path = tmp_path / "v" / "config.json"
    meta = json.loads(path.read_text())
    assert meta["versions"] == versions() | {"tree": meta["versions"]["tree"]} and meta["resumes"] == []
    # as written before this change (no numpy, no commit, no resumes), by another TensorFlow, unfinished
    for name in ("numpy", "commit", "tree"):
        del meta["versions"][name]
    del meta["resumes"]
    meta["versions"]["tensorflow"] = "2.0.0"
    meta["run"]["complete"] = False
    path.write_text(json.dumps(meta))
    line = f"versions differ from the study's: tensorflow 2.0.0 (installed {INSTALLED_TF}); versions the"

    code, err = run_main(capsys, *args, "--resume", "--strict-versions")
    assert code == 2 and err.startswith(f"run.py: error: {line}") and len(err.strip().splitlines()) == 1, err
    assert json.loads(path.read_text()) == meta  # refused before anything was written

    code, err = run_main(capsys, *args, "--resume")
    assert code == 0 and f"warning: {line}" in err, err
    resumed = json.loads(path.read_text())
    assert resumed["versions"] == meta["versions"] and resumed["run"]["complete"]
    assert [r["versions"]["tensorflow"] for r in resumed["resumes"]] == [INSTALLED_TF]
    assert resumed["resumes"][0]["versions"]["commit"] == versions()["commit"]
