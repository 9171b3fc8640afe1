"""A trained student folder as a LangChain chat model: ``n`` samples with their log-probabilities, streaming, async
and batch, wherever an app expects a ``BaseChatModel``.

    from kard_chain.student.chat import StudentChatModel
    chat = StudentChatModel(model="runs/mine/stages/student-kard-<hash>/run/final", n=5, temperature=0.7)
    chat.invoke("question: ...").content
    [g.message.content for g in chat.generate([[("user", "question: ...")]]).generations[0]]   # 5 samples

The student reads the last user message as its input, exactly as it was trained (plain prompts, no chat template);
``chat_template=True`` renders the whole conversation with the tokenizer's chat template instead, for a decoder
student trained on chat-formatted inputs. Each sample's ``response_metadata["logprob"]`` is its log-probability
(temperature 1). Weights load on the first call, on ``device`` (CUDA when available).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr


class StudentChatModel(BaseChatModel):
    """A trained student folder (seq2seq or decoder) serving LangChain chat calls."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    """The student folder (``kard train-student``'s ``output_dir/final``, or a recipe's student stage)."""
    n: int = Field(default=1, ge=1)
    """Samples per call, each its own generation."""
    temperature: float = Field(default=0.7, ge=0)
    """0 decodes greedily."""
    max_tokens: int = Field(default=256, ge=1)
    """New tokens per sample."""
    stop: list[str] | None = None
    """Stop sequences: each sample is cut at the first."""
    streaming: bool = False
    """Whether ``invoke`` streams token by token."""
    chat_template: bool = False
    """Render the conversation with the tokenizer's chat template (default: the last user message, as trained)."""
    device: str | None = None
    timeout: float | None = None
    """Accepted with LangChain's standard chat-model parameters; in-process generation does not time out."""
    max_retries: int = 0
    """Accepted with LangChain's standard chat-model parameters; in-process generation is not retried."""
    _student: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "kard-student-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "n": self.n, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="kard", ls_model_name=kwargs.get("model", self.model), ls_model_type="chat",
                                 ls_temperature=kwargs.get("temperature", self.temperature),
                                 ls_max_tokens=kwargs.get("max_tokens", self.max_tokens))
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    @property
    def student(self) -> Any:
        """The in-process student (:class:`Seq2SeqStudentLLM` or :class:`CausalStudentLLM`), loaded on first use."""
        if self._student is None:
            from kard_chain.trained_chain import load_student_llm

            self._student = load_student_llm(self.model, device=self.device)
        return self._student

    def _prompt(self, messages: list[BaseMessage]) -> str:
        if self.chat_template:
            tokenizer = self.student.tokenizer
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(f"chat_template=True, but the tokenizer in {self.model} has no chat template")
            roles = {"human": "user", "ai": "assistant", "system": "system"}
            conversation = [{"role": roles.get(m.type, m.type), "content": m.text} for m in messages]
            return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        users = [m for m in messages if isinstance(m, HumanMessage)]
        if not users:
            raise ValueError("the student answers the last user message, and there is none")
        return users[-1].text

    def _sampling(self, kwargs: dict[str, Any], n: int) -> dict[str, Any]:
        unknown = set(kwargs) - {"n", "temperature", "max_tokens"}
        if unknown:
            raise TypeError(f"unknown generation parameter(s) {sorted(unknown)}; known: n, temperature, max_tokens")
        temperature = kwargs.get("temperature", self.temperature)
        p = {"n": n, "max_new_tokens": kwargs.get("max_tokens", self.max_tokens), "do_sample": temperature > 0}
        if temperature > 0:
            p["temperature"] = temperature
        return p

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        p = self._sampling(kwargs, kwargs.get("n", self.n))
        result = self.student.generate([self._prompt(messages)], stop=stop or self.stop, **p)
        generations = []
        for g in result.generations[0]:
            logprob = (g.generation_info or {}).get("logprob")
            message = AIMessage(content=g.text, response_metadata={"model_name": self.model, "logprob": logprob})
            generations.append(ChatGeneration(message=message, generation_info={"logprob": logprob}))
        return ChatResult(generations=generations)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        p = self._sampling(kwargs, 1)
        for piece in self.student.stream(self._prompt(messages), stop=stop or self.stop, **p):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
