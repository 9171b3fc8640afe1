"""``BM25Retriever``: a LangChain retriever over a :class:`~kard_chain.bm25.index.BM25Index`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManager, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, get_config_list, run_in_executor
from pydantic import ConfigDict, Field

from kard_chain.bm25.index import Backend, BM25Index, BM25Params, append_to_index, build_index
from kard_chain.bm25.tokenizer import BM25Tokenizer
from kard_chain.io import atomic_write_text
from kard_chain.records import Passage, passage_id
from kard_chain.retrievers.base import PerCallKRetriever

RETRIEVER_FILE = "retriever.json"
"""The retriever's own settings (``k``, backend) beside the index it serves."""


class BM25Retriever(PerCallKRetriever):
    """BM25 over a knowledge base, with scores, fast batches and a pickle-free save/load.

    Every returned Document carries ``metadata["id"]`` (the passage id), ``metadata["title"]``
    and ``metadata["score"]`` (its BM25 score)::

        retriever = BM25Retriever.from_texts(["Goats produce milk.", "Cats purr."], k=1)
        retriever.invoke("goat milk")            # k from the field
        retriever.invoke("goat milk", k=2)       # or per call
        retriever.batch(["goat milk", "purr"])   # one vectorised pass
        retriever.save("index/"); BM25Retriever.load("index/")
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    index: BM25Index = Field(repr=False)
    """The index: postings, weights and passages."""
    k: int = Field(default=4, ge=1)
    """Number of passages to return."""
    backend: Backend = "fast"
    """``"fast"`` (our sparse backend) or ``"rank_bm25"`` (the reference BM25Okapi)."""

    # ---- constructors ---------------------------------------------------------------

    @classmethod
    def from_passages(
        cls,
        passages: Iterable[Passage],
        *,
        tokenizer: BM25Tokenizer | None = None,
        k: int = 4,
        backend: Backend = "fast",
        **params: Any,
    ) -> BM25Retriever:
        """Index passages in memory; ``params`` are :class:`BM25Params` fields (k1, b, method...)."""
        index = BM25Index.from_passages(passages, tokenizer=tokenizer, params=BM25Params(**params))
        return cls(index=index, k=k, backend=backend)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        metadatas: Iterable[dict[str, Any]] | None = None,
        ids: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> BM25Retriever:
        """Index raw texts; ids default to ``"0"``, ``"1"``...; a ``title`` in the metadata is indexed too."""
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
        return cls.from_passages(_passages(texts, metadatas, ids), **kwargs)

    @classmethod
    def from_documents(cls, documents: Iterable[Document], **kwargs: Any) -> BM25Retriever:
        """Index LangChain documents; the id is ``metadata["id"]``, else ``doc.id``, else the position
        (:func:`~kard_chain.records.passage_id`)."""
        documents = list(documents)
        ids = [passage_id(d, str(i)) for i, d in enumerate(documents)]
        metadatas = [{k: v for k, v in d.metadata.items() if k != "id"} for d in documents]
        return cls.from_texts([d.page_content for d in documents], metadatas, ids, **kwargs)

    @classmethod
    def build(cls, passages: Iterable[Passage], path: str | Path, *, k: int = 4, backend: Backend = "fast",
              tokenizer: BM25Tokenizer | None = None, overwrite: bool = False, show_progress: bool = True,
              memory_gib: float = 2.0, **params: Any) -> BM25Retriever:
        """Stream passages into an index folder on disk within about ``memory_gib`` of working memory (see
        :func:`build_index`) and open it; ``params`` are :class:`BM25Params` fields; ``k`` and the backend are saved
        with it."""
        index = build_index(passages, path, tokenizer=tokenizer, params=BM25Params(**params), overwrite=overwrite,
                            show_progress=show_progress, memory_gib=memory_gib)
        retriever = cls(index=index, k=k, backend=backend)
        retriever._save_settings(path)
        return retriever

    # ---- growing ----------------------------------------------------------------------

    def add_passages(self, passages: Iterable[Passage], *, show_progress: bool = False) -> list[str]:
        """Add passages (new ids only); scores then equal those of an index built from all passages at once.
        An index on disk grows in place (see :func:`~kard_chain.bm25.index.append_to_index`)."""
        passages = list(passages)
        if self.index.path is not None:
            self.index = append_to_index(self.index.path, passages, show_progress=show_progress)
        else:
            self.index = self.index.with_passages(passages)
        return [p.id for p in passages]

    def add_texts(self, texts: Iterable[str], metadatas: Iterable[dict[str, Any]] | None = None,
                  ids: Iterable[str] | None = None) -> list[str]:
        """Add raw texts (ids default to the next positions; a ``title`` in the metadata is indexed too)."""
        texts = list(texts)
        start = self.index.n_docs
        ids = list(ids) if ids is not None else [str(start + i) for i in range(len(texts))]
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        return self.add_passages(_passages(texts, metadatas, ids))

    def add_documents(self, documents: Iterable[Document]) -> list[str]:
        """Add LangChain documents; the id is ``metadata["id"]``, else ``doc.id``, else the next position."""
        documents = list(documents)
        start = self.index.n_docs
        ids = [passage_id(d, str(start + i)) for i, d in enumerate(documents)]
        metadatas = [{k: v for k, v in d.metadata.items() if k != "id"} for d in documents]
        return self.add_texts([d.page_content for d in documents], metadatas, ids)

    # ---- persistence ----------------------------------------------------------------

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Save the index folder (numpy arrays + JSON, written atomically) and this retriever's ``k`` and backend."""
        self.index.save(path, overwrite=overwrite)
        self._save_settings(path)

    def _save_settings(self, path: str | Path) -> None:
        atomic_write_text(Path(path) / RETRIEVER_FILE, json.dumps({"k": self.k, "backend": self.backend}))

    @classmethod
    def load(cls, path: str | Path, *, k: int | None = None, backend: Backend | None = None, mmap: bool = True) -> BM25Retriever:
        """Open a saved index with the ``k`` and backend it was saved with (else 4 and ``fast``), unless given here;
        with ``mmap`` (default) the arrays are memory-mapped."""
        saved = json.loads((Path(path) / RETRIEVER_FILE).read_text()) if (Path(path) / RETRIEVER_FILE).is_file() else {}
        return cls(index=BM25Index.load(path, mmap=mmap), k=k or saved.get("k", 4), backend=backend or saved.get("backend", "fast"))

    # ---- retrieval ------------------------------------------------------------------

    def score(self, query: str, ids: Sequence[str]) -> list[float]:
        """BM25 score of arbitrary passages (by id) for ``query``, in the order of ``ids``."""
        return self.index.score(query, ids, backend=self.backend)

    def search(self, queries: Sequence[str], k: int | None = None) -> list[list[Document]]:
        """Top-``k`` documents for each query, scored in one vectorised pass."""
        rows, scores = self.index.top_k(list(queries), k or self.k, backend=self.backend)
        return [[self._document(int(r), float(s)) for r, s in zip(rr, ss) if r >= 0] for rr, ss in zip(rows, scores)]

    def _document(self, row: int, score: float) -> Document:
        p = self.index.passages.get(row)
        return Document(page_content=p.text, id=p.id, metadata={**p.metadata, "id": p.id, "title": p.title, "score": score})

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self.search([query], k)[0]

    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[list[Document]]:  # type: ignore[override]
        """Retrieve for many queries in one vectorised pass; callbacks fire per query."""
        if not inputs:
            return []
        runs = []
        for query, cfg in zip(inputs, get_config_list(config, len(inputs))):
            cfg = ensure_config(cfg)
            manager = CallbackManager.configure(
                cfg.get("callbacks"), None, inheritable_tags=cfg.get("tags"), inheritable_metadata=cfg.get("metadata")
            )
            runs.append(manager.on_retriever_start(None, query, name=cfg.get("run_name") or self.get_name(), run_id=cfg.pop("run_id", None)))
        try:
            results = self.search(inputs, kwargs.get("k"))
        except Exception as e:
            for run in runs:
                run.on_retriever_error(e)
            if return_exceptions:
                return [e] * len(inputs)  # type: ignore[list-item]
            raise
        for run, docs in zip(runs, results):
            run.on_retriever_end(docs)
        return results

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[list[Document]]:  # type: ignore[override]
        """Async :meth:`batch`, run in the default executor."""
        return await run_in_executor(None, self.batch, inputs, config, return_exceptions=return_exceptions, **kwargs)


def _passages(texts: list[str], metadatas: list[dict[str, Any]], ids: list[str]) -> list[Passage]:
    """Passages from texts, metadata (a ``title`` becomes the passage's title) and ids of the same length."""
    if not len(texts) == len(metadatas) == len(ids):
        raise ValueError(f"got {len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids")
    return [Passage(id=i, title=str(m.get("title", "")), text=t, metadata={k: v for k, v in m.items() if k != "title"})
            for t, m, i in zip(texts, metadatas, ids)]
