"""Pruned top-k (block-max ranges, MaxScore inside a range) against exhaustive scoring: equal rows and scores."""

import numpy as np
import pytest

from kard_chain import BM25Index, BM25Params, BM25Tokenizer, Passage, build_index
from kard_chain.bm25 import index as bm25_index
from kard_chain.bm25 import kernels as bm25_kernels
from kard_chain.bm25 import pruning

pytestmark = pytest.mark.skipif(not bm25_kernels.HAVE_NUMBA, reason="pruning needs numba")

TOKENIZER = BM25Tokenizer(pattern=r"\S+", stopwords=None)


def random_corpus(seed: int):
    """Zipf words, a share of passages repeated word for word (equal scores), queries of one to forty terms,
    repeated terms and terms that no passage holds."""
    rng = np.random.default_rng(seed)
    vocab = int(rng.integers(20, 600))
    probs = 1.0 / np.arange(1, vocab + 1) ** rng.uniform(0.8, 1.3)
    probs /= probs.sum()
    n_docs = int(rng.integers(30, 1500))
    docs = [" ".join(f"w{t}" for t in rng.choice(vocab, size=rng.integers(1, 50), p=probs)) for _ in range(n_docs)]
    for i in rng.choice(n_docs, size=n_docs // 5):
        docs[i] = docs[int(rng.integers(n_docs))]
    queries = [" ".join(f"w{t}" for t in rng.choice(vocab, size=rng.integers(1, 41), p=probs)) for _ in range(30)]
    queries += [f"w{int(rng.integers(vocab))}" for _ in range(5)]  # one term
    queries += ["w0 w0 w0 w1", f"w{vocab - 1} absent", "absent", "", f"w{vocab + 5}"]
    passages = [Passage(id=f"d{i}", text=t) for i, t in enumerate(docs)]
    return BM25Index.from_passages(passages, tokenizer=TOKENIZER, params=BM25Params(k1=float(rng.uniform(0.5, 2)))), queries


def exhaustive(index: BM25Index, queries, k):
    return index.top_k(queries, k, prune=False, threads=1)


def pruned(index: BM25Index, queries, k, bits):
    kernel = pruning.PrunedTopK(index.indptr, index.docs, index.weights, index.n_docs,
                                pruning.BlockMax.build(index.indptr, index.docs, index.weights, bits))
    rows, scores = bm25_kernels._empty_result(len(queries), k)
    work = np.zeros((len(queries), 2), dtype=np.int64)
    kernel(*index.encode_queries(queries), k, rows, scores, work)
    return rows, scores, work


@pytest.mark.parametrize("seed", range(12))
def test_pruned_top_k_equals_exhaustive_top_k(seed):
    index, queries = random_corpus(seed)
    for bits in (0, 2, 5, 12):
        for k in (1, 3, 10, 100, index.n_docs + 7):
            rows, scores, _ = pruned(index, queries, k, bits)
            ref_rows, ref_scores = exhaustive(index, queries, k)
            np.testing.assert_array_equal(rows, ref_rows, err_msg=f"bits={bits} k={k}")
            np.testing.assert_array_equal(scores, ref_scores, err_msg=f"bits={bits} k={k}")  # bit for bit, nan padding too


def test_pruning_skips_ranges_and_postings():
    """One rare term in three passages, common ones everywhere: the top 3 are found in the three ranges that hold
    the rare term, and no other range is read."""
    rng = np.random.default_rng(0)
    docs = [" ".join(f"c{t}" for t in rng.integers(0, 5, size=20)) for _ in range(4096)]
    for i in (7, 1500, 4000):
        docs[i] += " rare"
    index = BM25Index.from_passages([Passage(id=f"d{i}", text=t) for i, t in enumerate(docs)], tokenizer=TOKENIZER)
    query = ["rare c0 c1 c2 c3 c4"]
    rows, scores, work = pruned(index, query, 3, bits=6)
    ref_rows, ref_scores = exhaustive(index, query, 3)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(scores, ref_scores)
    assert set(rows[0].tolist()) == {7, 1500, 4000}
    n_ranges, read = work[0]
    total = sum(len(index.docs[index.indptr[t]: index.indptr[t + 1]]) for t in index.encode_queries(query)[1])
    assert n_ranges == 3 and read < total / 10


def test_a_saved_index_keeps_its_block_maxima_and_prunes_as_exhaustive_in_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(pruning, "DEFAULT_BITS", 4)
    monkeypatch.setattr(bm25_index, "PRUNE_MIN_RANGES", 2)
    index, queries = random_corpus(3)
    passages = [index.passages.get(row) for row in range(index.n_docs)]
    built = build_index(passages, tmp_path / "idx", tokenizer=TOKENIZER, params=index.params, show_progress=False)
    fresh = pruning.BlockMax.build(index.indptr, index.docs, index.weights)
    assert built.blocks.bits == 4
    for name, a in fresh.arrays().items():
        np.testing.assert_array_equal(built.blocks.arrays()[name], a)
    ref = exhaustive(built, queries, 20)
    for threads in (1, 2, 3):
        rows, scores = built.top_k(queries, 20, prune=True, threads=threads)
        np.testing.assert_array_equal(rows, ref[0])
        np.testing.assert_array_equal(scores, ref[1])
    # by default short queries are pruned and long ones scored exhaustively, each answer in its place
    monkeypatch.setattr(bm25_index, "PRUNE_MAX_TERMS", 3)
    served = []
    real = built._pruned_top_k
    monkeypatch.setattr(built, "_pruned_top_k", lambda q_indptr, *a: served.append(len(q_indptr) - 1) or real(q_indptr, *a))
    rows, scores = built.top_k(queries, 20)
    np.testing.assert_array_equal(rows, ref[0])
    np.testing.assert_array_equal(scores, ref[1])
    n_short = int((np.diff(built.encode_queries(queries)[0]) <= 3).sum())
    assert 0 < n_short < len(queries) and sum(served) == n_short
    for max_terms, expected in ((1000, len(queries)), (-1, 0)):  # every query pruned, or none (not even empty ones)
        monkeypatch.setattr(bm25_index, "PRUNE_MAX_TERMS", max_terms)
        served.clear()
        for threads in (1, 2):
            rows, scores = built.top_k(queries, 20, threads=threads)
            np.testing.assert_array_equal(rows, ref[0])
            np.testing.assert_array_equal(scores, ref[1])
        assert sum(served) == 2 * expected
    # an index folder saved before block maxima existed builds them on first use
    for name in pruning.BlockMax.ARRAYS:
        (tmp_path / "idx" / f"blocks_{name}.npy").unlink()
    meta = (tmp_path / "idx" / "index.json").read_text().replace('"block_bits"', '"old_block_bits"')
    (tmp_path / "idx" / "index.json").write_text(meta)
    old = BM25Index.load(tmp_path / "idx")
    np.testing.assert_array_equal(old.top_k(queries, 20, prune=True)[0], ref[0])


def test_negative_weights_are_never_pruned():
    """okapi floors negative idf at epsilon x the mean idf, which is negative on a tiny corpus: such an index
    is scored exhaustively, and asking it to prune is refused."""
    docs = ["a b", "a c", "a d", "a b c"]
    index = BM25Index.from_passages([Passage(id=str(i), text=t) for i, t in enumerate(docs)], tokenizer=TOKENIZER,
                                    params=BM25Params(method="okapi"))
    assert index.weights.min() < 0
    assert not index.can_prune()
    with pytest.raises(ValueError, match="cannot be pruned"):
        index.top_k(["a"], 2, prune=True)
    rows, _ = index.top_k(["a"], 2)
    assert (rows[0] >= 0).all()


def test_pruning_without_numba_is_refused(monkeypatch):
    index, queries = random_corpus(1)
    monkeypatch.setattr(bm25_kernels, "HAVE_NUMBA", False)
    with pytest.raises(ValueError, match="numba missing"):
        index.top_k(queries, 5, prune=True)
    rows, scores = index.top_k(queries, 5)  # the scipy fallback, exhaustive
    monkeypatch.setattr(bm25_kernels, "HAVE_NUMBA", True)
    ref = index.top_k(queries, 5, prune=False)
    np.testing.assert_allclose(scores, ref[1], atol=1e-5)  # rows may swap where float32 sums tie differently
    assert ((rows >= 0) == (ref[0] >= 0)).all()
