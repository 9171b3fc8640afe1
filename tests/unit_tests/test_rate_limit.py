import asyncio
import time

from kard_chain.teacher.rate_limit import RateLimiter


def run_timed(coro):
    start = time.perf_counter()
    asyncio.run(coro)
    return time.perf_counter() - start


def test_requests_per_minute_are_spaced():
    limiter = RateLimiter(requests_per_minute=1200, burst_seconds=0.05)  # 20/s, a burst of one

    async def go():
        await asyncio.gather(*(limiter.acquire() for _ in range(11)))

    assert 0.45 <= run_timed(go()) <= 1.5  # ten waits of 50 ms


def test_tokens_per_minute_count_the_real_usage():
    limiter = RateLimiter(tokens_per_minute=6000, burst_seconds=0.1)  # 100 tokens/s, bucket of 10

    async def go():
        for _ in range(3):
            await limiter.acquire(tokens=5)
            limiter.settle(estimated=5, actual=25)  # each request really used 25 tokens

    assert 0.4 <= run_timed(go()) <= 1.5  # ~50 tokens of debt at 100/s


def test_no_limits_never_wait():
    assert run_timed(RateLimiter().acquire(requests=100, tokens=10**6)) < 0.05
