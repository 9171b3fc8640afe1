"""``n`` samples per prompt from any LangChain model: the in-process students, a completions LLM or a chat model.

The KARD chain votes over ``n`` rationales per question. The in-process students (:class:`Seq2SeqStudentLLM`, :class:`CausalStudentLLM`)
return them from one ``generate`` call; a student behind an OpenAI-compatible server (vLLM, llama.cpp, TGI) is
reached with ``langchain_openai.OpenAI`` (completions: the prompt exactly as in training) or ``ChatOpenAI`` (the
server applies its chat template), each asked for ``n`` choices in one request per prompt. A server that returns
fewer choices than asked (llama.cpp ignores ``n``) is asked again, one sample per request, for the rest::

    from langchain_openai import OpenAI
    served = OpenAI(base_url="http://localhost:8000/v1", api_key="EMPTY", model="kard-student", max_tokens=256)
    sample_n(served, ["question: ..."], n=5)   # [[Generation, ... 5]]

Errors name the model and the prompt's position; the caller names the question.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import HumanMessage
from langchain_core.outputs import Generation

MAX_PARALLEL = 8
"""Requests in flight at once for a served model (one per prompt)."""


class StudentCallError(RuntimeError):
    """The student model failed (after its client's own retries) on one prompt."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def describe(model: Any) -> str:
    """Where samples come from, for messages: the class, the model name and the server (never a key)."""
    name = getattr(model, "model_name", None) or getattr(model, "model_id", None) or getattr(model, "model", None)
    server = getattr(model, "openai_api_base", None) or getattr(model, "base_url", None)
    return f"{type(model).__name__}" + (f" {name!r}" if isinstance(name, str) and name else "") + (f" at {server}" if server else "")


def is_in_process(model: Any) -> bool:
    """Our students and other LLMs that take ``n`` per call and return every sample of a batch at once."""
    from kard_chain.student.llm import Seq2SeqStudentLLM

    return isinstance(model, Seq2SeqStudentLLM) or (isinstance(model, BaseLLM) and "n" in _generate_params(model) and "n" not in _fields(model))


def _fields(model: Any) -> set[str]:
    return set(getattr(type(model), "model_fields", {}))


def _generate_params(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model._generate).parameters)


def _with_n(model: Any, n: int) -> Any:
    """The model asking for ``n`` choices per request where its client has the field (OpenAI, ChatOpenAI)."""
    return model.model_copy(update={"n": n}) if "n" in _fields(model) else model


def _logprob(generation: Generation) -> float | None:
    """A sample's log-probability: ours, or the sum of the token log-probabilities an OpenAI-compatible server sent."""
    info = generation.generation_info or {}
    if isinstance(info.get("logprob"), (int, float)):
        return float(info["logprob"])
    lp = info.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("token_logprobs"), list):  # completions
        return float(sum(x for x in lp["token_logprobs"] if x is not None))
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):  # chat
        return float(sum(t.get("logprob", 0.0) for t in lp["content"]))
    return None


def _as_generation(g: Any) -> Generation:
    return Generation(text=g.text, generation_info={"logprob": _logprob(g)})


def _ask(model: Any, prompt: str, n: int, callbacks: Any) -> list[Generation]:
    """One request for ``n`` samples of one prompt, as plain generations."""
    asked = _with_n(model, n)
    if isinstance(model, BaseChatModel):
        result = asked.generate([[HumanMessage(content=prompt)]], callbacks=callbacks)
    else:
        result = asked.generate([prompt], callbacks=callbacks)
    return [_as_generation(g) for g in result.generations[0]]


def _samples_of(model: Any, index: int, prompt: str, n: int, callbacks: Any) -> list[Generation]:
    """``n`` samples of one prompt: one request for all, then one request per missing sample."""
    try:
        got = _ask(model, prompt, n, callbacks)[:n]
        for _ in range(n - len(got)):  # the server ignored n
            more = _ask(model, prompt, 1, callbacks)
            if not more:
                break
            got.append(more[0])
    except Exception as e:
        raise StudentCallError(f"the student ({describe(model)}) failed on prompt {index + 1}: {type(e).__name__}: {e}", index) from e
    return got


def sample_n(model: Any, prompts: list[str], n: int, callbacks: Any = None) -> list[list[Generation]]:
    """``n`` samples for each prompt (fewer only where the model returned fewer), each with ``generation_info["logprob"]``
    where the model reports one."""
    if is_in_process(model):
        result = model.generate(prompts, n=n, callbacks=callbacks)
        return [[_as_generation(g) for g in gens] for gens in result.generations]
    if len(prompts) == 1:
        return [_samples_of(model, 0, prompts[0], n, callbacks)]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(prompts))) as pool:
        return list(pool.map(lambda ip: _samples_of(model, ip[0], ip[1], n, callbacks), enumerate(prompts)))


async def asample_n(model: Any, prompts: list[str], n: int, callbacks: Any = None) -> list[list[Generation]]:
    """:func:`sample_n` without blocking the event loop."""
    if is_in_process(model):
        result = await model.agenerate(prompts, n=n, callbacks=callbacks)
        return [[_as_generation(g) for g in gens] for gens in result.generations]
    import asyncio

    return await asyncio.to_thread(sample_n, model, prompts, n, callbacks)
