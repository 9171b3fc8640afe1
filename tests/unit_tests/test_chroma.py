import numpy as np
import pytest

from kard_chain import ChromaRetriever, HashingEmbeddings, Passage

pytest.importorskip("chromadb")

TEXTS = [f"passage {i} about {topic}" for i, topic in enumerate(
    ["goat milk cheese", "penguin birds ice", "copper wire metal", "bronze alloy tin", "tea leaves china",
     "coffee caffeine beans", "volcano lava ash", "whale krill ocean", "piano keys music", "moon orbit earth"] * 3)]
PASSAGES = [Passage(id=f"p{i}", title=f"T{i}", text=t, metadata={"i": i}) for i, t in enumerate(TEXTS)]


def test_hashing_embeddings_are_deterministic_and_normalised():
    e = HashingEmbeddings(size=64)
    a, b = e.embed_query("goat milk"), HashingEmbeddings(size=64).embed_documents(["goat milk"])[0]
    assert a == b and abs(np.linalg.norm(a) - 1) < 1e-9
    assert e.embed_query("goat milk") != e.embed_query("copper wire")


def test_dense_retrieval_equals_brute_force_and_resumes(tmp_path):
    emb = HashingEmbeddings(size=128)
    store = ChromaRetriever.from_passages(PASSAGES[:20], emb, path=tmp_path / "chroma", k=5)
    assert store.add_passages(PASSAGES) == 10  # the first 20 are already stored
    reopened = ChromaRetriever.open(tmp_path / "chroma", embeddings=emb, k=5)
    assert reopened.collection.count() == 30
    matrix = np.array(emb.embed_documents(TEXTS))
    for query in ["goat cheese", "metal wire", "ocean whale krill"]:
        sims = matrix @ np.array(emb.embed_query(query))
        docs = reopened.invoke(query)
        got = [d.metadata["score"] for d in docs]
        np.testing.assert_allclose(got, np.sort(sims)[::-1][:5], atol=1e-4)
        for d in docs:
            assert sims[int(d.metadata["id"][1:])] == pytest.approx(d.metadata["score"], abs=1e-4)
            assert d.metadata["title"] == f"T{d.metadata['i']}"
    assert len(reopened.invoke("tea", k=2)) == 2
