"""Query strategies, batch selection and pool scoring (scripts/al/, scripts/score.py): exact
scores and orderings on hand-made probability arrays, MC dropout on a tiny trained tagger."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy
import pytest
import typer
from spacy.language import Language
from spacy.tokens import Span
from typer.testing import CliRunner

from nerloop.al.scoring import LlmLabelsError, predict_pool, score_pool
from nerloop.al.selection import EmptyPoolError, jaccard, select_batch
from nerloop.al.strategies import (
    BALD,
    STRATEGIES,
    EntropyPerToken,
    LlmDisagreement,
    MissingLlmLabelsError,
    MissingSamplesError,
    PoolPredictions,
    UnknownStrategyError,
    make_strategy,
)
from nerloop.errors import SettingsError
from nerloop.eval.metrics import doc_to_iob2
from nerloop.io_utils import read_docbin
from nerloop.training import finetune, init_pipeline, save_pipeline
from scripts import score as score_cli
from tests.tiny_corpus import cheap_docs, gold_docs, write_tiny_corpus

ROOT = Path(__file__).parent.parent
TINY_CONFIG = ROOT / "configs" / "tagger_tiny.cfg"

UNIFORM = [1 / 3, 1 / 3, 1 / 3]
PEAKED = [0.98, 0.01, 0.01]


def pool_of(sentences: list[list[list[float]]], samples=None, round: int = 0) -> PoolPredictions:
    """Predictions with the argmax path (columns: O, B-PER, I-PER)."""
    probs = [numpy.asarray(s, dtype=numpy.float64).reshape(-1, 3) for s in sentences]
    return PoolPredictions(
        sent_ids=list(range(len(probs))),
        probs=probs,
        paths=[p.argmax(axis=1) for p in probs],
        samples=samples,
        round=round,
    )


def h(*p: float) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


# Four sentences on which the strategies disagree:
# S0: one tie between two tags, one certain token; S1: two fairly sure tokens;
# S2: one very unsure token; S3: ten sure tokens (long: the sequence probability is low).
HAND_MADE = [
    [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]],
    [[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]],
    [[0.4, 0.35, 0.25]],
    [[0.9, 0.05, 0.05]] * 10,
]
EXPECTED = {
    "entropy": [h(0.5, 0.5) / 2, h(0.7, 0.2, 0.1), h(0.4, 0.35, 0.25), h(0.9, 0.05, 0.05)],
    "max-entropy": [h(0.5, 0.5), h(0.7, 0.2, 0.1), h(0.4, 0.35, 0.25), h(0.9, 0.05, 0.05)],
    "least-confidence": [1 - 0.5, 1 - 0.7**2, 1 - 0.4, 1 - 0.9**10],
    "margin": [1.0, 1 - 0.5, 1 - 0.05, 1 - 0.85],
    "mnlp": [-math.log(0.5) / 2, -math.log(0.7), -math.log(0.4), -math.log(0.9)],
    # sum of the token entropies / (tokens + 2 tokens of reading overhead)
    "entropy-per-token": [
        h(0.5, 0.5) / (2 + 2),
        2 * h(0.7, 0.2, 0.1) / (2 + 2),
        h(0.4, 0.35, 0.25) / (1 + 2),
        10 * h(0.9, 0.05, 0.05) / (10 + 2),
    ],
}
# Most uncertain first.
EXPECTED_ORDER = {
    "entropy": [2, 1, 3, 0],
    "max-entropy": [2, 1, 0, 3],
    "least-confidence": [3, 2, 1, 0],
    "margin": [0, 2, 1, 3],
    "mnlp": [2, 1, 0, 3],
    "entropy-per-token": [1, 2, 3, 0],  # the overhead puts the one-token S2 behind S1
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_strategies_score_hand_made_arrays_exactly(name: str) -> None:
    scores = make_strategy(name).score(pool_of(HAND_MADE))
    numpy.testing.assert_allclose(scores, EXPECTED[name], rtol=1e-9)
    assert numpy.argsort(-scores, kind="stable").tolist() == EXPECTED_ORDER[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_uniform_row_is_more_uncertain_than_a_peaked_one(name: str) -> None:
    scores = make_strategy(name).score(pool_of([[UNIFORM], [PEAKED], [PEAKED, PEAKED]]))
    assert scores[0] > scores[1] > 0.0
    assert scores[0] > scores[2] > 0.0


def test_an_empty_sentence_scores_zero() -> None:
    pool = pool_of([[UNIFORM], []])
    for name in EXPECTED:
        assert make_strategy(name).score(pool)[1] == 0.0


def test_bald_is_zero_when_all_samples_agree_and_ln2_when_they_split() -> None:
    agree = numpy.asarray([[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]] * 5)  # (T=5, 2 tokens, 3 tags)
    split = numpy.asarray([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])  # (T=2, 1 token)
    pool = pool_of(
        [agree.mean(axis=0).tolist(), split.mean(axis=0).tolist()], samples=[agree, split]
    )
    scores = BALD(mc_samples=5, mc_dropout=0.2).score(pool)
    assert abs(scores[0]) < 1e-12
    assert scores[1] == pytest.approx(math.log(2))
    with pytest.raises(MissingSamplesError, match="Monte Carlo"):
        BALD().score(pool_of([[UNIFORM]]))


def test_random_baseline_is_seeded_per_sentence_id_and_round() -> None:
    strategy = make_strategy("random", seed=3)
    pool = PoolPredictions(sent_ids=[5, 9, 2], probs=[numpy.zeros((0, 3))] * 3, paths=[[]] * 3)
    shuffled = PoolPredictions(sent_ids=[2, 5], probs=pool.probs[:2], paths=pool.paths[:2])
    first = strategy.score(pool)
    assert first.tolist() == make_strategy("random", seed=3).score(pool).tolist()
    assert strategy.score(shuffled).tolist() == [first[2], first[0]]
    pool.round = 1
    assert strategy.score(pool).tolist() != first.tolist()
    assert make_strategy("random", seed=4).score(shuffled).tolist() != [first[2], first[0]]


def test_entropy_per_token_overhead() -> None:
    pool = pool_of(HAND_MADE)
    no_overhead = EntropyPerToken(sentence_overhead_tokens=0).score(pool)
    numpy.testing.assert_allclose(no_overhead, EXPECTED["entropy"], rtol=1e-9)  # the mean
    scores = make_strategy("entropy-per-token", sentence_overhead_tokens=8).score(pool)
    assert scores[3] == pytest.approx(10 * h(0.9, 0.05, 0.05) / 18)
    assert numpy.argsort(-scores, kind="stable").tolist() == [3, 1, 2, 0]
    with pytest.raises(SettingsError, match="sentence_overhead_tokens must not be negative"):
        EntropyPerToken(sentence_overhead_tokens=-1)


def test_llm_disagreement_weights_each_disagreement_by_the_models_confidence() -> None:
    pool = pool_of(HAND_MADE + [[]])  # paths: the argmax, i.e. tag 0 (O) everywhere
    pool.llm_tags = [
        numpy.asarray([1, 0]),  # S0: disagrees on the tie (p = 0.5), agrees on the sure token
        numpy.asarray([0, 2]),  # S1: disagrees on the second token (p = 0.7)
        numpy.asarray([0]),  # S2: agrees, however unsure the model is
        numpy.asarray([1] + [0] * 9),  # S3: one disagreement (p = 0.9) in ten tokens
        numpy.zeros(0, dtype=int),  # empty
    ]
    scores = LlmDisagreement().score(pool)
    numpy.testing.assert_allclose(scores, [0.5 / 2, 0.7 / 2, 0.0, 0.9 / 10, 0.0], rtol=1e-12)
    assert str(make_strategy("llm-disagreement")) == "LlmDisagreement()"
    with pytest.raises(ValueError, match="sentence 1: 1 LLM tags for 2 tokens"):
        PoolPredictions(
            sent_ids=[0, 1],
            probs=pool.probs[:2],
            paths=pool.paths[:2],
            llm_tags=[numpy.asarray([1, 0]), numpy.asarray([0])],
        )


def test_llm_disagreement_without_llm_labels_is_a_clear_error() -> None:
    with pytest.raises(MissingLlmLabelsError) as error:
        make_strategy("llm-disagreement").score(pool_of(HAND_MADE))
    assert str(error.value) == (
        "LlmDisagreement() needs the LLM's labels of the pool sentences, and this pool has none: "
        "use it where experts relabel LLM-labelled sentences ([mix] pool = cheap)"
    )


def test_strategy_names_and_errors() -> None:
    assert sorted(STRATEGIES) == sorted(
        ["entropy", "max-entropy", "least-confidence", "margin", "mnlp", "bald", "random"]
        + ["entropy-per-token", "llm-disagreement"]
    )
    assert str(make_strategy("entropy-per-token", sentence_overhead_tokens=3)) == (
        "EntropyPerToken(sentence_overhead_tokens=3.0)"
    )
    assert str(make_strategy("entropy")) == "MeanTokenEntropy()"
    assert str(make_strategy("bald", mc_samples=4, mc_dropout=0.3)) == (
        "BALD(mc_samples=4, mc_dropout=0.3)"
    )
    assert str(make_strategy("random", seed=7)) == "RandomSampling(seed=7)"
    with pytest.raises(UnknownStrategyError, match="'entropi'"):
        make_strategy("entropi")
    with pytest.raises(ValueError, match="at least 2"):
        BALD(mc_samples=1)


# --- selection ---------------------------------------------------------------------------------


def test_selection_skips_repeated_token_sequences_and_breaks_ties_by_id() -> None:
    tokens = {
        1: ["-DOCSTART-"],
        2: ["SOCCER", "-", "RESULTS", "."],
        3: ["LONDON", "1996-08-30"],
        4: ["SOCCER", "-", "RESULTS", "."],
        5: ["LONDON", "1996-08-30"],
        6: ["Peter", "Blackburn"],
    }
    ids = [6, 5, 4, 3, 2, 1]
    scores = [0.1, 0.9, 0.9, 0.9, 0.9, 0.5]
    chosen = select_batch(ids, scores, [tokens[i] for i in ids], 4)
    assert chosen == [2, 3, 1, 6]  # 4 and 5 repeat 2 and 3; ties go to the smaller id
    assert select_batch(ids, scores, [tokens[i] for i in ids], 10) == [2, 3, 1, 6]


def test_selection_diversity_passes_over_similar_sentences_then_fills() -> None:
    tokens = [
        ["Bonn", "beats", "Paris", "2-1"],
        ["Bonn", "beats", "Paris", "3-1"],  # Jaccard 3/5 = 0.6 with the first
        ["Rain", "in", "Spain"],
    ]
    ids, scores = [10, 11, 12], [0.9, 0.8, 0.1]
    assert jaccard(frozenset(tokens[0]), frozenset(tokens[1])) == pytest.approx(0.6)
    assert select_batch(ids, scores, tokens, 2) == [10, 11]
    assert select_batch(ids, scores, tokens, 2, max_jaccard=0.5) == [10, 12]
    assert select_batch(ids, scores, tokens, 2, max_jaccard=0.6) == [10, 11]
    assert select_batch(ids, scores, tokens, 3, max_jaccard=0.5) == [10, 12, 11]


# id: (score, words); 5 repeats 2's words with a higher score, 3 and 4 tie
TOKEN_POOL = {
    1: (0.9, "a b c d e f g h"),
    2: (0.8, "i j k"),
    3: (0.7, "l m n o p"),
    4: (0.7, "q r s t"),
    5: (0.95, "i j k"),
    6: (0.1, "u v"),
}


def select_tokens(budget: int, ids: list[int] | None = None, **options) -> list[int]:
    ids = ids or [6, 5, 4, 3, 2, 1]
    scores = [TOKEN_POOL[i][0] for i in ids]
    tokens = [TOKEN_POOL[i][1].split() for i in ids]
    return select_batch(ids, scores, tokens, budget, budget_unit="tokens", **options)


def test_token_budget_fills_greedily_by_score_and_never_exceeds_the_budget() -> None:
    # 5 (3 tokens); 1 (8) does not fit in the 7 left; 2 repeats 5; 3 (5); 4 (4) does not fit in
    # the 2 left; 6 (2) does: exactly 10 tokens
    assert select_tokens(10) == [5, 3, 6]
    assert select_tokens(10, ids=[1, 2, 3, 4, 5, 6]) == [5, 3, 6]  # the order given is no matter
    assert select_tokens(11) == [5, 1]
    assert select_tokens(12) == [5, 1]  # 3 left: 4 tokens is one too many
    assert select_tokens(15) == [5, 1, 4]  # 3 and 4 tie: 3 (smaller id) first, but 5 > 4 left
    assert select_tokens(2) == [6]  # the only sentence that fits
    assert select_tokens(1) == [5]  # none fits: the best one alone
    assert select_tokens(100) == [5, 1, 3, 4, 6]  # every distinct sentence, 22 tokens
    # the sentence unit is unchanged
    ids = [6, 5, 4, 3, 2, 1]
    scores, tokens = [TOKEN_POOL[i][0] for i in ids], [TOKEN_POOL[i][1].split() for i in ids]
    assert select_batch(ids, scores, tokens, 3) == [5, 1, 3]
    assert select_batch(ids, scores, tokens, 3, budget_unit="sentences") == [5, 1, 3]


def test_token_budget_keeps_the_diversity_rule() -> None:
    tokens = [
        ["Bonn", "beats", "Paris", "2-1"],
        ["Bonn", "beats", "Paris", "3-1"],  # Jaccard 0.6 with the first
        ["Rain", "in", "Spain"],
        ["Snow"],
    ]
    ids, scores = [10, 11, 12, 13], [0.9, 0.8, 0.1, 0.05]
    tokens_budget = {"budget_unit": "tokens", "max_jaccard": 0.5}
    assert select_batch(ids, scores, tokens, 8, budget_unit="tokens") == [10, 11]
    assert select_batch(ids, scores, tokens, 8, **tokens_budget) == [10, 12, 13]
    assert select_batch(ids, scores, tokens, 11, **tokens_budget) == [10, 12, 13]  # 11 won't fit
    assert select_batch(ids, scores, tokens, 12, **tokens_budget) == [10, 12, 13, 11]


def test_token_budget_holds_on_a_random_pool() -> None:
    rng = numpy.random.default_rng(0)
    words = [[f"w{j}" for j in rng.integers(0, 30, size=rng.integers(1, 15))] for _ in range(60)]
    words[7] = list(words[3])  # a repeat
    ids, scores = list(range(60)), rng.random(60).round(2).tolist()  # rounded: ties
    for budget in range(1, 120):
        chosen = select_batch(ids, scores, words, budget, budget_unit="tokens")
        spent = sum(len(words[i]) for i in chosen)
        assert spent <= budget or len(chosen) == 1, budget
        assert len({tuple(words[i]) for i in chosen}) == len(chosen)
        left = budget - spent
        picked = {tuple(words[i]) for i in chosen}
        assert all(
            len(words[i]) > left for i in ids if i not in chosen and tuple(words[i]) not in picked
        ), budget  # greedy: nothing that was passed by would still fit
        assert chosen == select_batch(
            ids[::-1], scores[::-1], words[::-1], budget, budget_unit="tokens"
        )


def test_selection_errors() -> None:
    with pytest.raises(EmptyPoolError, match="empty"):
        select_batch([], [], [], 3)
    with pytest.raises(ValueError, match="NaN"):
        select_batch([1, 2], [0.1, float("nan")], [["a"], ["b"]], 1)
    with pytest.raises(SettingsError, match="budget_unit must be one of"):
        select_batch([1], [0.1], [["a"]], 1, budget_unit="words")


# --- scoring a pool with a trained tagger ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Language, Path, Path]:
    base = tmp_path_factory.mktemp("al_strategies")
    paths = write_tiny_corpus(base / "corpus")
    train = read_docbin(paths["gold"])[:12]
    nlp = init_pipeline(TINY_CONFIG, train, seed=0)
    finetune(nlp, train, read_docbin(paths["dev"]), epochs=3, progress=False)
    model_path = save_pipeline(nlp, base / "model")
    return nlp, model_path, paths["gold"]


def test_mc_dropout_passes_differ_and_give_bald_a_positive_score(tiny_model) -> None:
    nlp = tiny_model[0]
    docs = gold_docs(4)
    sampled = predict_pool(nlp, docs, mc_samples=4, mc_dropout=0.3, seed=0, progress=False)
    assert [s.shape[:2] for s in sampled.samples] == [(4, 5), (4, 6), (4, 7), (4, 5)]
    assert not numpy.allclose(sampled.samples[0][0], sampled.samples[0][1])
    again = predict_pool(nlp, docs, mc_samples=4, mc_dropout=0.3, seed=0, progress=False)
    numpy.testing.assert_array_equal(again.samples[2], sampled.samples[2])  # seeded
    assert (BALD(4, 0.3).score(sampled) > 0).all()
    still = predict_pool(nlp, docs, mc_samples=3, mc_dropout=0.0, progress=False)
    assert numpy.abs(BALD(3, 0.3).score(still)).max() < 1e-6
    deterministic = predict_pool(nlp, docs, progress=False)
    numpy.testing.assert_allclose(still.probs[1], deterministic.probs[1], atol=1e-6)


def test_score_pool_rows_rank_the_pool(tiny_model) -> None:
    nlp = tiny_model[0]
    scored = score_pool(nlp, gold_docs(8), make_strategy("entropy"), progress=False)
    rows = scored.rows(top_tokens=2)
    assert [row["rank"] for row in rows] == list(range(1, 9))
    assert sorted(row["sent_id"] for row in rows) == list(range(8))
    assert all(a["score"] >= b["score"] for a, b in zip(rows, rows[1:]))
    first = rows[0]
    assert first["tokens"] == [t.text for t in gold_docs(8)[first["sent_id"]]]
    assert len(first["tags"]) == len(first["tokens"]) and len(first["uncertain_tokens"]) == 2
    top = first["uncertain_tokens"][0]
    assert top["token"] == first["tokens"][top["index"]]
    assert top["entropy"] >= first["uncertain_tokens"][1]["entropy"]
    # entropy: the score is the mean of the token entropies
    position = scored.sent_ids.index(first["sent_id"])
    assert first["score"] == pytest.approx(float(scored.token_entropies[position].mean()))
    stats = scored.stats()
    assert stats["n_sentences"] == 8 and stats["sentences_per_second"] > 0


def test_score_cli_writes_jsonl_and_throughput(tiny_model, tmp_path: Path) -> None:
    _, model_path, pool_path = tiny_model
    app = typer.Typer()
    app.command()(score_cli.main)
    output, stats = tmp_path / "scores.jsonl", tmp_path / "stats.json"
    args = [str(model_path), str(pool_path), "--strategy", "margin", "--output", str(output)]
    result = CliRunner().invoke(app, args + ["--stats", str(stats), "--limit", "10"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 10 and rows[0]["rank"] == 1
    assert set(rows[0]) == {"sent_id", "rank", "score", "tokens", "tags", "uncertain_tokens"}
    info = json.loads(stats.read_text())
    assert info["strategy"] == "SmallestMargin()" and info["n_sentences"] == 10
    assert info["sentences_per_second"] > 0
    bad = CliRunner().invoke(app, args[:2] + ["-s", "nope", "-o", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 1 and not (tmp_path / "bad.jsonl").exists()


def test_the_llm_tags_come_from_the_cheap_docs(tiny_model) -> None:
    nlp = tiny_model[0]
    docs, llm_docs = gold_docs(4), cheap_docs([0, 1, 2, 3])
    predictions = predict_pool(nlp, docs, llm_docs=llm_docs, progress=False)
    tag_names = nlp.get_pipe("bio_ner").tag_names
    assert [[tag_names[i] for i in tags] for tags in predictions.llm_tags] == [
        doc_to_iob2(doc) for doc in llm_docs
    ]
    assert [tag_names[i] for i in predictions.llm_tags[0]] == ["B-PER", "I-PER", "O", "B-ORG", "O"]
    assert predict_pool(nlp, docs, progress=False).llm_tags is None
    scored = score_pool(nlp, docs, make_strategy("llm-disagreement"), llm_docs=llm_docs)
    expected = [
        float(numpy.mean(p[numpy.arange(len(y)), y] * (llm != y)))
        for p, y, llm in zip(
            predictions.probs, predictions.paths, predictions.llm_tags, strict=True
        )
    ]
    numpy.testing.assert_allclose(scored.scores, expected, rtol=1e-6)


def test_llm_labels_errors_in_the_scoring_path(tiny_model) -> None:
    nlp = tiny_model[0]
    with pytest.raises(MissingLlmLabelsError, match=r"\[mix\] pool = cheap"):
        score_pool(nlp, gold_docs(2), make_strategy("llm-disagreement"), progress=False)
    with pytest.raises(LlmLabelsError, match="sentence 1: the LLM-labelled Doc has other words"):
        predict_pool(nlp, gold_docs(2), llm_docs=cheap_docs([0, 2]), progress=False)
    unknown = cheap_docs([0])
    unknown[0].set_ents([Span(unknown[0], 0, 1, label="FOOD")], default="outside")
    with pytest.raises(LlmLabelsError, match=r"LLM tags \['B-FOOD'\] are not tags of the tagger"):
        predict_pool(nlp, gold_docs(1), llm_docs=unknown, progress=False)
