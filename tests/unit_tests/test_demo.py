"""`kard demo` on a tiny world: every stage runs and the artefacts have their schema (under 2 minutes)."""

import json

import pytest

pytest.importorskip("torch")

from kard_chain.cli import main as kard  # noqa: E402
from kard_chain.demo.run import METHODS, REFERENCE_TEACHER  # noqa: E402


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert kard(["demo", "--size", "tiny", "--out", str(out), "-n", "3"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == list(METHODS)
    for row in results["methods"].values():
        assert 0 <= row["ci95"][0] <= row["accuracy"] <= row["ci95"][1] <= 1 and row["total"] == results["questions"]["test"]
        assert {"colour", "diet", "trade", "weather"} <= set(row["by_type"])
    assert set(results["retrieval"]) >= {"BM25 (question)", "KARD reranker"}
    assert all(0 <= v <= 1 for row in results["retrieval"].values() for v in row.values())
    assert set(results["editing"]["follow_edit"]) == set(METHODS) and results["editing"]["questions"] > 0
    assert results["teacher"] == REFERENCE_TEACHER and REFERENCE_TEACHER in (out / "results.md").read_text()
    assert all(json.loads(line)["model"] == REFERENCE_TEACHER for line in (out / "rationales.jsonl").read_text().splitlines())
    assert "| method | accuracy [95% CI] |" in (out / "results.md").read_text()
    assert "KARD (reranker)" in printed and "peak" in printed
    pytest.importorskip("matplotlib")
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a rerun skips the finished stages: no student is trained again
    stamps = {m: (out / f"student_{m}" / "final" / "model.safetensors").stat().st_mtime_ns for m in ("ft", "rd", "kard")}
    assert kard(["demo", "--size", "tiny", "--out", str(out), "-n", "3"]) == 0
    assert stamps == {m: (out / f"student_{m}" / "final" / "model.safetensors").stat().st_mtime_ns for m in ("ft", "rd", "kard")}
    assert json.loads((out / "results.json").read_text())["methods"] == results["methods"]
