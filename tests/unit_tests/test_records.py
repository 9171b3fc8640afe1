import pytest
from pydantic import ValidationError

from kard_chain import Example, Passage, Rationale

RECORDS = [
    Example(id="q1", question="Is water wet?", answer="yes", reference_rationale="Water makes things wet.", evidence_ids=["w-1"]),
    Example(id="q2", question="Pick one", options={"A": "é", "B": "日本"}, answer="B", metadata={"meta_info": "step1", "n": [1, 2.5]}),
    Example(id="q3", question="Unlabelled?"),
    Passage(id="Goat-46", title="Goat", text="Goats produce milk.", metadata={"headers": ["Milk"], "para_index": 46}),
    Rationale(text="Goats are mammals. So the answer is yes.", answer="yes", model="gpt-4o-mini", sample_index=3),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_json_round_trip_is_exact(record):
    text = record.model_dump_json()
    again = type(record).model_validate_json(text)
    assert again == record
    assert again.model_dump_json() == text


def test_answer_must_be_an_option():
    with pytest.raises(ValidationError, match="not one of the options"):
        Example(id="q", question="?", options={"A": "x", "B": "y"}, answer="C")


def test_answer_text():
    assert RECORDS[1].answer_text == "日本"
    assert RECORDS[0].answer_text == "yes"


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError):
        Passage(id="p", text="t", body="oops")
