"""Ray's cluster launcher for real: ``ray up cluster-local.yaml`` on this machine, a study on it,
``ray rsync-down`` of its results and ``ray down``.

The test starts an ``sshd`` of its own on 127.0.0.1 at a free port (its own ``sshd_config``, host
key, client key and authorized key in a temporary folder; no PAM, public keys only, this user
only). Ray's ``auth`` section has no port field, so the launcher reaches that port through
``ssh_proxy_command`` (a small TCP relay). The config is ``cluster-local.yaml`` with ``head_ip:
127.0.0.1``, this test's key and proxy, and the head's ``ray start`` moved to free ports, a temp
folder of its own and the loopback interface; its file mounts and setup commands are the file's.
Then: ``ray up -y``; ``ray exec … python study/run.py --grid … --address 127.0.0.1:PORT`` (2
trials of 2 epochs); ``ray rsync-down`` of the study folder; this machine's ``--address`` check
against the cluster, with a local Ray that claims another version (one line naming both);
every socket the cluster's processes listen on is loopback; ``trials.csv`` checked (every trial
once, all finished); ``ray down -y``; no process of the
cluster is left, sshd and its per-connection processes end on SIGTERM once the launcher's ssh
connections are closed, and nothing the launcher started outlives the test.

Isolation on a shared machine (other tests start Ray at the same moment under ``pytest -n 2``, and
other people's Ray may run on it):

* Home: sshd gives every session ``HOME`` and ``TMPDIR`` in the temporary folder (``SetEnv``), so
  the file mount ``~/leafbn``, ``~/ray_bootstrap_config.yaml``, the key, the autoscaler's state and
  the results land there. That home's ``~/.bashrc`` (the launcher sources it before each command)
  puts a virtual environment first on the PATH (``--system-site-packages``: the installed Ray and
  TensorFlow, ``PIP_NO_INDEX``: no download), so the setup's ``pip install -e ~/leafbn`` installs
  into it and never repoints this machine's own install (checked). The launcher runs with a
  temporary HOME and TMPDIR too; its ssh socket folder (Ray puts it in /tmp) is removed.
* Stopping: Ray's ``ray stop``, which ``ray down`` runs on the head, ends every Ray process its user
  may signal, other tests' and other people's included (as root: all of them). So in this
  cluster's sessions ``ray`` is a wrapper, first on that PATH: ``ray stop`` ends exactly the
  processes whose environment holds this cluster's marker, a variable sshd sets in every session
  it starts and every Ray process of the cluster inherits; every other ``ray`` command is Ray's
  own CLI. Proved while another Ray runs: a separate Ray head (``ray start --head`` on its own
  ports, no marker), started right after ``ray up``, must have every one of its processes alive
  after ``ray down``; it is then stopped by its own session id. (A dedicated non-root ssh user
  would confine Ray's own ``ray stop`` instead, but it cannot run a Python installed under a home
  that only its owner may enter, such as /root here.)
* Ports: the head's GCS, object manager, node manager, client server and agent ports are free
  ports picked here, not cluster-local.yaml's fixed 6379 / 8076.

One node only: not tried. A worker on 127.0.0.2 would be a second Ray node started by the head's
autoscaler over ssh on the same host: its own sshd (or the relay told apart by %h) and HOME, or the
two nodes' file mounts and setups overwrite each other; every port it binds moved apart from the
head's in ``worker_start_ray_commands``; and about the head's
setup and start time again against the suite's 4 minutes. tests/test_cluster.py runs the
multi-node study without the launcher.

Skips only where ``sshd``, ``ssh`` or ``rsync`` is missing (the reason is the install command),
never under CI (``CI=true``), where it fails instead; ``.ci/run`` installs them. sshd runs as the
user who runs the tests and logs in only that user.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from tests.fixtures.loopback_node import (
    LAUNCHER_VAR,
    MARKER_VAR,
    RELAY_SCRIPT,
    alive,
    find_sshd,
    free_ports,
    kill_pids,
    make_node_home,
    marked_pids,
    private_sshd,
    session_pids,
)

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CLUSTER_LOCAL = REPO / "cluster-local.yaml"

INSTALL = "sudo apt-get install -y openssh-server openssh-client rsync"


def cluster_config(root: Path, port: int, key: Path, ports: list[int]) -> Path:
    """cluster-local.yaml for this machine: 127.0.0.1, this test's key and proxy, free Ray ports."""
    cfg = yaml.safe_load(CLUSTER_LOCAL.read_text())
    gcs, object_manager, node_manager, client, agent = ports
    relay = root / "ssh" / "relay.py"
    relay.write_text(RELAY_SCRIPT)
    cfg["cluster_name"] = f"leafbn-test-{root.name}"
    cfg["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    cfg["max_workers"] = 0
    cfg["auth"] = {
        "ssh_user": getpass.getuser(),
        "ssh_private_key": str(key),
        "ssh_proxy_command": f"{sys.executable} {relay} 127.0.0.1 {port}",
    }
    moved = {"--port": gcs, "--object-manager-port": object_manager}
    start = []
    for command in cfg["head_start_ray_commands"]:
        for option, value in moved.items():
            command = re.sub(rf"{option}=\d+", f"{option}={value}", command)
        if "ray start" in command:  # loopback only, and ports and a temp folder of its own
            command = command.replace("ray start", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start")
            command += (
                f" --node-ip-address=127.0.0.1 --node-manager-port={node_manager}"
                f" --ray-client-server-port={client} --dashboard-agent-listen-port={agent}"
                f" --include-dashboard=false --num-cpus=1 --temp-dir={root / 'ray'}"
            )
        start.append(command)
    cfg["head_start_ray_commands"] = start
    path = root / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def timed_launcher(root: Path, marker: str, timings: dict):
    """``ray(*args)``: Ray's CLI here, with a temporary HOME and TMPDIR; fails the test on an error.

    Each command's wall time goes in ``timings[args[0]]``, its output in ``timings["log"]``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    (root / "launcher").mkdir()
    env.update(HOME=str(root / "launcher"), TMPDIR=str(root / "launcher"), RAY_USAGE_STATS_ENABLED="0")
    env[LAUNCHER_VAR] = marker  # its ssh control masters are processes of this test too
    timings["log"] = []

    def ray(*args: str, timeout: float = 240) -> str:
        command = [sys.executable, "-m", "ray.scripts.scripts", *args]
        started = time.monotonic()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        timings[args[0]] = time.monotonic() - started
        timings["log"].append(done.stdout + done.stderr)
        assert done.returncode == 0, (
            f"ray {shlex.join(args)}: exit {done.returncode}\n{timings['log'][-1][-4000:]}"
        )
        return done.stdout

    return ray


def start_other_ray(root: Path, ports: list[int]) -> subprocess.Popen:
    """A Ray head that is not the cluster's (no marker), in a session of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != MARKER_VAR}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--node-ip-address=127.0.0.1",
        f"--port={ports[0]}", f"--ray-client-server-port={ports[1]}",
        f"--dashboard-agent-listen-port={ports[2]}", "--include-dashboard=false", "--num-cpus=0",
        f"--temp-dir={root / 'other'}", "--block",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def _editable_location() -> str | None:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.distribution("leafbn").read_text("direct_url.json")
    return None


@pytest.fixture()
def sshd_or_skip() -> None:
    """Skip (outside CI) or fail (``CI=true``) where sshd, ssh or rsync is missing."""
    missing = [name for name in ("ssh", "ssh-keygen", "rsync") if shutil.which(name) is None]
    missing += ["sshd"] if find_sshd() is None else []
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{', '.join(missing)} missing (.ci/run installs them): {INSTALL}", pytrace=False)
        pytest.skip(f"{', '.join(missing)} missing: {INSTALL}")


def test_ray_up_runs_a_study_and_ray_down_leaves_nothing(sshd_or_skip, monkeypatch):
    # Short: Ray's unix socket paths under the temp folder must stay under ~107 characters.
    root = Path(tempfile.mkdtemp(prefix="lru-", dir="/tmp"))
    root.chmod(0o755)  # sshd's sessions read the home in it
    marker, install_before, other, timings = secrets.token_hex(8), _editable_location(), None, {}
    begun = time.monotonic()
    try:
        home = make_node_home(root, marker)
        with private_sshd(root, home, marker) as (port, key, closed):
            ports = free_ports(8)
            config = cluster_config(root, port, key, ports[:5])
            ray = timed_launcher(root, marker, timings)
            timings["setup"] = time.monotonic() - begun
            ray("up", "-y", "--no-config-cache", str(config))
            other = start_other_ray(root, ports[5:])  # a Ray that is not the cluster's, up during `ray down`
            study = (
                "cd / && python -c 'import leafbn; print(leafbn.__file__)'"  # the installed leafbn
                " && cd ~/leafbn && python study/run.py --grid --lr 0.01 --bn off,on --seeds 1 --epochs 2"
                f" --address 127.0.0.1:{ports[0]} --out ~/leafbn-results --name tiny"
            )
            said = ray("exec", str(config), study)
            ray("rsync-down", str(config), "~/leafbn-results/tiny/", str(root / "fetched"))
            mismatch = version_mismatch_message(f"127.0.0.1:{ports[0]}", monkeypatch)
            exposed = [a for a in listening(set(marked_pids(marker))) if not _is_loopback(a)]
            other_pids = wait_for_ray(other, ports[5])
            ray("down", "-y", str(config))
            left, other_left = marked_pids(marker), [p for p in other_pids if alive(p)]
            control = re.search(r"ControlPath=(\S+)/%C", "\n".join(timings["log"]))
        timings["all"] = time.monotonic() - begun
        print(" ".join(f"{k} {v:.1f} s" for k, v in timings.items() if k != "log"))
        assert not left, f"ray down left the cluster's processes running: {left}"
        assert not exposed, f"the cluster's processes listen beyond loopback: {exposed}"
        assert other_left == other_pids, (
            "ray down stopped processes of a Ray instance that is not the cluster's"
        )
        assert closed["left"] == [], f"sshd's processes outlived it: {closed['left']}"
        assert closed["sessions"] == [], f"processes of the cluster's sessions outlived sshd: {closed}"
        assert not marked_pids(marker, LAUNCHER_VAR), "the launcher's processes outlived the test"
        assert _editable_location() == install_before, "the cluster's setup repointed this machine's leafbn"
        check_trials(root / "fetched" / "trials.csv", epochs=2)
        # The nodes' Python (the venv Ray runs in) imports the copy that `ray up` made and installed.
        assert str(home / "leafbn" / "leafbn" / "__init__.py") in said, said[-2000:]
        assert mismatch.startswith(f"--address 127.0.0.1:{ports[0]}: the cluster runs Ray {ray_version()} ")
        assert "this machine Ray 0.0.1 " in mismatch and "\n" not in mismatch, mismatch
    finally:
        if other is not None:
            kill_pids(lambda: session_pids(other.pid), grace=0.5)  # ours, and checked already
            other.wait()
        if "control" in locals() and control:
            shutil.rmtree(control.group(1), ignore_errors=True)  # the launcher's ssh sockets (in /tmp)
            with contextlib.suppress(OSError):
                os.rmdir(Path(control.group(1)).parent)  # the launcher's folder for this user, if empty
        shutil.rmtree(root, ignore_errors=True)


def version_mismatch_message(address: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What this machine's ``--address`` check says of the cluster when this Ray claims 0.0.1."""
    import ray as local_ray

    from leafbn.tuning.session import StudyError, check_reachable

    check_reachable(address)  # the same version: no complaint
    monkeypatch.setattr(local_ray, "__version__", "0.0.1")
    try:
        check_reachable(address)
    except StudyError as exc:
        return str(exc)
    finally:
        monkeypatch.undo()
    return "no error"


def listening(pids: set[int]) -> list[str]:
    """Local addresses of the TCP/UDP sockets on which one of ``pids`` listens (``ss``)."""
    out = subprocess.run(["ss", "-ltunpH"], capture_output=True, text=True, check=True).stdout
    return [
        line.split()[4]
        for line in out.splitlines()
        if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids and len(line.split()) >= 5
    ]


def _is_loopback(local: str) -> bool:
    host = local.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
    return host == "::1" or host.startswith("127.")


def ray_version() -> str:
    return metadata.version("ray")


def check_trials(path: Path, epochs: int) -> None:
    """The tiny study's trials.csv: lr 0.01 with BN off and on, seed 0, each once, all finished."""
    import pandas as pd

    trials = pd.read_csv(path, dtype={"trial_id": str, "error": str})
    assert trials["trial_id"].is_unique, trials["trial_id"]
    assert sorted(zip(trials["lr"], trials["bn"].astype(bool))) == [(0.01, False), (0.01, True)], trials
    assert (trials["error"].fillna("") == "").all(), trials[["trial_id", "error"]]
    assert (trials["epochs_run"] == epochs).all(), trials[["trial_id", "epochs_run"]]


def wait_for_ray(proc: subprocess.Popen, port: int, timeout: float = 60) -> list[int]:
    """The processes of the Ray head ``proc`` once its GCS answers at 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            time.sleep(1.0)  # the raylet registers after the GCS
            return session_pids(proc.pid)
        time.sleep(0.1)
    raise RuntimeError(f"the other Ray head did not start (exit {proc.poll()})")
