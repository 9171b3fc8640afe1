"""The KARD inference chain: retrieve -> format -> sample n rationales -> parse -> majority vote.

    from kard_chain import BM25Retriever, Seq2SeqStudentLLM, build_kard_chain
    chain = build_kard_chain(BM25Retriever.load("index/"), Seq2SeqStudentLLM.from_pretrained("student/final"), k=3, n=5)
    chain.invoke("Could a goat be a source of cheese?")
    # {"answer": "yes", "votes": {"yes": 4, "no": 1}, "rationales": [...], "passages": [{"id": ...}, ...]}

:func:`kard_chain.trained_chain.load_kard_chain` builds this chain from a student folder with the
settings it was trained with.

Any retriever works (a :class:`~kard_chain.retrievers.reranking.RerankingRetriever` where a
reranker was trained). Input: a question string, an :class:`~kard_chain.records.Example`, or a
dict with ``question`` (and ``options``). ``invoke``, ``batch`` (one retriever batch and one
``generate`` call for all questions) and ``ainvoke`` work. Ties in the vote go to the answer
whose rationales have the highest summed log-probability (``generation_info["logprob"]``), or
to the answer seen first where the LLM reports none.

With ``draft="draft"`` (or ``"question+draft"``) retrieval is guided by the student's own draft, for
questions whose second fact names something the question does not (IRCoT, Trivedi et al. 2023;
PRR, 2024): the student writes one rationale from the question's passages, that draft (alone or
after the question) queries the retriever again, and the final samples read both rounds'
passages, interleaved; each cited passage says its ``round``, and the output holds the ``draft``.

The chain is also a tool for agents (``langchain.agents.create_agent(model, tools=[tool])``)::

    tool = answer_tool(chain)   # args: question, options (optional); returns the chain's output as JSON
"""

from __future__ import annotations

import inspect
import json
import warnings
from operator import itemgetter
from typing import Any, Literal

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from kard_chain.answers import majority_vote, parse_answer
from kard_chain.records import Example
from kard_chain.retrievers.bridge import ROUND, interleave_rounds
from kard_chain.runnables import cheap_step
from kard_chain.student.format import StudentFormatter, as_passage
from kard_chain.student.sampling import StudentCallError, asample_n, describe, sample_n
from kard_chain.student.settings import StudentSettings, saved_settings


