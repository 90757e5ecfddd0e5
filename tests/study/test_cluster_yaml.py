"""Checks of ``cluster.yaml``, the Ray cluster-launcher configuration (AWS) of the leafbn study.

Validation used, both offline (no cloud account, no network):

1. ``jsonschema`` against Ray's own schema, the file ``ray-schema.json`` next to
   ``ray.autoscaler.__file__`` of the installed ray, applied to the file as written.
2. Ray's own validator, the two calls ``ray up`` makes before it talks to a cloud:
   ``ray.autoscaler._private.util.prepare_config`` (merges the provider's ``defaults.yaml``) and then
   ``validate_config`` (the same schema plus Ray's consistency checks: head node type, min/max
   workers). It is a private API of ray 2.60; it is run, not skipped, so a change there shows up.

On top of the schema, the rules this project sets for the file, each checked by a function that
returns a list of problems; every rule is also run on broken variants of the file to prove it can fail:

* SECURITY: no inbound rule opens a Ray port (6379 GCS, 8265 dashboard/job server, 10001 client) or a
  range / "all traffic" rule containing one to 0.0.0.0/0 or ::/0. Checked on the rules Ray's AWS
  provider would actually authorize (its default rules plus ``provider.security_group``).
* The head's ``ray start --head`` binds the dashboard to a loopback address (or disables it).
* leafbn is installed on the head and on every worker type from the repository copy in
  ``file_mounts`` (``pip install -e <remote path>`` whose local side is the repository root).
* ``max_workers`` is set and bounded, per-type limits fit in it, ``idle_timeout_minutes`` is set.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
SCHEMA_PATH = Path(ray.autoscaler.__file__).parent / "ray-schema.json"

#: Ray's ports that must never face the internet: GCS, dashboard + job server, Ray client server.
RAY_PORTS = (6379, 8265, 10001)
#: Upper bound for max_workers: the cost cap this project accepts for one study cluster.
MAX_WORKERS_CAP = 16
MAX_IDLE_TIMEOUT_MINUTES = 60

Config = dict[str, Any]


# ------------------------------------------------------------------------------------------------
# loading and validation
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_config() -> Config:
    with CLUSTER_YAML.open() as f:
        cfg = yaml.safe_load(f)
    assert isinstance(cfg, dict), "cluster.yaml must hold a mapping"
    return cfg


@pytest.fixture()
def cfg(raw_config: Config) -> Config:
    """A fresh deep copy per test, free to mutate into a broken variant."""
    return copy.deepcopy(raw_config)


@pytest.fixture(scope="module")
def schema() -> dict:
    with SCHEMA_PATH.open() as f:
        return json.load(f)


def schema_errors(cfg: Config, schema: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(cfg)]


def ray_prepare_and_validate(cfg: Config) -> Config:
    """What `ray up` does before contacting the cloud; raises on an invalid config."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


# ------------------------------------------------------------------------------------------------
# rule checkers: each returns a list of problems (empty: the rule holds)
# ------------------------------------------------------------------------------------------------
def _ray_default_inbound_rules(extra_rules: list) -> list:
    """The inbound rules Ray's AWS provider authorizes on a new security group."""
    from ray.autoscaler._private.aws.config import _create_default_inbound_rules

    return _create_default_inbound_rules({"sg-00000000"}, copy.deepcopy(extra_rules))


def _is_world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return True  # unparsable: treat as the worst case


def _rule_ports(rule: dict) -> range | None:
    """Ports a rule opens; None for ICMP (no ports)."""
    protocol = str(rule.get("IpProtocol", "-1")).lower()
    if protocol in ("icmp", "1", "icmpv6", "58"):
        return None
    if protocol in ("-1", "all"):
        return range(0, 65536)
    lo, hi = rule.get("FromPort", -1), rule.get("ToPort", -1)
    if lo is None or hi is None or lo < 0 or hi < 0:
        return range(0, 65536)
    return range(lo, hi + 1)


