"""The stack's `data` and `hfToken` keys: what parses, and what is refused at preview with the key and the fix (no
CLI, no emulator); the upload plan a preview shows, from the manifest the filesystem keeps; the emulator's mapping of
trainer paths under /lambda/nfs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambda_provider.fleet.config import FleetConfigError, parse_fleet_config
from lambda_provider.fleet.data_upload import DigestCache, digest_of_files_read, local_files, make_plan, parse_manifest
from lambda_provider.fleet.node_step import with_secret_environment
from training.node_paths import on_node

REPO = Path(__file__).resolve().parents[2]
EMULATOR_URL = "http://127.0.0.1:8790/api/v1"
TOKEN = "hf_unitTestTokenThatMustNeverBePrinted"


def stack(**extra: Any) -> dict[str, Any]:
    return {
        "target": "emulator",
        "nodeGroups": [
            {"name": "node", "count": 1, "placements": [{"instanceType": "gpu_1x_a10", "region": "us-east-1"}]}
        ],
        "filesystem": {"name": "sae-dev", "region": "us-east-1"},
        "training": {"config": "training/configs/tiny-cpu.yaml", "allowCpu": True},
        "budget": {"maxUsdPerHour": 10, "maxHours": 1},
        **extra,
    }


def refused(raw: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> str:
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_config(raw, api_url=EMULATOR_URL, repo_root=REPO, secret_keys=secret_keys)
    return str(info.value)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    (tmp_path / "tokens.npy").write_bytes(b"0123456789")
    shards = tmp_path / "acts"
    (shards / "sub").mkdir(parents=True)
    (shards / "a.safetensors").write_bytes(b"a" * 100)
    (shards / "sub" / "b.safetensors").write_bytes(b"b" * 50)
    return tmp_path


def test_data_entries_parse_to_absolute_sources(corpus: Path) -> None:
    raw = stack(data={"tokens/train.npy": str(corpus / "tokens.npy"), "acts/layer0/": str(corpus / "acts")})
    config = parse_fleet_config(raw, api_url=EMULATOR_URL, repo_root=REPO)
    assert [(e.dest, e.source, e.is_dir) for e in config.data] == [
        ("acts/layer0", corpus / "acts", True),
        ("tokens/train.npy", corpus / "tokens.npy", False),
    ]


def test_a_relative_data_source_is_read_from_the_project_directory() -> None:
    config = parse_fleet_config(stack(data={"configs": "training/configs"}), api_url=EMULATOR_URL, repo_root=REPO)
    assert config.data[0].source == REPO / "training" / "configs"


def test_a_missing_data_source_is_refused_naming_the_key(corpus: Path) -> None:
    message = refused(stack(data={"tokens/t.npy": str(corpus / "nope.npy")}))
    assert f"data.tokens/t.npy: {corpus / 'nope.npy'} does not exist -- point it at a local file" in message


@pytest.mark.parametrize("dest", ["/abs/path", "a/../b", "a//b", "spaces here"])
def test_a_data_destination_outside_the_filesystem_is_refused(corpus: Path, dest: str) -> None:
    message = refused(stack(data={dest: str(corpus / "tokens.npy")}))
    assert "is not a path relative to the filesystem -- name where it lands under /lambda/nfs/" in message


def test_the_fleets_own_directories_are_refused_as_destinations(corpus: Path) -> None:
    message = refused(stack(data={"runs/x.npy": str(corpus / "tokens.npy")}))
    assert "data.runs/x.npy: runs/ on the filesystem belongs to the fleet" in message


def test_an_entry_inside_another_is_refused(corpus: Path) -> None:
    message = refused(stack(data={"acts": str(corpus / "acts"), "acts/extra.npy": str(corpus / "tokens.npy")}))
    assert "data.acts/extra.npy: lands inside data.acts, another entry -- remove one of them" in message


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "is an empty directory (nothing to send)" in refused(stack(data={"e": str(tmp_path / "empty")}))


def test_data_must_be_a_mapping() -> None:
    assert "data: expected a non-empty mapping of <path on the filesystem>: <local path>" in refused(
        stack(data=["a.npy"])
    )


def test_a_secret_hf_token_parses_and_is_never_in_the_repr() -> None:
    config = parse_fleet_config(stack(hfToken=TOKEN), api_url=EMULATOR_URL, repo_root=REPO, secret_keys={"hfToken"})
    assert config.hf_token == TOKEN
    assert TOKEN not in repr(config)


def test_a_clear_text_hf_token_is_refused_without_echoing_it() -> None:
    message = refused(stack(hfToken=TOKEN))
    assert "hfToken: is stored in clear in the stack file" in message
    assert "pulumi config set --secret lambda-sae:hfToken" in message
    assert TOKEN not in message


def test_a_malformed_hf_token_is_refused_without_echoing_it() -> None:
    message = refused(stack(hfToken="two words"), secret_keys=("hfToken",))
    assert "hfToken: expected a Hugging Face access token" in message
    assert "two words" not in message


# ------------------------------------------------------------------ the plan
def files_of(corpus: Path, tmp_path: Path) -> list[dict[str, Any]]:
    raw = stack(data={"tokens.npy": str(corpus / "tokens.npy"), "acts": str(corpus / "acts")})
    entries = parse_fleet_config(raw, api_url=EMULATOR_URL, repo_root=REPO).data
    return local_files(entries, DigestCache.load(tmp_path / "cache.json"))


def manifest_of(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return parse_manifest("\n".join(json.dumps({k: f[k] for k in ("path", "sha256", "size")}) for f in files))


def test_directory_entries_send_every_file_under_their_destination(corpus: Path, tmp_path: Path) -> None:
    files = files_of(corpus, tmp_path)
    assert [(f["path"], f["size"]) for f in files] == [
        ("acts/a.safetensors", 100),
        ("acts/sub/b.safetensors", 50),
        ("tokens.npy", 10),
    ]


def test_a_new_filesystem_sends_everything(corpus: Path, tmp_path: Path) -> None:
    plan = make_plan(files_of(corpus, tmp_path), ["acts"], {})
    assert plan.line() == (
        "data: send 3 file(s), 160 B (acts/a.safetensors, acts/sub/b.safetensors, tokens.npy); "
        "0 of 3 file(s) up to date"
    )


def test_what_the_manifest_holds_is_not_sent_again(corpus: Path, tmp_path: Path) -> None:
    files = files_of(corpus, tmp_path)
    plan = make_plan(files, ["acts"], manifest_of(files))
    assert plan.action == "none", plan.action
    assert plan.line() == "data: nothing to send; 3 file(s), 160 B up to date", plan.line()


def test_a_changed_file_alone_is_sent(corpus: Path, tmp_path: Path) -> None:
    before = files_of(corpus, tmp_path)
    (corpus / "acts" / "a.safetensors").write_bytes(b"c" * 120)
    plan = make_plan(files_of(corpus, tmp_path), ["acts"], manifest_of(before))
    assert [f["path"] for f in plan.send] == ["acts/a.safetensors"]


def test_a_file_gone_from_a_directory_entry_is_removed_and_others_are_not(corpus: Path, tmp_path: Path) -> None:
    before = files_of(corpus, tmp_path)
    manifest = manifest_of(before) | {"elsewhere/x.bin": {"path": "elsewhere/x.bin", "sha256": "0", "size": 1}}
    (corpus / "acts" / "sub" / "b.safetensors").unlink()
    plan = make_plan(files_of(corpus, tmp_path), ["acts"], manifest)
    assert plan.remove == ("acts/sub/b.safetensors",)


def test_the_last_manifest_line_of_a_path_wins_and_a_cut_line_is_ignored() -> None:
    text = "\n".join(
        [
            json.dumps({"path": "a", "sha256": "1", "size": 1}),
            json.dumps({"path": "a", "sha256": "2", "size": 1}),
            json.dumps({"path": "b", "sha256": "3", "size": 1}),
            json.dumps({"path": "b", "removed": True}),
            '{"path": "c", "sha2',
        ]
    )
    assert parse_manifest(text) == {"a": {"path": "a", "sha256": "2", "size": 1}}


def test_an_unreadable_manifest_plans_at_most_everything(corpus: Path, tmp_path: Path) -> None:
    plan = make_plan(files_of(corpus, tmp_path), ["acts"], None)
    assert plan.line().startswith("data: at most 3 file(s), 160 B to send (the filesystem's manifest is read")


def test_the_digest_cache_answers_for_an_unchanged_file(corpus: Path, tmp_path: Path) -> None:
    files_of(corpus, tmp_path)
    cache = DigestCache.load(tmp_path / "cache.json")
    cache.sha256((corpus / "tokens.npy").resolve())
    assert cache.dirty is False


# ------------------------------------------------------------------ on the node
def test_trainer_paths_under_lambda_nfs_map_onto_the_instance_root() -> None:
    config = {
        "hf_tokens": "/lambda/nfs/fs/tokens.npy",
        "shard_paths": ["/lambda/nfs/fs/acts/*.safetensors", "relative/x.npy"],
        "nested": {"out": "/lambda/nfs/fs/runs/x"},
        "k": 4,
        "other": "/data/x",
    }
    assert on_node(config, "/emu/root") == {
        "hf_tokens": "/emu/root/lambda/nfs/fs/tokens.npy",
        "shard_paths": ["/emu/root/lambda/nfs/fs/acts/*.safetensors", "relative/x.npy"],
        "nested": {"out": "/emu/root/lambda/nfs/fs/runs/x"},
        "k": 4,
        "other": "/data/x",
    }


def test_on_a_real_instance_trainer_paths_stay_as_written() -> None:
    assert on_node({"hf_tokens": "/lambda/nfs/fs/t.npy"}, "") == {"hf_tokens": "/lambda/nfs/fs/t.npy"}


def test_a_secret_environment_travels_on_stdin_not_on_the_command_line() -> None:
    script, stdin = with_secret_environment("bash launch.sh start", {"HF_TOKEN": TOKEN})
    assert TOKEN not in script
    assert stdin == f"{TOKEN}\n".encode()
    assert script.startswith("IFS= read -r HF_TOKEN || true; export HF_TOKEN\n")


def test_the_live_view_shows_a_data_progress_record_as_one_line() -> None:
    from lambda_provider.cli.view import data_line

    record = {"state": "sending", "files": 4, "done_files": 1, "bytes": 3 << 20, "sent_bytes": 1 << 20}
    assert data_line({**record, "bytes_per_second": 1 << 19}) == ("sending: 1/4 files, 1.0 MiB of 3.0 MiB at 0.5 MiB/s")


FILES = [
    {"path": "acts/layer0/shard-0.safetensors", "sha256": "a0"},
    {"path": "acts/layer0/shard-1.safetensors", "sha256": "a1"},
    {"path": "probe/held-out.jsonl", "sha256": "p0"},
    {"path": "tokens/train.npy", "sha256": "t0"},
]


def test_the_run_data_digest_covers_the_files_a_glob_names() -> None:
    config = {"shard_paths": ["/lambda/nfs/fs/acts/layer0/*.safetensors"]}
    changed = [dict(f, sha256="zz") if f["path"].endswith("shard-1.safetensors") else f for f in FILES]
    assert digest_of_files_read(FILES, config, "/lambda/nfs/fs") != digest_of_files_read(
        changed, config, "/lambda/nfs/fs"
    )


def test_the_run_data_digest_ignores_files_the_run_does_not_name() -> None:
    config = {"hf_tokens": "/lambda/nfs/fs/tokens/train.npy"}
    changed = [dict(f, sha256="zz") if f["path"].startswith("probe/") else f for f in FILES]
    assert digest_of_files_read(FILES, config, "/lambda/nfs/fs") == digest_of_files_read(
        changed, config, "/lambda/nfs/fs"
    )


def test_a_run_that_names_no_uploaded_file_has_no_data_digest() -> None:
    assert digest_of_files_read(FILES, {"shard_paths": ["/lambda/nfs/fs/runs/acts"]}, "/lambda/nfs/fs") is None
