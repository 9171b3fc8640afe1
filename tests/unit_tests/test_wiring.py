"""Every setting a trained student records is used: changing it changes what training builds (the pairs, the batches
the loss sees) and, where serving repeats it, the chain that ``load_kard_chain`` builds from the student's folder.

The tables below must name every field of :class:`StudentSettings` (and the training-only knobs that shape the loss):
a new setting without a wiring check fails ``test_every_setting_has_a_wiring_check``."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kard_chain import BM25Retriever, load_kard_chain
from kard_chain.demo.world import build_world
from kard_chain.prompt_files import prompts_root
from kard_chain.student.config import StudentTrainingConfig
from kard_chain.student.settings import STUDENT_CONFIG, StudentSettings
from kard_chain.student.trainer import Collator, build_pairs
from kard_chain.testing.scratch_models import scratch_t5, word_tokenizer

BASE = {"method": "kard", "k": 2, "bridge": False, "passages_from": "rationale", "counterfactual": 0,
        "yes_no_counterfactual": False, "prompt": "default", "prompts_dir": None, "max_passage_tokens": 384,
        "max_source_tokens": 512, "answer_weight": 1.0}
# field -> the value it is changed to (from BASE); a cross-setting precondition goes in BASE_FOR
CHANGED = {"method": "rd", "k": 1, "bridge": True, "passages_from": "question", "counterfactual": 2,
           "yes_no_counterfactual": True, "prompt": "terse", "prompts_dir": "<own prompts>", "max_passage_tokens": 24,
           "max_source_tokens": 20, "answer_weight": 3.0}
BASE_FOR = {"yes_no_counterfactual": {"counterfactual": 2}}  # yes/no copies need a number of copies
TRAINING_ONLY = {"passages_from", "counterfactual", "yes_no_counterfactual", "answer_weight"}
"""Settings that shape training only: serving reads with the question, and never augments or weighs."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny demo world as a user's data: questions with reference rationales, an index, a scratch T5 folder,
    and a prompts folder with a ``terse`` variant and an own ``default``."""
    tmp = tmp_path_factory.mktemp("wiring")
    w = build_world("tiny", seed=0)
    train = [e.model_copy(update={"reference_rationale": w.rationales[e.id][0]}) for e in w.train]
    (tmp / "train.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in train))
    BM25Retriever.build(w.passages, tmp / "index", show_progress=False)
    tok = word_tokenizer([p.title + " " + p.text for p in w.passages] + [e.question for e in w.train + w.test]
                         + [r for rs in w.rationales.values() for r in rs] + ["question : options : knowledge : [ 1 ] [ 2 ] so the answer is"])
    scratch_t5(tok, d_model=16, layers=1, heads=2, dropout=0.0).save_pretrained(tmp / "t5")
    tok.save_pretrained(tmp / "t5")
    default = (prompts_root() / "student" / "default.toml").read_text()
    for folder, name in ((tmp / "terse-prompts", "terse.toml"), (tmp / "own-prompts", "default.toml")):
        folder.mkdir()
        (folder / name).write_text(default.replace('source = "question: {question}', 'source = "Q: {question}'))
    return tmp, w, tok


def values(world, field: str | None, change: bool = True) -> dict:
    """The settings with ``field``'s preconditions, and ``field`` changed unless ``change`` is false."""
    tmp, *_ = world
    v = {**BASE, **BASE_FOR.get(field, {})}
    if field is not None and change:
        v[field] = CHANGED[field]
    if v["prompt"] == "terse":
        v["prompts_dir"] = tmp / "terse-prompts"
    if v["prompts_dir"] == "<own prompts>":
        v["prompts_dir"] = tmp / "own-prompts"
    return v


def trained_on(world, field: str | None, change: bool = True):
    """What training builds with ``field`` changed: its pairs and the first batch's tensors (ids, labels, weights)."""
    tmp, _, tok = world
    config = StudentTrainingConfig(model=str(tmp / "t5"), dataset="jsonl", data_dir=tmp / "train.jsonl", reference=True,
                                   index=tmp / "index", output_dir=tmp / "out", **values(world, field, change))
    pairs = build_pairs(config, tok, show_progress=False)
    batch = Collator.for_config(config, tok, is_seq2seq=True)(pairs[:8])
    return [(p.id, p.source, p.target, p.passage_ids) for p in pairs], {k: v.tolist() for k, v in batch.items()}


