"""`kard demo` on a tiny world: every stage runs and the artefacts have their schema (under 2 minutes)."""

import importlib.util
import json

import pytest

pytest.importorskip("torch")

from kard_chain.cli import main as kard
from kard_chain.demo.run import REFERENCE_TEACHER
from tests.unit_tests.figures import METHODS, recompute


def records(file):
    return {r["id"]: r for r in map(json.loads, file.read_text().splitlines())}


def stage_folder(out, name):
    """A stage's folder, as the run recorded it."""
    from pathlib import Path

    return Path(json.loads((out / "run.json").read_text())["stages"][name]["folder"])


def recompute_from_per_example_files(out, results):
    """Every figure the demo reports, recomputed here from the records its evaluations wrote."""
    recompute(results, lambda stage: records(stage_folder(out, stage) / "records.jsonl"))


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert kard(["demo", "--size", "tiny", "--out", str(out), "-n", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    recipe = results["recipe"]
    assert list(results["methods"]) == list(METHODS)
    for row in results["methods"].values():
        assert 0 <= row["ci95"][0] <= row["accuracy"] <= row["ci95"][1] <= 1 and row["total"] == results["dataset"]["test"]
        assert {"colour", "diet", "trade", "weather"} <= set(row["by_type"])
    k = recipe["students"]["reading"]["k"]
    hop2 = {label: row[f"second-hop recall@{k}"] for label, row in results["retrieval"].items() if label.startswith("KARD")}
    assert hop2["KARD (BM25)"] == 0 < hop2["KARD (BM25, bridge)"]  # only the bridge round reaches birthplaces
    assert all(0 <= v <= 1 for row in results["retrieval"].values() for v in row.values())
    assert set(results["editing"]["follow_edit"]) == set(METHODS) and results["editing"]["questions"] > 0
    assert results["teacher"] == REFERENCE_TEACHER and REFERENCE_TEACHER in (out / "results.md").read_text()
    rationales = (stage_folder(out, "teach") / "rationales.jsonl").read_text().splitlines()
    assert rationales and all(json.loads(line)["model"] == REFERENCE_TEACHER for line in rationales)
    assert "| method | accuracy [95% CI] |" in (out / "results.md").read_text()
    assert "KARD (reranker)" in printed and "peak" in printed
    run = {m: stage_folder(out, f"student-{m}") / "run" for m in ("ft", "rd", "kard")}
    ids = {m: [json.loads(line)["id"] for line in (run[m] / "pairs.jsonl").read_text().splitlines()] for m in ("rd", "kard")}
    assert recipe["students"]["reading"]["counterfactual"] == 2 and "2 counterfactual copies" in (out / "results.md").read_text()
    assert any(i.endswith("~cf1") for i in ids["kard"]) and not any("~cf" in i for i in ids["rd"])  # KARD's data only
    assert recipe["students"]["reading"]["yes_no_counterfactual"] and any("-colour#" in i and "~cf" in i for i in ids["kard"])
    weights = {m: json.loads((run[m] / "final" / "kard_student.json").read_text())["answer_weight"] for m in run}
    weight = recipe["students"]["answer_weight"]
    assert weights == {"ft": 1.0, "rd": weight, "kard": weight} and weight > 1
    recompute_from_per_example_files(out, results)
    if importlib.util.find_spec("matplotlib"):  # the chart needs the demo extra; the resume check below does not
        assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a rerun reuses every stage: no student is trained again, the figures are the same
    stamps = {m: (run[m] / "final" / "model.safetensors").stat().st_mtime_ns for m in run}
    assert kard(["demo", "--size", "tiny", "--out", str(out), "-n", "3", "--quiet"]) == 0
    assert "stages: 0 ran" in capsys.readouterr().out
    assert stamps == {m: (run[m] / "final" / "model.safetensors").stat().st_mtime_ns for m in run}
    again = json.loads((out / "results.json").read_text())
    assert again["methods"] == results["methods"] and all(s["action"] == "reused" for s in again["stages"].values())
