"""`GpuFleet`: the fleet's parts wired together -- SSH key (fleet/key.py), filesystem, firewall, one Instance per node
(fleet/nodes.py, launched without waiting), `FleetNodes` (every node's boot, ready gate and setup at once:
fleet/fleet_nodes.py), the fleet-level training run (launch on every node, launch health, optional bounded wait),
the optional probe, and the outputs (fleet/outputs.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pulumi

from lambda_provider.fleet import outputs, scripts
from lambda_provider.fleet.clock import FleetClock
from lambda_provider.fleet.config import FleetConfig
from lambda_provider.fleet.cost import fleet_hourly_usd
from lambda_provider.fleet.data_upload import digest_of_files_read, fleet_data
from lambda_provider.fleet.fleet_nodes import FleetNodes
from lambda_provider.fleet.key import fleet_key
from lambda_provider.fleet.node_step import NodeStep, directory_digest
from lambda_provider.fleet.nodes import Node, launch_nodes, node_spec
from lambda_provider.fleet.training_run import TrainingRun
from lambda_provider.resources import Filesystem, FirewallRuleset


def trainer_config(config: FleetConfig) -> dict[str, Any]:
    """The trainer's YAML as the nodes get it: the stack's config file (parsed once, by fleet/config.py), its
    overrides, and the budget's max hours."""
    training = config.training
    values: dict[str, Any] = {**training.file_values, **training.overrides}
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
        key = fleet_key(config, stack, child)

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

        nodes = launch_nodes(
            config, ssh_key_name=key.key.name, filesystem_name=filesystem.name, ruleset_ids=ruleset_ids, opts=child
        )
        head = nodes[0]
        training_dir = repo_root / "training"
        ready = FleetNodes(
            "nodes",
            nodes={node.name: node_spec(node, config) for node in nodes},
            ssh={"user": outputs.SSH_USER, "private_key": key.private_key, "private_key_path": key.private_key_path},
            fs_mount=fs_mount,
            setup={
                "script": scripts.SETUP,
                "upload": {
                    "local_dir": str(training_dir),
                    "remote_dir": scripts.TRAINING_UPLOAD_DIR,
                    "digest": directory_digest(training_dir),
                },
                "timeout_seconds": 1800,
            },
            ready_timeout_seconds=config.training.ready_timeout_seconds,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[n.instance for n in nodes]),
        )
        connections = {node.name: outputs.connection(node, ready, key) for node in nodes}
        port = master_port(config, stack, repo_root)
        extra_env = "GLOO_SOCKET_IFNAME=lo" if config.target == "emulator" else ""
        run_nodes = [
            outputs.run_node(
                node,
                connections[node.name],
                head.name,
                ready,
                {
                    "NODE_RANK": node.rank,
                    "NNODES": len(nodes),
                    "NPROC": node.nproc,
                    "MASTER_PORT": port,
                    "FLEET_EXTRA_ENV": extra_env,
                },
            )
            for node in nodes
        ]
        # The stack's `data` upload to the filesystem over the head node (none without `data`).
        head_ok = ready.status.apply(lambda status: bool((status or {}).get(head.name, {}).get("ok")))
        data = fleet_data(config, fs_mount, connections[head.name], head_ok, ready, repo_root, self)
        files = [f for upload in data for f in upload.local_files]
        run = TrainingRun(
            "training",
            nodes=run_nodes,
            node_ids=[node.instance.instance_id for node in nodes],
            run_base=f"{fs_mount}/runs/{config.training.run_name}",
            trainer_config=trainer_config(config),
            data_digest=digest_of_files_read(files, trainer_config(config), fs_mount),
            task=config.training.task(),
            world_size=sum(node.nproc for node in nodes),
            # What the trainer runs: a change of the probe's code (run after training) does not restart a run.
            code_digest=directory_digest(training_dir, skip=("probe",)),
            master_port=port,
            wait_seconds=config.training.wait_minutes * 60.0,
            launch_timeout_seconds=config.training.launch_timeout_seconds,
            requires=pulumi.Output.all(ready.status, *[d.ok for d in data]).apply(
                lambda v: [bool((v[0] or {}).get(n.name, {}).get("ok")) for n in nodes] + [bool(ok) for ok in v[1:]]
            ),
            secret_environment=pulumi.Output.secret({"HF_TOKEN": config.hf_token}) if config.hf_token else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ready, *data]),
        )
        clock = FleetClock("clock", max_hours=config.budget.max_hours, opts=child)

        self.nodes = pulumi.Output.all(*[outputs.node_output(node, ready, key) for node in nodes])
        self.hourly_cost_usd = pulumi.Output.all(*[n.instance.price_cents_per_hour for n in nodes]).apply(
            fleet_hourly_usd
        )
        self.projected_cost_usd = self.hourly_cost_usd.apply(lambda h: round(h * config.budget.max_hours, 2))
        self.expires_at = clock.expires_at
        self.created_at = clock.created_at
        self.training = run.training
        if config.probe.enabled:
            self.training = self._probe(config, head, connections[head.name], run)
        self.filesystem = pulumi.Output.all(name=filesystem.name, region=filesystem.region, run_dir=run.run_dir).apply(
            lambda v: {
                "name": v["name"],
                "region": v["region"],
                "mount_point": fs_mount,
                "run_dir": v["run_dir"],
                "kept_on_destroy": not fs_cfg.delete_on_destroy,
            }
        )
        self.torchrun = {
            "nnodes": len(nodes),
            "nproc_per_node": head.nproc,
            "master_port": port,
            "master_addr": outputs.head_private_ip(ready, head.name),
        }
        self.ssh_private_key = pulumi.Output.secret(key.private_key) if key.private_key is not None else None
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
        self, config: FleetConfig, head: Node, connection: Any, run: TrainingRun
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
            node=head.name,
            step="probe",
            connection=connection,
            create='bash "$HOME/lambda-sae/training/probe/node_probe.sh"',
            triggers=[head.instance.instance_id],
            environment={
                "RUN_DIR": run.run_dir,
                "PROBE_ARGS": " ".join(args),
                "RUN_STEP": run.training.apply(lambda t: (t or {}).get("step") or 0),
            },
            timeout_seconds=3600,
            describes={"probe": " ".join(args) or "defaults"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[run], additional_secret_outputs=["connection"]),
        )
        return pulumi.Output.all(training=run.training, result=step.result, error=step.error).apply(
            lambda v: {
                **(v["training"] or {}),
                "probe": {k: (v["result"] or {}).get(k) for k in ("span_f1", "report")} | {"error": v["error"]},
            }
        )
