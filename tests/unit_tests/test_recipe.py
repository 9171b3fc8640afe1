"""``kard run``: recipes are checked before any work, stages are reused or re-run exactly as their settings say,
and a user's own data (JSONL questions, a folder of text, an OpenAI-compatible teacher) runs end to end."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from kard_chain.cli import main as kard
from kard_chain.recipe import RecipeError, load_recipe
from kard_chain.recipe.graph import plan
from kard_chain.recipe.stages import build_stages

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
ANIMALS = ["otter", "heron", "badger", "gecko", "walrus", "lynx", "mole", "stork", "tapir", "wombat", "koala", "bison",
           "camel", "panda", "raven", "trout"]
FOODS = ["fish", "insects", "roots", "seeds"]
CHEAP = ['students.methods=["ft"]', "reranker.enabled=false", "evaluation.serve=[]", "evaluation.editing=false",
         "knowledge.chroma=false", "evaluation.n=1"]
"""The demo's tiny recipe cut to one quick student (for tests of the runner itself)."""


def cpu_overrides(recipe: str) -> list[str]:
    """The recipe's own 'CPU check' override set, from its header (the one the docs show)."""
    for line in (RECIPES / f"{recipe}.toml").read_text().splitlines():
        if line.startswith("# CPU check"):
            return shlex.split(line.split(":", 1)[1])
    raise AssertionError(f"{recipe}.toml has no CPU check line")


