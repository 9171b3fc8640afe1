"""recipes/obqa.toml and recipes/strategyqa.toml end to end at toy size (their CPU override sets: a scratch decoder)
on data in the official formats, written here: the suite checks the real-data path without the shared data."""

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from kard_chain.metrics import wilson_interval

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


def run_recipe(task: str, data: Path, out: Path) -> dict:
    from kard_chain.cli import main as kard
    from tests.unit_tests.test_recipe import cpu_overrides

    overrides = [f"out={out}", f"dataset.data_dir={data}", *cpu_overrides(task), "dataset.test_limit=4", "students.reading.k=3"]
    if task == "strategyqa":
        overrides.append("dataset.test_fraction=0.34")
    assert kard(["run", str(ROOT / "recipes" / f"{task}.toml"), *overrides, "--quiet"]) == 0
    return json.loads((out / "results.json").read_text())


def stage_folder(out: Path, name: str) -> Path:
    return Path(json.loads((out / "run.json").read_text())["stages"][name]["folder"])


def test_real_data_recipes_train_three_students_per_task_and_report_what_their_files_say(tmp_path):
    write_obqa(tmp_path / "data" / "openbookqa")
    write_strategyqa(tmp_path / "data" / "strategyqa")
    reports = {task: run_recipe(task, tmp_path / "data" / folder, tmp_path / task)
               for task, folder in (("obqa", "openbookqa"), ("strategyqa", "strategyqa"))}
    assert list(reports["obqa"]["methods"]) == ["FT", "RD", "KARD (BM25)", "KARD (oracle: gold evidence)"]
    assert list(reports["strategyqa"]["methods"]) == ["FT", "RD", "KARD (BM25)", "KARD (reranker)", "KARD (oracle: gold evidence)"]
    for task, report in reports.items():
        for name, file in report["per_example"].items():
            records = [json.loads(line) for line in Path(file).read_text().splitlines()]
            label = next(label for label, row in report["methods"].items() if row["total"] == len(records))
            row = {"eval-ft": "FT", "eval-rd": "RD", "eval-kard-bm25": "KARD (BM25)"}.get(name)
            if row is None:
                continue
            correct = sum(r["correct"] for r in records)
            assert report["methods"][row]["correct"] == correct and report["methods"][row]["ci95"] == list(wilson_interval(correct, len(records)))
            assert all(r["correct"] == (r["answer"] == r["gold"]) for r in records) and label
            if row != "KARD (BM25)":
                assert all(r["passage_ids"] == [] for r in records)
                continue
            for r in records:  # BM25(question) over the task's own knowledge base: the question's animal's passage first
                animal = next(a for a in ANIMALS if f" {a} " in r["question"])
                first = f"openbook-{ANIMALS.index(animal) + 1}" if task == "obqa" else f"{animal.title()}-0"
                assert 1 <= len(r["passage_ids"]) <= 3 and r["passage_ids"][0] == first, r
    obqa_ft = [json.loads(line)["id"] for line in Path(reports["obqa"]["per_example"]["eval-ft"]).read_text().splitlines()]
    assert obqa_ft == [f"test-{i}" for i in range(4)]  # OpenBookQA is scored on its test split

    pairs = [json.loads(line) for line in (stage_folder(tmp_path / "obqa", "student-kard") / "run" / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 8  # one per training question (its fact1), as the paper builds KARD's inputs:
    for pair in pairs:  # the passages are BM25(rationale)'s, so the question's own fact is the first one read
        fact = pair["target"].split(".")[0]
        assert f"[1] openbook: {fact}" in pair["source"] and pair["target"].endswith(")."), pair

    weights = sorted((tmp_path / "obqa").glob("stages/student-*/run/final/model.safetensors"))
    before = [(w.stat().st_mtime_ns, w.read_bytes()) for w in weights]
    again = run_recipe("obqa", tmp_path / "data" / "openbookqa", tmp_path / "obqa")  # a rerun reuses every stage
    assert len(weights) == 3 and [(w.stat().st_mtime_ns, w.read_bytes()) for w in weights] == before
    assert again["methods"] == reports["obqa"]["methods"]
