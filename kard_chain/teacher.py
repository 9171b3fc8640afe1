"""Teacher chain-of-thought prompting as a LangChain Runnable.

    from kard_chain import build_teacher_chain
    chain = build_teacher_chain(ChatOpenAI(model="gpt-4o-mini"), "strategyqa", mode="rationalize", n=5)
    rationales = chain.invoke(example)                                   # list[Rationale]
    chain.with_config(configurable={"prompt": "terse"}).invoke(example)  # another prompt file

The chain runs ``prompt | chat model | parser``: the prompt (a configurable alternative per
prompt file) renders the question, the model samples ``n`` rationales (in one request where
the model has an ``n`` parameter, as ``ChatOpenAI`` does, else ``n`` requests), and the
parser reads each rationale's final answer and drops those that disagree with the gold one,
keeping the reason in ``Rationale.dropped``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, Runnable, RunnableConfig, RunnableLambda

from kard_chain.prompts import TeacherPrompt, load_teacher_prompts
from kard_chain.records import Example, Rationale

Mode = Literal["rationalize", "solve"]

_FINAL = re.compile(r"(?:the\s+(?:correct\s+|final\s+)?answer\s*(?:is|:)|answer\s*:)\s*(.*)", re.I | re.S)
_LETTER = re.compile(r"^\W*\(?([A-Z])\)?(?![A-Za-z])")
_YES_NO = re.compile(r"\b(yes|no|true|false)\b", re.I)


def format_answer(answer: str, options: dict[str, str] | None) -> str:
    """``(B) text`` for a multiple-choice answer, else the answer itself."""
    return f"({answer}) {options[answer]}" if options and answer in options else answer


def render_question(question: str, options: dict[str, str] | None = None, answer: str | None = None) -> str:
    """The question block the teacher sees: question, options, and the gold answer if given."""
    lines = [f"Question: {question}"]
    if options:
        lines.append("Options: " + " ".join(f"({k}) {v}" for k, v in options.items()))
    if answer is not None:
        lines.append(f"Correct answer: {format_answer(answer, options)}")
    return "\n".join(lines)


def parse_answer(text: str, options: dict[str, str] | None = None) -> str | None:
    """The final answer of a rationale: an option letter, ``"yes"``/``"no"``, or ``None``.

    Reads what follows the last "the answer is" / "Answer:" (or else the last sentence) and
    accepts ``(B)``, ``B``, ``B)``, an option's text, or yes/no/true/false.
    """
    finals = list(_FINAL.finditer(text))
    if finals:
        tail = finals[-1].group(1).strip()
    else:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
        tail = sentences[-1] if sentences else ""
    tail = tail.split("\n")[0][:200]
    if options:
        m = _LETTER.match(tail) if finals else None
        if m and m.group(1) in options:
            return m.group(1)
        lowered = tail.lower()
        hits = [(len(v), k) for k, v in options.items() if v and v.lower() in lowered]
        if hits:
            return max(hits)[1]
        m = re.search(r"\(([A-Z])\)", tail)
        return m.group(1) if m and m.group(1) in options else None
    if finals:
        m = _YES_NO.search(tail)
    else:  # no answer phrase: accept "Yes, ..." / "... so, no." in the last sentence only
        m = re.match(r"^\W*(yes|no)\b[,.!]", tail, re.I) or re.search(r"\b(yes|no)\W*$", tail, re.I)
    if m is None:
        return None
    return "yes" if m.group(1).lower() in ("yes", "true") else "no"


def _chat_template(prompt: TeacherPrompt, mode: Mode) -> ChatPromptTemplate:
    """System instruction, few-shot turns (as literal messages: braces stay braces), the question."""
    messages: list[Any] = [SystemMessage(content=getattr(prompt.instructions, mode))]
    for demo in prompt.examples:
        shown = demo.answer if mode == "rationalize" else None
        messages.append(HumanMessage(content=render_question(demo.question, demo.options, shown)))
        messages.append(AIMessage(content=demo.rationale))
    messages.append(("human", "{question_block}"))
    return ChatPromptTemplate.from_messages(messages)


def supports_n(model: BaseChatModel) -> bool:
    """Whether the model draws several samples in one request (it has an ``n`` field)."""
    return "n" in type(model).model_fields


def model_name(model: BaseChatModel) -> str:
    """A readable name for the records: the model id where it has one, else its type."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model._llm_type