def open_ray_port_problems(cfg: Config) -> list[str]:
    provider = cfg.get("provider", {})
    if provider.get("type") != "aws":
        return [f"provider {provider.get('type')!r}: these checks cover the AWS security group only"]
    problems = []
    for name, node_type in cfg.get("available_node_types", {}).items():
        node_config = node_type.get("node_config", {})
        for key in ("SecurityGroupIds", "NetworkInterfaces"):
            if key in node_config:
                problems.append(
                    f"{name}: {key} names security groups this test cannot inspect; verify their "
                    "inbound rules by hand and keep Ray's ports closed to the internet"
                )
    extra = provider.get("security_group", {}).get("IpPermissions", [])
    for rule in _ray_default_inbound_rules(extra):
        world = [r.get("CidrIp", "") for r in rule.get("IpRanges", []) if _is_world(r.get("CidrIp", ""))]
        world += [
            r.get("CidrIpv6", "") for r in rule.get("Ipv6Ranges", []) if _is_world(r.get("CidrIpv6", ""))
        ]
        ports = _rule_ports(rule)
        if not world or ports is None:
            continue
        for port in RAY_PORTS:
            if port in ports:
                problems.append(f"rule {rule} opens Ray port {port} to {world}")
    return problems


def _shell_segments(command: str) -> list[list[str]]:
    """A start/setup command split into its simple commands, each as shell words."""
    segments = []
    for part in re.split(r";|&&|\|\||\n", command):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        if words:
            segments.append(words)
    return segments


def _option(words: list[str], name: str) -> str | None:
    """Value of `--name=value` or `--name value` in words (the last one wins, as in click)."""
    value = None
    for i, word in enumerate(words):
        if word.startswith(name + "="):
            value = word.split("=", 1)[1]
        elif word == name and i + 1 < len(words):
            value = words[i + 1]
    return value


def _ray_start_segments(commands: list[str], head: bool) -> list[list[str]]:
    found = []
    for command in commands:
        for words in _shell_segments(command):
            if words[:2] == ["ray", "start"] and (("--head" in words) == head):
                found.append(words)
    return found


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dashboard_problems(cfg: Config) -> list[str]:
    starts = _ray_start_segments(cfg.get("head_start_ray_commands", []), head=True)
    if not starts:
        return ["head_start_ray_commands has no `ray start --head`"]
    problems = []
    for words in starts:
        include = _option(words, "--include-dashboard")
        if include is not None and include.lower() in ("false", "0", "no"):
            continue
        host = _option(words, "--dashboard-host")
        if host is None:
            problems.append(f"{shlex.join(words)}: no explicit --dashboard-host=127.0.0.1")
        elif not _is_loopback(host):
            problems.append(f"{shlex.join(words)}: dashboard bound to {host}, not loopback")
    return problems


def worker_start_problems(cfg: Config) -> list[str]:
    starts = _ray_start_segments(cfg.get("worker_start_ray_commands", []), head=False)
    if not starts:
        return ["worker_start_ray_commands has no `ray start --address=...`"]
    return [
        f"{shlex.join(words)}: should join the head with --address=$RAY_HEAD_IP:6379"
        for words in starts
        if _option(words, "--address") != "$RAY_HEAD_IP:6379"
    ]


def _editable_installs(commands: list[str]) -> list[str]:
    """Paths given to `pip install -e` / `--editable` (also `python -m pip`)."""
    paths = []
    for command in commands:
        for words in _shell_segments(command):
            if not any(Path(w).name.startswith("pip") for w in words) or "install" not in words:
                continue
            for i, word in enumerate(words):
                if word in ("-e", "--editable") and i + 1 < len(words):
                    paths.append(words[i + 1])
                elif word.startswith("--editable="):
                    paths.append(word.split("=", 1)[1])
    return paths


def _repo_copies(cfg: Config) -> set[str]:
    """Remote paths of file_mounts whose local side is this repository's root."""
    from leafbn.tuning.cluster_file import repository_mounts

    return repository_mounts(cfg, ROOT)


