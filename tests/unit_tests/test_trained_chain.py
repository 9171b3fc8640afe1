"""The answer grammar read back as written, the chain asking its retriever for k, and load_kard_chain."""

import asyncio
import json
from pathlib import Path

import pytest

from kard_chain import BM25Retriever, Example, KardDataError
from kard_chain.answers import cut_at_stop, format_answer, parse_answer, render_target, strip_final_answer
from kard_chain.chains import build_kard_chain
from kard_chain.retrievers.bridge import BridgeRetriever
from kard_chain.student.format import StudentFormatter, load_student_prompt
from kard_chain.teacher.chain import judge
from tests.unit_tests.copy_task import copy_task
from tests.unit_tests.test_student_chain import ScriptedLLM

OPTIONS = {"A": "red", "B": "blue", "C": "green", "D": "blue green"}


@pytest.mark.parametrize("rationale", [
    "The sky is blue.", "I think the answer is red at first, but no: it is blue.", "Blue, so (B). So the answer is (B).", "",
    "the sky is blue",
])
def test_every_target_the_student_learns_parses_back_to_its_answer(rationale):
    for answer in OPTIONS:
        assert parse_answer(render_target(rationale or None, answer, OPTIONS), OPTIONS) == answer
    for answer in ("yes", "no"):
        target = render_target(rationale or None, answer, None)
        assert parse_answer(target, None) == answer
        ex = Example(id="x", question="q?", answer=answer)
        assert judge(ex, [target], "m")[0].dropped is None  # the teacher's filter reads the same grammar


def test_a_bare_fact_ends_its_sentence_before_the_answer():
    assert render_target("fog is formed by water vapor", "A", OPTIONS) == "fog is formed by water vapor. So the answer is red (A)."
    assert render_target("Is it? Yes!", "yes") == "Is it? Yes! So the answer is yes."
    assert render_target("  The sky is blue.  ", "B", OPTIONS) == "The sky is blue. So the answer is blue (B)."
    assert render_target("Is it blue? So the answer is (D).", "B", OPTIONS) == "Is it blue? So the answer is blue (B)."


def test_the_closing_sentence_is_stripped_only_after_something():
    assert strip_final_answer("Blue. So the answer is (B).") == "Blue."
    assert strip_final_answer("So the answer is (B).") == "So the answer is (B)."  # nothing before it: kept
    assert strip_final_answer("  no closing here  ") == "no closing here"


def test_a_gold_answer_is_shown_with_its_option():
    assert format_answer("B", OPTIONS) == "(B) blue"
    assert format_answer("E", OPTIONS) == "E" and format_answer("yes", None) == "yes"


def test_a_prompt_file_with_a_target_template_is_refused_with_a_reason(tmp_path):
    text = (load_student_prompt().model_dump_json())  # a valid prompt, then the old target key added
    data = json.loads(text)
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items()] + ['target = "{rationale} Answer: {answer}"']
    (tmp_path / "old.toml").write_text("\n".join(lines))
    with pytest.raises(KardDataError, match=r"old\.toml.*'target'.*kard_chain\.answers"):
        StudentFormatter.load("old", tmp_path)


@pytest.fixture
def small_k_retriever():
    _train, test, passages = copy_task(n_train=6, n_test=4)
    test = [e.model_copy(update={"question": e.question + " red blue green yellow"}) for e in test]  # many passages match
    return test, BM25Retriever.from_passages(passages, k=1)  # its own default k is smaller than the chain's


def test_the_chain_asks_its_retriever_for_k_on_every_call(small_k_retriever):
    test, retriever = small_k_retriever
    llm = ScriptedLLM(texts=["x. So the answer is red (A)."])
    chain = build_kard_chain(retriever, llm, k=3, n=1)
    assert len(chain.invoke(test[0])["passages"]) == 3
    assert [len(o["passages"]) for o in chain.batch(test[:2])] == [3, 3]
    assert len(asyncio.run(chain.ainvoke(test[0]))["passages"]) == 3
    assert all("[3]" in p for p in llm.prompts)


