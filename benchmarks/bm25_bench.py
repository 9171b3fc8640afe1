"""BM25 benchmark: rank_bm25 vs kard-chain's fast backend vs bm25s, side by side.

    python benchmarks/bm25_bench.py --sizes 100000 1000000 --data-dir ../shared/data

For each corpus (synthetic Zipf corpora of the given sizes, and StrategyQA's 9,251
paragraphs when --data-dir is given) every system runs in its own process, so that peak
memory is its own. Reported: tokenising, indexing and whole-build time, peak memory added by
the build and peak RSS, index size on disk, load time, single-thread queries/s for top-100,
and the top-10 agreement and largest score difference of our backend against rank_bm25.
Needs the [bench] extra (bm25s, psutil, numba).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SYSTEMS = ("rank_bm25", "kard", "bm25s")
SEED = 1234
N_TYPES = 200_000


def word(i: int) -> str:
    """Word type i as a letters-only string (never a stop word)."""
    s = "q"
    while True:
        s += "bcdfghjklmnprstvz"[i % 17]
        i //= 17
        if not i:
            return s


def make_corpus(n_docs: int, path: Path, n_queries: int = 200) -> list[str]:
    """Write n_docs passages of 80-120 words, Zipf over 200k types, to JSONL (kept for the next run); return the queries."""
    words = np.array([word(i) for i in range(N_TYPES)], dtype=object)
    p = 1.0 / np.arange(1, N_TYPES + 1)
    p /= p.sum()
    if not path.is_file():
        rng = np.random.default_rng(SEED)
        tmp = path.with_suffix(".partial")
        with tmp.open("w") as f:
            for lo in range(0, n_docs, 50_000):
                n = min(50_000, n_docs - lo)
                lens = rng.integers(80, 121, size=n)
                ids = rng.choice(N_TYPES, size=int(lens.sum()), p=p)
                for i, chunk in enumerate(np.split(ids, np.cumsum(lens)[:-1])):
                    f.write(json.dumps({"id": f"d{lo + i}", "text": " ".join(words[chunk])}) + "\n")
        tmp.replace(path)
    rng = np.random.default_rng(SEED + 1)
    qlens = rng.integers(10, 31, size=n_queries)
    return [" ".join(words[rng.choice(N_TYPES, size=int(n), p=p)]) for n in qlens]


class PeakRSS:
    """Samples this process's RSS every 10 ms; ``peak`` is the largest seen above the start."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> float:
        """Stop sampling; return the peak's growth over the start, in GiB (``peak`` keeps the absolute bytes)."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return (self.peak - self.start) / 2**30


def dir_size(path: Path, skip: tuple[str, ...] = ()) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name not in skip) / 2**20


def read_texts(corpus: Path) -> tuple[list[str], list[str]]:
    from kard_chain.knowledge import load_passages

    ids, texts = [], []
    for p in load_passages(corpus):
        ids.append(p.id)
        texts.append(f"{p.title} {p.text}" if p.title else p.text)
    return ids, texts


def run_system(system: str, corpus: Path, queries: list[str], n_queries: int, work: Path, memory_gib: float) -> dict:
    """Build, save, load and query one system; runs in its own process."""
    from kard_chain.bm25.tokenizer import BM25Tokenizer

    tokenizer = BM25Tokenizer()
    queries = queries[:n_queries]
    out: dict = {"system": system, "queries": len(queries)}
    if system == "kard":
        from kard_chain.bm25.index import BM25Index, BM25Params, build_index
        from kard_chain.knowledge import load_passages
        from kard_chain.retrievers.bm25 import BM25Retriever

        t = time.perf_counter()
        for p in load_passages(corpus):  # the tokenising share, timed on its own
            tokenizer(f"{p.title} {p.text}" if p.title else p.text)
        out["tokenize_s"] = time.perf_counter() - t
        mem = PeakRSS()
        t = time.perf_counter()
        build_index(load_passages(corpus), work / "kard", params=BM25Params(method="okapi"), show_progress=False,  # rank_bm25 parity
                    overwrite=True, memory_gib=memory_gib)
        out["build_s"] = time.perf_counter() - t
        out["peak_gib"] = mem.stop()
        out["peak_rss_gib"] = mem.peak / 2**30
        out["index_s"] = out["build_s"] - out["tokenize_s"]
        out["size_mib"] = dir_size(work / "kard", skip=("passages.jsonl", "passage_offsets.npy"))
        t = time.perf_counter()
        retriever = BM25Retriever.load(work / "kard", k=100)
        out["load_s"] = time.perf_counter() - t
        index: BM25Index = retriever.index
        index.top_k(queries[:1], 100)  # numba compile / page-in
        t = time.perf_counter()
        results = [index.top_k([q], 100) for q in queries]
        out["qps"] = len(queries) / (time.perf_counter() - t)
        t = time.perf_counter()
        for q in queries:
            retriever.invoke(q)
        out["qps_invoke"] = len(queries) / (time.perf_counter() - t)
        out["top10"] = [[index.passage_ids[r] for r in rows[0][:10] if r >= 0] for rows, _ in results]
        out["top10_scores"] = [scores[0][:10].tolist() for _, scores in results]
        return out

    ids, texts = read_texts(corpus)
    if system == "rank_bm25":
        from rank_bm25 import BM25Okapi

        t = time.perf_counter()
        tokens = [tokenizer(x) for x in texts]
        out["tokenize_s"] = time.perf_counter() - t
        del texts
        mem = PeakRSS()
        t = time.perf_counter()
        bm25 = BM25Okapi(tokens)
        out["index_s"] = time.perf_counter() - t
        out["peak_gib"] = mem.stop()
        out["build_s"] = out["tokenize_s"] + out["index_s"]
        t = time.perf_counter()
        top = []
        for q in queries:
            scores = bm25.get_scores(tokenizer(q))
            best = np.argpartition(-scores, 100)[:100]
            best = best[np.lexsort((best, -scores[best]))]
            top.append((best[:10], scores[best[:10]]))
        out["qps"] = len(queries) / (time.perf_counter() - t)
        out["top10"] = [[ids[i] for i in rows] for rows, _ in top]
        out["top10_scores"] = [s.tolist() for _, s in top]
        return out

    import bm25s

    backend = "numba" if _has_numba() else "numpy"
    t = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
    out["tokenize_s"] = time.perf_counter() - t
    del texts
    mem = PeakRSS()
    t = time.perf_counter()
    model = bm25s.BM25(backend=backend)
    model.index(tokens, show_progress=False)
    out["index_s"] = time.perf_counter() - t
    out["peak_gib"] = mem.stop()
    out["peak_rss_gib"] = mem.peak / 2**30
    out["build_s"] = out["tokenize_s"] + out["index_s"]
    model.save(work / "bm25s", show_progress=False)
    out["size_mib"] = dir_size(work / "bm25s")
    t = time.perf_counter()
    model = bm25s.BM25.load(work / "bm25s", mmap=True, show_progress=False)
    out["load_s"] = time.perf_counter() - t
    model.backend = backend
    out["system"] = f"bm25s ({backend})"
    qtok = bm25s.tokenize(queries[:1], stopwords="en", show_progress=False, return_ids=False)
    model.retrieve(qtok, k=100, n_threads=1, show_progress=False)  # compile
    t = time.perf_counter()
    for q in queries:
        qtok = bm25s.tokenize([q], stopwords="en", show_progress=False, return_ids=False)
        model.retrieve(qtok, k=100, n_threads=1, show_progress=False)
    out["qps"] = len(queries) / (time.perf_counter() - t)
    return out


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def agreement(ours: dict, ref: dict) -> tuple[float, float]:
    """Mean top-10 overlap and largest score difference at equal ranks, over the reference's queries."""
    n = ref["queries"]
    overlap = np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(ours["top10"][:n], ref["top10"])])
    diff = max(float(np.max(np.abs(np.asarray(a[: len(b)]) - np.asarray(b)))) for a, b in zip(ours["top10_scores"][:n], ref["top10_scores"]) if b)
    return float(overlap), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="synthetic corpus sizes")
    parser.add_argument("--data-dir", type=Path, help="shared/data folder: adds the StrategyQA paragraphs")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rank-bm25-queries", type=int, default=20, help="queries for rank_bm25 above 100k passages")
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--work-dir", type=Path, help="where corpora (kept for the next run) and indexes go (default: a temporary folder)")
    parser.add_argument("--memory-gib", type=float, default=2.0, help="our build's memory budget (build_index(memory_gib=))")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._child:  # one system on one corpus, in this process
        system, corpus, spec = args._child
        spec = json.loads(Path(spec).read_text())
        result = run_system(system, Path(corpus), spec["queries"], spec["n_queries"], Path(spec["work"]), spec["memory_gib"])
        Path(spec["out"]).write_text(json.dumps(result))
        return

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-bm25-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpora: list[tuple[str, Path, list[str]]] = []
    for n in args.sizes:
        path = work / f"zipf-{n}.jsonl"
        t = time.perf_counter()
        existed = path.is_file()
        queries = make_corpus(n, path, args.queries)
        if not existed:
            print(f"generated {n:,} passages in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        corpora.append((f"zipf {n:,}", path, queries))
    if args.data_dir:
        from kard_chain.datasets import load_dataset

        sqa = args.data_dir / "strategyqa"
        questions = [e.question for e in load_dataset("strategyqa", sqa)][: args.queries]
        corpora.append(("StrategyQA 9,251", sqa / "strategyqa_train_paragraphs.json", questions))

    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; single-thread queries, top-100; "
          f"our build's memory budget {args.memory_gib} GiB\n")
    header = (f"{'corpus':<18} {'system':<16} {'tokenise s':>10} {'index s':>8} {'build s':>8} {'+GiB':>6} {'RSS GiB':>7} "
              f"{'disk MiB':>8} {'load s':>7} {'q/s':>8} {'q/s invoke':>10}")
    print(header)
    print("-" * len(header))
    for name, path, queries in corpora:
        results = {}
        for system in args.systems:
            n_docs = sum(1 for _ in open(path)) if path.suffix == ".jsonl" else 9251
            n_queries = args.rank_bm25_queries if system == "rank_bm25" and n_docs > 100_000 else len(queries)
            run_dir = work / f"{name.replace(' ', '_').replace(',', '')}-{system}"
            run_dir.mkdir(exist_ok=True)
            spec = run_dir / "spec.json"
            spec.write_text(json.dumps({"queries": queries, "n_queries": n_queries, "work": str(run_dir), "out": str(run_dir / "result.json"),
                                        "memory_gib": args.memory_gib}))
            subprocess.run([sys.executable, __file__, "--_child", system, str(path), str(spec)], env=env, check=True)
            r = results[system] = json.loads((run_dir / "result.json").read_text())

            def fmt(key: str, spec: str) -> str:
                return format(r[key], spec) if key in r else "-"

            print(
                f"{name:<18} {r['system']:<16} {fmt('tokenize_s', '10.1f')} {fmt('index_s', '8.1f')} {fmt('build_s', '8.1f')} "
                f"{fmt('peak_gib', '6.2f')} {fmt('peak_rss_gib', '7.2f')} "
                f"{fmt('size_mib', '8.0f')} {fmt('load_s', '7.2f')} {fmt('qps', '8.1f')} {fmt('qps_invoke', '10.1f')}",
                flush=True,
            )
        if "kard" in results and "rank_bm25" in results:
            overlap, diff = agreement(results["kard"], results["rank_bm25"])
            print(f"{name:<18} kard vs rank_bm25 over {results['rank_bm25']['queries']} queries: top-10 agreement {overlap:.4f}, largest score difference {diff:.2e}")
        print()


if __name__ == "__main__":
    main()
