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

from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, Runnable, RunnableConfig, RunnableLambda

from kard_chain.answers import format_answer, parse_answer
from kard_chain.records import Example, Rationale
from kard_chain.runnables import cheap_step
from kard_chain.teacher.prompts import TeacherPrompt, load_teacher_prompts

Mode = Literal["rationalize", "solve"]

def render_question(question: str, options: dict[str, str] | None = None, answer: str | None = None) -> str:
    """The question block the teacher sees: question, options, and the gold answer if given."""
    lines = [f"Question: {question}"]
    if options:
        lines.append("Options: " + " ".join(f"({k}) {v}" for k, v in options.items()))
    if answer is not None:
        lines.append(f"Correct answer: {format_answer(answer, options)}")
    return "\n".join(lines)


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


def judge(example: Example, texts: list[str], model: str) -> list[Rationale]:
    """The teacher's filter: each text's answer, and why it is dropped (none found, or not the gold one)."""
    out = []
    for i, text in enumerate(texts):
        answer = parse_answer(text, example.options)
        if answer is None:
            dropped = "no answer found"
        elif example.answer is not None and answer != example.answer:
            dropped = f"answer {answer} disagrees with gold {example.answer}"
        else:
            dropped = None
        out.append(Rationale(text=text.strip(), answer=answer, model=model, sample_index=i, dropped=dropped))
    return out


class _SampleAndJudge:
    """prompt | chat model | parser in one step: the example must reach the parser, and a
    RunnableParallel to carry it costs about a quarter of the per-example CPU. The prompt
    still runs as a child Runnable with the step's config, so its configurable alternatives
    apply and show in the chain's config_specs."""

    def __init__(self, prompt: Runnable, chat_model: BaseChatModel, mode: Mode, n: int) -> None:
        self.prompt, self.chat_model, self.mode, self.n = prompt, chat_model, mode, n
        self.name, self.one_request = model_name(chat_model), supports_n(chat_model)

    def as_example(self, value: Example | dict) -> Example:
        example = value if isinstance(value, Example) else Example.model_validate(value)
        if self.mode == "rationalize" and example.answer is None:
            raise ValueError(f"example {example.id!r} has no gold answer to rationalize; use mode='solve'")
        return example

    def _inputs(self, example: Example) -> dict[str, str]:
        gold = example.answer if self.mode == "rationalize" else None
        return {"question_block": render_question(example.question, example.options, gold)}

    def _generate_kwargs(self, messages: list[BaseMessage], config: RunnableConfig) -> dict[str, Any]:
        if self.one_request:
            return {"messages": [messages], "n": self.n, "callbacks": config.get("callbacks")}
        return {"messages": [messages] * self.n, "callbacks": config.get("callbacks")}

    def _texts(self, result) -> list[str]:
        gens = result.generations[0] if self.one_request else [g[0] for g in result.generations]
        return [g.text for g in gens]

    def run(self, example: Example, config: RunnableConfig) -> list[Rationale]:
        messages = self.prompt.invoke(self._inputs(example), config).to_messages()
        return judge(example, self._texts(self.chat_model.generate(**self._generate_kwargs(messages, config))), self.name)

    async def arun(self, example: Example, config: RunnableConfig) -> list[Rationale]:
        messages = (await self.prompt.ainvoke(self._inputs(example), config)).to_messages()
        result = await self.chat_model.agenerate(**self._generate_kwargs(messages, config))
        return judge(example, self._texts(result), self.name)


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
    step = _SampleAndJudge(prompt, chat_model, mode, n)
    return (
        cheap_step(step.as_example, "example") | RunnableLambda(step.run, afunc=step.arun, name="prompt_model_parse")
    ).with_config(run_name="kard_teacher")
