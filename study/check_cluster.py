"""Check a Ray cluster-launcher file before ``ray up``: the nodes get this repository's code and
install leafbn from it, with this machine's Ray version.

    python study/check_cluster.py cluster-local.yaml

Prints ``ok: FILE`` and exits 0, or one line per problem and exits 2. Ray's own schema check
(which ``ray up`` makes) comes on top: this one covers what Ray accepts but the study needs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, too

from leafbn.tuning.cluster_file import ClusterFileError, cluster_file_problems, load_cluster_file

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="the cluster file (cluster.yaml, cluster-local.yaml)")
    args = parser.parse_args(argv)
    from importlib.metadata import version

    try:
        cfg = load_cluster_file(args.file)
    except ClusterFileError as exc:
        print(f"check_cluster.py: error: {exc}", file=sys.stderr)
        return 2
    problems = cluster_file_problems(cfg, ROOT, version("ray"))
    for problem in problems:
        print(f"check_cluster.py: error: {args.file}: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"ok: {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
