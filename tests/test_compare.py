from __future__ import annotations

import pytest
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from nerloop.errors import NerloopError
from nerloop.eval.compare import compare_predictions, f1_from_counts, sentence_counts
from nerloop.eval.metrics import EvaluationError, doc_entity_scores, doc_to_iob2, entity_scores

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


def test_doc_to_iob2_separates_adjacent_entities_and_reads_unset_tokens_as_o() -> None:
    doc = Doc(Vocab(), words=["Peter", "Paul", "Mary", "in", "New", "York"])
    doc.set_ents(
        [Span(doc, 0, 1, label="PER"), Span(doc, 1, 3, label="PER"), Span(doc, 4, 6, "LOC")],
        default="missing",
    )
    assert doc_to_iob2(doc) == ["B-PER", "B-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    assert doc_to_iob2(Doc(Vocab(), words=["no", "entities"])) == ["O", "O"]


def test_unscorable_inputs_are_evaluation_errors() -> None:
    with pytest.raises(EvaluationError, match="2 gold sentences but 1 predicted"):
        entity_scores(GOLD[:2], GOLD[:1])
    with pytest.raises(EvaluationError, match="sentence 1: 2 gold tags but 1 predicted"):
        entity_scores(GOLD[:2], [GOLD[0], ["O"]])
    gold, pred = Doc(Vocab(), words=["a", "b"]), Doc(Vocab(), words=["a", "c"])
    with pytest.raises(EvaluationError, match="doc 0: gold and predicted tokens differ"):
        doc_entity_scores([gold], [pred])
    assert issubclass(EvaluationError, NerloopError) and issubclass(EvaluationError, ValueError)


def test_doc_to_iob2_equals_spacys_biluo_conversion() -> None:
    """The per-token reading gives spaCy's own conversion, on random entity layouts."""
    import random

    from spacy.tokens import Span
    from spacy.training import biluo_to_iob, offsets_to_biluo_tags

    rng = random.Random(0)
    vocab = Vocab()
    for _ in range(300):
        n = rng.randint(1, 12)
        doc = Doc(vocab, words=[f"w{i}" for i in range(n)])
        spans, start = [], 0
        while start < n:
            length = rng.randint(1, 3)
            if rng.random() < 0.4 and start + length <= n:
                spans.append(Span(doc, start, start + length, label=rng.choice(["PER", "LOC"])))
            start += length
        doc.set_ents(spans, default="outside" if rng.random() < 0.5 else "unmodified")
        offsets = [(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents]
        assert doc_to_iob2(doc) == biluo_to_iob(offsets_to_biluo_tags(doc, offsets))
