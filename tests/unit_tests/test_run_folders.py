"""Run folders made before a config field existed still resume when the run keeps that field at the old behaviour."""

import json

import pytest

from kard_chain.manifest import MANIFEST, ManifestMismatch
from kard_chain.student.config import StudentTrainingConfig
from kard_chain.training.checkpoints import prepare_run


def test_a_run_from_before_passages_from_and_counterfactual_existed_resumes_at_the_papers_setting(tmp_path):
    out = tmp_path / "run"
    config = StudentTrainingConfig(model="m", pairs=tmp_path / "pairs.jsonl", output_dir=out)
    assert prepare_run(config, "student-run", {}) == []
    manifest = json.loads((out / MANIFEST).read_text())
    for field in StudentTrainingConfig.IMPLIED_BEFORE:  # as a run made before the fields existed wrote it
        manifest["settings"].pop(field, None)
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "checkpoint-2").mkdir()
    for name in ("trainer_state.json", "optimizer.pt"):  # a whole checkpoint (a torn one is passed over)
        (out / "checkpoint-2" / name).write_text("{}")
    assert prepare_run(config, "student-run", {}) == [out / "checkpoint-2"]  # resumes
    other = config.model_copy(update={"passages_from": "question"})
    with pytest.raises(ManifestMismatch, match=r'passages_from: null -> "question"'):
        prepare_run(other, "student-run", {})
    with pytest.raises(ManifestMismatch, match=r"counterfactual: null -> 1"):
        prepare_run(config.model_copy(update={"counterfactual": 1}), "student-run", {})
    with pytest.raises(ManifestMismatch, match=r"yes_no_counterfactual: null -> true"):
        prepare_run(config.model_copy(update={"yes_no_counterfactual": True}), "student-run", {})
