"""Reranking speed: 100 BM25 candidates per question, three ways, side by side in one run.

    python benchmarks/rerank_bench.py --data-dir ../shared/data --work-dir /tmp/rerank

- late interaction with stored passage vectors (fp16, memory-mapped): one question encoding + MaxSim;
- the same with the vectors compressed to 2 bits per dimension (``PassageVectors.compress``);
- late interaction encoding the 100 passages at query time;
- a cross-encoder scoring the 100 (question, passage) pairs (untrained head: latency only).

Reuses a ``rerank_strategyqa.py`` run folder (``--reranker``, default ``WORK/reranker-defaults``:
its ``final/`` model, ``vectors/`` and ``vectors-2bit/``) where they exist; otherwise starts from
the packaged all-MiniLM-L6-v2 with a fresh projection (speed does not depend on training) and
encodes (and compresses) the passages first.
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


def stored_vectors(reranker, paragraphs: Path, run: Path) -> PassageVectors:
    """``RUN/vectors``: StrategyQA's passages encoded by ``reranker``, again when missing or older than ``RUN/final``."""
    folder, model = run / "vectors", run / "final" / "reranker.json"
    if not (folder / "meta.json").is_file() or (model.is_file() and folder.stat().st_mtime < model.stat().st_mtime):
        start = time.perf_counter()
        PassageVectors.build(reranker, read_strategyqa_paragraphs(paragraphs), folder, overwrite=True, show_progress=False)
        print(f"passage vectors: {time.perf_counter() - start:.0f} s to encode the passages")
    return PassageVectors.load(folder)


def compressed_vectors(vectors: PassageVectors, run: Path) -> PassageVectors:
    """``RUN/vectors-2bit``: the 2-bit copy of ``RUN/vectors``, made again when missing or older than them."""
    folder = run / "vectors-2bit"
    if not (folder / "meta.json").is_file() or folder.stat().st_mtime < (run / "vectors").stat().st_mtime:
        start = time.perf_counter()
        vectors.compress(folder, overwrite=True, show_progress=False)
        print(f"compressed the vectors in {time.perf_counter() - start:.0f} s")
    return PassageVectors.load(folder)


def latency_table(bm25, reranker, vectors, encoder: Path, questions: list[str], candidates: int = 100, max_passage_tokens: int = 128,
                  compressed=None) -> str:
    """Median latency per question of each path (``compressed``: a compressed copy of ``vectors``), as printable lines."""
    def retriever(compressor):
        return RerankingRetriever(base_retriever=bm25, compressor=compressor, candidates=candidates, k=10)

    cross = KardReranker.from_encoder(str(encoder), RerankerConfig(scoring="cross_encoder", max_passage_tokens=max_passage_tokens))
    stored = [("late interaction, stored passage vectors", vectors)] + ([("late interaction, 2-bit compressed vectors", compressed)]
                                                                       if compressed is not None else [])
    rows = [
        *((name, retriever(KardRerankerCompressor(reranker=reranker, vectors=v)), questions) for name, v in stored),
        ("late interaction, passages encoded live", retriever(KardRerankerCompressor(reranker=reranker)), questions[:10]),
        ("cross-encoder", retriever(KardRerankerCompressor(reranker=cross)), questions[:5]),
        ("BM25 first stage alone", bm25, questions),
    ]
    lines = [f"median latency per question, {candidates} candidates, torch threads {torch.get_num_threads()}:"]
    for name, r, qs in rows:
        lines.append(f"  {name:<44}{median_ms(r, qs):9.1f} ms   ({len(qs)} questions)")
    tokens = len(vectors.vectors) / len(vectors.ids)
    for name, v in stored:
        lines.append(f"{name}: {v.bytes_per_passage / 1024:.2f} KiB per passage (dim {vectors.meta['dim']}, {tokens:.0f} tokens "
                     f"on average; {v.bytes_per_passage * len(v.ids) / 2**20:.0f} MiB in all, shared centroids included)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--reranker", type=Path, help="a rerank_strategyqa.py run folder (default: WORK/reranker-defaults)")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-rerank-bench-"))
    sqa = args.data_dir / "strategyqa"
    if not (work / "index" / "index.json").is_file():
        BM25Retriever.build(read_strategyqa_paragraphs(sqa / "strategyqa_train_paragraphs.json"), work / "index", show_progress=False)
    bm25 = BM25Retriever.load(work / "index", k=args.candidates)
    encoder = minilm_path(work / "models")
    run = args.reranker or work / "reranker-defaults"
    trained = run / "final"
    reranker = KardReranker.from_pretrained(trained) if trained.is_dir() else KardReranker.from_encoder(str(encoder))
    vectors = stored_vectors(reranker, sqa / "strategyqa_train_paragraphs.json", run)
    compressed = compressed_vectors(vectors, run)
    questions = [e.question for e in load_dataset("strategyqa", sqa)][: args.questions]
    print(f"machine: {os.cpu_count()} cores; reranker: {'trained' if trained.is_dir() else 'MiniLM with a fresh projection'}")
    print(latency_table(bm25, reranker, vectors, encoder, questions, args.candidates, compressed=compressed))


if __name__ == "__main__":
    main()
