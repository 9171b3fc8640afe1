"""Mutation score of kard's core maths: does the test suite notice when the code is subtly wrong?

    pip install mutmut==3.8.1
    python tools/mutation.py              # runs mutmut, then prints the score and every survivor
    python tools/mutation.py --no-run     # only reads the last run's results (mutants/)

mutmut (config: ``[tool.mutmut]`` in pyproject.toml) rewrites each function of the modules below
in many small ways (an operator, a constant, a dropped argument) and runs the tests that cover it;
a mutant the tests do not fail on "survives". In scope: the reranker model (MaxSim, masks,
normalisation, persistence), both losses, the metrics (Wilson interval, recall@k, hits@k), the
answer grammar and the vote, and BM25 scoring (idf, weights, postings, top-k and score); BM25's
building and file handling are not run. Timeouts count as caught.
Survivors listed in ``EQUIVALENT`` cannot be caught by any test: they behave as the original.
Takes about 17 minutes on 2 cores (860 mutants); not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCOPE = {
    "kard_chain.reranker.model": None,  # None: every function of the module
    "kard_chain.reranker.losses.kl": None,
    "kard_chain.reranker.losses.ce": None,
    "kard_chain.metrics": None,
    "kard_chain.answers": None,
    "kard_chain.bm25.index": {"_idf", "_weights", "_scored", "_postings", "score", "top_k", "encode_queries"},
}
_REASONS = {
    "dtype": "numpy's default dtype here is the one named (float64, or int64 for Python ints): same values",
    "empty": "differs only for an empty vocabulary or postings, which never reach this line (the build refuses them first)",
    "chunks": "chunking only bounds memory: every slicing variant writes the same weights",
    "vstack": "vstack without format= gives COO; tocsc() turns either into the same matrix",
    "backend": "any backend string but 'rank_bm25' takes the fast path, and the two backends give equal scores (tested)",
    "last axis": "inputs are (batch, candidates) or (candidates, tokens): axis +1 is axis -1",
    "einsum": "einsum subscripts are case-insensitive in meaning: the same contraction",
    "masked": "padding at -10001 instead of -1e4 is still far below any cosine similarity (>= -1)",
    "device": "a device move: a no-op on the CPU-only test machine (caught only with a GPU)",
    "json": "only the indentation of reranker.json changes; it loads the same",
    "bias": "nn.Linear(bias=None) tests falsy: no bias, as bias=False",
    "vote": "sorting a single tied answer by log-probability changes nothing",
    "case": "the pattern is compiled with re.I: YES|NO matches what yes|no matches",
}
EQUIVALENT: dict[str, str] = {
    f"kard_chain.{name}": _REASONS[reason] for name, reason in {
        "answers.x_majority_vote__mutmut_13": "vote",
        "answers.x_parse_answer__mutmut_39": "case", "answers.x_parse_answer__mutmut_47": "case",
        "bm25.index.x__idf__mutmut_2": "dtype", "bm25.index.x__idf__mutmut_24": "empty", "bm25.index.x__idf__mutmut_26": "empty",
        "bm25.index.x__postings__mutmut_19": "empty", "bm25.index.x__postings__mutmut_5": "vstack",
        "bm25.index.x__postings__mutmut_7": "vstack",
        "bm25.index.x__weights__mutmut_15": "dtype", "bm25.index.x__weights__mutmut_17": "dtype",
        "bm25.index.x__weights__mutmut_47": "dtype",
        **{f"bm25.index.x__weights__mutmut_{i}": "chunks" for i in (38, 40, 41, 42, 43)},
        **{f"bm25.index.xǁBM25Indexǁencode_queries__mutmut_{i}": "dtype" for i in (15, 17, 23, 25)},
        **{f"bm25.index.xǁBM25Indexǁscore__mutmut_{i}": "backend" for i in (1, 2, 11, 12)},
        **{f"bm25.index.xǁBM25Indexǁscore__mutmut_{i}": "dtype" for i in (5, 7, 45)},
        "reranker.losses.ce.xǁTopCandidateCrossEntropyLossǁforward__mutmut_17": "last axis",
        **{f"reranker.losses.kl.xǁBM25DistillationKLLossǁforward__mutmut_{i}": "last axis" for i in (21, 34, 46)},
        "reranker.model.xǁKardRerankerǁ__init____mutmut_11": "bias",
        "reranker.model.xǁKardRerankerǁ_tokens__mutmut_18": "device",
        **{f"reranker.model.xǁKardRerankerǁforward__mutmut_{i}": "device" for i in (6, 9, 14, 18)},
        "reranker.model.xǁKardRerankerǁforward__mutmut_65": "last axis",
        "reranker.model.xǁKardRerankerǁfrom_pretrained__mutmut_30": "device",
        "reranker.model.xǁKardRerankerǁmaxsim__mutmut_13": "einsum", "reranker.model.xǁKardRerankerǁmaxsim__mutmut_16": "masked",
        "reranker.model.xǁKardRerankerǁmaxsim__mutmut_22": "last axis",
        "reranker.model.xǁKardRerankerǁsave_pretrained__mutmut_28": "json",
        "reranker.model.xǁKardRerankerǁsave_pretrained__mutmut_29": "json",
    }.items()
}
"""Survivors that behave as the original code, and why. mutmut numbers mutants within a function, so an edit to a
function renumbers its mutants: rerun, read each survivor (``mutmut show NAME``) and update this table."""


def mutant_status() -> dict[str, str]:
    """Every mutant's status from the ``.meta`` files of the last run."""
    from mutmut.stats import status_by_exit_code

    status = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            status[name] = status_by_exit_code[code]
    return status


