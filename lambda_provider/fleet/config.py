"""The stack config of a fleet: schema, defaults and validation (every error names the key and the fix).

Keys live in the project namespace (`lambda-sae:` in Pulumi.<stack>.yaml); see `SCHEMA_DOC` below and README.
This module is the one import path (`lambda_provider.fleet.config`) and parses the fleet's shape: target, node groups
and placements, filesystem, budget, firewall, and the checks across them. Its parts, one key each, sit beside it:
config_keys.py (sshKey), config_data.py (data, hfToken), config_training.py (training, probe); config_reader.py
holds the `Reader` they all report problems to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lambda_provider.domain import FILESYSTEM_NAME_MAX, FILESYSTEM_NAME_PATTERN, Placement
from lambda_provider.fleet.config_data import DATA_DEST_PATTERN, DATA_RESERVED, DataEntry, parse_data, parse_hf_token
from lambda_provider.fleet.config_keys import SshKeyConfig, parse_ssh_key
from lambda_provider.fleet.config_reader import NAME_PATTERN, Reader
from lambda_provider.fleet.config_training import (
    CacheConfig,
    ProbeConfig,
    TrainingConfig,
    parse_probe,
    parse_training,
)
from lambda_provider.resources.firewall_ruleset import normalize_rules

__all__ = [
    "API_RULE_KEYS",
    "ARM64_TYPES",
    "DATA_DEST_PATTERN",
    "DATA_RESERVED",
    "GPU_COUNT_PATTERN",
    "MAX_NODES",
    "NAME_PATTERN",
    "SCHEMA_DOC",
    "TARGETS",
    "Budget",
    "CacheConfig",
    "DataEntry",
    "FilesystemConfig",
    "FleetConfig",
    "FleetConfigError",
    "NodeGroup",
    "ProbeConfig",
    "SshKeyConfig",
    "TrainingConfig",
    "architecture_of",
    "gpus_of_type",
    "is_loopback_url",
    "parse_fleet_config",
    "plan_problems",
]

TARGETS = ("emulator", "lambda")
API_RULE_KEYS = {"portRange": "port_range", "sourceNetwork": "source_network"}  # stack config key -> API key
GPU_COUNT_PATTERN = re.compile(r"^gpu_(\d+)x_")
MAX_NODES = 64  # a sane fleet: beyond it a typo (count: 100000) would launch, and bill, a small data centre
# CPU architecture of the arm64 types, for catalogues that omit the undeclared `architecture` field (the client then
# reads x86_64); the live catalogue says arm64 for these (../shared/lambda-cloud/NOTES.md).
ARM64_TYPES = frozenset({"gpu_1x_gh200"})

SCHEMA_DOC = """\
lambda-sae:target        emulator | lambda (required). emulator refuses a non-loopback API URL.
lambda-sae:nodeGroups    list of {name, count, placements: [{instanceType, region}], bootTimeoutSeconds?}
                         placements in preference order; every type of a group must have the same GPU count;
                         at most {MAX_NODES} nodes in all.
lambda-sae:sshKey        {name?, publicKeyPath?, privateKeyPath?}; no publicKeyPath: a key pair is generated
                         (private half a Pulumi secret). privateKeyPath defaults to publicKeyPath minus '.pub'.
lambda-sae:filesystem    {name, region, deleteOnDestroy: false}; kept on destroy unless deleteOnDestroy is true.
lambda-sae:training      {config: training/configs/X.yaml, overrides: {key: value}, runName, allowCpu: false,
                         waitMinutes: 0 (0 = do not wait), masterPort, readyTimeoutSeconds: 900,
                         launchTimeoutSeconds: 900 (until every rank has taken its first step),
                         allowMixedArchitectures: false (placements spanning arm64 and x86_64),
                         cache: optional true | {shardVectors: 262144, dtype: auto|float32|bfloat16|float16,
                         maxTokens}: cache an hf source's activations to shards in the run directory
                         (python -m training.cache_activations) instead of training an SAE}
lambda-sae:budget        {maxUsdPerHour, maxHours} (both required, > 0)
lambda-sae:probe         optional {enabled: false, data: JSONL path on the node, layers: [hf_layer, ...],
                         trainExamples, testExamples}: PII probes on the head node after the run (needs
                         training.waitMinutes > 0); report next to the SAE, span F1s in training.probe
lambda-sae:firewall      optional {rules: [{protocol: tcp|udp|icmp|all, portRange: [min, max], sourceNetwork: CIDR,
                         description}]}: a ruleset in the filesystem's region attached to every node (inbound
                         traffic only where a rule allows it); one rule must allow SSH (tcp 22) to the nodes.
