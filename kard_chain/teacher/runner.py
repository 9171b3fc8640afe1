"""``kard teach``: run the teacher chain over a dataset split, resumably.

Bounded concurrency (asyncio workers), a requests/tokens-per-minute limiter, retries with
exponential backoff and jitter on rate limits, server errors, timeouts and dropped
connections only (anything else, such as a bad API key or a bad request, stops the run),
and an append-only cache with one record per example (see :mod:`kard_chain.teacher.cache`).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import Runnable

from kard_chain.manifest import Manifest, ours_to_compare, output_lock, prepare_output, replace_stale
from kard_chain.progress import progress
from kard_chain.records import Example, Rationale
from kard_chain.teacher.cache import RationaleCache, TeacherRecord, read_rationales
from kard_chain.teacher.rate_limit import RateLimiter

# USD per million input / output tokens; pass prices explicitly for other models.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-3.5-turbo": (0.50, 1.50),
}


class TeacherStopped(RuntimeError):
    """A non-retryable error (authentication, bad request...) stopped the run."""


def redact(text: str) -> str:
    """Remove API keys from a message: the environment's key and anything shaped like one."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        text = text.replace(key, "***")
    return re.sub(r"\b(sk-[A-Za-z0-9]{0,4})[A-Za-z0-9_\-]{8,}", r"\1***", text)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (a client wraps a refused connection in its own errors)."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        chain.append(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return chain


def classify_error(exc: BaseException) -> tuple[str, bool, float | None]:
    """``(kind, retryable, retry_after_seconds)`` for an exception from a chat model."""
    if any(isinstance(cause, ConnectionRefusedError) for cause in _causes(exc)):
        return "connection_refused", True, None
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    name = type(exc).__name__
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or "Timeout" in name:
        return "timeout", True, None
    if "Connection" in name:
        return "connection", True, None
    if status == 429:
        headers = getattr(response, "headers", None) or {}
        after = None
        try:
            if "retry-after-ms" in headers:
                after = float(headers["retry-after-ms"]) / 1000
            elif "retry-after" in headers:
                after = float(headers["retry-after"])
        except ValueError:
            pass
        return "rate_limit_429", True, after
    if isinstance(status, int) and status >= 500:
        return f"server_{status}", True, None
    if status in (401, 403):
        return f"auth_{status}", False, None
    if isinstance(status, int):
        return f"http_{status}", False, None
    return name, False, None


class TokenCounter(BaseCallbackHandler):
    """Adds up the token usage the chat model reports (once per request)."""

    run_inline = True  # cheap: no thread hop per callback event in async runs

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        # n samples of one request share one usage record, so read only the first
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        usage = getattr(getattr(generation, "message", None), "usage_metadata", None) if isinstance(generation, ChatGeneration) else None
        if usage:
            self.input_tokens += usage.get("input_tokens", 0)
            self.output_tokens += usage.get("output_tokens", 0)


@dataclass
class TeachSummary:
    """What a run did; :meth:`format` prints it."""

    examples: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    rationales: int = 0
    kept: int = 0
    agreeing: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    chars: int = 0
    seconds: float = 0.0
    price: tuple[float, float] | None = None
    errors: Counter = field(default_factory=Counter)

    @property
    def cost(self) -> float | None:
        if self.price is None:
            return None
        return (self.input_tokens * self.price[0] + self.output_tokens * self.price[1]) / 1e6

    def add(self, record: TeacherRecord) -> None:
        self.done += 1
        self.rationales += len(record.rationales)
        self.kept += len(record.kept)
        self.agreeing += sum(r.answer == record.gold for r in record.rationales if record.gold is not None)
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.chars += sum(len(r.text.split()) for r in record.kept)

    def row(self) -> dict[str, str]:
        """Headline figures as strings, for the summary and for ``--compare``."""
        cost = self.cost
        return {
            "examples done": f"{self.done} (+{self.skipped} cached, {self.failed} failed)",
            "rationales kept / example": f"{self.kept / max(self.done, 1):.2f} of {self.rationales / max(self.done, 1):.2f}",
            "answer agreement": f"{self.agreeing / max(self.rationales, 1):.1%}",
            "mean kept length (words)": f"{self.chars / max(self.kept, 1):.1f}",
            "tokens in / out": f"{self.input_tokens:,} / {self.output_tokens:,}",
            "cost (USD)": "n/a (unknown price)" if cost is None else f"{cost:.4f}",
            "wall time": f"{self.seconds:.1f} s",
        }

    def format(self) -> str:
        lines = [f"{k:<28} {v}" for k, v in self.row().items()]
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        lines.append(f"{'errors (retried or fatal)':<28} {errors}")
        return "\n".join(lines)


