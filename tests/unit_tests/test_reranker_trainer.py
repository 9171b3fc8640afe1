"""The reranker trainer: steps, checkpoints, resume, evaluation, and two accelerate processes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from safetensors.torch import load_file  # noqa: E402

from kard_chain import BM25Retriever, Example, Passage  # noqa: E402
from kard_chain.reranker.candidates import build_candidates
from kard_chain.reranker.trainer import RerankerTrainingConfig, train_reranker  # noqa: E402
from kard_chain.teacher.cache import rationale_pairs  # noqa: E402
from tests.unit_tests.tiny_models import tiny_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PLACES = ["marsh", "tundra", "canyon", "reef", "steppe", "delta"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainer")
    names = [f"zorb{i}" for i in range(30)]
    passages = [Passage(id=n, text=f"{n} lives in the {PLACES[i % 6]} near the river") for i, n in enumerate(names)]
    passages += [Passage(id=f"filler{i}", text=f"the river {PLACES[i % 6]} is wide") for i in range(10)]
    retriever = BM25Retriever.build(passages, tmp / "index", show_progress=False)
    examples = [Example(id=n, question=f"where does {n} live", reference_rationale=f"{n} lives in the {PLACES[i % 6]}") for i, n in enumerate(names)]
    build_candidates(rationale_pairs(examples, reference=True), retriever, tmp / "cands.jsonl", k=4, show_progress=False)
    words = sorted({w for p in passages for w in p.text.split()} | {"where", "does", "live"})
    for name, dropout in (("encoder", 0.0), ("encoder_dropout", 0.1)):  # dropout: the resume must restore the RNG too
        encoder, tokenizer = tiny_encoder(words, dropout=dropout)
        encoder.save_pretrained(tmp / name)
        tokenizer.save_pretrained(tmp / name)
    return tmp


def config(setup, out, **kw):
    base = dict(encoder=str(setup / "encoder"), candidates=setup / "cands.jsonl", index=setup / "index", output_dir=out,
                dim=16, batch_size=4, candidates_per_set=4, save_every=2, eval_fraction=0.2, learning_rate=1e-3)
    return RerankerTrainingConfig(**{**base, **kw})


def held_out_sets(setup):
    from kard_chain.reranker.candidates import CandidateSet
    from kard_chain.reranker.trainer import is_held_out

    sets = [CandidateSet.model_validate_json(line) for line in (setup / "cands.jsonl").read_text().splitlines()]
    return [c for c in sets if is_held_out(c.example_id, 0.2)]


def held_out_hits(setup, folder, by: str) -> dict[str, float]:
    """Hits@1/3/5 of each held-out set's best passage (highest BM25(rationale)), ranked by the reranker saved in
    ``folder`` or by BM25(question), counted here from the candidates file."""
    from kard_chain.bm25.index import BM25Index
    from kard_chain.reranker.model import KardReranker, reranker_text

    index, reranker = BM25Index.load(setup / "index"), KardReranker.from_pretrained(folder)
    ranks = []
    for c in held_out_sets(setup):
        if by == "bm25":
            scores = index.score(c.question, c.passage_ids)
        else:
            texts = [reranker_text(p.title, p.text) for p in (index.passages.get(index.row_of[i]) for i in c.passage_ids)]
            scores = reranker.score([c.question], [texts])[0]
        best = c.rationale_scores.index(max(c.rationale_scores))
        ranks.append(sum(s > scores[best] or (s == scores[best] and i < best) for i, s in enumerate(scores)))
    return {f"hits@{k}": sum(r < k for r in ranks) / len(ranks) for k in (1, 3, 5)}


def test_train_checkpoint_resume_and_evaluate(setup, tmp_path, capsys):
    straight = tmp_path / "straight"
    metrics = train_reranker(config(setup, straight, max_steps=6, mixed_precision="no"))  # fp32: evaluated as served
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    first = load_file(straight / "checkpoint-2" / "head.safetensors")["weight"]
    last = load_file(straight / "checkpoint-6" / "head.safetensors")["weight"]
    assert not torch.equal(first, last)
    assert metrics["last_loss"] < 0.8 * metrics["first_loss"]  # the mean KL of steps 1-3 against steps 4-6
    assert metrics["reranker"] == held_out_hits(setup, straight / "final", "reranker")  # recomputed from the saved reranker
    assert metrics["bm25_question"] == held_out_hits(setup, straight / "final", "bm25")
    assert metrics["sets"] == len(held_out_sets(setup)) > 0
    assert "bm25_question" in capsys.readouterr().out
    assert json.loads((straight / "metrics.json").read_text()) == metrics and metrics["train_seconds"] > 0
    assert (straight / "final" / "reranker.json").is_file()

    # a run interrupted after its step-4 checkpoint resumes there and ends on the same weights, bit for bit,
    # with dropout on (so the RNG state must come back with the checkpoint)
    kw = dict(max_steps=6, encoder=str(setup / "encoder_dropout"))
    train_reranker(config(setup, tmp_path / "straight_dropout", **kw))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for name in ("checkpoint-2", "checkpoint-4"):
        shutil.copytree(tmp_path / "straight_dropout" / name, resumed / name)
    train_reranker(config(setup, resumed, **kw))
    assert "resuming from" in capsys.readouterr().out
    for name in ("head", "encoder"):
        a = load_file(tmp_path / "straight_dropout" / "checkpoint-6" / f"{name}.safetensors")
        b = load_file(resumed / "checkpoint-6" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_trains_adapters_and_saves_a_plain_encoder(setup, tmp_path):
    pytest.importorskip("peft")
    from kard_chain.reranker.model import KardReranker

    out = tmp_path / "lora"
    train_reranker(config(setup, out, max_steps=3, lora_r=4, eval_fraction=0.0))
    encoder_keys = load_file(out / "checkpoint-2" / "encoder.safetensors")
    assert any("lora_" in k for k in encoder_keys)
    merged = KardReranker.from_pretrained(out / "final")
    original = KardReranker.from_encoder(str(setup / "encoder"))
    changed = [n for (n, a), (_, b) in zip(merged.encoder.named_parameters(), original.encoder.named_parameters()) if not torch.equal(a, b)]
    assert changed and all("attention" in n for n in changed)  # only the adapted (query/value) weights moved


def test_frozen_lower_layers_keep_their_pretrained_weights(setup, tmp_path):
    from kard_chain.reranker.model import KardReranker

    out = tmp_path / "frozen"
    metrics = train_reranker(config(setup, out, max_steps=4, freeze_layers=1, eval_fraction=0.0))
    assert metrics["last_loss"] < metrics["first_loss"]
    trained = dict(KardReranker.from_pretrained(out / "final").encoder.named_parameters())
    original = dict(KardReranker.from_encoder(str(setup / "encoder")).encoder.named_parameters())
    moved = {n for n in original if not torch.equal(original[n], trained[n])}
    assert moved and all(n.startswith("encoder.layer.") and not n.startswith("encoder.layer.0.") for n in moved)
    with pytest.raises(ValueError, match="freeze_layers=9, but the encoder has 2 layers"):
        train_reranker(config(setup, tmp_path / "too_many", max_steps=1, freeze_layers=9))


def test_attention_dropout_is_off_by_default_and_bf16_is_chosen_where_the_cpu_has_it(setup, tmp_path, monkeypatch):
    from kard_chain.reranker.trainer import _model_and_optimizer
    from kard_chain.training import loop

    def attention_dropouts(model):
        return {m.p for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and ".attention.self" in name}

    with_dropout = str(setup / "encoder_dropout")  # hidden and attention dropout 0.1
    default, _ = _model_and_optimizer(config(setup, tmp_path, encoder=with_dropout), [])
    kept, _ = _model_and_optimizer(config(setup, tmp_path, encoder=with_dropout, attention_dropout=None), [])
    assert default.encoder.config.attention_probs_dropout_prob == 0.0 and attention_dropouts(default) <= {0.0}
    assert kept.encoder.config.attention_probs_dropout_prob == 0.1 and attention_dropouts(kept) <= {0.1}
    assert default.encoder.config.hidden_dropout_prob == 0.1  # only the attention's dropout changes
    if not torch.cuda.is_available():
        for native in (True, False):
            monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda native=native: native)
            assert loop.resolve_precision("auto", cpu_bf16=True) == ("bf16" if native else "no")
            assert loop.resolve_precision("auto") == "no"  # the student trainer's auto: none on a CPU
            assert loop.resolve_precision("fp16", cpu_bf16=True) == "fp16"


def test_one_process_trains_in_bf16_then_in_fp32():
    """kard demo trains the reranker (bf16 on a bf16 CPU) and then the students (fp32) in one process."""
    from kard_chain.training.loop import make_accelerator

    assert [make_accelerator(1, p).mixed_precision for p in ("bf16", "no", "no", "bf16")] == ["bf16", "no", "no", "bf16"]


def test_refuses_a_non_empty_folder(setup, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        train_reranker(config(setup, tmp_path / "x", max_steps=1))


def test_two_cpu_processes_under_accelerate(setup, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "trainers" / "reranker.py"),
           "--encoder", str(setup / "encoder"), "--candidates", str(setup / "cands.jsonl"), "--index", str(setup / "index"),
           "--output-dir", str(out), "--dim", "16", "--batch-size", "2", "--candidates-per-set", "4", "--max-steps", "3",
           "--save-every", "3", "--eval-fraction", "0.2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "checkpoint-3" / "head.safetensors").is_file() and (out / "final" / "reranker.json").is_file()
    assert done.stdout.count("step 1/3 loss") == 1  # printed by the main process only


@pytest.mark.parametrize("kind", ["rationale", "sentences", "question+sentences"])
def test_each_target_kind_reaches_the_sampled_targets(setup, tmp_path, kind):
    """The targets a step trains on are the mean softmax of BM25 by the queries ``target_queries`` names, over the
    sampled candidates, and the target's top candidate is always sampled."""
    import math
    import random

    from kard_chain.bm25.index import BM25Index
    from kard_chain.reranker.candidates import CandidateSet
    from kard_chain.reranker.trainer import _RerankerTask

    index = BM25Index.load(setup / "index")
    question, rationale = "where does zorb7 live", "zorb7 lives in the tundra. the river reef is wide. So the answer is tundra."
    ids = [f"zorb{i}" for i in range(12)] + [f"filler{i}" for i in range(4)]
    c = CandidateSet(id="x#0", example_id="x", question=question, rationale=rationale, passage_ids=ids,
                     rationale_scores=index.score(rationale, ids), from_rationale=[i < 8 for i in range(len(ids))])
    queries = {"rationale": [rationale], "sentences": ["zorb7 lives in the tundra.", "the river reef is wide."],
               "question+sentences": [f"{question} zorb7 lives in the tundra.", f"{question} the river reef is wide."]}[kind]
    tau = 2.0
    task = _RerankerTask(None, None, index, [], None, config(setup, tmp_path, target_queries=kind, target_temperature=tau, candidates_per_set=6))
    rows_all = [index.score(q, ids) for q in queries]
    mean_all = [sum(math.exp(r[i] / tau) / sum(math.exp(x / tau) for x in r) for r in rows_all) / len(queries) for i in range(len(ids))]
    assert task.best(c) == mean_all.index(max(mean_all))
    for seed in range(5):
        [(sampled, targets)] = task._sample([c], random.Random(seed))
        assert len(sampled) == 6 and ids[task.best(c)] in sampled
        rows = [index.score(q, sampled) for q in queries]
        expected = [sum(math.exp(r[i] / tau) / sum(math.exp(x / tau) for x in r) for r in rows) / len(queries) for i in range(6)]
        got = [math.exp(t / tau) for t in targets]
        assert [g / sum(got) for g in got] == pytest.approx(expected, rel=1e-9)


