"""Training the student: the loop behind ``trainers/student.py`` and ``kard train-student``.

    kard train-student --method kard --model google/flan-t5-base --dataset strategyqa --data-dir data/strategyqa \\
        --rationales rationales.jsonl --index index/ --output-dir student/
    accelerate launch --num_processes 2 trainers/student.py --config student.json

One pydantic config from flags or a JSON file. The training pairs (see :mod:`kard_chain.student.pairs`)
are built once and kept in ``output_dir/pairs.jsonl``, so a resumed run trains on the same data.
The loop is :mod:`kard_chain.training.loop` (AdamW with linear warm-up and decay, gradient
accumulation, a checkpoint every ``save_every`` steps, exact resume); bf16/fp16 where the device
has it, optional gradient checkpointing, and at the end ``output_dir/final``: ``save_pretrained`` of model and tokenizer plus
``kard_student.json`` (the resolved config; serving reads its :class:`~kard_chain.student.settings.StudentSettings`). Sequence-to-sequence models (T5) and decoder-only ones both train.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from kard_chain.answers import ANSWER_PHRASE
from kard_chain.io import atomic_write_text, share_like_other_files
from kard_chain.student.config import StudentTrainingConfig
from kard_chain.student.pairs import StudentPair
from kard_chain.student.settings import STUDENT_CONFIG
from kard_chain.training.checkpoints import prepare_run, write_metrics
from kard_chain.training.loop import linear_schedule, make_accelerator, resume_state, run_loop, total_steps


def formatter_for(config: StudentTrainingConfig, tokenizer=None):
    """The student formatter a config describes (the inference chain builds the same one)."""
    from kard_chain.student.format import StudentFormatter

    return StudentFormatter.from_settings(config, tokenizer)


def build_pairs(config: StudentTrainingConfig, tokenizer=None, show_progress: bool = True) -> list[StudentPair]:
    """The training pairs from the config's dataset, rationales and index."""
    from kard_chain.datasets import load_dataset
    from kard_chain.jsonl_store import read_records
    from kard_chain.teacher.cache import read_rationales

    if config.pairs is not None:
        return list(read_records(config.pairs, StudentPair).values())
    from kard_chain.student.pairs import student_pairs

    retriever = None
    if config.method == "kard":
        from kard_chain.student.reading import reading_retriever

        retriever = reading_retriever(config, config.index)  # as load_kard_chain serves the student (bridge included)
    return student_pairs(
        config.method, load_dataset(config.dataset, config.data_dir, split=config.split), formatter_for(config, tokenizer),
        read_rationales(config.rationales) if config.rationales else None, reference=config.reference,
        retriever=retriever, k=config.k, passages_from=config.passages_from,
        counterfactual=config.counterfactual,
        yes_no_counterfactual=config.yes_no_counterfactual, show_progress=show_progress,
    )


def question_forms(pairs: list[StudentPair], formatter) -> dict[str, int]:
    """How many training inputs listed options and how many did not (yes/no or open questions): serving refuses a
    form the student never saw (``kard ask`` without options for a student trained on options only)."""
    marker = formatter.prompt.options.split("{", 1)[0]
    with_options = sum(marker in p.source for p in pairs)
    return {"options": with_options, "no_options": len(pairs) - with_options}