def build_teacher_chain(
    chat_model: BaseChatModel,
    task: str,
    mode: Mode = "rationalize",
    n: int = 5,
    prompts_dir: str | Path | None = None,
) -> Runnable[Example | dict, list[Rationale]]:
    """A Runnable mapping a question example to ``n`` rationale records.

    ``task`` picks the prompt folder (``strategyqa``, ``medqa``, ``obqa``, ``generic``);
    ``mode="rationalize"`` shows the teacher the gold answer, ``"solve"`` does not. Every
    prompt file of the task (and of ``prompts_dir``) is an alternative of the configurable
    field ``"prompt"``; ``default`` is used unless configured otherwise.
    """
    if mode not in ("rationalize", "solve"):
        raise ValueError(f"mode must be 'rationalize' or 'solve', got {mode!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    templates = {name: _chat_template(p, mode) for name, p in load_teacher_prompts(task, prompts_dir).items()}
    prompt = templates.pop("default").configurable_alternatives(
        ConfigurableField(id="prompt", name="Teacher prompt", description="Prompt file (variant) to use"),
        default_key="default",
        **templates,
    )
    name = model_name(chat_model)
    one_request = supports_n(chat_model)

    def as_example(value: Example | dict) -> Example:
        example = value if isinstance(value, Example) else Example.model_validate(value)
        if mode == "rationalize" and example.answer is None:
            raise ValueError(f"example {example.id!r} has no gold answer to rationalize; use mode='solve'")
        return example

    def prompt_inputs(example: Example) -> dict[str, str]:
        gold = example.answer if mode == "rationalize" else None
        return {"question_block": render_question(example.question, example.options, gold)}

    def texts_of(result) -> list[str]:
        gens = result.generations[0] if one_request else [g[0] for g in result.generations]
        return [g.text for g in gens]

    def parse(example: Example, texts: list[str]) -> list[Rationale]:
        out = []
        for i, text in enumerate(texts):
            answer = parse_answer(text, example.options)
            if answer is None:
                dropped = "no answer found"
            elif example.answer is not None and answer != example.answer:
                dropped = f"answer {answer} disagrees with gold {example.answer}"
            else:
                dropped = None
            out.append(Rationale(text=text.strip(), answer=answer, model=name, sample_index=i, dropped=dropped))
        return out

    # prompt | chat model | parser in one step: the example must reach the parser, and a
    # RunnableParallel to carry it costs about a quarter of the per-example CPU. The prompt
    # still runs as a child Runnable with the step's config, so its configurable
    # alternatives apply and show in the chain's config_specs.
    def generate_kwargs(messages: list[BaseMessage], config: RunnableConfig) -> dict[str, Any]:
        if one_request:
            return {"messages": [messages], "n": n, "callbacks": config.get("callbacks")}
        return {"messages": [messages] * n, "callbacks": config.get("callbacks")}

    def sample_and_parse(example: Example, config: RunnableConfig) -> list[Rationale]:
        messages = prompt.invoke(prompt_inputs(example), config).to_messages()
        return parse(example, texts_of(chat_model.generate(**generate_kwargs(messages, config))))

    async def asample_and_parse(example: Example, config: RunnableConfig) -> list[Rationale]:
        messages = (await prompt.ainvoke(prompt_inputs(example), config)).to_messages()
        return parse(example, texts_of(await chat_model.agenerate(**generate_kwargs(messages, config))))

    return (
        _step(as_example, "example") | RunnableLambda(sample_and_parse, afunc=asample_and_parse, name="prompt_model_parse")
    ).with_config(run_name="kard_teacher")


def _step(fn: Any, name: str) -> RunnableLambda:
    """A RunnableLambda with an async twin, so ``ainvoke`` never hops to a thread pool for
    cheap steps (a sync-only lambda would queue on the default executor's few threads)."""

    async def afn(value: Any) -> Any:
        return fn(value)

    return RunnableLambda(fn, afunc=afn, name=name)
