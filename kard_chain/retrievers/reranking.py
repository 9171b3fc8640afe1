"""LangChain faces of the KARD reranker: a document compressor and a reranking retriever.

    compressor = KardRerankerCompressor(reranker=KardReranker.from_pretrained("reranker/"), top_n=5)
    retriever = RerankingRetriever(base_retriever=BM25Retriever.load("index/"), compressor=compressor, candidates=100, k=5)
    retriever.invoke("Could a goat be a source of cheese?")   # metadata["rerank_score"] on each

With ``vectors`` (stored passage vectors from :class:`~kard_chain.reranker.vectors.PassageVectors`)
a late-interaction reranker encodes only the question; passages missing from the store are
encoded on the fly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from kard_chain.records import passage_id
from kard_chain.retrievers.base import PerCallKRetriever


class KardRerankerCompressor(BaseDocumentCompressor):
    """Keeps the ``top_n`` documents by KARD reranker score (``metadata["rerank_score"]``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    reranker: Any = Field(repr=False)
    """A :class:`~kard_chain.reranker.model.KardReranker`."""
    vectors: Any = Field(default=None, repr=False)
    """Optional :class:`~kard_chain.reranker.vectors.PassageVectors` for stored passage embeddings."""
    top_n: int = Field(default=4, ge=1)
    """Documents to keep."""

    @model_validator(mode="after")
    def _vectors_of_these_weights(self) -> KardRerankerCompressor:
        made_by = getattr(self.vectors, "meta", {}).get("weights") if self.vectors is not None else None
        if made_by is not None and made_by != self.reranker.fingerprint():
            raise ValueError(f"these passage vectors were encoded by other reranker weights ({made_by}, this reranker is "
                             f"{self.reranker.fingerprint()}): encode them again with this reranker (PassageVectors.build)")
        return self

    def scores(self, query: str, documents: Sequence[Document]) -> list[float]:
        """The reranker's score of each document for ``query``."""
        if not documents:
            return []
        ids = [passage_id(d) for d in documents]
        if self.vectors is not None and all(i in self.vectors for i in ids):
            return self._stored_maxsim(query, ids)
        from kard_chain.reranker.model import reranker_text

        return self.reranker.score([query], [[reranker_text(d.metadata.get("title", ""), d.page_content) for d in documents]])[0]

    def _stored_maxsim(self, query: str, ids: list[str]) -> list[float]:
        import torch

        with torch.no_grad():
            q, q_mask = self.reranker.embed_questions([query])
        q = q[0][q_mask[0]].cpu().numpy()  # (Lq, d), real tokens only
        tokens, starts = self.vectors.gather(ids)  # (T, d)
        best = np.maximum.reduceat(tokens @ q.T, starts, axis=0)  # (C, Lq): best passage token per question token
        return best.sum(axis=1).tolist()

    def compress_documents(self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None) -> Sequence[Document]:
        return _best(documents, self.scores(query, documents), self.top_n)


class RerankingRetriever(PerCallKRetriever):
    """Fetches ``candidates`` passages from any first-stage retriever and returns the ``k``
    the KARD reranker scores highest, with ``metadata["rerank_score"]``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    base_retriever: BaseRetriever
    """First stage (BM25, Chroma or any LangChain retriever); asked for ``candidates`` where it takes ``k``."""
    compressor: KardRerankerCompressor
    """The reranker."""
    candidates: int = Field(default=100, ge=1)
    """Passages fetched from the first stage."""
    k: int = Field(default=4, ge=1)
    """Passages returned."""
    first_stage_weight: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """Weight of the first stage's own score (``metadata["score"]``) beside the reranker's, each standardised
    over the candidates (z-scores); 0 ranks by the reranker alone."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        docs = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()}, k=self.candidates)
        scores = self.compressor.scores(query, docs)
        if self.first_stage_weight and docs:
            scores = fuse(scores, _first_stage_scores(docs), self.first_stage_weight)
        return _best(docs, scores, k or self.k)


def fuse(reranker: Sequence[float], first_stage: Sequence[float], weight: float) -> list[float]:
    """``z(reranker) + weight * z(first_stage)``, each standardised over the same candidates (a constant list is 0)."""

    def z(values: Sequence[float]) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        spread = x.std()
        return (x - x.mean()) / spread if spread > 0 else np.zeros_like(x)

    return (z(reranker) + weight * z(first_stage)).tolist()


def _first_stage_scores(docs: Sequence[Document]) -> list[float]:
    missing = [passage_id(d) for d in docs if not isinstance(d.metadata.get("score"), (int, float))]
    if missing:
        raise ValueError(f"first_stage_weight needs the first stage's metadata['score']; passages {missing[:3]} have none")
    return [float(d.metadata["score"]) for d in docs]


def _best(documents: Sequence[Document], scores: list[float], n: int) -> list[Document]:
    """The ``n`` best documents by score, highest first, each with ``metadata["rerank_score"]``."""
    order = sorted(range(len(documents)), key=lambda i: -scores[i])[:n]
    return [
        Document(page_content=documents[i].page_content, id=documents[i].id, metadata={**documents[i].metadata, "rerank_score": scores[i]})
        for i in order
    ]
