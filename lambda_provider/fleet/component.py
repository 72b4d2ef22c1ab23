"""`GpuFleet`: SSH key, filesystem, instances and, per node, ready gate -> setup, then the fleet-level training run
(launch on every node, launch health, optional bounded wait) and the money outputs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pulumi
import yaml

from lambda_provider.fleet import scripts
from lambda_provider.fleet.clock import FleetClock
from lambda_provider.fleet.config import FleetConfig
from lambda_provider.fleet.cost import fleet_hourly_usd
from lambda_provider.fleet.data_upload import fleet_data
from lambda_provider.fleet.node_step import NodeStep, directory_digest
from lambda_provider.fleet.training_run import TrainingRun
from lambda_provider.resources import Filesystem, FirewallRuleset, Instance, SshKey

SSH_USER = "ubuntu"


def expected_arch(architecture: str | None) -> str:
    return "aarch64" if architecture in ("arm64", "aarch64") else "x86_64"


def gpu_model(gpu_description: str | None) -> str:
    """'1x GH200 (96 GB)' or 'GH200 (96 GB)' -> 'GH200' (what nvidia-smi's name contains)."""
    text = re.sub(r"^\d+x\s+", "", gpu_description or "")
    return text.split(" (")[0].strip() or "NVIDIA"


def trainer_config(config: FleetConfig, repo_root: Path) -> dict[str, Any]:
    """The trainer's YAML as the nodes get it: the stack's config file, its overrides, and the budget's max hours."""
    training = config.training
    values: dict[str, Any] = {}
    if training.config:
        values.update(yaml.safe_load((repo_root / training.config).read_text()) or {})
    values.update(training.overrides)
    values.pop("out_dir", None)  # the fleet puts the run on the filesystem
    limit = config.budget.max_hours
    values["max_hours"] = min(float(values.get("max_hours") or limit), limit)
    return values


def master_port(config: FleetConfig, stack: str, repo_root: Path) -> int:
    """On the emulator every node shares this host: spread stacks (and checkouts: two clones' `dev` stacks) over
    ports so parallel fleets do not collide."""
    if config.target != "emulator":
        return config.training.master_port
    return config.training.master_port + int(hashlib.sha256(f"{stack}:{repo_root}".encode()).hexdigest(), 16) % 1000


class GpuFleet(pulumi.ComponentResource):
    def __init__(
        self, name: str, config: FleetConfig, *, repo_root: Path, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lambda-sae:fleet:GpuFleet", name, None, opts)
        stack = pulumi.get_stack()
        child = pulumi.ResourceOptions(parent=self)
        emulator = config.target == "emulator"

        if config.ssh_key.generate:
            key = SshKey("ssh-key", name=config.ssh_key.name, opts=child)
            private_key: pulumi.Output[str] | None = key.private_key
            key_path_hint = f"~/.ssh/lambda-sae-{stack}"
        else:
            public = Path(config.ssh_key.public_key_path or "").read_text().strip()
            key = SshKey("ssh-key", name=config.ssh_key.name, public_key=public, opts=child)
            private_key = None
            key_path_hint = config.ssh_key.private_key_path or ""

        fs_cfg = config.filesystem
        filesystem = Filesystem(
            "filesystem",
            name=fs_cfg.name,
            region=fs_cfg.region,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=not fs_cfg.delete_on_destroy),
        )
        fs_mount = f"/lambda/nfs/{fs_cfg.name}"

        ruleset_ids: list[pulumi.Output[str]] = []
        if config.firewall_rules:
            firewall = FirewallRuleset(
                "firewall", name=f"{stack}-fleet", region=fs_cfg.region, rules=list(config.firewall_rules), opts=child
            )
            ruleset_ids = [firewall.ruleset_id]  # attached at launch: adding or removing it replaces the nodes

        instances: list[tuple[str, Instance, int]] = []
        for group in config.node_groups:
            for index in range(group.count):
                node_name = f"{group.name}-{index}"
                inst = Instance(
                    node_name,
                    ssh_key_name=key.name,
                    file_system_names=[filesystem.name],
                    placements=[p.to_input() for p in group.placements],
                    boot_timeout_seconds=group.boot_timeout_seconds,
                    firewall_ruleset_ids=ruleset_ids,
                    opts=child,
                )
                instances.append((node_name, inst, 1 if config.training.allow_cpu else group.gpus_per_node))

        head = instances[0][1]
        train_config = trainer_config(config, repo_root)
        training_dir = repo_root / "training"
        upload_digest = directory_digest(training_dir)
        # What the trainer runs: a change of the probe's code (run after training) does not restart a run.
        code_digest = directory_digest(training_dir, skip=("probe",))
        port = master_port(config, stack, repo_root)
        extra_env = "GLOO_SOCKET_IFNAME=lo" if emulator else ""

        run_nodes: list[pulumi.Output[dict[str, Any]]] = []
        head_connection: pulumi.Output[dict[str, Any]] | None = None
        setups: list[NodeStep] = []
        readies: list[NodeStep] = []
        node_outputs: list[pulumi.Output[dict[str, Any]]] = []
        for rank, (node_name, inst, nproc) in enumerate(instances):
            node_opts = pulumi.ResourceOptions(parent=self, additional_secret_outputs=["connection"])
            # Only outputs that are never null: a null output reads as unknown in preview, and an unknown
            # connection would make every step look replaced.
            connection = pulumi.Output.all(inst.ip, inst.ssh_port, inst.ready, inst.status, private_key).apply(
                lambda v, path=config.ssh_key.private_key_path: {
                    "host": v[0],
                    "port": int(v[1] or 22),
                    "user": SSH_USER,
                    "private_key": v[4],
                    "private_key_path": path,
                    "ready": v[2],
                    "status": v[3],
                }
            )
            ready = NodeStep(
                f"{node_name}-ready",
                node=node_name,
                step="ready gate",
                connection=connection,
                create=scripts.READY,
                triggers=[inst.instance_id],
                environment={
                    "EXPECT_ARCH": inst.architecture.apply(expected_arch),
                    "EXPECT_GPUS": inst.gpu_count,
                    "EXPECT_GPU_MODEL": inst.gpu_description.apply(gpu_model),
                    "FS_MOUNT": fs_mount,
                },
                timeout_seconds=120,
                connect_timeout_seconds=config.training.ready_timeout_seconds,
                opts=pulumi.ResourceOptions.merge(node_opts, pulumi.ResourceOptions(depends_on=[inst])),
            )
            readies.append(ready)
            # Every later connection pins the host key the ready gate saw on this instance (trust on first use).
            connection = pulumi.Output.all(connection, ready.host_key).apply(lambda v: {**v[0], "host_key": v[1]})
            head_connection = connection if rank == 0 else head_connection
            setup = NodeStep(
                f"{node_name}-setup",
                node=node_name,
                step="setup",
                connection=connection,
                create=scripts.SETUP,
                upload={
                    "local_dir": str(training_dir),
                    "remote_dir": scripts.TRAINING_UPLOAD_DIR,
                    "digest": upload_digest,
                },
                environment={"FLEET_EXPECT_GPUS": inst.gpu_count, "FLEET_ALLOW_CPU": int(config.training.allow_cpu)},
                triggers=[inst.instance_id],
                requires=[ready.ok],
                timeout_seconds=1800,
                opts=pulumi.ResourceOptions.merge(node_opts, pulumi.ResourceOptions(depends_on=[ready])),
            )
            setups.append(setup)
            launch_env = {
                "NODE_RANK": rank,
                "NNODES": len(instances),
                "NPROC": nproc,
                "MASTER_PORT": port,
                "FLEET_EXTRA_ENV": extra_env,
            }
            run_nodes.append(
                pulumi.Output.all(connection, head.private_ip).apply(
                    lambda v, node_name=node_name, env=launch_env: {
                        "node": node_name,
                        "connection": v[0],
                        "environment": {**env, "MASTER_ADDR": v[1]},
                    }
                )
            )
            node_outputs.append(
                pulumi.Output.all(
                    inst.name, inst.instance_type, inst.region, inst.ip, inst.ssh_port, inst.private_ip
                ).apply(
                    lambda v, node_name=node_name, rank=rank: {
                        "node": node_name,
                        "name": v[0],
                        "type": v[1],
                        "region": v[2],
                        "ip": v[3],
                        "private_ip": v[5],
                        "node_rank": rank,
                        "ssh": f"ssh -i {key_path_hint} -p {int(v[4] or 22)} {SSH_USER}@{v[3]}",
                    }
                )
            )

        world_size = sum(nproc for _, _, nproc in instances)
        data = fleet_data(config, fs_mount, head_connection, readies[0], repo_root, self)  # [] without `data`
        run = TrainingRun(
            "training",
            nodes=run_nodes,
            node_ids=[inst.instance_id for _, inst, _ in instances],
            run_base=f"{fs_mount}/runs/{config.training.run_name}",
            trainer_config=train_config,
            world_size=world_size,
            code_digest=code_digest,
            master_port=port,
            wait_seconds=config.training.wait_minutes * 60.0,
            launch_timeout_seconds=config.training.launch_timeout_seconds,
            requires=[s.ok for s in [*setups, *data]],
            secret_environment=pulumi.Output.secret({"HF_TOKEN": config.hf_token}) if config.hf_token else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*setups, *data]),
        )
        clock = FleetClock("clock", max_hours=config.budget.max_hours, opts=child)

        self.nodes = pulumi.Output.all(*node_outputs)
        self.hourly_cost_usd = pulumi.Output.all(*[inst.price_cents_per_hour for _, inst, _ in instances]).apply(
            fleet_hourly_usd
        )
        self.projected_cost_usd = self.hourly_cost_usd.apply(lambda h: round(h * config.budget.max_hours, 2))
        self.expires_at = clock.expires_at
        self.created_at = clock.created_at
        self.training = run.training
        if config.probe.enabled:
            self.training = self._probe(config, instances[0][0], head, head_connection, run)
        self.filesystem = pulumi.Output.all(filesystem.name, filesystem.region, run.run_dir).apply(
            lambda v: {
                "name": v[0],
                "region": v[1],
                "mount_point": fs_mount,
                "run_dir": v[2],
                "kept_on_destroy": not fs_cfg.delete_on_destroy,
            }
        )
        self.torchrun = {
            "nnodes": len(instances),
            "nproc_per_node": instances[0][2],
            "master_port": port,
            "master_addr": head.private_ip,
        }
        self.ssh_private_key = pulumi.Output.secret(private_key) if private_key is not None else None
        self.register_outputs(
            {
                "nodes": self.nodes,
                "hourly_cost_usd": self.hourly_cost_usd,
                "projected_cost_usd": self.projected_cost_usd,
                "expires_at": self.expires_at,
                "training": self.training,
            }
        )

    def _probe(
        self, config: FleetConfig, node: str, head: Instance, connection: Any, run: TrainingRun
    ) -> pulumi.Output[dict[str, Any]]:
        """PII probes on the head once `up` has waited for the run (training/probe/node_probe.sh); reruns when the
        run's directory or step changes; its span F1s join the training output as `probe`."""
        probe = config.probe
        args = [
            *(["--data", probe.data] if probe.data else []),
            *(["--layers", *probe.layers] if probe.layers else []),
            *(["--train-examples", str(probe.train_examples)] if probe.train_examples else []),
            *(["--test-examples", str(probe.test_examples)] if probe.test_examples else []),
        ]
        step = NodeStep(
            "probe",
            node=node,
            step="probe",
            connection=connection,
            create='bash "$HOME/lambda-sae/training/probe/node_probe.sh"',
            triggers=[head.instance_id],
            environment={
                "RUN_DIR": run.run_dir,
                "PROBE_ARGS": " ".join(args),
                "RUN_STEP": run.training.apply(lambda t: (t or {}).get("step") or 0),
            },
            timeout_seconds=3600,
            describes={"probe": " ".join(args) or "defaults"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[run], additional_secret_outputs=["connection"]),
        )
        return pulumi.Output.all(run.training, step.result, step.error).apply(
            lambda v: {
                **(v[0] or {}),
                "probe": {k: (v[1] or {}).get(k) for k in ("span_f1", "report")} | {"error": v[2]},
            }
        )
