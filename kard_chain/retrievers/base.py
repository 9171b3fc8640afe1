"""The base of our retrievers: ``k`` per call, in sync and async calls alike."""

from __future__ import annotations

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor


class PerCallKRetriever(BaseRetriever):
    """A retriever whose ``_get_relevant_documents`` takes ``k``; ``ainvoke(q, k=...)`` passes it on too
    (LangChain's default async path drops every keyword argument)."""

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), k=k)
