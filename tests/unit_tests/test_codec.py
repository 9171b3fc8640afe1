"""Residual compression of passage vectors: the codec's reconstruction, and compressed vectors ranking like stored ones."""

import numpy as np
import pytest

from kard_chain.reranker.codec import ResidualCodec, default_centroids


def clustered(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(clusters, size=n)] + 0.4 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_reconstruction_improves_with_bits_and_stays_unit_length():
    x = clustered(3000, 32, 12)
    cosines = []
    for nbits in (1, 2, 4, 8):
        codec = ResidualCodec.fit(x, nbits=nbits, n_centroids=16)
        codes, packed = codec.encode(x)
        assert codes.dtype == np.uint16 and packed.shape == (3000, 32 * nbits // 8) and packed.dtype == np.uint8
        approx = codec.decode(codes, packed)
        assert np.allclose(np.linalg.norm(approx, axis=1), 1, atol=1e-5)
        cosines.append(float((approx * x).sum(1).mean()))
    assert cosines == sorted(cosines) and cosines[1] > 0.9 and cosines[3] > 0.999, cosines
    centroid_only = codec.centroids[codes]
    assert cosines[1] > float((centroid_only * x).sum(1).mean()) + 0.05  # the residual carries information


def test_codec_checks_its_settings():
    with pytest.raises(ValueError, match="nbits must be"):
        ResidualCodec(np.ones((2, 8)), [0.0], [0.0, 1.0], nbits=3)
    with pytest.raises(ValueError, match="non-empty"):
        ResidualCodec.fit(np.zeros((0, 8)))
    assert default_centroids(1) == 16 and default_centroids(970_000) == 8192 and default_centroids(10**12) == 65536


def test_fit_draws_its_defaults_from_the_data_and_holds_what_a_saved_codec_holds():
    x = clustered(1300, 16, 6, seed=3)
    codec = ResidualCodec.fit(x, nbits=2)
    k = default_centroids(1300)  # 16 * sqrt(1300) = 577 -> 512, then at most 64 tokens per centroid sampled
    assert k == 512 and len(codec.centroids) == 512
    assert all(a.dtype == np.float32 for a in (codec.centroids, codec.cutoffs, codec.weights))
    assert np.array_equal(codec.centroids, codec.centroids.astype(np.float16).astype(np.float32))  # fp16, as saved
    assert np.allclose(np.linalg.norm(codec.centroids, axis=1), 1, atol=1e-3)
    same = ResidualCodec.fit(x, nbits=2, n_centroids=k, sample=64 * k, iterations=8, seed=0)
    assert np.array_equal(codec.centroids, same.centroids) and np.array_equal(codec.cutoffs, same.cutoffs)  # the defaults
    other = ResidualCodec.fit(x, nbits=2, seed=1)
    assert not np.array_equal(codec.centroids, other.centroids)
    spread = np.random.default_rng(0).normal(size=(3000, 32)).astype(np.float32)  # no clusters: k-means still moving
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    eight = ResidualCodec.fit(spread, n_centroids=16).centroids  # 8 iterations by default
    assert np.array_equal(eight, ResidualCodec.fit(spread, n_centroids=16, iterations=8).centroids)
    assert not np.array_equal(eight, ResidualCodec.fit(spread, n_centroids=16, iterations=9).centroids)
    # the cut-offs split the fitted residuals into equal buckets, each value inside its own bucket
    levels = 4
    assert codec.cutoffs.shape == (levels - 1,) and codec.weights.shape == (levels,)
    assert np.all(codec.weights[:-1] <= codec.cutoffs) and np.all(codec.cutoffs <= codec.weights[1:])
    assert default_centroids(0) == 1 and default_centroids(100) == 128


def test_fit_survives_empty_clusters_and_zero_vectors():
    """Duplicated tokens leave clusters empty (they restart on a token); a zero vector stays zero, not NaN."""
    x = np.repeat(np.eye(4, dtype=np.float32)[:2], 50, axis=0)  # 100 tokens, two distinct
    codec = ResidualCodec.fit(x, nbits=2, n_centroids=6)
    assert np.isfinite(codec.centroids).all() and len(codec.centroids) == 6
    codes, packed = codec.encode(x)
    assert np.allclose(codec.decode(codes, packed) @ np.eye(4, dtype=np.float32)[:2].T, np.repeat(np.eye(2), 50, axis=0), atol=0.05)
    from kard_chain.reranker.codec import _unit

    assert np.array_equal(_unit(np.zeros((2, 3), dtype=np.float32)), np.zeros((2, 3), dtype=np.float32))


def test_a_codec_built_from_lists_or_float64_holds_float32():
    codec = ResidualCodec(np.eye(8)[:2], [0.0], [-0.5, 0.5], nbits=1)
    assert all(a.dtype == np.float32 for a in (codec.centroids, codec.cutoffs, codec.weights))
    with pytest.raises(ValueError, match="dim 3 times nbits 2 is not a whole number of bytes"):
        ResidualCodec(np.ones((2, 3)), [0.0, 0.1, 0.2], [0.0, 0.1, 0.2, 0.3], nbits=2)


def maxsim(query: np.ndarray, tokens: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(tokens @ query.T, starts, axis=0).sum(axis=1)


def test_compressed_vectors_rank_like_stored_ones(tmp_path):
    """Passages of 12 words out of 300, each token its word's vector plus context noise (token vectors cluster by
    word, as an encoder's do); a query holds 4 words of one passage. The 2-bit copy ranks as the stored one."""
    from kard_chain.reranker.vectors import PassageVectors

    rng = np.random.default_rng(1)
    words = clustered(300, 32, 300, seed=2)  # 300 unrelated directions
    passages = [rng.choice(300, size=12, replace=False) for _ in range(200)]

    def tokens(ids):
        x = words[ids] + 0.08 * rng.normal(size=(len(ids), 32))  # cosine about 0.9 to the word
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    vectors = np.concatenate([tokens(p) for p in passages]).astype(np.float16)
    offsets = np.arange(0, 12 * 201, 12, dtype=np.int64)
    stored = PassageVectors(vectors, offsets, [f"p{i}" for i in range(200)], {"dim": 32})
    small = stored.compress(tmp_path / "2bit", show_progress=False)  # 2 bits, ColBERTv2's number of centroids
    _, codes, residuals = small.compressed
    assert codes.nbytes + residuals.nbytes == 10 * len(codes)  # 2 bytes of centroid id and 8 of residual, against 64 in fp16
    reloaded = PassageVectors.load(tmp_path / "2bit")
    assert all(np.array_equal(a, b) for a, b in zip(small.gather(stored.ids[5:25]), reloaded.gather(stored.ids[5:25])))
    with pytest.raises(ValueError, match="compressed already"):
        small.compress(tmp_path / "again")

    exact, approx = stored.gather(stored.ids), small.gather(stored.ids)
    top1, agreement = 0, []
    for i in range(0, 200, 5):
        query = tokens(rng.choice(passages[i], size=4, replace=False))
        a, b = maxsim(query, *exact), maxsim(query, *approx)
        top1 += int(a.argmax() == b.argmax() == i)
        agreement.append(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])  # Spearman
    assert top1 >= 38 and min(agreement) > 0.9, (top1, agreement)


def test_nearest_centroids_are_found_across_chunks(monkeypatch):
    """Rows are matched to centroids in chunks (memory only): with a chunk of 4, every one of 21 rows still gets its
    brute-force nearest centroid."""
    from kard_chain.reranker import codec

    x, centroids = clustered(21, 8, 3), clustered(5, 8, 5, seed=1)
    monkeypatch.setattr(codec, "_CHUNK", 4)
    assert codec._nearest(x, centroids).tolist() == (x @ centroids.T).argmax(axis=1).tolist()
