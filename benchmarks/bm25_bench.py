"""BM25 benchmark: kard-chain's index beside Lucene (Pyserini), rank_bm25 and bm25s.

    python benchmarks/bm25_bench.py --systems kard lucene --corpora zipf sqa-fitted \\
        --sizes 1000000 2000000 5000000 --data-dir ../shared/data --work-dir /tmp/bm25w

Corpora (generated once into --work-dir, then reused):

- ``zipf``: passages of 80-120 words drawn from a Zipf law (1/rank) over 200k word types;
  queries of 10 ("question") and 40 ("rationale") words drawn from the same law.
- ``sqa-fitted``: passages drawn from a unigram model fitted on StrategyQA's 9,251 Wikipedia
  paragraphs (their words and counts for the words seen 5 times or more, a power law fitted on
  the rank-frequency curve for the rarer ranks, extended to 3M word types as Wikipedia's
  vocabulary grows) with the paragraphs' length distribution; queries are StrategyQA questions
  ("question") and their facts joined ("rationale"), in the corpus's words.
- ``sqa-paragraphs``: the 9,251 paragraphs themselves, with the same queries.

All text is written as our tokenizer's tokens (lower case, stop words removed), and Lucene reads
it with its whitespace analyzer, so both systems see the same terms; both use BM25 with k1 = 1.5,
b = 0.75 and Lucene's idf (our ``method="lucene"``), Lucene with its one-byte length norms.

Each system runs in its own process on each corpus: build (time, peak RSS of the process tree,
size on disk), load, then single-thread queries/s one query at a time for top-100 and top-10, and
a batch of all queries on 1 thread and on 2 (best of three runs). Our rows: exhaustive scoring, pruned (block-max
ranges + MaxScore) and the default (pruned up to 12 query terms, exhaustive above); the top-k
rows and scores of the last two are checked equal to exhaustive scoring's on every query. Needs the [bench] extra; ``lucene`` needs ``pip install pyserini==0.22.1 faiss-cpu`` and
Java 17.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

SYSTEMS = ("kard", "lucene", "rank_bm25", "bm25s")
CORPORA = ("zipf", "sqa-fitted", "sqa-paragraphs")
SEED = 1234
N_TYPES = 200_000
K1, B = 1.5, 0.75


def word(i: int, first: str = "q") -> str:
    """Word type i as a letters-only string (never a stop word)."""
    s = first
    while True:
        s += "bcdfghjklmnprstvz"[i % 17]
        i //= 17
        if not i:
            return s


def _write_passages(path: Path, n_docs: int, draw) -> None:
    """Write ``n_docs`` passages, 50,000 at a time from ``draw(n) -> list of texts``, atomically."""
    tmp = path.with_suffix(".partial")
    with tmp.open("w") as f:
        for lo in range(0, n_docs, 50_000):
            for i, text in enumerate(draw(min(50_000, n_docs - lo))):
                f.write(json.dumps({"id": f"d{lo + i}", "text": text}) + "\n")
    tmp.replace(path)


def zipf_corpus(n_docs: int, path: Path, n_queries: int) -> dict[str, list[str]]:
    """The Zipf corpus (written if missing) and its question- and rationale-length queries."""
    words = np.array([word(i) for i in range(N_TYPES)], dtype=object)
    p = 1.0 / np.arange(1, N_TYPES + 1)
    p /= p.sum()
    if not path.is_file():
        rng = np.random.default_rng(SEED)

        def draw(n: int) -> list[str]:
            lens = rng.integers(80, 121, size=n)
            ids = rng.choice(N_TYPES, size=int(lens.sum()), p=p)
            return [" ".join(words[chunk]) for chunk in np.split(ids, np.cumsum(lens)[:-1])]

        _write_passages(path, n_docs, draw)
    rng = np.random.default_rng(SEED + 1)
    return {name: [" ".join(words[rng.choice(N_TYPES, size=length, p=p)]) for _ in range(n_queries)]
            for name, length in (("question", 10), ("rationale", 40))}


@functools.cache
def sqa_paragraph_tokens(data_dir: Path) -> dict[str, list[str]]:
    """StrategyQA's paragraphs (title and text) as our tokenizer's tokens, by id: tokenised once per process."""
    from kard_chain.bm25.tokenizer import BM25Tokenizer

    tokenizer = BM25Tokenizer()
    paragraphs = json.loads((data_dir / "strategyqa" / "strategyqa_train_paragraphs.json").read_text())
    return {pid: tokenizer(f"{p['title']} {p['content']}") for pid, p in paragraphs.items()}


@functools.cache
def sqa_model(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, frozenset[str]]:
    """Words, their probabilities, passage lengths (in tokens) and the words seen, fitted on StrategyQA's paragraphs."""
    paragraphs = sqa_paragraph_tokens(data_dir).values()
    counts: Counter[str] = Counter(t for tokens in paragraphs for t in tokens)
    lengths = [len(tokens) for tokens in paragraphs]
    ranked = counts.most_common()
    freq = np.array([c for _, c in ranked], dtype=np.float64)
    head = int((freq >= 5).sum())  # counts below 5 are too noisy to keep as they are
    ranks = np.arange(1, len(freq) + 1)
    fit = slice(max(head // 10, 10), head)  # the power law of the mid ranks
    slope, intercept = np.polyfit(np.log(ranks[fit]), np.log(freq[fit]), 1)
    n_types = 3_000_000
    tail_ranks = np.arange(head + 1, n_types + 1)
    prob = np.concatenate([freq[:head], np.exp(intercept) * tail_ranks**slope])
    words = np.array([w for w, _ in ranked] + [word(i, "x") for i in range(n_types - len(ranked))], dtype=object)
    return words, prob / prob.sum(), np.array([n for n in lengths if n > 0]), frozenset(counts)


def sqa_queries(data_dir: Path, n_queries: int, known: frozenset[str]) -> dict[str, list[str]]:
    """StrategyQA questions and their facts joined, as tokens the corpus holds."""
    from kard_chain.bm25.tokenizer import BM25Tokenizer

    tokenizer = BM25Tokenizer()
    records = json.loads((data_dir / "strategyqa" / "strategyqa_train.json").read_text())[:n_queries]

    def tokens(text: str) -> str:
        return " ".join(t for t in tokenizer(text) if t in known)

    return {"question": [tokens(r["question"]) for r in records], "rationale": [tokens(" ".join(r["facts"])) for r in records]}


def sqa_fitted_corpus(n_docs: int, path: Path, n_queries: int, data_dir: Path) -> dict[str, list[str]]:
    """The StrategyQA-fitted corpus (written if missing) and StrategyQA's queries."""
    words, prob, lengths, seen = sqa_model(data_dir)
    if not path.is_file():
        rng = np.random.default_rng(SEED)

        def draw(n: int) -> list[str]:
            lens = rng.choice(lengths, size=n)
            ids = rng.choice(len(words), size=int(lens.sum()), p=prob)
            return [" ".join(words[chunk]) for chunk in np.split(ids, np.cumsum(lens)[:-1])]

        _write_passages(path, n_docs, draw)
    return sqa_queries(data_dir, n_queries, seen)


def sqa_paragraphs(path: Path, n_queries: int, data_dir: Path) -> dict[str, list[str]]:
    """StrategyQA's paragraphs as tokens (written if missing), with StrategyQA's queries."""
    paragraphs = sqa_paragraph_tokens(data_dir)
    if not path.is_file():
        tmp = path.with_suffix(".partial")
        tmp.write_text("".join(json.dumps({"id": pid, "text": " ".join(tokens)}) + "\n" for pid, tokens in paragraphs.items() if tokens))
        tmp.replace(path)
    return sqa_queries(data_dir, n_queries, sqa_model(data_dir)[3])


class PeakRSS:
    """Samples the RSS of this process and its children every 10 ms; ``peak`` is the largest sum seen."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.start = self._rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        import psutil

        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):  # a child that has just exited
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> float:
        """Stop sampling; return the peak's growth over the start, in GiB (``peak`` keeps the absolute bytes)."""
        self._stop.set()
        self._thread.join()
        return (self.peak - self.start) / 2**30


def dir_size(path: Path, skip: tuple[str, ...] = ()) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name not in skip) / 2**20


def read_texts(corpus: Path) -> tuple[list[str], list[str]]:
    """The corpus's passage ids and texts."""
    ids, texts = [], []
    with corpus.open() as f:
        for line in f:
            p = json.loads(line)
            ids.append(p["id"])
            texts.append(p["text"])
    return ids, texts


def timed_qps(search, queries: list[str]) -> float:
    """Queries per second, one query at a time (after a warm-up pass over 30 of them: the JIT, the page cache)."""
    for q in queries[:30]:
        search(q)
    t = time.perf_counter()
    for q in queries:
        search(q)
    return len(queries) / (time.perf_counter() - t)


def run_kard(corpus: Path, query_sets: dict[str, list[str]], work: Path, memory_gib: float, method: str) -> dict:
    from kard_chain.bm25.index import BM25Index, BM25Params, build_index
    from kard_chain.knowledge import load_passages

    out: dict = {"system": "kard", "sets": {}}
    mem = PeakRSS()
    t = time.perf_counter()
    build_index(load_passages(corpus), work / "kard", params=BM25Params(method=method, k1=K1, b=B), show_progress=False,
                overwrite=True, memory_gib=memory_gib)
    out["build_s"] = time.perf_counter() - t
    mem.stop()
    out["peak_rss_gib"] = mem.peak / 2**30
    out["size_mib"] = dir_size(work / "kard", skip=("passages.jsonl", "passage_offsets.npy"))
    t = time.perf_counter()
    index = BM25Index.load(work / "kard")
    out["load_s"] = time.perf_counter() - t
    for name, queries in query_sets.items():
        r: dict = {}
        for label, prune in (("exhaustive", False), ("pruned", True), ("default", None)):
            index.top_k(queries, 100, prune=prune, threads=1)  # warm-up: compile, page in
            for k in (100, 10):
                r[f"{label} top{k}"] = timed_qps(lambda q: index.top_k([q], k, prune=prune, threads=1), queries)  # noqa: B023
            for threads in (1, 2):
                r[f"{label} batch{threads}"] = 0.0
                for _ in range(3):  # best of three: other work on the machine only slows a run down
                    t = time.perf_counter()
                    rows, scores = index.top_k(queries, 100, prune=prune, threads=threads)
                    r[f"{label} batch{threads}"] = max(r[f"{label} batch{threads}"], len(queries) / (time.perf_counter() - t))
            r[label] = (rows, scores, index.top_k(queries, 10, prune=prune, threads=2))
        ex_rows, ex_scores, _ = r.pop("exhaustive")
        r["exact"] = all(np.array_equal(rows, ex_rows) and np.array_equal(scores, ex_scores, equal_nan=True)
                         and np.array_equal(top10[0], ex_rows[:, :10]) and np.array_equal(top10[1], ex_scores[:, :10], equal_nan=True)
                         for rows, scores, top10 in (r.pop("pruned"), r.pop("default")))
        r["ids10"] = [[index.passage_ids[i] for i in row if i >= 0] for row in ex_rows[:, :10]]
        r["terms"] = float(np.mean(np.diff(index.encode_queries(queries)[0])))
        out["sets"][name] = r
    return out


def run_lucene(corpus: Path, query_sets: dict[str, list[str]], work: Path) -> dict:
    from pyserini.pyclass import autoclass  # pyserini sets the JVM's classpath before jnius starts it
    from pyserini.search.lucene import LuceneSearcher

    out: dict = {"system": "lucene (Pyserini 0.22.1)", "sets": {}}
    collection = work / "lucene-input"
    collection.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with corpus.open() as src, (collection / "docs.jsonl").open("w") as dst:  # the text is tokens already
        for line in src:
            p = json.loads(line)
            dst.write(json.dumps({"id": p["id"], "contents": p["text"]}) + "\n")
    out["convert_s"] = time.perf_counter() - t
    shutil.rmtree(work / "lucene", ignore_errors=True)
    mem = PeakRSS()
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection", "--input", str(collection),
                    "--index", str(work / "lucene"), "--generator", "DefaultLuceneDocumentGenerator", "--threads", "2",
                    "--pretokenized", "--optimize"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out["build_s"] = time.perf_counter() - t
    mem.stop()
    out["peak_rss_gib"] = mem.peak / 2**30
    shutil.rmtree(collection)
    out["size_mib"] = dir_size(work / "lucene")
    t = time.perf_counter()
    searcher = LuceneSearcher(str(work / "lucene"))
    searcher.set_bm25(K1, B)
    searcher.set_analyzer(autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")())
    out["load_s"] = time.perf_counter() - t
    for name, queries in query_sets.items():
        queries = [q or "absent" for q in queries]  # an empty query string is refused by the parser
        r: dict = {}
        for k in (100, 10):
            r[f"top{k}"] = timed_qps(lambda q: searcher.search(q, k), queries)  # noqa: B023
        qids = [str(i) for i in range(len(queries))]
        for threads in (1, 2):
            r[f"batch{threads}"] = 0.0
            for _ in range(3):
                t = time.perf_counter()
                hits = searcher.batch_search(queries, qids, 100, threads)
                r[f"batch{threads}"] = max(r[f"batch{threads}"], len(queries) / (time.perf_counter() - t))
        r["ids10"] = [[h.docid for h in hits[q][:10]] for q in qids]
        out["sets"][name] = r
    return out


def run_rank_bm25(corpus: Path, query_sets: dict[str, list[str]], n_queries: int) -> dict:
    from rank_bm25 import BM25Okapi

    ids, texts = read_texts(corpus)
    t = time.perf_counter()
    bm25 = BM25Okapi([x.split() for x in texts], k1=K1, b=B)
    out: dict = {"system": "rank_bm25", "build_s": time.perf_counter() - t, "sets": {}}
    for name, queries in query_sets.items():
        r: dict = {}
        for k in (100, 10):
            def search(q: str, k: int = k) -> np.ndarray:
                scores = bm25.get_scores(q.split())
                best = np.argpartition(-scores, k)[:k]
                return best[np.lexsort((best, -scores[best]))]

            r[f"top{k}"] = timed_qps(search, queries[:n_queries])
        r["ids10"] = [[ids[i] for i in search(q, 10)] for q in queries[:n_queries]]  # the reference's top 10, for the overlap
        out["sets"][name] = r
    return out


def run_bm25s(corpus: Path, query_sets: dict[str, list[str]], work: Path) -> dict:
    import bm25s

    backend = "numba" if _has_numba() else "numpy"
    _, texts = read_texts(corpus)
    mem = PeakRSS()
    t = time.perf_counter()
    model = bm25s.BM25(backend=backend, k1=K1, b=B, method="lucene")
    model.index([x.split() for x in texts], show_progress=False)
    out: dict = {"system": f"bm25s ({backend})", "build_s": time.perf_counter() - t, "sets": {}}
    mem.stop()
    out["peak_rss_gib"] = mem.peak / 2**30
    model.save(work / "bm25s", show_progress=False)
    out["size_mib"] = dir_size(work / "bm25s")
    t = time.perf_counter()
    model = bm25s.BM25.load(work / "bm25s", mmap=True, show_progress=False)
    out["load_s"] = time.perf_counter() - t
    model.backend = backend
    for name, queries in query_sets.items():
        r: dict = {}
        for k in (100, 10):
            r[f"top{k}"] = timed_qps(lambda q: model.retrieve([q.split() or ["absent"]], k=k, n_threads=1, show_progress=False),  # noqa: B023
                                     queries)
        out["sets"][name] = r
    return out


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def overlap(a: list[list[str]], b: list[list[str]]) -> float:
    """Mean share of b's top 10 that a's top 10 holds."""
    return float(np.mean([len(set(x) & set(y)) / max(len(y), 1) for x, y in zip(a, b)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="generated corpus sizes")
    parser.add_argument("--corpora", nargs="*", choices=CORPORA, help="default: zipf, and the sqa corpora when --data-dir is given")
    parser.add_argument("--data-dir", type=Path, help="shared/data folder (StrategyQA) for the sqa corpora")
    parser.add_argument("--queries", type=int, default=200, help="queries of each length")
    parser.add_argument("--rank-bm25-queries", type=int, default=20, help="queries for rank_bm25 above 100k passages")
    parser.add_argument("--systems", nargs="*", default=["kard", "lucene"], choices=SYSTEMS)
    parser.add_argument("--work-dir", type=Path, help="where corpora (kept for the next run) and indexes go (default: a temporary folder)")
    parser.add_argument("--keep-indexes", action="store_true", help="keep each system's index (default: delete it after its run)")
    parser.add_argument("--memory-gib", type=float, default=2.0, help="our build's memory budget (build_index(memory_gib=))")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--tables", type=Path, nargs="*", help="print the tables of earlier runs' --json files, together, and stop")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.tables:
        print("\n\n".join(tables([r for f in args.tables for r in json.loads(f.read_text())])))
        return

    if args._child:  # one system on one corpus, in this process
        system, corpus, spec_file = args._child
        spec = json.loads(Path(spec_file).read_text())
        corpus, work, sets = Path(corpus), Path(spec["work"]), spec["query_sets"]
        if system == "kard":
            result = run_kard(corpus, sets, work, spec["memory_gib"], spec["method"])
        elif system == "lucene":
            result = run_lucene(corpus, sets, work)
        elif system == "rank_bm25":
            result = run_rank_bm25(corpus, sets, spec["rank_bm25_queries"])
        else:
            result = run_bm25s(corpus, sets, work)
        Path(spec["out"]).write_text(json.dumps(result))
        return

    corpora_names = args.corpora or (list(CORPORA) if args.data_dir else ["zipf"])
    if any(c.startswith("sqa") for c in corpora_names) and not args.data_dir:
        parser.error("the sqa corpora need --data-dir")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-bm25-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpora: list[tuple[str, Path, dict[str, list[str]]]] = []
    for name in corpora_names:
        if name == "sqa-paragraphs":
            path = work / "sqa-paragraphs.jsonl"
            corpora.append(("sqa-paragraphs 9,251", path, sqa_paragraphs(path, args.queries, args.data_dir)))
            continue
        for n in args.sizes:
            path = work / f"{name}-{n}.jsonl"
            t = time.perf_counter()
            existed = path.is_file()
            sets = zipf_corpus(n, path, args.queries) if name == "zipf" else sqa_fitted_corpus(n, path, args.queries, args.data_dir)
            if not existed:
                print(f"generated {name} {n:,} passages in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            corpora.append((f"{name} {n:,}", path, sets))

    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    method = "okapi" if "rank_bm25" in args.systems else "lucene"
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; BM25 k1={K1} b={B} ({method} idf); "
          f"our build's memory budget {args.memory_gib} GiB; queries/s single thread unless 'batch, 2 threads'\n")
    everything = []
    for name, path, sets in corpora:
        for system in args.systems:
            run_dir = work / f"{name.replace(' ', '_').replace(',', '')}-{system}"
            run_dir.mkdir(exist_ok=True)
            spec = run_dir / "spec.json"
            spec.write_text(json.dumps({"query_sets": sets, "work": str(run_dir), "out": str(run_dir / "result.json"),
                                        "memory_gib": args.memory_gib, "method": method, "rank_bm25_queries": args.rank_bm25_queries}))
            subprocess.run([sys.executable, __file__, "--_child", system, str(path), str(spec)], env=env, check=True)
            everything.append({"corpus": name, **json.loads((run_dir / "result.json").read_text())})
            if not args.keep_indexes:
                for sub in ("kard", "lucene", "bm25s"):
                    shutil.rmtree(run_dir / sub, ignore_errors=True)
            print(tables(everything[-1:])[0].splitlines()[-1], flush=True)  # its build row
            if args.json:
                args.json.write_text(json.dumps(everything, indent=1))
    print("\n\n".join(tables(everything)))


def tables(results: list[dict]) -> tuple[str, str]:
    """The build table and the query table (markdown) of results from one or several runs of this script."""
    corpora = list(dict.fromkeys(r["corpus"] for r in results))
    builds = ["| corpus | system | build s | peak RSS GiB | index MiB | load s |", "|---|---|---|---|---|---|"]
    queries = [("| corpus | queries (terms) | system | top-100 q/s | top-10 q/s | batch top-100, 1 thread | batch, 2 threads | "
                "2 threads / 1 | exact | top-10 overlap with ours |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: corpora.index(r["corpus"])):
        cells = [format(r[key], spec) if key in r else "-" for key, spec in
                 (("build_s", ".0f"), ("peak_rss_gib", ".2f"), ("size_mib", ",.0f"), ("load_s", ".2f"))]
        builds.append(f"| {r['corpus']} | {r['system']} | " + " | ".join(cells) + " |")
    for corpus in corpora:
        here = sorted((r for r in results if r["corpus"] == corpus), key=lambda r: r["system"] != "kard")  # ours first
        ours = next((r for r in here if r["system"] == "kard"), None)
        for set_name in here[0]["sets"]:
            mine = ours["sets"][set_name] if ours else None
            for r in here:
                s = r["sets"][set_name]
                terms = f"{set_name} ({mine['terms']:.1f})" if mine else set_name
                agree = f"{overlap(s['ids10'], mine['ids10']):.3f}" if mine and r is not ours and "ids10" in s else "-"
                for key in ("exhaustive ", "pruned ", "default ") if r is ours else ("",):
                    def cell(k: str) -> str:
                        return format(s[key + k], ".0f") if key + k in s else "-"  # noqa: B023

                    ratio = f"{s[key + 'batch2'] / s[key + 'batch1']:.2f}" if key + "batch2" in s else "-"
                    exact = ("yes" if s["exact"] else "NO") if r is ours and key != "exhaustive " else "-"
                    queries.append(f"| {corpus} | {terms} | {r['system']}{' ' + key.strip() if key else ''} | {cell('top100')} | "
                                   f"{cell('top10')} | {cell('batch1')} | {cell('batch2')} | {ratio} | {exact} | {agree} |")
    return "\n".join(builds), "\n".join(queries), extrapolated(results)


def extrapolated(results: list[dict], target: int = 21_000_000) -> str:
    """Top-100 queries/s at ``target`` passages, from the growth between each corpus family's two largest sizes
    (time per query as a power of the size, fitted on those two)."""
    rows = [("| corpus | queries | system | top-100 q/s at the two largest sizes | growth exponent | "
             f"top-100 q/s at {target / 1e6:.0f}M (extrapolated) |"), "|---|---|---|---|---|---|"]
    families: dict[str, dict[int, list[dict]]] = {}
    for r in results:
        family, _, size = r["corpus"].rpartition(" ")
        if family and size.replace(",", "").isdigit():
            families.setdefault(family, {}).setdefault(int(size.replace(",", "")), []).append(r)
    for family, by_size in families.items():
        if len(by_size) < 2:
            continue
        (n1, at1), (n2, at2) = sorted(by_size.items())[-2:]
        for r1 in at1:
            r2 = next((r for r in at2 if r["system"] == r1["system"]), None)
            if r2 is None:
                continue
            for set_name in r1["sets"]:
                for key in ("exhaustive ", "pruned ", "default ") if r1["system"] == "kard" else ("",):
                    q1, q2 = r1["sets"][set_name][key + "top100"], r2["sets"][set_name][key + "top100"]
                    alpha = np.log(q1 / q2) / np.log(n2 / n1)
                    label = f"{r1['system']}{' ' + key.strip() if key else ''}"
                    rows.append(f"| {family} | {set_name} | {label} | {q1:.0f} / {q2:.0f} | {alpha:.2f} | "
                                f"{q2 * (n2 / target) ** alpha:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
