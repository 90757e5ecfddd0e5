"""leafbn.report.writer and study/report.py on small constructed studies (synthetic tables only)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from leafbn.report.writer import write_report
from tests.fixtures.synthetic import BN, LRS, NOBN, make_curves, make_optuna_study, make_trials

ROOT = Path(__file__).resolve().parents[2]


def write_study(
    folder: Path,
    nobn: dict = NOBN,
    bn: dict = BN,
    lrs: list = LRS,
    depths: tuple = (3,),
    curves: bool = True,
    config: bool = True,
    expected: int | None = None,
) -> pd.DataFrame:
    """Write trials.csv (+ curves.csv, config.json) of a synthetic study with known answers."""
    folder.mkdir(parents=True, exist_ok=True)
    table = make_trials(nobn, bn, lrs, depths, epochs=3)
    table.to_csv(folder / "trials.csv", index=False)
    if curves:
        make_curves(table).to_csv(folder / "curves.csv", index=False)
    if config:
        cfg = {
            "study": {
                "name": "synthetic",
                "lr": lrs,
                "bn": [False, True],
                "depth": list(depths),
                "width": [100],
                "bn_momentum": [0.99],
                "bn_placement": ["before"],
                "seeds": 5,
                "epochs": 3,
            },
            "data": {"source": "embedded", "rows": 990, "classes": 99, "features": 192, "sha256": "ab" * 32},
            "versions": {"leafbn": "0.0"},
            "run": {
                "started": "2026-01-01T00:00:00Z",
                "finished": "2026-01-01T00:10:00Z",
                "wall_time_s": 600.0,
                "ray_nodes": 2,
                "ray_cpus": 8,
                "trials_expected": expected if expected is not None else len(table),
                "trials_finished": len(table),
            },
        }
        (folder / "config.json").write_text(json.dumps(cfg))
    return table


def report_warned(folder: Path, **options) -> tuple[Path, str]:
    """write_report's path and every warning it gave, joined."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        path = write_report(folder, **options)
    return path, " | ".join(str(w.message) for w in record)


def report_text(md: Path) -> str:
    return md.read_text(encoding="utf-8")


