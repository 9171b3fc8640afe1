"""Teacher throughput: ``kard teach``'s runner against a local OpenAI-compatible server.

    python benchmarks/teacher_bench.py --examples 1000 --n 5 --latency 0.2 --concurrency 1 8 32 64

The server (a separate process, so it does not share our GIL) answers each request after
``--latency`` seconds and fails ``--failures`` of them (half 429 with Retry-After 0.05 s,
half 500). Each run uses the real path: ChatOpenAI -> build_teacher_chain -> teach() ->
JSONL cache. Reported: wall time beside the ideal (examples x latency / concurrency) and
the rationales lost (examples without n rationales in the cache; must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kard_chain.records import Example
from kard_chain.teacher.cache import RationaleCache, read_rationales
from kard_chain.teacher.chain import build_teacher_chain
from kard_chain.teacher.models import load_teacher
from kard_chain.teacher.runner import teach


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--failures", type=float, default=0.10)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32, 64])
    parser.add_argument("--backoff", type=float, default=0.1, help="first retry delay (the runner's --backoff)")
    args = parser.parse_args()

    examples = [Example(id=f"e{i}", question=f"Is statement number {i} true?", answer="yes" if i % 2 else "no") for i in range(args.examples)]
    half = args.failures / 2
    server = subprocess.Popen(
        [sys.executable, "-m", "kard_chain.testing.openai_server", "--latency", str(args.latency), "--rate-429", str(half), "--rate-500", str(half)],
        stdout=subprocess.PIPE, text=True,
    )
    url = server.stdout.readline().strip()
    os.environ.setdefault("OPENAI_API_KEY", "sk-local-benchmark")
    print(f"machine: {os.cpu_count()} cores; {args.examples} examples, n={args.n}, latency {args.latency * 1000:.0f} ms, "
          f"{args.failures:.0%} injected failures (429/500), backoff {args.backoff} s\n")
    print(f"{'concurrency':>11} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} {'requests failed+retried':>24} {'rationales lost':>16}")
    try:
        for c in args.concurrency:
            model = load_teacher("openai:gpt-4o-mini", base_url=url, timeout=30)
            chain = build_teacher_chain(model, "generic", n=args.n)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "r.jsonl"
                with RationaleCache.open(path) as cache:

                    async def run():
                        try:
                            return await teach(chain, examples, cache, task="generic", mode="rationalize", model="gpt-4o-mini",
                                               concurrency=c, max_retries=20, backoff=args.backoff, show_progress=False)
                        finally:
                            await model.http_async_client.aclose()

                    start = time.perf_counter()
                    summary = asyncio.run(run())
                    wall = time.perf_counter() - start
                records = read_rationales(path)
                lost = sum(args.n - len(records[e.id].rationales) if e.id in records else args.n for e in examples)
            ideal = args.examples * args.latency / c
            print(f"{c:>11} {wall:>8.1f} {ideal:>8.1f} {wall / ideal:>10.2f} {sum(summary.errors.values()):>24} {lost:>16}", flush=True)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
