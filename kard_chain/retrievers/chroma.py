"""``ChromaRetriever``: a persistent ChromaDB passage store with dense retrieval.

Local folder by default, a Chroma server when ``url`` is given. Embeddings come from any
LangChain ``Embeddings`` (never Chroma's default, which downloads a model)::

    from kard_chain import ChromaRetriever, HashingEmbeddings
    store = ChromaRetriever.from_passages(passages, HashingEmbeddings(), path="chroma/")
    store.invoke("goat milk", k=3)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict, Field

from kard_chain.errors import MissingExtraError
from kard_chain.progress import progress
from kard_chain.records import Passage
from kard_chain.retrievers.base import PerCallKRetriever

DEFAULT_COLLECTION = "kard-passages"


def open_collection(path: str | Path | None = None, *, url: str | None = None, name: str = DEFAULT_COLLECTION) -> Any:
    """Get or create a cosine-space Chroma collection in a local folder or on a server."""
    try:
        import chromadb
    except ImportError:
        raise MissingExtraError("chromadb", "chroma") from None
    settings = chromadb.Settings(anonymized_telemetry=False)
    if url is not None:
        u = urlparse(url)
        client = chromadb.HttpClient(host=u.hostname or "localhost", port=u.port or 8000, ssl=u.scheme == "https", settings=settings)
    elif path is not None:
        client = chromadb.PersistentClient(path=str(path), settings=settings)
    else:
        raise ValueError("give a local folder (path) or a Chroma server (url)")
    return client.get_or_create_collection(name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})


class ChromaRetriever(PerCallKRetriever):
    """Dense retrieval over a Chroma collection of passages.

    Documents carry ``metadata["id"]``, ``metadata["title"]`` and ``metadata["score"]``
    (cosine similarity).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    collection: Any = Field(repr=False)
    """The ``chromadb`` collection."""
    embeddings: Embeddings = Field(repr=False)
    """Embeds queries (and passages in :meth:`add_passages`)."""
    k: int = Field(default=4, ge=1)
    """Number of passages to return."""

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        embeddings: Embeddings,
        url: str | None = None,
        collection_name: str = DEFAULT_COLLECTION,
        k: int = 4,
    ) -> ChromaRetriever:
        """Open (or create) the collection at ``path`` or on the server at ``url``."""
        return cls(collection=open_collection(path, url=url, name=collection_name), embeddings=embeddings, k=k)

    @classmethod
    def from_passages(
        cls,
        passages: Iterable[Passage],
        embeddings: Embeddings,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        collection_name: str = DEFAULT_COLLECTION,
        k: int = 4,
        batch_size: int = 256,
        show_progress: bool = False,
    ) -> ChromaRetriever:
        """Open the collection and add the passages it does not hold yet."""
        retriever = cls.open(path, embeddings=embeddings, url=url, collection_name=collection_name, k=k)
        retriever.add_passages(passages, batch_size=batch_size, show_progress=show_progress)
        return retriever

    def add_passages(self, passages: Iterable[Passage], *, batch_size: int = 256, show_progress: bool = False) -> int:
        """Embed and add passages in batches, skipping ids already stored; returns how many were added.

        Each batch is committed as it completes, so an interrupted run resumes where it stopped.
        """
        added = 0
        bar = progress(desc="embedding", unit=" passages", disable=not show_progress)
        it = iter(passages)
        while batch := list(itertools.islice(it, batch_size)):
            present = set(self.collection.get(ids=[p.id for p in batch], include=[])["ids"])
            todo = [p for p in batch if p.id not in present]
            if todo:
                self.collection.add(
                    ids=[p.id for p in todo],
                    embeddings=self.embeddings.embed_documents([p.text for p in todo]),
                    documents=[p.text for p in todo],
                    metadatas=[{"title": p.title, "metadata_json": json.dumps(p.metadata, ensure_ascii=False)} for p in todo],
                )
            added += len(todo)
            bar.update(len(batch))
        bar.close()
        return added

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        res = self.collection.query(
            query_embeddings=[self.embeddings.embed_query(query)],
            n_results=k or self.k,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Document(
                page_content=text,
                id=pid,
                metadata={**json.loads(meta.get("metadata_json") or "{}"), "id": pid, "title": meta.get("title", ""), "score": 1.0 - dist},
            )
            for pid, text, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])
        ]
