"""Fast checks of the stack config validation and the budget arithmetic (no CLI, no emulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import pytest

from lambda_provider.client.models import InstanceTypeAvailability
from lambda_provider.fleet.config import MAX_NODES, FleetConfig, FleetConfigError, parse_fleet_config, plan_problems
from lambda_provider.fleet.cost import OverBudget, check_budget, plan_cost

REPO = Path(__file__).resolve().parents[2]
EMULATOR_URL = "http://127.0.0.1:8790/api/v1"


def dev_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "target": "emulator",
        "nodeGroups": [
            {
                "name": "node",
                "count": 2,
                "placements": [
                    {"instanceType": "gpu_1x_a10", "region": "us-east-1"},
                    {"instanceType": "gpu_1x_a100_sxm4", "region": "us-east-1"},
                ],
            }
        ],
        "filesystem": {"name": "sae-dev", "region": "us-east-1"},
        "training": {"config": "training/configs/tiny-cpu.yaml", "allowCpu": True, "waitMinutes": 5},
        "budget": {"maxUsdPerHour": 10, "maxHours": 2},
    }
    config.update(changes)
    return config


def problems(raw: dict[str, Any], api_url: str | None = EMULATOR_URL) -> str:
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_config(raw, api_url=api_url, repo_root=REPO)
    return str(info.value)


def test_dev_config_parses() -> None:
    config = parse_fleet_config(dev_config(), api_url=EMULATOR_URL, repo_root=REPO)
    assert config.node_count == 2
    assert config.node_groups[0].placements[1].instance_type == "gpu_1x_a100_sxm4"
    assert config.filesystem.delete_on_destroy is False
    assert config.training.wait_minutes == 5


def test_the_real_dev_stack_file_parses() -> None:
    import yaml

    raw = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    ours = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("lambda-sae:")}
    assert parse_fleet_config(ours, api_url=EMULATOR_URL, repo_root=REPO).target == "emulator"


def test_emulator_stack_refuses_a_non_loopback_api() -> None:
    text = problems(dev_config(), api_url="https://cloud.lambda.ai/api/v1")
    assert "target:" in text, text
    assert "not a loopback address" in text, text


def test_real_stack_refuses_cpu_training_and_a_loopback_api() -> None:
    text = problems(dev_config(target="lambda"), api_url=EMULATOR_URL)
    assert "target:" in text, text
    assert "is loopback" in text, text
    assert "training.allowCpu" in text


def test_every_problem_names_its_key_and_a_fix() -> None:
    raw = dev_config(target="moon", budget={"maxUsdPerHour": -1}, sizes=3)
    raw["nodeGroups"][0]["count"] = 0
    raw["nodeGroups"][0]["placements"].append({"instanceType": "gpu_8x_h100_sxm5", "region": "us-west-3"})
    text = problems(raw)
    for key in (
        "target:",
        "budget.maxUsdPerHour:",
        "budget.maxHours: missing",
        "sizes: unknown key",
        "nodeGroups[0].count:",
        "nodeGroups[0].placements[2].region: us-west-3 differs from the filesystem",
        "nodeGroups[0].placements: acceptable types have different GPU counts",
    ):
        assert key in text, f"{key!r} missing from:\n{text}"
    assert all(" -- " in line for line in text.splitlines()[1:]), "every problem carries a fix"


def test_trainer_keys_are_checked_by_the_trainer_itself() -> None:
    raw = dev_config()
    raw["training"]["overrides"] = {"lern_rate": 0.1}
    text = problems(raw)
    assert "training.overrides" in text, text
    assert "lern_rate" in text, text


def test_a_batch_that_does_not_split_evenly_over_the_world_is_accepted() -> None:
    raw = dev_config()
    raw["nodeGroups"][0]["count"] = 3
    raw["training"]["overrides"] = {"batch_size": 1024}
    assert parse_fleet_config(raw, api_url=EMULATOR_URL, repo_root=REPO).node_count == 3


def _key_pair(directory: Path, name: str, passphrase: str | None = None) -> tuple[Path, Path]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    private, public = directory / name, directory / f"{name}.pub"
    # Encrypted OpenSSH-format export needs bcrypt; PKCS#8 is encrypted without it and refused the same way.
    private.write_bytes(key.export_private_key("pkcs8-pem", passphrase) if passphrase else key.export_private_key())
    public.write_bytes(key.export_public_key())
    return public, private


def _with_key(public: Path, private: Path | None = None) -> dict[str, Any]:
    ssh_key = {"publicKeyPath": str(public)} | ({"privateKeyPath": str(private)} if private else {})
    return dev_config(sshKey=ssh_key)


def test_a_matching_key_pair_parses(tmp_path: Path) -> None:
    public, private = _key_pair(tmp_path, "id")
    config = parse_fleet_config(_with_key(public), api_url=EMULATOR_URL, repo_root=REPO)
    assert config.ssh_key.private_key_path == str(private)


def test_a_public_key_file_that_does_not_parse_names_the_key_and_the_fix(tmp_path: Path) -> None:
    public, private = _key_pair(tmp_path, "id")
    public.write_text("ssh-ed25519 not-base64 me@host\n")
    text = problems(_with_key(public))
    assert f"sshKey.publicKeyPath: {public} is not an SSH public key" in text
    assert f"ssh-keygen -y -f {private} > {public}" in text


def test_a_private_key_given_as_the_public_key_is_refused(tmp_path: Path) -> None:
    _, private = _key_pair(tmp_path, "id")
    text = problems(_with_key(private, private))
    assert f"sshKey.publicKeyPath: {private} holds a private key" in text


def test_a_private_key_file_that_does_not_parse_names_the_key(tmp_path: Path) -> None:
    public, private = _key_pair(tmp_path, "id")
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n")
    assert f"sshKey.privateKeyPath: {private} is not an SSH private key" in problems(_with_key(public))


def test_a_passphrase_protected_private_key_says_so(tmp_path: Path) -> None:
    public, private = _key_pair(tmp_path, "id", passphrase="secret")
    text = problems(_with_key(public))
    assert f"sshKey.privateKeyPath: {private} is passphrase-protected" in text
    assert f"ssh-keygen -p -N '' -f {private}" in text


def test_halves_of_two_different_keys_are_refused_with_both_fingerprints(tmp_path: Path) -> None:
    public, _ = _key_pair(tmp_path, "one")
    _, other = _key_pair(tmp_path, "two")
    text = problems(_with_key(public, other))
    assert f"sshKey.privateKeyPath: {other} (key {asyncssh.read_private_key(other).get_fingerprint()}) is not" in text
    assert f"{public} (key {asyncssh.read_public_key(public).get_fingerprint()})" in text
    assert f"ssh-keygen -y -f {other} > {public}" in text


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- batch_size: 1024\n- k: 8\n", "holds a list, not a mapping of trainer keys"),
        ("just words\n", "holds a str, not a mapping of trainer keys"),
        ("batch_size: [1024\nk: 8\n", "is not valid YAML at line"),
    ],
)
def test_a_training_config_that_is_not_a_yaml_mapping_names_the_key(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "training" / "configs").mkdir(parents=True)
    (tmp_path / "training" / "configs" / "bad.yaml").write_text(content)
    raw = dev_config(training={"config": "training/configs/bad.yaml", "allowCpu": True})
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_config(raw, api_url=EMULATOR_URL, repo_root=tmp_path)
    assert f"training.config: {tmp_path / 'training' / 'configs' / 'bad.yaml'} {problem}" in str(info.value)


def _parsed(**changes: Any) -> FleetConfig:
    return parse_fleet_config(dev_config(**changes), api_url=EMULATOR_URL, repo_root=REPO)


GH200 = {"instanceType": "gpu_1x_gh200", "region": "us-east-1"}
A100 = {"instanceType": "gpu_1x_a100_sxm4", "region": "us-east-1"}
ARCHES = {"gpu_1x_gh200": "arm64", "gpu_1x_a100_sxm4": "x86_64", "gpu_1x_a10": "x86_64"}


def test_a_group_whose_placements_span_architectures_is_refused_naming_the_key() -> None:
    config = _parsed(nodeGroups=[{"name": "gpu", "count": 2, "placements": [GH200, A100]}])
    [problem] = plan_problems(config, ARCHES)
    assert problem.startswith(
        "nodeGroups[0].placements: the acceptable placements span CPU architectures "
        "(arm64: gpu_1x_gh200; x86_64: gpu_1x_a100_sxm4)"
    )
    assert "training.allowMixedArchitectures: true" in problem


def test_groups_of_different_architectures_are_refused_naming_the_groups() -> None:
    config = _parsed(
        nodeGroups=[
            {"name": "arm", "count": 1, "placements": [GH200]},
            {"name": "x86", "count": 1, "placements": [A100]},
        ]
    )
    [problem] = plan_problems(config, ARCHES)
    assert problem.startswith("nodeGroups: the acceptable placements span CPU architectures")


def test_mixed_architectures_pass_when_the_stack_allows_them() -> None:
    training = {"config": "training/configs/tiny-cpu.yaml", "allowCpu": True, "allowMixedArchitectures": True}
    config = _parsed(nodeGroups=[{"name": "gpu", "count": 2, "placements": [GH200, A100]}], training=training)
    assert plan_problems(config, ARCHES) == []


def test_a_catalogue_without_architectures_still_knows_the_gh200_is_arm64() -> None:
    config = _parsed(nodeGroups=[{"name": "gpu", "count": 2, "placements": [GH200, A100]}])
    assert "span CPU architectures" in plan_problems(config, {})[0]


def test_a_fleet_over_the_node_bound_names_the_counts_and_the_bound() -> None:
    config = _parsed(
        nodeGroups=[{"name": "a", "count": 60, "placements": [A100]}, {"name": "b", "count": 5, "placements": [A100]}]
    )
    [problem] = plan_problems(config, ARCHES)
    assert problem.startswith(
        f"nodeGroups[0].count + nodeGroups[1].count: 65 nodes in all (nodeGroups[0].count 60 + "
        f"nodeGroups[1].count 5), over the bound of {MAX_NODES} nodes per fleet"
    )


def test_training_config_must_be_copied_with_training_dir() -> None:
    raw = dev_config()
    raw["training"]["config"] = "Pulumi.yaml"
    assert "training.config: Pulumi.yaml is not under training/" in problems(raw)


def _catalogue(prices: dict[str, int]) -> dict[str, InstanceTypeAvailability]:
    return {
        name: InstanceTypeAvailability.from_api(
            name,
            {
                "instance_type": {
                    "name": name,
                    "description": name,
                    "gpu_description": "X",
                    "price_cents_per_hour": cents,
                    "specs": {"vcpus": 1, "memory_gib": 1, "storage_gib": 1, "gpus": 1},
                },
                "regions_with_capacity_available": [],
            },
        )
        for name, cents in prices.items()
    }


def test_budget_uses_the_most_expensive_acceptable_type() -> None:
    config = parse_fleet_config(dev_config(), api_url=EMULATOR_URL, repo_root=REPO)
    cost = plan_cost(config, _catalogue({"gpu_1x_a10": 129, "gpu_1x_a100_sxm4": 199}))
    assert cost.hourly_usd == pytest.approx(3.98)
    assert cost.projected_usd == pytest.approx(7.96)
    check_budget(config, cost)
    tight = parse_fleet_config(
        dev_config(budget={"maxUsdPerHour": 3, "maxHours": 2}), api_url=EMULATOR_URL, repo_root=REPO
    )
    with pytest.raises(OverBudget, match=r"\$3.98/h, over budget.maxUsdPerHour \$3.00/h"):
        check_budget(tight, cost)


def test_firewall_rules_parse_into_api_form() -> None:
    rules = [
        {"protocol": "tcp", "portRange": [22, 22], "sourceNetwork": "203.0.113.7", "description": "ssh"},
        {"protocol": "icmp", "sourceNetwork": "0.0.0.0/0"},
    ]
    config = parse_fleet_config(dev_config(firewall={"rules": rules}), api_url=EMULATOR_URL, repo_root=REPO)
    assert config.firewall_rules == (
        {"protocol": "tcp", "port_range": [22, 22], "source_network": "203.0.113.7/32", "description": "ssh"},
        {"protocol": "icmp", "source_network": "0.0.0.0/0", "description": ""},
    )
    assert parse_fleet_config(dev_config(), api_url=EMULATOR_URL, repo_root=REPO).firewall_rules is None


def test_firewall_problems_name_the_config_key() -> None:
    text = problems(
        dev_config(
            firewall={
                "rules": [
                    {"protocol": "tcp", "portRange": [443, 80], "sourceNetwork": "10.0.0.0/8"},
                    {"protocol": "udp", "portRange": [1, 2], "sourceNetwork": "nowhere"},
                ]
            }
        )
    )
    assert "firewall.rules[0].portRange: give [min, max] with 1 <= min <= max <= 65535" in text
    assert "firewall.rules[1].sourceNetwork: 'nowhere' is not an IPv4 address or CIDR" in text
    no_ssh = problems(
        dev_config(firewall={"rules": [{"protocol": "tcp", "portRange": [443, 443], "sourceNetwork": "0.0.0.0/0"}]})
    )
    assert "firewall.rules: no rule allows SSH (tcp 22)" in no_ssh, no_ssh
    assert "portRange: [22, 22]" in no_ssh, no_ssh
    assert "firewall.rules: missing or empty" in problems(dev_config(firewall={"rules": []}))


HF_CACHE = {
    "config": "training/probe/tiny-gpt2.yaml",
    "allowCpu": True,
    "waitMinutes": 5,
    "overrides": {"hf_tokens": "/lambda/nfs/sae-dev/tokens/train.npy"},
}


def test_a_cache_stack_runs_the_cache_module_with_its_options() -> None:
    training = {**HF_CACHE, "cache": {"shardVectors": 1000, "dtype": "float16", "maxTokens": 5000}}
    task = _parsed(training=training).training.task()
    assert task == {
        "module": "training.cache_activations",
        "args": ["--shard-vectors", "1000", "--dtype", "float16", "--max-tokens", "5000"],
    }


def test_cache_true_takes_the_cache_defaults() -> None:
    task = _parsed(training={**HF_CACHE, "cache": True}).training.task()
    assert task == {"module": "training.cache_activations", "args": ["--shard-vectors", "262144", "--dtype", "auto"]}


def test_a_stack_without_cache_runs_the_trainer() -> None:
    assert _parsed().training.task() is None


def test_a_cache_of_a_source_that_is_not_hf_names_the_key_and_the_fix() -> None:
    training = {"config": "training/configs/tiny-cpu.yaml", "allowCpu": True, "cache": True}
    assert (
        "training.cache: a cache run reads activations from a hooked LM, but the trainer config's data_source is"
        in (problems(dev_config(training=training)))
    )


def test_an_unknown_cache_dtype_names_the_choices() -> None:
    message = problems(dev_config(training={**HF_CACHE, "cache": {"dtype": "int8"}}))
    assert "training.cache.dtype: 'int8' is not a cache dtype -- use one of auto, float32, bfloat16, float16" in message


def test_a_cache_value_that_is_neither_true_nor_a_mapping_is_refused() -> None:
    message = problems(dev_config(training={**HF_CACHE, "cache": "yes"}))
    assert "training.cache: expected true or a mapping, got 'yes'" in message


def test_probes_on_a_cache_run_are_refused_naming_the_fix() -> None:
    message = problems(dev_config(training={**HF_CACHE, "cache": True}, probe={"enabled": True}))
    assert "probe.enabled: a cache run (training.cache) trains no SAE for the probe to read" in message
