"""Activation shards streamed through the shuffling buffer; planted data seeding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from training.config import ConfigError
from training.data import (
    PlantedFeatures,
    ShardSource,
    ShuffledStream,
    make_generator,
    rank_rows,
    remap_stream_states,
)
from training.evaluate import feature_recovery
from training.sae import SparseAutoencoder


def _write_shards(tmp_path: Path, d_in: int = 8) -> torch.Tensor:
    """Three shards in three formats; column 0 holds a unique id per vector."""
    rows = torch.arange(3 * 400, dtype=torch.float32)
    data = torch.cat([rows[:, None], torch.randn(len(rows), d_in - 1)], dim=1)
    np.save(tmp_path / "a.npy", data[:400].numpy())
    save_file({"acts": data[400:800].contiguous()}, str(tmp_path / "b.safetensors"))
    torch.save({"acts": data[800:].reshape(4, 100, d_in).clone()}, tmp_path / "c.pt")  # [seq, pos, d] is flattened
    return data


def test_shards_stream_every_vector_once_per_epoch_shuffled(tmp_path: Path) -> None:
    data = _write_shards(tmp_path)
    source = ShardSource(
        [str(tmp_path / "*.npy"), str(tmp_path / "*.safetensors"), str(tmp_path / "c.pt")],
        key="acts",
        seed=5,
        chunk_rows=150,
    )
    assert source.d_in == 8
    stream = ShuffledStream(source, batch_rows=50, buffer_rows=600, seed=5)
    seen = torch.cat([stream.next_batch() for _ in range(24)])  # 1200 vectors = one epoch
    ids = seen[:, 0].long()
    assert sorted(ids.tolist()) == list(range(1200))
    assert not torch.equal(ids, torch.arange(1200))  # shuffled
    torch.testing.assert_close(seen[ids.argsort()], data)  # every vector intact
    assert stream.state.epoch == 0
    stream.next_batch()
    assert stream.state.epoch == 1


def test_stream_resume_replays_the_same_batches(tmp_path: Path) -> None:
    _write_shards(tmp_path)
    source = ShardSource([str(tmp_path / "a.npy"), str(tmp_path / "b.safetensors")], key="acts", seed=1, chunk_rows=100)
    first = ShuffledStream(source, batch_rows=64, buffer_rows=256, seed=9)
    for _ in range(7):
        first.next_batch()
    state = first.state_dict()
    expected = [first.next_batch() for _ in range(10)]
    resumed = ShuffledStream(source, batch_rows=64, buffer_rows=256, seed=9)
    resumed.load_state_dict(state)
    for want in expected:
        assert torch.equal(resumed.next_batch(), want)


def test_ranks_read_disjoint_data(tmp_path: Path) -> None:
    _write_shards(tmp_path)
    source = ShardSource([str(tmp_path / "a.npy")], key=None, seed=1, chunk_rows=100)
    ids = []
    for rank in range(2):
        stream = ShuffledStream(source, batch_rows=50, buffer_rows=100, seed=3, rank=rank, world=2)
        ids.append({int(v) for _ in range(4) for v in stream.next_batch()[:, 0]})
    assert len(ids[0]) == len(ids[1]) == 200
    assert not ids[0] & ids[1]


def test_bad_shards_are_rejected_with_key_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^shard_paths: pattern .* matched no files"):
        ShardSource([str(tmp_path / "*.npy")], None, 0)
    save_file({"x": torch.zeros(4, 3), "y": torch.zeros(4, 3)}, str(tmp_path / "two.safetensors"))
    with pytest.raises(ConfigError, match="^shard_key: .* set shard_key"):
        ShardSource([str(tmp_path / "two.safetensors")], None, 0)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ConfigError, match="^shard_paths: .*unsupported suffix"):
        ShardSource([str(tmp_path / "x.csv")], None, 0)


def test_planted_dictionary_and_init_use_separate_streams() -> None:
    """Same seed for data and init must not replay the dictionary (the manual_seed pitfall in sae-notes §5)."""
    planted = PlantedFeatures(64, 512, 10.0, 0.6, 0.01, 1.0, seed=7)
    sae = SparseAutoencoder(64, 512, 8, generator=make_generator(7, 12))
    assert feature_recovery(sae.W_dec.detach(), planted.dictionary) < 0.5
    torch.manual_seed(7)
    naive = torch.randn(512, 64)  # what a careless init with the data seed would draw
    assert feature_recovery(naive, planted.dictionary) < 0.5
    sample = planted.sample(4000, make_generator(7, 14))
    assert sample.shape == (4000, 64)
    fired = planted.rates.sum().item()
    assert 9.0 < fired < 11.0


def test_shards_hold_out_their_last_rows_from_the_stream(tmp_path: Path) -> None:
    data = _write_shards(tmp_path)
    source = ShardSource(
        [str(tmp_path / "a.npy"), str(tmp_path / "b.safetensors"), str(tmp_path / "c.pt")],
        key="acts",
        seed=5,
        chunk_rows=150,
        holdout_rows=500,
    )
    assert source.holdout_rows == 120  # at most a tenth of the 1200 rows
    held = source.heldout()
    assert held is not None
    assert torch.equal(held, data[-120:])
    stream = ShuffledStream(source, batch_rows=40, buffer_rows=600, seed=5)
    seen = torch.cat([stream.next_batch() for _ in range(27)])  # 1080 vectors = one epoch of the rest
    assert sorted(seen[:, 0].long().tolist()) == list(range(1080))
    assert stream.state.epoch == 0
    assert ShardSource([str(tmp_path / "a.npy")], None, 5).heldout() is None  # nothing held out unless asked


@pytest.mark.parametrize("old_world, new_world", [(2, 3), (3, 1), (3, 2), (1, 4), (4, 4)])
def test_remapped_positions_cover_every_chunk_from_the_earliest_unfinished_once(old_world: int, new_world: int) -> None:
    rng = np.random.default_rng(old_world * 10 + new_world)
    for _ in range(50):
        states = [
            {
                "epoch": int(rng.integers(2, 4)),
                "window_start": int(rng.integers(0, 6)),
                "offset": int(rng.integers(0, 100)),
            }
            for _ in range(old_world)
        ]
        epoch, earliest = min((s["epoch"], s["window_start"] * old_world + r) for r, s in enumerate(states))
        new = remap_stream_states(states, new_world)
        assert [s["epoch"] for s in new] == [epoch] * new_world
        assert [s["offset"] for s in new] == [0] * new_world
        owners: dict[int, list[int]] = {}
        for rank, state in enumerate(new):
            for j in range(state["window_start"], 40):
                owners.setdefault(j * new_world + rank, []).append(rank)
        assert min(owners) == earliest  # nothing before the earliest unfinished chunk is read again
        assert all(owners.get(chunk) == [chunk % new_world] for chunk in range(earliest, 30))


def test_streams_resumed_on_another_world_skip_no_row(tmp_path: Path) -> None:
    _write_shards(tmp_path)
    source = ShardSource([str(tmp_path / "*")], key="acts", seed=2, chunk_rows=100)  # 12 chunks, a window each
    seen: list[int] = []
    old = [ShuffledStream(source, batch_rows=50, buffer_rows=100, seed=4, rank=r, world=2) for r in range(2)]
    for stream in old:
        seen += [int(v) for _ in range(3) for v in stream.next_batch()[:, 0]]  # 1.5 windows each
    states = remap_stream_states([stream.state_dict() for stream in old], 3)
    for rank, state in enumerate(states):
        stream = ShuffledStream(source, batch_rows=50, buffer_rows=100, seed=4, rank=rank, world=3)
        stream.load_state_dict(state)
        batch = stream.next_batch()
        while stream.state.epoch == 0:  # to the end of the epoch
            seen += [int(v) for v in batch[:, 0]]
            batch = stream.next_batch()
    assert set(seen) == set(range(1200))
    assert len(seen) - 1200 == 100  # the two half-read windows are read again, nothing else


def test_an_uneven_batch_splits_into_rank_shares_that_sum_to_it() -> None:
    assert [rank_rows(5, 2, r) for r in range(2)] == [3, 2]
    assert [rank_rows(256, 3, r) for r in range(3)] == [86, 85, 85]
    assert sum(rank_rows(4097, 7, r) for r in range(7)) == 4097


def test_a_rank_without_a_chunk_is_told_how_many_ranks_fit(tmp_path: Path) -> None:
    _write_shards(tmp_path)
    source = ShardSource([str(tmp_path / "a.npy")], key=None, seed=1, chunk_rows=200)  # 2 chunks
    stream = ShuffledStream(source, batch_rows=50, buffer_rows=200, seed=3, rank=2, world=3)
    with pytest.raises(ConfigError, match=r"^data: 2 chunk\(s\) for 3 ranks .* rank 2 gets none; run on at most 2"):
        stream.next_batch()
