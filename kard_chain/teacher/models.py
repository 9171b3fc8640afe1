"""Teacher chat models from a CLI spec: ``openai:MODEL`` (any OpenAI-compatible server with
``base_url``) or ``hf:PATH`` (a local Hugging Face causal LM)."""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel

from kard_chain.errors import MissingExtraError


def load_teacher(
    spec: str,
    *,
    base_url: str | None = None,
    temperature: float = 0.7,
    max_tokens: int = 512,
    timeout: float = 60.0,
    gguf_file: str | None = None,
) -> BaseChatModel:
    """A chat model for ``spec`` (``hf:`` also takes a ``.gguf`` file). The OpenAI key is read from ``OPENAI_API_KEY`` by the client
    and is never stored here; the client's own retries are off (``kard teach`` retries)."""
    kind, _, name = spec.partition(":")
    if kind == "openai" and name:
        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            raise MissingExtraError("langchain-openai", "openai") from None
        # An async HTTP client of our own, not langchain-openai's process-wide one, which stays
        # bound to the first event loop that used it (a second asyncio.run would fail). aiohttp
        # (openai[aiohttp]) costs about a third less CPU per request than httpx at high
        # concurrency; close it with ``await model.http_async_client.aclose()``.
        extra: dict = {"http_async_client": _async_http_client()}
        if base_url and not os.environ.get("OPENAI_API_KEY"):
            extra["api_key"] = "not-needed"  # local OpenAI-compatible servers accept any key
        return ChatOpenAI(
            model=name, base_url=base_url, temperature=temperature, max_tokens=max_tokens, timeout=timeout, max_retries=0, **extra
        )
    if kind == "hf" and name:
        from pathlib import Path

        from kard_chain.errors import KardDataError
        from kard_chain.io import is_local_path
        from kard_chain.teacher.huggingface import HuggingFaceChatModel

        if is_local_path(name) and not Path(name).expanduser().exists():
            raise KardDataError("teacher model folder (or .gguf file) not found", path=name)
        if name.endswith(".gguf"):  # hf:path/to/model.gguf loads the GGUF file from its folder
            name, gguf_file = str(Path(name).parent), Path(name).name
        return HuggingFaceChatModel.from_pretrained(name, gguf_file=gguf_file, temperature=temperature, max_new_tokens=max_tokens)
    raise ValueError(f"unknown teacher {spec!r}; use openai:MODEL or hf:PATH")


def _async_http_client():
    try:
        import openai

        return openai.DefaultAioHttpClient()
    except (ImportError, RuntimeError, AttributeError):
        import httpx

        return httpx.AsyncClient(limits=httpx.Limits(max_connections=256))
