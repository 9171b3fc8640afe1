"""``HashingEmbeddings``: a small deterministic embedding that needs no model download.

Feature hashing of word unigrams and bigrams into ``size`` signed buckets, L2-normalised.
It makes tests and offline demos of the dense (Chroma) path possible; for real retrieval
pass any LangChain ``Embeddings`` instead.
"""

from __future__ import annotations

import hashlib

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field

from kard_chain.bm25.tokenizer import BM25Tokenizer


class HashingEmbeddings(BaseModel, Embeddings):
    """Deterministic bag-of-words embeddings: the same text gives the same vector in any process."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(default=256, ge=8)
    """Embedding dimension."""
    tokenizer: BM25Tokenizer = Field(default_factory=BM25Tokenizer)
    """Word tokenizer applied before hashing."""

    def _embed(self, text: str) -> list[float]:
        tokens = self.tokenizer(text)
        vec = np.zeros(self.size)
        for feature in tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]:
            h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
            vec[h % self.size] += 1.0 if (h >> 63) & 1 else -1.0
        norm = np.linalg.norm(vec)
        return (vec / norm if norm else vec).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages."""
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed a query."""
        return self._embed(text)