class Collator:
    """Tokenises a batch of pairs: seq2seq labels, or prompt-masked labels for a decoder-only model; with an
    ``answer_weight`` other than 1, also ``weights``: that weight on the tokens from the final answer on, 1 before."""

    def __init__(self, tokenizer, is_seq2seq: bool, max_source: int, max_target: int, answer_weight: float = 1.0) -> None:
        self.tok, self.seq2seq, self.max_source, self.max_target = tokenizer, is_seq2seq, max_source, max_target
        self.answer_weight = answer_weight

    @classmethod
    def for_config(cls, config: StudentTrainingConfig, tokenizer, is_seq2seq: bool) -> Collator:
        """The collator a training config describes (its truncation and answer weight)."""
        return cls(tokenizer, is_seq2seq, config.max_source_tokens, config.max_target_tokens, config.answer_weight)

    def __call__(self, batch: list[StudentPair]) -> dict:
        import torch

        sources, targets = [p.source for p in batch], [p.target for p in batch]
        if self.seq2seq:
            enc = self.tok(sources, max_length=self.max_source, truncation=True, padding=True, return_tensors="pt")
            labels = self.tok(text_target=targets, max_length=self.max_target, truncation=True, padding=True,
                              return_tensors="pt")["input_ids"]
            labels[labels == self.tok.pad_token_id] = -100
            out = {**enc, "labels": labels}
            starts = [0] * len(batch)
        else:
            src = self.tok(sources, max_length=self.max_source, truncation=True, add_special_tokens=True)["input_ids"]
            tgt = self.tok([" " + t for t in targets], max_length=self.max_target, truncation=True, add_special_tokens=False)["input_ids"]
            rows = [(s, t + [self.tok.eos_token_id]) for s, t in zip(src, tgt)]
            width = max(len(s) + len(t) for s, t in rows)
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
            ids = torch.full((len(rows), width), pad)
            labels = torch.full((len(rows), width), -100)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, (s, t) in enumerate(rows):  # right padding: the labels line up with the tokens
                ids[i, : len(s) + len(t)] = torch.tensor(s + t)
                labels[i, len(s) : len(s) + len(t)] = torch.tensor(t)
                mask[i, : len(s) + len(t)] = 1
            out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
            starts = [len(s) for s in src]
        if self.answer_weight != 1.0:
            out["weights"] = self._weights(targets, labels, starts)
        return out

    def _weights(self, targets: list[str], labels, starts: list[int]):
        """``answer_weight`` on each target's tokens from its final answer on (all of a target without rationale)."""
        import torch

        prefixes = [t[: t.rfind(ANSWER_PHRASE)] + ANSWER_PHRASE if ANSWER_PHRASE in t else "" for t in targets]
        if self.seq2seq:
            lengths = [len(ids) for ids in self.tok(text_target=prefixes, add_special_tokens=False)["input_ids"]]
        else:
            lengths = [len(ids) if p else 0 for p, ids in zip(prefixes, self.tok([" " + p for p in prefixes], add_special_tokens=False)["input_ids"])]
        weights = torch.ones(labels.shape)
        for i, (start, n) in enumerate(zip(starts, lengths)):
            weights[i, start + n :] = self.answer_weight
        return weights * (labels != -100)


def weighted_token_loss(logits, labels, weights, is_seq2seq: bool):
    """Cross-entropy per target token, averaged with ``weights`` (a decoder-only model predicts token t at t - 1)."""
    import torch.nn.functional as F

    if not is_seq2seq:
        logits, labels, weights = logits[:, :-1], labels[:, 1:], weights[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=-100, reduction="none")
    weights = weights.reshape(-1).to(ce.dtype)
    return (ce * weights).sum() / weights.sum()


class _StudentTask:
    """The student's side of the shared loop: tokenise a batch, return the model's loss, save with the tokenizer."""

    def __init__(self, model, tokenizer, collate: Collator, accelerator, config: StudentTrainingConfig) -> None:
        self.model, self.tokenizer, self.collate, self.accelerator, self.config = model, tokenizer, collate, accelerator, config
        self.target_tokens = 0

    def loss(self, batch: list[StudentPair], rng: random.Random):
        inputs = {k: v.to(self.accelerator.device) for k, v in self.collate(batch).items()}
        self.target_tokens += int((inputs["labels"] != -100).sum())
        weights = inputs.pop("weights", None)
        out = self.model(**inputs)
        return out.loss if weights is None else weighted_token_loss(out.logits, inputs["labels"], weights, self.collate.seq2seq)

    def replay(self, batch: list[StudentPair], rng: random.Random) -> None:
        pass  # batches draw nothing from the epoch's generator

    def save_weights(self, folder: Path) -> None:
        unwrapped = self.accelerator.unwrap_model(self.model)
        unwrapped.config.use_cache = True  # gradient checkpointing turns it off; inference needs it
        unwrapped.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    def end_of_epoch(self, epoch: int, step: int) -> None:
        pass


