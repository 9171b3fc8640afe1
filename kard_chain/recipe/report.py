"""A recipe's report: ``results.json`` (schema in docs/guide.md), ``results.md``, ``results.png`` and the one-screen summary;
and the table that compares several recipes' runs."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

from kard_chain.recipe.config import Recipe
from kard_chain.recipe.graph import Context
from kard_chain.recipe.stages import LABELS, row_stage, rows


def results(recipe: Recipe, ctx: Context, log: list[dict], seconds: float) -> dict[str, Any]:
    """The run's figures, read from its stages' records."""
    r = ctx.results
    methods, retrieval = {}, {}
    for method, variant in rows(recipe):
        label = LABELS[variant or method]
        row = dict(r[row_stage(method, variant)]["result"])
        if "retrieval" in row:
            found = row.pop("retrieval")
            if found:
                retrieval[label] = found
        methods[label] = row
    if "chroma" in r and r["chroma"]["result"]["recall"]:
        retrieval[f"Chroma ({r['chroma']['result']['embedding']} embedding)"] = r["chroma"]["result"]["recall"]
    out: dict[str, Any] = {
        "recipe": recipe.model_dump(mode="json"),
        "dataset": {"name": recipe.dataset.name, "train": r["data"]["result"]["train"], "test": r["data"]["result"]["test"],
                    "passages": r["index"]["result"]["passages"]},
        "teacher": r["teach"]["result"]["teacher"] if "teach" in r else None,
        "reranker_encoder": r["reranker"]["result"]["encoder"] if "reranker" in r else None,
        "student": {"model": r["student-init"]["result"]["model"], "parameters": r["student-init"]["result"]["parameters"],
                    "training": {m: r[f"student-{m}"]["result"] for m in recipe.students.methods}} if "student-init" in r else None,
        "methods": methods, "retrieval": retrieval,
    }
    if recipe.evaluation.editing:
        follow = {LABELS[v or m]: r[row_stage(m, v, edited=True)]["result"] for m, v in rows(recipe)}
        out["editing"] = {"questions": r["edit-index"]["result"]["questions"], "follow_edit": follow}
    done = {entry["stage"]: entry["action"] for entry in log}
    out["stages"] = {name: {"action": done.get(name, "reused"), "seconds": rec["seconds"], "peak_memory_gib": rec["peak_memory_gib"],
                            "folder": ctx.folders[name].name} for name, rec in r.items()}
    out["total_seconds"] = round(seconds, 1)
    out["peak_memory_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    out["per_example"] = {name: str(ctx.folders[name] / "records.jsonl") for name in r if name.startswith(("eval-", "edit-"))
                          and name != "edit-index"}
    return out


def _interval(row: dict) -> str:
    return f"{row['accuracy']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]"


def _types(rows_: dict[str, dict]) -> list[str]:
    return list(dict.fromkeys(t for row in rows_.values() for t in row.get("by_type", {})))


def _accuracy_table(rows_: dict[str, dict], header: str) -> list[str]:
    types = _types(rows_)
    lines = [f"| method | {header} | " + " | ".join(types) + " |", "|---|---|" + "---|" * len(types)]
    for label, row in rows_.items():
        cells = [_interval(row["by_type"][t]) if t in row["by_type"] else "-" for t in types]
        lines.append(f"| {label} | {_interval(row)} | " + " | ".join(cells) + " |")
    return lines


def _describe(recipe: Recipe, r: dict) -> list[str]:
    s, reading = recipe.students, recipe.students.reading
    d = recipe.dataset
    world = f"{d.size} world (seed {recipe.seed})" if d.name == "demo" else f"{d.name} (seed {recipe.seed})"
    params = (r["student"] or {}).get("parameters")
    budget = f"{s.max_steps} steps" if s.max_steps else f"{s.epochs} epoch(s)"
    return [
        f"# kard run: {world}", "",
        f"Teacher: {r['teacher'] or 'none'}. Reranker encoder: {r['reranker_encoder'] or 'none'}.",
        f"Students: {s.model}" + (f" ({params / 1e6:.1f}M parameters)" if params else "") + f", each trained {budget} of batch "
        f"{s.batch_size}" + (f", the final answer's tokens weighing {s.answer_weight:g}x in the RD and KARD losses" if s.answer_weight != 1 else "")
        + f". Answers: majority vote of {recipe.evaluation.n} samples; KARD reads the top {reading.k} passages "
        f"(training passages from the {reading.passages_from}" + (", each retrieval followed by a bridge round" if reading.bridge else "")
        + (f"; {reading.counterfactual} counterfactual copies per pair" if reading.counterfactual else "")
        + (", yes/no pairs too" if reading.counterfactual and reading.yes_no_counterfactual else "") + ").",
        f"{r['dataset']['train']} training and {r['dataset']['test']} test questions, {r['dataset']['passages']} passages. "
        "Accuracy with 95% Wilson intervals.", "",
    ]


def markdown(recipe: Recipe, r: dict) -> str:
    """``results.md``."""
    k = recipe.students.reading.k
    lines = _describe(recipe, r) + _accuracy_table(r["methods"], "accuracy [95% CI]")
    if r["retrieval"]:
        columns = list(dict.fromkeys(c for row in r["retrieval"].values() for c in row))
        lines += ["", f"Retrieval on the test questions (share of gold evidence passages among those read; KARD reads {k}):", "",
                  "| passages of | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        lines += [f"| {label} | " + " | ".join(f"{row[c]:.3f}" if c in row else "-" for c in columns) + " |"
                  for label, row in r["retrieval"].items()]
    if "editing" in r:
        e = r["editing"]
        lines += ["", f"Knowledge editing: {e['questions']} test questions whose answer changed after editing their entities "
                  "in the knowledge base only (re-indexed, no retraining). Share of answers that follow the edit:", ""]
        lines += _accuracy_table(e["follow_edit"], "follows the edit [95% CI]")
    lines += ["", "| stage | this run | seconds | peak memory (GiB, process) |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['action']} | {s['seconds']:.1f} | {s['peak_memory_gib']:.2f} |" for name, s in r["stages"].items()]
    lines += ["", f"Total {r['total_seconds']:.0f} s this run, peak memory {r['peak_memory_gib']:.2f} GiB."]
    return "\n".join(lines) + "\n"


def summary_screen(recipe: Recipe, r: dict, chart: str) -> str:
    """The one-screen summary printed at the end."""
    lines = [f"kard run ({recipe.dataset.name}): {r['dataset']['test']} test questions; teacher: {r['teacher'] or 'none'}"]
    for label, row in r["methods"].items():
        follow = r.get("editing", {}).get("follow_edit", {}).get(label)
        lines.append(f"  {label:<30} accuracy {_interval(row)}" + (f"   follows edited knowledge {follow['accuracy']:.2f}" if follow else ""))
    ran = [n for n, s in r["stages"].items() if s["action"] != "reused"]
    lines.append(f"  stages: {len(ran)} ran, {len(r['stages']) - len(ran)} reused; {r['total_seconds']:.0f} s, peak {r['peak_memory_gib']:.2f} GiB")
    lines.append(f"  report: {recipe.out / 'results.md'}, {recipe.out / 'results.json'}, {chart}")
    return "\n".join(lines)


COLOURS = ["#999999", "#bbbbbb", "#6a8caf", "#9fb8d3", "#2b6cb0", "#1a4480", "#0b2545", "#c05621"]


def _grouped_bars(ax, groups: list[str], rows_by_method: dict[str, dict[str, dict]], title: str, ylabel: str) -> None:
    """One group of bars per question type, one bar per method, with 95% intervals."""
    import numpy as np

    width = 0.8 / max(len(rows_by_method), 1)
    x = np.arange(len(groups))
    for i, (method, by_group) in enumerate(rows_by_method.items()):
        present = [by_group.get(g) or {"accuracy": 0.0, "ci95": [0.0, 0.0]} for g in groups]
        heights = [p["accuracy"] for p in present]
        errors = [[p["accuracy"] - p["ci95"][0] for p in present], [p["ci95"][1] - p["accuracy"] for p in present]]
        ax.bar(x + (i - (len(rows_by_method) - 1) / 2) * width, heights, width, yerr=errors, capsize=2, label=method,
               color=COLOURS[i % len(COLOURS)])
    ax.set_xticks(x, groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def write_chart(r: dict, path: Path) -> str:
    """Accuracy per question type and method (and, with editing, edits followed), 95% intervals; needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart (pip install matplotlib, or the kard-chain[demo] extra)"
    if not r["methods"]:
        return "no chart (the recipe trains no students)"
    panels = [("accuracy on the test questions", r["methods"], "accuracy (95% CI)")]
    if "editing" in r:
        panels.append((f"follows edited knowledge ({r['editing']['questions']} questions)", r["editing"]["follow_edit"],
                       "share following the edit (95% CI)"))
    widths = [len(_types(p[1])) + 2 for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (title, rows_, ylabel) in zip(axes[0], panels):
        _grouped_bars(ax, ["all", *_types(rows_)], {m: {"all": row, **row.get("by_type", {})} for m, row in rows_.items()}, title, ylabel)
    axes[0][0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return str(path)


def compare_table(runs: dict[str, dict]) -> str:
    """Several runs side by side: one row per method, one column per run (accuracy with 95% intervals)."""
    labels = list(dict.fromkeys(label for r in runs.values() for label in r["methods"]))
    lines = ["| method | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(_interval(r["methods"][label]) if label in r["methods"] else "-"
                                                for r in runs.values()) + " |")
    return "\n".join(lines)

