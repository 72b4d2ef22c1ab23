"""python -m training.probe --sae RUN_DIR [--data FILE.jsonl] [--layers ...]: probes on an SAE's latents against
the baselines; writes probe_report.json, probe_report.md and probe_pr.png next to the SAE (or to --out)."""

from __future__ import annotations

import argparse
import sys

from training.probe.pipeline import ProbeOptions, run
from training.probe.probes import ProbeSettings
from training.probe.report import markdown


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.probe", description=__doc__)
    parser.add_argument("--sae", required=True, help="a run's out_dir, or a directory of runs (one per layer)")
    parser.add_argument(
        "--data", help="held-out JSONL of {text, spans: [{start, end, label}]} (default: the synthetic test split)"
    )
    parser.add_argument("--layers", nargs="+", help="only the SAEs at these hf_layer names (or layer numbers)")
    parser.add_argument("--out", help="where the report goes (default: next to the SAE)")
    parser.add_argument("--train-examples", type=int, default=ProbeOptions.train_examples)
    parser.add_argument("--test-examples", type=int, default=ProbeOptions.test_examples)
    parser.add_argument("--seed", type=int, default=ProbeOptions.seed)
    parser.add_argument(
        "--threshold",
        type=float,
        default=ProbeOptions.threshold,
        help="the span threshold with --fixed-threshold (default: per class, chosen on a validation fifth of the "
        "training split)",
    )
    parser.add_argument("--fixed-threshold", action="store_true", help="use --threshold for every class")
    parser.add_argument(
        "--min-tokens",
        type=int,
        default=ProbeOptions.min_tokens,
        help="multi-token evidence: tokens a predicted span needs above the threshold",
    )
    parser.add_argument("--penalty", choices=("l1", "l2"), default=ProbeSettings.penalty)
    parser.add_argument("--C", type=float, default=ProbeSettings.C, help="inverse regularisation strength")
    parser.add_argument("--max-batch-tokens", type=int, default=ProbeOptions.max_batch_tokens)
    parser.add_argument("--device", help="cuda or cpu (default: cuda where present)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    options = ProbeOptions(
        train_examples=args.train_examples,
        test_examples=args.test_examples,
        seed=args.seed,
        threshold=args.threshold,
        tune_thresholds=not args.fixed_threshold,
        min_tokens=args.min_tokens,
        max_batch_tokens=args.max_batch_tokens,
        probe=ProbeSettings(penalty=args.penalty, C=args.C),
    )
    try:
        result, paths = run(args.sae, args.data, args.layers, options, args.out, args.device)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
