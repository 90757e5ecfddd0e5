#!/usr/bin/env bash
# A fresh clone, tried: clone this repository's committed HEAD into a temporary folder with the shared
# data beside it (../shared, a link), make a new virtual environment, run the README's two commands
# there and print how long each part took.
#
#   scripts/fresh_clone.sh                 # both commands: the default study, then lint + the suite
#   scripts/fresh_clone.sh --install-only  # only their `pip install` parts
#
# Environment: SHARED (default: ../shared beside this checkout, else $LEAFBN_SHARED), KEEP=1 keeps
# the temporary folder (its venv can then be frozen: scripts/refresh_lock.sh FOLDER/venv/bin/python).
# Install times depend on pip's cache and on the package index reached, not only on the machine.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
install_only=0
[[ "${1:-}" == "--install-only" ]] && install_only=1
shared="${SHARED:-${LEAFBN_SHARED:-$repo/../shared}}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/leafbn-fresh.XXXXXX")"
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$tmp"' EXIT
times=()

timed() {  # timed LABEL COMMAND...: run it, remember and print its wall time
    local label="$1" start end
    shift
    start=$EPOCHREALTIME
    "$@"
    end=$EPOCHREALTIME
    times+=("$(awk -v l="$label" -v s="$start" -v e="$end" 'BEGIN { printf "%-34s %8.1f s", l, e - s }')")
    echo "fresh_clone: ${times[-1]}" >&2
}

git clone --quiet "$repo" "$tmp/leafbn"
[[ -d "$shared" ]] && ln -s "$(cd "$shared" && pwd)" "$tmp/shared"
cd "$tmp/leafbn"
echo "fresh_clone: $(git log -1 --format='%h %s' | cut -c1-80) in $tmp" >&2
unset PYTHONPATH LEAFBN_SHARED   # nothing of this machine's own checkout leaks in; ../shared is found
timed "python -m venv" python3 -m venv "$tmp/venv"
export PATH="$tmp/venv/bin:$PATH"
# The README's first command, then its second (the second's install adds the dev extras)
timed "1. pip install -e ." pip install --quiet -e .
[[ $install_only == 1 ]] || timed "1. python study/run.py --grid" python study/run.py --grid
timed "2. pip install -e \".[dev]\"" pip install --quiet -e ".[dev]"
if [[ $install_only == 0 ]]; then
    timed "2. ruff check ." ruff check .
    timed "2. python -m pytest" python -m pytest -q
fi
echo "fresh_clone: $(python -c 'import platform; print(platform.python_version(), platform.machine())'),"\
     "$(nproc) CPUs; wall times:"
printf '  %s\n' "${times[@]}"
