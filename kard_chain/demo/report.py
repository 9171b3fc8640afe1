"""The demo's report: ``results.md``, the one-screen summary and ``results.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kard_chain.metrics import wilson_interval
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


def _counterfactual_note(copies: int, yes_no: bool) -> str:
    if not copies:
        return "; no counterfactual copies"
    return (f"; each 4-option pair whose passages state its answer has {copies} counterfactual "
            f"cop{'y' if copies == 1 else 'ies'}, the gold option's text swapped for another's in its passages and rationale"
            + ("; each yes/no pair as many, the colour its rationale states swapped so that one copy flips the answer" if yes_no else ""))


def _answer_weight_note(weight: float) -> str:
    return "" if weight == 1 else f", the final answer's tokens weighing {weight:g}x the rationale's in the KARD and RD losses"


def results_markdown(r: dict) -> str:
    """The results as a Markdown report."""
    k = r["k"]
    types = list(next(iter(r["methods"].values()))["by_type"])
    lines = [
        f"# kard demo: {r['size']} world (seed {r['seed']})", "",
        f"Teacher: {r['teacher']}. Reranker encoder: {r['reranker_encoder']}.",
        f"Students: T5 from a config, d_model {r['student']['d_model']}, {r['student']['layers']}+{r['student']['layers']} layers, "
        f"{r['student']['parameters'] / 1e6:.1f}M parameters, each trained {r['student']['steps']} steps of batch "
        f"{r['student']['batch_size']}{_answer_weight_note(r.get('answer_weight', 1.0))}. Answers: majority vote of {r['n']} samples; KARD reads the top {k} passages.",
        f"{r['questions']['train']} training and {r['questions']['test']} test questions; test entities never occur in training. "
        f"Accuracy with 95% Wilson intervals. The KARD rows are one student (its training passages come from the "
        f"{r.get('passages_from', 'rationale')}{', as in the paper' if r.get('passages_from', 'rationale') == 'rationale' else ''}"
        f"{', each retrieval followed by a bridge round' if r.get('bridge') else ''}"
        f"{_counterfactual_note(r.get('counterfactual', 0), r.get('yes_no_counterfactual', False))}), served five ways: BM25(question) (the paper's one round); BM25(question) and a "
        "second round queried with the student's draft rationale; BM25(question) and a bridge round (the first passage's "
        "rarest new term); the reranker (the paper's); the reranker and a bridge round.", "",
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
        lines.append(f"  {method:<24} accuracy {_interval(row)}   follows edited knowledge {follow:.2f}")
    lines.append(f"  reranker: {r['reranker_encoder']}")
    lines.append(f"  {r['total_seconds']:.0f} s in all, peak {r['peak_memory_gib']:.2f} GiB")
    lines.append(f"  report: {out / 'results.md'}, {out / 'results.json'}, {chart}")
    return "\n".join(lines)


COLOURS = ["#999999", "#bbbbbb", "#6a8caf", "#9fb8d3", "#2b6cb0", "#1a4480", "#0b2545"]


def _errors(rows: list[dict]) -> list[list[float]]:
    """Matplotlib's asymmetric error bars from accuracy rows with 95% intervals."""
    return [[r["accuracy"] - r["ci95"][0] for r in rows], [r["ci95"][1] - r["accuracy"] for r in rows]]


def _grouped_bars(ax, groups: list[str], rows_by_method: dict[str, dict[str, dict]], title: str, ylabel: str) -> None:
    """One group of bars per question type (or edit type), one bar per method, with 95% intervals."""
    import numpy as np

    width = 0.8 / max(len(rows_by_method), 1)
    x = np.arange(len(groups))
    for i, (method, rows) in enumerate(rows_by_method.items()):
        present = [rows.get(g) for g in groups]
        heights = [r["accuracy"] if r else 0.0 for r in present]
        errors = _errors([r or {"accuracy": 0.0, "ci95": [0.0, 0.0]} for r in present])
        ax.bar(x + (i - (len(rows_by_method) - 1) / 2) * width, heights, width, yerr=errors, capsize=2,
               label=method, color=COLOURS[i % len(COLOURS)])
    ax.set_xticks(x, groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def write_chart(r: dict, path: Path) -> str:
    """Two panels: accuracy per question type and method, and edits followed per edit type and method
    (95% intervals); needs matplotlib (the ``demo`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart (pip install matplotlib, or the kard-chain[demo] extra)"
    types = list(next(iter(r["methods"].values()))["by_type"])
    edits = r["editing"]["follow_edit"]
    edit_types = list(next(iter(edits.values()))["by_type"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [len(types) + 1, len(edit_types) + 1]})
    _grouped_bars(left, ["all", *types], {m: {"all": row, **row["by_type"]} for m, row in r["methods"].items()},
                  f"accuracy on unseen test entities ({r['size']} world, seed {r['seed']})", "accuracy (95% CI)")
    _grouped_bars(right, ["all", *edit_types], {m: {"all": row, **row["by_type"]} for m, row in edits.items()},
                  f"follows edited knowledge ({r['editing']['questions']} questions)", "share following the edit (95% CI)")
    left.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return str(path)
