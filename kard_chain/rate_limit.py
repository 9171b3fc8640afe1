"""An asyncio rate limiter for requests and tokens per minute (two token buckets)."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Waits before each request so that at most ``requests_per_minute`` requests and
    ``tokens_per_minute`` tokens go out per minute (``None`` lifts a limit).

    Tokens are reserved from an estimate before the request and corrected with
    :meth:`settle` once the real count is known; the bucket may go into debt, which later
    requests wait out.
    """

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None) -> None:
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self._requests = float(requests_per_minute or 0)
        self._tokens = float(tokens_per_minute or 0)
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        if self.rpm:
            self._requests = min(self.rpm, self._requests + elapsed * self.rpm / 60)
        if self.tpm:
            self._tokens = min(self.tpm, self._tokens + elapsed * self.tpm / 60)

    async def acquire(self, requests: int = 1, tokens: int = 0) -> None:
        """Wait until ``requests`` requests and ``tokens`` tokens may be spent, then spend them."""
        async with self._lock:
            while True:
                self._refill()
                wait = 0.0
                if self.rpm and self._requests < requests:
                    wait = max(wait, (requests - self._requests) * 60 / self.rpm)
                if self.tpm and self._tokens < min(tokens, self.tpm):
                    wait = max(wait, (min(tokens, self.tpm) - self._tokens) * 60 / self.tpm)
                if wait <= 0:
                    self._requests -= requests if self.rpm else 0
                    self._tokens -= tokens if self.tpm else 0
                    return
                await asyncio.sleep(wait)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct a token reservation once the real count is known."""
        if self.tpm:
            self._tokens -= actual - estimated
