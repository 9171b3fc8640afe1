"""The student end to end on a tiny T5: it learns to read, trains and resumes, loads, and serves (offline)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from kard_chain import Seq2SeqStudentLLM, BM25Retriever, build_kard_chain, build_rd_chain  # noqa: E402
from kard_chain.cli import main as kard  # noqa: E402
from kard_chain.student.llm import CausalStudentLLM  # noqa: E402
from kard_chain.student.trainer import StudentTrainingConfig, train_student  # noqa: E402
from kard_chain.testing.scratch_models import scratch_t5, word_tokenizer  # noqa: E402
from tests.unit_tests.copy_task import write_copy_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VOCAB = "question : options : knowledge : so the answer is ( a ) ( b ) ( c ) ( d ) red blue green yellow [ 1 ] [ 2 ] ..."


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("student")
    train, test, passages = write_copy_task(tmp, n_train=240, n_test=40)
    tok = word_tokenizer([p.text for p in passages] + [e.question for e in train + test] + [VOCAB])
    for name, dropout in (("init", 0.0), ("init_dropout", 0.1)):  # dropout slows this tiny task down
        scratch_t5(tok, d_model=64, layers=2, heads=4, dropout=dropout).save_pretrained(tmp / name)
        tok.save_pretrained(tmp / name)
    return tmp, test


def config(setup_dir, out, **kw):
    values = dict(model=str(setup_dir / "init"), output_dir=out, dataset="jsonl", data_dir=setup_dir / "train.jsonl",
                  reference=True, index=setup_dir / "index", k=1, batch_size=16, learning_rate=3e-3, max_steps=150,
                  save_every=1000)
    return StudentTrainingConfig(**{**values, **kw})


def accuracy(chain, examples):
    torch.manual_seed(0)  # the samples drawn do not depend on what ran before in this process
    return sum(o["answer"] == e.answer for o, e in zip(chain.batch(examples), examples)) / len(examples)


@pytest.fixture(scope="module")
def kard_student(setup):
    """A KARD student trained once (200 steps) for every test that reads one; its run's figures."""
    tmp, _ = setup
    return train_student(config(tmp, tmp / "kard", method="kard", max_steps=200), show_progress=False)


def test_a_student_that_reads_the_passage_answers_unseen_entities_and_one_without_cannot(setup, kard_student):
    tmp, test = setup
    train_student(config(tmp, tmp / "rd", method="rd", max_steps=200), show_progress=False)
    assert kard_student["last_loss"] < kard_student["first_loss"] / 3
    kard_llm = Seq2SeqStudentLLM.from_pretrained(tmp / "kard" / "final", n=3, max_new_tokens=24, temperature=0.5)
    rd_llm = Seq2SeqStudentLLM.from_pretrained(tmp / "rd" / "final", n=3, max_new_tokens=24, temperature=0.5)
    kard_acc = accuracy(build_kard_chain(BM25Retriever.load(tmp / "index"), kard_llm), test)  # k=1 from kard_student.json
    rd_acc = accuracy(build_rd_chain(rd_llm, n=3), test)
    # 40 held-out entities, 4 options: chance is 0.25
    assert kard_acc >= 0.8, kard_acc
    assert rd_acc <= 0.5, rd_acc


def test_saved_student_loads_with_its_config_and_the_kv_cache_on(setup):
    tmp, _ = setup
    out = tmp / "roundtrip"
    train_student(config(tmp, out, method="kard", max_steps=5, gradient_checkpointing=True), show_progress=False)
    final = out / "final"
    saved = json.loads((final / "kard_student.json").read_text())
    assert saved["method"] == "kard" and saved["k"] == 1
    assert saved["question_forms"] == {"options": 240, "no_options": 0}  # every copy-task question lists options
    llm = Seq2SeqStudentLLM.from_pretrained(final, do_sample=False, max_new_tokens=8)
    assert llm.model.config.use_cache is True
    from transformers import AutoModelForSeq2SeqLM

    again = AutoModelForSeq2SeqLM.from_pretrained(final).eval()
    prompt = "question: what colour is the x ?"
    ids = llm.tokenizer(prompt, return_tensors="pt")
    expected = llm.tokenizer.decode(again.generate(**ids, max_new_tokens=8, do_sample=False)[0], skip_special_tokens=True)
    assert llm.invoke(prompt) == expected