def served_by(world, field: str | None):
    """What serving builds from a student folder recording ``field`` changed: the passages and the very prompt the
    student is given for three test questions, and the input truncation its LLM applies."""
    tmp, w, _ = world
    folder = tmp / f"student-{field}"
    if not folder.exists():
        folder.mkdir()
        for f in (tmp / "t5").iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
    recorded = {k: (str(v) if v is not None and k == "prompts_dir" else v) for k, v in values(world, field).items()}
    (folder / STUDENT_CONFIG).write_text(json.dumps(recorded))
    chain = load_kard_chain(folder, tmp / "index", n=1, max_new_tokens=1, do_sample=False)
    prompts = []
    llm = chain.steps[-1].llm
    real = type(llm)._generate

    def spy(self, batch, *args, **kwargs):
        prompts.extend(batch)
        return real(self, batch, *args, **kwargs)

    type(llm)._generate = spy
    try:
        out = chain.batch([e for e in w.test if e.metadata["hops"] == 2][:3])
    finally:
        type(llm)._generate = real
    return prompts, [[p["id"] for p in o["passages"]] for o in out], llm.max_input_tokens


def test_every_setting_has_a_wiring_check():
    assert set(StudentSettings.model_fields) | {"answer_weight"} == set(CHANGED) == set(BASE)
    assert TRAINING_ONLY <= set(CHANGED)


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_a_recorded_setting_changes_what_training_builds(world, field):
    pairs, batch = trained_on(world, field, change=False)  # the same preconditions: only the field differs
    changed_pairs, changed_batch = trained_on(world, field)
    assert (pairs, batch) != (changed_pairs, changed_batch), f"{field} is recorded but training ignores it"
    if field == "answer_weight":
        assert "weights" not in batch and 3.0 in {x for row in changed_batch["weights"] for x in row}
    if field == "max_source_tokens":
        assert max(len(row) for row in changed_batch["input_ids"]) == 20


@pytest.mark.parametrize("field", sorted(set(CHANGED) - TRAINING_ONLY))
def test_a_recorded_setting_changes_the_chain_load_kard_chain_serves(world, field):
    assert served_by(world, None) != served_by(world, field), f"{field} is recorded but serving ignores it"


STRUCTURE = {
    "out": "where the run's report goes",
    "cache": "where the stage folders go",
    "knowledge.chroma": "whether the chroma stage exists",
    "reranker.enabled": "whether the candidates and reranker stages exist",
    "students.methods": "which student stages exist",
    "evaluation.serve": "which evaluation stages exist",
    "evaluation.editing": "whether the edit stages exist",
    "teacher.base_url": "where the teacher is reached; the rationales are named by teacher.model",
    "teacher.concurrency": "how fast the teacher is asked, not what it writes",
    "teacher.max_retries": "how fast the teacher is asked, not what it writes",
    "teacher.timeout": "how fast the teacher is asked, not what it writes",
}
"""Recipe keys that choose which stages exist or how they run, not what a stage makes: they name no stage's hash."""


def test_every_recipe_key_reaches_the_hash_of_a_stage_that_uses_it():
    """A key that changes what a stage makes must be in that stage's keys, or a changed recipe reuses the old
    artefact (``reranker.candidates_per_set`` was dropped with ``reranker.candidates``: a prefix match)."""
    from kard_chain.recipe.config import recipe_fields
    from kard_chain.recipe.graph import flatten
    from kard_chain.recipe.loading import load_recipe, recipes_root
    from kard_chain.recipe.stages import build_stages

    hashed = set()
    for file in sorted(recipes_root().glob("*.toml")):
        recipe = load_recipe(file, ['out="/nonexistent/run"'])
        hashed |= {key for stage in build_stages(recipe) for key in flatten(stage.keys)}
    keys = {name for name, _, _ in recipe_fields()}
    assert keys - hashed == set(STRUCTURE)
    assert not set(STRUCTURE) & hashed
