"""leafbn.tuning.cluster_file and study/check_cluster.py: a cluster file whose nodes would miss the study's
code, or install another Ray, is refused in one line (exit 2) before ``ray up``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ray
import yaml

from leafbn.tuning.cluster_file import cluster_file_problems, load_cluster_file, repository_mounts

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "study" / "check_cluster.py"


def test_the_shipped_cluster_files_pass():
    for name in ("cluster.yaml", "cluster-local.yaml"):
        cfg = load_cluster_file(ROOT / name)
        assert repository_mounts(cfg, ROOT) == {"~/leafbn"}, name
        assert cluster_file_problems(cfg, ROOT, ray.__version__) == [], name


def test_each_problem_is_named():
    cfg = load_cluster_file(ROOT / "cluster-local.yaml")
    cfg["setup_commands"] = ["pip install 'ray[tune]==2.59.0'", "pip install ~/leafbn"]
    problems = cluster_file_problems(cfg, ROOT, ray.__version__)
    assert len(problems) == 2
    assert "install leafbn from none of the repository copies" in problems[0]
    assert f"install Ray 2.59.0, this machine runs Ray {ray.__version__}" in problems[1]
    cfg["file_mounts"] = {"~/leafbn": str(ROOT / "study")}  # not the root: no study code either
    assert "file_mounts copies no directory" in cluster_file_problems(cfg, ROOT, ray.__version__)[0]


def test_a_file_without_the_repository_mount_is_one_line_and_exit_2(tmp_path):
    cfg = load_cluster_file(ROOT / "cluster-local.yaml")
    del cfg["file_mounts"]
    broken = tmp_path / "cluster.yaml"
    broken.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, str(CHECK), str(broken)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"check_cluster.py: error: {broken}: file_mounts copies no directory")
    assert '"~/leafbn": "."' in done.stderr
    done = subprocess.run(
        [sys.executable, str(CHECK), str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cannot read it" in done.stderr
