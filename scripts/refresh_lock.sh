#!/usr/bin/env bash
# Refresh requirements-lock.txt, the tested set of versions: in a new virtual environment, install
# leafbn with its dev extras as a new user would (`pip install -e ".[dev]"`, today's releases within
# pyproject.toml's bounds), run the README's lint and tests there, and only if they pass write what is
# installed (`pip freeze --exclude-editable`: pip refuses leafbn's own editable line as a constraint).
#
#   scripts/refresh_lock.sh                 # the one command (several minutes: an install and the suite)
#   scripts/refresh_lock.sh PYTHON          # freeze PYTHON's environment instead, where the suite has
#                                           # just passed (e.g. a venv left by KEEP=1 scripts/fresh_clone.sh)
#
# The lock is for the platform it was made on (CI's: x86_64 Linux, CPython 3.11, tensorflow-cpu), which
# its header names. Commit it with the change that made it necessary (a raised Ray pin: its test reads it).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-}"
if [[ -z "$python" ]]; then
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/leafbn-lock.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m venv "$tmp/venv"
    python="$tmp/venv/bin/python"
    "$python" -m pip install --quiet -e ".[dev]"
    (export PATH="$tmp/venv/bin:$PATH"; unset PYTHONPATH; ruff check . && python -m pytest -q)
fi
where=$("$python" -c 'import platform as p; print(f"{p.system()} {p.machine()}, CPython {p.python_version()}")')
{
    echo "# The tested set of versions: every package of the environment the lint and the suite last passed"
    echo "# with, on $where, tensorflow-cpu (pip freeze --exclude-editable; leafbn itself comes"
    echo "# from the checkout). Other platforms resolve their own with pip install -e \".[dev]\"."
    echo "# Install with it (as .ci/run does):  pip install -c requirements-lock.txt -e \".[dev]\""
    echo "# Refresh it (new venv, install, lint + suite, freeze):  scripts/refresh_lock.sh"
    "$python" -m pip freeze --exclude-editable
} > requirements-lock.txt.tmp
mv requirements-lock.txt.tmp requirements-lock.txt
echo "requirements-lock.txt: $(grep -vc '^#' requirements-lock.txt) packages, $where"
