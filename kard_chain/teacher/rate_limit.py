"""An asyncio rate limiter for requests and tokens per minute (two token buckets)."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Waits before each request so that at most ``requests_per_minute`` requests and
    ``tokens_per_minute`` tokens go out per minute (``None`` lifts a limit).

    Each bucket holds ``burst_seconds`` worth of its rate, so a run starts with a small
    burst rather than a whole minute's allowance at once. Tokens are reserved from an
    estimate before the request and corrected with :meth:`settle` once the real count is
    known; the bucket may go into debt, which later requests wait out.
    """

    def __init__(
        self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None, *, burst_seconds: float = 10.0
    ) -> None:
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self._max_requests = max(1.0, (requests_per_minute or 0) * burst_seconds / 60)
        self._max_tokens = max(1.0, (tokens_per_minute or 0) * burst_seconds / 60)
        self._requests, self._tokens = self._max_requests, self._max_tokens
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        if self.rpm:
            self._requests = min(self._max_requests, self._requests + elapsed * self.rpm / 60)
        if self.tpm:
            self._tokens = min(self._max_tokens, self._tokens + elapsed * self.tpm / 60)

    async def acquire(self, requests: int = 1, tokens: int = 0) -> None:
        """Wait until ``requests`` requests and ``tokens`` tokens may be spent, then spend them."""
        async with self._lock:
            while True:
                self._refill()
                wait = 0.0
                if self.rpm and self._requests < requests:
                    wait = max(wait, (requests - self._requests) * 60 / self.rpm)
                need = min(tokens, self._max_tokens)  # a request larger than the bucket waits for a full one
                if self.tpm and self._tokens < need:
                    wait = max(wait, (need - self._tokens) * 60 / self.tpm)
                if wait <= 1e-9:  # a rounding error's worth: a clock may not even advance by it
                    self._requests -= requests if self.rpm else 0
                    self._tokens -= tokens if self.tpm else 0
                    return
                await asyncio.sleep(wait)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct a token reservation once the real count is known."""
        if self.tpm:
            self._tokens -= actual - estimated
