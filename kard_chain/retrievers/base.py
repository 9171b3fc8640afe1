"""The base of our retrievers: ``k`` per call, in sync and async calls alike."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import run_in_executor


def check_query(query: Any, k: Any = None) -> None:
    """A query is a non-blank string and ``k``, where given, a positive int: anything else is a clear error, not an
    AttributeError deep inside a scorer or a ``k=0`` silently read as the default."""
    if not isinstance(query, str):
        raise TypeError(f"a retriever takes a query string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("the query is empty")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be a positive int, got {k!r}")


class PerCallKRetriever(BaseRetriever):
    """A retriever whose ``_get_relevant_documents`` takes ``k``; ``ainvoke(q, k=...)`` passes it on too
    (LangChain's default async path drops every keyword argument). Queries and ``k`` are checked first."""

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        check_query(input, kwargs.get("k"))
        return super().invoke(input, config, **kwargs)

    async def ainvoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        check_query(input, kwargs.get("k"))
        return await super().ainvoke(input, config, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), k=k)