def test_in_batch_negatives_score_every_question_against_the_batchs_passages(setup, tmp_path):
    """Each question meets every passage sampled for the batch, its target by BM25 of its own rationale over all."""
    import math
    import random

    from kard_chain.bm25.index import BM25Index
    from kard_chain.reranker.trainer import _RerankerTask

    seen = {}

    def model(questions, candidates=None, *, shared=None):
        seen.update(questions=questions, candidates=candidates, shared=shared)
        n = len(shared) if shared is not None else max(len(c) for c in candidates)
        return torch.zeros(len(questions), n), torch.ones(len(questions), n, dtype=torch.bool)

    def loss_fn(scores, targets, mask):
        seen.update(targets=targets)
        return targets.sum()

    index, tau = BM25Index.load(setup / "index"), 2.0
    sets = held_out_sets(setup)[:3] or pytest.skip("no held-out sets")
    for in_batch in (False, True):
        cfg = config(setup, tmp_path, in_batch_negatives=in_batch, target_temperature=tau)
        task = _RerankerTask(model, loss_fn, index, [], None, cfg)
        task.passage_text = lambda pid: pid  # the model sees ids: the test reads back which passages it met
        task.loss(sets, random.Random(0))
        if not in_batch:
            assert seen["shared"] is None and [len(c) for c in seen["candidates"]] == [4] * len(sets)
            continue
        ids = seen["shared"]
        assert seen["candidates"] is None and len(ids) == len(set(ids)) > 4
        for row, c in zip(seen["targets"], sets):
            scores = index.score(c.rationale, ids)
            expected = [math.exp(s / tau) / sum(math.exp(x / tau) for x in scores) for s in scores]
            got = [math.exp(t / tau) for t in row.tolist()]
            assert [g / sum(got) for g in got] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="in_batch_negatives needs scoring='late_interaction'"):
        config(setup, tmp_path, in_batch_negatives=True, scoring="cross_encoder")


