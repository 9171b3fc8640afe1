"""Training the KARD reranker: the loop behind ``trainers/reranker.py`` and ``kard train-reranker``.

One pydantic config is the truth (from flags or a JSON file). The loop is
:mod:`kard_chain.training.loop` (AdamW with linear warm-up and decay, gradient accumulation, a
checkpoint every ``save_every`` optimiser steps, exact resume from the last one in
``output_dir``); an evaluation after each epoch, and :mod:`accelerate` for several processes or GPUs::

    accelerate launch --num_processes 2 --cpu trainers/reranker.py --config reranker.json

Evaluation: on held-out candidate sets (examples not trained on), Hits@1/3/5 of the
target's top passage (with the default target, the highest BM25(rationale, passage)) when the
candidates are ranked by BM25(question) and by the reranker.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from kard_chain.errors import KardDataError
from kard_chain.io import is_local_path
from kard_chain.jsonl_store import read_records
from kard_chain.metrics import hits
from kard_chain.reranker.candidates import CandidateSet
from kard_chain.reranker.config import RerankerTrainingConfig
from kard_chain.reranker.targets import log_mixture, target_queries
from kard_chain.retrievers.reranking import fuse
from kard_chain.training.checkpoints import prepare_run, write_metrics
from kard_chain.training.loop import linear_schedule, make_accelerator, resume_state, run_loop, total_steps


def is_held_out(example_id: str, fraction: float) -> bool:
    """A stable split by example id: the same example is always on the same side."""
    return int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) / 16**8 < fraction


def sample_candidates(c: CandidateSet, best: int, n: int, share: float, rng: random.Random) -> list[int]:
    """Positions of ``n`` candidates mixing rationale- and question-retrieved passages; ``best`` (the target's top
    candidate) is always among them."""
    by_r = [i for i, r in enumerate(c.from_rationale) if r and i != best]
    by_q = [i for i, r in enumerate(c.from_rationale) if not r and i != best]
    want_r = min(len(by_r), round((n - 1) * share))
    chosen = rng.sample(by_r, want_r) + rng.sample(by_q, min(len(by_q), n - 1 - want_r))
    chosen += rng.sample([i for i in by_r if i not in chosen], min(n - 1 - len(chosen), len(by_r) - want_r))
    chosen = [best] + chosen
    rng.shuffle(chosen)
    return chosen


def _with_lora(model, config: RerankerTrainingConfig):
    """The encoder wrapped in LoRA adapters (peft)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        from kard_chain.errors import MissingExtraError

        raise MissingExtraError("peft", "lora") from None
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules)
    model.encoder = get_peft_model(model.encoder, lora)
    return model


