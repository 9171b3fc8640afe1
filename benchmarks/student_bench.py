"""Student speed: the trainer against a bare PyTorch loop, and the KARD chain against its parts.

    python benchmarks/student_bench.py --steps 4 --questions 3

A t5-small-sized model (d_model 512, 6+6 layers, 8 heads, d_ff 2048, vocabulary ~32k) from a
config, random init, no download. Tokenizer: word-level over made-up words, so every word is
one token and the lengths below are exact.

1. Training, batch 8 with 512 source and 128 target tokens: target tokens per second of
   ``train_student`` (tokenising, accelerate, scheduler, progress bar included) and of a bare
   loop (pre-tokenised tensors, forward, backward, AdamW step). Goal: trainer within 10%.
2. Inference, n samples of up to ``--max-new-tokens`` tokens per question: seconds per question
   of ``build_kard_chain(...).invoke`` and of its parts called by hand (BM25 retrieval,
   formatting, ``Seq2SeqStudentLLM.generate``, parsing and voting). The same seed before each, so both
   draw the same samples. Goal: chain overhead under 10%.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import torch


def words(rng: random.Random, n: int, vocab: list[str]) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def make_model(folder: Path, vocab: list[str]):
    from kard_chain.testing.scratch_models import scratch_t5, word_tokenizer

    tok = word_tokenizer([" ".join(vocab)], max_vocab=len(vocab) + 3)
    model = scratch_t5(tok, d_model=512, layers=6, heads=8, d_ff=2048, dropout=0.1)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok


def bench_training(folder: Path, work: Path, vocab: list[str], steps: int, batch: int, src: int, tgt: int) -> tuple[float, float]:
    from kard_chain.student.pairs import StudentPair
    from kard_chain.student.trainer import StudentTrainingConfig, train_student

    rng = random.Random(0)
    # src-1 / tgt-1 words: the tokenizer appends </s>
    pairs = [StudentPair(id=str(i), example_id=str(i), source=words(rng, src - 1, vocab), target=words(rng, tgt - 1, vocab))
             for i in range(batch * steps)]
    (work / "pairs.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs))
    config = StudentTrainingConfig(model=str(folder), output_dir=work / "trained", pairs=work / "pairs.jsonl", method="rd",
                                   batch_size=batch, max_steps=steps, save_every=10**6, max_source_tokens=src,
                                   max_target_tokens=tgt, mixed_precision="no")
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    batches = []
    for lo in range(0, len(pairs), batch):
        chunk = pairs[lo : lo + batch]
        enc = tok([p.source for p in chunk], max_length=src, truncation=True, padding=True, return_tensors="pt")
        labels = tok(text_target=[p.target for p in chunk], max_length=tgt, truncation=True, padding=True, return_tensors="pt")["input_ids"]
        batches.append({**enc, "labels": labels})

    def bare_loop(steps: int) -> float:
        torch.manual_seed(0)
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        tokens = 0
        start = time.perf_counter()
        for b in batches[:steps]:
            loss = model(**b).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            tokens += int((b["labels"] != tok.pad_token_id).sum())
        return tokens / (time.perf_counter() - start)

    bare_loop(1)  # warms the process up (allocator, kernels), so neither timed run pays for it
    trainer_tps = train_student(config, show_progress=False)["target_tokens_per_s"]
    return trainer_tps, bare_loop(steps)


def bench_chain(folder: Path, work: Path, vocab: list[str], questions: int, n: int, max_new_tokens: int, k: int) -> tuple[float, float, dict]:
    from kard_chain import Seq2SeqStudentLLM, BM25Retriever, Passage, build_kard_chain
    from kard_chain.answers import majority_vote, parse_answer
    from kard_chain.chains import default_formatter

    rng = random.Random(1)
    passages = [Passage(id=f"p{i}", title=words(rng, 2, vocab), text=words(rng, 90, vocab)) for i in range(2000)]
    retriever = BM25Retriever.build(passages, work / "index", k=k, overwrite=True)
    retriever = BM25Retriever.load(work / "index", k=k)
    llm = Seq2SeqStudentLLM.from_pretrained(folder, n=n, max_new_tokens=max_new_tokens, temperature=0.7)
    qs = [words(rng, 12, vocab) + " ?" for _ in range(questions)]
    chain = build_kard_chain(retriever, llm, k=k, n=n)
    formatter = default_formatter(llm)
    chain.invoke(qs[0])  # warm-up

    # interleaved, the same seed before each: both draw the same samples under the same conditions
    parts = {"retrieve": 0.0, "format": 0.0, "generate": 0.0, "vote": 0.0}
    chain_s, outs = 0.0, []
    for q in qs:
        torch.manual_seed(0)
        start = time.perf_counter()
        outs.append(chain.invoke(q))
        chain_s += (time.perf_counter() - start) / questions
        torch.manual_seed(0)
        t0 = time.perf_counter()
        docs = retriever.invoke(q)
        t1 = time.perf_counter()
        prompt = formatter.source(q, None, docs[:k]).text
        t2 = time.perf_counter()
        gens = llm.generate([prompt], n=n).generations[0]
        t3 = time.perf_counter()
        majority_vote([parse_answer(g.text) for g in gens], [g.generation_info["logprob"] for g in gens])
        t4 = time.perf_counter()
        for key, a, b in (("retrieve", t0, t1), ("format", t1, t2), ("generate", t2, t3), ("vote", t3, t4)):
            parts[key] += (b - a) / questions
    generated = sum(len(llm.tokenizer(r["text"])["input_ids"]) for o in outs for r in o["rationales"]) / (questions * n)
    return chain_s, sum(parts.values()), {**parts, "tokens_per_sample": generated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="training steps timed (each system)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--source-tokens", type=int, default=512)
    parser.add_argument("--target-tokens", type=int, default=128)
    parser.add_argument("--questions", type=int, default=3, help="questions timed through the chain")
    parser.add_argument("-n", type=int, default=5, help="samples per question")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("-k", type=int, default=3, help="passages per question")
    parser.add_argument("--work-dir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="student-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    vocab = sorted({"".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(4)) for _ in range(40000)})[:32000]
    model, _ = make_model(work / "init", vocab)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; model {params:.1f}M parameters (t5-small config, random init)")
    if not args.skip_training:
        trainer, bare = bench_training(work / "init", work, vocab, args.steps, args.batch, args.source_tokens, args.target_tokens)
        print(f"\ntraining, batch {args.batch}, {args.source_tokens} source + {args.target_tokens} target tokens, {args.steps} steps each:")
        print(f"  bare PyTorch loop   {bare:8.1f} target tokens/s   ({args.batch * args.target_tokens / bare:.1f} s/step)")
        print(f"  train_student       {trainer:8.1f} target tokens/s   ({args.batch * args.target_tokens / trainer:.1f} s/step)")
        print(f"  trainer / bare      {trainer / bare:8.3f}   (goal >= 0.90)")
    chain_s, parts_s, parts = bench_chain(work / "init", work, vocab, args.questions, args.n, args.max_new_tokens, args.k)
    print(f"\nKARD chain, n={args.n}, up to {args.max_new_tokens} new tokens ({parts['tokens_per_sample']:.0f} on average), "
          f"k={args.k}, {args.questions} questions:")
    print(f"  parts by hand       {parts_s:8.3f} s/question   (" + ", ".join(f"{k} {v:.3f}" for k, v in parts.items() if k != "tokens_per_sample") + ")")
    print(f"  build_kard_chain    {chain_s:8.3f} s/question   ({1 / chain_s:.3f} questions/s)")
    print(f"  chain overhead      {(chain_s / parts_s - 1) * 100:8.1f} %   (goal < 10%)")


if __name__ == "__main__":
    main()
