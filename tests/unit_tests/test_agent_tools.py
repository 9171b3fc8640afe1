"""KARD's retrieval inside ``create_agent``: the retrieval tool (passages as the artifact, ids cited) and the middleware
that puts the top passages for the user's question into the model's context before each call."""

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, SystemMessage, ToolMessage

from kard_chain import BM25Retriever
from kard_chain.agent_tools import KNOWLEDGE_HEADER, knowledge_middleware, retrieval_tool
from tests.unit_tests.copy_task import copy_task

agents = pytest.importorskip("langchain.agents")


class RecordingFake(GenericFakeChatModel):
    """A scripted chat model that binds tools and records the messages of every call."""

    seen: list = []

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


@pytest.fixture(scope="module")
def world():
    _, test, passages = copy_task(n_train=4, n_test=6)
    return test, passages, BM25Retriever.from_passages(passages)


def test_the_retrieval_tool_returns_cited_passages_and_the_documents_as_its_artifact(world):
    test, _, retriever = world
    ex = test[0]
    expected = retriever.invoke(ex.question, k=2)
    model = RecordingFake(seen=[], messages=iter([
        AIMessage(content="", tool_calls=[{"name": "kard_search", "args": {"query": ex.question}, "id": "c1"}]),
        AIMessage(content=f"It says so in [{expected[0].metadata['id']}]."),
    ]))
    agent = agents.create_agent(model=model, tools=[retrieval_tool(retriever, k=2)])
    result = agent.invoke({"messages": [("user", ex.question)]})
    (msg,) = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [d.metadata["id"] for d in msg.artifact] == [d.metadata["id"] for d in expected]
    assert all(isinstance(d, Document) for d in msg.artifact) and msg.artifact[0].metadata["id"] == ex.evidence_ids[0]
    lines = msg.content.splitlines()
    assert [line.split("]")[0] + "]" for line in lines] == [f"[{d.metadata['id']}]" for d in expected]
    assert all(d.page_content in line for d, line in zip(expected, lines))
    assert msg.content in model.seen[1][-1].content  # the model read the cited passages back


async def test_the_retrieval_tool_works_async_and_refuses_an_empty_query(world):
    test, _, retriever = world
    tool = retrieval_tool(retriever, k=1)
    msg = await tool.ainvoke({"type": "tool_call", "name": "kard_search", "args": {"query": test[1].question}, "id": "c"})
    assert [d.metadata["id"] for d in msg.artifact] == test[1].evidence_ids[:1]
    with pytest.raises(ValueError, match="empty"):
        tool.invoke({"query": "  "})


def test_the_middleware_reads_the_top_passages_for_the_user_question_into_every_call(world):
    test, _, retriever = world
    ex = test[2]
    model = RecordingFake(seen=[], messages=iter([AIMessage(content="green")]))
    agent = agents.create_agent(model=model, system_prompt="Answer briefly.", middleware=[knowledge_middleware(retriever, k=2)])
    result = agent.invoke({"messages": [("user", ex.question)]})
    assert result["messages"][-1].content == "green"
    (call,) = model.seen
    system = call[0]
    assert isinstance(system, SystemMessage) and system.content.startswith("Answer briefly.\n\n" + KNOWLEDGE_HEADER)
    cited = [line.split("]")[0][1:] for line in system.content.split(KNOWLEDGE_HEADER)[1].strip().splitlines()]
    assert cited == [d.metadata["id"] for d in retriever.invoke(ex.question, k=2)] and cited[0] == ex.evidence_ids[0]
    assert call[-1].content == ex.question  # the conversation itself is unchanged


async def test_the_middleware_works_async_and_each_turn_reads_for_its_own_question(world):
    test, _, retriever = world
    model = RecordingFake(seen=[], messages=iter([AIMessage(content="one"), AIMessage(content="two")]))
    agent = agents.create_agent(model=model, middleware=[knowledge_middleware(retriever, k=1)])
    first = await agent.ainvoke({"messages": [("user", test[3].question)]})
    await agent.ainvoke({"messages": [*first["messages"], ("user", test[4].question)]})
    firsts = [call[0].content.splitlines()[1].split("]")[0][1:] for call in model.seen]
    assert firsts == [test[3].evidence_ids[0], test[4].evidence_ids[0]]
    assert all(KNOWLEDGE_HEADER not in m.content for call in model.seen for m in call[1:])  # only the system message grows
