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


def test_every_flag_of_every_command_has_help_and_shows_its_default():
    import argparse

    from kard_chain.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) >= {"index", "teach", "train-reranker", "train-student", "evaluate", "ask", "demo"}
    for name, sub in commands.items():
        text = sub.format_help()
        for action in sub._actions:
            assert action.help, f"kard {name} {action.option_strings or action.dest} has no help"
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert f"default: {action.default}" in " ".join(text.split()), f"kard {name} {action.option_strings} hides its default"
    student_help = " ".join(commands["train-student"].format_help().split())
    assert "--learning-rate LEARNING_RATE Peak learning rate of AdamW" in student_help and "(default: 0.0003)" in student_help
    assert "--model MODEL Model to start from" in student_help and "(required)" in student_help


def test_progress_on_a_pipe_is_plain_lines_and_quiet_is_silent(fixtures, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    corpus = fixtures / "strategyqa" / "strategyqa_train_paragraphs.json"

    def run(*extra):
        cmd = [sys.executable, "-m", "kard_chain.cli", "index", "--corpus", str(corpus), "--out", str(tmp_path / f"idx{len(extra)}"), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    piped = run()
    assert "\r" not in piped and "indexing: " in piped and "passages" in piped
    quiet = run("--quiet")
    assert "indexing" not in quiet and "indexed" in quiet  # results still print


def test_plain_progress_prints_every_tenth_once():
    import io

    from kard_chain.progress import PlainProgress

    out = io.StringIO()
    bar = PlainProgress(total=200, desc="work", unit=" x", file=out, interval=1e9)
    for _ in range(200):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("work: 20/200 x (10%)") and lines[-1].startswith("work: 200/200 x (100%)")


def test_a_full_disk_while_saving_weights_is_one_sentence(monkeypatch, capsys, tmp_path):
    import pytest

    safetensors = pytest.importorskip("safetensors")
    import kard_chain.student.trainer as trainer

    def full_disk(config, **kwargs):
        raise safetensors.SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(trainer, "train_student", full_disk)
    args = ["train-student", "--method", "ft", "--model", "m", "--pairs", str(tmp_path / "p.jsonl"), "--output-dir", str(tmp_path / "r")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "writing weights failed" in err and "disk full" in err and "Traceback" not in err
