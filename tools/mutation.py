"""Mutation score of kard's core maths: does the test suite notice when the code is subtly wrong?

    pip install mutmut==3.8.1
    python tools/mutation.py              # runs mutmut, then prints the score and every survivor
    python tools/mutation.py --no-run     # only reads the last run's results (mutants/)
    python tools/mutation.py --sample 40  # runs a seeded sample of 40 mutants a module among those not run yet

mutmut (config: ``[tool.mutmut]`` in pyproject.toml) rewrites each function of the modules below
in many small ways (an operator, a constant, a dropped argument) and runs the tests that cover it;
a mutant the tests do not fail on "survives". In scope: the reranker model (MaxSim, masks,
normalisation, persistence), both losses, the targets (sentences, their mixture), the metrics (Wilson interval, recall@k, hits@k), the
answer grammar and the vote, and BM25 scoring (idf, weights, postings, top-k and score); and the features with
the places that switch them on: the segment-wise build, the residual codec, score fusion, the bridge round,
counterfactual copies, the reading retriever, the student's collator and weighted loss (the answer weight), the
artefact manifests and ``load_kard_chain``. Timeouts count as caught.
Survivors listed in ``EQUIVALENT`` cannot be caught by any test: they behave as the original.
A full run (about 2,800 mutants) takes hours on 2 cores: a mutant of the trainers, the manifests or the
served chain re-runs tests that build tiny models (10-20 s each, fixtures included). ``--sample N`` runs N
mutants a module, drawn with a fixed seed among those not run yet, and the report gives each module's
score with its 95% Wilson interval; a rerun with ``--sample`` draws from what is still left. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kard_chain.metrics import wilson_interval

ROOT = Path(__file__).resolve().parents[1]
SCOPE = {
    "kard_chain.reranker.model": None,  # None: every function of the module
    "kard_chain.reranker.losses.kl": None,
    "kard_chain.reranker.losses.ce": None,
    "kard_chain.reranker.targets": None,
    "kard_chain.metrics": None,
    "kard_chain.answers": None,
    "kard_chain.bm25.index": {"_idf", "_weights", "_scored", "_postings", "score", "top_k", "encode_queries"},
    # the features, and the places that switch them on
    "kard_chain.bm25.segments": {"add", "flush", "document_frequencies", "merged"},
    "kard_chain.reranker.codec": None,
    "kard_chain.retrievers.reranking": {"fuse"},
    "kard_chain.retrievers.bridge": None,
    "kard_chain.student.augment": None,
    "kard_chain.student.reading": None,
    "kard_chain.student.trainer": {"for_config", "__call__", "_weights", "weighted_token_loss", "build_pairs"},
    "kard_chain.manifest": {"file_identity", "identity", "digest", "differences", "check_output", "apply_output"},
    "kard_chain.trained_chain": {"load_student_llm", "_from_run", "load_kard_chain"},
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
    "float32 in": "the vectors arrive as float32 (encoder output, stored arrays): asarray without dtype keeps float32",
    "zero norm": "a zero row divided by 2 instead of 1 is still zero",
    "index dtype": "indexing with the uint16/uint32 codes selects the same rows as with int64",
    "reshape": "numpy reads any negative size as the one unknown dimension: -2 is -1",
    "float32 later": "the constructor converts the centroids to float32 anyway",
    "draws": "a sample or k-means start drawn with replacement (or a permutation of all tokens) fits clusters as good; "
             "only the exact draws differ, and no test can name the right draws without copying the code",
    "restart": "empty clusters restarting on one shared random token instead of one each: the next iteration separates them",
    "message": "the message gains decoration only; the test matches its words",
    "zeros object": "np.zeros_like(None) is an object 0 that broadcasts to the same list of floats",
    "floats in": "the scores arrive as Python floats: asarray infers float64, as named",
    "ignore_index": "-100 is cross_entropy's default ignore_index",
    "weights dtype": "the weights are float32 already, as the loss",
    "fingerprint": "a 17-character prefix of the same hash identifies the same weights as a 16-character one",
    "title key": "round 2 is a BM25Retriever, whose documents always carry metadata['title']: the default is never read",
    "alternation": "of two phrases that compete at one position, one starts the other and so sorts after it: reverse "
                   "alphabetical order is longest first",
    "group": "the lookarounds are zero-width: group 1 (the alternation) is the whole match, group 0",
    "read block": "the file is hashed in other block sizes (or whole): the same bytes, the same hash",
    "empty round 1": "with round 1 empty, round 2 is asked for 'XXXX', which no index term matches: no passages either way",
    "step": "a step of 1 rewrites each row from overlapping chunks with the same values: only slower",
    "marker": "the slot's marker: questions are lower-cased words, so neither '_' nor 'XX_XX' meets a real word in practice",
    "separator": "slot fillers are single words: what separates a passage's title from its text changes no word's match",
    "spill": "the spill threshold is met one posting sooner or later: segments split elsewhere, the merged index is the same "
             "(the segment-wise build equals the in-memory one bit for bit, tested)",
    "block split": "merge blocks end one term sooner or later where a term has no postings: the same index, merged in "
                   "other blocks",
    "all-ones mask": "the cross-encoder's candidate mask is all true: ones of any dtype select the same scores",
    "mask bool": "transformers reads the attention mask as bool: 2 attends as 1 does",
    "truncate default": "transformers truncates at max_length when truncation is not given (and adds special tokens "
                        "by default): the same ids",
    "config attr": "every transformers config defines is_encoder_decoder: getattr's default is never read",
    "pairs k": "the pairs' retriever (reading_retriever of the same config) already returns config.k passages: a second "
               "cut at None keeps them all",
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
        "reranker.model.xǁKardRerankerǁfingerprint__mutmut_9": "fingerprint",
        "reranker.codec.x__unit__mutmut_19": "zero norm",
        **{f"reranker.codec.xǁResidualCodecǁfit__mutmut_{i}": "float32 in" for i in (6, 8)},
        **{f"reranker.codec.xǁResidualCodecǁencode__mutmut_{i}": "float32 in" for i in (3, 5)},
        "reranker.codec.xǁResidualCodecǁfit__mutmut_14": "message",
        **{f"reranker.codec.xǁResidualCodecǁfit__mutmut_{i}": "draws" for i in (34, 35, 38, 41, 42, 43, 47, 50, 51)},
        **{f"reranker.codec.xǁResidualCodecǁfit__mutmut_{i}": "restart" for i in (75, 77)},
        "reranker.codec.xǁResidualCodecǁfit__mutmut_82": "float32 later",
        "reranker.codec.xǁResidualCodecǁencode__mutmut_26": "reshape", "reranker.codec.xǁResidualCodecǁdecode__mutmut_20": "reshape",
        **{f"reranker.codec.xǁResidualCodecǁdecode__mutmut_{i}": "index dtype" for i in (12, 14)},
        **{f"retrievers.reranking.x_fuse__mutmut_{i}": "floats in" for i in (3, 5)},
        "retrievers.reranking.x_fuse__mutmut_13": "zeros object",
        "student.trainer.x_weighted_token_loss__mutmut_14": "ignore_index",
        "student.trainer.x_weighted_token_loss__mutmut_33": "weights dtype",
        **{f"retrievers.bridge.xǁBridgeRetrieverǁ_get_relevant_documents__mutmut_{i}": "title key" for i in (48, 50, 53)},
        "retrievers.bridge.xǁBridgeRetrieverǁ_get_relevant_documents__mutmut_20": "empty round 1",
        **{f"manifest.x_file_identity__mutmut_{i}": "read block" for i in (12, 14, 15)},
        **{f"student.augment.x__whole_words__mutmut_{i}": "alternation" for i in (6, 9)},
        **{f"student.augment.x_swap_phrases__mutmut_{i}": "group" for i in (13, 16)},
        "reranker.codec.x__nearest__mutmut_11": "step",
        "student.augment.x__templates__mutmut_3": "marker",
        "student.augment.x_yes_no_counterfactuals__mutmut_13": "separator",
        "bm25.index.x__weights__mutmut_35": "chunks", "bm25.index.x__weights__mutmut_39": "dtype",
        "bm25.segments.xǁSegmentSpillǁflush__mutmut_16": "spill",
        "bm25.segments.xǁSegmentSpillǁmerged__mutmut_15": "block split",
        "reranker.model.xǁKardRerankerǁforward__mutmut_24": "all-ones mask",
        "student.trainer.xǁCollatorǁ__call____mutmut_112": "mask bool",
        **{f"student.trainer.xǁCollatorǁ__call____mutmut_{i}": "truncate default" for i in (47, 51, 52, 64)},
        **{f"trained_chain.x_load_student_llm__mutmut_{i}": "config attr" for i in (8, 11, 16)},
        "trained_chain.x_load_student_llm__mutmut_22": "device",
        "student.trainer.x_build_pairs__mutmut_23": "pairs k",
    }.items()
}
GAPS: dict[str, str] = {
    "kard_chain.retrievers.bridge.xǁBridgeRetrieverǁbridge_query__mutmut_22": "< for <=: no test term sits exactly at the df cap",
    "kard_chain.reranker.codec.xǁResidualCodecǁfit__mutmut_32": "sample 65 tokens a centroid: the tests' sets hold fewer than 64 a centroid",
    "kard_chain.student.trainer.xǁCollatorǁ_weights__mutmut_6": "find for rfind: no test target names the answer phrase twice",
    "kard_chain.student.trainer.xǁCollatorǁ_weights__mutmut_19": "an answer-less decoder target: ' ' is no token for the tests' word "
                                                                   "tokenizer, one token for a BPE tokenizer",
    "kard_chain.bm25.index.xǁBM25Indexǁtop_k__mutmut_51": "< for <=: no test corpus has exactly PRUNE_MIN_RANGES ranges",
    "kard_chain.student.trainer.x_build_pairs__mutmut_31": "teacher rationales dropped: the trainer tests train on reference "
                                                           "rationales only (the recipe tests, outside the selection, use both)",
    "kard_chain.student.trainer.x_build_pairs__mutmut_41": "split=None: the tests' datasets are JSONL files, which have no splits",
    **{f"kard_chain.trained_chain.x_load_kard_chain__mutmut_{i}": "the passage budget's tokenizer dropped: without it the "
       "budget counts words, which the tests' word-level tokenizers count alike" for i in (93, 98, 108, 110, 116, 156)},
}
"""Survivors a test could catch but none does yet: listed so the report says so, still counted as survivors."""
OUTSIDE: dict[str, str] = {
    **{f"kard_chain.trained_chain.x_load_kard_chain__mutmut_{i}": "tests/unit_tests/test_recipe.py::"
       "test_own_data_runs_end_to_end_reuses_everything_and_reruns_exactly_what_a_key_changes" for i in (21, 24, 27)},
    **{f"kard_chain.trained_chain.x_load_kard_chain__mutmut_{i}": "tests/unit_tests/test_served_student.py::"
       "test_load_kard_chain_serves_a_trained_folder_through_a_server" for i in (8, 9, 13, 16, 83)},
    # the 2026-12-07 run's selection lacked test_bm25_pruning.py (in it since)
    **{f"kard_chain.bm25.index.xǁBM25Indexǁtop_k__mutmut_{i}": "tests/unit_tests/test_bm25_pruning.py::"
       "test_a_saved_index_keeps_its_block_maxima_and_prunes_as_exhaustive_in_threads" for i in (66, 75, 79, 82, 92, 105)},
    "kard_chain.bm25.index.xǁBM25Indexǁtop_k__mutmut_109": "tests/unit_tests/test_bm25_pruning.py::test_pruned_top_k_equals_exhaustive_top_k",
}
"""Survivors that a test outside ``pytest_add_cli_args_test_selection`` catches (a whole recipe run or a served student:
too slow to run per mutant; or a file the run's selection lacked), each checked by applying the mutant and running that
test: counted as caught."""
"""``EQUIVALENT``: survivors that behave as the original code, and why. mutmut numbers mutants within a function, so an edit to a
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
    for name, s in scoped.items():
        if s in ("survived", "no tests", "suspicious") and (name in EQUIVALENT or name in OUTSIDE):
            by_module[split_name(name)[0]]["equivalent" if name in EQUIVALENT else "outside"] += 1
    print(f"{'module':<32}{'mutants':>8}{'caught':>8}{'survived':>9}{'no test':>8}{'score':>7}{'equiv.':>7}"
          f"{'score*':>7}{'95% interval*':>15}{'not run':>8}")
    total = Counter()

    def row(label: str, counts: Counter) -> None:
        caught = counts["killed"] + counts["timeout"] + counts["outside"]
        n = sum(counts.values()) - counts["skipped"] - counts["not checked"] - counts["equivalent"] - counts["outside"]  # what ran
        m = n - counts["equivalent"]  # *: equivalent mutants left out, as no test can catch them
        low, high = wilson_interval(caught, m) if m else (0.0, 1.0)
        print(f"{label:<32}{n:>8}{caught:>8}{counts['survived']:>9}{counts['no tests']:>8}{caught / max(n, 1):>7.1%}"
              f"{counts['equivalent']:>7}{caught / max(m, 1):>7.1%}{f'{low:.1%}-{high:.1%}':>15}{counts['not checked']:>8}")

    for module, counts in sorted(by_module.items()):
        total.update(counts)
        row(module, counts)
    row("all in scope", total)
    caught = total["killed"] + total["timeout"] + total["outside"]
    n = sum(total.values()) - total["skipped"] - total["not checked"] - total["equivalent"] - total["outside"]
    survivors = sorted(n for n, s in scoped.items() if s in ("survived", "no tests", "suspicious"))
    unexplained = [n for n in survivors if n not in EQUIVALENT and n not in GAPS and n not in OUTSIDE]
    gaps, outside = sum(n in GAPS for n in survivors), sum(n in OUTSIDE for n in survivors)
    print(f"\nsurvivors: {len(survivors)} ({len(survivors) - len(unexplained) - gaps - outside} equivalent, {gaps} known gaps, "
          f"{outside} caught outside the selection)")
    for name in survivors:
        why = (EQUIVALENT.get(name) or ("GAP: " + GAPS[name] if name in GAPS else None)
               or ("caught by " + OUTSIDE[name] if name in OUTSIDE else "UNEXPLAINED (mutmut show " + name + ")"))
        print(f"  {name}: {why}")
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
    parser.add_argument("--sample", type=int, metavar="N", help="run N mutants a module (seeded) among those not run yet")
    args = parser.parse_args()
    if not args.no_run:
        run_mutmut(sample(args.sample) if args.sample else patterns())
    sys.exit(report(mutant_status()))


def run_mutmut(names: list[str], check: bool = True) -> None:
    """``mutmut run`` over these names or patterns, one torch thread per worker (no fork deadlock)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "mutmut", "run", *names], cwd=ROOT, check=check, stdout=subprocess.DEVNULL, env=env)


def sample(per_module: int, seed: int = 0) -> list[str]:
    """Up to ``per_module`` in-scope mutants of each module among those not run yet, drawn with ``seed``; the first
    call generates the mutants (and mutmut's test stats) by a run that matches none."""
    if not mutant_status():
        run_mutmut(["kard_chain.none-matches-this"], check=False)  # mutmut generates, then stops: "nothing matches"
        if not mutant_status():
            sys.exit("mutmut generated no mutants: run it without --sample to see why")
    pending: dict[str, list[str]] = {}
    for name, status in mutant_status().items():
        if status == "not checked" and in_scope(name):
            pending.setdefault(split_name(name)[0], []).append(name)
    return [name for module in sorted(pending) for name in random.Random(seed).sample(sorted(pending[module]), min(per_module, len(pending[module])))]


if __name__ == "__main__":
    main()
