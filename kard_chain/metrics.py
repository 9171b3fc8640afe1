"""The figures kard reports: accuracy intervals, recall@k of wanted passages, hits@k of a gold candidate."""

from __future__ import annotations

import math
from collections.abc import Sequence


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for z = 1.96); (0, 1) when total is 0. It contains the
    proportion even where rounding would leave it out (6/6 computes an upper end of 0.9999999999999999)."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def recall_at_k(found: Sequence[Sequence[str]], wanted: Sequence[Sequence[str]], k: int) -> float:
    """Mean share of each query's wanted passage ids among its first ``k`` retrieved ids."""
    shares = [sum(i in set(ids[:k]) for i in w) / len(w) for ids, w in zip(found, wanted)]
    return sum(shares) / max(len(shares), 1)


def hits(rankings: Sequence[Sequence[int]], gold: Sequence[int], ks=(1, 3, 5)) -> dict[str, float]:
    """Hits@k: the share of sets whose gold position is among the first k of the ranking."""
    return {f"hits@{k}": sum(g in r[:k] for r, g in zip(rankings, gold)) / max(len(gold), 1) for k in ks}
