import json

import pytest

from kard_chain import KardDataError, dataset_names, load_dataset
from tests.conftest import shared_data


def test_registry_names():
    assert dataset_names() == ["jsonl", "medqa", "obqa", "strategyqa"]


def test_strategyqa(fixtures):
    exs = load_dataset("strategyqa", fixtures / "strategyqa", split="train")
    assert [e.id for e in exs] == ["q1", "q2"]
    assert exs[0].answer == "yes" and exs[1].answer == "no"
    assert exs[0].options is None
    assert exs[0].reference_rationale == "Goats produce milk. Goat milk is used to make cheese."
    assert exs[0].evidence_ids == ["Goat-46", "Cheese-1"]
    assert exs[0].metadata["decomposition"][0] == "Do goats produce milk?"
    assert len(exs[0].metadata["evidence"]) == 3


def test_medqa_four_and_five_options(fixtures):
    dev = load_dataset("medqa", fixtures / "medqa", split="dev")
    assert [e.answer for e in dev] == ["A", "C"]
    assert dev[1].answer_text == "Vitamin C"
    assert dev[0].id == "medqa-dev-1" and dev[0].metadata == {"meta_info": "step1"}
    five = load_dataset("medqa", fixtures / "medqa" / "five_options.jsonl")
    assert sorted(five[0].options) == list("ABCDE") and five[0].answer_text == "Pancreas"


def test_obqa_prefers_complete_file_with_fact1(fixtures):
    (ex,) = load_dataset("obqa", fixtures / "openbookqa", split="train")
    assert ex.id == "7-980" and ex.answer == "D"
    assert ex.reference_rationale.startswith("the sun is the source")
    (plain,) = load_dataset("obqa", fixtures / "openbookqa" / "train.jsonl")
    assert plain.reference_rationale is None and plain.options == ex.options


def test_generic_jsonl_with_field_mapping(fixtures):
    exs = load_dataset("jsonl", fixtures / "generic.jsonl", fields={"id": "uid", "question": "q.text", "answer": "label", "options": "choices"})
    assert exs[0].answer == "yes" and exs[0].options is None
    assert exs[1].options == {"A": "carrot", "B": "apple"} and exs[1].answer_text == "apple"


def _write(tmp_path, lines):
    f = tmp_path / "train.jsonl"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_missing_field_names_file_line_and_field(tmp_path):
    f = _write(tmp_path, [json.dumps({"q": {"text": "ok"}}), json.dumps({"q": {}})])
    with pytest.raises(KardDataError) as e:
        load_dataset("jsonl", f, fields={"question": "q.text"})
    assert str(e.value) == f"{f}:2: field 'q.text': missing"
    assert (e.value.line, e.value.field) == (2, "q.text")


def test_bad_json_line(tmp_path):
    f = _write(tmp_path, ['{"question": "a"}', "{not json"])
    with pytest.raises(KardDataError, match=r"train.jsonl:2: invalid JSON"):
        load_dataset("jsonl", f)


def test_medqa_bad_answer_names_field(tmp_path):
    rec = {"question": "q", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer_idx": "F"}
    f = _write(tmp_path, [json.dumps(rec)])
    with pytest.raises(KardDataError, match=r"train.jsonl:1: .*not one of the options"):
        load_dataset("medqa", f)


def test_strategyqa_bad_record_names_qid(tmp_path):
    f = tmp_path / "strategyqa_train.json"
    f.write_text(json.dumps([{"qid": "abc", "answer": True}]))
    with pytest.raises(KardDataError, match=r"\[record 0, qid abc\]: field 'question': missing"):
        load_dataset("strategyqa", tmp_path)


def test_unknown_dataset_missing_file_and_duplicates(tmp_path, fixtures):
    with pytest.raises(KardDataError, match="unknown dataset 'squad'; known datasets: jsonl, medqa"):
        load_dataset("squad", tmp_path)
    with pytest.raises(KardDataError, match="no split file found"):
        load_dataset("medqa", tmp_path, split="train")
    with pytest.raises(KardDataError, match="file or folder not found"):
        load_dataset("obqa", tmp_path / "nope.jsonl")
    f = _write(tmp_path, [json.dumps({"id": "x", "question": "a"}), json.dumps({"id": "x", "question": "b"})])
    with pytest.raises(KardDataError, match="duplicate example id 'x'"):
        load_dataset("jsonl", f)


def test_real_strategyqa():
    exs = load_dataset("strategyqa", shared_data("strategyqa"))
    assert len(exs) == 1990
    assert sum(e.answer == "yes" for e in exs) == 928
    assert all(e.reference_rationale and e.evidence_ids is not None for e in exs)


def test_real_medqa_and_obqa():
    assert len(load_dataset("medqa", shared_data("medqa"), split="dev")) == 1272
    obqa = load_dataset("obqa", shared_data("openbookqa"), split="test")
    assert len(obqa) == 500 and all(e.reference_rationale for e in obqa)


def test_strategyqa_facts_as_a_string_is_an_error_naming_the_record(tmp_path):
    record = {"qid": "q1", "question": "Can goats make cheese?", "answer": True, "facts": "Goats give milk."}
    (tmp_path / "strategyqa_train.json").write_text(json.dumps([record]))
    with pytest.raises(KardDataError, match=r"record 0, qid q1.*field 'facts': expected a list of strings, got str"):
        load_dataset("strategyqa", tmp_path)
