"""The ``kard`` command line: ``kard quickstart``, ``demo``, ``run``, ``index``, ``search``, ``teach``, ``candidates``,
``train-reranker``, ``train-student``, ``evaluate``, ``ask``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from kard_chain.errors import KardDataError


def _bounded(kind: type, low: float, strict: bool = False, high: float | None = None):
    """An argparse type: a number of ``kind`` at least ``low`` (above it when ``strict``), at most ``high``, finite."""

    def parse(text: str):
        value = kind(text)
        if value != value or value in (float("inf"), float("-inf")) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text} is not {'above' if strict else 'at least'} {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} is above {high:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


POSITIVE_INT, NON_NEGATIVE_INT = _bounded(int, 1), _bounded(int, 0)
POSITIVE, NON_NEGATIVE = _bounded(float, 0, strict=True), _bounded(float, 0)


def _sample_file(name: str) -> Path:
    return Path(str(resources.files("kard_chain") / "sample" / name))


def cmd_index(args: argparse.Namespace) -> int:
    from kard_chain.knowledge import load_passages

    passages = load_passages(args.corpus, args.format, words=args.words, overlap=args.overlap)
    start = time.perf_counter()
    if args.backend == "chroma":
        from kard_chain.retrievers.folders import build_chroma_folder, default_embedding

        embedding = args.embedding or default_embedding()
        store, added = build_chroma_folder(passages, args.out, embedding=embedding, dim=args.dim, overwrite=args.overwrite)
        print(f"added {added} passages to the Chroma store at {args.out} ({store.collection.count()} in all; "
              f"embedding: {embedding})")
    else:
        from kard_chain.bm25.index import BM25Params, append_to_index, build_index

        if args.append:
            index = append_to_index(args.out, passages, memory_gib=args.memory_gib)
            print(f"{args.out} now holds {index.n_docs} passages ({len(index.vocab)} terms)")
        else:
            params = BM25Params(method=args.method, k1=args.k1, b=args.b, epsilon=args.epsilon, include_title=not args.no_title)
            index = build_index(passages, args.out, params=params, overwrite=args.overwrite, memory_gib=args.memory_gib)
            print(f"indexed {index.n_docs} passages ({len(index.vocab)} terms) into {args.out}")
    print(f"took {time.perf_counter() - start:.1f} s")
    return 0


def _print_results(query: str, docs) -> None:
    print(f"\n? {query}")
    for rank, d in enumerate(docs, 1):
        text = d.page_content if len(d.page_content) <= 160 else d.page_content[:157] + "..."
        print(f"  {rank:>2}. [{d.metadata['id']}] {d.metadata['score']:.3f}  {text}")


def cmd_search(args: argparse.Namespace) -> int:
    from kard_chain.retrievers.folders import open_retriever

    retriever = open_retriever(args.index, args.k, args.backend)
    for query in args.query:
        _print_results(query, retriever.invoke(query))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from kard_chain.datasets import load_dataset
    from kard_chain.knowledge import load_passages
    from kard_chain.retrievers.bm25 import BM25Retriever

    if not args.out:  # nothing left behind in the temporary folder
        with tempfile.TemporaryDirectory(prefix="kard-quickstart-") as tmp:
            args.out = str(Path(tmp) / "index")
            return cmd_quickstart(args)
    out = Path(args.out)
    print(f"Indexing the bundled sample knowledge base into {out}")
    BM25Retriever.build(load_passages(_sample_file("passages.jsonl")), out, k=args.k, overwrite=True)
    retriever = BM25Retriever.load(out, k=args.k)
    questions = load_dataset("jsonl", _sample_file("questions.jsonl"))
    hits = 0
    for ex, docs in zip(questions, retriever.batch([q.question for q in questions])):
        _print_results(ex.question, docs)
        found = {d.metadata["id"] for d in docs} & set(ex.evidence_ids or [])
        hits += bool(found)
        print(f"     gold evidence {ex.evidence_ids}: {'found' if found else 'missed'}")
    print(f"\nBM25 found gold evidence in the top {args.k} for {hits}/{len(questions)} sample questions.")
    return 0


def cmd_teach(args: argparse.Namespace) -> int:
    import asyncio

    from kard_chain.datasets import default_data_dir, load_dataset
    from kard_chain.manifest import Manifest, digest
    from kard_chain.teacher.chain import build_teacher_chain, model_name, supports_n
    from kard_chain.teacher.models import load_teacher
    from kard_chain.teacher.prompts import TEACHER_TASKS, load_teacher_prompts
    from kard_chain.teacher.rate_limit import RateLimiter
    from kard_chain.teacher.runner import PRICES, TeacherStopped, compare_table, teach_variants

    examples = load_dataset(args.dataset, args.data_dir or default_data_dir(args.dataset), split=args.split)[: args.limit]
    task = args.task or (args.dataset if args.dataset in TEACHER_TASKS else "generic")
    variants = args.compare.split(",") if args.compare else [args.prompt]
    known = load_teacher_prompts(task, args.prompts)
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise KardDataError(f"unknown prompt variant(s) {unknown} for task {task!r}; available: {sorted(known)}")
    model = load_teacher(args.teacher, base_url=args.base_url, temperature=args.temperature, max_tokens=args.max_tokens, timeout=args.timeout)
    chain = build_teacher_chain(model, task, mode=args.mode, n=args.n, prompts_dir=args.prompts)
    name = model_name(model)
    price = (args.price_in, args.price_out) if args.price_in is not None and args.price_out is not None else PRICES.get(name)
    out = Path(args.out)
    paths = {v: out if not args.compare else out.with_name(f"{out.stem}.{v}{out.suffix or '.jsonl'}") for v in variants}
    settings = {"task": task, "mode": args.mode, "n": args.n, "teacher": name, "temperature": args.temperature,
                "max_tokens": args.max_tokens, "dataset": args.dataset, "split": args.split}
    manifests = {v: Manifest("teacher-cache", {**settings, "prompt": v, "prompt_text": digest(known[v].model_dump())}) for v in variants}
    try:
        summaries = asyncio.run(teach_variants(
            model, chain, examples, paths, manifests=manifests, overwrite=args.overwrite, task=task, mode=args.mode,
            model=name, concurrency=args.concurrency,
            limiter=RateLimiter(args.rpm, args.tpm) if args.rpm or args.tpm else None, max_retries=args.max_retries,
            requests_per_example=1 if supports_n(model) else args.n, backoff=args.backoff, price=price))
    except TeacherStopped as e:
        kept_in = ", ".join(map(str, paths.values()))
        print(f"error: the teacher stopped the run ({e}); finished examples are kept in {kept_in}", file=sys.stderr)
        return 3
    print(compare_table(summaries) if args.compare else summaries[variants[0]].format())
    failed = sum(s.failed for s in summaries.values())
    if failed:
        errors = ", ".join(f"{k} {v}" for s in summaries.values() for k, v in sorted(s.errors.items()))
        hint = f" (is the server at {args.base_url} running?)" if "connection_refused" in errors and args.base_url else ""
        print(f"error: {failed} example(s) failed after {args.max_retries} retries ({errors}){hint}; finished examples are "
              f"kept in {', '.join(map(str, paths.values()))}, and a rerun retries the failed ones", file=sys.stderr)
        return 1
    return 0


def cmd_candidates(args: argparse.Namespace) -> int:
    from kard_chain.datasets import load_dataset
    from kard_chain.reranker.candidates import build_candidates
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.teacher.cache import rationale_pairs, read_rationales

    if not args.rationales and not args.reference:
        raise KardDataError("give --rationales FILE (a teacher cache), --reference, or both")
    examples = load_dataset(args.dataset, args.data_dir, split=args.split)
    pairs = rationale_pairs(examples, read_rationales(args.rationales) if args.rationales else None, reference=args.reference)
    sets = build_candidates(pairs, BM25Retriever.load(args.index), args.out, k=args.k, overwrite=args.overwrite)
    print(f"{len(sets)} candidate sets for {len(pairs)} (question, rationale) pairs in {args.out}")
    return 0


def cmd_train_reranker(args: argparse.Namespace) -> int:
    from kard_chain.reranker.trainer import RerankerTrainingConfig, train_reranker
    from kard_chain.training.config import config_from_args

    train_reranker(config_from_args(RerankerTrainingConfig, args))
    return 0


def cmd_train_student(args: argparse.Namespace) -> int:
    from kard_chain.student.trainer import StudentTrainingConfig, train_student
    from kard_chain.training.config import config_from_args

    metrics = train_student(config_from_args(StudentTrainingConfig, args))
    print(json.dumps(metrics, indent=2))
    return 0


def _student_chain(args: argparse.Namespace):
    """The chain the student folder calls for, through :func:`kard_chain.trained_chain.load_kard_chain`."""
    from kard_chain.trained_chain import load_kard_chain

    return load_kard_chain(args.student, args.index, reranker=args.reranker, k=args.k, candidates=args.candidates,
                           first_stage_weight=args.first_stage_weight, draft=args.draft, bridge=args.bridge, n=args.n,
                           max_new_tokens=args.max_new_tokens, temperature=args.temperature, batch_size=args.batch_size,
                           method=args.method)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from kard_chain.datasets import load_dataset
    from kard_chain.evaluation import evaluate_chain
    from kard_chain.manifest import identity
    from kard_chain.trained_chain import FIRST_STAGE_WEIGHT

    examples = load_dataset(args.dataset, args.data_dir, split=args.split)[: args.limit]
    chain = _student_chain(args)  # checks the flags before the default weight is filled in
    if args.first_stage_weight is None and args.reranker:
        args.first_stage_weight = FIRST_STAGE_WEIGHT  # recorded with the results
    settings = {"student": identity(args.student), "index": identity(args.index), "reranker": identity(args.reranker),
                "data": identity(args.data_dir),  # a corrected data file (other gold answers) starts over, not resumes
                **{key: getattr(args, key) for key in ("method", "k", "candidates", "first_stage_weight", "draft", "bridge", "n", "temperature",
                                                       "max_new_tokens", "dataset", "split", "seed")}}
    summary = evaluate_chain(chain, examples, args.out, batch_size=args.batch_size, settings=settings,
                             overwrite=args.overwrite, seed=args.seed)  # the same samples on a rerun, resumed or not
    print(f"{args.dataset} {args.split}: {summary.format()}; per-example records in {args.out}")
    return 0


def _asked(args: argparse.Namespace) -> list[dict]:
    """The questions to answer: the argument with its ``--option``s, or JSON lines from standard input (``-``)."""
    if args.question != "-":
        options = {}
        for i, given in enumerate(args.option or []):
            letter, sep, text = given.partition("=")
            if not sep or not text.strip():
                raise ValueError(f"--option {given!r}: write LETTER=TEXT, e.g. --option A='a potter'")
            options[letter.strip() or chr(65 + i)] = text.strip()
        return [{"question": args.question, "options": options or None}]
    if args.option:
        raise ValueError("--option goes with a question on the command line; on standard input each JSON line has 'options'")
    asked = []
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"standard input, line {number}: not JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("question"), str):
            raise ValueError(f"standard input, line {number}: field 'question' (a string) is missing")
        if record.get("options") is not None and not isinstance(record["options"], dict):
            raise ValueError(f"standard input, line {number}: field 'options' must map letters to texts")
        asked.append({"question": record["question"], "options": record.get("options")})
    return asked


def _check_form(student: str, asked: list[dict]) -> None:
    """Refuse a question whose form (with or without options) the student never trained on."""
    from pathlib import Path

    from kard_chain.student.settings import STUDENT_CONFIG

    file = Path(student) / STUDENT_CONFIG
    forms = json.loads(file.read_text()).get("question_forms") if file.is_file() else None
    if not forms:  # an older student, a run folder or a plain model: nothing recorded
        return
    for q in asked:
        if not q["options"] and not forms.get("no_options"):
            raise ValueError(f"the student was trained on questions with options only, and {q['question']!r} has none: "
                             "pass them, e.g. --option A='a potter' --option B='a miner' (or \"options\" in each JSON line)")
        if q["options"] and not forms.get("options"):
            raise ValueError(f"the student was trained on questions without options (yes/no), and {q['question']!r} has "
                             "options: ask it without --option")


def cmd_ask(args: argparse.Namespace) -> int:
    import torch

    asked = _asked(args)
    _check_form(args.student, asked)
    chain = _student_chain(args)
    if args.question == "-":  # scripts: one JSON line per question
        for q in asked:
            torch.manual_seed(args.seed)
            print(json.dumps({"question": q["question"], **chain.invoke(q)}), flush=True)
        return 0
    torch.manual_seed(args.seed)
    result = chain.invoke(asked[0])
    if "draft" in result:
        print(f"  draft: {result['draft']}")
    for rank, p in enumerate(result["passages"], 1):
        found_by = f" (round {p['round']})" if "round" in p else ""
        print(f"  [{rank}]{found_by} {p['id']}  {p['title']}: {p['text'][:200]}")
    for r in result["rationales"]:
        print(f"  - ({r['answer']}) {r['text']}")
    print(f"answer: {result['answer']}  votes: {result['votes']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kard_chain.demo.run import run_demo

    run_demo(args.out or f"kard-demo-{args.size}", size=args.size, seed=args.seed, steps=args.steps, n=args.n, teacher=args.teacher,
             base_url=args.base_url, teacher_n=args.teacher_n, chroma=False if args.no_chroma else None,
             passages_from=args.passages_from, counterfactual=args.counterfactual, yes_no_counterfactual=args.yes_no_counterfactual,
             answer_weight=args.answer_weight, bridge=args.bridge, show_progress=not args.quiet)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import shlex

    from kard_chain.recipe import load_recipe, run_recipe
    from kard_chain.recipe.report import compare_table

    if args.help_recipe:
        from kard_chain.recipe.config import recipe_fields

        for key, default, doc in recipe_fields():
            print(f"{key} (default {default})\n    {doc}")
        return 0
    files = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    if not files:
        raise KardDataError("give a recipe file: kard run RECIPE.toml [key.path=value ...] (see recipes/)")
    runs = {}
    for file in files:
        base = load_recipe(file, overrides)
        variants = {Path(file).stem: base} if not args.variant else {}
        for variant in args.variant or []:
            changes = shlex.split(variant)
            name = "_".join(c.replace("/", "-") for c in changes) or "base"
            out = f"out={json.dumps(str(base.out / name))}"
            cache = f"cache={json.dumps(str(base.stages_dir))}"  # variants share the stages they have in common
            variants[f"{Path(file).stem} {variant}".strip()] = load_recipe(file, [*overrides, out, cache, *changes])
        for name, recipe in variants.items():
            runs[name] = run_recipe(recipe, dry_run=args.dry_run, show_progress=not args.quiet)
    if len(runs) > 1 and not args.dry_run:
        table = compare_table(runs)
        print("\n" + table)
        if args.compare:
            from kard_chain.io import atomic_write_text

            atomic_write_text(Path(args.compare), table + "\n")
    return 0


def _add_student_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--student", required=True, help="student folder (kard train-student's output_dir/final)")
    p.add_argument("--index", help="BM25 index folder (students trained with passages)")
    p.add_argument("--reranker", help="trained KARD reranker folder: rerank the BM25 candidates")
    p.add_argument("--candidates", type=POSITIVE_INT, default=100, help="BM25 candidates for the reranker")
    p.add_argument("--first-stage-weight", type=NON_NEGATIVE,
                   help="weight of z(BM25) beside z(reranker) in the ranking (default 0.2; 0: the reranker alone)")
    p.add_argument("-k", type=POSITIVE_INT, help="passages per question")
    p.add_argument("--draft", choices=["draft", "question+draft"],
                   help="a second retrieval round with the student's draft rationale (alone or after the question); "
                        "the final samples read both rounds' passages (default: one round, as in the paper)")
    p.add_argument("--bridge", action=argparse.BooleanOptionalAction,
                   help="a second retrieval round with the first passage's rarest new term, for two-hop questions "
                        "(default: as the student was trained, kard train-student --bridge)")
    p.add_argument("-n", type=POSITIVE_INT, default=5, help="rationales sampled per question")
    p.add_argument("--temperature", type=POSITIVE, default=0.7, help="sampling temperature of the student")
    p.add_argument("--max-new-tokens", type=POSITIVE_INT, default=256, help="longest rationale sampled, in tokens")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=8, help="questions per generate call")
    p.add_argument("--method", choices=["kard", "rd", "ft"],
                   help="for a folder without kard_student.json (a checkpoint, a plain model): how it was trained (kard: with -k)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling: a rerun gives the same answers")


def _add_start_commands(sub) -> None:
    """The quickstart and demo commands."""
    p = sub.add_parser("quickstart", help="index the bundled sample and answer its questions with BM25 (offline)")
    p.add_argument("--out", help="index folder")
    p.add_argument("-k", type=POSITIVE_INT, default=3, help="passages per question")
    p.set_defaults(fn=cmd_quickstart)

    p = sub.add_parser("demo", help="the whole method end to end on a synthetic world, offline (start here); a shortcut "
                       "to kard run recipes/demo-SIZE.toml")
    p.add_argument("--size", choices=["tiny", "mini", "small", "medium"], default="small",
                   help="world size (small: about 10 minutes on 2 cores; tiny: under a minute; mini: the method's claim in about a minute)")
    p.add_argument("--out", help="output folder (default kard-demo-SIZE); a rerun reuses finished stages")
    p.add_argument("--seed", type=int, default=0, help="seed of the world, the models and the data order")
    p.add_argument("--steps", type=POSITIVE_INT, help="training steps per student (default: the recipe's)")
    p.add_argument("-n", type=POSITIVE_INT, help="rationales sampled per question (default: the recipe's, 5)")
    p.add_argument("--teacher", help="a real teacher instead of the reference rationales: openai:MODEL or hf:PATH")
    p.add_argument("--base-url", help="OpenAI-compatible server for --teacher openai:MODEL")
    p.add_argument("--teacher-n", type=POSITIVE_INT, help="rationales per question from --teacher (default 3)")
    p.add_argument("--no-chroma", action="store_true", help="skip the Chroma store")
    p.add_argument("--passages-from", choices=["rationale", "question", "mixed"],
                   help="where the KARD student's training passages come from (default: the rationale, as in the paper)")
    p.add_argument("--counterfactual", type=NON_NEGATIVE_INT,
                   help="copies of each 4-option KARD training pair with the gold option swapped for another in its passages "
                        "and rationale (default 2; 0: the paper's data)")
    p.add_argument("--yes-no-counterfactual", action=argparse.BooleanOptionalAction,
                   help="the yes/no KARD training pairs get as many copies, the colour their rationale states swapped "
                        "(default; --no-yes-no-counterfactual: 4-option pairs only)")
    p.add_argument("--answer-weight", type=POSITIVE,
                   help="loss weight of the final answer's tokens for the KARD and RD students (default 3; 1: plain cross-entropy)")
    p.add_argument("--bridge", action=argparse.BooleanOptionalAction,
                   help="the KARD student's training passages take a bridge round too, as the bridge rows serve it "
                        "(default; --no-bridge: one round, as in the paper)")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("run", help="run a recipe: data -> knowledge base -> teacher -> reranker -> students -> evaluation -> "
                                   "report, each stage cached by its settings")
    p.add_argument("items", nargs="*", metavar="RECIPE.toml | key.path=value",
                   help="one or more recipe files (several: compared in one table), and overrides of any key, e.g. "
                        "students.max_steps=200 dataset.data_dir=data/q.jsonl")
    p.add_argument("--variant", action="append", metavar="'KEY=VALUE ...'",
                   help="a variant of the recipe (overrides, space-separated), repeatable: each runs into OUT/VARIANT, the "
                        "stages they share computed once, and the variants are compared in one table")
    p.add_argument("--dry-run", action="store_true", help="print the plan (which stages run, which are reused, and why) and stop")
    p.add_argument("--compare", help="also write the comparison table of several recipes or variants to this Markdown file")
    p.add_argument("--help-recipe", action="store_true", help="print every recipe key with its default and meaning")
    p.set_defaults(fn=cmd_run)


def _add_knowledge_commands(sub) -> None:
    """The index and search commands."""
    p = sub.add_parser("index", help="index a corpus (JSONL, StrategyQA paragraphs JSON, or .txt files)")
    p.add_argument("--corpus", required=True, help="corpus file or folder of .txt files")
    p.add_argument("--out", required=True, help="index folder to create")
    p.add_argument("--backend", choices=["bm25", "chroma"], default="bm25", help="BM25 index folder or Chroma store")
    p.add_argument("--format", choices=["jsonl", "strategyqa", "text", "lines"], help="corpus format (lines: one passage per line)")
    p.add_argument("--method", choices=["okapi", "lucene"], default="lucene",
                   help="BM25 variant")
    p.add_argument("--k1", type=NON_NEGATIVE, default=1.5, help="BM25 term-frequency saturation")
    p.add_argument("--b", type=NON_NEGATIVE, default=0.75, help="BM25 length normalisation (0: none, 1: full)")
    p.add_argument("--epsilon", type=NON_NEGATIVE, default=0.25, help="okapi idf floor, times the mean idf")
    p.add_argument("--no-title", action="store_true", help="index passage text only")
    p.add_argument("--memory-gib", type=_bounded(float, 0.01, high=65536), default=2.0,
                   help="bm25: working memory of the build, any corpus size (passage ids come on top, about 100 bytes each)")
    p.add_argument("--words", type=POSITIVE_INT, default=100, help="text corpora: words per passage")
    p.add_argument("--overlap", type=NON_NEGATIVE_INT, default=20, help="text corpora: words shared by neighbouring passages")
    p.add_argument("--embedding", help="chroma: minilm (the packaged all-MiniLM-L6-v2), hashing (lexical, no model) or an "
                   "encoder folder or hub name (default: minilm where installed, else hashing)")
    p.add_argument("--dim", type=POSITIVE_INT, default=256, help="chroma: size of the hashing embedding")
    p.add_argument("--overwrite", action="store_true", help="replace an index (or Chroma store) that kard made there")
    p.add_argument("--append", action="store_true", help="bm25: add the corpus's passages to the index at --out (it keeps its "
                   "settings; scores equal a rebuild of all passages)")
    p.set_defaults(fn=cmd_index)

    p = sub.add_parser("search", help="print the ranked passages for one or more questions")
    p.add_argument("--index", required=True, help="index folder made by 'kard index'")
    p.add_argument("-k", type=POSITIVE_INT, default=5, help="passages to show")
    p.add_argument("--backend", choices=["fast", "rank_bm25"], default="fast", help="BM25 scorer")
    p.add_argument("query", nargs="+", help="one or more questions (quote each)")
    p.set_defaults(fn=cmd_search)


def _add_teacher_commands(sub) -> None:
    """The teach commands."""
    p = sub.add_parser("teach", help="write teacher rationales for a dataset split into a resumable cache")
    p.add_argument("--dataset", required=True, help="strategyqa, medqa, obqa or jsonl")
    p.add_argument("--data-dir", type=Path, help="dataset folder or file")
    p.add_argument("--split", default="train", help="dataset split")
    p.add_argument("--task", help="prompt folder")
    p.add_argument("--mode", choices=["rationalize", "solve"], default="rationalize",
                   help="rationalize: the teacher sees the gold answer and explains it; solve: plain chain of thought")
    p.add_argument("--n", type=POSITIVE_INT, default=5, help="rationales per example")
    p.add_argument("--teacher", required=True, help="openai:MODEL or hf:PATH")
    p.add_argument("--base-url", help="OpenAI-compatible server (vLLM, Ollama...); the key comes from OPENAI_API_KEY")
    p.add_argument("--temperature", type=POSITIVE, default=0.7, help="sampling temperature of the teacher")
    p.add_argument("--max-tokens", type=POSITIVE_INT, default=512, help="longest rationale, in tokens")
    p.add_argument("--timeout", type=POSITIVE, default=60.0, help="seconds per request")
    p.add_argument("--out", required=True, help="JSONL cache; a rerun skips finished examples")
    p.add_argument("--concurrency", type=POSITIVE_INT, default=8, help="requests in flight at once")
    p.add_argument("--rpm", type=POSITIVE, help="requests per minute limit")
    p.add_argument("--tpm", type=POSITIVE, help="tokens per minute limit")
    p.add_argument("--max-retries", type=NON_NEGATIVE_INT, default=6, help="retries of a rate-limited, failed or timed-out request")
    p.add_argument("--backoff", type=NON_NEGATIVE, default=1.0, help="first retry delay in seconds, doubled each retry")
    p.add_argument("--limit", type=POSITIVE_INT, help="first N examples only")
    p.add_argument("--prompts", type=Path, help="folder of extra prompt variants (DIR/<task>/<name>.toml)")
    p.add_argument("--prompt", default="default", help="prompt variant")
    p.add_argument("--compare", help="comma-separated variants to run on the same examples and compare")
    p.add_argument("--overwrite", action="store_true", help="start over when --out holds another configuration's rationales")
    p.add_argument("--price-in", type=NON_NEGATIVE, help="USD per million input tokens")
    p.add_argument("--price-out", type=NON_NEGATIVE, help="USD per million output tokens")
    p.set_defaults(fn=cmd_teach)


def _add_training_commands(sub) -> None:
    """The candidates, train-reranker and train-student commands."""
    p = sub.add_parser("candidates", help="build the reranker's training candidates (resumable)")
    p.add_argument("--dataset", required=True, help="strategyqa, medqa, obqa or jsonl")
    p.add_argument("--data-dir", type=Path, required=True, help="dataset folder or file")
    p.add_argument("--split", default="train", help="dataset split")
    p.add_argument("--index", required=True, help="BM25 index folder")
    p.add_argument("--rationales", help="teacher cache (kard teach --out)")
    p.add_argument("--reference", action="store_true", help="also use the dataset's reference rationales (StrategyQA facts...)")
    p.add_argument("-k", type=POSITIVE_INT, default=20, help="passages per query, by rationale and by question")
    p.add_argument("--out", required=True, help="candidate store (JSONL)")
    p.add_argument("--overwrite", action="store_true", help="start over when --out was built with another -k or --index")
    p.set_defaults(fn=cmd_candidates)

    from kard_chain.reranker.config import RerankerTrainingConfig
    from kard_chain.training.config import add_config_flags

    p = sub.add_parser("train-reranker", help="train the KARD reranker on a candidate store (see trainers/reranker.py)")
    add_config_flags(p, RerankerTrainingConfig)
    p.set_defaults(fn=cmd_train_reranker)

    from kard_chain.student.config import StudentTrainingConfig

    p = sub.add_parser("train-student", help="train the student: kard, rd or ft (see trainers/student.py)")
    add_config_flags(p, StudentTrainingConfig)
    p.set_defaults(fn=cmd_train_student)


def _add_serving_commands(sub) -> None:
    """The evaluate and ask commands."""
    p = sub.add_parser("evaluate", help="answer a dataset split with a trained student; accuracy with a 95%% interval")
    _add_student_flags(p)
    p.add_argument("--dataset", required=True, help="strategyqa, medqa, obqa or jsonl")
    p.add_argument("--data-dir", type=Path, required=True, help="dataset folder or file")
    p.add_argument("--split", default="test", help="dataset split")
    p.add_argument("--limit", type=POSITIVE_INT, help="first N examples only")
    p.add_argument("--out", required=True, help="per-example JSONL (a rerun skips finished examples)")
    p.add_argument("--overwrite", action="store_true", help="start over when --out holds another student's or setting's answers")
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("ask", help="answer one question with a trained student, showing passages and rationales")
    _add_student_flags(p)
    p.add_argument("question", help="the question (quote it); '-' reads JSON lines {\"question\", \"options\"} from standard "
                                    "input and prints one JSON answer per line")
    p.add_argument("--option", action="append", metavar="LETTER=TEXT",
                   help="an answer option, repeated: --option A='a potter' --option B='a miner'")
    p.set_defaults(fn=cmd_ask)


LONG_COMMANDS = ("demo", "run", "index", "teach", "candidates", "train-reranker", "train-student", "evaluate")
"""Commands that show progress; each takes ``--quiet``."""


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every flag's help ends with its default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class _Subcommands(argparse._SubParsersAction):
    def add_parser(self, name: str, **kwargs):
        kwargs.setdefault("formatter_class", _HelpWithDefaults)
        kwargs.setdefault("description", kwargs.get("help"))
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``kard`` parser with one sub-command per stage."""
    parser = argparse.ArgumentParser(prog="kard", description="Knowledge-Augmented Reasoning Distillation tools.")
    parser.register("action", "parsers", _Subcommands)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_start_commands, _add_knowledge_commands, _add_teacher_commands, _add_training_commands, _add_serving_commands):
        add(sub)
    for name in LONG_COMMANDS:
        sub.choices[name].add_argument("--quiet", action="store_true", help="no progress output (results and errors still print)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kard`` console script."""
    from kard_chain.progress import QUIET_ENV, set_quiet

    args = build_parser().parse_args(argv)
    saved = {name: os.environ.get(name) for name in (QUIET_ENV, "TQDM_DISABLE")}  # restored on return: main() may run in-process
    if getattr(args, "quiet", False):
        set_quiet()
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # the libraries' own bars (model loading...) as well
    try:
        return _run(args)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; bad input and a diverged loss become one line on stderr and an exit status."""
    try:
        return args.fn(args)
    except (KardDataError, ValueError, OSError) as e:  # bad input or usage (a missing file, folder or model): one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # a diverged loss: the trainer names the step, nothing of it was saved
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if type(e).__module__.startswith("safetensors") or type(e).__name__ == "SafetensorError":  # a full disk mid-save
            print(f"error: writing weights failed ({e}); is the disk full? The last whole checkpoint is kept, and a rerun "
                  "resumes from it", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
