"""The student as a LangChain LLM: a local T5 / Flan-T5 (any seq2seq model), or a decoder-only sibling.

    from kard_chain import Seq2SeqStudentLLM
    llm = Seq2SeqStudentLLM.from_pretrained("student/", n=5, temperature=0.7)
    result = llm.generate(["question: ..."])          # 5 generations for the prompt
    [g.text for g in result.generations[0]]
    llm.invoke("question: ...", n=1, do_sample=False)  # generation parameters per call too
    for chunk in llm.stream("question: ..."): ...      # token by token

Unlike LangChain's ``HuggingFacePipeline`` every one of the ``n`` samples comes back (one
``Generation`` each), which self-consistency voting needs. Prompts are generated in batches
of ``batch_size``; the KV cache is always on. Each generation's ``generation_info`` holds
``logprob``, the model's log-probability of the sampled text (at temperature 1), used to break
tied votes. Stop sequences cut the text at their first occurrence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from pydantic import ConfigDict, Field

from kard_chain.answers import cut_at_stop
from kard_chain.errors import MissingExtraError

GENERATION_KEYS = ("n", "max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "logprobs")


class Seq2SeqStudentLLM(BaseLLM):
    """A local sequence-to-sequence student (``AutoModelForSeq2SeqLM``) serving LangChain calls."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: Any = Field(repr=False, exclude=True)
    """The transformers model (in eval mode, on its device)."""
    tokenizer: Any = Field(repr=False, exclude=True)
    model_id: str = ""
    """Where the model came from (folder or hub name)."""
    n: int = Field(default=1, ge=1)
    """Samples per prompt, each returned as its own generation."""
    max_new_tokens: int = Field(default=256, ge=1)
    do_sample: bool = True
    temperature: float = Field(default=0.7, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    """0 turns top-k filtering off."""
    batch_size: int = Field(default=8, ge=1)
    """Prompts per ``generate`` call."""
    max_input_tokens: int = Field(default=1024, ge=1)
    """Inputs are truncated to this many tokens."""
    logprobs: bool = True
    """Score each sample's log-probability (one extra forward pass per prompt)."""

    auto_class: ClassVar[str] = "AutoModelForSeq2SeqLM"

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path, device: str | None = None, dtype: Any = None, **fields: Any):
        """Load model and tokenizer from a folder or the Hugging Face hub.

        ``device`` defaults to CUDA when available; ``dtype`` is a torch dtype, its name
        (``"bfloat16"``) or ``"auto"``; the other keyword arguments set fields (``n=5``...).
        """
        try:
            import torch
            import transformers
        except ImportError:
            raise MissingExtraError("transformers", "train") from None
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype)
        model = getattr(transformers, cls.auto_class).from_pretrained(str(path_or_name), dtype=dtype)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path_or_name))
        return cls(model=model.to(device).eval(), tokenizer=tokenizer, model_id=str(path_or_name), **fields)

    @property
    def _llm_type(self) -> str:
        return "kard-" + ("t5" if self.auto_class == "AutoModelForSeq2SeqLM" else "causal-lm")

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_id": self.model_id, **{k: getattr(self, k) for k in GENERATION_KEYS}}

    def _params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - set(GENERATION_KEYS)
        if unknown:
            raise TypeError(f"unknown generation parameter(s) {sorted(unknown)}; known: {list(GENERATION_KEYS)}")
        return {k: kwargs.get(k, getattr(self, k)) for k in GENERATION_KEYS}

    def _generate_kwargs(self, p: dict[str, Any]) -> dict[str, Any]:
        kw = {"max_new_tokens": p["max_new_tokens"], "do_sample": p["do_sample"], "use_cache": True,
              "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self._eos_ids()}
        if p["do_sample"]:
            kw.update(temperature=p["temperature"], top_p=p["top_p"], top_k=p["top_k"])
        return kw

    def _eos_ids(self) -> list[int]:
        """Where generation ends: the tokenizer's end token (the one the trainer appends to every target) and
        the model's own. They differ when a tokenizer's metadata disagrees with the model's config (SmolLM2's
        GGUF under transformers 5.17 names ``<|im_start|>`` as its end token): stopping at the model's alone let
        students run past their answers."""
        configured = self.model.generation_config.eos_token_id
        configured = configured if isinstance(configured, list) else [configured]
        return list(dict.fromkeys(i for i in [self.tokenizer.eos_token_id, *configured] if i is not None))

    def _encode(self, prompts: list[str]):
        return self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                              max_length=self.max_input_tokens).to(self.model.device)

    def _new_tokens(self, sequences, enc):
        """The generated part of ``generate``'s output (a seq2seq output is all generated)."""
        return sequences

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        import torch

        p = self._params(kwargs)
        n = p["n"]
        generations: list[list[Generation]] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            enc = self._encode(chunk)
            with torch.inference_mode():  # greedy decoding gives n equal copies: decode once
                out = self.model.generate(**enc, num_return_sequences=n if p["do_sample"] else 1, **self._generate_kwargs(p))
            new = self._new_tokens(out if p["do_sample"] else out.repeat_interleave(n, dim=0), enc)
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for i in range(len(chunk)):
                rows = range(i * n, (i + 1) * n)
                scores = self._logprobs(enc, i, new[i * n : (i + 1) * n]) if p["logprobs"] else [None] * n
                generations.append(
                    [Generation(text=cut_at_stop(texts[r], stop), generation_info={"logprob": s}) for r, s in zip(rows, scores)]
                )
        return LLMResult(generations=generations)

    def _logprobs(self, enc, i: int, generated) -> list[float]:
        """Log-probability of each of one prompt's samples under the model (temperature 1)."""
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        n = generated.shape[0]
        mask = enc["attention_mask"][i : i + 1]
        start = self.model.config.decoder_start_token_id
        decoder_in = torch.cat([torch.full((n, 1), start, device=generated.device), generated[:, 1:-1]], dim=1)
        labels = generated[:, 1:]
        with torch.inference_mode():  # the prompt is encoded once for its n samples
            encoded = self.model.get_encoder()(input_ids=enc["input_ids"][i : i + 1], attention_mask=mask).last_hidden_state
            logits = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=encoded.expand(n, -1, -1)),
                                attention_mask=mask.expand(n, -1), decoder_input_ids=decoder_in).logits
        return _sum_label_logprobs(logits, labels, self.tokenizer.eos_token_id)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        from transformers import TextIteratorStreamer

        p = self._params({**kwargs, "n": 1})
        enc = self._encode([prompt])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.model.generate(**enc, streamer=streamer, **self._generate_kwargs(p))
            except BaseException as e:  # surfaced in the caller's thread below
                failure.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text, finished = "", False
        try:
            for piece in streamer:
                if not piece:
                    continue
                kept = cut_at_stop(text + piece, stop)[len(text) :]
                if kept:
                    text += kept
                    chunk = GenerationChunk(text=kept)
                    if run_manager:
                        run_manager.on_llm_new_token(kept, chunk=chunk)
                    yield chunk
                if len(kept) < len(piece):  # a stop sequence began: the rest is not shown
                    break
            else:
                finished = True
        finally:
            if not finished:  # stopped early: let generation run out before returning
                for _ in streamer:
                    pass
            thread.join()
        if failure:
            raise failure[0]
        if not text:  # LangChain expects at least one chunk, even for an empty answer
            yield GenerationChunk(text="")