def install_problems(cfg: Config) -> list[str]:
    copies = _repo_copies(cfg)
    if not copies:
        return ["file_mounts copies no directory to the nodes from the repository root ('.')"]
    common = list(cfg.get("setup_commands", []))
    # Ray's merge: head = setup + head_setup; a worker type = its own worker_setup_commands if it
    # has them (they replace the global lists), else setup + worker_setup.
    command_lists = {"head": common + list(cfg.get("head_setup_commands", []))}
    for name, node_type in cfg.get("available_node_types", {}).items():
        if name == cfg.get("head_node_type"):
            continue
        if "worker_setup_commands" in node_type:
            command_lists[name] = list(node_type["worker_setup_commands"])
        else:
            command_lists[name] = common + list(cfg.get("worker_setup_commands", []))
    problems = []
    for name, commands in command_lists.items():
        installed = [p for p in _editable_installs(commands) if p.rstrip("/") in copies]
        if not installed:
            problems.append(
                f"{name}: setup commands do not `pip install -e` the repository copy {sorted(copies)}"
            )
    return problems


def max_workers_problems(cfg: Config) -> list[str]:
    problems = []
    total = cfg.get("max_workers")
    if not isinstance(total, int) or isinstance(total, bool):
        return [f"max_workers must be set to an integer, got {total!r}"]
    if not 1 <= total <= MAX_WORKERS_CAP:
        problems.append(f"max_workers {total} outside 1..{MAX_WORKERS_CAP}")
    head = cfg.get("head_node_type")
    node_types = cfg.get("available_node_types", {})
    workers = {k: v for k, v in node_types.items() if k != head}
    if not any(v.get("max_workers", total) >= 1 for v in workers.values()):
        problems.append("no worker node type can scale above 0 workers")
    for name, node_type in workers.items():
        if node_type.get("max_workers", total) > total:
            problems.append(f"{name}: max_workers {node_type['max_workers']} > global {total}")
    if sum(v.get("min_workers", 0) for v in node_types.values()) > total:
        problems.append("sum of min_workers exceeds max_workers")
    idle = cfg.get("idle_timeout_minutes")
    if not isinstance(idle, (int, float)) or not 0 < idle <= MAX_IDLE_TIMEOUT_MINUTES:
        problems.append(f"idle_timeout_minutes {idle!r} outside (0, {MAX_IDLE_TIMEOUT_MINUTES}]")
    return problems


# ------------------------------------------------------------------------------------------------
# the file as committed
# ------------------------------------------------------------------------------------------------
def test_schema_file_is_the_installed_rays():
    assert SCHEMA_PATH.is_file(), SCHEMA_PATH


def test_passes_rays_jsonschema(raw_config, schema):
    assert schema_errors(raw_config, schema) == []


def test_passes_rays_own_validator(raw_config):
    prepared = ray_prepare_and_validate(raw_config)
    # After Ray's merge both node kinds install leafbn (setup_commands is prepended to both).
    assert any("~/leafbn" in c for c in prepared["head_setup_commands"])
    assert any("~/leafbn" in c for c in prepared["worker_setup_commands"])


def test_cluster_name(raw_config):
    assert raw_config["cluster_name"] == "leafbn"


def test_no_ray_port_open_to_the_internet(raw_config):
    assert open_ray_port_problems(raw_config) == []


def test_only_ssh_faces_the_internet(raw_config):
    """Of what Ray will authorize, exactly SSH (22) is reachable from anywhere."""
    extra = raw_config["provider"].get("security_group", {}).get("IpPermissions", [])
    world_rules = [
        r
        for r in _ray_default_inbound_rules(extra)
        if any(_is_world(x.get("CidrIp", "")) for x in r.get("IpRanges", []))
        or any(_is_world(x.get("CidrIpv6", "")) for x in r.get("Ipv6Ranges", []))
    ]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in world_rules] == [("tcp", 22, 22)]


