"""Residual compression of late-interaction token vectors (the ColBERTv2 scheme).

Each unit-length token vector is stored as the id of its nearest centroid (spherical k-means over
a sample of the tokens) and its residual, every dimension quantised to ``nbits`` by buckets shared
across dimensions (cut at the residuals' quantiles; each bucket decodes to its median). With 2 bits
and dim 128 a token takes 2 bytes of centroid id and 32 of residual, instead of 256 in fp16::

    codec = ResidualCodec.fit(token_vectors, nbits=2)
    codes, residuals = codec.encode(token_vectors)
    approx = codec.decode(codes, residuals)    # unit-length float32, as the encoder wrote them
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK = 65_536
"""Tokens per matrix product when assigning centroids (bounds the ``[chunk, centroids]`` scores)."""


def default_centroids(n_tokens: int) -> int:
    """ColBERTv2's choice: the power of two at or below ``16 * sqrt(tokens)``, between 1 and 65,536."""
    return int(min(2 ** 16, max(1, 2 ** math.floor(math.log2(max(16 * math.sqrt(n_tokens), 1))))))


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The index of each row's nearest centroid by dot product (rows and centroids are unit length)."""
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), _CHUNK):
        out[start : start + _CHUNK] = (x[start : start + _CHUNK] @ centroids.T).argmax(axis=1)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


class ResidualCodec:
    """Centroids plus ``nbits`` per residual dimension; see the module docstring."""

    def __init__(self, centroids: np.ndarray, cutoffs: np.ndarray, weights: np.ndarray, nbits: int) -> None:
        if nbits not in (1, 2, 4, 8):
            raise ValueError(f"nbits must be 1, 2, 4 or 8, not {nbits}")
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.cutoffs, self.weights = np.asarray(cutoffs, dtype=np.float32), np.asarray(weights, dtype=np.float32)
        self.nbits = nbits
        if (self.centroids.shape[1] * nbits) % 8:
            raise ValueError(f"dim {self.centroids.shape[1]} times nbits {nbits} is not a whole number of bytes")

    @property
    def _shifts(self) -> np.ndarray:
        """Bit offsets of the buckets packed into one byte, shaped to broadcast over ``[tokens, bytes, buckets]``."""
        return (np.arange(8 // self.nbits, dtype=np.uint8) * self.nbits)[None, None, :]

    @property
    def code_dtype(self) -> type:
        return np.uint16 if len(self.centroids) <= 2**16 else np.uint32

    @classmethod
    def fit(cls, vectors: np.ndarray, *, nbits: int = 2, n_centroids: int | None = None, sample: int | None = None,
            iterations: int = 8, seed: int = 0) -> ResidualCodec:
        """Spherical k-means on a sample of ``vectors`` (at most ``sample`` rows, default 64 per centroid),
        then the bucket cut-offs and values from the sample's residuals."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or not len(x):
            raise ValueError("fit needs a non-empty [tokens, dim] array")
        rng = np.random.default_rng(seed)
        k = min(n_centroids or default_centroids(len(x)), len(x))
        take = min(len(x), sample or 64 * k)
        x = x[rng.choice(len(x), size=take, replace=False)] if take < len(x) else x
        centroids = x[rng.choice(len(x), size=k, replace=False)].copy()
        for _ in range(iterations):
            assigned = _nearest(x, centroids)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assigned, x)
            empty = np.bincount(assigned, minlength=k) == 0
            sums[empty] = x[rng.choice(len(x), size=int(empty.sum()))]  # an empty cluster restarts on a random token
            centroids = _unit(sums)
        centroids = centroids.astype(np.float16).astype(np.float32)  # what a saved codec holds
        residuals = (x - centroids[_nearest(x, centroids)]).ravel()
        levels = 2**nbits
        cutoffs = np.quantile(residuals, np.arange(1, levels) / levels)
        weights = np.quantile(residuals, (np.arange(levels) + 0.5) / levels)
        return cls(centroids, cutoffs, weights, nbits)

    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centroid ids ``[tokens]`` and packed residual buckets ``[tokens, dim * nbits / 8]`` (uint8)."""
        x = np.asarray(vectors, dtype=np.float32)
        codes = _nearest(x, self.centroids)
        buckets = np.searchsorted(self.cutoffs, x - self.centroids[codes]).astype(np.uint8)
        grouped = buckets.reshape(len(x), -1, 8 // self.nbits)
        packed = np.bitwise_or.reduce(grouped << self._shifts, axis=2).astype(np.uint8)
        return codes.astype(self.code_dtype), packed

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """Unit-length float32 vectors ``[tokens, dim]`` from ``encode``'s output."""
        buckets = (np.asarray(packed)[:, :, None] >> self._shifts) & (2**self.nbits - 1)
        x = self.centroids[np.asarray(codes, dtype=np.int64)] + self.weights[buckets.reshape(len(codes), -1)]
        return _unit(x)

    def state(self) -> dict:
        """The small part of the codec, for ``meta.json`` (the centroids are saved as an array)."""
        return {"nbits": self.nbits, "cutoffs": self.cutoffs.tolist(), "weights": self.weights.tolist()}
