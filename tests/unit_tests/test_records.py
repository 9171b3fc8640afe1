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


def test_one_rule_reads_a_passage_id_everywhere():
    from langchain_core.documents import Document

    from kard_chain.records import Passage, passage_id
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.retrievers.hybrid import HybridRetriever
    from kard_chain.student.format import as_passage

    both = Document(page_content="goats give milk", id="doc-id", metadata={"id": "meta-id"})
    only_doc = Document(page_content="sheep give wool", id="doc-only")
    neither = Document(page_content="cows give milk")
    assert [passage_id(both), passage_id(only_doc), passage_id(neither, "7")] == ["meta-id", "doc-only", "7"]
    assert passage_id(Passage(id="p1", title="", text="x")) == "p1" and passage_id(neither) is None
    # the retriever's index, the student's formatter and the fusion all read the same ids
    retriever = BM25Retriever.from_documents([both, only_doc, neither], k=3)
    assert sorted(d.metadata["id"] for d in retriever.invoke("give milk wool")) == ["2", "doc-only", "meta-id"]
    assert as_passage(both).id == "meta-id" and as_passage(neither).id == "?"
    fused = HybridRetriever(retrievers=[retriever, retriever], k=3).invoke("milk")
    assert len({d.metadata["id"] for d in fused}) == len(fused)  # one passage per id, however many retrievers found it


def test_a_blank_question_a_non_string_query_and_k_0_are_clear_errors():
    import pytest
    from pydantic import ValidationError

    from kard_chain.records import Example
    from kard_chain.retrievers.bm25 import BM25Retriever

    with pytest.raises(ValidationError, match="the question is blank"):
        Example(id="q", question="   \n")
    retriever = BM25Retriever.from_texts(["goats give milk", "sheep give wool"], k=1)
    for bad, error, words in ((None, TypeError, "query string, got NoneType"), (123, TypeError, "got int"),
                              ("  ", ValueError, "empty")):
        with pytest.raises(error, match=words):
            retriever.invoke(bad)
    for k in (0, -1, 1.5):
        with pytest.raises(ValueError, match="k must be a positive int"):
            retriever.invoke("milk", k=k)
    assert [d.page_content for d in retriever.invoke("milk", k=1)] == ["goats give milk"]
