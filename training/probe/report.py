"""probe_report.json, probe_report.md (the comparison table) and probe_pr.png (span precision-recall per class)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.probe.generate import CLASSES

METHODS = ("raw", "sae", "sae_binary", "regex")
METHOD_NAMES = {
    "raw": "logreg on raw activations",
    "sae": "logreg on SAE codes",
    "sae_binary": "logreg on binarised SAE codes",
    "regex": "regex + validators",
}
# (header, level, average, metric): the comparison table's columns, in order.
COLUMNS = (
    ("span P", "span", "micro", "precision"),
    ("span R", "span", "micro", "recall"),
    ("span F1", "span", "micro", "f1"),
    ("span macro F1", "span", "macro", "f1"),
    ("span R@95P (macro)", "span", "macro", "recall_at_95p"),
    ("token P", "token", "micro", "precision"),
    ("token R", "token", "micro", "recall"),
    ("token F1", "token", "micro", "f1"),
    ("token macro F1", "token", "macro", "f1"),
    ("token R@95P (macro)", "token", "macro", "recall_at_95p"),
)


def headline(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{layer: {method: span micro F1}}: what the fleet puts in its outputs."""
    return {
        layer: {m: round(res["methods"][m]["span_micro"]["f1"], 4) for m in METHODS if m in res["methods"]}
        for layer, res in report["layers"].items()
    }


def markdown(report: dict[str, Any]) -> str:
    data, settings = report["data"], report["settings"]
    threshold = (
        "the class's threshold (chosen on a validation fifth of the training split)"
        if settings.get("tune_thresholds")
        else settings["threshold"]
    )
    lines = [
        f"# PII probes: {report['sae']['hf_model']}",
        "",
        f"Held-out split: {data['test_examples']} examples ({data['test_tokens']} tokens, source "
        f"{data['test_source']}); trained on {data['train_examples']} synthetic examples. Span = run of tokens "
        f"scoring at or above {threshold} with >= {settings['min_tokens']} token(s), scored by its max, counted "
        "right when it overlaps a gold span of its class. Micro over all classes, macro over the classes present; "
        "R@95P = best recall at >= 95 % precision over all thresholds.",
        "",
    ]
    header = ["layer", "SAE", "method", *(c[0] for c in COLUMNS)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for layer, res in report["layers"].items():
        sae = f"{res['sae']['d_sae']} latents, k={res['sae']['k']}"
        for method in METHODS:
            if method not in res["methods"]:
                continue
            m = res["methods"][method]
            cells = [f"{m[f'{level}_{avg}'].get(key, float('nan')):.3f}" for _, level, avg, key in COLUMNS]
            lines.append("| " + " | ".join([layer, sae, METHOD_NAMES[method], *cells]) + " |")
    lines += ["", "Span F1 per class:", ""]
    for layer, res in report["layers"].items():
        methods = [m for m in METHODS if m in res["methods"]]
        lines += [f"| {layer}: class | spans | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
        for name in CLASSES:
            support = res["methods"][methods[0]]["per_class"][name]["support_spans"]
            f1s = [f"{res['methods'][m]['per_class'][name]['span']['f1']:.3f}" for m in methods]
            lines.append(f"| {name} | {support} | " + " | ".join(f1s) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layer, res = next(iter(report["layers"].items()))
    cols = 3
    rows = -(-len(CLASSES) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, CLASSES, strict=False):
        for method in METHODS:
            curve = res["methods"].get(method, {}).get("per_class", {}).get(name, {}).get("pr_curve")
            if curve:
                ax.plot(
                    [r for _, r in curve],
                    [p for p, _ in curve],
                    marker="." if method == "regex" else None,
                    label=method,
                )
        ax.set_title(name)
        ax.set_xlabel("span recall")
        ax.set_ylabel("span precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
    for ax in list(axes.flat)[len(CLASSES) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{report['sae']['hf_model']} {layer}: span precision-recall on the held-out split")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "probe_report.json",
        "markdown": out_dir / "probe_report.md",
        "png": out_dir / "probe_pr.png",
    }
    paths["json"].write_text(json.dumps(report, indent=1))
    paths["markdown"].write_text(markdown(report))
    plot(report, paths["png"])
    return paths
