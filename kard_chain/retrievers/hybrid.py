"""``HybridRetriever``: several first stages (BM25 and dense, say) fused by reciprocal rank fusion.

    hybrid = HybridRetriever(retrievers=[BM25Retriever.load("index/"), ChromaRetriever.open("chroma/", embeddings=emb)],
                             candidates=100, k=100)
    RerankingRetriever(base_retriever=hybrid, compressor=compressor, candidates=100, k=5)   # the reranker over both

Each retriever is asked for ``candidates`` passages; a passage scores ``sum(weight / (rrf_k + rank))``
over the lists it appears in (Cormack et al., SIGIR 2009), so BM25's and a dense model's scores
never need to share a scale. Passages are matched by ``metadata["id"]`` (else ``Document.id``,
else the text).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from kard_chain.records import passage_id
from kard_chain.retrievers.base import PerCallKRetriever


class HybridRetriever(PerCallKRetriever):
    """The ``k`` best passages of several retrievers by reciprocal rank fusion (``metadata["score"]``, ``metadata["ranks"]``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    retrievers: list[BaseRetriever] = Field(min_length=1)
    """First stages to fuse (each asked for ``candidates`` where it takes ``k``)."""
    weights: list[float] | None = None
    """One weight per retriever (default: equal)."""
    candidates: int = Field(default=100, ge=1)
    """Passages asked of each retriever."""
    k: int = Field(default=4, ge=1)
    """Passages returned."""
    rrf_k: int = Field(default=60, ge=0)
    """The fusion's rank offset: larger values flatten the advantage of the very top ranks."""

    @model_validator(mode="after")
    def _one_weight_each(self) -> HybridRetriever:
        if self.weights is not None and len(self.weights) != len(self.retrievers):
            raise ValueError(f"got {len(self.weights)} weights for {len(self.retrievers)} retrievers")
        return self

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        weights = self.weights or [1.0] * len(self.retrievers)
        fused: dict[str, dict[str, Any]] = {}
        for position, (retriever, weight) in enumerate(zip(self.retrievers, weights)):
            docs = retriever.invoke(query, config={"callbacks": run_manager.get_child()}, k=self.candidates)
            for rank, doc in enumerate(docs, 1):
                entry = fused.setdefault(_key(doc), {"doc": doc, "score": 0.0, "ranks": {}})
                entry["score"] += weight / (self.rrf_k + rank)
                entry["ranks"][position] = rank
        best = sorted(fused.values(), key=lambda e: -e["score"])[: k or self.k]
        return [Document(page_content=e["doc"].page_content, id=e["doc"].id,
                         metadata={**e["doc"].metadata, "score": e["score"], "ranks": e["ranks"]}) for e in best]


def _key(doc: Document) -> str:
    return passage_id(doc, doc.page_content)
