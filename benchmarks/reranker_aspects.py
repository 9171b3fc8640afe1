"""Does the KARD reranker find the passage BM25(question) misses? The demo's world has five passages per organism,
one per aspect (home, song, young, looks, food), all naming the organism, none worded like the question: "What does
the velomar feed on?" is answered by "Every evening the velomar hunts for fish near slow rivers.", which shares only
the name with the question and is longer than three of the others, so BM25(question) never ranks it in the top 3.

    python benchmarks/reranker_aspects.py --seeds 0 1 --out /tmp/aspects

The reranker is trained as the demo trains it (KARD's objective: rank the candidates for the question as BM25 ranks
them for the teacher's rationale; the packaged MiniLM where installed), then both retrievers answer the test
questions about unseen organisms. Prints recall@1 and recall@3 of the evidence passage per question type.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder (index, rationales, candidates, reranker)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=20, help="reranker training steps (the demo's budget for the small world)")
    ap.add_argument("--threads", type=int, help="torch threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from kard_chain.demo.run import (
        DemoRun,
        _write_jsonl,
        bm25_index,
        reranker_candidates,
        teacher_rationales,
        train_reranker,
    )
    from kard_chain.demo.world import build_world
    from kard_chain.reranker.model import KardReranker
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.retrievers.reranking import KardRerankerCompressor, RerankingRetriever

    print(f"# machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print("| seed | question type | questions | BM25(question) R@1 | R@3 | KARD reranker R@1 | R@3 |\n|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        (out / "data").mkdir(parents=True, exist_ok=True)
        run = DemoRun(out=out, size="small", seed=seed, budget={"reranker_steps": args.steps}, n=5, k=3, show_progress=False,
                      log=lambda _: None, world=build_world("small", seed=seed))
        for name, records in (("train", run.world.train), ("test", run.world.test), ("passages", run.world.passages)):
            _write_jsonl(out / "data" / f"{name}.jsonl", records)
        for name, stage in (("index (BM25)", bm25_index), ("teacher", teacher_rationales),
                            ("reranker candidates", reranker_candidates), ("reranker training", train_reranker)):
            run.made[name] = stage(run)
        bm25 = BM25Retriever.load(out / "index", k=20)
        reranking = RerankingRetriever(base_retriever=bm25, candidates=20, k=3,
                                       compressor=KardRerankerCompressor(reranker=KardReranker.from_pretrained(out / "reranker" / "final"), top_n=3))
        for kind in ("diet", "colour"):
            examples = [e for e in run.world.test if e.metadata["type"] == kind]
            questions = [e.question for e in examples]

            def recall(found: list, k: int, examples: list = examples) -> float:
                return sum(e.evidence_ids[0] in [d.metadata["id"] for d in docs[:k]] for e, docs in zip(examples, found)) / len(examples)

            first, second = bm25.batch(questions), reranking.batch(questions)
            print(f"| {seed} | {kind} | {len(examples)} | {recall(first, 1):.3f} | {recall(first, 3):.3f} | "
                  f"{recall(second, 1):.3f} | {recall(second, 3):.3f} |", flush=True)


if __name__ == "__main__":
    main()