def _training_pairs(config: StudentTrainingConfig, tokenizer, accelerator, show_progress: bool) -> list[StudentPair]:
    """The pairs of this run: built once into ``output_dir/pairs.jsonl`` (by the main process), then read back."""
    from kard_chain.jsonl_store import read_records

    pairs_file = config.output_dir / "pairs.jsonl"
    if accelerator.is_main_process and not pairs_file.exists():
        pairs = build_pairs(config, tokenizer, show_progress)
        if not pairs:
            raise ValueError("no training pairs (are the examples labelled and the rationales kept?)")
        atomic_write_text(pairs_file, "".join(p.model_dump_json() + "\n" for p in pairs))
    accelerator.wait_for_everyone()
    return list(read_records(pairs_file, StudentPair).values())


def train_student(config: StudentTrainingConfig, show_progress: bool = True) -> dict:
    """Train (or resume) and return the run's figures (steps, loss, target tokens per second)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    accelerator = make_accelerator(config.grad_accum, config.mixed_precision)
    out = config.output_dir
    inputs = {"model": config.model, "data_dir": config.data_dir, "rationales": config.rationales, "index": config.index,
              "pairs": config.pairs, "prompts_dir": config.prompts_dir}
    checkpoints = prepare_run(config, "student-run", inputs, accelerator)
    start_from = str(checkpoints[-1]) if checkpoints else config.model
    tokenizer = AutoTokenizer.from_pretrained(start_from)
    is_seq2seq = bool(getattr(AutoConfig.from_pretrained(start_from), "is_encoder_decoder", False))
    pairs = _training_pairs(config, tokenizer, accelerator, show_progress)

    torch.manual_seed(config.seed)
    auto = transformers.AutoModelForSeq2SeqLM if is_seq2seq else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(start_from)
    if config.gradient_checkpointing:  # transformers 5 renamed it; older releases have only the first name
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total = total_steps(config, len(pairs), accelerator.num_processes)
    scheduler = linear_schedule(optimizer, config, total)
    start = resume_state(checkpoints, optimizer, scheduler, accelerator)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    task = _StudentTask(model, tokenizer, Collator.for_config(config, tokenizer, is_seq2seq), accelerator, config)
    run = run_loop(config, task, pairs, accelerator, model, optimizer, scheduler, start_step=start, total=total,
                   desc=f"train {config.method}", show_progress=show_progress)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and (run.steps or not (out / "final" / STUDENT_CONFIG).is_file()):  # a rerun changes nothing
        task.save_weights(out / "final")
        record = {**config.model_dump(mode="json"), "question_forms": question_forms(pairs, formatter_for(config, tokenizer))}
        atomic_write_text(out / "final" / STUDENT_CONFIG, json.dumps(record, indent=2))
        share_like_other_files(out / "final")
    first, last = run.loss_window(config.log_every)
    metrics = {
        "steps": run.steps, "train_seconds": run.seconds, "target_tokens": task.target_tokens, "step": run.step,
        "pairs": len(pairs), "first_loss": first, "last_loss": last,
        "target_tokens_per_s": task.target_tokens / run.seconds if run.seconds else None,
    }
    if accelerator.is_main_process:
        metrics = write_metrics(out, metrics)  # a rerun of a finished run keeps the record of the run that trained
    accelerator.print(f"trained {config.method} to step {run.step}: loss {first} -> {last}; student in {out / 'final'}")
    return metrics
