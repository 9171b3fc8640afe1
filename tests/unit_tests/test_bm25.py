"""The fast BM25 backend against rank_bm25's BM25Okapi (the reference) and a brute-force Lucene."""

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from kard_chain import BM25Index, BM25Params, BM25Tokenizer, KardDataError, Passage, build_index
from kard_chain.bm25 import kernels as bm25_kernels
from kard_chain.bm25 import pruning
from kard_chain.bm25.segments import POSTING_BYTES, SegmentSpill, budget_sizes

TOKENIZER = BM25Tokenizer(pattern=r"\S+", stopwords=None)


def make_corpus(seed=0, n_docs=300, vocab=400):
    """Zipf-distributed words, so the commonest terms sit in more than half the passages."""
    rng = np.random.default_rng(seed)
    probs = 1.0 / np.arange(1, vocab + 1) ** 1.1
    probs /= probs.sum()
    docs = [" ".join(f"w{t}" for t in rng.choice(vocab, size=rng.integers(5, 40), p=probs)) for _ in range(n_docs)]
    queries = [" ".join(f"w{t}" for t in rng.choice(vocab, size=rng.integers(1, 12), p=probs)) for _ in range(40)]
    queries += ["w0 w0 w1", "w399 unknownword", "nothing matches"]
    return docs, queries


@pytest.fixture(params=["numba", "numpy"])
def kernel(request, monkeypatch):
    if request.param == "numba" and not bm25_kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    monkeypatch.setattr(bm25_kernels, "HAVE_NUMBA", request.param == "numba")
    return request.param


def index_of(docs, **params):
    passages = [Passage(id=f"d{i}", text=t) for i, t in enumerate(docs)]
    return BM25Index.from_passages(passages, tokenizer=TOKENIZER, params=BM25Params(**{"method": "okapi", **params}))


def check_top_k(rows, scores, ref_scores, matched, k):
    """Our top-k equals the reference's best k among non-zero scores (ties may swap rows)."""
    n = min(k, len(matched))
    assert (rows[n:] == -1).all()
    expected = np.sort(ref_scores[matched])[::-1][:n]
    np.testing.assert_allclose(scores[:n], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ref_scores[rows[:n]], scores[:n], atol=1e-5, rtol=0)
    if n:
        assert set(matched[ref_scores[matched] > expected[-1] + 1e-5]) <= set(rows[:n].tolist())


@pytest.mark.parametrize("params", [{}, {"k1": 0.9, "b": 0.4, "epsilon": 0.5}])
def test_fast_backend_reproduces_rank_bm25(kernel, params):
    docs, queries = make_corpus()
    index = index_of(docs, **params)
    ref = BM25Okapi([TOKENIZER(d) for d in docs], **params)
    assert min(ref.idf.values()) > 0 and any(ref.idf[w] == ref.average_idf * ref.epsilon for w in ("w0", "w1")), (
        "the corpus must exercise the negative-idf floor"
    )
    k = 10
    rows, scores = index.top_k(queries, k)
    for q, r, s in zip(queries, rows, scores):
        ref_scores = ref.get_scores(TOKENIZER(q))
        check_top_k(r, s, ref_scores, np.flatnonzero(ref_scores), k)
    # score() of arbitrary passages, matched or not
    ids = [f"d{i}" for i in range(0, len(docs), 7)]
    for q in queries:
        expected = ref.get_batch_scores(TOKENIZER(q), [int(i[1:]) for i in ids])
        np.testing.assert_allclose(index.score(q, ids), expected, atol=1e-5, rtol=0)


