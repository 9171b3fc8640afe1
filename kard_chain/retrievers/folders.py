"""Knowledge-base folders on disk: a BM25 index or a Chroma store, opened by what the folder holds.

    build_chroma_folder(passages, "chroma/", dim=256)       # a Chroma store and its embedding's settings
    open_retriever("chroma/", k=5)                          # ChromaRetriever (it has kard_chroma.json)
    open_retriever("index/", k=5)                           # BM25Retriever
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kard_chain.io import atomic_write_text
from kard_chain.records import Passage

CHROMA_CONFIG = "kard_chroma.json"
"""The embedding settings kept beside a Chroma store, so it reopens with the same embedding."""


def build_chroma_folder(passages: Iterable[Passage], path: str | Path, *, dim: int = 256, show_progress: bool = True) -> Any:
    """Add ``passages`` to the Chroma store at ``path`` (hashing embedding of size ``dim``) and return it."""
    from kard_chain.embeddings import HashingEmbeddings
    from kard_chain.retrievers.chroma import ChromaRetriever

    store = ChromaRetriever.open(path, embeddings=HashingEmbeddings(size=dim))
    store.add_passages(passages, show_progress=show_progress)
    atomic_write_text(Path(path) / CHROMA_CONFIG, json.dumps({"embeddings": "hashing", "size": dim}))
    return store


def open_retriever(path: str | Path, k: int = 4, backend: str = "fast") -> Any:
    """The retriever over a folder made by ``kard index``: Chroma where it has our config, else BM25."""
    config_file = Path(path) / CHROMA_CONFIG
    if config_file.is_file():
        from kard_chain.embeddings import HashingEmbeddings
        from kard_chain.retrievers.chroma import ChromaRetriever

        config = json.loads(config_file.read_text())
        return ChromaRetriever.open(path, embeddings=HashingEmbeddings(size=config["size"]), k=k)
    from kard_chain.retrievers.bm25 import BM25Retriever

    return BM25Retriever.load(path, k=k, backend=backend)
