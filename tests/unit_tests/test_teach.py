"""`kard teach` against a local OpenAI-compatible server that injects faults."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kard_chain.cli import main
from kard_chain.teacher.cache import RationaleCache, TeacherRecord
from kard_chain.testing.openai_server import FakeOpenAIServer

pytest.importorskip("langchain_openai")
SECRET = "sk-test-THISISASECRETKEY0123456789"


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "train.jsonl"
    with path.open("w") as f:
        for i in range(40):
            if i % 2:
                f.write(json.dumps({"id": f"e{i}", "question": f"Is thing {i} real?", "answer": "yes" if i % 3 else "no"}) + "\n")
            else:
                options = {"A": f"alpha {i}", "B": f"beta {i}", "C": f"gamma {i}", "D": f"delta {i}"}
                f.write(json.dumps({"id": f"e{i}", "question": f"Which one is thing {i}?", "options": options, "answer": "ABCD"[i % 4]}) + "\n")
    return path


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def teach_args(dataset, out, url, *extra):
    return ["teach", "--dataset", "jsonl", "--data-dir", str(dataset), "--teacher", "openai:gpt-4o-mini",
            "--base-url", url, "--n", "3", "--out", str(out), *extra]


def records(path):
    lines = path.read_text().splitlines()
    parsed = [TeacherRecord.model_validate_json(line) for line in lines]
    assert len({r.id for r in parsed}) == len(parsed), "duplicate records"
    return {r.id: r for r in parsed}


def test_teach_survives_faults_and_resumes(dataset, tmp_path, capsys):
    out = tmp_path / "rationales.jsonl"
    faults = dict(latency=0.01, rate_429=0.1, rate_500=0.1, rate_hang=0.05, hang_seconds=2, rate_malformed=0.15, rate_wrong=0.2,
                  seed=1)
    with FakeOpenAIServer(**faults) as server:
        code = main(teach_args(dataset, out, server.url, "--concurrency", "8", "--timeout", "0.5", "--max-retries", "10"))
    assert code == 0
    got = records(out)
    assert sorted(got) == sorted(f"e{i}" for i in range(40))
    assert all(len(r.rationales) == 3 for r in got.values())
    assert server.counts["429"] and server.counts["500"] and server.counts["hang"]
    questions = {json.loads(line)["id"]: json.loads(line)["question"] for line in dataset.read_text().splitlines()}
    reasons = {"right": None, "malformed": "no answer found"}
    for rec in got.values():  # kept exactly where the server wrote the gold answer, dropped with the reason where it did not
        for r in rec.rationales:
            sent = server.sent[(questions[rec.id], r.sample_index)]
            assert r.kept == (sent == "right")
            assert r.dropped == reasons.get(sent, f"answer {r.answer} disagrees with gold {rec.gold}")
    sent = [server.sent[(questions[i], r.sample_index)] for i, rec in got.items() for r in rec.rationales]
    assert {"right", "wrong", "malformed"} <= set(sent)
    assert all(rec.input_tokens > 0 and rec.output_tokens > 0 for rec in got.values())
    printed = capsys.readouterr().out
    assert "rate_limit_429" in printed and "server_500" in printed and "timeout" in printed
    assert "cost (USD)" in printed and "n/a" not in printed.split("cost (USD)")[1].splitlines()[0]
    # a rerun finds everything done and asks the server nothing
    with FakeOpenAIServer() as server:
        assert main(teach_args(dataset, out, server.url)) == 0
    assert server.counts["requests"] == 0
    assert records(out) == got
    assert SECRET not in out.read_text()
    # the same file with another configuration is refused rather than mixed
    with FakeOpenAIServer() as server:
        assert main(teach_args(dataset, out, server.url, "--mode", "solve")) == 2
    assert 'it differs in mode: "rationalize" -> "solve"' in capsys.readouterr().err


def test_kill_9_then_restart_gives_the_same_cache(dataset, tmp_path):
    clean, killed = tmp_path / "clean.jsonl", tmp_path / "killed.jsonl"
    with FakeOpenAIServer(latency=0.05, rate_malformed=0.2) as server:
        assert main(teach_args(dataset, clean, server.url, "--concurrency", "4")) == 0
    # the child's server answers ten requests and holds the rest: it is killed with at most ten questions done,
    # however fast or slow the machine (no race between its progress and the kill)
    with FakeOpenAIServer(latency=0.05, rate_malformed=0.2, answer_limit=10) as gated:
        env = {**os.environ, "OPENAI_API_KEY": SECRET}
        cmd = [sys.executable, "-m", "kard_chain.cli", *teach_args(dataset, killed, gated.url, "--concurrency", "4")]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and not (gated.counts["held"] and killed.exists() and killed.read_text().strip()):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = records(killed)
    assert 1 <= len(partial) <= 10 and all(partial[i] == records(clean)[i] for i in partial)
    with FakeOpenAIServer(latency=0.05, rate_malformed=0.2) as server:
        assert main(teach_args(dataset, killed, server.url, "--concurrency", "4")) == 0
    assert records(killed) == records(clean)


def test_torn_last_line_is_cut(tmp_path):
    path = tmp_path / "c.jsonl"
    record = TeacherRecord(id="a", task="generic", mode="solve", model="m", rationales=[])
    path.write_text(record.model_dump_json() + "\n" + '{"id": "b", "ta')
    with RationaleCache.open(path) as cache:
        assert "a" in cache and "b" not in cache
        cache.append(TeacherRecord(id="b", task="generic", mode="solve", model="m", rationales=[]))
        with pytest.raises(ValueError, match="already in"):
            cache.append(record)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


def test_auth_error_stops_with_a_clear_message_and_no_key(dataset, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    with FakeOpenAIServer(status=401) as server:
        assert main(teach_args(dataset, out, server.url, "--max-retries", "5")) == 3
    assert server.counts["requests"] <= 8  # no retries: only the first request of each worker
    err = capsys.readouterr().err
    assert "auth_401" in err and "injected 401" in err
    assert SECRET not in err
    assert out.read_text() == ""


def test_compare_prompt_variants(dataset, tmp_path, capsys):
    out = tmp_path / "cmp.jsonl"
    with FakeOpenAIServer(rate_malformed=0.3) as server:
        assert main(teach_args(dataset, out, server.url, "--compare", "default,terse", "--limit", "10")) == 0
    printed = capsys.readouterr().out
    header = [line for line in printed.splitlines() if "default" in line and "terse" in line][-1]
    assert header.split() == ["default", "terse"]
    assert "answer agreement" in printed and "mean kept length (words)" in printed
    assert len(records(tmp_path / "cmp.default.jsonl")) == len(records(tmp_path / "cmp.terse.jsonl")) == 10


def test_a_teacher_that_fails_every_call_the_same_way_stops_early():
    import asyncio

    from langchain_openai import ChatOpenAI

    from kard_chain.records import Example
    from kard_chain.teacher.cache import RationaleCache
    from kard_chain.teacher.chain import build_teacher_chain
    from kard_chain.teacher.runner import GIVE_UP_AFTER, TeacherStopped, teach
    from kard_chain.testing.openai_server import FakeOpenAIServer

    examples = [Example(id=f"e{i}", question=f"Is thing {i} real?", answer="yes") for i in range(40)]
    with FakeOpenAIServer(status=500) as server, tempfile.TemporaryDirectory() as tmp:
        model = ChatOpenAI(model="fake", base_url=server.url, api_key="x", max_retries=0)
        chain = build_teacher_chain(model, "generic", n=1)
        with RationaleCache.open(Path(tmp) / "c.jsonl") as cache, pytest.raises(TeacherStopped, match="failing every request"):
            asyncio.run(teach(chain, examples, cache, task="generic", mode="rationalize", model="fake", concurrency=1,
                              max_retries=1, backoff=0.0, show_progress=False))
        asked = server.counts["500"]
    assert asked == GIVE_UP_AFTER * 2  # stopped after three examples (two tries each), not forty