def test_the_chain_never_reads_settings_from_the_working_directory(small_k_retriever, tmp_path, monkeypatch):
    test, retriever = small_k_retriever
    (tmp_path / "kard_student.json").write_text(json.dumps({"method": "kard", "k": 1}))
    monkeypatch.chdir(tmp_path)
    chain = build_kard_chain(retriever, ScriptedLLM(texts=["x. So the answer is red (A)."]), n=1)
    assert len(chain.invoke(test[0])["passages"]) == 3  # the default k, not the stray file's


@pytest.mark.parametrize("bad", [None, "", "   ", {"question": " "}, 3])
def test_the_chain_refuses_an_empty_or_missing_question(small_k_retriever, bad):
    _, retriever = small_k_retriever
    chain = build_kard_chain(retriever, ScriptedLLM(texts=["x. So the answer is red (A)."]), k=2, n=1)
    with pytest.raises(ValueError, match="question"):
        chain.invoke(bad)
    with pytest.raises(ValueError, match="at least 1"):
        build_kard_chain(retriever, ScriptedLLM(texts=["x"]), k=0)


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def student_folders(tmp_path_factory):
    from kard_chain.testing.scratch_models import scratch_t5, word_tokenizer

    tmp = tmp_path_factory.mktemp("trained_chain")
    train, test, passages = copy_task(n_train=20, n_test=4)
    test = [e.model_copy(update={"question": e.question + " red blue green yellow"}) for e in test]  # many passages match
    BM25Retriever.build(passages, tmp / "index", show_progress=False)
    tok = word_tokenizer([p.text for p in passages] + [e.question for e in train + test] + ["question : knowledge : [ 1 ] [ 2 ]"])
    settings = {"kard": {"method": "kard", "k": 2, "max_source_tokens": 40, "max_passage_tokens": 24},
                "rd": {"method": "rd", "k": 3, "max_source_tokens": 48}}
    for name, values in {**settings, "bare": None}.items():
        scratch_t5(tok, d_model=32, layers=1, heads=2, dropout=0.0).save_pretrained(tmp / name)
        tok.save_pretrained(tmp / name)
        if values:
            (tmp / name / "kard_student.json").write_text(json.dumps({**values, "model": "x", "output_dir": "y"}))
    return tmp, test


def test_load_kard_chain_serves_with_the_settings_the_student_was_trained_with(student_folders):
    from kard_chain import load_kard_chain

    tmp, test = student_folders
    chain = load_kard_chain(tmp / "kard", tmp / "index", n=2, max_new_tokens=4)
    out = chain.invoke(test[0])
    assert len(out["passages"]) == 2 and len(out["rationales"]) == 2  # k and n
    llm = chain.steps[-1].llm
    assert llm.max_input_tokens == 40  # truncated as in training, not at the LLM's default 1024
    assert chain.steps[-1].formatter.max_passage_tokens == 24
    assert len(load_kard_chain(tmp / "kard", tmp / "index", k=1, n=1, max_new_tokens=2).invoke(test[0])["passages"]) == 1
    drafted = load_kard_chain(tmp / "kard", tmp / "index", n=2, max_new_tokens=4, draft="question+draft").invoke(test[0])
    assert isinstance(drafted["draft"], str) and len(drafted["passages"]) == 2
    assert {p["round"] for p in drafted["passages"]} <= {1, 2} and drafted["passages"][0]["round"] == 1
    def retriever(chain):  # the retriever the chain's "docs" step asks
        return next(step.step.bound for step in chain.steps if getattr(step, "key", None) == "docs")

    one_round = load_kard_chain(tmp / "kard", tmp / "index", n=1, max_new_tokens=2)
    bridged = load_kard_chain(tmp / "kard", tmp / "index", n=1, max_new_tokens=2, bridge=True)
    assert isinstance(retriever(one_round), BM25Retriever) and isinstance(retriever(bridged), BridgeRetriever)
    assert "round" not in one_round.invoke(test[0])["passages"][0] and bridged.invoke(test[0])["passages"][0]["round"] == 1
    settings = json.loads((tmp / "kard" / "kard_student.json").read_text())
    (tmp / "kard" / "kard_student.json").write_text(json.dumps({**settings, "bridge": True}))  # a student trained with bridge rounds
    try:
        assert isinstance(retriever(load_kard_chain(tmp / "kard", tmp / "index", n=1)), BridgeRetriever)
        assert isinstance(retriever(load_kard_chain(tmp / "kard", tmp / "index", n=1, bridge=False)), BM25Retriever)
    finally:
        (tmp / "kard" / "kard_student.json").write_text(json.dumps(settings))

    rd = load_kard_chain(tmp / "rd", n=1, max_new_tokens=4).invoke(test[0])
    assert rd["passages"] == [] and (rd["answer"] is None or isinstance(rd["answer"], str))


