import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from kard_chain import BM25Index, BM25Params, BM25Retriever, Passage

TEXTS = [
    "Goats produce about two percent of the world's milk supply.",
    "Cheese is made from the milk of cows, goats and sheep.",
    "Penguins are flightless birds of the Southern Hemisphere.",
    "The emperor penguin is the tallest penguin species.",
    "Copper is used for electrical wiring because it conducts well.",
    "Bronze is an alloy of copper and tin.",
]


class TestBM25RetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return BM25Retriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        passages = [Passage(id=f"p{i}", text=t) for i, t in enumerate(TEXTS)]
        return {"index": BM25Index.from_passages(passages), "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "milk of goats, penguins and copper"


@pytest.fixture
def retriever():
    return BM25Retriever.from_texts(TEXTS, metadatas=[{"title": "T", "n": i} for i in range(6)], ids=[f"p{i}" for i in range(6)], k=2)


def test_documents_carry_id_title_score(retriever):
    docs = retriever.invoke("penguin penguins species")
    assert [d.metadata["id"] for d in docs] == ["p3", "p2"]
    assert docs[0].id == "p3" and docs[0].metadata["title"] == "T" and docs[0].metadata["n"] == 3
    assert docs[0].metadata["score"] > docs[1].metadata["score"] > 0
    assert len(retriever.invoke("penguin copper milk", k=5)) == 5


def test_score_matches_retrieved_scores(retriever):
    docs = retriever.invoke("copper alloy tin", k=3)
    assert len(docs) == 2  # only passages sharing a term are returned
    scores = retriever.score("copper alloy tin", [d.metadata["id"] for d in docs] + ["p0"])
    assert scores[:2] == pytest.approx([d.metadata["score"] for d in docs], abs=1e-9)
    assert scores[2] == 0.0


class Counter(BaseCallbackHandler):
    def __init__(self):
        self.starts, self.ends = 0, 0

    def on_retriever_start(self, *args, **kwargs):
        self.starts += 1

    def on_retriever_end(self, *args, **kwargs):
        self.ends += 1


def test_batch_equals_invoke_and_fires_callbacks(retriever):
    queries = ["goat milk", "penguin", "copper tin", "nothing here"]
    counter = Counter()
    batched = retriever.batch(queries, config={"callbacks": [counter]}, k=3)
    assert batched == [retriever.invoke(q, k=3) for q in queries]
    assert batched[3] == []
    assert counter.starts == counter.ends == 4
    assert asyncio.run(retriever.abatch(queries)) == [retriever.invoke(q) for q in queries]


def test_from_documents_and_rank_bm25_backend(tmp_path):
    docs = [Document(page_content=t, id=f"x{i}") for i, t in enumerate(TEXTS)]
    fast = BM25Retriever.from_documents(docs, k=3, method="okapi")
    ref = BM25Retriever.from_documents(docs, k=3, backend="rank_bm25", method="okapi")
    a, b = fast.invoke("milk goats"), ref.invoke("milk goats")
    assert [d.id for d in a] == [d.id for d in b]
    assert [d.metadata["score"] for d in a] == pytest.approx([d.metadata["score"] for d in b], abs=1e-5)
    fast.save(tmp_path / "idx")
    loaded = BM25Retriever.load(tmp_path / "idx", k=3)
    assert loaded.invoke("milk goats") == a
    assert repr(loaded) == "BM25Retriever(k=3)"


def test_a_saved_retriever_reloads_with_its_k_and_backend_unless_told_otherwise(tmp_path):
    retriever = BM25Retriever.from_texts(TEXTS, k=2, method="okapi", backend="rank_bm25")
    retriever.save(tmp_path / "idx")
    loaded = BM25Retriever.load(tmp_path / "idx")
    assert (loaded.k, loaded.backend, loaded.index.params.method) == (2, "rank_bm25", "okapi")
    assert len(loaded.invoke("milk goats cats")) == 2
    assert BM25Retriever.load(tmp_path / "idx", k=1, backend="fast").k == 1
    built = BM25Retriever.build([Passage(id="a", text="goat milk")], tmp_path / "built", k=3, show_progress=False)
    assert BM25Retriever.load(tmp_path / "built").k == built.k == 3


@pytest.mark.parametrize("method", ["lucene", "okapi"])
def test_a_grown_index_scores_as_a_rebuilt_one(tmp_path, method):
    import random

    rng = random.Random(method)
    words = [f"w{i}" for i in range(60)]
    passages = [Passage(id=f"p{i}", title=rng.choice(words), text=" ".join(rng.choices(words, k=rng.randint(3, 30))))
                for i in range(120)]
    passages.append(Passage(id="late", text="zebra quagga okapi"))  # terms the first half never saw
    queries = [" ".join(rng.choices(words, k=4)) for _ in range(30)] + ["zebra okapi w1"]
    rebuilt = BM25Retriever.build(passages, tmp_path / "full", k=10, method=method, show_progress=False)
    grown = BM25Retriever.build(passages[:50], tmp_path / "grown", k=10, method=method, show_progress=False)
    grown.add_passages(passages[50:])
    again = BM25Retriever.load(tmp_path / "grown")  # grown on disk, not only in memory
    for retriever in (grown, again):
        assert retriever.index.n_docs == 121 and retriever.index.passages.get(120).id == "late"
        for q in queries:
            a, b = retriever.invoke(q), rebuilt.invoke(q)
            assert [d.metadata["score"] for d in a] == pytest.approx([d.metadata["score"] for d in b], abs=1e-5)
            cut = a[-1].metadata["score"] + 1e-5 if len(a) == 10 else float("-inf")  # ties may swap at the cut, not above it
            assert {d.metadata["id"] for d in a if d.metadata["score"] > cut} == {d.metadata["id"] for d in b if d.metadata["score"] > cut}
            assert len(a) == len(b)
        assert retriever.score("zebra w3", ["p1", "late"]) == pytest.approx(rebuilt.score("zebra w3", ["p1", "late"]), abs=1e-5)
    memory = BM25Retriever.from_passages(passages[:50], k=10, method=method)
    memory.add_documents([Document(page_content=p.text, id=p.id, metadata={"title": p.title}) for p in passages[50:]])
    assert [d.metadata["score"] for d in memory.invoke(queries[0])] == pytest.approx(
        [d.metadata["score"] for d in rebuilt.invoke(queries[0])], abs=1e-5)
    with pytest.raises(Exception, match="already in the index"):
        grown.add_passages([Passage(id="p3", text="again")])


def test_kard_index_append_grows_an_index(tmp_path, capsys):
    from kard_chain.cli import main

    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(Passage(id="g", text="goats give milk").model_dump_json() + "\n")
    second.write_text(Passage(id="c", text="cats purr softly").model_dump_json() + "\n")
    assert main(["index", "--corpus", str(first), "--out", str(tmp_path / "idx")]) == 0
    assert main(["index", "--corpus", str(second), "--out", str(tmp_path / "idx"), "--append"]) == 0
    assert "now holds 2 passages" in capsys.readouterr().out
    assert [d.metadata["id"] for d in BM25Retriever.load(tmp_path / "idx").invoke("cats purr")] == ["c"]


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        from kard_chain.retrievers.hybrid import HybridRetriever

        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        passages = [Passage(id=f"p{i}", text=t) for i, t in enumerate(TEXTS)]
        bm25 = BM25Retriever(index=BM25Index.from_passages(passages), k=4)
        okapi = BM25Retriever(index=BM25Index.from_passages(passages, params=BM25Params(method="okapi", k1=0.9)), k=4)
        return {"retrievers": [bm25, okapi], "k": 4, "candidates": 6}

    @property
    def retriever_query_example(self) -> str:
        return "milk of goats, penguins and copper"


def test_hybrid_fuses_ranks_as_reciprocal_rank_fusion_says():
    from kard_chain.retrievers.hybrid import HybridRetriever

    class Fixed(BaseRetriever):
        ids: list[str]

        def _get_relevant_documents(self, query, *, run_manager, k=None):
            return [Document(page_content=f"text {i}", metadata={"id": i}) for i in self.ids[:k]]

    hybrid = HybridRetriever(retrievers=[Fixed(ids=["a", "b", "c"]), Fixed(ids=["c", "d", "a"])], weights=[1.0, 2.0], rrf_k=10, k=4)
    docs = hybrid.invoke("q")
    expected = {"a": 1 / 11 + 2 / 13, "b": 1 / 12, "c": 1 / 13 + 2 / 11, "d": 2 / 12}
    assert [d.metadata["id"] for d in docs] == sorted(expected, key=lambda i: -expected[i])
    assert [d.metadata["score"] for d in docs] == pytest.approx(sorted(expected.values(), reverse=True))
    assert docs[0].metadata["ranks"] == {0: 3, 1: 1}
    with pytest.raises(ValueError, match="2 weights for 1"):
        HybridRetriever(retrievers=[Fixed(ids=[])], weights=[1.0, 2.0])
