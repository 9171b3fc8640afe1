"""Every figure a demo run reports, recomputed from the per-example records its evaluations wrote: used on a live
run (test_demo) and on the runs whose figures README and docs/ quote (test_quoted_figures)."""

from collections.abc import Callable

import pytest

from kard_chain.demo.world import build_world, edit_world
from kard_chain.metrics import wilson_interval
from kard_chain.recipe.stages import LABELS

METHODS = [LABELS[m] for m in ("ft", "rd", "bm25", "bm25+draft", "bm25+bridge", "reranker", "reranker+bridge")]
STAGE = dict(zip(METHODS, ("ft", "rd", "kard-bm25", "kard-bm25-draft", "kard-bm25-bridge", "kard-reranker", "kard-reranker-bridge")))


def recompute(results: dict, records: Callable[[str], dict[str, dict]]) -> None:
    """``results``: a demo run's ``results.json``; ``records(stage)``: that evaluation's records by question id
    (``eval-kard-reranker``, ``edit-ft``, ...)."""
    recipe = results["recipe"]
    world = build_world(recipe["dataset"]["size"], seed=recipe["seed"])

    def per_example(method, edited=False):
        return records(("edit-" if edited else "eval-") + STAGE[method])

    types = {e.id: e.metadata["type"] for e in world.test}
    for method, row in results["methods"].items():
        recs = per_example(method)
        assert set(recs) == {e.id for e in world.test}
        correct = sum(r["correct"] for r in recs.values())
        assert all(r["correct"] == (r["answer"] == r["gold"]) for r in recs.values())
        assert row["accuracy"] == pytest.approx(correct / len(recs)) and row["ci95"] == pytest.approx(list(wilson_interval(correct, len(recs))))
        for kind in set(types.values()):
            mine = [r["correct"] for i, r in recs.items() if types[i] == kind]
            assert row["by_type"][kind]["accuracy"] == pytest.approx(sum(mine) / len(mine))
    k = recipe["students"]["reading"]["k"]
    served = [label for label in results["methods"] if label.startswith("KARD")]
    assert served and set(served) <= set(results["retrieval"])
    for label in served:
        recs = per_example(label)
        first_ids = [len(set(recs[e.id]["passage_ids"][:1]) & set(e.evidence_ids)) / len(e.evidence_ids) for e in world.test]
        assert results["retrieval"][label]["recall@1"] == pytest.approx(sum(first_ids) / len(first_ids))
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
    if not {"KARD (BM25)", "KARD (reranker)"} <= set(served):
        return
    bm25, reranked = per_example("KARD (BM25)"), per_example("KARD (reranker)")
    changed = sum(bm25[i]["passage_ids"] != reranked[i]["passage_ids"] for i in bm25)  # the reranker changed what was read
    assert changed >= len(bm25) // 4, changed  # for many questions, not one
    if not recipe["evaluation"]["editing"]:
        assert "editing" not in results
        return
    original_text = {p.id: p.text for p in world.passages}
    passages, new_gold = edit_world(world, seed=recipe["seed"] + 1)
    edited = {e.id for e in world.test if e.id in new_gold}
    assert results["editing"]["questions"] == len(edited)
    edited_text = {p.id: p.text for p in passages}
    for method, row in results["editing"]["follow_edit"].items():
        recs = per_example(method, edited=True)
        if all("passage_texts" in r for r in recs.values()):  # a live run's records (snapshots keep the ids only)
            read = [(i, t) for r in recs.values() for i, t in zip(r["passage_ids"], r["passage_texts"], strict=True)]
            if method.startswith("KARD"):  # the chains asked about the edits read the edited passages
                assert read and all(edited_text[i] == t for i, t in read)
                assert any(original_text[i] != t for i, t in read)
            else:
                assert read == []
        if not method.startswith("KARD"):
            assert all(not r["passage_ids"] for r in recs.values())
        assert set(recs) == edited and all(r["gold"] == new_gold[i] for i, r in recs.items())  # judged against the edit
        assert row["accuracy"] == pytest.approx(sum(r["answer"] == new_gold[i] for i, r in recs.items()) / len(recs))


def _f(x: float) -> str:
    return f"{x:.3f}"


def demo_rows(results: dict) -> list[str]:
    """The demo table's rows for one run (docs/results-demo.md, "The demo")."""
    seed, follow = results["recipe"]["seed"], results["editing"]["follow_edit"]
    lines = []
    for label, row in results["methods"].items():
        t = row["by_type"]
        lines.append(f"| {label} | {seed} | {_f(row['accuracy'])} [{_f(row['ci95'][0])}, {_f(row['ci95'][1])}] | "
                     f"{_f(t['colour']['accuracy'])} | {_f(t['diet']['accuracy'])} / {_f(t['trade']['accuracy'])} | "
                     f"{_f(t['weather']['accuracy'])} | {_f(follow[label]['accuracy'])} |")
    return lines


def retrieval_rows(results: dict) -> list[str]:
    """What each KARD row read, for one run (docs/results-demo.md, "The demo")."""
    seed, k = results["recipe"]["seed"], results["recipe"]["students"]["reading"]["k"]
    keys = ("recall@1", "one-hop recall@1", f"recall@{k}", f"two-hop recall@{k}", f"second-hop recall@{k}")
    return [f"| {label} | {seed} | " + " | ".join(_f(results["retrieval"][label][key]) for key in keys) + " |"
            for label in results["methods"] if label.startswith("KARD")]


def claim_row(results: dict) -> str:
    """One seed's row of the claim table (docs/results-demo.md, "The claim in a minute")."""
    acc = {label: row["accuracy"] for label, row in results["methods"].items()}
    k = results["recipe"]["students"]["reading"]["k"]
    recall = {label: results["retrieval"][label][f"recall@{k}"] for label in ("KARD (BM25)", "KARD (reranker)")}
    margin = acc["KARD (reranker)"] - max(acc["FT"], acc["RD"])
    gain = recall["KARD (reranker)"] - recall["KARD (BM25)"]
    return (f"| {results['recipe']['seed']} | {_f(acc['FT'])} | {_f(acc['RD'])} | {_f(acc['KARD (BM25)'])} | "
            f"{_f(acc['KARD (reranker)'])} | {margin:+.3f} | {_f(recall['KARD (BM25)'])} | {_f(recall['KARD (reranker)'])} | {gain:+.3f} |")


def readme_rows(runs: list[dict]) -> list[str]:
    """README's results table: accuracy on unseen entities and edited knowledge followed, seeds side by side."""
    seeds = " / ".join(str(r["recipe"]["seed"]) for r in runs)
    lines = [f"| method (`kard demo --size small`, seeds {seeds}) | accuracy, unseen entities | follows edited knowledge |",
             "|---|---|---|"]
    for label in ("FT", "RD", "KARD (BM25)", "KARD (reranker, bridge)"):
        acc = " / ".join(_f(r["methods"][label]["accuracy"]) for r in runs)
        follow = " / ".join(_f(r["editing"]["follow_edit"][label]["accuracy"]) for r in runs)
        lines.append(f"| {label} | {acc} | {follow} |")
    return lines
