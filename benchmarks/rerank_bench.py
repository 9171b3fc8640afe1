"""Reranking speed: 100 BM25 candidates per question, three ways, side by side in one run.

    python benchmarks/rerank_bench.py --data-dir ../shared/data --work-dir /tmp/rerank

- late interaction with stored passage vectors (fp16, memory-mapped): one question encoding + MaxSim;
- late interaction encoding the 100 passages at query time;
- a cross-encoder scoring the 100 (question, passage) pairs (untrained head: latency only).

Reuses ``WORK/reranker/final`` and ``WORK/vectors`` from ``rerank_strategyqa.py`` where they
exist; otherwise starts from the packaged all-MiniLM-L6-v2 with a fresh projection (speed
does not depend on training) and encodes the passages first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from kard_chain import BM25Retriever, load_dataset
from kard_chain.knowledge import read_strategyqa_paragraphs
from kard_chain.pretrained import minilm_path
from kard_chain.reranker.model import KardReranker, RerankerConfig
from kard_chain.reranker.vectors import PassageVectors
from kard_chain.retrievers.reranking import KardRerankerCompressor, RerankingRetriever


def median_ms(retriever, questions: list[str]) -> float:
    times = []
    for q in questions:
        start = time.perf_counter()
        retriever.invoke(q)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def latency_table(bm25, reranker, vectors, encoder: Path, questions: list[str], candidates: int = 100, max_passage_tokens: int = 128) -> str:
    """Median latency per question of each path, as printable lines."""
    def retriever(compressor):
        return RerankingRetriever(base_retriever=bm25, compressor=compressor, candidates=candidates, k=10)

    cross = KardReranker.from_encoder(str(encoder), RerankerConfig(scoring="cross_encoder", max_passage_tokens=max_passage_tokens))
    rows = [
        ("late interaction, stored passage vectors", retriever(KardRerankerCompressor(reranker=reranker, vectors=vectors)), questions),
        ("late interaction, passages encoded live", retriever(KardRerankerCompressor(reranker=reranker)), questions[:10]),
        ("cross-encoder", retriever(KardRerankerCompressor(reranker=cross)), questions[:5]),
        ("BM25 first stage alone", bm25, questions),
    ]
    lines = [f"median latency per question, {candidates} candidates, torch threads {torch.get_num_threads()}:"]
    for name, r, qs in rows:
        lines.append(f"  {name:<44}{median_ms(r, qs):9.1f} ms   ({len(qs)} questions)")
    per_passage = vectors.bytes_per_passage
    lines.append(f"stored vectors: {per_passage / 1024:.1f} KiB per passage (fp16, dim {vectors.meta['dim']}, "
                 f"{vectors.vectors.shape[0] / len(vectors.ids):.0f} tokens on average), {vectors.vectors.nbytes / 2**20:.0f} MiB in all")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-rerank-bench-"))
    sqa = args.data_dir / "strategyqa"
    if not (work / "index" / "index.json").is_file():
        BM25Retriever.build(read_strategyqa_paragraphs(sqa / "strategyqa_train_paragraphs.json"), work / "index", show_progress=False)
    bm25 = BM25Retriever.load(work / "index", k=args.candidates)
    encoder = minilm_path(work / "models")
    trained = work / "reranker" / "final"
    reranker = KardReranker.from_pretrained(trained) if trained.is_dir() else KardReranker.from_encoder(str(encoder))
    if (work / "vectors" / "meta.json").is_file():
        vectors = PassageVectors.load(work / "vectors")
    else:
        vectors = PassageVectors.build(reranker, read_strategyqa_paragraphs(sqa / "strategyqa_train_paragraphs.json"), work / "vectors")
    questions = [e.question for e in load_dataset("strategyqa", sqa)][: args.questions]
    print(f"machine: {os.cpu_count()} cores; reranker: {'trained' if trained.is_dir() else 'MiniLM with a fresh projection'}")
    print(latency_table(bm25, reranker, vectors, encoder, questions, args.candidates))


if __name__ == "__main__":
    main()