def check_self_contained(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    pngs = sorted(report_dir.glob("*.png"))
    assert html.count("data:image/png;base64,") == len(pngs)
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert all(r.startswith("data:") for r in refs), refs
    assert "<link" not in html and "<script" not in html
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    for png in pngs:
        assert f"]({png.name})" in md


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("full")
    write_study(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete study reports without a single warning
        return write_report(folder)


# ------------------------------------------------------------------------------------------------
def test_full_report_files_and_html(full_report):
    out = full_report.parent
    assert full_report == out / "report.md" and out.name == "report"
    for name in (
        "report.md", "report.html", "answer.json", "loss_vs_lr.png", "bn_effect.png", "learning_curves.png",
        "runs_vs_lr.png", "success_rate.png", "bootstrap.png", "expected_best.png", "answer.png",
        "specification.png",
    ):  # fmt: skip
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob("heatmap_*.png"))  # no axis besides lr and bn varies
    check_self_contained(out)


def test_full_report_answer_follows_the_numbers(full_report):
    md = report_text(full_report)
    assert "**Verdict: BN more robust** — P(BN's trainable range is wider) = 1.000" in md
    assert "over 5 seeds per learning rate and arm" in md
    assert (
        "Width of learning rates in which a run trains: with BN 4.00 decades (the same in every resample), "
        "without BN 2.00 decades (the same in every resample); BN − no BN: +2.00 decades"
    ) in md
    assert "at which at least half train is 31.6 (the same in every resample) with BN" in md
    assert md.index("![") == md.index("![answer](answer.png)") < md.index("## What was run")  # seen first
    assert "holds under all 27 specifications" in md
    assert "Without BN: 20 of 35 runs diverged, at every learning rate ≥ 1 in every seed." in md
    assert "With BN: none of 35 runs diverged." in md
    assert (
        "by the paired t-test over the (split, seed) pairs with Holm's correction across learning rates "
        "(p < 0.05), BN's outcome is "
        "lower at learning rate 0.01, 0.1 (by 0.1–0.2 nats); "
        "not significantly different at learning rate 0.001."
    ) in md
    assert "Wilcoxon signed-rank test (also Holm-corrected) disagrees at 0.01, 0.1: with fewer than 6" in md
    assert "extend beyond the grid" not in md
    assert "No test at 1, 10, 100, 1000: no-BN diverged in all seeds." in md
    assert "Overall: lr=0.1, bn=on" in md
    # what was run, from config.json
    assert "70 present of 70 expected" in md and "Ray nodes 2, CPUs 8" in md and "wall time 10m 00s" in md
    assert "## Caveats" in md and "One train/validation split" in md and "## Warnings" not in md
    assert re.search(r"^\| *bn *\| *lr *\| *train", md, re.MULTILINE)  # tables made it in
    assert "_How sure the answer is:" in md  # every figure has its caption


def test_answer_json_holds_the_verdict_and_its_intervals(full_report):
    record = json.loads((full_report.parent / "answer.json").read_text())
    assert record["verdict"] == "bn_more_robust" and record["p_bn_wider"] == 1.0
    assert record["width_decades"]["bn"] == {"estimate": 4.0, "ci_low": 4.0, "ci_high": 4.0}
    assert record["difference_decades"]["estimate"] == 2.0
    settings = record["settings"]
    assert (record["seeds"], record["splits"], settings["window"], settings["tolerance"]) == (5, 1, 10, 0.5)
    assert settings["resamples"] == 2000 and len(record["families"]) == 1
    assert settings["outcome_source"] == "median of the last 10 epochs"
    spec = record["specification"]
    assert len(spec["rows"]) == 27 and spec["holds"] and "all 27" in spec["headline"]


def test_a_mean_pulled_up_by_few_seeds_is_a_caveat(tmp_path, full_report):
    assert "above their median" not in report_text(full_report)  # the synthetic spread is small
    table = write_study(tmp_path, curves=False)
    spike = (table["lr"] == 1e-2) & table["bn"] & (table["seed"] >= 3)
    table.loc[spike, "final_val_loss"] = [40.0, 120.0]  # two seeds' last epochs spiked
    table.to_csv(tmp_path / "trials.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = report_text(write_report(tmp_path))
    caveat = next(line for line in md.splitlines() if "above their median" in line)
    assert caveat.startswith("- 1 configuration(s) have a mean outcome more than 0.5 nats")
    assert "lr=0.01, bn=on (mean 32.25, median 0.42)" in caveat


def test_opposite_result_is_reported(tmp_path):
    write_study(tmp_path, nobn=BN, bn=NOBN, curves=False, lrs=LRS[:5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = report_text(write_report(tmp_path))
    assert "**Verdict: BN less robust**" in md and "BN − no BN: -1.50 decades" in md
    assert "**Outcome read from the final epoch for 40 runs**" in md
    assert "With BN: 10 of 25 runs diverged, at every learning rate ≥ 1 in every seed." in md
    assert "No test at 1, 10: BN diverged in all seeds." in md
    assert "BN's outcome is higher at learning rate 0.01, 0.1" in md


def test_no_difference_is_reported(tmp_path):
    same = {1e-3: 1.0, 1e-2: 0.5, 1e-1: 0.5}
    write_study(tmp_path, nobn=same, bn=same, lrs=[1e-3, 1e-2, 1e-1], curves=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = report_text(write_report(tmp_path, tolerance=0.1))
    assert "**Verdict: no difference**" in md and "P(BN's trainable range is wider) = 0.500" in md
    assert "BN's outcome is not significantly different at learning rate 0.001, 0.01, 0.1" in md
    assert "is lower at" not in md and "is higher at" not in md
    assert "The no-BN upper edge is the grid's end; the BN upper edge is the grid's end" in md


def test_empty_study_still_reports(tmp_path):
    table = write_study(tmp_path, curves=False)
    table.iloc[0:0].to_csv(tmp_path / "trials.csv", index=False)  # header only
    pd.DataFrame(columns=["trial_id", "epoch", "train_loss", "val_loss", "val_accuracy"]).to_csv(
        tmp_path / "curves.csv", index=False
    )
    md_path, warned = report_warned(tmp_path)
    assert "is empty: no trials" in warned and "partial study: 0 of 70" in warned
    md = report_text(md_path)
    assert "No trials in `trials.csv`" in md and "## Warnings" in md and "is empty" in md
    assert "0 of 70 expected trials are present" in md and "Missing:" in md
    assert (md_path.parent / "report.html").is_file()
    check_self_contained(md_path.parent)
    (tmp_path / "trials.csv").write_text("")  # zero bytes: the same
    md_path, warned = report_warned(tmp_path)
    assert md_path.is_file() and "is empty" in warned


def test_partial_study_reports_what_is_missing(tmp_path):
    table = write_study(tmp_path, lrs=[1e-2, 1e-1, 1.0], expected=None, curves=False)
    table[table["lr"] < 1].iloc[:-2].to_csv(tmp_path / "trials.csv", index=False)  # 18 of 30
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["run"] = {"trials_expected": 30}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    md_path, warned = report_warned(tmp_path)
    assert "partial study: 18 of 30 expected trials present" in warned
    md = report_text(md_path)
    assert "18 of 30 expected trials are present" in md
    assert (
        "lr=1, bn=off, depth=3, width=100, bn_momentum=0.99, bn_placement=before, batch_size=10 (0/5 seeds)"
        in md
    )
    assert "lr=0.1, bn=on" in md and "(3/5 seeds)" in md
    check_self_contained(md_path.parent)


def test_missing_curves_and_config_warn_and_heatmaps_appear(tmp_path):
    write_study(tmp_path, lrs=[1e-1, 1.0], depths=(2, 3), curves=False, config=False)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "stale.png").write_bytes(b"old")  # from an earlier report: removed
    with pytest.warns(UserWarning) as record:
        md_path = write_report(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "curves.csv" in messages and "config.json" in messages
    out = md_path.parent
    assert (out / "heatmap_depth.png").is_file() and not (out / "learning_curves.png").exists()
    assert not (out / "stale.png").exists()
    md = report_text(md_path)
    assert "### depth=2" in md and "### depth=3" in md and "config.json is missing" in md
    check_self_contained(out)


def test_optuna_study_gets_its_plots(tmp_path):
    import joblib

    write_study(tmp_path, lrs=[1e-2, 1e-1], curves=False)
    joblib.dump(make_optuna_study(), tmp_path / "optuna_study.pkl")
    md_path, warned = report_warned(tmp_path)
    assert "Optuna" not in warned
    out = md_path.parent
    assert (out / "optuna_history.png").is_file() and (out / "optuna_importances.png").is_file()
    check_self_contained(out)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    command = [sys.executable, str(ROOT / "study" / "report.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli_exit_2_on_bad_input(tmp_path):
    missing = run_cli(str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ") and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr
    no_trials = run_cli(str(tmp_path))
    assert (
        no_trials.returncode == 2 and "trials.csv" in no_trials.stderr and "Traceback" not in no_trials.stderr
    )
    write_study(tmp_path, lrs=[1e-1], curves=False)
    whole = (tmp_path / "trials.csv").read_text()
    (tmp_path / "trials.csv").write_text(whole[: whole.rindex("\n", 0, -1) + 20])  # cut mid-line
    cut = run_cli(str(tmp_path))
    assert cut.returncode == 2 and len(cut.stderr.strip().splitlines()) == 1, cut.stderr
    assert cut.stderr.startswith(f"error: {tmp_path / 'trials.csv'}: line ") and "Traceback" not in cut.stderr
    assert not (tmp_path / "report").exists()


def test_cli_writes_the_report(tmp_path):
    write_study(tmp_path, lrs=[1e-1], curves=False)
    for flag, value in (
        ("--tolerance", "-1"),
        ("--margin", "nan"),
        ("--window", "0"),
        ("--resamples", "5"),
    ):
        bad = run_cli(str(tmp_path), flag, value)
        assert bad.returncode == 2 and bad.stderr.startswith(f"error: {flag} {value}"), bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    ok = run_cli(str(tmp_path), "--tolerance", "0.2")
    assert ok.returncode == 0, ok.stderr
    assert Path(ok.stdout.strip()) == tmp_path / "report" / "report.md"
    assert "warning: " in ok.stderr and "curves.csv" in ok.stderr
    assert "within 0.2 nats" in (tmp_path / "report" / "report.md").read_text()