def write_own_data(folder: Path) -> None:
    """A user's data: 4-option and yes/no questions in JSONL (their own key names), a folder of text files."""
    docs = folder / "docs"
    docs.mkdir(parents=True)
    train, test = [], []
    for i, animal in enumerate(ANIMALS):
        food = FOODS[i % 4]
        (docs / f"{animal}.txt").write_text(f"The {animal} is an animal. Every evening the {animal} eats {food} near the river.")
        record = {"qid": f"q{i}", "body": {"text": f"What does the {animal} eat?"}, "choices": FOODS, "label": "ABCD"[i % 4]}
        yes_no = {"qid": f"y{i}", "body": {"text": f"Does the {animal} eat fish?"}, "label": food == "fish"}
        (test if i >= 12 else train).extend([record, yes_no])
    for name, rows in (("train", train), ("test", test)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def own_data_overrides(tmp_path: Path, url: str) -> list[str]:
    data = tmp_path / "mine"
    return [f"out={json.dumps(str(tmp_path / 'run'))}", f"dataset.data_dir={json.dumps(str(data / 'train.jsonl'))}",
            'dataset.fields={question = "body.text", answer = "label", options = "choices", id = "qid"}',
            f"knowledge.corpus=[{json.dumps(str(data / 'docs'))}]", "teacher.model=openai:fake", f"teacher.base_url={url}",
            *cpu_overrides("own-data")]


def stage_log(out: Path) -> dict[str, str]:
    return {entry["stage"]: entry["action"] for entry in json.loads((out / "run.json").read_text())["log"]}


def test_own_data_runs_end_to_end_reuses_everything_and_reruns_exactly_what_a_key_changes(tmp_path, capsys):
    pytest.importorskip("torch")
    from kard_chain.testing.openai_server import FakeOpenAIServer

    write_own_data(tmp_path / "mine")
    with FakeOpenAIServer() as server:
        overrides = own_data_overrides(tmp_path, server.url)
        assert kard(["run", str(RECIPES / "own-data.toml"), *overrides, "--quiet"]) == 0
        out = tmp_path / "run"
        results = json.loads((out / "results.json").read_text())
        assert list(results["methods"]) == ["FT", "RD", "KARD (BM25)", "KARD (reranker)"]
        assert results["dataset"] == {"name": "jsonl", "train": 24, "test": 8, "passages": 16}
        assert results["teacher"] == "fake" and server.counts["200"] > 0
        for row in results["methods"].values():
            assert row["total"] == 8 and 0 <= row["ci95"][0] <= row["accuracy"] <= row["ci95"][1] <= 1
        for label, name in (("KARD (BM25)", "eval-kard-bm25"), ("FT", "eval-ft")):  # figures = the per-example files
            records = [json.loads(line) for line in Path(results["per_example"][name]).read_text().splitlines()]
            assert results["methods"][label]["correct"] == sum(r["correct"] for r in records) and len(records) == 8
        assert all(s["action"] == "ran" for s in results["stages"].values())
        assert (out / "results.md").is_file() and "| KARD (reranker) |" in (out / "results.md").read_text()

        # nothing changed: every stage reused, no teacher call, same figures
        calls = server.counts["200"]
        assert kard(["run", str(RECIPES / "own-data.toml"), *overrides, "--quiet"]) == 0
        assert set(stage_log(out).values()) == {"reused"} and server.counts["200"] == calls
        assert json.loads((out / "results.json").read_text())["methods"] == results["methods"]

        # one teacher key: the teacher and everything downstream of it run again; the index, FT and its evaluation do not
        assert kard(["run", str(RECIPES / "own-data.toml"), *overrides, "teacher.n=2", "--dry-run"]) == 0
        printed = capsys.readouterr().out
        assert "teach " in printed and "(teacher.n: 3 -> 2)" in printed and "(input teach re-runs)" in printed
        assert kard(["run", str(RECIPES / "own-data.toml"), *overrides, "teacher.n=2", "--quiet"]) == 0
    log = stage_log(out)
    reran = {name for name, action in log.items() if action != "reused"}
    assert reran == {"teach", "candidates", "reranker", "student-rd", "student-kard", "eval-rd", "eval-kard-bm25",
                     "eval-kard-reranker"}, log
    # the first run's stages are still there, beside the new ones: the two variants live side by side
    assert len(list((out / "stages").glob("teach-*"))) == 2

    # served in one call from the run folder
    from kard_chain.trained_chain import load_kard_chain

    chain = load_kard_chain(out, n=2)
    answer = chain.invoke({"question": "What does the panda eat?", "options": dict(zip("ABCD", FOODS))})
    assert len(answer["rationales"]) == 2 and answer["passages"][0]["id"] == "panda-0"  # n, its index and reranker
    assert answer["answer"] is None or answer["answer"] in "ABCD"  # a 3-step student may write no parsable answer


def test_a_recipe_variant_shares_the_stages_it_has_in_common(tmp_path):
    recipe = load_recipe(RECIPES / "demo-tiny.toml", [f"out={json.dumps(str(tmp_path))}"])
    base = {p.stage.name: p.hash for p in plan(recipe, build_stages(recipe))}
    changed = load_recipe(RECIPES / "demo-tiny.toml", [f"out={json.dumps(str(tmp_path))}", "students.answer_weight=1.0"])
    other = {p.stage.name: p.hash for p in plan(changed, build_stages(changed))}
    differ = {name for name in base if base[name] != other[name]}
    # FT's loss has no rationale to weigh: only RD and KARD and what reads them change
    assert differ == {"student-rd", "student-kard"} | {n for n in base if n.startswith(("eval-rd", "eval-kard", "edit-rd", "edit-kard"))}
    reader = load_recipe(RECIPES / "demo-tiny.toml", [f"out={json.dumps(str(tmp_path))}", "evaluation.first_stage_weight=0.5"])
    hashes = {p.stage.name: p.hash for p in plan(reader, build_stages(reader))}
    assert {n for n in base if base[n] != hashes[n]} == {"eval-kard-reranker", "eval-kard-reranker-bridge", "edit-kard-reranker",
                                                          "edit-kard-reranker-bridge"}
    batched = load_recipe(RECIPES / "demo-tiny.toml", [f"out={json.dumps(str(tmp_path))}", "evaluation.batch_size=4"])
    hashes = {p.stage.name: p.hash for p in plan(batched, build_stages(batched))}
    # each batch is sampled from a seed at its position: another batch size is another evaluation, and nothing else
    assert {n for n in base if base[n] != hashes[n]} == {n for n in base if n.startswith(("eval-", "edit-")) and n != "edit-index"}


BAD = [
    ("[students]\nmax_stepz = 3\n", "recipe.toml:7", "key 'students.max_stepz': unknown key; allowed here:"),
    ("[students]\nmax_steps = \"many\"\n", "recipe.toml:7", "key 'students.max_steps'"),
    ("[evaluation]\nserve = [\"bm25\", \"telepathy\"]\n", "recipe.toml:7", "telepathy"),
    ("[evaluation]\nserve = [\"reranker\"]\n[reranker]\nenabled = false\n", "recipe.toml", "reranker.enabled is false"),
]


@pytest.mark.parametrize(("extra", "where", "words"), BAD)
def test_a_bad_recipe_is_refused_before_any_work_naming_the_file_line_and_key(tmp_path, capsys, extra, where, words):
    file = tmp_path / "recipe.toml"
    file.write_text(f'out = "{tmp_path / "run"}"\nseed = 0\n\n[dataset]\nname = "demo"\n' + extra)
    assert kard(["run", str(file)]) == 2
    err = capsys.readouterr().err
    assert where in err and words in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("override", "words"), [
    ("students.maxsteps=3", "override 'students.maxsteps=3': key 'students.maxsteps': unknown key"),
    ("dataset.name=wikipedia", "override 'dataset.name=wikipedia'"),
    ("dataset=3", "override 'dataset=3'"),
    ("=3", "expected key.path=value"),
])
def test_a_bad_override_is_named(tmp_path, capsys, override, words):
    assert kard(["run", str(RECIPES / "demo-tiny.toml"), f"out={tmp_path / 'run'}", override]) == 2
    assert words in capsys.readouterr().err


