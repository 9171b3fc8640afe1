"""One question's latency: the trained chain with its student in-process, and the same student behind an
OpenAI-compatible server (another process on the same machine), through ``load_kard_chain(..., served_by=...)``.

    kard demo --size small --out kard-demo-small
    python benchmarks/serving_bench.py --run kard-demo-small --questions 20

The server is this script in ``--serve`` mode: the project's test server (``FakeOpenAIServer``) answering
``/v1/completions`` from the same student folder, one batched ``generate`` of ``n`` samples per request (as vLLM
does), or one sample per request with ``--ignore-n`` (as llama.cpp's server does, so the client asks ``n`` times).
Both sides use the same torch threads and the run's evaluation sampling settings (temperature, max_new_tokens); the questions run one at a time, so the figures are
one user's latency: retrieval, the reranker, the student's samples and the vote. What the served rows add is the
HTTP round trip and the client; a real engine (vLLM on a GPU) replaces the student's share, not that overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def serve(folder: str, ignore_n: bool, threads: int, n: int, sampling: dict) -> None:
    """Serve ``folder``'s student with ``sampling`` until standard input closes; print the base URL first."""
    import torch

    from kard_chain.testing.openai_server import FakeOpenAIServer
    from kard_chain.trained_chain import load_student_llm

    torch.set_num_threads(threads)
    student = load_student_llm(folder, **sampling)
    n = 1 if ignore_n else n
    drawn: dict[str, list[str]] = {}

    def complete(prompt: str, i: int) -> str:
        if ignore_n or i == 0:  # one generate call per request, for all of its choices
            drawn[prompt] = [g.text for g in student.generate([prompt], n=n).generations[0]]
        return drawn[prompt][0 if ignore_n else i]

    with FakeOpenAIServer(complete=complete, ignore_n=ignore_n) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def timed(chain, questions) -> list[float]:
    seconds = []
    for q in questions:
        start = time.perf_counter()
        chain.invoke(q)
        seconds.append(time.perf_counter() - start)
    return seconds


def row(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"| {name} | {statistics.median(seconds) * 1000:.0f} ms | {p90 * 1000:.0f} ms | {statistics.mean(seconds) * 1000:.0f} ms |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished `kard run` / `kard demo` output folder")
    parser.add_argument("--questions", type=int, default=20, help="test questions timed, one at a time")
    parser.add_argument("-n", type=int, default=5, help="samples per question")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on each side")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--ignore-n", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sampling", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.ignore_n, args.threads, args.n, args.sampling)
    if args.run is None:
        parser.error("--run FOLDER is required: a finished kard run or kard demo output folder")

    import torch
    from langchain_openai import OpenAI

    from kard_chain.recipe.stages import examples_file
    from kard_chain.trained_chain import load_kard_chain

    torch.set_num_threads(args.threads)
    run = json.loads((args.run / "run.json").read_text())
    stages = run["stages"]
    student = Path(stages["student-kard"]["folder"]) / "run" / "final"
    questions = examples_file(Path(stages["data"]["folder"]), "test")[: args.questions]  # as the run evaluated them
    in_process = load_kard_chain(args.run, n=args.n)  # the run's evaluation settings: temperature, max_new_tokens
    evaluation = run["recipe"]["evaluation"]
    sampling = {"temperature": evaluation["temperature"], "max_new_tokens": evaluation["max_new_tokens"]}
    settings = json.loads((student / "kard_student.json").read_text())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads each side; student {student} (k={settings.get('k')}); {len(questions)} questions, n={args.n}, "
          f"temperature {sampling['temperature']}, max_new_tokens {sampling['max_new_tokens']} on both sides")
    timed(in_process, questions[:2])  # warm-up: weights and caches
    rows = [row("in-process (load_kard_chain(RUN))", timed(in_process, questions))]
    for ignore_n, name in ((False, "served, n per request (as vLLM)"), (True, "served, one sample per request (as llama.cpp)")):
        cmd = [sys.executable, __file__, "--serve", str(student), "--threads", str(args.threads), "-n", str(args.n),
               "--sampling", json.dumps(sampling)] + (["--ignore-n"] if ignore_n else [])
        with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as server:
            url = server.stdout.readline().strip()
            served = OpenAI(base_url=url, api_key="EMPTY", model="kard-student", max_tokens=sampling["max_new_tokens"],
                            temperature=sampling["temperature"], max_retries=0, timeout=120)
            chain = load_kard_chain(args.run, served_by=served, n=args.n)
            timed(chain, questions[:2])
            rows.append(row(name, timed(chain, questions)))
            server.stdin.close()
    print("| student | median | p90 | mean |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