def test_the_dense_target_adds_the_encoders_cosine_to_bm25_each_standardised(setup, tmp_path):
    import math
    import random

    import numpy as np

    from kard_chain.bm25.index import BM25Index
    from kard_chain.embeddings import TransformerEmbeddings
    from kard_chain.retrievers.reranking import fuse
    from kard_chain.reranker.trainer import _RerankerTask

    from transformers import AutoModel, AutoTokenizer

    other = tmp_path / "other_encoder"  # not the reranker's: the target must come from target_encoder
    torch.manual_seed(5)
    model = AutoModel.from_pretrained(setup / "encoder")
    with torch.no_grad():
        for w in model.parameters():
            w.add_(torch.randn_like(w) * 0.5)
    model.save_pretrained(other)
    AutoTokenizer.from_pretrained(setup / "encoder").save_pretrained(other)
    index, tau = BM25Index.load(setup / "index"), 0.5
    [c] = held_out_sets(setup)[:1]
    embed = TransformerEmbeddings(model=str(other), max_length=128)
    texts = [index.passages.get(index.row_of[p]).text for p in c.passage_ids]
    cosine = (np.asarray(embed.embed_documents([c.rationale])) @ np.asarray(embed.embed_documents(texts)).T)[0].tolist()
    expected = fuse(index.score(c.rationale, c.passage_ids), cosine, 1.0)  # z(BM25) + z(cosine)
    cfg = config(setup, tmp_path, target_scorer="bm25+dense", target_encoder=str(other), target_temperature=tau)
    task = _RerankerTask(None, None, index, [], None, cfg)
    assert task.target_scores(c) == [pytest.approx(expected, abs=1e-5)]
    assert task.best(c) == expected.index(max(expected))
    [(sampled, targets)] = task._sample([c], random.Random(3))
    rows = [expected[c.passage_ids.index(p)] for p in sampled]
    want = [math.exp(x / tau) / sum(math.exp(y / tau) for y in rows) for x in rows]
    got = [math.exp(t / tau) for t in targets]
    assert [g / sum(got) for g in got] == pytest.approx(want, rel=1e-4)
    plain = _RerankerTask(None, None, index, [], None, config(setup, tmp_path, target_temperature=tau))
    assert plain.target_scores(c) == [c.rationale_scores]  # KARD's target unless asked


def test_a_pca_head_init_reaches_the_model_the_trainer_builds(setup, tmp_path):
    from kard_chain.reranker.trainer import _model_and_optimizer

    texts = [f"zorb{i} lives in the marsh near the river" for i in range(12)]
    random_head, _ = _model_and_optimizer(config(setup, tmp_path), [], texts)
    pca_head, _ = _model_and_optimizer(config(setup, tmp_path, head_init="pca"), [], texts)
    expected, _ = _model_and_optimizer(config(setup, tmp_path), [])
    expected.init_head_from(texts)
    assert torch.equal(pca_head.head.weight, expected.head.weight)
    assert not torch.allclose(random_head.head.weight, expected.head.weight)
