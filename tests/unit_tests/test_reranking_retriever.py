"""RerankingRetriever and KardRerankerCompressor over a tiny late-interaction reranker."""

from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402

from kard_chain import BM25Retriever, Passage  # noqa: E402
from kard_chain.reranker.vectors import PassageVectors  # noqa: E402
from kard_chain.retrievers.reranking import KardRerankerCompressor, RerankingRetriever, fuse  # noqa: E402
from tests.unit_tests.tiny_models import tiny_reranker  # noqa: E402

TEXTS = [f"{name} is {color} and lives in the {place}" for name, color, place in [
    ("zorb1", "red", "marsh"), ("zorb2", "blue", "reef"), ("zorb3", "red", "reef"), ("zorb4", "green", "marsh"),
    ("zorb5", "amber", "canyon"), ("zorb6", "blue", "delta"), ("zorb7", "red", "canyon"), ("zorb8", "grey", "delta")]]
PASSAGES = [Passage(id=f"p{i}", text=t) for i, t in enumerate(TEXTS)]
WORDS = sorted(set(" ".join(TEXTS).split()) | {"where", "does", "live", "what", "colour"})


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    reranker = tiny_reranker("late_interaction", WORDS)
    vectors = PassageVectors.build(reranker, PASSAGES, tmp_path_factory.mktemp("v") / "vectors", batch_size=3, show_progress=False)
    return BM25Retriever.from_passages(PASSAGES, k=8), reranker, vectors


class TestRerankingRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _parts(self, parts):
        type(self).parts = parts

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return RerankingRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        base, reranker, _ = self.parts
        return {"base_retriever": base, "compressor": KardRerankerCompressor(reranker=reranker), "candidates": 8, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "is zorb3 red and does it live in the reef or the marsh"


def test_reranks_candidates_by_brute_force_scores(parts):
    base, reranker, _ = parts
    retriever = RerankingRetriever(base_retriever=base, compressor=KardRerankerCompressor(reranker=reranker), candidates=8, k=3)
    query = "where does zorb3 live red reef marsh"
    docs = retriever.invoke(query)
    candidates = base.invoke(query, k=8)
    brute = dict(zip([d.metadata["id"] for d in candidates], reranker.score([query], [[d.page_content for d in candidates]])[0]))
    expected = sorted(brute, key=lambda i: -brute[i])[:3]
    assert [d.metadata["id"] for d in docs] == expected
    assert [d.metadata["rerank_score"] for d in docs] == pytest.approx([brute[i] for i in expected], abs=1e-4)
    assert all("score" in d.metadata for d in docs)  # the first stage's score is kept


def test_first_stage_weight_fuses_standardised_scores_by_hand(parts):
    base, reranker, _ = parts
    query = "where does zorb3 live red reef marsh"
    candidates = base.invoke(query, k=8)
    rerank = reranker.score([query], [[d.page_content for d in candidates]])[0]
    first = [d.metadata["score"] for d in candidates]

    def z(xs):
        mean = sum(xs) / len(xs)
        sd = (sum((x - mean) ** 2 for x in xs) / len(xs)) ** 0.5
        return [(x - mean) / sd for x in xs]

    for weight in (0.3, 5.0):
        fused = {d.metadata["id"]: r + weight * b for d, r, b in zip(candidates, z(rerank), z(first))}
        retriever = RerankingRetriever(base_retriever=base, compressor=KardRerankerCompressor(reranker=reranker), candidates=8, k=3,
                                       first_stage_weight=weight)
        docs = retriever.invoke(query)
        assert [d.metadata["id"] for d in docs] == sorted(fused, key=lambda i: -fused[i])[:3]
        assert [d.metadata["rerank_score"] for d in docs] == pytest.approx(sorted(fused.values(), reverse=True)[:3], abs=1e-4)
    deferring = RerankingRetriever(base_retriever=base, compressor=KardRerankerCompressor(reranker=reranker), candidates=8, k=3,
                                   first_stage_weight=1e6)  # a large weight defers to the first stage (ties may swap)
    assert [d.metadata["score"] for d in deferring.invoke(query)] == [d.metadata["score"] for d in candidates[:3]]
    assert fuse([1.0, 1.0], [2.0, 4.0], 1.0) == [-1.0, 1.0]  # a constant list standardises to zeros


def test_stored_vectors_give_the_same_scores(parts):
    _, reranker, vectors = parts
    docs = [Document(page_content=p.text, metadata={"id": p.id}) for p in PASSAGES]
    live = KardRerankerCompressor(reranker=reranker).scores("what colour is zorb6", docs)
    stored = KardRerankerCompressor(reranker=reranker, vectors=vectors).scores("what colour is zorb6", docs)
    assert stored == pytest.approx(live, abs=2e-2)  # fp16 storage
    assert vectors.vectors.dtype.name == "float16" and vectors.vectors.shape[1] == 32
    kept = KardRerankerCompressor(reranker=reranker, vectors=vectors, top_n=2).compress_documents(docs, "what colour is zorb6")
    assert len(kept) == 2 and kept[0].metadata["rerank_score"] >= kept[1].metadata["rerank_score"]


def test_vectors_encoded_by_other_weights_are_refused(parts, tmp_path):
    import torch

    _, reranker, vectors = parts
    assert vectors.meta["weights"] == reranker.fingerprint()
    KardRerankerCompressor(reranker=reranker, vectors=vectors)  # its own vectors: accepted
    other = tiny_reranker("late_interaction", WORDS)
    with torch.no_grad():
        next(other.head.parameters()).add_(1.0)  # the same shapes, other weights
    with pytest.raises(ValueError, match="encoded by other reranker weights"):
        KardRerankerCompressor(reranker=other, vectors=vectors)
    small = vectors.compress(tmp_path / "small", n_centroids=4, show_progress=False)
    with pytest.raises(ValueError, match="encoded by other reranker weights"):  # a compressed copy names them too
        KardRerankerCompressor(reranker=other, vectors=small)