def test_load_kard_chain_reranks_when_given_a_reranker(student_folders):
    from kard_chain import BM25Retriever, load_kard_chain
    from kard_chain.retrievers.reranking import KardRerankerCompressor, fuse
    from kard_chain.trained_chain import FIRST_STAGE_WEIGHT
    from tests.unit_tests.tiny_models import tiny_reranker

    tmp, test = student_folders
    words = sorted({w for e in test for w in e.question.split()} | {"the", "is", "red", "blue", "green", "yellow", "."})
    reranker = tiny_reranker("late_interaction", words)
    candidates = BM25Retriever.load(tmp / "index", k=5).invoke(test[0].question)
    model = KardRerankerCompressor(reranker=reranker).scores(test[0].question, candidates)
    first = [d.metadata["score"] for d in candidates]
    for weight in (None, 0.0, 3.0):  # None: the default
        fused = fuse(model, first, FIRST_STAGE_WEIGHT if weight is None else weight)
        expected = [candidates[i].metadata["id"] for i in sorted(range(5), key=lambda i: -fused[i])[:2]]
        out = load_kard_chain(tmp / "kard", tmp / "index", reranker=reranker, candidates=5, first_stage_weight=weight,
                              n=1, max_new_tokens=2).invoke(test[0])
        assert [p["id"] for p in out["passages"]] == expected, weight


def test_the_reranker_the_bridge_and_the_default_weight_are_wired_into_the_served_chain(student_folders):
    """What load_kard_chain builds, not only what it returns: the reranker stays round 1 under a bridge round, the
    default first-stage weight (0.2) and the candidates reach the reranking retriever."""
    from kard_chain import load_kard_chain
    from kard_chain.reranker.vectors import PassageVectors
    from kard_chain.retrievers.reranking import RerankingRetriever
    from kard_chain.trained_chain import FIRST_STAGE_WEIGHT
    from tests.unit_tests.tiny_models import tiny_reranker

    tmp, test = student_folders
    reranker = tiny_reranker("late_interaction", sorted({w for e in test for w in e.question.split()}))

    def retriever(chain):
        return next(step.step.bound for step in chain.steps if getattr(step, "key", None) == "docs")

    bridged = retriever(load_kard_chain(tmp / "kard", tmp / "index", reranker=reranker, candidates=7, bridge=True, n=1))
    assert isinstance(bridged, BridgeRetriever) and isinstance(bridged.first, RerankingRetriever)
    assert bridged.first.first_stage_weight == FIRST_STAGE_WEIGHT == 0.2 and bridged.first.candidates == 7
    assert bridged.index is bridged.first.base_retriever  # the bridge queries the index the first stage opened
    weighted = retriever(load_kard_chain(tmp / "kard", tmp / "index", reranker=reranker, first_stage_weight=0.0, n=1))
    assert isinstance(weighted, RerankingRetriever) and weighted.first_stage_weight == 0.0 and weighted.k == 2
    assert weighted.compressor.top_n == 2 and weighted.compressor.vectors is None
    # the student's k reaches every retriever it reads through, not only the chain's calls (training pairs use them too)
    plain = retriever(load_kard_chain(tmp / "kard", tmp / "index", n=1))
    assert isinstance(plain, BM25Retriever) and plain.k == 2
    bm25_bridged = retriever(load_kard_chain(tmp / "kard", tmp / "index", bridge=True, n=1))
    assert isinstance(bm25_bridged, BridgeRetriever) and bm25_bridged.k == 2 and bm25_bridged.first.k == 2
    # stored passage vectors, as a folder or loaded, reach the reranker's scoring
    index = BM25Retriever.load(tmp / "index").index
    folder = tmp / "vectors"
    PassageVectors.build(reranker, [index.passages.get(r) for r in range(index.n_docs)], folder, show_progress=False)
    for vectors in (folder, PassageVectors.load(folder)):
        stored = retriever(load_kard_chain(tmp / "kard", tmp / "index", reranker=reranker, vectors=vectors, n=1))
        assert isinstance(stored.compressor.vectors, PassageVectors) and len(stored.compressor.vectors.ids) == index.n_docs


