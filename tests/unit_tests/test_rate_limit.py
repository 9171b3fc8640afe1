import asyncio

import pytest

from kard_chain.teacher.rate_limit import RateLimiter


class FakeClock:
    """The limiter's clock and sleep: sleeping moves the clock at once, so the waits are exact and take no time."""

    def __init__(self, monkeypatch):
        from types import SimpleNamespace

        from kard_chain.teacher import rate_limit

        self.now, self.sleeps = 1000.0, []  # only the limiter's module sees the fakes, not the event loop
        monkeypatch.setattr(rate_limit, "time", SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr(rate_limit, "asyncio", SimpleNamespace(sleep=self.sleep, Lock=asyncio.Lock))

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def run(self, coro) -> float:
        """Run ``coro``; the clock time it took."""
        start = self.now
        asyncio.run(coro)
        return self.now - start


def test_requests_per_minute_are_spaced(monkeypatch):
    clock = FakeClock(monkeypatch)
    limiter = RateLimiter(requests_per_minute=1200, burst_seconds=0.05)  # 20/s, a burst of one

    async def go():
        await asyncio.gather(*(limiter.acquire() for _ in range(11)))

    assert clock.run(go()) == pytest.approx(0.5)  # the first at once, then ten waits of 50 ms
    assert clock.sleeps == pytest.approx([0.05] * 10)


def test_tokens_per_minute_count_the_real_usage(monkeypatch):
    clock = FakeClock(monkeypatch)
    limiter = RateLimiter(tokens_per_minute=6000, burst_seconds=0.1)  # 100 tokens/s, bucket of 10

    async def go():
        for _ in range(3):
            await limiter.acquire(tokens=5)
            limiter.settle(estimated=5, actual=25)  # each request really used 25 tokens

    # 10 -> 5 -> -15 after the first; the second waits for 20 tokens (0.2 s), the third for 25 (0.25 s)
    assert clock.run(go()) == pytest.approx(0.45)
    assert clock.sleeps == pytest.approx([0.2, 0.25])


def test_no_limits_never_wait(monkeypatch):
    clock = FakeClock(monkeypatch)
    assert clock.run(RateLimiter().acquire(requests=100, tokens=10**6)) == 0 and clock.sleeps == []


class RateLimited(Exception):
    """What an HTTP client raises on a 429: a status code and the response's headers."""

    def __init__(self, headers):
        super().__init__("rate limited")
        self.status_code = 429
        self.response = type("Response", (), {"status_code": 429, "headers": headers})()


class FlakyChain:
    """Fails with the given errors, then answers."""

    def __init__(self, *errors):
        self.errors = list(errors)

    async def ainvoke(self, example, config=None):
        if self.errors:
            raise self.errors.pop(0)
        return ["a rationale"]


def sleeps_of(chain, policy, monkeypatch):
    """The delays ``_ask`` waits between its attempts (recorded, not slept)."""
    from kard_chain.records import Example
    from kard_chain.teacher import runner

    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(runner.asyncio, "sleep", fake_sleep)
    summary = runner.TeachSummary()
    result = asyncio.run(runner._ask(chain, Example(id="e", question="q?"), "default", policy, summary))
    assert result is not None and result[0] == ["a rationale"]
    return slept, summary


def test_a_retry_after_longer_than_the_backoff_is_waited_out(monkeypatch):
    from kard_chain.teacher.runner import RetryPolicy

    chain = FlakyChain(RateLimited({"retry-after": "7.5"}), RateLimited({"retry-after-ms": "2500"}))
    slept, summary = sleeps_of(chain, RetryPolicy(backoff=0.001), monkeypatch)
    assert slept == [7.5, 2.5]  # the backoff alone would wait about 1-4 ms
    assert summary.errors["rate_limit_429"] == 2


def test_a_retry_after_shorter_than_the_backoff_does_not_cut_it(monkeypatch):
    from kard_chain.teacher.runner import RetryPolicy

    chain = FlakyChain(RateLimited({"retry-after": "0.01"}), RateLimited({"retry-after": "soon"}), RateLimited({}))
    slept, _ = sleeps_of(chain, RetryPolicy(backoff=2.0, max_backoff=5.0), monkeypatch)
    assert len(slept) == 3  # backoff 2, 4, then capped at 5; each jittered by +-50%
    assert 1.0 <= slept[0] <= 3.0 and 2.0 <= slept[1] <= 6.0 and 2.5 <= slept[2] <= 7.5
