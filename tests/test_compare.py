from __future__ import annotations

import pytest

from nerloop.eval.compare import compare_predictions, f1_from_counts, sentence_counts
from nerloop.eval.metrics import entity_scores

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"], ["O", "B-MISC"], ["B-LOC", "O"]] * 25


def test_counts_give_the_seqeval_f1() -> None:
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"], ["O", "O"], ["B-PER", "O"]] * 25
    counts = sentence_counts(GOLD, pred, ["PER", "LOC", "ORG", "MISC"])
    assert float(f1_from_counts(counts[:, -1].sum(0))) == pytest.approx(
        entity_scores(GOLD, pred)["f1"]
    )
    # PER: predicted 2 per block (one wrong span, one wrong type), gold 1, tp 0
    assert counts[:, 0].sum(0).tolist() == [0, 50, 25]


def test_identical_models_have_a_zero_interval() -> None:
    result = compare_predictions(GOLD, GOLD, GOLD, n_resamples=200, seed=1)
    assert result["per_type_f1"]["micro"] == {"a": 1.0, "b": 1.0, "diff": 0.0}
    assert result["bootstrap"]["ci95_low"] == result["bootstrap"]["ci95_high"] == 0.0


def test_better_model_has_a_positive_interval_and_same_seed_same_result() -> None:
    worse = [["O", "O", "O", "B-LOC"], ["B-ORG", "O"], ["O", "O"], ["B-LOC", "O"]] * 25
    result = compare_predictions(GOLD, worse, GOLD, n_resamples=300, seed=7)
    assert result["per_type_f1"]["PER"]["diff"] == pytest.approx(1.0)
    assert result["per_type_f1"]["LOC"]["diff"] == pytest.approx(0.0)
    assert 0 < result["bootstrap"]["ci95_low"] <= result["bootstrap"]["ci95_high"]
    assert result["bootstrap"]["p_b_not_better"] == 0.0
    again = compare_predictions(GOLD, worse, GOLD, n_resamples=300, seed=7)
    assert again["bootstrap"] == result["bootstrap"]
