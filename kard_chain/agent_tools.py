"""KARD's retrieval for any LangChain agent: as a tool the model calls, or as middleware that reads for it.

Any retriever works; KARD's own (BM25, the rationale-trained reranker, the bridge round: see
:func:`kard_chain.student.reading.reading_retriever`) are the reason to use these::

    from langchain.agents import create_agent
    from kard_chain import BM25Retriever
    from kard_chain.agent_tools import knowledge_middleware, retrieval_tool

    retriever = BM25Retriever.load("index/")
    agent = create_agent(model, tools=[retrieval_tool(retriever)])        # the model decides when to search
    agent = create_agent(model, middleware=[knowledge_middleware(retriever)])  # every call reads the top passages

The tool returns the passages as text that cites their ids (``[id] title: text``) and the documents themselves as the
tool message's ``artifact``. The middleware retrieves with the conversation's last user message before each model call
and adds the passages, with their ids, to the system message, so an app's own large model answers from them. The
distilled student as a tool is :func:`kard_chain.chains.answer_tool`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from kard_chain.errors import MissingExtraError
from kard_chain.student.format import as_passage

KNOWLEDGE_HEADER = "Passages retrieved for the user's question (cite them by [id]):"


def cite(docs: list[Document]) -> str:
    """Passages as the model reads them: one ``[id] title: text`` line each."""
    lines = []
    for d in docs:
        p = as_passage(d)
        lines.append(f"[{p.id}] {p.title}: {p.text}" if p.title else f"[{p.id}] {p.text}")
    return "\n".join(lines) if lines else "(no passage found)"


class SearchArgs(BaseModel):
    """The retrieval tool's argument."""

    query: str = Field(description="What to look up: a question or the fact you need, in full")


def _retrieve(retriever: BaseRetriever, query: str, k: int | None, config: Any = None) -> list[Document]:
    if not query.strip():
        raise ValueError("the query is empty")
    return retriever.invoke(query, config, **({"k": k} if k else {}))


def retrieval_tool(retriever: BaseRetriever, k: int | None = 5, name: str = "kard_search",
                   description: str = "Searches the knowledge base; returns passages with their ids, to cite as [id].") -> StructuredTool:
    """A tool that returns ``(text citing the passages' ids, the passages as documents)``: the documents are the tool
    message's ``artifact``. ``k`` passages per call (``None``: as many as the retriever returns)."""

    def run(query: str) -> tuple[str, list[Document]]:
        docs = _retrieve(retriever, query, k)
        return cite(docs), docs

    async def arun(query: str) -> tuple[str, list[Document]]:
        if not query.strip():
            raise ValueError("the query is empty")
        docs = await retriever.ainvoke(query, **({"k": k} if k else {}))
        return cite(docs), docs

    return StructuredTool.from_function(func=run, coroutine=arun, name=name, description=description, args_schema=SearchArgs,
                                        response_format="content_and_artifact")


def _last_user_text(messages: list[Any]) -> str | None:
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return m.text if isinstance(m.text, str) else str(m.content)
    return None


def _with_knowledge(request: Any, docs: list[Document]) -> Any:
    block = f"{KNOWLEDGE_HEADER}\n{cite(docs)}"
    old = request.system_message
    text = f"{old.text}\n\n{block}" if old is not None and old.text else block
    return request.override(system_message=SystemMessage(content=text))


def knowledge_middleware(retriever: BaseRetriever, k: int | None = 3,
                         query: Callable[[list[Any]], str | None] = _last_user_text) -> Any:
    """Middleware for ``create_agent``: before each model call, the top ``k`` passages for the last user message
    (or what ``query(messages)`` returns; ``None`` skips retrieval) join the system message, cited by id."""
    try:
        from langchain.agents.middleware import AgentMiddleware
    except ImportError:
        raise MissingExtraError("langchain", "agents") from None

    class KardKnowledgeMiddleware(AgentMiddleware):
        """Puts KARD's top passages for the user's question into the model's context."""

        def wrap_model_call(self, request, handler):
            text = query(request.messages)
            if not text or not text.strip():
                return handler(request)
            return handler(_with_knowledge(request, _retrieve(retriever, text, k)))

        async def awrap_model_call(self, request, handler):
            text = query(request.messages)
            if not text or not text.strip():
                return await handler(request)
            docs = await retriever.ainvoke(text, **({"k": k} if k else {}))
            return await handler(_with_knowledge(request, docs))

    return KardKnowledgeMiddleware()