class CausalStudentLLM(Seq2SeqStudentLLM):
    """A decoder-only student (``AutoModelForCausalLM``, as the paper's OPT runs); same fields and calls."""

    auto_class: ClassVar[str] = "AutoModelForCausalLM"

    def model_post_init(self, context: Any) -> None:
        self.tokenizer.padding_side = "left"  # generation continues every prompt from its last token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _new_tokens(self, sequences, enc):
        return sequences[:, enc["input_ids"].shape[1] :]

    def _logprobs(self, enc, i: int, generated) -> list[float]:
        import torch

        n = generated.shape[0]
        prompt = enc["input_ids"][i : i + 1].repeat(n, 1)
        mask = torch.cat([enc["attention_mask"][i : i + 1].repeat(n, 1), torch.ones_like(generated)], dim=1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # a left-padded prompt starts at position 0, as generate() has it
        with torch.inference_mode():
            logits = self.model(input_ids=torch.cat([prompt, generated], dim=1), attention_mask=mask, position_ids=positions).logits
        return _sum_label_logprobs(logits[:, prompt.shape[1] - 1 : -1], generated, self.tokenizer.eos_token_id)


def _sum_label_logprobs(logits, labels, eos_id: int | None) -> list[float]:
    """Sum over positions of log softmax(logits)[label], up to and including the first end-of-sequence."""
    import torch

    token = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if eos_id is not None:
        ended_before = torch.cumsum(labels == eos_id, dim=1) - (labels == eos_id).long()
        token = token * (ended_before == 0)
    return token.sum(dim=1).tolist()


RENAMED = {"T5LLM": "Seq2SeqStudentLLM", "DecoderLLM": "CausalStudentLLM"}
"""Old names, importable with a DeprecationWarning until the next release."""


def __getattr__(name: str) -> Any:
    if name in RENAMED:
        import warnings

        warnings.warn(f"{name} is now {RENAMED[name]}; the old name goes in the next release", DeprecationWarning, stacklevel=2)
        return globals()[RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
