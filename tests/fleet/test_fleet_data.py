"""The stack's `data` and `hfToken` end to end: the real `pulumi` CLI, the real emulator, real SSH/SFTP, the real
trainer. A token file and a shard directory go onto the filesystem once; a second `up` sends nothing; a changed file
is sent alone; an `hf` run and a `shards` run read their data through `/lambda/nfs/<fs>/...` paths; the Hugging Face
token reaches the trainer's environment and appears in no state, output, log, command line or file in clear."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lambda_provider.fleet.data_upload import CHUNK, WINDOW
from tests.fleet.fleet_support import A10, Fleet, assert_clean_up, fleet_on_emulator, run_status, stack_config

FS = "sae-data"
MOUNT = f"/lambda/nfs/{FS}"
TOKEN = "hf_e2eLeakCanary7f3a9c2b5d1e"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with fleet_on_emulator(tmp_path_factory.mktemp("data"), filesystem=FS) as fleet:
        yield fleet


def write_shard(path: Path, seed: int) -> None:
    save_file({"acts": torch.randn(1024, 32, generator=torch.Generator().manual_seed(seed))}, str(path))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local-data")
    tokens = np.random.default_rng(0).integers(0, 256, size=64 * 80).astype(np.int64)
    np.save(root / "tokens.npy", tokens)
    (root / "acts").mkdir()
    for i in range(3):
        write_shard(root / "acts" / f"shard-{i}.safetensors", i)
    return root


def hf_stack(local: Path, **training: Any) -> dict[str, Any]:
    """The tiny random GPT-2 on the uploaded tokens; long enough to be caught running after `up` returns."""
    hf = {
        "config": "training/probe/tiny-gpt2.yaml",
        "waitMinutes": 0,
        "overrides": {"hf_tokens": f"{MOUNT}/tokens/train.npy", "total_vectors": 252 * 50_000, "eval_vectors": 504},
    }
    raw = stack_config([A10], count=1, run_name="hf", filesystem=FS, **{**hf, **training})
    raw["data"] = {"tokens/train.npy": str(local / "tokens.npy"), "acts/layer0": str(local / "acts")}
    return raw


def configure(fleet: Fleet, raw: dict[str, Any]) -> None:
    fleet.configure(raw)
    fleet.project.config_set("throwaway:hfToken", TOKEN, secret=True)


def fs_dir(fleet: Fleet) -> Path:
    return fleet.runs_dir().parent


def manifest_lines(fleet: Fleet) -> list[dict[str, Any]]:
    text = (fs_dir(fleet) / ".lambda-sae" / "data-manifest.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def data_outputs(fleet: Fleet) -> dict[str, Any]:
    deployment = json.loads(fleet.project.run("stack", "export").stdout)["deployment"]
    return next(r for r in deployment["resources"] if r["type"].endswith("fleet:DataUpload"))["outputs"]


def trainer_environments(fleet: Fleet) -> list[dict[str, str]]:
    tag = f"FLEET_TRAINER_TAG={fleet.node_home('node-0') / 'lambda-sae'}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if tag in entries:
            found.append(dict(e.decode(errors="replace").partition("=")[::2] for e in entries if b"=" in e))
    return found


def command_lines() -> str:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(lines)


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        try:
            small = path.is_file() and not path.is_symlink() and path.stat().st_size < 64 << 20
            if small and needle in path.read_bytes():
                hits.append(str(path))
        except OSError:
            continue
    return hits


def test_data_onto_the_filesystem_and_the_hf_token_into_the_trainer(fleet: Fleet, local: Path) -> None:
    outputs: list[str] = []
    configure(fleet, hf_stack(local))

    # 1. the preview says what will be sent and how big (the head is not up yet: at most everything).
    preview = fleet.preview()
    outputs.append(preview.stdout + preview.stderr)
    assert preview.returncode == 0, outputs[-1][-3000:]
    assert "data: at most 4 file(s), " in preview.stdout, preview.stdout[-3000:]

    # 2. up: the token file and the shard directory land on the filesystem; the hf run reads the tokens through
    #    /lambda/nfs/... and is running (every rank took its first step) when up returns.
    output = fleet.up()
    outputs.append(output)
    assert_clean_up(output)
    fs = fs_dir(fleet)
    assert (fs / "tokens" / "train.npy").read_bytes() == (local / "tokens.npy").read_bytes()
    for i in range(3):
        name = f"shard-{i}.safetensors"
        assert (fs / "acts" / "layer0" / name).read_bytes() == (local / "acts" / name).read_bytes()
    assert sorted(line["path"] for line in manifest_lines(fleet)) == [
        "acts/layer0/shard-0.safetensors",
        "acts/layer0/shard-1.safetensors",
        "acts/layer0/shard-2.safetensors",
        "tokens/train.npy",
    ]
    assert int(run_status(fleet.run_dir("hf")).get("step") or 0) >= 1

    # 3. the token is in the trainer's environment, and on no command line.
    environments = trainer_environments(fleet)
    assert environments, "no trainer process is running"
    assert all(env.get("HF_TOKEN") == TOKEN for env in environments)
    assert TOKEN not in command_lines()

    # 4. a second up sends nothing: the preview says so, and the manifest gains no line.
    preview = fleet.preview()
    outputs.append(preview.stdout + preview.stderr)
    assert "data: nothing to send; 4 file(s)" in preview.stdout or "data" not in preview.stdout, preview.stdout
    fleet.project.run("preview", "--expect-no-changes")
    sent_at = {p: p.stat().st_mtime_ns for p in (fs / "acts" / "layer0").iterdir()}
    output = fleet.up()
    outputs.append(output)
    assert_clean_up(output)
    assert len(manifest_lines(fleet)) == 4

    # 5. a changed shard is sent alone: the preview names it, the manifest records it, the others stay as they were.
    write_shard(local / "acts" / "shard-1.safetensors", 99)
    preview = fleet.preview()
    outputs.append(preview.stdout + preview.stderr)
    assert "data: send 1 file(s), " in preview.stdout, preview.stdout[-3000:]
    assert "(acts/layer0/shard-1.safetensors)" in preview.stdout, preview.stdout[-3000:]
    assert "3 of 4 file(s) up to date" in preview.stdout, preview.stdout[-3000:]
    output = fleet.up()
    outputs.append(output)
    assert_clean_up(output)
    lines = manifest_lines(fleet)
    assert [line["path"] for line in lines[4:]] == ["acts/layer0/shard-1.safetensors"]
    changed = fs / "acts" / "layer0" / "shard-1.safetensors"
    assert changed.read_bytes() == (local / "acts" / "shard-1.safetensors").read_bytes()
    for path, mtime in sent_at.items():
        if path != changed:
            assert path.stat().st_mtime_ns == mtime, f"{path.name} was sent again"

    # 6. an interrupted send resumes: a partial copy of a new file on the filesystem is not sent again (but for the
    #    last window of writes, which an interruption may have left with holes).
    big = np.random.default_rng(1).integers(0, 256, size=6 << 20, dtype=np.uint8).tobytes()
    (local / "acts" / "big.bin").write_bytes(big)
    partial = fs / "acts" / "layer0" / f"big.bin.part-{hashlib.sha256(big).hexdigest()[:12]}"
    partial.write_bytes(big[: 5 << 20])
    output = fleet.up()
    outputs.append(output)
    assert_clean_up(output)
    sent = data_outputs(fleet)["sent"]
    assert sent["sent_files"] == 1, sent
    assert sent["resumed_bytes"] == (5 << 20) - WINDOW * CHUNK, sent
    assert (fs / "acts" / "layer0" / "big.bin").read_bytes() == big
    assert not partial.exists()

    # 7. a shards run reads the uploaded shard directory through a /lambda/nfs glob and finishes.
    shards = hf_stack(local, config=None, runName="shards", waitMinutes=4)
    shards["training"]["overrides"] = {
        "data_source": "shards",
        "shard_paths": [f"{MOUNT}/acts/layer0/*.safetensors"],
        "shard_key": "acts",
        "d_in": 32,
        "expansion_factor": 4,
        "k": 4,
        "batch_size": 256,
        "total_vectors": 256 * 40,
        "shuffle_buffer": 1024,
        "eval_vectors": 256,
        "log_every": 10,
        "checkpoint_every": 100,
        "threads": 1,
        "plot": False,
    }
    configure(fleet, shards)
    output = fleet.up()
    outputs.append(output)
    assert_clean_up(output)
    training = fleet.project.outputs()["training"]
    assert training["state"] == "finished", training
    assert training["summary"]["steps"] == 40, training

    # 8. the token appears nowhere in clear: state, outputs, CLI output, files of the emulator's instances and
    #    filesystem (logs, configs, the run directories), the stack file.
    assert TOKEN not in fleet.project.state_text()
    assert TOKEN not in fleet.project.run("stack", "export").stdout
    assert TOKEN not in json.dumps(fleet.project.outputs())
    assert all(TOKEN not in text for text in outputs)
    assert files_containing(fleet.emulator.data_dir, TOKEN.encode()) == []
    assert TOKEN not in fleet.stack_file.read_text()
    assert os.environ.get("HF_TOKEN") != TOKEN  # the canary came from the stack, not from this process