def _freeze_lower_layers(encoder, n: int) -> None:
    """Stop gradients to the embeddings and the ``n`` lowest layers of a BERT-style encoder."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if getattr(encoder, "embeddings", None) is None or layers is None:
        raise ValueError(f"freeze_layers: {type(encoder).__name__} has no .embeddings and .encoder.layer (BERT-style) to freeze")
    if n > len(layers):
        raise ValueError(f"freeze_layers={n}, but the encoder has {len(layers)} layers")
    for module in [encoder.embeddings, *layers[:n]]:
        module.requires_grad_(False)


class _RerankerTask:
    """The reranker's side of the shared loop: sample candidates, score them, compare with the BM25 targets."""

    def __init__(self, model, loss_fn, index, held_out: list[CandidateSet], accelerator, config: RerankerTrainingConfig) -> None:
        from kard_chain.reranker.model import reranker_text

        self.model, self.loss_fn, self.index, self.held_out = model, loss_fn, index, held_out
        self.accelerator, self.config, self.metrics = accelerator, config, {}
        self._text, self._format, self._target_scores = {}, reranker_text, {}
        self._embedder, self._vectors = None, {}

    def passage_text(self, pid: str) -> str:
        if pid not in self._text:
            p = self.index.passages.get(self.index.row_of[pid])
            self._text[pid] = self._format(p.title, p.text)
        return self._text[pid]

    def target_scores(self, c: CandidateSet, ids: list[str] | None = None) -> list[list[float]]:
        """The target scorer's score of each target query (``target_queries``) against each candidate of the set, or
        against ``ids``."""
        kind, dense = self.config.target_queries, self.config.target_scorer == "bm25+dense"
        if ids is not None:
            queries = target_queries(c.question, c.rationale, kind)
            rows = [self.index.score(q, ids) for q in queries]
            return [fuse(r, d, 1.0) for r, d in zip(rows, self.cosines(queries, ids))] if dense else rows
        if c.id not in self._target_scores:
            plain = kind == "rationale" and not dense
            self._target_scores[c.id] = [c.rationale_scores] if plain else self.target_scores(c, c.passage_ids)
        return self._target_scores[c.id]

    def cosines(self, queries: list[str], ids: list[str]) -> list[list[float]]:
        """Cosine of each query's and each passage's embedding by the target encoder (passages embedded once)."""
        import numpy as np

        if self._embedder is None:
            from kard_chain.embeddings import TransformerEmbeddings

            encoder = self.config.target_encoder or self.config.encoder
            device = str(self.accelerator.device) if self.accelerator is not None else "cpu"
            self._embedder = TransformerEmbeddings(model=encoder, max_length=self.config.max_passage_tokens, device=device)
        todo = [p for p in dict.fromkeys(ids) if p not in self._vectors]
        if todo:
            self._vectors.update(zip(todo, np.asarray(self._embedder.embed_documents([self.passage_text(p) for p in todo]))))
        passages = np.stack([self._vectors[p] for p in ids])
        return (np.asarray(self._embedder.embed_documents(queries)) @ passages.T).tolist()

    def best(self, c: CandidateSet) -> int:
        """Position of the set's top candidate by its target."""
        log_p = log_mixture(self.target_scores(c), self.config.target_temperature)
        return max(range(len(log_p)), key=log_p.__getitem__)

    def _chosen(self, batch: list[CandidateSet], rng: random.Random) -> list[list[int]]:
        """Each set's sampled candidate positions (the only use of ``rng``, so a resume replays it alone)."""
        n, share = self.config.candidates_per_set, self.config.rationale_share
        return [sample_candidates(c, self.best(c), n, share, rng) for c in batch]

    def _targets(self, rows: list[list[float]]) -> list[float]:
        """``target_temperature`` times the log of the rows' mixture, so that the KL loss's ``softmax(targets /
        target_temperature)`` is the mixture itself (with one query, ``softmax(BM25(rationale) / tau)`` as KARD's),
        and the CE loss's top candidate is the mixture's."""
        tau = self.config.target_temperature
        return [tau * x for x in log_mixture(rows, tau)]

    def _sample(self, batch: list[CandidateSet], rng: random.Random) -> list[tuple[list[str], list[float]]]:
        """Each set's sampled passages and their targets over them."""
        return [([c.passage_ids[i] for i in chosen], self._targets([[row[i] for i in chosen] for row in self.target_scores(c)]))
                for c, chosen in zip(batch, self._chosen(batch, rng))]

    def replay(self, batch: list[CandidateSet], rng: random.Random) -> None:
        self._chosen(batch, rng)

    def loss(self, batch: list[CandidateSet], rng: random.Random):
        import torch

        if self.config.in_batch_negatives:
            ids = list(dict.fromkeys(c.passage_ids[i] for c, chosen in zip(batch, self._chosen(batch, rng)) for i in chosen))
            sampled = [(ids, self._targets(self.target_scores(c, ids))) for c in batch]
            scores, mask = self.model([c.question for c in batch], shared=[self.passage_text(p) for p in ids])
        else:
            sampled = self._sample(batch, rng)
            scores, mask = self.model([c.question for c in batch], [[self.passage_text(p) for p in ids] for ids, _ in sampled])
        targets = torch.zeros_like(scores)
        for i, (_, t) in enumerate(sampled):
            targets[i, : len(t)] = torch.tensor(t)
        return self.loss_fn(scores, targets, mask)

    def save_weights(self, folder: Path) -> None:
        from safetensors.torch import save_file

        unwrapped = self.accelerator.unwrap_model(self.model)
        save_file({k: v.contiguous() for k, v in unwrapped.encoder.state_dict().items()}, folder / "encoder.safetensors")
        save_file({k: v.contiguous() for k, v in unwrapped.head.state_dict().items()}, folder / "head.safetensors")

    def end_of_epoch(self, epoch: int, step: int) -> None:
        if self.held_out and self.accelerator.is_main_process:
            self.metrics = {"epoch": epoch, "step": step, **self.evaluate()}
            self.accelerator.print(format_metrics(self.metrics))

    def evaluate(self) -> dict[str, Any]:
        """Hits@k of each held-out set's top candidate by its target, ranked by BM25(question) and by the reranker."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        gold, by_bm25, by_model = [], [], []
        for c in self.held_out:
            gold.append(self.best(c))
            q_scores = self.index.score(c.question, c.passage_ids)
            by_bm25.append(sorted(range(len(q_scores)), key=lambda i: -q_scores[i]))
            m_scores = unwrapped.score([c.question], [[self.passage_text(p) for p in c.passage_ids]])[0]
            by_model.append(sorted(range(len(m_scores)), key=lambda i: -m_scores[i]))
        return {"sets": len(self.held_out), "bm25_question": hits(by_bm25, gold), "reranker": hits(by_model, gold)}


def _dropout_override(config: RerankerTrainingConfig) -> dict[str, float]:
    """The encoder-config field that sets attention dropout, where ``attention_dropout`` asks for one."""
    if config.attention_dropout is None:
        return {}
    from transformers import AutoConfig

    encoder_config = AutoConfig.from_pretrained(config.encoder)
    for name in ("attention_probs_dropout_prob", "attention_dropout"):
        if hasattr(encoder_config, name):
            return {name: config.attention_dropout}
    raise ValueError(f"attention_dropout: the {type(encoder_config).__name__} of {config.encoder} has no attention dropout "
                     "setting that kard knows (attention_probs_dropout_prob, attention_dropout); pass attention_dropout=None")


def _model_and_optimizer(config: RerankerTrainingConfig, checkpoints: list[Path], head_passages: list[str] | None = None):
    """The reranker (from the last checkpoint's weights when resuming) and AdamW with a faster head;
    ``head_passages`` are the texts a ``pca`` head starts from."""
    import torch
    from safetensors.torch import load_file

    from kard_chain.reranker.model import KardReranker, RerankerConfig

    rconf = RerankerConfig(scoring=config.scoring, dim=config.dim, max_question_tokens=config.max_question_tokens,
                           max_passage_tokens=config.max_passage_tokens)
    torch.manual_seed(config.seed)
    model = KardReranker.from_encoder(config.encoder, rconf, **_dropout_override(config))
    if config.head_init == "pca" and not checkpoints:
        model.init_head_from(head_passages or [])
    if config.freeze_layers:
        _freeze_lower_layers(model.encoder, config.freeze_layers)
    if config.lora_r:
        model = _with_lora(model, config)
    if checkpoints:
        model.encoder.load_state_dict(load_file(checkpoints[-1] / "encoder.safetensors"))
        model.head.load_state_dict(load_file(checkpoints[-1] / "head.safetensors"))
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head.") and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.learning_rate}, {"params": head, "lr": config.head_learning_rate}], weight_decay=config.weight_decay
    )
    return model, optimizer


def train_reranker(config: RerankerTrainingConfig, show_progress: bool = True) -> dict:
    """Train (or resume) and return the final evaluation metrics, with the mean loss of the first and last
    ``log_every`` steps of this run and its training seconds."""
    from kard_chain.bm25.index import BM25Index
    from kard_chain.reranker.losses import BM25DistillationKLLoss, TopCandidateCrossEntropyLoss
    from kard_chain.reranker.model import reranker_text

    if is_local_path(config.encoder) and not Path(config.encoder).expanduser().exists():  # before any work
        raise KardDataError("encoder folder not found", path=config.encoder)
    accelerator = make_accelerator(config.grad_accum, config.mixed_precision, cpu_bf16=True)
    out = config.output_dir
    inputs = {"encoder": config.encoder, "candidates": config.candidates, "index": config.index}
    checkpoints = prepare_run(config, "reranker-run", inputs, accelerator)
    sets = list(read_records(config.candidates, CandidateSet).values())
    train = [c for c in sets if not is_held_out(c.example_id, config.eval_fraction)]
    held_out = [c for c in sets if is_held_out(c.example_id, config.eval_fraction)]
    if not train:
        raise ValueError(f"no training candidate sets in {config.candidates}")
    index = BM25Index.load(config.index)
    head_passages = None
    if config.head_init == "pca" and not checkpoints:  # 256 training passages for the projection's directions
        ids = sorted({p for c in train for p in c.passage_ids})
        rows = [index.passages.get(index.row_of[p]) for p in random.Random(config.seed).sample(ids, min(256, len(ids)))]
        head_passages = [reranker_text(r.title, r.text) for r in rows]
    model, optimizer = _model_and_optimizer(config, checkpoints, head_passages)
    total = total_steps(config, len(train), accelerator.num_processes)
    scheduler = linear_schedule(optimizer, config, total)
    loss_fn = (
        BM25DistillationKLLoss(config.target_temperature, config.score_temperature)
        if config.loss == "kl"
        else TopCandidateCrossEntropyLoss(config.score_temperature)
    )
    start = resume_state(checkpoints, optimizer, scheduler, accelerator)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    task = _RerankerTask(model, loss_fn, index, held_out, accelerator, config)
    run = run_loop(config, task, train, accelerator, model, optimizer, scheduler, start_step=start, total=total,
                   desc="train reranker", show_progress=show_progress)
    first, last = run.loss_window(config.log_every)
    task.metrics.update(first_loss=first, last_loss=last, train_seconds=run.seconds)
    if accelerator.is_main_process and (run.steps or not (out / "final").is_dir()):  # a rerun of a finished run changes nothing
        final = accelerator.unwrap_model(model)
        if config.lora_r:
            final.encoder = final.encoder.merge_and_unload()  # a plain encoder: loads without peft
        final.save_pretrained(out / "final")
    if accelerator.is_main_process:
        task.metrics = write_metrics(out, task.metrics)  # a rerun of a finished run keeps the record of the run that trained
    accelerator.wait_for_everyone()
    return task.metrics


def format_metrics(metrics: dict) -> str:
    """Hits@k for BM25(question) and the reranker, side by side."""
    lines = [f"epoch {metrics['epoch']} step {metrics['step']}: {metrics['sets']} held-out sets", f"{'':<16}{'hits@1':>8}{'hits@3':>8}{'hits@5':>8}"]
    for name in ("bm25_question", "reranker"):
        lines.append(f"{name:<16}" + "".join(f"{metrics[name][k]:>8.3f}" for k in ("hits@1", "hits@3", "hits@5")))
    return "\n".join(lines)
