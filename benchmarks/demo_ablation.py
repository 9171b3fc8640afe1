"""What each part of the KARD student's data and serving contributes, on the demo's world: one KARD student per
training variant (where its passages come from, counterfactual copies or none, of yes/no pairs too or not, the answer's
loss weight, a bridge round in its passages or not), the demo's model, budget and seed, each answered as the demo's
``KARD (BM25)``, ``KARD (BM25, bridge)``, ``KARD (reranker)`` and ``KARD (reranker, bridge)`` rows (the reranker
trained as the demo trains it), on the test questions and on edited knowledge.

    python benchmarks/demo_ablation.py --seeds 0 1 --passages-from rationale --counterfactual 0 2 --bridge 0 1 --out /tmp/ablation
    python benchmarks/demo_ablation.py --seeds 0 1 --counterfactual 2 --yes-no-counterfactual 0 1 --answer-weight 1 3 \
        --bridge 1 --serve reranker reranker+bridge --out /tmp/ablation

Prints a Markdown table: accuracy with 95% Wilson intervals per question type, and the share of answers that follow
an edit of the knowledge base. About 6 minutes per student on 2 cores, 10 with one thread (``--threads 1`` lets two runs share them).
A rerun reuses the trained students and finished evaluations in ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
from pathlib import Path

import torch

SERVING = ("bm25", "bm25+bridge", "reranker", "reranker+bridge")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder (kept: worlds, students, evaluations)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--passages-from", nargs="+", default=["rationale"])
    ap.add_argument("--counterfactual", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--yes-no-counterfactual", type=int, nargs="+", choices=[0, 1], default=[0],
                    help="without (0) and/or with (1) counterfactual copies of the yes/no pairs too")
    ap.add_argument("--answer-weight", type=float, nargs="+", default=[1.0], help="loss weights of the final answer's tokens")
    ap.add_argument("--bridge", type=int, nargs="+", choices=[0, 1], default=[0, 1],
                    help="train without (0) and/or with (1) a bridge round in the training passages")
    ap.add_argument("--serve", nargs="+", choices=SERVING, default=list(SERVING),
                    help="answer over BM25(question) or the demo's reranker, each with one round or a bridge round")
    ap.add_argument("--steps", type=int, help="training steps (default: the demo's budget for the small world)")
    ap.add_argument("--threads", type=int, help="torch threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from kard_chain.demo.report import accuracy_row
    from kard_chain.demo.run import (
        BUDGETS,
        DemoRun,
        bm25_index,
        evaluate,
        init_student,
        make_world,
        reranker_candidates,
        student_config,
        teacher_rationales,
        train_reranker,
    )
    from kard_chain.demo.world import edit_world
    from kard_chain.reranker.model import KardReranker
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.student.trainer import train_student
    from kard_chain.trained_chain import load_kard_chain, load_student_llm

    budget = {**BUDGETS["small"], **({"steps": args.steps} if args.steps else {})}
    print(f"# machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    rows = []
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        run = DemoRun(out=out, size="small", seed=seed, budget=budget, n=5, k=3, show_progress=False, log=lambda _: None)
        stages = [("world", make_world), ("index", bm25_index), ("teacher", teacher_rationales), ("student init", init_student)]
        if any(served.startswith("reranker") for served in args.serve):  # the demo's reranker (a copy of the demo's is reused)
            stages += [("reranker candidates", reranker_candidates), ("reranker training", train_reranker)]
        for name, stage in stages:
            run.made[name] = stage(run)
        reranker = KardReranker.from_pretrained(out / "reranker" / "final") if "reranker training" in run.made else None
        passages, new_gold = edit_world(run.world, seed=seed + 1)  # the demo's edit
        edited_index = out / "index_edited"
        if not edited_index.is_dir():
            BM25Retriever.build(passages, edited_index, show_progress=False)
        edited = [e.model_copy(update={"answer": new_gold[e.id]}) for e in run.world.test if e.id in new_gold]
        variants = itertools.product(args.passages_from, args.counterfactual, args.yes_no_counterfactual, args.answer_weight, args.bridge)
        for source, copies, yes_no, weight, bridge in variants:
            name = (f"kard_{source}_cf{copies}" + ("_yn" if yes_no else "") + (f"_aw{weight:g}" if weight != 1 else "")
                    + ("_bridge" if bridge else ""))
            config = student_config(run, "kard", output_dir=out / name, passages_from=source, counterfactual=copies,
                                    yes_no_counterfactual=bool(yes_no), answer_weight=weight, bridge=bool(bridge))
            if not (config.output_dir / "final" / "kard_student.json").is_file():
                train_student(config, show_progress=False)
            metrics = json.loads((config.output_dir / "metrics.json").read_text())
            llm = load_student_llm(config.output_dir / "final", n=5, max_new_tokens=64, temperature=0.7, batch_size=16)
            for served in args.serve:
                file = f"{name}_served_{served.replace('+', '_')}.jsonl"
                serving = {"n": 5, "bridge": served.endswith("+bridge"),
                           **({"reranker": reranker, "candidates": 20} if served.startswith("reranker") else {})}
                test, _ = evaluate(run, load_kard_chain(llm, out / "index", **serving), run.world.test,
                                   out / "eval" / file, out / "index", student=config.output_dir / "final")
                edit, _ = evaluate(run, load_kard_chain(llm, edited_index, **serving), edited,
                                   out / "eval_edited" / file, edited_index, student=config.output_dir / "final")
                rows.append((seed, source, f"{copies}{' + yes/no' if yes_no else ''}", weight, bool(bridge), served, metrics, test, edit))
                print(f"seed {seed} {name}, served {served}: {test['accuracy']:.3f}, edits {edit['accuracy']:.3f}", flush=True)

    def cell(row: dict) -> str:
        return f"{row['accuracy']:.3f} [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]"

    types = list(rows[0][-2]["by_type"])
    edit_types = list(rows[0][-1]["by_type"])
    print(f"\nKARD on {rows[0][-2]['total']} test questions, {budget['steps']} steps of {budget['batch_size']}:\n")
    print("| seed | training passages | counterfactual copies | answer weight | bridge in training | served | pairs | all | "
          + " | ".join(types) + " | follows edits | " + " | ".join(f"edits: {t}" for t in edit_types) + " |")
    print("|---" * (9 + len(types) + len(edit_types)) + "|")
    for seed, source, copies, weight, bridge, served, metrics, test, edit in rows:
        print(f"| {seed} | {source} | {copies} | {weight:g} | {'yes' if bridge else 'no'} | {served} | {metrics['pairs']} | {cell(test)} | "
              + " | ".join(cell(test["by_type"][t]) for t in types) + f" | {cell(edit)} | "
              + " | ".join(cell(edit["by_type"].get(t, accuracy_row(0, 0))) for t in edit_types) + " |")


if __name__ == "__main__":
    main()