def test_dashboard_bound_to_loopback(raw_config):
    assert dashboard_problems(raw_config) == []


def test_workers_join_the_head(raw_config):
    assert worker_start_problems(raw_config) == []


def test_leafbn_installed_from_the_repository_copy(raw_config):
    assert install_problems(raw_config) == []
    assert raw_config["file_mounts"]["~/leafbn"] == "."


def test_max_workers_set_and_bounded(raw_config):
    assert max_workers_problems(raw_config) == []


def test_docker_image_python_and_ray_version(raw_config):
    image = raw_config["docker"]["image"]
    m = re.fullmatch(r"rayproject/ray:(?P<ray>[\w.]+)-py(?P<py>3)(?P<minor>\d+)(-\w+)?", image)
    assert m, f"unexpected image {image!r}"
    assert int(m["minor"]) >= 11, f"{image}: Python 3.{m['minor']} < 3.11"
    # its Ray version is pyproject.toml's pin: tests/test_ray_pin.py checks it with every other file


def test_every_node_type_has_an_ami(raw_config):
    """No ImageId means Ray's default AMI, which exists only for some regions."""
    from ray.autoscaler._private.aws.config import DEFAULT_AMI

    region = raw_config["provider"]["region"]
    for name, node_type in raw_config["available_node_types"].items():
        assert "ImageId" in node_type["node_config"] or region in DEFAULT_AMI, name


def test_documented_local_variant_is_valid(raw_config):
    """The on-premise changes described at the end of cluster.yaml give a config Ray accepts."""
    local = copy.deepcopy(raw_config)
    local["provider"] = {"type": "local", "head_ip": "10.0.0.10", "worker_ips": ["10.0.0.11", "10.0.0.12"]}
    local["auth"] = {"ssh_user": "me", "ssh_private_key": "~/.ssh/id_ed25519"}
    local["max_workers"] = 2
    for key in ("available_node_types", "head_node_type", "head_setup_commands"):
        del local[key]
    assert schema_errors(local, json.loads(SCHEMA_PATH.read_text())) == []
    prepared = ray_prepare_and_validate(local)
    assert prepared["max_workers"] == 2
    assert dashboard_problems(local) == [] and install_problems(local) == []


def test_documented_gcp_variant_is_valid(raw_config):
    """The GCP changes described at the end of cluster.yaml give a config Ray accepts."""
    gcp = copy.deepcopy(raw_config)
    gcp["provider"] = {
        "type": "gcp",
        "region": "us-west1",
        "availability_zone": "us-west1-a",
        "project_id": "my-project",
    }
    disks = [
        {
            "boot": True,
            "autoDelete": True,
            "type": "PERSISTENT",
            "initializeParams": {
                "diskSizeGb": 50,
                "sourceImage": "projects/deeplearning-platform-release/global/images/family/common-cpu",
            },
        }
    ]
    gcp["available_node_types"]["ray.head.default"].update(
        resources={"CPU": 0}, node_config={"machineType": "n2-standard-2", "disks": disks}
    )
    gcp["available_node_types"]["ray.worker.cpu"].update(
        resources={"CPU": 8}, node_config={"machineType": "n2-standard-8", "disks": disks}
    )
    gcp["head_setup_commands"] = ["pip install google-api-python-client"]
    ray_prepare_and_validate(gcp)


# ------------------------------------------------------------------------------------------------
# broken variants: every rule above must be able to fail
# ------------------------------------------------------------------------------------------------
def _world_rule(lo: int, hi: int, protocol: str = "tcp", v6: bool = False) -> dict:
    rule = {"IpProtocol": protocol, "FromPort": lo, "ToPort": hi}
    if v6:
        rule["Ipv6Ranges"] = [{"CidrIpv6": "::/0"}]
    else:
        rule["IpRanges"] = [{"CidrIp": "0.0.0.0/0"}]
    return rule


