"""What a KARD student reads through: one function builds its retriever, for its training pairs and for serving.

    retriever = reading_retriever(settings, "index/")                                   # BM25 (+ bridge round)
    retriever = reading_retriever(settings, "index/", reranker="reranker/final")        # reranked, fused with BM25

``settings`` are the student's :class:`~kard_chain.student.settings.StudentSettings` (``k``, ``bridge``), saved
with it by the trainer, so serving repeats what training read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.retrievers import BaseRetriever

from kard_chain.student.settings import StudentSettings

FIRST_STAGE_WEIGHT = 0.2
"""Weight of z(BM25) beside z(reranker) when a reranker is given (chosen on StrategyQA's dev questions: docs/results-real-data.md)."""
CANDIDATES = 100
"""First-stage passages the reranker reorders, unless told otherwise."""


def first_stage(index: str | Path | BaseRetriever, k: int) -> BaseRetriever:
    """``index`` itself when it is a retriever, else the BM25 index folder opened with ``k``."""
    if isinstance(index, BaseRetriever):
        return index
    from kard_chain.retrievers.bm25 import BM25Retriever

    return BM25Retriever.load(index, k=k)


def reading_retriever(settings: StudentSettings, index: str | Path | BaseRetriever, *, reranker: Any = None, vectors: Any = None,
                      candidates: int | None = None, first_stage_weight: float | None = None,
                      bridge: bool | None = None) -> BaseRetriever:
    """The retriever of a KARD student: ``index`` (a BM25 folder or any first stage) for its top ``settings.k``,
    reranked by ``reranker`` (a folder or :class:`~kard_chain.reranker.model.KardReranker`) over ``candidates``
    first-stage passages and fused at ``first_stage_weight``, then a bridge round where ``bridge`` (default: as
    the student was trained) says."""
    k = settings.k
    if reranker is None:
        retriever = first_stage(index, k)
    else:
        from kard_chain.reranker.model import KardReranker
        from kard_chain.reranker.vectors import PassageVectors
        from kard_chain.retrievers.reranking import KardRerankerCompressor, RerankingRetriever

        if not isinstance(reranker, KardReranker):
            reranker = KardReranker.from_pretrained(reranker)
        if vectors is not None and not isinstance(vectors, PassageVectors):
            vectors = PassageVectors.load(vectors)
        n = candidates or CANDIDATES
        retriever = RerankingRetriever(base_retriever=first_stage(index, n), candidates=n, k=k,
                                       first_stage_weight=FIRST_STAGE_WEIGHT if first_stage_weight is None else first_stage_weight,
                                       compressor=KardRerankerCompressor(reranker=reranker, vectors=vectors, top_n=k))
    if settings.bridge if bridge is None else bridge:
        from kard_chain.retrievers.bridge import BridgeRetriever

        bm25 = retriever.base_retriever if reranker is not None else retriever  # the first stage already opened
        retriever = BridgeRetriever(first=retriever, index=bm25, k=k)
    return retriever