def test_train_student_reads_through_the_students_own_retriever_and_weighs_its_answer(student_folders, monkeypatch):
    """The settings a student records are the ones its training used: the bridge round in its pairs' retriever and the
    answer weight in its collator."""
    import kard_chain.student.pairs as pairs_module
    from kard_chain.student import trainer
    from kard_chain.student.config import StudentTrainingConfig

    tmp, _ = student_folders
    seen = {}
    real_pairs, real_collator = pairs_module.student_pairs, trainer.Collator

    def spy_pairs(*args, **kwargs):
        seen["retriever"] = kwargs["retriever"]
        return real_pairs(*args, **kwargs)

    class SpyCollator(real_collator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["answer_weight"] = self.answer_weight

    monkeypatch.setattr(pairs_module, "student_pairs", spy_pairs)
    monkeypatch.setattr(trainer, "Collator", SpyCollator)
    train, _, _ = copy_task(n_train=20, n_test=4)
    (tmp / "train.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in train))
    config = StudentTrainingConfig(model=str(tmp / "kard"), method="kard", dataset="jsonl", data_dir=tmp / "train.jsonl",
                                   reference=True, index=tmp / "index", k=2, output_dir=tmp / "wired", bridge=True,
                                   answer_weight=3.0, max_steps=1, batch_size=4, overwrite_output_dir=True)
    trainer.train_student(config, show_progress=False)
    assert isinstance(seen["retriever"], BridgeRetriever) and seen["answer_weight"] == 3.0
    saved = json.loads((tmp / "wired" / "final" / "kard_student.json").read_text())
    assert saved["bridge"] is True and saved["answer_weight"] == 3.0


def test_load_kard_chain_says_what_a_folder_without_settings_lacks(student_folders):
    from kard_chain import load_kard_chain

    tmp, test = student_folders
    with pytest.raises(KardDataError, match=r"bare.*no kard_student\.json.*method='kard', k=3"):
        load_kard_chain(tmp / "bare", tmp / "index")
    chain = load_kard_chain(tmp / "bare", tmp / "index", method="kard", k=2, n=1, max_new_tokens=2)
    assert len(chain.invoke(test[0])["passages"]) == 2
    with pytest.raises(KardDataError, match="give an index"):
        load_kard_chain(tmp / "kard")
    with pytest.raises(TypeError, match="unknown override"):
        load_kard_chain(tmp / "kard", tmp / "index", beams=4)
    assert load_kard_chain(tmp / "bare", method="rd", n=1, max_new_tokens=2).invoke(test[0])["passages"] == []  # no k needed
    with pytest.raises(KardDataError) as error:
        load_kard_chain(tmp / "kard", tmp / "index", method="rd")
    assert str(error.value) == (f"{tmp / 'kard'}: this student was trained as 'kard' (kard_student.json): method 'rd' is "
                                "only for folders without saved settings")
    with pytest.raises(ValueError) as error:  # a weight for a reranker that is not there
        load_kard_chain(tmp / "kard", tmp / "index", first_stage_weight=0.5)
    assert str(error.value) == "first_stage_weight weighs BM25 beside a reranker: give a reranker too, or leave it out"


def test_the_sampling_overrides_reach_the_student_llm_and_the_chains_settings_do_not(student_folders):
    from kard_chain import load_kard_chain
    from kard_chain.trained_chain import load_student_llm

    tmp, test = student_folders
    llm = load_student_llm(tmp / "kard", max_new_tokens=3, temperature=0.7, top_k=5, n=4, k=1, candidates=9, bridge=True)
    assert (llm.max_new_tokens, llm.temperature, llm.top_k, llm.n) == (3, 0.7, 5, 4)
    assert "candidates" not in llm.model_dump() and "bridge" not in llm.model_dump()
    default = load_student_llm(tmp / "kard", temperature=None)  # None keeps the LLM's own default
    assert default.temperature == type(default).model_fields["temperature"].default
    chain = load_kard_chain(llm, tmp / "index")  # a loaded student: served as it is, its folder read for the settings
    assert chain.steps[-1].llm is llm and chain.invoke(test[0])["passages"]



@pytest.mark.parametrize(("text", "expected"), [
    ("So the answer is, hmm, (C).", "C"),            # no leading letter, no option's words: the "(X)" form
    ("So the answer is, hmm, (E).", None),           # a letter that is not an option
    ("A cat is blue.", "B"),                         # no answer phrase: a leading capital is a word, not a letter
    ("Blue is wrong. Red fits.", "A"),               # no answer phrase: the last sentence only
    ("So the answer is red\nblue green maybe", "A"),  # the answer's first line only
    ("So the answer is " + "z" * 197 + " red", None),  # the answer's first 200 characters only
    ("", None),
])
def test_options_are_read_from_the_answer_and_nowhere_else(text, expected):
    assert parse_answer(text, OPTIONS) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Yes, goats give milk.", "yes"), ("Goats are not fish, so NO", "no"), ("So the answer is TRUE", "yes"),
    ("Goats say no to nothing here", None),
])
def test_yes_no_is_read_in_any_case(text, expected):
    assert parse_answer(text) == expected