lambda-sae:data         optional {<path on the filesystem>: <local file or directory>}: sent to the filesystem
                         before the run (only what changed since the last `up`); the trainer reads it at
                         /lambda/nfs/<filesystem.name>/<path>. Relative local paths are from the project directory.
lambda-sae:hfToken       optional secret (`pulumi config set --secret lambda-sae:hfToken hf_...`): HF_TOKEN in the
                         trainers' environment, for gated models; never stored or sent in clear
lambda:apiKey (secret)   or LAMBDA_API_KEY; lambda:apiUrl or LAMBDA_API_URL (see lambda_provider/resources/settings.py)
""".replace("{MAX_NODES}", str(MAX_NODES))


class FleetConfigError(ValueError):
    """One or more stack config problems; str() lists each as `key: problem -- fix`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid fleet stack config:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class NodeGroup:
    name: str
    count: int
    placements: tuple[Placement, ...]
    gpus_per_node: int
    boot_timeout_seconds: float | None = None


@dataclass(frozen=True)
class FilesystemConfig:
    name: str
    region: str
    delete_on_destroy: bool = False


@dataclass(frozen=True)
class Budget:
    max_usd_per_hour: float
    max_hours: float


@dataclass(frozen=True)
class FleetConfig:
    target: str
    node_groups: tuple[NodeGroup, ...]
    ssh_key: SshKeyConfig
    filesystem: FilesystemConfig
    training: TrainingConfig
    budget: Budget
    firewall_rules: tuple[dict[str, Any], ...] | None = None  # API form (port_range, source_network); None: none
    probe: ProbeConfig = ProbeConfig()
    data: tuple[DataEntry, ...] = ()
    hf_token: str | None = field(default=None, repr=False)  # a Pulumi secret's plain value: never printed

    @property
    def node_count(self) -> int:
        return sum(g.count for g in self.node_groups)


def gpus_of_type(instance_type: str) -> int | None:
    match = GPU_COUNT_PATTERN.match(instance_type)
    return int(match.group(1)) if match else (0 if instance_type.startswith("cpu_") else None)


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_fleet_config(
    raw: dict[str, Any], *, api_url: str | None, repo_root: Path, secret_keys: Collection[str] = ()
) -> FleetConfig:
    """Validate the project-namespace config (keys without the `lambda-sae:` prefix); `secret_keys`: which of them
    the stack stores as secrets."""
    r = Reader()
    target = raw.get("target")
    if target not in TARGETS:
        r.fail(
            "target",
            f"must be one of {', '.join(TARGETS)}, got {target!r}",
            "set `lambda-sae:target: emulator` for the local emulator or `lambda` for a real account",
        )
    elif target == "emulator" and api_url and not is_loopback_url(api_url):
        r.fail(
            "target",
            f"the stack targets the emulator but the API URL {api_url} is not a loopback address",
            "point lambda:apiUrl / LAMBDA_API_URL at the local emulator (127.0.0.1) or set target: lambda",
        )
    elif target == "lambda" and api_url and is_loopback_url(api_url):
        r.fail(
            "target",
            f"the stack targets Lambda Cloud but the API URL {api_url} is loopback",
            "set target: emulator, or unset lambda:apiUrl / LAMBDA_API_URL for the real API",
        )

    filesystem = _filesystem(r, raw.get("filesystem"))
    groups = _node_groups(r, raw.get("nodeGroups"), filesystem)
    ssh_key = parse_ssh_key(r, raw.get("sshKey"))
    budget_raw = r.mapping(raw.get("budget"), "budget", {"maxUsdPerHour", "maxHours"})
    if raw.get("budget") is None:
        r.fail(
            "budget",
            "missing",
            "set budget: {maxUsdPerHour: N, maxHours: H} so a forgotten fleet cannot bill without limit",
        )
    budget = Budget(
        r.number(budget_raw, "maxUsdPerHour", "budget", required=True, default=0.0),
        r.number(budget_raw, "maxHours", "budget", required=True, default=0.0),
    )
    training = parse_training(r, raw.get("training"), repo_root, target == "emulator", budget.max_hours)
    if target == "lambda" and training.allow_cpu:
        r.fail(
            "training.allowCpu",
            "CPU training is only allowed on the emulator",
            "remove training.allowCpu (real nodes must show their GPUs to torch)",
        )
    firewall = _firewall(r, raw.get("firewall"))
    probe = parse_probe(r, raw.get("probe"), training)
    data = parse_data(r, raw.get("data"), repo_root)
    hf_token = parse_hf_token(r, raw.get("hfToken"), "hfToken" in secret_keys)
    known = ("target", "nodeGroups", "sshKey", "filesystem", "training", "budget", "firewall", "probe")
    known += ("data", "hfToken")
    for unknown in sorted(set(raw) - set(known)):
        r.fail(unknown, "unknown key", f"use {', '.join(known)}")
    if not r.problems:
        _check_world(r, groups, training)
    if r.problems:
        raise FleetConfigError(r.problems)
    assert filesystem is not None
    return FleetConfig(
        str(target), tuple(groups), ssh_key, filesystem, training, budget, firewall, probe, data, hf_token
    )