def test_resume_after_a_crash_gives_the_uninterrupted_weights(setup, monkeypatch):
    from kard_chain.student import trainer as student_trainer

    tmp, _ = setup
    kw = dict(method="rd", max_steps=12, save_every=5, batch_size=8, model=str(tmp / "init_dropout"))  # dropout: RNG state resumes too
    train_student(config(tmp, tmp / "straight", **kw), show_progress=False)

    calls = {"n": 0}
    original = student_trainer.Collator.__call__

    def crash_at_batch_8(self, batch):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(student_trainer.Collator, "__call__", crash_at_batch_8)
    with pytest.raises(KeyboardInterrupt):
        train_student(config(tmp, tmp / "resumed", **kw), show_progress=False)
    monkeypatch.setattr(student_trainer.Collator, "__call__", original)
    assert sorted(p.name for p in (tmp / "resumed").glob("checkpoint-*")) == ["checkpoint-5"]
    resumed = train_student(config(tmp, tmp / "resumed", **kw), show_progress=False)
    assert resumed["steps"] == 7 and resumed["step"] == 12
    a = load_file(tmp / "straight" / "final" / "model.safetensors")
    b = load_file(tmp / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def sampled_again(llm, prompts: list[str], seed: int):
    """The token ids that ``llm.generate(prompts)`` sampled after ``torch.manual_seed(seed)`` (one batch), drawn
    again with transformers' ``generate``; checked against the texts the LLM returned by the caller."""
    torch.manual_seed(seed)
    enc = llm.tokenizer(prompts, return_tensors="pt", padding=True)
    out = llm.model.generate(**enc, num_return_sequences=llm.n, do_sample=True, temperature=llm.temperature, top_k=0,
                             max_new_tokens=llm.max_new_tokens, pad_token_id=llm.tokenizer.pad_token_id,
                             eos_token_id=llm.tokenizer.eos_token_id)
    return out if llm.model.config.is_encoder_decoder else out[:, enc.input_ids.shape[1] :]


def reference_logprob(llm, prompt: str, ids) -> float:
    """The model's log-probability at temperature 1 of the generated ``ids`` (up to the first end token) after
    ``prompt`` alone, unpadded, scored afresh by teacher forcing."""
    tok, model = llm.tokenizer, llm.model
    ids = ids.tolist()[1:] if model.config.is_encoder_decoder else ids.tolist()  # a seq2seq output starts at its start token
    target = torch.tensor([ids[: ids.index(tok.eos_token_id) + 1] if tok.eos_token_id in ids else ids])
    prompt_ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            logits = model(input_ids=prompt_ids, labels=target).logits
        else:
            logits = model(input_ids=torch.cat([prompt_ids, target], dim=1)).logits[:, prompt_ids.shape[1] - 1 : -1]
    return torch.log_softmax(logits.double(), -1).gather(-1, target.unsqueeze(-1)).sum().item()


def assert_logprobs_score_the_samples(llm, prompts: list[str]):
    """Every sample's reported ``logprob`` is its own log-probability under the model, left- or right-padded
    prompts alike (a score of another sample, of the padded prompt or at the sampling temperature fails)."""
    torch.manual_seed(7)
    gens = llm.generate(prompts).generations
    ids = sampled_again(llm, prompts, seed=7)
    assert [g.text for gs in gens for g in gs] == llm.tokenizer.batch_decode(ids, skip_special_tokens=True)
    for i, (prompt, samples) in enumerate(zip(prompts, gens)):
        assert [g.generation_info["logprob"] for g in samples] == pytest.approx(
            [reference_logprob(llm, prompt, ids[i * llm.n + j]) for j in range(llm.n)], abs=1e-3)


def test_t5llm_samples_n_per_prompt_in_batches_with_stops_and_streams(setup, kard_student):
    tmp, _ = setup
    llm = Seq2SeqStudentLLM.from_pretrained(tmp / "kard" / "final", n=4, max_new_tokens=24, batch_size=2)
    prompts = [f"question: what colour is the {w} ?" for w in ("a", "b", "c")]
    result = llm.generate(prompts)
    assert [len(g) for g in result.generations] == [4, 4, 4]
    assert_logprobs_score_the_samples(llm, prompts[:2])
    greedy = llm.invoke(prompts[0], do_sample=False)
    assert "answer" in greedy
    assert "".join(llm.stream(prompts[0], do_sample=False)) == greedy
    cut = llm.invoke(prompts[0], do_sample=False, stop=["answer"])
    assert cut == greedy[: greedy.index("answer")]
    assert "".join(llm.stream(prompts[0], do_sample=False, stop=["answer"])) == cut
    with pytest.raises(TypeError, match="unknown generation parameter"):
        llm.invoke(prompts[0], beams=3)


def test_decoder_only_student_trains_and_samples(tmp_path, setup):
    from transformers import GPT2Config, GPT2LMHeadModel

    tmp, _ = setup
    tok = word_tokenizer([(tmp / "train.jsonl").read_text(), VOCAB])
    torch.manual_seed(0)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    gpt.save_pretrained(tmp_path / "gpt")
    tok.save_pretrained(tmp_path / "gpt")
    run = train_student(config(tmp, tmp_path / "out", model=str(tmp_path / "gpt"), method="ft", max_steps=40), show_progress=False)
    assert run["last_loss"] < run["first_loss"]
    llm = CausalStudentLLM.from_pretrained(tmp_path / "out" / "final", n=3, max_new_tokens=6)
    gens = llm.generate(["question: what colour is the x ?", "question: what ?"]).generations
    assert [len(g) for g in gens] == [3, 3]
    assert_logprobs_score_the_samples(llm, ["question: what colour is the x ?", "question: what ?"])


def test_generation_ends_at_the_end_token_the_student_learned(monkeypatch):
    """The trainer ends every target with the tokenizer's end token; generation must stop there even when the
    model's config names another (SmolLM2's GGUF under transformers 5.17 did: answers ran on for 60 tokens)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = word_tokenizer([VOCAB])
    tok.eos_token = "red"  # the end token the student learned
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=8, n_layer=1, n_head=2, n_positions=64,
                                     tie_word_embeddings=False, eos_token_id=tok.convert_tokens_to_ids("blue"),
                                     pad_token_id=tok.pad_token_id))
    with torch.no_grad():  # every position's hidden state is all ones, and only "red" scores
        gpt.transformer.ln_f.weight.zero_()
        gpt.transformer.ln_f.bias.fill_(1.0)
        gpt.lm_head.weight.zero_()
        gpt.lm_head.weight[tok.eos_token_id] = 1.0
    llm = CausalStudentLLM(model=gpt.eval(), tokenizer=tok, model_id="engineered", n=1, max_new_tokens=6)
    lengths, generate = [], gpt.generate

    def counting_generate(**kw):
        out = generate(**kw)
        lengths.append(out.shape[1] - kw["input_ids"].shape[1])
        return out

    monkeypatch.setattr(gpt, "generate", counting_generate)
    llm.invoke("question : what colour ?", do_sample=False)
    assert lengths == [1]


def test_two_cpu_processes_under_accelerate(setup):
    tmp, _ = setup
    out = tmp / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "trainers" / "student.py"),
           "--model", str(tmp / "init"), "--output-dir", str(out), "--method", "kard", "--dataset", "jsonl",
           "--data-dir", str(tmp / "train.jsonl"), "--reference", "true", "--index", str(tmp / "index"), "--k", "1",
           "--batch-size", "4", "--max-steps", "3", "--save-every", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "checkpoint-2" / "optimizer.pt").is_file() and (out / "final" / "kard_student.json").is_file()
    assert done.stdout.count("trained kard to step 3") == 1  # printed by the main process only


def test_cli_trains_evaluates_and_asks(setup, kard_student, capsys):
    tmp, test = setup
    common = ["--model", str(tmp / "init"), "--dataset", "jsonl", "--data-dir", str(tmp / "train.jsonl")]
    assert kard(["train-student", *common, "--method", "ft", "--output-dir", str(tmp / "cli_ft"), "--max-steps", "3"]) == 0
    assert kard(["train-student", *common, "--method", "kard", "--output-dir", str(tmp / "bad")]) == 2
    assert "needs rationales" in capsys.readouterr().err
    args = ["--student", str(tmp / "kard" / "final"), "--index", str(tmp / "index"), "-n", "3", "--max-new-tokens", "24"]
    out = tmp / "eval.jsonl"
    assert kard(["evaluate", *args, "--dataset", "jsonl", "--data-dir", str(tmp / "test.jsonl"), "--limit", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 10 and {"gold", "votes", "answer", "passage_ids", "correct"} <= set(records[0])
    share = sum(r["correct"] for r in records) / 10
    assert f"accuracy {share:.3f} (95% CI" in printed
    assert kard(["ask", *args, test[0].question]) == 2  # trained on options only: asked without them, refused
    assert "--option A=" in capsys.readouterr().err
    options = [f"--option={letter}={text}" for letter, text in test[0].options.items()]
    assert kard(["ask", *args, *options, test[0].question]) == 0
    printed = capsys.readouterr().out
    assert test[0].evidence_ids[0] in printed and "answer: " in printed
    assert kard(["ask", *args, *options, "--draft", "draft", test[0].question]) == 0
    printed = capsys.readouterr().out
    assert "  draft: " in printed and "[1] (round 1) " in printed and "answer: " in printed
    assert kard(["ask", *args, *options, "--bridge", test[0].question]) == 0
    printed = capsys.readouterr().out
    assert "[1] (round 1) " in printed and "  draft: " not in printed and "answer: " in printed


@pytest.mark.parametrize("seq2seq", [True, False])
def test_answer_weight_weighs_the_tokens_from_the_final_answer_on_and_is_plain_cross_entropy_at_1(setup, seq2seq):
    from transformers import AutoTokenizer

    from kard_chain.student.pairs import StudentPair
    from kard_chain.student.trainer import Collator, weighted_token_loss
    from kard_chain.testing.scratch_models import scratch_decoder

    tmp, _ = setup
    tok = AutoTokenizer.from_pretrained(tmp / "init")
    model = scratch_t5(tok, d_model=32, layers=1, heads=2) if seq2seq else scratch_decoder(tok, hidden=32, layers=1, heads=2)
    pairs = [StudentPair(id="a", example_id="a", source="question: what colour ?", target="it is red . So the answer is red."),
             StudentPair(id="b", example_id="b", source="question: which ?", target="blue")]  # no rationale: all answer
    batch = Collator(tok, seq2seq, 64, 32, answer_weight=4.0)(pairs)
    weights, labels = batch.pop("weights"), batch["labels"]
    heavy = [tok.decode(labels[i][weights[i] == 4.0], skip_special_tokens=True).replace(" ", "") for i in range(2)]
    assert heavy == ["red.", "blue"]
    assert ((weights == 1.0) == ((labels != -100) & (weights != 4.0))).all()  # 1 on the rationale, 0 on padding
    out = model(**batch)
    assert torch.allclose(weighted_token_loss(out.logits, labels, (labels != -100).float(), seq2seq), out.loss, atol=1e-5)
    logp = out.logits.float().log_softmax(-1)  # the weighted mean by hand, token by token, with the collator's 4/1 weights
    lab, w = (labels, weights) if seq2seq else (labels[:, 1:], weights[:, 1:])
    logp = logp if seq2seq else logp[:, :-1]
    terms = [(-logp[i, t, lab[i, t]] * w[i, t], w[i, t]) for i in range(lab.shape[0]) for t in range(lab.shape[1]) if lab[i, t] != -100]
    expected = sum(x for x, _ in terms) / sum(v for _, v in terms)
    weighted = weighted_token_loss(out.logits, labels, weights, seq2seq)
    assert torch.allclose(weighted, expected, atol=1e-5) and not torch.allclose(weighted, out.loss, atol=1e-4)
    assert "weights" not in Collator(tok, seq2seq, 64, 32)(pairs)  # weight 1: the model's own loss, as before


@pytest.mark.parametrize("seq2seq", [True, False])
def test_the_collator_truncates_sources_and_targets_to_the_configured_lengths(setup, seq2seq):
    """max_source_tokens and max_target_tokens bound what the student reads and learns to write: a decoder's prompt
    keeps its special tokens, and the labels cover the kept target only."""
    from transformers import AutoTokenizer

    from kard_chain.student.pairs import StudentPair
    from kard_chain.student.trainer import Collator

    tmp, _ = setup
    tok = AutoTokenizer.from_pretrained(tmp / "init")
    long = " ".join(["red blue green yellow"] * 20)
    pair = StudentPair(id="a", example_id="a", source="question: " + long, target=long + " . So the answer is red.")
    batch = Collator(tok, seq2seq, 6, 5)([pair])
    full = tok(pair.source)["input_ids"]
    if seq2seq:
        assert batch["input_ids"].shape[1] == 6 and batch["labels"].shape[1] == 5
        assert batch["input_ids"][0].tolist() == tok(pair.source, max_length=6, truncation=True)["input_ids"]
    else:
        assert batch["input_ids"].shape[1] == 6 + 5 + 1 and int((batch["labels"] != -100).sum()) == 5 + 1  # and the eos
        assert batch["input_ids"][0, :6].tolist() == tok(pair.source, max_length=6, truncation=True)["input_ids"]
    assert len(full) > 6 and set(batch["attention_mask"].unique().tolist()) <= {0, 1}  # the source really was cut