def test_cut_at_stop_keeps_what_comes_before_the_first_stop():
    assert cut_at_stop("abcXdefXg", ["X"]) == "abc"
    assert cut_at_stop("Xabc", ["X"]) == ""
    assert cut_at_stop("a.b|c", ["|", "."]) == "a"
    assert cut_at_stop("abc", None) == "abc" and cut_at_stop("abc", ["Z"]) == "abc"


def test_kard_evaluate_refuses_to_resume_an_evaluation_made_with_another_reranker(student_folders, tmp_path, capsys):
    """The reranker is part of what an evaluation file holds: another one starts over, never resumes into it."""
    import torch

    from kard_chain.cli import main
    from tests.unit_tests.tiny_models import tiny_reranker

    tmp, test = student_folders
    words = sorted({w for e in test for w in e.question.split()})
    first, second = tiny_reranker("late_interaction", words), tiny_reranker("late_interaction", words)
    with torch.no_grad():
        next(second.head.parameters()).add_(1.0)
    first.save_pretrained(tmp_path / "r1")
    second.save_pretrained(tmp_path / "r2")
    data = tmp_path / "test.jsonl"
    data.write_text("".join(e.model_dump_json() + "\n" for e in test))
    args = ["evaluate", "--student", str(tmp / "kard"), "--index", str(tmp / "index"), "--dataset", "jsonl", "--data-dir",
            str(data), "-n", "1", "--max-new-tokens", "2", "--candidates", "5", "--out", str(tmp_path / "e.jsonl"), "--quiet"]
    assert main([*args, "--reranker", str(tmp_path / "r1")]) == 0
    before = (tmp_path / "e.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*args, "--reranker", str(tmp_path / "r2")]) == 2
    assert "reranker" in capsys.readouterr().err and (tmp_path / "e.jsonl").read_bytes() == before


def test_kard_ask_takes_options_and_json_lines_and_refuses_a_form_the_student_never_saw(student_folders, monkeypatch, capsys, tmp_path):
    import io
    import shutil

    from kard_chain import cli

    tmp, _test = student_folders
    folder = tmp_path / "options-only"
    shutil.copytree(tmp / "kard", folder)
    saved = json.loads((folder / "kard_student.json").read_text())
    (folder / "kard_student.json").write_text(json.dumps({**saved, "question_forms": {"options": 12, "no_options": 0}}))
    llm = ScriptedLLM(texts=["It is blue. So the answer is (B) blue."], prompts=[])
    monkeypatch.setattr(cli, "_student_chain", lambda args: build_kard_chain(BM25Retriever.load(tmp / "index"), llm, k=1, n=3))
    base = ["ask", "--student", str(folder), "--index", str(tmp / "index")]

    assert cli.main([*base, "What colour is the zorb?"]) == 2  # the form it never trained on
    assert "trained on questions with options only" in capsys.readouterr().err and llm.prompts == []
    assert cli.main([*base, "What colour is the zorb?", "--option", "A=red", "--option", "B=blue"]) == 0
    assert "answer: B" in capsys.readouterr().out and "options: (A) red (B) blue" in llm.prompts[-1]
    assert cli.main([*base, "What colour?", "--option", "red"]) == 2 and "LETTER=TEXT" in capsys.readouterr().err

    lines = [{"question": "What colour is the zorb?", "options": {"A": "red", "B": "blue"}}, {"question": "Is it?", "options": {"A": "green", "B": "blue"}}]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(json.dumps(x) + "\n" for x in lines)))
    assert cli.main([*base, "-"]) == 0
    answered = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["question"], a["answer"], a["votes"]) for a in answered] == [(x["question"], "B", {"B": 3}) for x in lines]
    monkeypatch.setattr("sys.stdin", io.StringIO('{"question": "Is it?"}\n'))
    assert cli.main([*base, "-"]) == 2 and "'Is it?' has none" in capsys.readouterr().err  # refused before any answer
    monkeypatch.setattr("sys.stdin", io.StringIO('{"question": "Is it?", "options": {"A": "x"}}\n{"options": {}}\n'))
    assert cli.main([*base, "-"]) == 2 and "standard input, line 2: field 'question'" in capsys.readouterr().err