@pytest.mark.parametrize(
    "rule",
    [
        _world_rule(8265, 8265),
        _world_rule(6379, 6379),
        _world_rule(10001, 10001, v6=True),
        _world_rule(6000, 7000),  # a range containing 6379
        _world_rule(0, 65535),
        _world_rule(-1, -1, protocol="-1"),  # all traffic
    ],
    ids=["dashboard", "gcs", "client-v6", "range", "all-tcp", "all-traffic"],
)
def test_bad_ingress_is_caught(cfg, rule):
    cfg["provider"]["security_group"]["IpPermissions"] = [rule]
    assert open_ray_port_problems(cfg)


@pytest.mark.parametrize(
    "rule",
    [
        {"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        _world_rule(443, 443),
        _world_rule(-1, -1, protocol="icmp"),
    ],
    ids=["private-dashboard", "https", "icmp"],
)
def test_harmless_ingress_is_not_flagged(cfg, rule):
    cfg["provider"]["security_group"]["IpPermissions"] = [rule]
    assert open_ray_port_problems(cfg) == []


def test_unverifiable_security_groups_are_flagged(cfg):
    cfg["available_node_types"]["ray.head.default"]["node_config"]["SecurityGroupIds"] = ["sg-1"]
    assert open_ray_port_problems(cfg)


@pytest.mark.parametrize(
    "start",
    [
        "ray start --head --port=6379 --dashboard-host=0.0.0.0",
        "ulimit -n 65536; ray start --head --port=6379 --dashboard-host 0.0.0.0",
        "ray start --head --port=6379",  # Ray's default, but not explicit
        "ray start --address=$RAY_HEAD_IP:6379",  # no head start at all
    ],
    ids=["all-interfaces", "space-form", "implicit", "no-head"],
)
def test_bad_dashboard_binding_is_caught(cfg, start):
    cfg["head_start_ray_commands"] = ["ray stop", start]
    assert dashboard_problems(cfg)


@pytest.mark.parametrize(
    "start",
    [
        "ray start --head --port=6379 --dashboard-host=localhost",
        "ray start --head --port=6379 --include-dashboard=false",
    ],
)
def test_good_dashboard_variants_pass(cfg, start):
    cfg["head_start_ray_commands"] = ["ray stop", start]
    assert dashboard_problems(cfg) == []


def test_bad_worker_start_is_caught(cfg):
    cfg["worker_start_ray_commands"] = ["ray stop", "ray start --address=10.0.0.1:6379"]
    assert worker_start_problems(cfg)


def _head_only_install(cfg: Config) -> None:
    cfg["head_setup_commands"] = cfg["setup_commands"] + cfg["head_setup_commands"]
    cfg["setup_commands"] = []


def _pypi_install(cfg: Config) -> None:
    cfg["setup_commands"] = ["pip install leafbn"]


def _install_of_unmounted_path(cfg: Config) -> None:
    cfg["setup_commands"] = ["pip install -e ~/elsewhere"]


def _mount_of_another_directory(cfg: Config) -> None:
    cfg["file_mounts"] = {"~/leafbn": "/some/other/checkout"}


def _node_type_override_without_install(cfg: Config) -> None:
    cfg["available_node_types"]["ray.worker.cpu"]["worker_setup_commands"] = ["echo hi"]


@pytest.mark.parametrize(
    "breaks",
    [
        _head_only_install,
        _pypi_install,
        _install_of_unmounted_path,
        _mount_of_another_directory,
        _node_type_override_without_install,
    ],
)
def test_bad_install_is_caught(cfg, breaks):
    breaks(cfg)
    assert install_problems(cfg)


def test_install_via_python_m_pip_is_accepted(cfg):
    cfg["setup_commands"] = ["python -m pip install --editable=~/leafbn/"]
    assert install_problems(cfg) == []


@pytest.mark.parametrize(
    "change",
    [
        {"max_workers": None},
        {"max_workers": 0},
        {"max_workers": 1000},
        {"max_workers": "8"},
        {"idle_timeout_minutes": None},
        {"idle_timeout_minutes": 10_000},
    ],
    ids=["missing", "zero", "huge", "string", "no-idle-timeout", "idle-forever"],
)
def test_bad_max_workers_is_caught(cfg, change):
    for key, value in change.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    assert max_workers_problems(cfg)


def test_node_type_above_global_max_is_caught(cfg):
    cfg["available_node_types"]["ray.worker.cpu"]["max_workers"] = cfg["max_workers"] + 1
    assert max_workers_problems(cfg)


@pytest.mark.parametrize(
    "breaks, ray_rejects",
    [
        (lambda c: c.update(max_worker=c.pop("max_workers")), True),  # misspelled top-level key
        (lambda c: c.update(idle_timeout_minutes="5"), True),  # wrong type
        (lambda c: c["provider"]["security_group"].update(IpPermission=[]), True),  # nested typo
        (lambda c: c["available_node_types"]["ray.worker.cpu"].pop("resources"), True),  # required
        # Ray's prepare_config fills a missing cluster_name with "default": only the raw schema
        # check on the file as written notices.
        (lambda c: c.pop("cluster_name"), False),
    ],
    ids=["misspelled", "type", "nested-misspelled", "no-resources", "no-cluster-name"],
)
def test_schema_catches_bad_files(cfg, schema, breaks, ray_rejects):
    breaks(cfg)
    assert schema_errors(cfg, schema)
    if ray_rejects:
        with pytest.raises(jsonschema.ValidationError):
            ray_prepare_and_validate(cfg)


def test_rays_validator_catches_inconsistent_files(cfg):
    cfg["head_node_type"] = "no.such.type"
    with pytest.raises(ValueError):
        ray_prepare_and_validate(cfg)
    cfg["head_node_type"] = "ray.head.default"
    cfg["available_node_types"]["ray.worker.cpu"]["min_workers"] = cfg["max_workers"] + 1
    with pytest.raises(ValueError):
        ray_prepare_and_validate(cfg)


# ------------------------------------------------------------------------------------------------
# cluster-local.yaml: the on-premise file (Ray's `local` provider); tests/test_ray_up.py runs it
# ------------------------------------------------------------------------------------------------
CLUSTER_LOCAL_YAML = ROOT / "cluster-local.yaml"


@pytest.fixture()
def local_cfg() -> Config:
    with CLUSTER_LOCAL_YAML.open() as f:
        return yaml.safe_load(f)


def test_local_file_passes_rays_schema_and_validator(local_cfg, schema):
    assert schema_errors(local_cfg, schema) == []
    prepared = ray_prepare_and_validate(local_cfg)
    # Ray's merge: both the head and the workers install leafbn from the repository copy.
    assert any("~/leafbn" in c for c in prepared["head_setup_commands"])
    assert any("~/leafbn" in c for c in prepared["worker_setup_commands"])
    assert local_cfg["provider"]["type"] == "local"
    assert local_cfg["max_workers"] == len(local_cfg["provider"]["worker_ips"])


def test_local_file_listens_where_it_must_and_installs_leafbn(local_cfg):
    assert dashboard_problems(local_cfg) == []
    assert worker_start_problems(local_cfg) == []
    assert install_problems(local_cfg) == []
    assert local_cfg["file_mounts"]["~/leafbn"] == "."


def test_local_file_installs_the_local_ray(local_cfg):
    """Every node installs exactly the Ray this machine runs (a cluster needs one version)."""
    pins = [
        m["version"]
        for c in local_cfg["setup_commands"]
        for m in re.finditer(r"ray(\[[\w,]+\])?==(?P<version>[\w.]+)", c)
    ]
    assert pins == [ray.__version__], local_cfg["setup_commands"]


def test_local_file_without_the_repository_mount_is_caught(local_cfg, schema):
    del local_cfg["file_mounts"]["~/leafbn"]
    assert schema_errors(local_cfg, schema) == []  # Ray accepts it: the nodes would have no study code
    assert install_problems(local_cfg)
