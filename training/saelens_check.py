"""Does SAELens load our export and compute what we compute? Run it where `sae-lens` is installed (the benchmark
venv, requirements-bench.txt):

    python -m training.saelens_check RUN_DIR [RUN_DIR ...] [--vectors 512]

For each run directory: `sae_lens.SAE.load_from_disk(RUN_DIR)` (its cfg.json + sae_weights.safetensors) and our
`load_sae(RUN_DIR)` encode the same random activations (scaled like the SAE's b_dec); prints one JSON line per run
with the largest absolute difference of the codes and of the reconstructions, and exits 1 when one is above
--tolerance (1e-5).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from training.outputs import load_sae


def compare(run_dir: Path, vectors: int = 512, seed: int = 0) -> dict[str, Any]:
    from sae_lens import SAE

    ours = load_sae(run_dir)
    theirs = SAE.load_from_disk(str(run_dir), device="cpu")
    gen = torch.Generator().manual_seed(seed)
    x = ours.b_dec.detach() + torch.randn(
        vectors, ours.d_in, generator=gen
    ) * ours.b_dec.detach().abs().mean().clamp_min(1.0)
    with torch.no_grad():
        codes = ours.codes(x)
        vals, idx, _, _ = ours.encode(x, inference=True)
        recon = ours.decode(vals, idx)
        their_codes = theirs.encode(x)
        their_recon = theirs.decode(their_codes)
    return {
        "run": str(run_dir),
        "saelens_class": type(theirs).__name__,
        "architecture": theirs.cfg.architecture(),
        "codes_max_abs_diff": float((codes - their_codes).abs().max()),
        "recon_max_abs_diff": float((recon - their_recon).abs().max()),
        "active_per_row": float((codes > 0).sum(1).float().mean()),
        "same_active_set": bool(torch.equal(codes > 0, their_codes > 0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.saelens_check", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--vectors", type=int, default=512)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args(argv)
    worst = 0.0
    for run in args.runs:
        result = compare(run, args.vectors)
        worst = max(worst, result["codes_max_abs_diff"], result["recon_max_abs_diff"])
        print(json.dumps(result), flush=True)
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
