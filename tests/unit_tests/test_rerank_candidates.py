import pytest

from kard_chain import BM25Retriever, Example, Passage
from kard_chain.records import Rationale
from kard_chain.reranker.candidates import build_candidates
from kard_chain.teacher.cache import TeacherRecord, rationale_pairs

PASSAGES = [
    Passage(id="goat", text="Goats are mammals that produce milk."),
    Passage(id="cheese", text="Cheese is made by curdling milk."),
    Passage(id="rome", text="Ancient Rome ate cheese made from goat milk."),
    Passage(id="penguin", text="Penguins are flightless birds."),
    Passage(id="ice", text="Antarctica is covered in ice."),
    Passage(id="fish", text="Penguins eat fish and krill."),
]


def test_pairs_from_teacher_and_reference():
    ex = Example(id="q", question="Did Romans eat goat cheese?", answer="yes", reference_rationale="Romans made cheese from goat milk.")
    teacher = {"q": TeacherRecord(id="q", task="t", mode="m", model="m", rationales=[
        Rationale(text="Goats give milk.", answer="yes"), Rationale(text="No.", answer="no", dropped="wrong")])}
    pairs = rationale_pairs([ex], teacher, reference=True)
    assert [(p.id, p.rationale) for p in pairs] == [("q#0", "Goats give milk."), ("q#1", "Romans made cheese from goat milk.")]


def test_candidates_mix_both_queries_and_score_with_the_rationale(tmp_path):
    retriever = BM25Retriever.from_passages(PASSAGES)
    ex = Example(id="q", question="Do penguins eat fish?", answer="yes", reference_rationale="Goats produce milk for cheese.")
    pairs = rationale_pairs([ex], reference=True)
    sets = build_candidates(pairs, retriever, tmp_path / "c.jsonl", k=2, show_progress=False)
    c = sets["q#0"]
    r_top = [d.metadata["id"] for d in retriever.invoke(c.rationale, k=2)]
    q_top = [d.metadata["id"] for d in retriever.invoke(c.question, k=2)]
    assert c.passage_ids == r_top + [i for i in q_top if i not in r_top]
    assert c.from_rationale == [True, True, False, False]
    assert c.rationale_scores == pytest.approx(retriever.score(c.rationale, c.passage_ids))
    assert c.rationale_scores[2] == 0.0  # penguin passages share no word with the goat rationale


def test_build_resumes(tmp_path):
    retriever = BM25Retriever.from_passages(PASSAGES)
    exs = [Example(id=f"q{i}", question=q, reference_rationale=r) for i, (q, r) in enumerate(
        [("Penguins?", "Penguins are birds."), ("Cheese?", "Cheese comes from milk."), ("Ice?", "Antarctica has ice.")])]
    pairs = rationale_pairs(exs, reference=True)
    path = tmp_path / "c.jsonl"
    build_candidates(pairs[:2], retriever, path, show_progress=False)
    first = path.read_text()
    sets = build_candidates(pairs, retriever, path, show_progress=False)
    assert sorted(sets) == ["q0#0", "q1#0", "q2#0"]
    assert path.read_text().startswith(first) and len(path.read_text().splitlines()) == 3


def test_cli_builds_candidates(fixtures, tmp_path, capsys):
    from kard_chain.cli import main

    index = tmp_path / "index"
    assert main(["index", "--corpus", str(fixtures / "strategyqa" / "strategyqa_train_paragraphs.json"), "--out", str(index)]) == 0
    out = tmp_path / "c.jsonl"
    args = ["candidates", "--dataset", "strategyqa", "--data-dir", str(fixtures / "strategyqa"), "--index", str(index), "--out", str(out)]
    assert main(args) == 2 and "--rationales" in capsys.readouterr().err
    assert main([*args, "--reference", "-k", "2"]) == 0
    assert "2 candidate sets for 2" in capsys.readouterr().out


def test_candidates_from_other_rationales_under_the_same_ids_are_refused_then_replaced_with_overwrite(tmp_path):
    import pytest

    from kard_chain.manifest import ManifestMismatch

    retriever = BM25Retriever.from_passages(PASSAGES)
    exs = [Example(id=f"q{i}", question=q, reference_rationale=r) for i, (q, r) in enumerate(
        [("Penguins?", "Penguins are birds."), ("Cheese?", "Cheese comes from milk.")])]
    path = tmp_path / "c.jsonl"
    build_candidates(rationale_pairs(exs, reference=True), retriever, path, show_progress=False)
    before = path.read_bytes()
    other = [e.model_copy(update={"reference_rationale": "Antarctica has ice."}) for e in exs]  # a second teacher cache
    with pytest.raises(ManifestMismatch, match="2 of its records were built from other rationales"):
        build_candidates(rationale_pairs(other, reference=True), retriever, path, show_progress=False)
    assert path.read_bytes() == before
    sets = build_candidates(rationale_pairs(other, reference=True), retriever, path, show_progress=False, overwrite=True)
    assert {s.rationale for s in sets.values()} == {"Antarctica has ice."}
