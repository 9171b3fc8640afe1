"""Run folders made before a config field existed still resume when the run keeps that field at the old behaviour."""

import json
from pathlib import Path

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


def test_an_inputs_identity_is_its_path_and_content_and_a_digest_ignores_key_order(tmp_path):
    """Identities and digests are what manifests compare: their keys are stored in every run folder, so they are
    part of the format."""
    from kard_chain.manifest import NOT_CONTENT, digest, identity

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("same"), b.write_text("same")
    assert identity(a)["path"] == str(a.resolve()) and identity(a) != identity(b)  # same bytes, another file
    assert identity(tmp_path / "missing") == {"name": str(tmp_path / "missing")}  # a hub name
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_text("1")
    before = identity(folder)
    assert set(before) == {"path", "files"} and before["path"] == str(folder.resolve())
    for name in NOT_CONTENT:  # how it is used, not what it holds: no new identity
        (folder / name).write_text("{}")
    assert identity(folder) == before
    (folder / "weights.bin").write_text("2")
    assert identity(folder) != before
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert digest({"p": tmp_path}) == digest({"p": str(tmp_path)})  # paths hash as their text


def test_a_folder_holding_only_its_manifest_is_a_failed_start_whatever_the_manifest_and_the_working_directory_is_refused(tmp_path):
    from kard_chain.manifest import Manifest, ManifestMismatch, check_output

    out = tmp_path / "run"
    Manifest("reranker-run", {"seed": 0}).save(out, folder=True)
    assert check_output(out, Manifest("reranker-run", {"seed": 1}), folder=True) == "fresh"  # nothing to resume or refuse
    (out / "final").mkdir()
    with pytest.raises(ManifestMismatch):
        check_output(out, Manifest("reranker-run", {"seed": 1}), folder=True)
    with pytest.raises(ManifestMismatch) as error:
        check_output(Path.cwd(), Manifest("reranker-run", {}), folder=True, overwrite=True)
    assert error.value.path == str(Path.cwd()) and "working directory" in str(error.value)
