"""The C top-k kernel: the selection torch.topk makes, on the SAE's shapes and on awkward rows; clean fallback."""

from __future__ import annotations

import math

import pytest
import torch

from training import cpu_topk
from training.sae import exact_topk

pytestmark = pytest.mark.skipif(not cpu_topk.available(), reason="no C compiler to build the kernel")


def _assert_same_selection(pre: torch.Tensor, k: int) -> None:
    vals, idx = cpu_topk.topk(pre, k)
    ref = pre.topk(k, dim=1).values
    assert vals.shape == idx.shape == (pre.shape[0], k)
    assert idx.dtype == torch.long
    torch.testing.assert_close(vals.sort(dim=1).values, ref.sort(dim=1).values, rtol=0, atol=0)
    assert torch.equal(pre.gather(1, idx), vals)  # indices point at the values returned
    assert bool((idx.sort(dim=1).values.diff(dim=1) > 0).all())  # no column chosen twice


@pytest.mark.parametrize(
    ("rows", "width", "k"), [(4096, 2048, 32), (512, 2048, 128), (64, 40, 40), (33, 9, 1), (300, 1000, 7)]
)
def test_matches_torch_topk(rows: int, width: int, k: int) -> None:
    pre = torch.randn(rows, width, generator=torch.Generator().manual_seed(rows + width + k))
    _assert_same_selection(pre, k)


def test_awkward_rows_ties_increasing_infinities() -> None:
    gen = torch.Generator().manual_seed(7)
    ties = (torch.randn(256, 512, generator=gen) * 2).round()  # few distinct values: ties at the k-th value
    _assert_same_selection(ties, 32)
    _assert_same_selection(torch.zeros(8, 300), 32)  # all equal
    increasing = torch.arange(2048.0).repeat(16, 1)  # every element beats the running bound: many buffer cuts
    _assert_same_selection(increasing, 32)
    _assert_same_selection(-increasing, 32)
    with_inf = torch.randn(64, 256, generator=gen)
    with_inf[:, ::3] = -math.inf
    with_inf[0] = -math.inf
    _assert_same_selection(with_inf, 32)


def test_nan_is_never_chosen_over_a_number() -> None:
    pre = torch.randn(16, 256, generator=torch.Generator().manual_seed(1))
    pre[:, ::2] = math.nan
    vals, idx = cpu_topk.topk(pre, 32)
    assert not vals.isnan().any()
    torch.testing.assert_close(vals.sort(dim=1).values, pre.nan_to_num(-math.inf).topk(32, dim=1).values.sort(1).values)
    pre[3, 5:] = math.nan  # row 3 keeps 2 numbers (columns 1 and 3): its other k slots are -inf on distinct columns
    vals, idx = cpu_topk.topk(pre, 32)
    assert set(idx[3][vals[3].isfinite()].tolist()) == {1, 3}
    assert idx[3].unique().numel() == 32


def test_sae_uses_it_only_where_it_applies() -> None:
    pre = torch.randn(128, 2048)
    assert cpu_topk.supports(pre, 32)
    assert not cpu_topk.supports(pre.to(torch.bfloat16), 32)  # bf16 goes to torch
    assert not cpu_topk.supports(pre, cpu_topk.MAX_K + 1)  # BatchTopK's batch-wide cut is not a row top-k
    vals, _ = exact_topk(pre.to(torch.bfloat16), 32)
    assert vals.dtype == torch.bfloat16


def test_without_compiler_or_when_disabled_callers_fall_back(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    pre = torch.randn(64, 2048)
    try:
        monkeypatch.setenv("LAMBDA_SAE_NATIVE_TOPK", "0")
        cpu_topk._library.cache_clear()
        assert not cpu_topk.available()
        assert not cpu_topk.supports(pre, 32)
        vals, _ = exact_topk(pre, 32)  # the torch path
        torch.testing.assert_close(vals.sort(1).values, pre.topk(32, dim=1).values.sort(1).values)
        monkeypatch.delenv("LAMBDA_SAE_NATIVE_TOPK")
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        monkeypatch.setenv("LAMBDA_SAE_CACHE", str(tmp_path / "cache"))
        cpu_topk._library.cache_clear()
        assert not cpu_topk.available()
    finally:
        monkeypatch.undo()
        cpu_topk._library.cache_clear()
    assert cpu_topk.available()


def test_builds_into_the_cache_once(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("LAMBDA_SAE_CACHE", str(tmp_path))
    try:
        cpu_topk._library.cache_clear()
        assert cpu_topk.available()
        built = list((tmp_path / "kernels").glob("cpu_topk-*.so"))
        assert len(built) == 1
        assert not list((tmp_path / "kernels").glob("*.tmp"))
        stamp = built[0].stat().st_mtime_ns
        cpu_topk._library.cache_clear()
        assert cpu_topk.available()
        assert built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt
    finally:
        monkeypatch.undo()
        cpu_topk._library.cache_clear()
