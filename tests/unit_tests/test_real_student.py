"""benchmarks/real_student.py end to end at toy size (--tiny: scratch decoder, CPU) on data in the official formats."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from kard_chain.metrics import wilson_interval  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ANIMALS = ["otter", "heron", "badger", "gecko", "walrus", "lynx", "mole", "stork", "tapir", "wombat", "koala", "bison"]
FOODS = ["fish", "insects", "roots", "seeds"]


def write_obqa(folder: Path) -> None:
    folder.mkdir(parents=True)
    facts = []
    for split, animals in (("train", ANIMALS[:8]), ("dev", ANIMALS[8:10]), ("test", ANIMALS[8:12])):
        lines = []
        for i, animal in enumerate(animals):
            food = FOODS[i % 4]
            facts.append(f"the {animal} eats {food}")
            choices = [{"text": f, "label": label} for f, label in zip(FOODS, "ABCD")]
            lines.append(json.dumps({"id": f"{split}-{i}", "question": {"stem": f"What does the {animal} eat?", "choices": choices},
                                     "fact1": f"the {animal} eats {food}", "answerKey": "ABCD"[i % 4]}))
        (folder / f"{split}_complete.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "openbook.txt").write_text("".join(f'"{f}"\n' for f in dict.fromkeys(facts)))
    (folder / "crowdsourced-facts.txt").write_text("rivers hold fish\nbirds lay eggs\n")


def write_strategyqa(folder: Path) -> None:
    folder.mkdir(parents=True)
    questions, paragraphs = [], {}
    for i, animal in enumerate(ANIMALS):
        swims = i % 2 == 0
        paragraphs[f"{animal.title()}-0"] = {"title": animal.title(), "para_index": 0,
                                             "content": f"The {animal} {'swims well' if swims else 'cannot swim'}."}
        questions.append({"qid": f"q{i}", "question": f"Could a {animal} cross a lake by swimming?", "answer": swims,
                          "facts": [f"The {animal} {'swims well' if swims else 'cannot swim'}."],
                          "evidence": [[[[f"{animal.title()}-0"]]]]})
    (folder / "strategyqa_train.json").write_text(json.dumps(questions))
    (folder / "strategyqa_train_paragraphs.json").write_text(json.dumps(paragraphs))


def run_benchmark(data: Path, work: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "real_student.py"), "--tiny", "--data-dir", str(data), "--work-dir", str(work),
           "--eval-fraction", "0.5", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| obqa | kard-bm25 |" in done.stdout and "| strategyqa | ft |" in done.stdout
    return json.loads((work / "results.json").read_text())


def test_tiny_run_trains_three_students_per_task_and_reports_what_its_files_say(tmp_path):
    write_obqa(tmp_path / "data" / "openbookqa")
    write_strategyqa(tmp_path / "data" / "strategyqa")
    work = tmp_path / "work"
    report = run_benchmark(tmp_path / "data", work)

    assert [(r["task"], r["method"]) for r in report["rows"]] == [
        (task, m) for task in ("obqa", "strategyqa") for m in ("ft", "rd", "kard-bm25")]
    for row in report["rows"]:
        records = [json.loads(line) for line in Path(row["per_example"]).read_text().splitlines()]
        assert row["questions"] == len(records) == 4 and row["steps"] == 3
        correct = sum(r["correct"] for r in records)
        assert row["accuracy"] == correct / 4 and row["ci95"] == list(wilson_interval(correct, 4))
        assert all(r["correct"] == (r["answer"] == r["gold"]) for r in records)
        if row["method"] != "kard-bm25":
            assert all(r["passage_ids"] == [] for r in records)
            continue
        for r in records:  # BM25(question) over the task's own knowledge base: the question's animal's passage first
            animal = next(a for a in ANIMALS if f" {a} " in r["question"])
            first = f"openbook-{ANIMALS.index(animal) + 1}" if row["task"] == "obqa" else f"{animal.title()}-0"
            assert 1 <= len(r["passage_ids"]) <= 3 and r["passage_ids"][0] == first, r
    assert [r["id"] for r in map(json.loads, (work / "obqa" / "eval-ft.jsonl").read_text().splitlines())] == \
        [f"test-{i}" for i in range(4)]  # OpenBookQA is scored on its test split

    pairs = [json.loads(line) for line in (work / "obqa" / "pairs-kard.jsonl").read_text().splitlines()]
    assert len(pairs) == 8  # one per training question (its fact1), as the paper builds KARD's inputs:
    for pair in pairs:  # the passages are BM25(rationale)'s, so the question's own fact is the first one read
        fact = pair["target"].split(".")[0]
        assert f"[1] openbook: {fact}" in pair["source"] and pair["target"].endswith(")."), pair

    weights = sorted(work.glob("*/*/final/model.safetensors"))
    before = [(w.stat().st_mtime_ns, w.read_bytes()) for w in weights]
    again = run_benchmark(tmp_path / "data", work)  # a rerun reuses the students and the finished evaluations
    assert len(weights) == 6 and [(w.stat().st_mtime_ns, w.read_bytes()) for w in weights] == before
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in report["rows"]]