def test_a_run_folder_gives_its_kard_student_index_reranker_and_the_evaluations_sampling(tmp_path):
    """What load_kard_chain(RUN) takes from run.json: the KARD student (else RD, else FT), its index, the reranker only
    where the recipe served one, and the evaluation's candidates, weight and sampling unless the caller set them."""
    from kard_chain.trained_chain import _from_run

    def make_run(methods, serve, folders=True):
        out = tmp_path / "-".join(methods + serve)
        out.mkdir()
        stages = {name: {"folder": str(out / "stages" / name)} for name in ["index", "reranker", *(f"student-{m}" for m in methods)]}
        for m in methods:
            final = Path(stages[f"student-{m}"]["folder"]) / "run" / "final"
            final.mkdir(parents=True)
            if folders:
                (final / "kard_student.json").write_text("{}")
        evaluation = {"serve": serve, "candidates": 37, "first_stage_weight": 0.3, "n": 7, "temperature": 0.9, "max_new_tokens": 11}
        (out / "run.json").write_text(json.dumps({"stages": stages, "recipe": {"evaluation": evaluation}}))
        return out, stages

    out, stages = make_run(["ft", "rd", "kard"], ["bm25", "reranker+bridge"])
    final, index, reranker, overrides = _from_run(out, None, None, {"n": 3})
    assert final == Path(stages["student-kard"]["folder"]) / "run" / "final"
    assert index == Path(stages["index"]["folder"]) / "index" and reranker == Path(stages["reranker"]["folder"]) / "run" / "final"
    assert overrides == {"n": 3, "candidates": 37, "first_stage_weight": 0.3, "temperature": 0.9, "max_new_tokens": 11}

    assert _from_run(out, "my-index", "my-reranker", {})[1:3] == ("my-index", "my-reranker")  # the caller's own win
    out, stages = make_run(["ft", "rd", "kard"], ["bm25", "bm25+bridge"])  # no reranker served: none loaded
    final, index, reranker, overrides = _from_run(out, None, None, {})
    assert reranker is None and "candidates" not in overrides and "first_stage_weight" not in overrides
    assert overrides == {"n": 7, "temperature": 0.9, "max_new_tokens": 11}
    out, stages = make_run(["ft", "rd"], ["reranker"])  # without KARD: the RD student, no passages
    final, index, reranker, _ = _from_run(out, None, None, {})
    assert final == Path(stages["student-rd"]["folder"]) / "run" / "final" and index is None and reranker is None
    out, stages = make_run(["ft"], [])
    assert _from_run(out, None, None, {})[0] == Path(stages["student-ft"]["folder"]) / "run" / "final"
    out, _ = make_run(["ft", "kard"], ["reranker"], folders=False)  # stages planned, student not trained yet
    with pytest.raises(KardDataError) as error:
        _from_run(out, None, None, {})
    no_student = "this run has no trained student yet: run the recipe to the end first (kard run RECIPE)"
    assert str(error.value) == f"{out}: {no_student}"  # the run folder named, and what to do
    out, _ = make_run([], ["bm25"])  # a recipe without students: the same error, not a KeyError or StopIteration
    with pytest.raises(KardDataError) as error:
        _from_run(out, None, None, {})
    assert str(error.value) == f"{out}: {no_student}"
