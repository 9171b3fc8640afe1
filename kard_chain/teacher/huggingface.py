"""``HuggingFaceChatModel``: a local Hugging Face causal LM as a LangChain chat model.

It applies the tokenizer's chat template and samples ``n`` continuations in one
``generate`` call (``n`` is a field and a per-call argument, so the teacher chain asks for
all samples at once)::

    teacher = HuggingFaceChatModel.from_pretrained("path/to/SmolLM2-135M-Instruct", n=5)
    teacher.invoke("Why is the sky blue?")

Needs the ``train`` extra (torch, transformers).
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from kard_chain.answers import cut_at_stop
from kard_chain.errors import MissingExtraError


def _role(message: BaseMessage) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    raise ValueError(f"unsupported message type {type(message).__name__}")


class HuggingFaceChatModel(BaseChatModel):
    """Chat with a local causal LM; samples ``n`` replies per request."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: Any = Field(repr=False)
    """A ``transformers`` causal LM."""
    tokenizer: Any = Field(repr=False)
    """Its tokenizer, with a chat template."""
    model_id: str = "local"
    """Name recorded with the rationales."""
    n: int = Field(default=1, ge=1)
    """Replies per request."""
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature; 0 decodes greedily."""
    top_p: float = 0.95
    """Nucleus sampling."""
    max_new_tokens: int = 256
    """Length limit of each reply."""
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_pretrained(
        cls, path: str, *, gguf_file: str | None = None, device: str = "cpu", dtype: str | None = None, **fields: Any
    ) -> HuggingFaceChatModel:
        """Load a model folder or hub name; ``gguf_file`` loads a GGUF checkpoint (needs ``gguf``)."""
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise MissingExtraError("torch and transformers", "train") from None
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(path, **extra)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype) if dtype else None, **extra).to(device)
        model.eval()
        return cls(model=model, tokenizer=tokenizer, model_id=fields.pop("model_id", str(gguf_file or path)), **fields)

    @property
    def _llm_type(self) -> str:
        return "huggingface-local"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch

        n = int(kwargs.get("n") or self.n)
        chat = [{"role": _role(m), "content": m.text} for m in messages]
        inputs = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        prompt_len = inputs["input_ids"].shape[1]
        sampling = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p} if self.temperature > 0 else {"do_sample": False}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock, torch.no_grad():
            out = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, num_return_sequences=n, pad_token_id=pad, **sampling
            )
        new_tokens = out[:, prompt_len:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        texts = [cut_at_stop(t, stop) for t in texts]
        generated = int((new_tokens != pad).sum())
        usage = {"input_tokens": prompt_len, "output_tokens": generated, "total_tokens": prompt_len + generated}
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content=t, usage_metadata=usage)) for t in texts],
            llm_output={"model_name": self.model_id},
        )