def _firewall(r: Reader, raw: Any) -> tuple[dict[str, Any], ...] | None:
    if raw is None:
        return None
    m = r.mapping(raw, "firewall", {"rules"})
    rules_raw = m.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        r.fail(
            "firewall.rules",
            "missing or empty",
            "list the inbound rules, e.g. [{protocol: tcp, portRange: "
            "[22, 22], sourceNetwork: 203.0.113.7/32, description: ssh}], or remove firewall",
        )
        return None
    renamed = [
        {API_RULE_KEYS.get(k, k): v for k, v in rule.items()} if isinstance(rule, dict) else rule for rule in rules_raw
    ]
    rules, problems = normalize_rules(renamed)
    for problem in problems:
        where, _, what = problem.partition(": ")
        for api_key, config_key in ((v, k) for k, v in API_RULE_KEYS.items()):
            where, what = where.replace(api_key, config_key), what.replace(api_key, config_key)
        r.fail(f"firewall.{where}", what, "see lambda-sae:firewall in README")
    if not problems and not any(
        rule["protocol"] in ("tcp", "all") and rule["port_range"][0] <= 22 <= rule["port_range"][1] for rule in rules
    ):
        r.fail(
            "firewall.rules",
            "no rule allows SSH (tcp 22), which every node step uses",
            "add {protocol: tcp, portRange: [22, 22], sourceNetwork: <where pulumi runs>/32, description: ssh}",
        )
    return tuple(rules) if not problems else None


def _filesystem(r: Reader, raw: Any) -> FilesystemConfig | None:
    if raw is None:
        r.fail("filesystem", "missing", "set filesystem: {name: sae-data, region: us-east-3}: checkpoints live there")
        return None
    m = r.mapping(raw, "filesystem", {"name", "region", "deleteOnDestroy"})
    name = r.string(m, "name", "filesystem", required=True)
    region = r.string(m, "region", "filesystem", required=True)
    if name and (len(name) > FILESYSTEM_NAME_MAX or not FILESYSTEM_NAME_PATTERN.match(name)):
        r.fail(
            "filesystem.name",
            f"{name!r} is not a valid filesystem name",
            f"start with a letter; letters, digits and '-' only; at most {FILESYSTEM_NAME_MAX} characters",
        )
    delete = r.boolean(m, "deleteOnDestroy", "filesystem", False)
    return FilesystemConfig(name or "", region or "", delete) if name and region else None


def _node_groups(r: Reader, raw: Any, filesystem: FilesystemConfig | None) -> list[NodeGroup]:
    if not isinstance(raw, list) or not raw:
        r.fail(
            "nodeGroups",
            "missing or empty",
            "set nodeGroups: [{name: gpu, count: 1, placements: [{instanceType: gpu_1x_gh200, region: us-east-3}]}]",
        )
        return []
    groups: list[NodeGroup] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        path = f"nodeGroups[{index}]"
        m = r.mapping(item, path, {"name", "count", "placements", "bootTimeoutSeconds"})
        name = r.string(m, "name", path, required=True) or f"group{index}"
        if not NAME_PATTERN.match(name):
            r.fail(
                f"{path}.name",
                f"{name!r} is not a valid group name",
                "lowercase letters, digits and '-', starting with a letter, at most 31 characters",
            )
        if name in seen:
            r.fail(f"{path}.name", f"duplicate group name {name!r}", "give every node group its own name")
        seen.add(name)
        count = r.number(m, "count", path, required=True, default=0, integer=True)
        boot = r.number(m, "bootTimeoutSeconds", path, required=False)
        placements = _placements(r, m.get("placements"), f"{path}.placements", filesystem)
        gpus = {gpus_of_type(p.instance_type) for p in placements}
        if len(gpus) > 1:
            r.fail(
                f"{path}.placements",
                f"acceptable types have different GPU counts {sorted(g or 0 for g in gpus)}",
                "list only types with the same GPU count in one group (the torchrun world must not change)",
            )
        groups.append(
            NodeGroup(name, int(count or 0), tuple(placements), next(iter(gpus), 1) or 1, float(boot) if boot else None)
        )
    return groups


