"""`kard demo` on a tiny world: every stage runs and the artefacts have their schema (under 2 minutes)."""

import importlib.util
import json

import pytest

pytest.importorskip("torch")

from kard_chain.cli import main as kard
from kard_chain.demo.run import REFERENCE_TEACHER
from kard_chain.demo.world import build_world, edit_world
from kard_chain.metrics import wilson_interval
from kard_chain.recipe.stages import LABELS

METHODS = [LABELS[m] for m in ("ft", "rd", "bm25", "bm25+draft", "bm25+bridge", "reranker", "reranker+bridge")]
STAGE = dict(zip(METHODS, ("ft", "rd", "kard-bm25", "kard-bm25-draft", "kard-bm25-bridge", "kard-reranker", "kard-reranker-bridge")))


def records(file):
    return {r["id"]: r for r in map(json.loads, file.read_text().splitlines())}


def stage_folder(out, name):
    """A stage's folder, as the run recorded it."""
    from pathlib import Path

    return Path(json.loads((out / "run.json").read_text())["stages"][name]["folder"])


def per_example(out, method, edited=False):
    return records(stage_folder(out, ("edit-" if edited else "eval-") + STAGE[method]) / "records.jsonl")


def recompute_from_per_example_files(out, results):
    """Every figure the demo reports, recomputed here from the records its evaluations wrote."""
    world = build_world("tiny", seed=0)
    types = {e.id: e.metadata["type"] for e in world.test}
    for method, row in results["methods"].items():
        recs = per_example(out, method)
        assert set(recs) == {e.id for e in world.test}
        correct = sum(r["correct"] for r in recs.values())
        assert all(r["correct"] == (r["answer"] == r["gold"]) for r in recs.values())
        assert row["accuracy"] == pytest.approx(correct / len(recs)) and row["ci95"] == pytest.approx(list(wilson_interval(correct, len(recs))))
        for kind in set(types.values()):
            mine = [r["correct"] for i, r in recs.items() if types[i] == kind]
            assert row["by_type"][kind]["accuracy"] == pytest.approx(sum(mine) / len(mine))
    k = results["recipe"]["students"]["reading"]["k"]
    for label in METHODS[2:]:
        recs = per_example(out, label)
        shares = [len(set(recs[e.id]["passage_ids"][:k]) & set(e.evidence_ids)) / len(e.evidence_ids) for e in world.test]
        assert results["retrieval"][label][f"recall@{k}"] == pytest.approx(sum(shares) / len(shares))
        one_hop = [e for e in world.test if e.metadata["hops"] == 1]
        first = [recs[e.id]["passage_ids"][:1] == e.evidence_ids for e in one_hop]
        assert results["retrieval"][label]["one-hop recall@1"] == pytest.approx(sum(first) / len(first))
        two_hop = [e for e in world.test if e.metadata.get("second_hop_disjoint")]
        both = [len(set(recs[e.id]["passage_ids"][:k]) & set(e.evidence_ids)) / len(e.evidence_ids) for e in two_hop]
        second = [len(set(recs[e.id]["passage_ids"][:k]) & set(e.evidence_ids[1:])) / len(e.evidence_ids[1:]) for e in two_hop]
        assert results["retrieval"][label][f"two-hop recall@{k}"] == pytest.approx(sum(both) / len(both))
        assert results["retrieval"][label][f"second-hop recall@{k}"] == pytest.approx(sum(second) / len(second))
    bm25, reranked = per_example(out, "KARD (BM25)"), per_example(out, "KARD (reranker)")
    changed = sum(bm25[i]["passage_ids"] != reranked[i]["passage_ids"] for i in bm25)  # the reranker changed what was read
    assert changed >= len(bm25) // 4, changed  # for many questions, not one
    original_text = {p.id: p.text for p in world.passages}
    passages, new_gold = edit_world(world, seed=1)
    edited = {e.id for e in world.test if e.id in new_gold}
    assert results["editing"]["questions"] == len(edited)
    edited_text = {p.id: p.text for p in passages}
    for method, row in results["editing"]["follow_edit"].items():
        recs = per_example(out, method, edited=True)
        read = [(i, t) for r in recs.values() for i, t in zip(r["passage_ids"], r["passage_texts"], strict=True)]
        if method.startswith("KARD"):  # the chains asked about the edits read the edited passages
            assert read and all(edited_text[i] == t for i, t in read)
            assert any(original_text[i] != t for i, t in read)
        else:
            assert read == []
        assert set(recs) == edited and all(r["gold"] == new_gold[i] for i, r in recs.items())  # judged against the edit
        assert row["accuracy"] == pytest.approx(sum(r["answer"] == new_gold[i] for i, r in recs.items()) / len(recs))


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
