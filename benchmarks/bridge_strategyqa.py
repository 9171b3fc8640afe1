"""Does a bridge round help on real questions? StrategyQA, BM25(question) vs BM25(question) then a bridge round.

    python benchmarks/bridge_strategyqa.py --data-dir ../shared/data --work-dir /tmp/bridge

BM25 over the 9,251 StrategyQA paragraphs; every training question with gold evidence; recall@k of its evidence
paragraphs (the union over annotators) for the top k of one round, and for the top k of a
:class:`~kard_chain.retrievers.bridge.BridgeRetriever` (the rounds take turns filling k) at each ``--max-df``.
No training, no model: a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from kard_chain import BM25Retriever, BridgeRetriever, load_dataset
from kard_chain.knowledge import read_strategyqa_paragraphs


def recall(docs: list, gold: set[str], k: int) -> float:
    return len({d.metadata["id"] for d in docs[:k]} & gold) / len(gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="shared/data (holds strategyqa/)")
    parser.add_argument("--work-dir", type=Path, required=True, help="where the BM25 index is built (reused)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10], help="recall cut-offs")
    parser.add_argument("--max-df", type=float, nargs="+", default=[0.01, 0.05], help="the bridge's document-frequency caps")
    args = parser.parse_args()
    sqa = args.data_dir / "strategyqa"
    index_dir = args.work_dir / "index"
    if not index_dir.is_dir():
        BM25Retriever.build(read_strategyqa_paragraphs(sqa / "strategyqa_train_paragraphs.json"), index_dir, show_progress=False)
    examples = [e for e in load_dataset("strategyqa", sqa, split="train") if e.evidence_ids]
    questions = [e.question for e in examples]
    bm25 = BM25Retriever.load(index_dir, k=max(args.k))
    start = time.perf_counter()
    rows = {"BM25(question)": bm25.batch(questions)}
    for max_df in args.max_df:
        rows[f"then a bridge round, max_df {max_df}"] = BridgeRetriever(first=bm25, index=bm25, k=max(args.k), max_df=max_df).batch(questions)
    print(f"machine: {os.cpu_count()} cores; {len(examples)} questions with evidence; {time.perf_counter() - start:.0f} s\n")
    print(f"{'recall of gold evidence':<40}" + "".join(f"{f'R@{k}':>8}" for k in args.k))
    for name, found in rows.items():
        print(f"{name:<40}" + "".join(f"{sum(recall(d, set(e.evidence_ids), k) for d, e in zip(found, examples)) / len(examples):>8.3f}"
                                      for k in args.k))


if __name__ == "__main__":
    main()