def _placements(r: Reader, raw: Any, path: str, filesystem: FilesystemConfig | None) -> list[Placement]:
    if not isinstance(raw, list) or not raw:
        r.fail(
            path,
            "missing or empty",
            f"set {path}: [{{instanceType: gpu_1x_gh200, region: us-east-3}}, ...] in preference order",
        )
        return []
    out = []
    for index, item in enumerate(raw):
        m = r.mapping(item, f"{path}[{index}]", {"instanceType", "region"})
        itype = r.string(m, "instanceType", f"{path}[{index}]", required=True)
        region = r.string(m, "region", f"{path}[{index}]", required=False)
        if itype and gpus_of_type(itype) is None:
            r.fail(
                f"{path}[{index}].instanceType",
                f"{itype!r} is not a Lambda instance type name",
                "use a name like gpu_1x_gh200 or gpu_1x_a100_sxm4 (GET /instance-types lists them)",
            )
        if filesystem and region and region != filesystem.region:
            r.fail(
                f"{path}[{index}].region",
                f"{region} differs from the filesystem region {filesystem.region}",
                "instances mount only filesystems of their own region: use the filesystem's region",
            )
        if itype:
            out.append(Placement(itype, region or (filesystem.region if filesystem else None)))
    return out


def _check_world(r: Reader, groups: list[NodeGroup], training: TrainingConfig) -> None:
    # No batch-size check: the trainer splits a batch unevenly over the ranks when it must.
    nproc = {1 if training.allow_cpu else g.gpus_per_node for g in groups}
    if len(nproc) > 1:
        r.fail(
            "nodeGroups",
            f"groups have different GPUs per node {sorted(nproc)}",
            "use one GPU count across all groups (one torchrun world)",
        )


def plan_problems(config: FleetConfig, architectures: Mapping[str, str]) -> list[str]:
    """What the parsed config cannot run as, in `key: problem -- fix` form: too many nodes, a world that would mix
    CPU architectures. `architectures`: instance type -> `x86_64` | `arm64`, from the live catalogue."""
    r = Reader()
    _check_size(r, config.node_groups)
    _check_architectures(r, config, architectures)
    return r.problems


def architecture_of(instance_type: str, catalogue_architecture: str | None) -> str:
    if catalogue_architecture and catalogue_architecture != "x86_64":
        return catalogue_architecture
    return "arm64" if instance_type in ARM64_TYPES else "x86_64"  # x86_64 is also what an absent field reads as


def _check_size(r: Reader, groups: tuple[NodeGroup, ...]) -> None:
    total = sum(g.count for g in groups)
    if total <= MAX_NODES:
        return
    counted = [(f"nodeGroups[{i}].count", g.count) for i, g in enumerate(groups) if g.count]
    keys = [key for key, _ in counted]
    detail = " + ".join(f"{key} {count}" for key, count in counted)
    r.fail(
        " + ".join(keys),
        f"{total} nodes in all ({detail}), over the bound of {MAX_NODES} nodes per fleet",
        f"lower {' / '.join(keys)} to at most {MAX_NODES} nodes in all",
    )


def _check_architectures(r: Reader, config: FleetConfig, architectures: Mapping[str, str]) -> None:
    if config.training.allow_mixed_architectures:
        return
    types_of: dict[str, list[str]] = {}  # arch -> its instance types, in config order
    spanning = []  # groups whose own placements span architectures
    for index, group in enumerate(config.node_groups):
        group_archs = set()
        for placement in group.placements:
            arch = architecture_of(placement.instance_type, architectures.get(placement.instance_type))
            group_archs.add(arch)
            if placement.instance_type not in types_of.setdefault(arch, []):
                types_of[arch].append(placement.instance_type)
        if len(group_archs) > 1:
            spanning.append(index)
    if len(types_of) < 2:
        return
    key = f"nodeGroups[{spanning[0]}].placements" if len(spanning) == 1 else "nodeGroups"
    listed = "; ".join(f"{arch}: {', '.join(names)}" for arch, names in sorted(types_of.items()))
    r.fail(
        key,
        f"the acceptable placements span CPU architectures ({listed}), so one torchrun world could mix "
        "arm64 and x86_64 nodes: each architecture needs its own wheel set, and ranks on different CPUs and GPU "
        "generations do not compute the same numerics",
        "list placements of one architecture only, or set "
        "training.allowMixedArchitectures: true to accept a mixed world",
    )
