"""The demo's report: ``results.md``, the one-screen summary and ``results.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kard_chain.evaluation import wilson_interval
from kard_chain.records import Example


def accuracy_row(correct: int, total: int) -> dict:
    """Accuracy with its 95% Wilson interval and the counts."""
    low, high = wilson_interval(correct, total)
    return {"accuracy": correct / total if total else 0.0, "ci95": [low, high], "correct": correct, "total": total}


def by_type(examples: list[Example], records: dict[str, Any]) -> dict:
    """Accuracy per question type (and for two-hop questions whose second passage is disjoint)."""
    groups: dict[str, list[bool]] = {}
    for e in examples:
        if e.id in records:
            groups.setdefault(e.metadata["type"], []).append(records[e.id].correct)
            if e.metadata.get("second_hop_disjoint"):
                groups.setdefault("two-hop, second passage disjoint", []).append(records[e.id].correct)
    return {t: accuracy_row(sum(v), len(v)) for t, v in groups.items()}


def _interval(row: dict) -> str:
    return f"{row['accuracy']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]"


def results_markdown(r: dict) -> str:
    """The results as a Markdown report."""
    k = r["k"]
    types = list(next(iter(r["methods"].values()))["by_type"])
    lines = [
        f"# kard demo: {r['size']} world (seed {r['seed']})", "",
        f"Teacher: {r['teacher']}. Reranker encoder: {r['reranker_encoder']}.",
        f"Students: T5 from a config, d_model {r['student']['d_model']}, {r['student']['layers']}+{r['student']['layers']} layers, "
        f"{r['student']['parameters'] / 1e6:.1f}M parameters, each trained {r['student']['steps']} steps of batch "
        f"{r['student']['batch_size']}. Answers: majority vote of {r['n']} samples; KARD reads the top {k} passages.",
        f"{r['questions']['train']} training and {r['questions']['test']} test questions; test entities never occur in training. "
        f"Accuracy with 95% Wilson intervals. KARD (BM25) and KARD (reranker) are one student, as in the paper (its training "
        f"passages come from the rationale); they differ in the retriever that serves it.", "",
        "| method | accuracy [95% CI] | " + " | ".join(types) + " |",
        "|---|---|" + "---|" * len(types),
    ]
    for method, row in r["methods"].items():
        lines.append(f"| {method} | {_interval(row)} | " + " | ".join(_interval(row["by_type"][t]) for t in types) + " |")
    lines += ["", f"Retrieval on the test questions (share of gold evidence passages in the top {k}):", "",
              "| retriever | " + " | ".join(next(iter(r["retrieval"].values()))) + " |",
              "|---|" + "---|" * len(next(iter(r["retrieval"].values())))]
    for label, row in r["retrieval"].items():
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    e = r["editing"]
    edit_types = list(next(iter(e["follow_edit"].values()))["by_type"])
    lines += ["", f"Knowledge editing: {e['questions']} test questions whose answer changed after editing their entities "
              "in the knowledge base only (re-indexed, no retraining). Share of answers that follow the edit:", "",
              "| method | follows the edit [95% CI] | " + " | ".join(edit_types) + " |", "|---|---|" + "---|" * len(edit_types)]
    lines += [f"| {m} | {_interval(row)} | " + " | ".join(_interval(row["by_type"][t]) if t in row["by_type"] else "-" for t in edit_types)
              + " |" for m, row in e["follow_edit"].items()]
    lines += ["", f"Total {r['total_seconds']:.0f} s, peak memory {r['peak_memory_gib']:.2f} GiB. Stages (s): "
              + ", ".join(f"{s} {v:.0f}" for s, v in r["stage_seconds"].items()) + "."]
    return "\n".join(lines) + "\n"


def summary_screen(r: dict, out: Path, chart: str) -> str:
    """The one-screen summary printed at the end."""
    lines = [f"kard demo ({r['size']}): {r['questions']['test']} test questions about unseen entities; teacher: {r['teacher']}"]
    for method, row in r["methods"].items():
        follow = r["editing"]["follow_edit"][method]["accuracy"]
        lines.append(f"  {method:<16} accuracy {_interval(row)}   follows edited knowledge {follow:.2f}")
    lines.append(f"  reranker: {r['reranker_encoder']}")
    lines.append(f"  {r['total_seconds']:.0f} s in all, peak {r['peak_memory_gib']:.2f} GiB")
    lines.append(f"  report: {out / 'results.md'}, {out / 'results.json'}, {chart}")
    return "\n".join(lines)


def write_chart(r: dict, path: Path) -> str:
    """A bar chart of accuracy with intervals; needs matplotlib (the ``demo`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart (pip install matplotlib, or the kard-chain[demo] extra)"
    names = list(r["methods"])
    acc = [r["methods"][m]["accuracy"] for m in names]
    low = [a - r["methods"][m]["ci95"][0] for a, m in zip(acc, names)]
    high = [r["methods"][m]["ci95"][1] - a for a, m in zip(acc, names)]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.bar(names, acc, yerr=[low, high], capsize=6, color=["#999999", "#6a8caf", "#2b6cb0", "#1a4480"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"kard demo ({r['size']}): unseen test entities")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return str(path)