def test_missing_paths_and_an_unreachable_teacher_stop_the_run_before_any_work(tmp_path, capsys):
    write_own_data(tmp_path / "mine")
    base = [str(RECIPES / "own-data.toml"), f"out={tmp_path / 'run'}", *cpu_overrides("own-data"),
            f"dataset.data_dir={tmp_path / 'mine' / 'train.jsonl'}", f"knowledge.corpus=[{json.dumps(str(tmp_path / 'mine' / 'docs'))}]"]
    assert kard(["run", *base, f"knowledge.corpus=[{json.dumps(str(tmp_path / 'nowhere'))}]"]) == 2
    assert "key 'knowledge.corpus[0]'" in capsys.readouterr().err
    assert kard(["run", *base, "teacher.base_url=http://127.0.0.1:9/v1"]) == 2  # nothing listens on port 9
    err = capsys.readouterr().err
    assert "key 'teacher.base_url'" in err and "cannot be reached" in err
    assert not (tmp_path / "run").exists()  # refused before the first stage
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.md").write_text("mine")
    assert kard(["run", *base, f"out={tmp_path / 'theirs'}", "--dry-run"]) == 2
    assert "did not write" in capsys.readouterr().err and (tmp_path / "theirs" / "notes.md").read_text() == "mine"


def test_every_recipe_key_is_documented_and_every_shipped_recipe_loads():
    from kard_chain.recipe.config import recipe_fields

    rows = recipe_fields()
    assert all(doc for _, _, doc in rows), [key for key, _, doc in rows if not doc]
    assert {"students.reading.k", "teacher.model", "evaluation.serve", "knowledge.corpus"} <= {key for key, _, _ in rows}
    for file in sorted(RECIPES.glob("*.toml")):
        assert load_recipe(file).out


def test_overrides_are_read_as_toml_values():
    recipe = load_recipe(RECIPES / "demo-tiny.toml", ["students.methods=[\"kard\"]", "knowledge.chroma=false", "seed=7",
                                                      "teacher.model=openai:gpt-4o-mini"])
    assert recipe.students.methods == ["kard"] and recipe.knowledge.chroma is False and recipe.seed == 7
    assert recipe.teacher.model == "openai:gpt-4o-mini"
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe("nowhere.toml")


