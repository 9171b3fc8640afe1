"""Keep a finished run's figures with the docs that quote them: its ``results.json`` and, per evaluation, the
per-example records they were computed from (only the fields the figures need, gzipped).

    python tools/snapshot_run.py kard-demo-small docs/runs/demo-small-seed0

``tests/unit_tests/test_quoted_figures.py`` recomputes every figure of ``results.json`` from the records, and the
tables in README and ``docs/`` from ``results.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

from kard_chain.io import atomic_write_text

KEPT = ("id", "answer", "gold", "correct", "passage_ids")


def snapshot(run: Path, out: Path) -> None:
    results = json.loads((run / "results.json").read_text())
    stages = json.loads((run / "run.json").read_text())["stages"]
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in sorted(results.pop("per_example")):
        for line in (Path(stages[name]["folder"]) / "records.jsonl").read_text().splitlines():
            record = json.loads(line)
            lines.append(json.dumps({"stage": name, **{k: record[k] for k in KEPT if k in record}}, sort_keys=True))
    for stage in results.get("stages", {}).values():
        stage.pop("folder", None)  # a hashed folder name means nothing outside the run
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    partial = out / "records.jsonl.gz.partial"
    with partial.open("wb") as raw, gzip.GzipFile("records.jsonl", "wb", fileobj=raw, mtime=0) as f:  # the same run, the same bytes
        f.write(("\n".join(lines) + "\n").encode())
    os.replace(partial, out / "records.jsonl.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished kard run / kard demo output folder")
    parser.add_argument("out", type=Path, help="the snapshot's folder, under docs/runs/")
    args = parser.parse_args()
    snapshot(args.run, args.out)
    print(f"{args.out}: results.json, records.jsonl.gz ({(args.out / 'records.jsonl.gz').stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