@dataclass
class RetryPolicy:
    """How failed requests are retried, and how fast requests go out."""

    limiter: RateLimiter | None = None
    requests_per_example: int = 1
    max_retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0


def check_cache_config(cache: RationaleCache, task: str, mode: str, prompt: str, model: str) -> None:
    """A cache holds one configuration's records: refuse to add another's."""
    first = next(iter(cache), None)
    if first is not None and (first.task, first.mode, first.prompt, first.model) != (task, mode, prompt, model):
        raise ValueError(
            f"{cache.path} holds records made with task={first.task}, mode={first.mode}, prompt={first.prompt}, "
            f"model={first.model}; this run is task={task}, mode={mode}, prompt={prompt}, model={model}. Use another output file."
        )


async def _ask(chain: Runnable, ex: Example, prompt: str, policy: RetryPolicy,
               summary: TeachSummary) -> tuple[list[Rationale], TokenCounter] | None:
    """The chain's rationales for one example, retried on retryable errors; ``None`` once retries run out."""
    for attempt in range(policy.max_retries + 1):
        counter = TokenCounter()
        estimate = len(ex.question) // 4 + 500
        if policy.limiter:
            await policy.limiter.acquire(policy.requests_per_example, estimate)
        try:
            rationales = await chain.ainvoke(ex, config={"callbacks": [counter], "configurable": {"prompt": prompt}})
        except Exception as e:  # classified: retried, or the run stops
            kind, retryable, after = classify_error(e)
            summary.errors[kind] += 1
            if not retryable:
                raise TeacherStopped(f"{kind}: {redact(str(e))}") from None
            if attempt == policy.max_retries:
                summary.failed += 1
                return None
            delay = min(policy.max_backoff, policy.backoff * 2**attempt) * random.uniform(0.5, 1.5)
            await asyncio.sleep(max(delay, after or 0.0))
            continue
        if policy.limiter:
            policy.limiter.settle(estimate, counter.input_tokens + counter.output_tokens)
        return rationales, counter
    return None


async def _run_workers(todo: list[Example], concurrency: int, work) -> None:
    """``work(example)`` over ``todo`` with ``concurrency`` workers; on an error every worker stops."""
    queue: asyncio.Queue[Example] = asyncio.Queue()
    for ex in todo:
        queue.put_nowait(ex)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(todo))))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise


REGILDED = "were explained for another gold answer than the dataset's now"


def adopt_cache(path: Path, manifest: Manifest, log=print) -> None:
    """A cache whose manifest sidecar is missing (copied alone, or the manifest removed) is adopted when its records
    say they were made as this run would make them (task, mode, prompt, model, and ``n`` rationales each); else it is
    left to :func:`~kard_chain.manifest.prepare_output`, which refuses a file kard did not make."""
    if Manifest.load(path, folder=False) is not None or not path.is_file() or not path.stat().st_size:
        return
    records = read_rationales(path)  # a file that is not a teacher cache is named here, line and field
    want = manifest.settings
    made = {(r.task, r.mode, r.prompt, r.model, len(r.rationales)) for r in records.values()}
    if made == {(want["task"], want["mode"], want["prompt"], want["teacher"], want["n"])}:
        manifest.save(path, folder=False)
        log(f"adopting {path}: its {len(records)} records were made with this task, mode, prompt, teacher and n")


def regilded(records: Mapping[str, TeacherRecord], examples: Sequence[Example]) -> list[str]:
    """Ids of cached records whose rationales explain another answer than the example's gold one (a corrected dataset)."""
    return [ex.id for ex in examples if ex.id in records and records[ex.id].gold not in (None, ex.answer)]


GIVE_UP_AFTER = 3
"""Examples that fail, with every retry, before a run whose every request has failed the same way stops."""