def _as_query(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        query = {"question": value, "options": None}
    elif isinstance(value, (Example, dict)):
        example = value if isinstance(value, Example) else Example.model_validate({"id": "query", **value})
        query = {"question": example.question, "options": example.options}
    else:
        raise ValueError(f"the chain takes a question string, an Example or a dict with 'question', got {type(value).__name__}")
    if not query["question"].strip():
        raise ValueError("the question is empty")
    return query


class _Batched(Runnable[dict, dict]):
    """A step that works a batch at a time: ``invoke`` is a batch of one, an empty batch does nothing."""

    def _batch(self, inputs: list[dict], config: Any, return_exceptions: bool) -> list:
        raise NotImplementedError

    def invoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        return self.batch([input], config)[0]

    def batch(self, inputs: list[dict], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[dict]:
        return self._batch(inputs, config, return_exceptions) if inputs else []


class _SampleAndVote(_Batched):
    """Formats each question (with its passages), samples n rationales in one ``generate`` call for
    a whole batch, parses and votes."""

    def __init__(self, llm: Any, formatter: StudentFormatter, k: int, n: int) -> None:
        self.llm, self.formatter, self.k, self.n = llm, formatter, k, n
        self.name = "sample_and_vote"

    def _prompt(self, x: dict) -> tuple[str, list]:
        docs = list(x.get("docs") or [])[: self.k]
        return self.formatter.source(x["question"], x["options"], docs).text, docs

    def _result(self, x: dict, docs: list, generations: list) -> dict:
        answers = [parse_answer(g.text, x["options"]) for g in generations]
        logprobs = [(g.generation_info or {}).get("logprob") for g in generations]
        answer, votes = majority_vote(answers, logprobs)
        rationales = [{"text": g.text.strip(), "answer": a, "logprob": lp} for g, a, lp in zip(generations, answers, logprobs)]
        passages = []
        for d in docs:
            p = as_passage(d)
            cited = {"id": p.id, "title": p.title, "text": p.text, "score": d.metadata.get("rerank_score", d.metadata.get("score"))}
            if ROUND in d.metadata:
                cited["round"] = d.metadata[ROUND]
            passages.append(cited)
        out = {"answer": answer, "votes": votes, "rationales": rationales, "passages": passages}
        if len(generations) < self.n:  # a vote over fewer samples than asked says so
            out["samples"] = {"asked": self.n, "got": len(generations), "from": describe(self.llm)}
        if "draft" in x:
            out["draft"] = x["draft"]
        return out

    def _run(self, inputs: list[dict], run_manager: list) -> list[dict]:
        # one generate call for the batch, traced under the first input's run
        prompts = [self._prompt(x) for x in inputs]
        try:
            samples = sample_n(self.llm, [p for p, _ in prompts], self.n, callbacks=run_manager[0].get_child())
        except StudentCallError as e:
            raise StudentCallError(f"question {inputs[e.index]['question']!r}: {e}", e.index) from e
        return [self._result(x, docs, gens) for x, (_, docs), gens in zip(inputs, prompts, samples)]

    def _batch(self, inputs: list[dict], config: Any, return_exceptions: bool) -> list:
        return self._batch_with_config(self._run, inputs, config, return_exceptions=return_exceptions)

    async def ainvoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        async def run(x: dict, run_manager) -> dict:
            prompt, docs = self._prompt(x)
            try:
                samples = await asample_n(self.llm, [prompt], self.n, callbacks=run_manager.get_child())
            except StudentCallError as e:
                raise StudentCallError(f"question {x['question']!r}: {e}", 0) from e
            return self._result(x, docs, samples[0])

        return await self._acall_with_config(run, input, config)


def default_formatter(llm: Any) -> StudentFormatter:
    """The formatter the student was trained with (from its folder's ``kard_student.json``), else the default one."""
    return StudentFormatter.from_settings(saved_settings(llm) or StudentSettings(), getattr(llm, "tokenizer", None))


def _takes_k(retriever: BaseRetriever) -> bool:
    """Whether the retriever accepts ``k`` per call, sync and async (as LangChain's standard retriever tests ask)."""

    def accepts(method: Any) -> bool:
        params = inspect.signature(method).parameters
        return "k" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    return accepts(retriever._get_relevant_documents) and accepts(retriever._aget_relevant_documents)


DraftQuery = Literal["draft", "question+draft"]


class _Assign(_Batched):
    """Adds ``key`` to each input dict: ``pick(step(query(x)))``, with one ``step.batch`` call per batch (inside
    ``RunnablePassthrough.assign`` a batch becomes one call per input)."""

    def __init__(self, key: str, step: Runnable, query: Any, pick: Any = None) -> None:
        self.key, self.step, self.query, self.pick = key, step, query, pick or (lambda value: value)
        self.name = key

    def _with(self, x: dict, value: Any) -> Any:
        return value if isinstance(value, Exception) else {**x, self.key: self.pick(value)}

    def _batch(self, inputs: list[dict], config: Any, return_exceptions: bool) -> list:
        values = self.step.batch([self.query(x) for x in inputs], config, return_exceptions=return_exceptions)
        return [self._with(x, v) for x, v in zip(inputs, values)]

    async def ainvoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        return self._with(input, await self.step.ainvoke(self.query(input), config))


def _draft_steps(retrieve: Runnable, llm: Any, formatter: StudentFormatter, k: int, query: DraftQuery) -> Runnable:
    """Draft a rationale from the first round's passages, retrieve with it, and read both rounds."""

    def draft_query(x: dict) -> str:
        return x["draft"] if query == "draft" else f"{x['question']} {x['draft']}"

    def merge(x: dict) -> dict:
        return {**{key: v for key, v in x.items() if key != "second"}, "docs": interleave_rounds(list(x["docs"]), list(x["second"]), k)}

    return (
        _Assign("draft", _SampleAndVote(llm, formatter, k, 1), lambda x: x, pick=lambda r: r["rationales"][0]["text"])
        | _Assign("second", retrieve, draft_query)
        | cheap_step(merge, "both_rounds")
    )


def build_kard_chain(
    retriever: BaseRetriever, llm: Any, k: int | None = None, n: int = 5, formatter: StudentFormatter | None = None,
    draft: DraftQuery | None = None,
) -> Runnable:
    """A Runnable mapping a question to ``{"answer", "votes", "rationales", "passages"}``.

    ``k`` passages from ``retriever`` go into the student's input (default: the ``k`` the
    student was trained with, else 3), and the retriever is asked for ``k`` on every call;
    ``n`` rationales are sampled and voted on. ``llm`` is the student: an in-process one (:class:`Seq2SeqStudentLLM`,
    :class:`CausalStudentLLM`) or any LangChain LLM or chat model serving it, such as ``OpenAI(base_url=...)`` in front of
    vLLM (:mod:`kard_chain.student.sampling`); a vote over fewer samples than ``n`` carries
    ``"samples": {"asked", "got", "from"}``.
    ``draft``: a second retrieval round with the student's draft rationale (``"draft"``) or the
    question and the draft (``"question+draft"``); ``None`` (default) is the paper's one round.
    """
    k = (saved_settings(llm) or StudentSettings()).k if k is None else k
    if n < 1 or k < 1:
        raise ValueError("n and k must be at least 1")
    if draft not in (None, "draft", "question+draft"):
        raise ValueError(f"draft must be None, 'draft' or 'question+draft', got {draft!r}")
    formatter = formatter or default_formatter(llm)
    if _takes_k(retriever):
        retrieve = retriever.bind(k=k)
    else:
        warnings.warn(f"{type(retriever).__name__} does not take k per call: the student reads at most the first {k} "
                      "passages it returns", stacklevel=2)
        retrieve = retriever
    chain = cheap_step(_as_query, "question") | _Assign("docs", retrieve, itemgetter("question"))
    if draft is not None:
        chain = chain | _draft_steps(retrieve, llm, formatter, k, draft)
    return (chain | _SampleAndVote(llm, formatter, k, n)).with_config(run_name="kard_chain")


def build_rd_chain(llm: Any, n: int = 5, formatter: StudentFormatter | None = None) -> Runnable:
    """The baseline without knowledge (reasoning distillation or plain fine-tuning): same output, no passages."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return (cheap_step(_as_query, "question") | _SampleAndVote(llm, formatter or default_formatter(llm), 1, n)).with_config(run_name="rd_chain")


class QuestionArgs(BaseModel):
    """The answer tool's arguments."""

    question: str = Field(description="The question, in full")
    options: dict[str, str] | None = Field(default=None, description='Answer options by letter, e.g. {"A": "...", "B": "..."}')


def answer_tool(chain: Runnable, name: str = "kard_answer",
                description: str = "Answers a knowledge question by reading retrieved passages; returns the voted "
                                   "answer, the votes, the rationales and the cited passages (with ids).") -> StructuredTool:
    """A LangChain tool around a KARD (or RD) chain, for agents."""

    def run(question: str, options: dict[str, str] | None = None) -> str:
        return json.dumps(chain.invoke({"question": question, "options": options}))

    async def arun(question: str, options: dict[str, str] | None = None) -> str:
        return json.dumps(await chain.ainvoke({"question": question, "options": options}))

    return StructuredTool.from_function(func=run, coroutine=arun, name=name, description=description, args_schema=QuestionArgs)
