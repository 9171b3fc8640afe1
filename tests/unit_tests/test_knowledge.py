import json

import pytest

from kard_chain import KardDataError, load_passages
from kard_chain.knowledge import chunk_words, read_line_passages, read_text_passages


def test_jsonl_passages(fixtures):
    p1, p2 = load_passages(fixtures / "passages.jsonl")
    assert (p1.id, p1.title, p1.metadata) == ("p1", "Goat", {"section": "Agriculture"})
    assert (p2.id, p2.title, p2.metadata) == ("p2", "", {"source": "x"})


def test_strategyqa_paragraphs(fixtures):
    ps = list(load_passages(fixtures / "strategyqa" / "strategyqa_train_paragraphs.json"))
    assert [p.id for p in ps] == ["Goat-46", "Cheese-1", "Penguin-1"]
    assert ps[0].title == "Goat" and ps[0].metadata["headers"] == ["Milk, butter and cheese"]


def test_chunk_words_covers_text_with_overlap():
    words = [f"w{i}" for i in range(250)]
    chunks = chunk_words(" ".join(words), words=100, overlap=20)
    assert [len(c.split()) for c in chunks] == [100, 100, 90]
    assert chunks[1].split()[:20] == chunks[0].split()[-20:]
    assert chunks[-1].split()[-1] == "w249"
    assert chunk_words("a b c", words=100, overlap=20) == ["a b c"]
    with pytest.raises(ValueError):
        chunk_words("a", words=10, overlap=10)


def test_text_files(tmp_path):
    (tmp_path / "book.txt").write_text(" ".join(f"w{i}" for i in range(150)))
    (tmp_path / "empty.txt").write_text("")
    ps = list(read_text_passages(tmp_path, words=100, overlap=10))
    assert [p.id for p in ps] == ["book-0", "book-1"]
    assert ps[1].text.split()[0] == "w90" and ps[1].metadata == {"source": "book.txt", "window": 1}


def test_line_files_give_one_passage_per_line(tmp_path):
    (tmp_path / "openbook.txt").write_text('"A bee is a pollinating animal"\n\n  fog is water vapor  \n"\n')
    ps = list(load_passages(tmp_path / "openbook.txt", "lines"))
    assert [(p.id, p.text) for p in ps] == [("openbook-1", "A bee is a pollinating animal"), ("openbook-3", "fog is water vapor"),
                                            ("openbook-4", '"')]
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(KardDataError, match=r"bad.txt: not UTF-8"):
        list(read_line_passages(tmp_path / "bad.txt"))


def test_bad_passages_are_named(tmp_path):
    f = tmp_path / "kb.jsonl"
    f.write_text(json.dumps({"id": "a", "text": "ok"}) + "\n" + json.dumps({"id": "b", "body": "x"}) + "\n")
    with pytest.raises(KardDataError, match=r"kb.jsonl:2: field 'text': missing"):
        list(load_passages(f))
    g = tmp_path / "paras.json"
    g.write_text(json.dumps({"X-1": {"title": "X"}}))
    with pytest.raises(KardDataError, match=r"paras.json \[X-1\]: field 'content'"):
        list(load_passages(g))
    with pytest.raises(KardDataError, match="not found"):
        load_passages(tmp_path / "missing.jsonl")
    with pytest.raises(KardDataError, match="cannot tell the corpus format"):
        load_passages(f.rename(tmp_path / "kb.csv"))


def test_metadata_that_is_not_an_object_names_the_file_line_and_field(tmp_path):
    import pytest

    from kard_chain.errors import KardDataError
    from kard_chain.knowledge import read_passages_jsonl

    file = tmp_path / "c.jsonl"
    file.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y", "metadata": "oops"}\n')
    with pytest.raises(KardDataError, match=r"c\.jsonl:2: field 'metadata': expected an object, got str"):
        list(read_passages_jsonl(file))
