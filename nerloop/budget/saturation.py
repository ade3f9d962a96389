"""The saturation point of the budget curve: where more expert sentences stop paying."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT_SATURATION_THRESHOLD = 0.01
SATURATION_RULE = (
    "the smallest budget b such that, for every larger budget b' in the grid, the mean dev F1 "
    "gained per 100 extra expert sentences, 100 * (F1(b') - F1(b)) / (n(b') - n(b)), is below "
    "the threshold; the recommended starting budget is that b (the largest budget when no "
    "budget qualifies: then the curve has not saturated within the grid)"
)


def find_saturation(
    rows: Sequence[dict[str, Any]], threshold: float = DEFAULT_SATURATION_THRESHOLD
) -> dict[str, Any]:
    """The saturation point of one F1 curve (rows of one expert weight) by ``SATURATION_RULE``.

    rows (Sequence[dict]): ``summarise_runs`` rows with ``budget_pct``, ``n_expert``, ``f1_mean``.
    threshold (float): Dev F1 (0-1 scale) per 100 expert sentences below which more sentences
        are not worth it.
    RETURNS (dict): ``reached``, the saturation and recommended budgets (percent and sentences),
        the gain per 100 sentences of each step of the curve, the rule and the threshold.
    """
    curve = sorted(rows, key=lambda r: (r["n_expert"], r["budget_pct"]))
    steps = [
        {
            "from_budget_pct": a["budget_pct"],
            "to_budget_pct": b["budget_pct"],
            "gain_per_100": (
                100.0 * (b["f1_mean"] - a["f1_mean"]) / (b["n_expert"] - a["n_expert"])
                if b["n_expert"] > a["n_expert"]
                else None
            ),
        }
        for a, b in zip(curve, curve[1:])
    ]
    result: dict[str, Any] = {
        "rule": SATURATION_RULE,
        "threshold_f1_per_100_sentences": threshold,
        "steps": steps,
        "reached": False,
        "saturation_budget_pct": None,
        "saturation_n_expert": None,
        "recommended_budget_pct": None,
        "recommended_n_expert": None,
    }
    if len(curve) < 2:
        result["note"] = "the rule needs at least two budgets: no recommendation"
        return result
    chosen = None
    for i, row in enumerate(curve[:-1]):
        gains = [
            100.0 * (later["f1_mean"] - row["f1_mean"]) / (later["n_expert"] - row["n_expert"])
            for later in curve[i + 1 :]
            if later["n_expert"] > row["n_expert"]
        ]
        if gains and max(gains) < threshold:
            chosen = row
            break
    if chosen is None:
        recommended = curve[-1]
        result["note"] = (
            "no budget qualifies: F1 still gains at least the threshold per 100 sentences up to "
            "the largest budget, so extend the grid"
        )
    else:
        recommended = chosen
        result["reached"] = True
        result["saturation_budget_pct"] = chosen["budget_pct"]
        result["saturation_n_expert"] = chosen["n_expert"]
    result["recommended_budget_pct"] = recommended["budget_pct"]
    result["recommended_n_expert"] = recommended["n_expert"]
    return result
