"""A small local server speaking OpenAI's chat-completions protocol, with injected faults.

It answers ``POST /v1/chat/completions`` with ``n`` choices; given ``complete`` it is a served student instead,
answering ``/v1/completions`` and ``/v1/chat/completions`` with ``complete(prompt, choice index)``. The answer it writes is the one
the prompt gives as "Correct answer: ..." (rationalize mode), else "yes"; each choice's text
depends only on the question and the choice index, so reruns give the same records. Faults
are drawn per request from a seeded generator: 429 with Retry-After, 500, a hang past the
client's timeout, or (per choice, deterministically) a malformed rationale with no answer or one
with a wrong answer; ``answer_limit`` holds every request after that many answers (a client to be
killed mid-run). ``sent`` records what each (question, choice index) got::

    with FakeOpenAIServer(latency=0.2, rate_429=0.05, rate_500=0.05) as server:
        ChatOpenAI(base_url=server.url, api_key="x", model="fake").invoke("hi")

Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any


class FakeOpenAIServer:
    """Runs on a background thread; ``url`` is the base URL to give the client."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        rate_hang: float = 0.0,
        hang_seconds: float = 5.0,
        rate_malformed: float = 0.0,
        rate_wrong: float = 0.0,
        retry_after: float = 0.05,
        status: int | None = None,
        answer_limit: int | None = None,
        complete: Callable[[str, int], str] | None = None,
        ignore_n: bool = False,
        seed: int = 0,
    ) -> None:
        self.latency, self.hang_seconds, self.retry_after = latency, hang_seconds, retry_after
        self.rates = {"429": rate_429, "500": rate_500, "hang": rate_hang}
        self.rate_malformed, self.rate_wrong = rate_malformed, rate_wrong
        self.sent: dict[tuple[str, int], str] = {}
        """``"malformed"``, ``"wrong"`` or ``"right"`` per (question, choice index)."""
        self.status = status
        self.answer_limit = answer_limit
        """After this many answers every request is held unanswered until the server stops (``counts["held"]``)."""
        self.complete, self.ignore_n = complete, ignore_n
        """``complete(prompt, choice index)`` writes each choice (a served student); ``ignore_n``: one choice per
        request whatever ``n`` asks (as llama.cpp's server)."""
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.questions: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = line.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                status, extra, payload = await self._respond(request_line.decode("latin-1"), body)
                if status == 0:  # a hang: never answer on this connection
                    await asyncio.sleep(self.hang_seconds)
                    break
                data = json.dumps(payload).encode()
                head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                head += f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n"
                writer.write(head.encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # client went away, or the server is shutting down
        finally:
            writer.close()

    async def _respond(self, request_line: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        if "/completions" not in request_line:
            return 404, {}, {"error": {"message": "not found", "type": "invalid_request_error"}}
        self.counts["requests"] += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.latency)
            if self.status is not None:
                self.counts[str(self.status)] += 1
                return self.status, {}, {"error": {"message": f"injected {self.status}", "type": "error", "code": self.status}}
            draw = self.rng.random()
            for fault, rate in self.rates.items():
                if draw < rate:
                    self.counts[fault] += 1
                    if fault == "429":
                        return 429, {"Retry-After": str(self.retry_after)}, {"error": {"message": "rate limited", "type": "rate_limit"}}
                    if fault == "500":
                        return 500, {}, {"error": {"message": "server error", "type": "server_error"}}
                    return 0, {}, None
                draw -= rate
            if self.answer_limit is not None and self.counts["200"] >= self.answer_limit:
                self.counts["held"] += 1
                await asyncio.sleep(10**6)  # cancelled when the server stops
            request = json.loads(body)
            if self.complete is not None:
                return 200, {}, self._served(request, chat="/chat/completions" in request_line)
            if "/chat/completions" not in request_line:
                return 404, {}, {"error": {"message": "not found", "type": "invalid_request_error"}}
            return 200, {}, self._completion(request)
        finally:
            self.active -= 1

    def _served(self, request: dict[str, Any], chat: bool) -> dict[str, Any]:
        """A served student's answer: ``complete(prompt, i)`` for each of the ``n`` choices (one if ``ignore_n``)."""
        assert self.complete is not None
        prompt = request["messages"][-1]["content"] if chat else request["prompt"]
        prompt = prompt[0] if isinstance(prompt, list) else prompt
        n = 1 if self.ignore_n else int(request.get("n") or 1)
        self.counts["200"] += 1
        self.questions[prompt] += 1
        start = self.questions[prompt] - 1 if self.ignore_n else 0  # asked again for one more: the next choice
        texts = [self.complete(prompt, start + i) for i in range(n)]
        if chat:
            choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"} for i, t in enumerate(texts)]
        else:
            choices = [{"index": i, "text": t, "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)]
        return {"id": f"cmpl-{self.counts['200']}", "object": "chat.completion" if chat else "text_completion", "created": 0,
                "model": request.get("model", "fake"), "choices": choices,
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": sum(map(len, texts)) // 4,
                          "total_tokens": (len(prompt) + sum(map(len, texts))) // 4}}

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        messages = request["messages"]
        last = messages[-1]["content"]
        question = re.search(r"Question: (.*)", last)
        question = question.group(1) if question else last
        self.questions[question] += 1
        gold = re.search(r"Correct answer: (\([A-Z]\)|yes|no)", last)
        answer = gold.group(1) if gold else "yes"
        n = int(request.get("n") or 1)
        choices = []
        for i in range(n):
            h = int(hashlib.sha256(f"{question}|{i}".encode()).hexdigest(), 16)
            kind = ("malformed" if (h % 10_000) / 10_000 < self.rate_malformed else
                    "wrong" if (h // 10_000 % 10_000) / 10_000 < self.rate_wrong else "right")
            self.sent[(question, i)] = kind
            if kind == "malformed":
                text = f"I am not sure about {question.lower()} [{h % 97}]"
            else:
                written = _wrong(answer) if kind == "wrong" else answer
                text = f"Fact {h % 1000} about the question {question!r} holds. So the answer is {written}."
            choices.append({"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"})
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4
        completion_tokens = sum(len(c["message"]["content"]) for c in choices) // 4
        self.counts["200"] += 1
        return {
            "id": f"chatcmpl-{self.counts['200']}",
            "object": "chat.completion",
            "created": 0,
            "model": request.get("model", "fake"),
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }


def _wrong(answer: str) -> str:
    """Another answer of the same kind: yes <-> no, (A) -> (B) -> ... -> (D) -> (A)."""
    if answer in ("yes", "no"):
        return "no" if answer == "yes" else "yes"
    return f"({'ABCD'[('ABCD'.index(answer[1]) + 1) % 4]})"


def main() -> None:
    """Serve until killed: ``python -m kard_chain.testing.openai_server --latency 0.2`` prints the URL."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Fake OpenAI chat-completions server with injected faults.")
    for flag in ("latency", "rate-429", "rate-500", "rate-hang", "rate-malformed", "rate-wrong"):
        parser.add_argument(f"--{flag}", type=float, default=0.0)
    parser.add_argument("--hang-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with FakeOpenAIServer(
        latency=args.latency, rate_429=args.rate_429, rate_500=args.rate_500, rate_hang=args.rate_hang,
        hang_seconds=args.hang_seconds, rate_malformed=args.rate_malformed, rate_wrong=args.rate_wrong, seed=args.seed,
    ) as server:
        print(server.url, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
