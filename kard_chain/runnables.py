"""Small Runnable helpers shared by the teacher and the inference chains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableLambda


def cheap_step(fn: Callable[[Any], Any], name: str) -> RunnableLambda:
    """A RunnableLambda with an async twin, so ``ainvoke`` never hops to a thread pool for
    cheap steps (a sync-only lambda would queue on the default executor's few threads)."""

    async def afn(value: Any) -> Any:
        return fn(value)

    return RunnableLambda(fn, afunc=afn, name=name)