@pytest.mark.parametrize("task", ["strategyqa", "obqa"])
def test_real_data_recipes_run_on_cpu_with_their_override_set(tmp_path, task):
    pytest.importorskip("torch")
    from tests.conftest import shared_data

    folder = shared_data({"strategyqa": "strategyqa", "obqa": "openbookqa"}[task])
    overrides = [f"out={tmp_path / 'run'}", f"dataset.data_dir={folder}", *cpu_overrides(task)]
    assert kard(["run", str(RECIPES / f"{task}.toml"), *overrides, "--quiet"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    expected = ["FT", "RD", "KARD (BM25)"] + (["KARD (reranker)"] if task == "strategyqa" else []) + ["KARD (oracle: gold evidence)"]
    assert list(results["methods"]) == expected and all(row["total"] == 6 for row in results["methods"].values())
    records = [json.loads(line) for line in Path(results["per_example"]["eval-kard-oracle"]).read_text().splitlines()]
    if task == "strategyqa":  # the oracle reads gold paragraphs only, as many as its budget holds
        from kard_chain.datasets import load_dataset

        gold = {e.id: set(e.evidence_ids or []) for e in load_dataset("strategyqa", folder)}
        assert all(set(r["passage_ids"]) <= gold[r["id"]] and r["passage_ids"] for r in records)
        assert results["dataset"]["passages"] == 9251
    else:  # OpenBookQA's oracle reads the question's own fact1
        assert all(r["passage_ids"] == [f"{r['id']}-gold"] for r in records)


def test_a_run_killed_in_a_stage_resumes_it_and_reuses_the_finished_ones(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from kard_chain.recipe import run_recipe
    from kard_chain.student import trainer

    recipe = load_recipe(RECIPES / "demo-tiny.toml", [f"out={json.dumps(str(tmp_path))}", *CHEAP, "students.max_steps=6"])
    real = trainer.train_student

    def killed(config, **kwargs):  # trains, then dies before the stage is marked done
        real(config, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_student", killed)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, show_progress=False, log=lambda line: None)
    assert not (tmp_path / "run.json").exists() and len(list(tmp_path.glob("stages/student-ft-*/done.json"))) == 0
    weights = next(tmp_path.glob("stages/student-ft-*/run/final/model.safetensors")).read_bytes()
    monkeypatch.setattr(trainer, "train_student", real)
    lines: list[str] = []
    results = run_recipe(recipe, show_progress=False, log=lines.append)
    assert {s: v["action"] for s, v in results["stages"].items()} == {
        "data": "reused", "index": "reused", "student-init": "reused", "student-ft": "resumed", "eval-ft": "ran"}
    assert next(tmp_path.glob("stages/student-ft-*/run/final/model.safetensors")).read_bytes() == weights  # nothing retrained
    assert results["student"]["training"]["ft"]["step"] == 6 and results["methods"]["FT"]["total"] == 24


def test_editing_an_input_file_reruns_the_stages_that_read_it(tmp_path):
    write_own_data(tmp_path / "mine")
    overrides = own_data_overrides(tmp_path, "http://127.0.0.1:9/v1")
    recipe = load_recipe(RECIPES / "own-data.toml", overrides)
    before = {p.stage.name: p.hash for p in plan(recipe, build_stages(recipe))}
    test = tmp_path / "mine" / "test.jsonl"
    test.write_text(test.read_text().replace('"label": "A"', '"label": "B"'))  # a corrected gold answer, same ids
    after = {p.stage.name: p.hash for p in plan(recipe, build_stages(recipe))}
    assert {n for n in before if before[n] != after[n]} == {n for n in before if n not in ("index",)}  # all that reads data
    (tmp_path / "mine" / "docs" / "otter.txt").write_text("The otter eats seeds.")
    again = {p.stage.name: p.hash for p in plan(recipe, build_stages(recipe))}
    assert again["index"] != after["index"] and again["data"] == after["data"]



def test_variants_share_their_common_stages_and_compare_in_one_table(tmp_path, capsys):
    pytest.importorskip("torch")
    table = tmp_path / "compare.md"
    args = ["run", str(RECIPES / "demo-tiny.toml"), f"out={tmp_path / 'runs'}", *CHEAP, "--variant", "students.max_steps=2",
            "--variant", "students.max_steps=4", "--compare", str(table), "--quiet"]
    assert kard(args) == 0
    printed = capsys.readouterr().out
    runs = {steps: json.loads((tmp_path / "runs" / f"students.max_steps={steps}" / "results.json").read_text()) for steps in (2, 4)}
    assert [r["student"]["training"]["ft"]["step"] for r in runs.values()] == [2, 4]
    stages = tmp_path / "runs" / "stages"
    assert len(list(stages.glob("data-*"))) == 1 and len(list(stages.glob("student-init-*"))) == 1  # computed once
    assert len(list(stages.glob("student-ft-*"))) == 2 and len(list(stages.glob("eval-ft-*"))) == 2
    assert runs[4]["stages"]["data"]["action"] == "reused" and runs[4]["stages"]["student-ft"]["action"] == "ran"
    header = "| method | demo-tiny students.max_steps=2 | demo-tiny students.max_steps=4 |"
    assert header in printed and header in table.read_text()
    row = next(line for line in table.read_text().splitlines() if line.startswith("| FT |"))
    for r in runs.values():
        assert f"{r['methods']['FT']['accuracy']:.3f}" in row


def test_a_file_nested_in_a_corpus_folder_counts_in_the_index_stage(tmp_path):
    write_own_data(tmp_path / "mine")
    nested = tmp_path / "mine" / "docs" / "more"
    nested.mkdir()
    (nested / "lynx.txt").write_text("The lynx hunts hares.")
    recipe = load_recipe(RECIPES / "own-data.toml", own_data_overrides(tmp_path, "http://127.0.0.1:9/v1"))
    before = {p.stage.name: p.hash for p in plan(recipe, build_stages(recipe))}
    (nested / "lynx.txt").write_text("The lynx hunts birds.")
    after = {p.stage.name: p.hash for p in plan(recipe, build_stages(recipe))}
    assert before["index"] != after["index"] and before["data"] == after["data"]
