"""The figures README and docs/ quote from runs, recomputed from the per-example records those runs wrote
(committed under docs/runs/ by tools/snapshot_run.py): the tables must be what the records give."""

import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest

from tests.unit_tests.figures import claim_row, demo_rows, readme_rows, recompute, retrieval_rows

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted(p for p in (ROOT / "docs" / "runs").iterdir() if p.is_dir())


def load(run: Path) -> tuple[dict, dict[str, dict[str, dict]]]:
    by_stage: dict[str, dict[str, dict]] = defaultdict(dict)
    for line in gzip.decompress((run / "records.jsonl.gz").read_bytes()).decode().splitlines():
        record = json.loads(line)
        by_stage[record.pop("stage")][record["id"]] = record
    return json.loads((run / "results.json").read_text()), by_stage


def runs(prefix: str) -> list[dict]:
    found = [load(r)[0] for r in RUNS if r.name.startswith(prefix)]
    assert found, f"no committed run named {prefix}*"
    return found


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_every_figure_of_a_committed_run_is_its_records(run):
    results, by_stage = load(run)
    assert set(by_stage) == {name for name in results["stages"] if name.startswith(("eval-", "edit-")) and name != "edit-index"}
    recompute(results, lambda stage: by_stage[stage])


def test_the_demo_tables_in_docs_are_the_committed_runs():
    page = (ROOT / "docs" / "results-demo.md").read_text()
    for results in runs("demo-small-"):
        for line in demo_rows(results) + retrieval_rows(results):
            assert line in page, f"docs/results-demo.md lacks, or has other figures than, {line}"
    for results in runs("demo-mini-"):
        assert claim_row(results) in page, f"docs/results-demo.md lacks, or has other figures than, {claim_row(results)}"


def test_readme_results_table_is_the_committed_runs():
    table = "\n".join(readme_rows(runs("demo-small-")))
    assert table in (ROOT / "README.md").read_text(), f"README's results table should read:\n{table}"


def test_the_bm25_tables_in_docs_are_the_committed_benchmark():
    """docs/scale.md's BM25 tables are what benchmarks/bm25_bench.py --tables prints from the committed figures."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bm25_bench", ROOT / "benchmarks" / "bm25_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = json.loads(gzip.decompress((ROOT / "docs" / "runs" / "bm25-bench.json.gz").read_bytes()))
    assert {r["system"] for r in results} >= {"kard", "lucene (Pyserini 0.22.1)"}
    assert all(s["exact"] for r in results if r["system"] == "kard" for s in r["sets"].values())
    page = (ROOT / "docs" / "scale.md").read_text()
    for table in bench.tables(results):
        for line in table.splitlines():
            assert line in page, f"docs/scale.md lacks, or has other figures than, {line}"