def test_rank_bm25_backend_agrees_with_fast(kernel):
    docs, queries = make_corpus(seed=1)
    index = index_of(docs)
    rows_fast, scores_fast = index.top_k(queries, 8)
    rows_ref, scores_ref = index.top_k(queries, 8, backend="rank_bm25")
    np.testing.assert_allclose(scores_fast, scores_ref, atol=1e-5, rtol=0)
    assert (rows_fast == rows_ref).mean() > 0.95  # only exact ties may order differently
    assert index.score("w0 w5", ["d3", "d4"], backend="rank_bm25") == pytest.approx(index.score("w0 w5", ["d3", "d4"]), abs=1e-5)
    assert index.score("w0 w5", [], backend="rank_bm25") == [] == index.score("w0 w5", [])
    with pytest.raises(ValueError, match="unknown backend 'bogus'; use 'fast' or 'rank_bm25'"):
        index.top_k(queries, 8, backend="bogus")


def test_lucene_variant_matches_brute_force(kernel):
    docs, queries = make_corpus(seed=2)
    k1, b = 1.2, 0.75
    index = index_of(docs, method="lucene", k1=k1, b=b)
    toks = [TOKENIZER(d) for d in docs]
    n, avgdl = len(toks), np.mean([len(t) for t in toks])

    def brute(q):
        out = np.zeros(n)
        for term in TOKENIZER(q):
            df = sum(term in t for t in toks)
            if not df:
                continue
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            for i, t in enumerate(toks):
                tf = t.count(term)
                out[i] += idf * tf / (tf + k1 * (1 - b + b * len(t) / avgdl))
        return out

    rows, scores = index.top_k(queries[:15], 10)
    for q, r, s in zip(queries[:15], rows, scores):
        ref = brute(q)
        check_top_k(r, s, ref, np.flatnonzero(ref), 10)
    with pytest.raises(ValueError, match="supports method='okapi' only"):
        index.top_k(["w1"], 3, backend="rank_bm25")


def test_save_load_round_trip(tmp_path, kernel):
    docs, queries = make_corpus(seed=3)
    index = index_of(docs, method="lucene")
    index.save(tmp_path / "idx")
    for mmap in (True, False):
        again = BM25Index.load(tmp_path / "idx", mmap=mmap)
        assert again.params == index.params and again.tokenizer == index.tokenizer
        for a, b in zip(index.top_k(queries, 5), again.top_k(queries, 5)):
            np.testing.assert_array_equal(a, b)
        assert again.passages.get(17) == index.passages.get(17)
    with pytest.raises(FileExistsError):
        index.save(tmp_path / "idx")
    index.save(tmp_path / "idx", overwrite=True)


