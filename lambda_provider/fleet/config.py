"""The stack config of a fleet: schema, defaults and validation (every error names the key and the fix).

Keys live in the project namespace (`lambda-sae:` in Pulumi.<stack>.yaml); see `SCHEMA_DOC` below and README.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncssh
import yaml

from lambda_provider.domain import FILESYSTEM_NAME_MAX, FILESYSTEM_NAME_PATTERN, Placement
from lambda_provider.resources.firewall_ruleset import normalize_rules

TARGETS = ("emulator", "lambda")
API_RULE_KEYS = {"portRange": "port_range", "sourceNetwork": "source_network"}  # stack config key -> API key
GPU_COUNT_PATTERN = re.compile(r"^gpu_(\d+)x_")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
MAX_NODES = 64  # a sane fleet: beyond it a typo (count: 100000) would launch, and bill, a small data centre
# CPU architecture of the arm64 types, for catalogues that omit the undeclared `architecture` field (the client then
# reads x86_64); the live catalogue says arm64 for these (../shared/lambda-cloud/NOTES.md).
ARM64_TYPES = frozenset({"gpu_1x_gh200"})
# A `data` destination: a relative path under the filesystem's mount point, plain segments only.
DATA_DEST_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
DATA_RESERVED = ("runs", ".lambda-sae")  # the fleet's run directories and its own records on the filesystem

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
                         allowMixedArchitectures: false (placements spanning arm64 and x86_64)}
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
class SshKeyConfig:
    name: str | None = None
    public_key_path: str | None = None
    private_key_path: str | None = None

    @property
    def generate(self) -> bool:
        return self.public_key_path is None


@dataclass(frozen=True)
class FilesystemConfig:
    name: str
    region: str
    delete_on_destroy: bool = False


@dataclass(frozen=True)
class TrainingConfig:
    config: str | None
    overrides: dict[str, Any] = field(default_factory=dict)
    run_name: str = "sae"
    allow_cpu: bool = False
    wait_minutes: float = 0.0
    master_port: int = 29500
    ready_timeout_seconds: float = 900.0
    launch_timeout_seconds: float = 900.0  # from the launch until every rank has taken its first step
    allow_mixed_architectures: bool = False
    file_values: dict[str, Any] = field(default_factory=dict)  # training.config as parsed here, once


@dataclass(frozen=True)
class ProbeConfig:
    """`python -m training.probe` on the head node once the run has finished (see training/README.md)."""

    enabled: bool = False
    data: str | None = None  # a held-out JSONL on the node (e.g. on the filesystem); default: the synthetic split
    layers: tuple[str, ...] = ()
    train_examples: int | None = None
    test_examples: int | None = None


@dataclass(frozen=True)
class DataEntry:
    """One `data` entry: a local file or directory sent to `<mount point>/<dest>` on the filesystem."""

    dest: str  # relative to the filesystem's mount point
    source: Path  # absolute

    @property
    def is_dir(self) -> bool:
        return self.source.is_dir()


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


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, problem: str, fix: str) -> None:
        self.problems.append(f"{key}: {problem} -- {fix}")

    def mapping(self, raw: Any, key: str, known: set[str]) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail(key, f"expected a mapping, got {type(raw).__name__}", f"write {key} as key: value lines")
            return {}
        for unknown in sorted(set(raw) - known):
            self.fail(f"{key}.{unknown}", "unknown key", f"use one of {', '.join(sorted(known))}")
        return raw

    def number(
        self,
        raw: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool,
        default: float | None = None,
        integer: bool = False,
        minimum: float = 0.0,
        strict: bool = True,
    ) -> Any:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "missing", f"set {path}.{key} to a number")
            return default
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            kind = "an integer" if integer else "a number"
            self.fail(f"{path}.{key}", f"expected {kind}, got {value!r}", f"set {path}.{key} to {kind}")
            return default
        if value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            self.fail(f"{path}.{key}", f"must be {bound}, got {value!r}", f"set {path}.{key} {bound}")
            return default
        return value

    def string(
        self, raw: dict[str, Any], key: str, path: str, *, required: bool, default: str | None = None
    ) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "missing", f"set {path}.{key}")
            return default
        if not isinstance(value, str) or not value:
            self.fail(f"{path}.{key}", f"expected a non-empty string, got {value!r}", f"set {path}.{key} to text")
            return default
        return value

    def boolean(self, raw: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}", f"expected true or false, got {value!r}", f"set {path}.{key}: true/false")
            return default
        return value


def parse_fleet_config(
    raw: dict[str, Any], *, api_url: str | None, repo_root: Path, secret_keys: Collection[str] = ()
) -> FleetConfig:
    """Validate the project-namespace config (keys without the `lambda-sae:` prefix); `secret_keys`: which of them
    the stack stores as secrets."""
    r = _Reader()
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
    ssh_key = _ssh_key(r, raw.get("sshKey"))
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
    training = _training(r, raw.get("training"), repo_root, target == "emulator", budget.max_hours)
    if target == "lambda" and training.allow_cpu:
        r.fail(
            "training.allowCpu",
            "CPU training is only allowed on the emulator",
            "remove training.allowCpu (real nodes must show their GPUs to torch)",
        )
    firewall = _firewall(r, raw.get("firewall"))
    probe = _probe(r, raw.get("probe"), training)
    data = _data(r, raw.get("data"), repo_root)
    hf_token = _hf_token(r, raw.get("hfToken"), "hfToken" in secret_keys)
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


def _data(r: _Reader, raw: Any, repo_root: Path) -> tuple[DataEntry, ...]:
    """`data: {dest: local path}`: every destination a plain relative path outside the fleet's own directories and
    not inside another entry; every source a readable local file or a directory holding files."""
    if raw is None:
        return ()
    example = "e.g. data: {tokens/train.npy: data/train.npy, acts/layer16: data/acts/layer16}"
    if not isinstance(raw, dict) or not raw:
        r.fail("data", "expected a non-empty mapping of <path on the filesystem>: <local path>", example)
        return ()
    entries: list[DataEntry] = []
    for dest, source in raw.items():
        key = f"data.{dest}"
        dest = str(dest).strip("/") if isinstance(dest, str) and not dest.startswith("/") else str(dest)
        if not DATA_DEST_PATTERN.match(dest) or any(part in (".", "..") for part in dest.split("/")):
            r.fail(
                key,
                f"{dest!r} is not a path relative to the filesystem",
                "name where it lands under /lambda/nfs/<filesystem.name>/, e.g. tokens/train.npy: letters, digits, "
                "'.', '_', '-' and '/' (no leading '/', no '..')",
            )
            continue
        if dest.split("/")[0] in DATA_RESERVED:
            r.fail(
                key,
                f"{dest.split('/')[0]}/ on the filesystem belongs to the fleet (run directories, its own records)",
                "send the data to another directory, e.g. data/" + dest,
            )
            continue
        if not isinstance(source, str) or not source:
            r.fail(key, f"expected a local file or directory, got {source!r}", f"set {key}: path/to/local/data")
            continue
        path = Path(source).expanduser()
        path = path if path.is_absolute() else repo_root / path
        if not path.exists():
            r.fail(
                key,
                f"{path} does not exist",
                f"point it at a local file or directory (a relative path is read from the project directory "
                f"{repo_root})",
            )
            continue
        problem = _unreadable(path)
        if problem:
            r.fail(key, problem, f"make it readable (chmod -R u+r {path}) or remove {key}")
            continue
        entries.append(DataEntry(dest, path.resolve()))
    dests = sorted(e.dest for e in entries)
    for outer in dests:
        for inner in dests:
            if inner.startswith(outer + "/"):
                r.fail(
                    f"data.{inner}",
                    f"lands inside data.{outer}, another entry",
                    f"remove one of them, or move data.{inner} outside {outer}/",
                )
    return tuple(sorted(entries, key=lambda e: e.dest))


def _unreadable(path: Path) -> str | None:
    if path.is_file():
        return None if os.access(path, os.R_OK) else f"{path} is not readable"
    if not path.is_dir():
        return f"{path} is neither a file nor a directory"
    files = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            child = Path(folder) / name
            if not child.is_file():
                continue  # a socket, a broken link: not data
            if not os.access(child, os.R_OK):
                return f"{child} is not readable"
            files += 1
    return None if files else f"{path} is an empty directory (nothing to send)"


def _hf_token(r: _Reader, raw: Any, secret: bool) -> str | None:
    """Never echoes the value: a problem names the key and the fix only."""
    if raw is None:
        return None
    set_it = "`pulumi config set --secret lambda-sae:hfToken <your Hugging Face token>`"
    if not isinstance(raw, str) or not raw.strip() or any(c.isspace() for c in raw.strip()):
        r.fail("hfToken", "expected a Hugging Face access token (one word, e.g. hf_...)", set_it)
        return None
    if not secret:
        r.fail(
            "hfToken",
            "is stored in clear in the stack file, where anyone who reads the repository or the state sees it",
            f"`pulumi config rm lambda-sae:hfToken`, revoke that token, then {set_it}",
        )
        return None
    return raw.strip()


def _probe(r: _Reader, raw: Any, training: TrainingConfig) -> ProbeConfig:
    m = r.mapping(raw, "probe", {"enabled", "data", "layers", "trainExamples", "testExamples"})
    enabled = r.boolean(m, "enabled", "probe", False)
    layers = m.get("layers") or []
    if not isinstance(layers, list) or not all(isinstance(x, (str, int)) for x in layers):
        r.fail(
            "probe.layers",
            f"expected a list of hf_layer names or numbers, got {layers!r}",
            "set probe.layers: [model.layers.19] or remove it (every SAE of the run)",
        )
        layers = []
    train_n = r.number(m, "trainExamples", "probe", required=False, integer=True)
    test_n = r.number(m, "testExamples", "probe", required=False, integer=True)
    if enabled and training.wait_minutes <= 0:
        r.fail(
            "probe.enabled",
            "the probe runs on the finished run, but training.waitMinutes is 0 (up does not "
            "wait for the run to finish)",
            "set training.waitMinutes to the minutes the run needs, or set "
            "probe.enabled: false and run `python -m training.probe --sae RUN_DIR` on the head node later",
        )
    return ProbeConfig(
        enabled, r.string(m, "data", "probe", required=False), tuple(str(x) for x in layers), train_n, test_n
    )


def _firewall(r: _Reader, raw: Any) -> tuple[dict[str, Any], ...] | None:
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


def _filesystem(r: _Reader, raw: Any) -> FilesystemConfig | None:
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


def _node_groups(r: _Reader, raw: Any, filesystem: FilesystemConfig | None) -> list[NodeGroup]:
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


def _placements(r: _Reader, raw: Any, path: str, filesystem: FilesystemConfig | None) -> list[Placement]:
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


def _ssh_key(r: _Reader, raw: Any) -> SshKeyConfig:
    m = r.mapping(raw, "sshKey", {"name", "publicKeyPath", "privateKeyPath"})
    name = r.string(m, "name", "sshKey", required=False)
    public = r.string(m, "publicKeyPath", "sshKey", required=False)
    private = r.string(m, "privateKeyPath", "sshKey", required=False)
    if public is None:
        if private is not None:
            r.fail(
                "sshKey.privateKeyPath",
                "given without publicKeyPath",
                "set sshKey.publicKeyPath too, or drop both to generate a key pair",
            )
        return SshKeyConfig(name)
    public_path = Path(public).expanduser()
    private = private or (public[:-4] if public.endswith(".pub") else None)
    private_path = Path(private).expanduser() if private else None
    public_ok = public_path.is_file()
    if not public_ok:
        r.fail(
            "sshKey.publicKeyPath",
            f"{public_path} does not exist",
            "create it (ssh-keygen -t ed25519) or remove sshKey.publicKeyPath to generate a key pair",
        )
    if private_path is None:
        r.fail(
            "sshKey.privateKeyPath",
            "cannot be derived (publicKeyPath does not end in .pub)",
            "set sshKey.privateKeyPath to the private half",
        )
    elif not private_path.is_file():
        r.fail(
            "sshKey.privateKeyPath",
            f"{private_path} does not exist",
            "point it at the private key of publicKeyPath: the fleet logs in with it",
        )
    elif public_ok:
        _check_key_pair(r, public_path, private_path)
    return SshKeyConfig(name, str(public_path), str(private_path) if private_path else None)


def _check_key_pair(r: _Reader, public_path: Path, private_path: Path) -> None:
    """Both files parse and are halves of one key: Lambda gets the public half, the fleet logs in with the private."""
    derive = f"ssh-keygen -y -f {private_path} > {public_path}"
    public_key = _public_key(r, public_path, derive)
    private_key = _private_key(r, private_path)
    if public_key is not None and private_key is not None and private_key.public_data != public_key.public_data:
        r.fail(
            "sshKey.privateKeyPath",
            f"{private_path} (key {private_key.get_fingerprint()}) is not the private "
            f"half of sshKey.publicKeyPath {public_path} (key {public_key.get_fingerprint()}): the nodes would "
            "refuse the login",
            f"point privateKeyPath at the matching private key, or rewrite the public half from this one: `{derive}`",
        )


def _public_key(r: _Reader, path: Path, derive: str) -> asyncssh.SSHKey | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError as exc:
        r.fail("sshKey.publicKeyPath", f"cannot read {path}: {exc}", f"make it readable: chmod 644 {path}")
        return None
    if "PRIVATE KEY" in text:
        r.fail(
            "sshKey.publicKeyPath",
            f"{path} holds a private key, which would be uploaded to Lambda",
            f"point publicKeyPath at the public half (`{derive}` writes it)",
        )
        return None
    try:
        key = asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        r.fail(
            "sshKey.publicKeyPath",
            f"{path} is not an SSH public key ({exc})",
            f"write the public half of your private key there: `{derive}`",
        )
        return None
    if len(text.splitlines()) != 1:
        r.fail(
            "sshKey.publicKeyPath",
            f"{path} is not one OpenSSH `type base64 comment` line, the form Lambda accepts",
            f"rewrite it in OpenSSH form: `{derive}`",
        )
        return None
    return key


def _private_key(r: _Reader, path: Path) -> asyncssh.SSHKey | None:
    try:
        return asyncssh.read_private_key(str(path))
    except (asyncssh.KeyImportError, ValueError) as exc:
        if "assphrase" in str(exc):
            r.fail(
                "sshKey.privateKeyPath",
                f"{path} is passphrase-protected; the fleet logs in unattended and cannot ask for it",
                f"remove the passphrase (`ssh-keygen -p -N '' -f {path}`) or make a key "
                "pair without one (ssh-keygen -t ed25519 -N '' -f ~/.ssh/lambda-sae)",
            )
        else:
            r.fail(
                "sshKey.privateKeyPath",
                f"{path} is not an SSH private key ({exc})",
                "point it at the private half of sshKey.publicKeyPath: the fleet logs in with it",
            )
    except OSError as exc:
        r.fail("sshKey.privateKeyPath", f"cannot read {path}: {exc}", f"make it readable: chmod 600 {path}")
    return None


def _training(r: _Reader, raw: Any, repo_root: Path, emulator: bool, max_hours: float) -> TrainingConfig:
    m = r.mapping(
        raw,
        "training",
        {
            "config",
            "overrides",
            "runName",
            "allowCpu",
            "waitMinutes",
            "masterPort",
            "readyTimeoutSeconds",
            "launchTimeoutSeconds",
            "allowMixedArchitectures",
        },
    )
    config = r.string(m, "config", "training", required=False)
    file_values: dict[str, Any] = {}
    if config is not None:
        path = repo_root / config
        if Path(config).is_absolute() or not path.resolve().is_relative_to((repo_root / "training").resolve()):
            r.fail(
                "training.config",
                f"{config} is not under training/",
                "put the trainer config under "
                "training/configs/ (training/ is what gets copied to the nodes) or use training.overrides",
            )
        elif not path.is_file():
            r.fail(
                "training.config",
                f"{path} does not exist",
                "point it at a YAML file, e.g. training/configs/tiny-cpu.yaml",
            )
        else:
            file_values = _read_trainer_file(r, path)
    overrides = m.get("overrides") or {}
    if not isinstance(overrides, dict):
        r.fail("training.overrides", "expected a mapping", "write trainer keys as key: value (see training/config.py)")
        overrides = {}
    run_name = r.string(m, "runName", "training", required=False, default="sae") or "sae"
    if not NAME_PATTERN.match(run_name):
        r.fail("training.runName", f"{run_name!r} is not a valid run name", "lowercase letters, digits and '-'")
    allow_cpu = r.boolean(m, "allowCpu", "training", False)
    wait = r.number(m, "waitMinutes", "training", required=False, default=0.0, strict=False)
    port = r.number(m, "masterPort", "training", required=False, default=29500, integer=True, minimum=1024)
    ready = r.number(m, "readyTimeoutSeconds", "training", required=False, default=900.0)
    launch = r.number(m, "launchTimeoutSeconds", "training", required=False, default=900.0)
    mixed = r.boolean(m, "allowMixedArchitectures", "training", False)
    if not r.problems:
        _check_trainer_keys(r, file_values, overrides)
    return TrainingConfig(
        config,
        dict(overrides),
        run_name,
        allow_cpu,
        float(wait),
        int(port),
        float(ready),
        float(launch),
        mixed,
        file_values,
    )


def _read_trainer_file(r: _Reader, path: Path) -> dict[str, Any]:
    """training.config parsed (the one read of it: the fleet sends these values). The trainer reads it as one mapping
    of its keys; anything else fails here, not on the nodes."""
    fix = "make it a YAML mapping of trainer keys (key: value lines, see training/configs/tiny-cpu.yaml)"
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        r.fail("training.config", f"{path} is not valid YAML{line}: {getattr(exc, 'problem', None) or exc}", fix)
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        r.fail("training.config", f"cannot read {path}: {exc}", fix)
        return {}
    if loaded is not None and not isinstance(loaded, dict):
        r.fail("training.config", f"{path} holds a {type(loaded).__name__}, not a mapping of trainer keys", fix)
        return {}
    return dict(loaded or {})


def _check_trainer_keys(r: _Reader, file_values: dict[str, Any], overrides: dict[str, Any]) -> None:
    from training.config import ConfigError, TrainConfig, apply_overrides

    try:  # what training.config.build_config does, on the values parsed above
        apply_overrides(apply_overrides(TrainConfig(), file_values), overrides).validate()
    except ConfigError as exc:
        r.fail(
            "training.overrides",
            f"the trainer rejects the config: {exc}",
            "fix that trainer key (the message names it); keys are the fields of training/config.py",
        )


def _check_world(r: _Reader, groups: list[NodeGroup], training: TrainingConfig) -> None:
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
    r = _Reader()
    _check_size(r, config.node_groups)
    _check_architectures(r, config, architectures)
    return r.problems


def architecture_of(instance_type: str, catalogue_architecture: str | None) -> str:
    if catalogue_architecture and catalogue_architecture != "x86_64":
        return catalogue_architecture
    return "arm64" if instance_type in ARM64_TYPES else "x86_64"  # x86_64 is also what an absent field reads as


def _check_size(r: _Reader, groups: tuple[NodeGroup, ...]) -> None:
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


def _check_architectures(r: _Reader, config: FleetConfig, architectures: Mapping[str, str]) -> None:
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