def split_name(name: str) -> tuple[str, str]:
    """A mutant's module and function: ``kard_chain.metrics.x_hits__mutmut_3`` -> (``kard_chain.metrics``, ``hits``);
    a method, ``kard_chain.bm25.index.xǁBM25Indexǁscore__mutmut_1`` -> (``kard_chain.bm25.index``, ``score``)."""
    match = re.fullmatch(r"(.+?)\.x(?:ǁ\w+ǁ|_)(\w+?)__mutmut_\d+", name)
    if match is None:
        raise ValueError(f"unexpected mutant name {name!r}")
    return match.group(1), match.group(2)


def in_scope(name: str) -> bool:
    module, function = split_name(name)
    return module in SCOPE and (SCOPE[module] is None or function in SCOPE[module])


def report(status: dict[str, str]) -> int:
    scoped = {n: s for n, s in status.items() if in_scope(n)}
    by_module: dict[str, Counter] = {}
    for name, s in scoped.items():
        by_module.setdefault(split_name(name)[0], Counter())[s] += 1
    print(f"{'module':<32}{'mutants':>8}{'caught':>8}{'survived':>9}{'no test':>8}{'score':>7}")
    total = Counter()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        caught = counts["killed"] + counts["timeout"]
        n = sum(counts.values()) - counts["skipped"]
        print(f"{module:<32}{n:>8}{caught:>8}{counts['survived']:>9}{counts['no tests']:>8}{caught / max(n, 1):>7.1%}")
    caught, n = total["killed"] + total["timeout"], sum(total.values()) - total["skipped"]
    print(f"{'all in scope':<32}{n:>8}{caught:>8}{total['survived']:>9}{total['no tests']:>8}{caught / max(n, 1):>7.1%}")
    survivors = sorted(n for n, s in scoped.items() if s in ("survived", "no tests", "suspicious"))
    unexplained = [n for n in survivors if n not in EQUIVALENT]
    print(f"\nsurvivors: {len(survivors)} ({len(survivors) - len(unexplained)} explained as equivalent)")
    for name in survivors:
        print(f"  {name}: {EQUIVALENT.get(name, 'UNEXPLAINED (mutmut show ' + name + ')')}")
    return 0 if caught / max(n, 1) >= 0.8 and not unexplained else 1


def patterns() -> list[str]:
    """mutmut's name filters (fnmatch) for the mutants in scope, so that nothing else is run."""
    out = []
    for module, functions in SCOPE.items():
        if functions is None:
            out.append(f"{module}.*")
        else:
            out += [p for f in sorted(functions) for p in (f"{module}.x_{f}__mutmut_*", f"{module}.xǁ*ǁ{f}__mutmut_*")]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="report the last run without running mutmut")
    args = parser.parse_args()
    if not args.no_run:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one thread per worker: no fork deadlock
        subprocess.run([sys.executable, "-m", "mutmut", "run", *patterns()], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=env)
    sys.exit(report(mutant_status()))


if __name__ == "__main__":
    main()