def test_streamed_build_and_interrupted_build(tmp_path):
    docs, queries = make_corpus(seed=4)

    def stream(fail_at=None):
        for i, text in enumerate(docs):
            if i == fail_at:
                raise KeyboardInterrupt
            yield Passage(id=f"d{i}", title=f"T{i}", text=text)

    with pytest.raises(KeyboardInterrupt):
        build_index(stream(fail_at=150), tmp_path / "idx", tokenizer=TOKENIZER, show_progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temporary left
    index = build_index(stream(), tmp_path / "idx", tokenizer=TOKENIZER, show_progress=False)
    memory = BM25Index.from_passages(stream(), tokenizer=TOKENIZER)
    assert type(index.passages).__name__ == "DiskPassageStore"
    for a, b in zip(index.top_k(queries, 5), memory.top_k(queries, 5)):
        np.testing.assert_array_equal(a, b)
    assert index.passages.get(5).title == "T5"


@pytest.mark.parametrize("method", ["lucene", "okapi"])
def test_segment_built_index_equals_the_in_memory_one(tmp_path, method):
    """A memory budget small enough for dozens of segments and merge blocks (and a vocabulary
    that grows between segments) gives the in-memory index's arrays, bit for bit."""
    docs, queries = make_corpus(seed=6, n_docs=400)
    passages = [Passage(id=f"d{i}", text=t) for i, t in enumerate(docs)]
    params = BM25Params(method=method)
    postings, chunk_docs = budget_sizes(400 * POSTING_BYTES * 2 / 2**30)
    assert postings == 400 and chunk_docs == 3
    spilled = []
    original_flush = SegmentSpill.flush

    def counting_flush(self):
        original_flush(self)
        spilled.append(self.n_terms[-1] if self.n_terms else 0)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(SegmentSpill, "flush", counting_flush)
        built = build_index(passages, tmp_path / "idx", tokenizer=TOKENIZER, params=params, show_progress=False,
                            memory_gib=400 * POSTING_BYTES * 2 / 2**30)
    assert len(set(spilled)) > 10  # many segments, each knowing more terms than the last
    memory = BM25Index.from_passages(passages, tokenizer=TOKENIZER, params=params)
    assert built.vocab == memory.vocab and built.passage_ids == memory.passage_ids
    for a, b in zip(built._arrays().values(), memory._arrays().values()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    if bm25_kernels.HAVE_NUMBA:  # block maxima gathered merge block by merge block equal those of the whole postings
        whole = pruning.BlockMax.build(memory.indptr, memory.docs, memory.weights, bits=2)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(pruning, "DEFAULT_BITS", 2)
            rebuilt = build_index(passages, tmp_path / "idx2", tokenizer=TOKENIZER, params=params, show_progress=False,
                                  memory_gib=400 * POSTING_BYTES * 2 / 2**30)
        assert len(whole.ranges) > 100
        for name, a in whole.arrays().items():
            np.testing.assert_array_equal(rebuilt.blocks.arrays()[name], a)
    for a, b in zip(built.top_k(queries, 7), memory.top_k(queries, 7)):
        np.testing.assert_array_equal(a, b)
    assert not any(p.is_dir() for p in (tmp_path / "idx").iterdir())  # scratch segments removed
    with pytest.raises(ValueError, match="memory_gib must be positive"):
        build_index(passages, tmp_path / "other", memory_gib=0)


def test_damaged_index_is_refused(tmp_path):
    docs, _ = make_corpus(seed=5)
    index_of(docs).save(tmp_path / "idx")
    np.save(tmp_path / "idx" / "weights.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(KardDataError, match=r"weights.npy: has 3 entries"):
        BM25Index.load(tmp_path / "idx")
    (tmp_path / "idx" / "index.json").unlink()
    with pytest.raises(KardDataError, match="index.json missing"):
        BM25Index.load(tmp_path / "idx")


def test_bad_corpora():
    with pytest.raises(KardDataError, match="holds no passages"):
        BM25Index.from_passages([])
    with pytest.raises(KardDataError, match=r"duplicate passage id 'a' \(passages #0 and #2\)"):
        BM25Index.from_passages([Passage(id="a", text="x"), Passage(id="b", text="y"), Passage(id="a", text="z")])
    with pytest.raises(KardDataError, match="^no passage has any indexable token$"):
        BM25Index.from_passages([Passage(id="a", text="the of and")])
    index = index_of(["a b", "b c"])
    with pytest.raises(KeyError, match="'zz' is not in the index"):
        index.score("a", ["zz"])
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.top_k(["a"], 0)


def test_title_is_indexed_unless_disabled():
    passages = [Passage(id="g", title="Goat", text="It produces milk."), Passage(id="c", title="Cat", text="It purrs.")]
    passages.append(Passage(id="d", title="Dog", text="It barks."))
    assert BM25Index.from_passages(passages).top_k(["goat"], 1)[0][0, 0] == 0
    assert BM25Index.from_passages(passages, params=BM25Params(include_title=False)).top_k(["goat"], 1)[0][0, 0] == -1


@pytest.mark.skipif(not bm25_kernels.HAVE_NUMBA, reason="numba not installed")
def test_kernels_agree_on_ties():
    """Many equal scores: both kernels must order by score, then row, and cut at k identically."""
    docs = [f"w{i % 3} w{i % 5}" for i in range(200)]
    index = index_of(docs)
    q = index.encode_queries(["w0 w1 w2 w3", "w4", "w0 w0 w2", "none"])
    postings = (index.indptr, index.docs, index.weights)
    numba_rows, numba_scores = bm25_kernels._empty_result(len(q[0]) - 1, 17)
    bm25_kernels.NumbaTopK(*postings, index.n_docs)(*q, 17, numba_rows, numba_scores)
    numpy_rows, numpy_scores = bm25_kernels.top_k_numpy(*q, *postings, index.n_docs, 17)
    np.testing.assert_array_equal(numba_rows, numpy_rows)
    np.testing.assert_allclose(numba_scores, numpy_scores, atol=1e-5)
    assert (numba_rows[3] == -1).all()


def test_a_term_in_exactly_half_the_passages_keeps_its_zero_idf():
    docs = ["apple pear", "apple fig", "kiwi plum", "lime date"]  # okapi: idf(apple) = log(2.5) - log(2.5) = 0
    index = index_of(docs, epsilon=0.5)
    expected = BM25Okapi([d.split() for d in docs], epsilon=0.5).get_scores(["apple"])
    assert index.score("apple", ["d0", "d1", "d2"]) == pytest.approx(list(expected[:3]), abs=1e-9) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("repeats", "dtype"), [(40, np.uint16), (2**16 - 1, np.uint16), (2**16, np.int32)])
def test_term_counts_are_stored_compactly_without_overflow(repeats, dtype):
    docs = [" ".join(["w"] * repeats + ["x"]), "x y", "y z"]
    index = index_of(docs)
    assert index.tf.dtype == dtype and int(np.asarray(index.tf).max()) == repeats
    assert index.weights.dtype == np.float32 and index.docs.dtype == np.int32 and index.indptr.dtype == np.int64
    expected = BM25Okapi([d.split() for d in docs]).get_scores(["w"])
    np.testing.assert_allclose(index.score("w", ["d0", "d1"]), expected[:2], rtol=1e-6)


def test_a_corpus_without_any_indexable_token_is_refused():
    with pytest.raises(KardDataError, match="^no passage has any indexable token$"):
        BM25Index.from_passages([Passage(id="a", text="the a of")], params=BM25Params(method="okapi"))


def test_an_append_past_its_memory_budget_rebuilds_within_it_and_scores_as_a_full_build(tmp_path):
    from kard_chain.bm25.index import append_to_index
    from kard_chain.retrievers.bm25 import BM25Retriever

    docs, queries = make_corpus(seed=8, n_docs=300)
    first = [Passage(id=f"d{i}", text=t) for i, t in enumerate(docs[:200])]
    more = [Passage(id=f"d{i}", text=t) for i, t in enumerate(docs[200:], start=200)]
    BM25Retriever.build(first, tmp_path / "idx", k=7, show_progress=False, tokenizer=TOKENIZER)
    grown = append_to_index(tmp_path / "idx", more, show_progress=False, memory_gib=1e-6)  # past the budget: rebuilt
    whole = BM25Index.from_passages(first + more, tokenizer=TOKENIZER)
    for a, b in zip(grown.top_k(queries, 5), whole.top_k(queries, 5)):
        np.testing.assert_array_equal(a, b)
    assert BM25Retriever.load(tmp_path / "idx").k == 7  # the retriever's settings came along
    assert grown.n_docs == 300 and type(grown.passages).__name__ == "DiskPassageStore"


def test_a_term_counted_past_uint16_in_an_early_segment_keeps_its_count(tmp_path):
    """max_tf over every segment, not the last one's: a term counted 70,000 times in the first segment overflows a
    uint16 term-frequency array and its score falls with it."""
    loud = Passage(id="loud", text=" ".join(["echo"] * 70_000))
    quiet = [Passage(id=f"q{i}", text=f"echo once w{i} w{i + 1} w{i + 2}") for i in range(60)]
    budget = 40 * POSTING_BYTES * 2 / 2**30  # a few passages per segment: the loud one spills alone, first
    built = build_index([loud, *quiet], tmp_path / "idx", tokenizer=TOKENIZER, show_progress=False, memory_gib=budget)
    memory = BM25Index.from_passages([loud, *quiet], tokenizer=TOKENIZER)
    assert built.tf.max() == 70_000 == memory.tf.max()
    assert built.score("echo", ["loud", "q3"]) == pytest.approx(memory.score("echo", ["loud", "q3"]))
