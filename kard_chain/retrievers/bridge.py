"""``BridgeRetriever``: a second retrieval round that follows the name the first passage adds to the question.

    bm25 = BM25Retriever.load("index/")
    retriever = BridgeRetriever(first=bm25, index=bm25, k=3)
    retriever.invoke("What weather is usual where Karu Tesh was born?")
    # round 1: "Karu Tesh was born in Zinbarol. ..."; bridge query: "zinbarol";
    # round 2: "Zinbarol is a province with a desert climate."; both rounds interleaved, marked with their round

A two-hop ("bridge") question names an entity whose passage names a second entity that the
question does not: no one-round query reaches the second passage. Round 1 retrieves with the
question (any retriever: BM25, the reranking retriever); the bridge query is the rarest ``terms``
index terms of the top passage that the question lacks (by the BM25 index's document frequency: in
an encyclopedia the passage's new name, not its template words; none held by more than ``max_df``
of the passages, so a passage that names nothing new gets no round 2); round 2 asks the BM25 index
with it and puts the passages titled with it first (the name's own article before the passages
that merely mention it: entity linking by title). Query expansion from the first passage, as multi-hop retrievers do with a learned query (GoldEn
Retriever, Qi et al. 2019; MDR, Xiong et al. 2021), here without training. The two rounds take
turns filling the ``k`` passages; each passage says its round in ``metadata["retrieval_round"]``.
"""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from kard_chain.retrievers.base import PerCallKRetriever
from kard_chain.student.format import passage_key

MIN_DF_CAP = 5
"""In a small knowledge base a name may sit in more than ``max_df`` of the passages: up to this many always count."""
ROUND = "retrieval_round"
"""Metadata key of a passage's retrieval round (1: the question, 2: the bridge query or the student's draft)."""


def interleave_rounds(first: list[Document], second: list[Document], k: int) -> list[Document]:
    """The first ``k`` distinct passages, the rounds taking turns (a round whose next passage is already taken
    gives its next new one), each marked with its round."""
    out: list[Document] = []
    seen: set[tuple[str, str]] = set()
    pending = {1: iter(first), 2: iter(second)}
    while len(out) < k and pending:
        for number in list(pending):
            if len(out) == k:
                break
            for doc in pending[number]:
                key = passage_key(doc)
                if key not in seen:
                    seen.add(key)
                    out.append(Document(page_content=doc.page_content, metadata={**doc.metadata, ROUND: number}, id=doc.id))
                    break
            else:
                del pending[number]
    return out


class BridgeRetriever(PerCallKRetriever):
    """Round 1 with the question, round 2 with the rarest new terms of round 1's top passage; ``k`` passages of both."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    first: BaseRetriever
    """Round 1, asked for ``k`` passages per call (BM25, the reranking retriever, any retriever that takes ``k``)."""
    index: BaseRetriever
    """Round 2: a :class:`~kard_chain.retrievers.bm25.BM25Retriever`, whose document frequencies also pick the bridge terms."""
    terms: int = Field(default=1, ge=1)
    """Terms in the bridge query."""
    max_df: float = Field(default=0.01, gt=0, le=1)
    """A term in more than this share of the passages (and more than 5) is no name to follow (template words,
    attribute values): a top passage without a rarer new term gets no round 2, and its question reads round 1 alone."""
    candidates: int = Field(default=20, ge=1)
    """Passages round 2 fetches with the bridge query before those titled with it are moved to the front."""
    k: int = Field(default=4, ge=1)
    """Passages returned (both rounds together)."""

    def model_post_init(self, context: object) -> None:
        if not hasattr(self.index, "index") or not hasattr(self.index.index, "indptr"):
            raise TypeError(f"index must be a BM25Retriever (its postings pick the bridge terms), got {type(self.index).__name__}")

    def bridge_query(self, question: str, passage: str) -> str:
        """The ``terms`` rarest index terms of ``passage`` that ``question`` lacks and at most ``max_df`` of the passages
        hold (``""`` if none)."""
        bm25 = self.index.index
        asked, most = set(bm25.tokenizer(question)), max(MIN_DF_CAP, self.max_df * bm25.n_docs)
        frequency = {}
        for term in set(bm25.tokenizer(passage)) - asked:
            row = bm25.term_ids.get(term)
            if row is not None and (df := int(bm25.indptr[row + 1] - bm25.indptr[row])) <= most:
                frequency[term] = df
        return " ".join(sorted(frequency, key=lambda t: (frequency[t], t))[: self.terms])

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        k = k or self.k
        first = self.first.invoke(query, config={"callbacks": run_manager.get_child()}, k=k)
        bridge = self.bridge_query(query, first[0].page_content) if first else ""
        if not bridge:
            return interleave_rounds(first, [], k)
        second = self.index.invoke(bridge, config={"callbacks": run_manager.get_child()}, k=max(k, self.candidates))
        tokenize, terms = self.index.index.tokenizer, set(bridge.split())
        titled = [terms <= set(tokenize(d.metadata.get("title", ""))) for d in second]
        second = [d for d, t in zip(second, titled) if t] + [d for d, t in zip(second, titled) if not t]
        return interleave_rounds(first, second, k)
