"""Every artefact knows what made it: reruns with other inputs or settings are refused (exit 2) before
any work, --overwrite replaces only kard's own artefacts of the same kind, and failures exit non-zero.

The command-line cases run ``kard`` in a subprocess, as a user would, and check the exit code, the
message and that the earlier artefact is untouched.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kard_chain import BM25Retriever, KardDataError
from kard_chain.io import atomic_directory, atomic_write_text, read_jsonl
from kard_chain.jsonl_store import JsonlStore
from kard_chain.manifest import Manifest, ManifestMismatch, prepare_output
from kard_chain.records import Passage
from kard_chain.teacher.cache import TeacherRecord
from kard_chain.testing.openai_server import FakeOpenAIServer
from tests.unit_tests.copy_task import write_copy_task

ROOT = Path(__file__).resolve().parents[2]


def kard(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test-key", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "kard_chain.cli", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)
    return done.returncode, done.stdout + done.stderr


def snapshot(path: Path) -> dict:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): f.read_bytes() for f in files}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("artefacts")
    write_copy_task(tmp, n_train=12, n_test=4)
    return tmp


# ---- the mechanism --------------------------------------------------------------------------------

def test_same_manifest_resumes_another_is_refused_with_each_difference_and_overwrite_starts_over(tmp_path):
    out = tmp_path / "c.jsonl"
    assert prepare_output(out, Manifest("cache", {"n": 2, "model": "m"}), folder=False) is False
    out.write_text("work\n")
    assert prepare_output(out, Manifest("cache", {"n": 2, "model": "m"}), folder=False) is True
    with pytest.raises(ManifestMismatch, match=r'n: 2 -> 4.*--overwrite'):
        prepare_output(out, Manifest("cache", {"n": 4, "model": "m"}), folder=False)
    assert out.read_text() == "work\n"
    assert prepare_output(out, Manifest("cache", {"n": 4, "model": "m"}), folder=False, overwrite=True) is False
    assert not out.exists() and Manifest.load(out, folder=False).settings == {"n": 4, "model": "m"}
    with pytest.raises(ManifestMismatch, match="holds a cache, not a index"):
        out.write_text("x")
        prepare_output(out, Manifest("index", {}), folder=False)


def test_overwrite_never_touches_a_foreign_folder_or_the_working_directory(tmp_path, monkeypatch):
    mine = tmp_path / "userdata"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(ManifestMismatch, match="not made by kard-chain"):
        prepare_output(mine, Manifest("bm25-index", {}), folder=True, overwrite=True)
    assert (mine / "notes.txt").read_text() == "mine"
    monkeypatch.chdir(mine)
    with pytest.raises(ManifestMismatch, match="working directory"):
        prepare_output(Path("."), Manifest("bm25-index", {}), folder=True, overwrite=True)


# ---- the command line, case by case --------------------------------------------------------------

def test_case2_index_overwrite_refuses_a_users_folder_and_the_working_directory(corpus, tmp_path):
    user = tmp_path / "userdata"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    code, out = kard("index", "--corpus", corpus / "passages.jsonl", "--out", user, "--overwrite")
    assert code == 2 and "not made by kard-chain" in out and (user / "thesis.tex").read_text() == "years of work"
    code, out = kard("index", "--corpus", corpus / "passages.jsonl", "--out", ".", "--overwrite", cwd=user)
    assert code == 2 and "working directory" in out and (user / "thesis.tex").is_file()
    # our own index of the same kind is replaced, and a kill's leftover temporary folder is cleaned
    index = tmp_path / "index"
    assert kard("index", "--corpus", corpus / "passages.jsonl", "--out", index)[0] == 0
    (tmp_path / ".index.tmp-killed").mkdir()
    assert kard("index", "--corpus", corpus / "passages.jsonl", "--out", index, "--overwrite", "--k1", "1.2")[0] == 0
    assert not (tmp_path / ".index.tmp-killed").exists()


def test_case8_a_chroma_store_cannot_land_in_a_bm25_index(corpus, tmp_path):
    pytest.importorskip("chromadb")
    index = tmp_path / "index"
    assert kard("index", "--corpus", corpus / "passages.jsonl", "--out", index)[0] == 0
    before = snapshot(index)
    code, out = kard("index", "--backend", "chroma", "--corpus", corpus / "passages.jsonl", "--out", index)
    assert code == 2 and "holds a bm25-index, not a chroma-store" in out
    assert snapshot(index) == before


def test_case6_candidates_resumed_with_another_k_or_index_are_refused(corpus, tmp_path):
    args = ["candidates", "--dataset", "jsonl", "--data-dir", corpus / "train.jsonl", "--reference", "--out", tmp_path / "c.jsonl"]
    assert kard(*args, "--index", corpus / "index", "-k", "3")[0] == 0
    before = snapshot(tmp_path / "c.jsonl")
    code, out = kard(*args, "--index", corpus / "index", "-k", "5")
    assert code == 2 and "k: 3 -> 5" in out and snapshot(tmp_path / "c.jsonl") == before
    other = tmp_path / "other_index"
    BM25Retriever.build([Passage(id="z", text="the zorb is red")], other, show_progress=False)
    code, out = kard(*args, "--index", other, "-k", "3")
    assert code == 2 and "index.path" in out and snapshot(tmp_path / "c.jsonl") == before
    assert kard(*args, "--index", other, "-k", "3", "--overwrite")[0] == 0


@pytest.fixture
def teacher_data(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"id": f"e{i}", "question": f"Is thing {i} real?", "answer": "yes"}) + "\n" for i in range(3)))
    return path


def test_case4_teach_with_another_n_or_an_edited_prompt_is_refused(teacher_data, tmp_path):
    out = tmp_path / "c.jsonl"
    with FakeOpenAIServer() as server:
        base = ["teach", "--dataset", "jsonl", "--data-dir", teacher_data, "--teacher", "openai:gpt-4o-mini", "--base-url",
                server.url, "--out", out]
        assert kard(*base, "--n", "2")[0] == 0
        before = snapshot(out)
        code, msg = kard(*base, "--n", "4")
        assert code == 2 and "n: 2 -> 4" in msg and snapshot(out) == before
        prompts = tmp_path / "prompts"
        prompts.mkdir()
        shipped = ROOT / "prompts" / "teacher" / "generic" / "default.toml"
        (prompts / "default.toml").write_text(shipped.read_text().replace("step by step", "in one line"))
        code, msg = kard(*base, "--n", "2", "--prompts", prompts)
        assert code == 2 and "prompt_text" in msg and snapshot(out) == before
        assert server.counts["requests"] == 3  # the refused runs asked nothing


def test_case5_a_run_with_failed_examples_exits_non_zero_and_names_a_refused_connection(teacher_data, tmp_path):
    code, out = kard("teach", "--dataset", "jsonl", "--data-dir", teacher_data, "--teacher", "openai:gpt-4o-mini",
                     "--base-url", "http://127.0.0.1:1/v1", "--out", tmp_path / "c.jsonl", "--max-retries", "1", "--backoff", "0.01")
    assert code == 1 and "3 example(s) failed" in out and "connection_refused" in out and "running?" in out


def test_issue27_cases2_3_a_second_writer_is_refused_before_it_touches_the_manifest_even_with_overwrite(tmp_path):
    import time

    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "question": f"Is thing {i} real?", "answer": "yes"}) + "\n" for i in range(12)))
    out = tmp_path / "c.jsonl"
    with FakeOpenAIServer(latency=1.5) as server:  # slow (18 s in all): the first run is still writing when both others start
        base = ["teach", "--dataset", "jsonl", "--data-dir", data, "--teacher", "openai:gpt-4o-mini", "--base-url", server.url,
                "--out", out, "--concurrency", "1"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test-key", "OMP_NUM_THREADS": "1"}
        first = subprocess.Popen([sys.executable, "-m", "kard_chain.cli", *map(str, base), "--n", "2"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while (not out.is_file() or not out.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        manifest = out.with_name(out.name + ".manifest.json").read_text()
        for extra in ([], ["--overwrite"]):
            code, msg = kard(*base, "--n", "3", "--limit", "2", *extra)
            assert code == 2 and "another process is writing" in msg, msg
            assert first.poll() is None  # refused by the lock, not by a finished run's manifest
            assert out.with_name(out.name + ".manifest.json").read_text() == manifest  # the manifest untouched
        assert first.wait(120) == 0, first.stdout.read()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12 and all(len(r["rationales"]) == 2 for r in records)  # the first run's work, whole
    assert not (tmp_path / ".c.jsonl.lock").exists()


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def students(corpus):
    from kard_chain.testing.scratch_models import scratch_t5, word_tokenizer

    texts = [line for _, r in read_jsonl(corpus / "train.jsonl") for line in (r["question"], r["reference_rationale"])]
    tok = word_tokenizer(texts + [(corpus / "passages.jsonl").read_text(), "question : knowledge : options : so the answer is"])
    for name, seed in (("a", 0), ("b", 1), ("bare", 2)):
        scratch_t5(tok, d_model=32, layers=1, heads=2, dropout=0.0, seed=seed).save_pretrained(corpus / name)
        tok.save_pretrained(corpus / name)
        if name != "bare":
            (corpus / name / "kard_student.json").write_text(json.dumps({"method": "kard", "k": 2}))
    return corpus


def test_case1_evaluating_another_student_into_the_same_file_is_refused(students, tmp_path):
    out = tmp_path / "e.jsonl"
    common = ["--index", students / "index", "--dataset", "jsonl", "--data-dir", students / "test.jsonl", "-n", "1",
              "--max-new-tokens", "2", "--out", out]
    assert kard("evaluate", "--student", students / "a", *common)[0] == 0
    before = snapshot(out)
    code, msg = kard("evaluate", "--student", students / "b", *common)
    assert code == 2 and "student.files" in msg and "accuracy" not in msg and snapshot(out) == before
    code, msg = kard("evaluate", "--student", students / "b", *common, "--overwrite")
    assert code == 0 and "accuracy" in msg


def test_case7_a_folder_without_settings_says_what_is_missing(students):
    args = ["ask", "--student", students / "bare", "--index", students / "index", "-n", "1", "--max-new-tokens", "2", "what?"]
    code, msg = kard(*args)
    assert code == 2 and "no kard_student.json" in msg and "--method kard -k 3" in msg
    assert kard(*args, "--method", "kard", "-k", "2")[0] == 0


def test_case3_training_into_another_runs_folder_is_refused(students, tmp_path):
    out = tmp_path / "student"
    common = ["train-student", "--model", students / "a", "--dataset", "jsonl", "--data-dir", students / "train.jsonl",
              "--output-dir", out, "--max-steps", "2", "--batch-size", "4"]
    assert kard(*common, "--method", "ft")[0] == 0
    before = snapshot(out)
    code, msg = kard(*common, "--method", "rd", "--reference", "true")
    assert code == 2 and 'method: "ft" -> "rd"' in msg and snapshot(out) == before
    code, msg = kard(*common, "--method", "ft", "--max-steps", "0")
    assert code == 2 and "max_steps" in msg


def test_case3_the_reranker_with_another_loss_is_refused(students, tmp_path):
    from kard_chain.datasets import load_dataset
    from kard_chain.reranker.candidates import build_candidates
    from kard_chain.teacher.cache import rationale_pairs
    from tests.unit_tests.tiny_models import tiny_encoder

    examples = load_dataset("jsonl", students / "train.jsonl")
    build_candidates(rationale_pairs(examples, reference=True), BM25Retriever.load(students / "index"), tmp_path / "c.jsonl", k=3,
                     show_progress=False)
    words = sorted({w for e in examples for w in (e.question + " " + e.reference_rationale).split()} | {"the", "is"})
    encoder, tokenizer = tiny_encoder(words, dropout=0.0)
    encoder.save_pretrained(tmp_path / "enc")
    tokenizer.save_pretrained(tmp_path / "enc")
    common = ["train-reranker", "--encoder", tmp_path / "enc", "--candidates", tmp_path / "c.jsonl", "--index", students / "index",
              "--output-dir", tmp_path / "rr", "--dim", "8", "--batch-size", "4", "--candidates-per-set", "3", "--max-steps", "1",
              "--eval-fraction", "0"]
    assert kard(*common)[0] == 0
    before = snapshot(tmp_path / "rr")
    code, msg = kard(*common, "--loss", "ce")
    assert code == 2 and 'loss: "kl" -> "ce"' in msg and snapshot(tmp_path / "rr") == before


# ---- found on the way ----------------------------------------------------------------------------

def test_a_second_writer_of_a_store_is_refused(tmp_path):
    with JsonlStore.open(tmp_path / "c.jsonl", TeacherRecord):
        for _ in range(2):  # a refused open leaves the first writer's claim in place
            with pytest.raises(KardDataError, match="another process is writing"):
                JsonlStore.open(tmp_path / "c.jsonl", TeacherRecord)
    JsonlStore.open(tmp_path / "c.jsonl", TeacherRecord).close()  # free again once the first is closed


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        with atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def test_non_utf8_input_and_empty_datasets_name_the_file(tmp_path):
    from kard_chain import load_dataset

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "question": "ok"}\n{"id": "b", "question": "caf\xe9"}\n')
    with pytest.raises(KardDataError, match=r"bad\.jsonl:2.*not UTF-8"):
        load_dataset("jsonl", bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(KardDataError, match=r"empty\.jsonl.*no examples"):
        load_dataset("jsonl", empty)


def test_case9_the_readme_bm25_example_finds_the_goat_and_okapi_parity_stays_available():
    retriever = BM25Retriever.from_texts(["Goats produce milk.", "Cats purr."], k=1)
    assert [d.page_content for d in retriever.invoke("goat milk")] == ["Goats produce milk."]
    okapi = BM25Retriever.from_texts(["Goats produce milk.", "Cats purr."], k=1, method="okapi")
    assert okapi.invoke("goat milk") == []  # rank_bm25's idf is zero for a term in half the passages


def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_the_corrected_rerun(students, tmp_path):
    from kard_chain import StudentTrainingConfig, train_student

    common = dict(model=str(students / "a"), output_dir=tmp_path / "s", dataset="jsonl", data_dir=students / "train.jsonl",
                  reference=True, method="kard", k=1, max_steps=1, batch_size=4)
    with pytest.raises(KardDataError, match="index"):
        train_student(StudentTrainingConfig(**common, index=tmp_path / "no_such_index"), show_progress=False)
    assert train_student(StudentTrainingConfig(**common, index=students / "index"), show_progress=False)["step"] == 1


@pytest.mark.parametrize("damage, named", [
    (lambda index: (index / "passage_offsets.npy").unlink(), "passage_offsets.npy"),
    (lambda index: (index / "weights.npy").write_bytes(b"not an array"), "weights.npy"),
    (lambda index: (index / "passages.jsonl").write_bytes((index / "passages.jsonl").read_bytes()[:-40]), "passages.jsonl"),
])
def test_a_damaged_index_is_named_without_a_traceback(corpus, tmp_path, damage, named):
    import shutil

    index = tmp_path / "index"
    shutil.copytree(corpus / "index", index)
    damage(index)
    code, out = kard("search", "--index", index, "red")
    assert code == 2 and named in out and "Traceback" not in out and "--overwrite" in out


def test_missing_model_folders_are_one_line_errors(students, tmp_path):
    code, out = kard("ask", "--student", tmp_path / "nowhere", "--index", students / "index", "what?")
    assert code == 2 and "nowhere" in out and "Traceback" not in out
    code, out = kard("ask", "--student", students / "a", "--index", students / "index", "--reranker", tmp_path / "no_reranker",
                     "-n", "1", "what?")
    assert code == 2 and "no_reranker" in out and "Traceback" not in out


def test_issue27_case1_a_training_run_never_deletes_a_folder_it_did_not_make(students, tmp_path):
    home = tmp_path / "H"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "cv.txt").write_text("mine")
    (home / "notes.md").write_text("x")
    common = ["train-student", "--method", "ft", "--model", students / "a", "--dataset", "jsonl", "--data-dir",
              students / "train.jsonl", "--output-dir", home, "--batch-size", "4", "--overwrite-output-dir", "true"]
    assert kard(*common, "--max-steps", "2")[0] == 0  # trains into the user's folder, as asked
    assert kard(*common, "--max-steps", "3")[0] == 0  # another run replaces the first run's files, and only those
    assert (home / "notes.md").read_text() == "x" and (home / "Documents" / "cv.txt").read_text() == "mine"
    assert json.loads((home / "metrics.json").read_text())["step"] == 3 and (home / "final" / "model.safetensors").is_file()


def test_issue27_case1_a_training_run_refuses_another_kind_of_kard_artefact(students, tmp_path):
    index = students / "index"
    before = snapshot(index)
    for flags in ([], ["--overwrite-output-dir", "true"]):
        code, msg = kard("train-student", "--method", "ft", "--model", students / "a", "--dataset", "jsonl", "--data-dir",
                         students / "train.jsonl", "--output-dir", index, "--max-steps", "2", "--batch-size", "4", *flags)
        assert code == 2 and "holds a bm25-index, not a student-run" in msg
    assert snapshot(index) == before


def test_issue27_case6_passage_vectors_never_replace_a_users_folder(tmp_path):
    from kard_chain.reranker.vectors import PassageVectors, check_replaceable

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(KardDataError, match="not a passage-vector folder"):
            check_replaceable(mine, overwrite)
    with pytest.raises(KardDataError, match="not a passage-vector folder"):  # compress checks before any work
        PassageVectors(None, None, [], {}).compress(mine, overwrite=True)
    assert (mine / "notes.md").read_text() == "x"
    vectors = tmp_path / "vectors"
    vectors.mkdir()
    for name in ("meta.json", "ids.json", "offsets.npy"):
        (vectors / name).write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_replaceable(vectors, overwrite=False)
    check_replaceable(vectors, overwrite=True)  # kard's own vectors may be replaced


def test_issue27_case4_an_evaluation_knows_its_data_file(students, tmp_path):
    data = tmp_path / "test.jsonl"
    data.write_text((students / "test.jsonl").read_text())
    out = tmp_path / "e.jsonl"
    args = ["evaluate", "--student", students / "a", "--index", students / "index", "--dataset", "jsonl", "--data-dir", data,
            "-n", "1", "--max-new-tokens", "2", "--out", out]
    assert kard(*args)[0] == 0
    before = snapshot(out)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    def corrected(answer):
        return {"yes": "no", "no": "yes", "A": "B"}.get(answer, "A")

    data.write_text("".join(json.dumps({**r, "answer": corrected(r["answer"])}) + "\n" for r in rows))
    code, msg = kard(*args)  # the same ids, corrected gold answers: not resumed with the old gold
    assert code == 2 and "data.sha256" in msg and snapshot(out) == before
    code, msg = kard(*args, "--overwrite")
    golds = {json.loads(line)["id"]: json.loads(line)["gold"] for line in out.read_text().splitlines()}
    assert code == 0 and sorted(golds.values()) == sorted(corrected(r["answer"]) for r in rows)


def test_issue27_case4_teacher_rationales_for_a_corrected_gold_answer_are_not_reused(teacher_data, tmp_path):
    out = tmp_path / "c.jsonl"
    with FakeOpenAIServer() as server:
        base = ["teach", "--dataset", "jsonl", "--data-dir", teacher_data, "--teacher", "openai:gpt-4o-mini", "--base-url",
                server.url, "--out", out, "--n", "2"]
        assert kard(*base)[0] == 0
        before = snapshot(out)
        teacher_data.write_text(teacher_data.read_text().replace('"e1", "question": "Is thing 1 real?", "answer": "yes"',
                                                                 '"e1", "question": "Is thing 1 real?", "answer": "no"'))
        code, msg = kard(*base)
        assert code == 2 and "1 of its records were explained for another gold answer" in msg and snapshot(out) == before
        code, msg = kard(*base, "--overwrite")
    records = {json.loads(line)["id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert code == 0 and records["e1"]["gold"] == "no" and all(r["answer"] == "no" for r in records["e1"]["rationales"])


def test_issue27_a_finished_training_rerun_changes_nothing_and_an_input_spelled_differently_resumes(students, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text((students / "train.jsonl").read_text())
    common = ["train-student", "--method", "ft", "--model", students / "a", "--dataset", "jsonl", "--output-dir", "run",
              "--max-steps", "2", "--batch-size", "4"]
    old = os.umask(0o022)
    try:
        assert kard(*common, "--data-dir", "data/train.jsonl", cwd=tmp_path)[0] == 0
    finally:
        os.umask(old)
    modes = {str(f.relative_to(tmp_path)): oct(f.stat().st_mode & 0o777) for f in (tmp_path / "run").rglob("*") if f.is_file()}
    assert set(modes.values()) == {"0o644"}, modes  # weights too: a teammate can load a shared student
    before = snapshot(tmp_path / "run")
    code, msg = kard(*common, "--data-dir", tmp_path / "data" / ".." / "data" / "train.jsonl", cwd=tmp_path)
    assert code == 0, msg
    assert snapshot(tmp_path / "run") == before  # metrics.json still the training run's, the weights untouched
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 2


def test_issue27_serving_flags_that_mean_nothing_are_refused_and_sampling_is_seeded(students, tmp_path):
    ask = ["ask", "--student", students / "a", "--index", students / "index", "-n", "2", "--max-new-tokens", "3"]
    code, msg = kard(*ask, "--method", "ft", "what?")
    assert code == 2 and "trained as 'kard'" in msg
    code, msg = kard(*ask, "--first-stage-weight", "0.5", "what?")
    assert code == 2 and "give a reranker" in msg
    code, msg = kard("ask", "--student", students / "bare", "--method", "ft", "-n", "1", "--max-new-tokens", "2", "what?")
    assert code == 0, msg  # an ft checkpoint needs no -k
    runs = [kard(*ask, "--seed", "3", "what does the otter eat?")[1] for _ in range(2)]
    assert runs[0] == runs[1] and "answer:" in runs[0]


def test_issue27_quickstart_leaves_nothing_behind_and_memory_is_bounded(tmp_path):
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("kard-quickstart-*"))
    assert kard("quickstart")[0] == 0
    assert set(Path(tempfile.gettempdir()).glob("kard-quickstart-*")) == before
    code, msg = kard("index", "--corpus", tmp_path, "--out", tmp_path / "i", "--memory-gib", "1e30")
    assert code == 2 and "is above" in msg and "Traceback" not in msg


def test_issue27_missing_model_folders_a_folder_as_evaluation_output_and_a_torn_checkpoint(students, tmp_path):
    from kard_chain.training.checkpoints import checkpoints_in

    code, msg = kard("teach", "--dataset", "jsonl", "--data-dir", students / "train.jsonl", "--teacher", "hf:./no/such/model",
                     "--out", tmp_path / "c.jsonl")
    assert code == 2 and "teacher model folder (or .gguf file) not found" in msg and "Repo id" not in msg
    code, msg = kard("train-reranker", "--encoder", "./no/such/encoder", "--candidates", tmp_path / "c.jsonl",
                     "--index", students / "index", "--output-dir", tmp_path / "r")
    assert code == 2 and "encoder folder not found" in msg and "Repo id" not in msg
    (tmp_path / "e").mkdir()
    code, msg = kard("evaluate", "--student", students / "a", "--index", students / "index", "--dataset", "jsonl",
                     "--data-dir", students / "test.jsonl", "--out", tmp_path / "e")
    assert code == 2 and "is a folder" in msg
    run = tmp_path / "run"
    for step, files in ((2, ("trainer_state.json", "optimizer.pt", "model.safetensors")), (4, ("model.safetensors", "optimizer.pt"))):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        for name in files:
            (run / f"checkpoint-{step}" / name).write_text("x")
    assert checkpoints_in(run) == [run / "checkpoint-2"]  # the torn step-4 folder is passed over


def test_issue27_a_diverging_loss_is_one_sentence_not_a_traceback(students, tmp_path):
    code, msg = kard("train-student", "--method", "ft", "--model", students / "a", "--dataset", "jsonl", "--data-dir",
                     students / "train.jsonl", "--output-dir", tmp_path / "run", "--max-steps", "4", "--batch-size", "4",
                     "--learning-rate", "1e30")
    assert code == 1 and "the loss became" in msg and "Traceback" not in msg


def test_issue27_a_teacher_cache_copied_without_its_manifest_resumes_when_its_records_match(teacher_data, tmp_path):
    out = tmp_path / "c.jsonl"
    with FakeOpenAIServer() as server:
        base = ["teach", "--dataset", "jsonl", "--data-dir", teacher_data, "--teacher", "openai:gpt-4o-mini", "--base-url",
                server.url, "--out", out, "--n", "2"]
        assert kard(*base, "--limit", "2")[0] == 0
        out.with_name(out.name + ".manifest.json").unlink()  # copied alone
        code, msg = kard(*base)
        assert code == 0 and "adopting" in msg and "+2 cached" in msg and server.counts["200"] == 3
        out.with_name(out.name + ".manifest.json").unlink()
        code, msg = kard(*base[:-1], "3")  # made with n=2, asked for n=3: not adopted, refused as before
        assert code == 2 and "was not made by kard-chain" in msg


def test_issue27_an_index_built_through_a_link_replaces_what_the_link_points_to(corpus, tmp_path):
    real = tmp_path / "indexes" / "v1"
    link = tmp_path / "current"
    assert kard("index", "--corpus", corpus / "passages.jsonl", "--out", real)[0] == 0
    link.symlink_to(real, target_is_directory=True)
    code, msg = kard("index", "--corpus", corpus / "passages.jsonl", "--out", link, "--overwrite", "--k1", "1.2")
    assert code == 0, msg
    assert link.is_symlink() and json.loads((real / "kard_manifest.json").read_text())["settings"]["params"]["k1"] == 1.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "indexes"]  # no folder left beside the target
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere" / "index")
    code, msg = kard("index", "--corpus", corpus / "passages.jsonl", "--out", dangling)
    assert code == 2 and "whose folder does not exist" in msg


def test_issue27_an_index_build_or_append_waits_for_no_one_and_touches_nothing_another_writer_holds(corpus, tmp_path):
    out = tmp_path / "index"
    assert kard("index", "--corpus", corpus / "passages.jsonl", "--out", out)[0] == 0
    before = snapshot(out)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom kard_chain.manifest import output_lock\n"
                               f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another build is writing this index
        for extra in (["--overwrite"], ["--append"]):
            code, msg = kard("index", "--corpus", corpus / "passages.jsonl", "--out", out, *extra)
            assert code == 2 and "another process is writing" in msg, msg
    finally:
        holder.kill()
        holder.wait()
    assert snapshot(out) == before


def test_a_file_is_known_by_its_bytes_and_settings_by_every_nested_key(tmp_path, monkeypatch):
    """An input edited in place to the same size is another input (its content hash); past the hashing limit size
    and mtime stand in; a setting nested under another is reported by its dotted key, a dict beside a value whole."""
    from kard_chain import manifest

    a, b, same = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "same.txt"
    a.write_bytes(b"x" * (3 << 20) + b"one")  # more than one 1 MiB read block
    b.write_bytes(b"x" * (3 << 20) + b"two")
    same.write_bytes(a.read_bytes())
    ida, idb = manifest.file_identity(a), manifest.file_identity(b)
    assert set(ida) == {"size", "sha256"} and ida["size"] == idb["size"] and ida["sha256"] != idb["sha256"]
    assert manifest.file_identity(same) == ida
    import hashlib

    assert ida["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()[:16]
    exact = tmp_path / "exact.bin"
    exact.write_bytes(b"y" * 1000)
    monkeypatch.setattr(manifest, "HASHED_BYTES", 1000)  # a file of exactly the limit is still hashed
    assert set(manifest.file_identity(exact)) == {"size", "sha256"}
    monkeypatch.setattr(manifest, "HASHED_BYTES", 999)
    assert manifest.file_identity(exact) == {"size": 1000, "mtime_ns": exact.stat().st_mtime_ns}
    assert manifest.differences({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5}, "d": 3}) == ["a.c: 2 -> 5"]
    assert manifest.differences({"a": {"b": 1}}, {"a": 7}) == ['a: {"b": 1} -> 7']
    assert manifest.differences({}, {"e": None, "f": 1}) == ["f: null -> 1"]