async def teach(
    chain: Runnable[Example, list[Rationale]],
    examples: Sequence[Example],
    cache: RationaleCache,
    *,
    task: str,
    mode: str,
    model: str,
    prompt: str = "default",
    concurrency: int = 8,
    limiter: RateLimiter | None = None,
    requests_per_example: int = 1,
    max_retries: int = 6,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    price: tuple[float, float] | None = None,
    show_progress: bool = True,
) -> TeachSummary:
    """Run ``chain`` on every example not yet in ``cache`` and append one record each.

    Retryable failures back off ``backoff * 2**attempt`` seconds (at most ``max_backoff``,
    jittered by +-50%, at least the server's Retry-After); an example that still fails after
    ``max_retries`` retries is left out (a rerun tries it again). A non-retryable error
    raises :class:`TeacherStopped` after the workers stop; finished records stay in the cache.
    """
    check_cache_config(cache, task, mode, prompt, model)
    replace_stale(cache.path, regilded(cache.records, examples), overwrite=False, why=REGILDED)
    policy = RetryPolicy(limiter, requests_per_example, max_retries, backoff, max_backoff)
    summary = TeachSummary(examples=len(examples), price=price)
    todo = [ex for ex in examples if ex.id not in cache]
    summary.skipped = len(examples) - len(todo)
    bar = progress(total=len(todo), desc="teacher", unit=" ex", disable=not show_progress)
    start = time.perf_counter()

    async def work(ex: Example) -> None:
        answered = await _ask(chain, ex, prompt, policy, summary)
        if (answered is None and summary.done == 0 and GIVE_UP_AFTER <= summary.failed < len(todo)
                and len(summary.errors) == 1):
            kind = next(iter(summary.errors))  # not a flaky request: the server fails every call the same way
            raise TeacherStopped(f"the first {summary.failed} examples all failed ({kind}) after {max_retries} retries each, "
                                 "and none succeeded: the teacher's server is failing every request; fix it and rerun")
        if answered is not None:
            rationales, counter = answered
            record = TeacherRecord(id=ex.id, task=task, mode=mode, prompt=prompt, model=model, rationales=rationales,
                                   input_tokens=counter.input_tokens, output_tokens=counter.output_tokens, gold=ex.answer)
            cache.append(record)
            summary.add(record)
        cost = summary.cost
        bar.set_postfix(kept=summary.kept, tokens=summary.input_tokens + summary.output_tokens, cost="n/a" if cost is None else f"${cost:.3f}")
        bar.update(1)

    try:
        await _run_workers(todo, concurrency, work)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary


async def teach_variants(chat_model: Any, chain: Runnable, examples: Sequence[Example], paths: dict[str, Path], *,
                         manifests: dict[str, Manifest] | None = None, overwrite: bool = False, log=print,
                         **options: Any) -> dict[str, TeachSummary]:
    """:func:`teach` once per prompt variant, each into its own cache file; closes the model's HTTP client at the end.

    ``manifests`` (one per variant) are checked against each cache before any request: a cache
    made with other settings is refused, or started over with ``overwrite``.
    """
    with ExitStack() as locks:  # every cache's lock before its manifest: a second writer (--overwrite too) is refused
        for path in paths.values():
            locks.enter_context(output_lock(path))
        for variant, path in paths.items():
            if manifests:
                adopt_cache(path, manifests[variant], log)
                if ours_to_compare(path, manifests[variant].kind):
                    replace_stale(path, regilded(read_rationales(path), examples), overwrite, REGILDED)
                prepare_output(path, manifests[variant], folder=False, overwrite=overwrite)
        return await _teach_each(chat_model, chain, examples, paths, log, **options)


async def _teach_each(chat_model: Any, chain: Runnable, examples: Sequence[Example], paths: dict[str, Path], log,
                      **options: Any) -> dict[str, TeachSummary]:
    """:func:`teach` into each variant's cache (their locks held); closes the model's HTTP client at the end."""
    summaries = {}
    try:
        for variant, path in paths.items():
            log(f"teacher {options['model']}, task {options['task']}, mode {options['mode']}, prompt {variant}: "
                f"{len(examples)} examples -> {path}")
            with RationaleCache.open(path) as cache:
                summaries[variant] = await teach(chain, examples, cache, prompt=variant, **options)
    finally:
        client = getattr(chat_model, "http_async_client", None)
        if client is not None:
            await client.aclose()
    return summaries


def compare_table(summaries: dict[str, TeachSummary]) -> str:
    """The headline figures of several prompt variants side by side."""
    rows = {v: s.row() for v, s in summaries.items()}
    keys = list(next(iter(rows.values())))
    width = max(24, *(len(v) + 2 for v in summaries))
    lines = [f"\n{'':<28}" + "".join(f"{v:>{width}}" for v in summaries)]
    lines += [f"{key:<28}" + "".join(f"{rows[v][key]:>{width}}" for v in summaries) for key in keys]
    return "\n".join(lines)
