import json

import pytest

from kard_chain.cli import main


def test_quickstart_finds_sample_evidence(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "idx")]) == 0
    out = capsys.readouterr().out
    assert "Who discovered penicillin?" in out and "[penicillin-1]" in out
    found = int(out.split("BM25 found gold evidence in the top 3 for ")[1].split("/")[0])
    assert found >= 6


def test_index_then_search(fixtures, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["index", "--corpus", str(fixtures / "strategyqa" / "strategyqa_train_paragraphs.json"), "--out", str(out)]) == 0
    assert (out / "index.json").is_file()
    assert main(["search", "--index", str(out), "-k", "2", "flightless penguins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip().startswith("1. [Penguin-1]") for line in lines)
    assert main(["index", "--corpus", str(fixtures / "passages.jsonl"), "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["index", "--corpus", str(fixtures / "passages.jsonl"), "--out", str(out), "--overwrite", "--method", "lucene"]) == 0
    assert json.loads((out / "index.json").read_text())["params"]["method"] == "lucene"


def test_bad_corpus_reports_file_line_field(tmp_path, capsys):
    bad = tmp_path / "kb.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b"}\n')
    assert main(["index", "--corpus", str(bad), "--out", str(tmp_path / "idx")]) == 2
    assert f"{bad}:2: field 'text': missing" in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()


def test_chroma_index_and_search(fixtures, tmp_path, capsys):
    out = tmp_path / "chroma"
    assert main(["index", "--corpus", str(fixtures / "passages.jsonl"), "--out", str(out), "--backend", "chroma"]) == 0
    assert main(["search", "--index", str(out), "-k", "1", "penguins fly"]) == 0
    assert "[p2]" in capsys.readouterr().out



@pytest.mark.parametrize("flag, value", [("--max-retries", "-1"), ("--limit", "0"), ("--rpm", "-5"), ("--temperature", "nan"),
                                         ("--n", "0")])
def test_nonsense_numbers_are_refused_before_any_work(tmp_path, capsys, flag, value):
    args = ["teach", "--dataset", "jsonl", "--data-dir", str(tmp_path / "none.jsonl"), "--teacher", "openai:x",
            "--out", str(tmp_path / "c.jsonl"), flag, value]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and flag in capsys.readouterr().err
    assert not (tmp_path / "c.jsonl").exists()
