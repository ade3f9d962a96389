"""Cheap testing: F1 against LLM labels on held-out sentences, and how well it tracks gold F1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from nerloop.al.checkpoints import CheckpointStore, manifest
from nerloop.corpus import meta
from nerloop.eval.cheap_testing import (
    CheapTestError,
    ComparedModel,
    HeldOutOverlapError,
    al_run_models,
    cheap_f1,
    check_held_out,
    draw_held_out,
    parse_model_spec,
    read_held_out_ids,
    track,
    tracking_of,
    tracking_stats,
)
from nerloop.eval.metrics import docs_to_iob2
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.io_utils import write_docbin
from nerloop.training import DEV_KEYS
from scripts.cheap_test import app
from tests.cli_support import run_cli
from tests.tiny_tagger import SENTENCES, sentence_docs, train_tiny_tagger

HELD_OUT_FIRST_ID = 200  # the tiny sentences again, under ids the tagger did not train on
# An LLM's labels of the tiny sentences: against the gold entities (which the overfitted tagger
# predicts) 7 of its 10 entities match and the tagger predicts 11, so precision 7/11, recall
# 7/10 and F1 2 * 7 / (11 + 10) = 2/3.
LLM_ENTS = [
    [(0, 2, "PER"), (3, 4, "ORG")],  # Paris as ORG: 1 match
    [(1, 2, "ORG")],  # German MISC missed: 1 match
    [(0, 1, "PER"), (3, 4, "ORG"), (5, 6, "LOC")],  # 3 matches
    [(3, 4, "MISC")],  # "match" as MISC: 0 matches
    [(0, 1, "LOC"), (2, 3, "LOC")],  # 2 matches
    [(0, 1, "PER")],  # "Nadim" alone, Reuters missed: 0 matches
]


def held_out_docs(
    entities: list[list[tuple[int, int, str]]] | None, first_id: int = HELD_OUT_FIRST_ID
) -> list[Doc]:
    """The tiny sentences with ``entities`` (None: gold) and sentence ids from ``first_id``."""
    vocab = Vocab()
    docs = []
    for i, (words, gold) in enumerate(SENTENCES):
        doc = Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
        ents = gold if entities is None else entities[i]
        doc.set_ents([Span(doc, s, e, label=label) for s, e, label in ents], default="outside")
        meta.set_meta(doc, sent_id=first_id + i, split="train")
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tagger overfitted on the tiny sentences (ids 100-105), one barely trained, and the
    DocBins of a cheap test on the same sentences under ids 200-205."""
    base = tmp_path_factory.mktemp("cheap")
    model = train_tiny_tagger(base / "model")
    weak = train_tiny_tagger(base / "weak", max_epochs=1)
    paths = {
        "llm": write_docbin(base / "llm.spacy", held_out_docs(LLM_ENTS)),
        "gold": write_docbin(base / "gold.spacy", held_out_docs(None)),
        "dev": write_docbin(base / "dev.spacy", sentence_docs(split="dev")),
    }
    corpus = base / "model" / "corpus.spacy"  # what train_tiny_tagger trained on
    return {"base": base, "model": model, "weak": weak, "corpus": corpus, **paths}


def test_the_overfitted_tagger_predicts_the_gold_entities(tiny) -> None:
    nlp = load_pipeline(tiny["model"])
    predicted, _ = predict_with_probs(nlp, held_out_docs(None), progress=False)
    assert docs_to_iob2(predicted) == docs_to_iob2(held_out_docs(None))


def test_cheap_f1_is_the_seqeval_f1_against_the_llm_labels(tiny) -> None:
    nlp = load_pipeline(tiny["model"])
    scores = cheap_f1(nlp, held_out_docs(LLM_ENTS), train_ids=range(100, 106))
    assert scores == {
        "f1": pytest.approx(2 / 3),
        "precision": pytest.approx(7 / 11),
        "recall": pytest.approx(7 / 10),
    }
    assert cheap_f1(nlp, held_out_docs(None), train_ids=[])["f1"] == pytest.approx(1.0)


def test_cheap_f1_refuses_held_out_sentences_the_model_trained_on(tiny) -> None:
    nlp = load_pipeline(tiny["model"])
    with pytest.raises(HeldOutOverlapError) as error:
        cheap_f1(nlp, held_out_docs(LLM_ENTS), train_ids=[1, 201, 203, 999], name="tiny")
    assert "held-out sentences that a model trained on (sent_id): tiny: 201, 203." in str(
        error.value
    )


def test_check_held_out_names_every_overlapping_model_and_caps_the_ids() -> None:
    models = [
        ComparedModel("a", Path("a"), frozenset(range(0, 30))),
        ComparedModel("b", Path("b"), frozenset({500})),
        ComparedModel("c", Path("c"), frozenset({40})),
    ]
    with pytest.raises(HeldOutOverlapError) as error:
        check_held_out(models, range(0, 50))
    assert "a: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (30 in all); c: 40." in str(error.value)
    assert "b:" not in str(error.value)
    check_held_out(models, [30, 31, 501])  # no overlap: no error
    with pytest.raises(CheapTestError, match="model names must be unique: a"):
        check_held_out([models[0], models[0]], [99])


def test_draw_held_out_is_seeded_and_avoids_every_training_sentence() -> None:
    first = draw_held_out(range(100), excluded_ids=range(0, 100, 2), n=10, seed=3)
    assert len(first) == 10 and first == sorted(first)
    assert all(i % 2 == 1 for i in first)
    assert draw_held_out(range(100), range(0, 100, 2), 10, seed=3) == first
    assert draw_held_out(range(100), range(0, 100, 2), 10, seed=4) != first
    assert draw_held_out(range(10), range(5), 5, seed=0) == [5, 6, 7, 8, 9]
    with pytest.raises(CheapTestError, match="cannot hold out 6 sentences: 5 labelled"):
        draw_held_out(range(10), range(5), 6, seed=0)


def test_tracking_stats_on_a_hand_made_table() -> None:
    stats = tracking_stats(["a", "b", "c", "d"], [0.1, 0.2, 0.3, 0.4], [0.1, 0.3, 0.2, 0.4])
    # centred cheap (-1.5, -.5, .5, 1.5)/10 and gold (-1.5, .5, -.5, 1.5)/10: r = 4 / 5;
    # the ranks are the values, so Spearman is 0.8 too; 5 concordant pairs of 6: tau 4/6
    assert stats["pearson"] == pytest.approx(0.8)
    assert stats["spearman"] == pytest.approx(0.8)
    assert stats["kendall_tau"] == pytest.approx(2 / 3)
    assert stats["best_by_cheap"] == stats["best_by_gold"] == "d"
    assert stats["same_best"] is True and stats["gold_f1_lost"] == 0.0
    assert stats["gold_rank_of_cheap_pick"] == 1 and stats["mean_gap"] == pytest.approx(0.0)

    stats = tracking_stats(["a", "b", "c"], [0.5, 0.4, 0.3], [0.6, 0.7, 0.2])
    # r = .04 / sqrt(.02 * .14) = 2 / sqrt(7); rank differences 1, 1, 0: rho = 1 - 12/24;
    # one discordant pair of 3: tau 1/3
    assert stats["pearson"] == pytest.approx(2 / 7**0.5)
    assert stats["spearman"] == pytest.approx(0.5)
    assert stats["kendall_tau"] == pytest.approx(1 / 3)
    assert (stats["best_by_cheap"], stats["best_by_gold"], stats["same_best"]) == ("a", "b", False)
    assert stats["gold_f1_lost"] == pytest.approx(0.1)
    assert stats["gold_rank_of_cheap_pick"] == 2
    assert stats["mean_gap"] == pytest.approx((-0.1 - 0.3 + 0.1) / 3)

    constant = tracking_stats(["a", "b"], [0.5, 0.5], [0.2, 0.3])
    assert (constant["pearson"], constant["spearman"], constant["kendall_tau"]) == (None,) * 3
    assert constant["same_best"] is False  # the first of a tie is the pick: a, not b
    with pytest.raises(CheapTestError, match="3 models, 3 cheap and 2 gold F1"):
        tracking_stats(["a", "b", "c"], [0.1, 0.2, 0.3], [0.1, 0.2])


def test_tracking_within_groups_of_model_names() -> None:
    def row(name: str, cheap: float, gold: float) -> dict[str, Any]:
        return {"name": name, "cheap": {"f1": cheap}, "dev": {"f1": gold}}

    rows = [
        row("cnn/a", 0.1, 0.2),
        row("cnn/b", 0.2, 0.1),
        row("cnnx", 0.9, 0.9),
        row("frozen/a", 0.5, 0.5),
        row("frozen/b", 0.6, 0.6),
    ]
    result = tracking_of(rows, ["cnn", "frozen/", "none"])
    assert result["tracking"]["dev"]["n_models"] == 5
    assert list(result["tracking_by_group"]) == ["cnn", "frozen/"]
    assert result["tracking_by_group"]["cnn"]["dev"]["spearman"] == pytest.approx(-1.0)
    assert result["tracking_by_group"]["frozen/"]["dev"]["best_by_cheap"] == "frozen/b"


def test_training_ids_from_docbins_and_manifests(tiny, tmp_path: Path) -> None:
    model = parse_model_spec(f"tiny={tiny['model']}@{tiny['corpus']},{tiny['gold']}")
    assert model.train_ids == frozenset(range(100, 106)) | frozenset(range(200, 206))
    assert model.trained_on == (str(tiny["corpus"]), str(tiny["gold"]))
    with pytest.raises(CheapTestError, match="expected NAME=MODEL_PATH@TRAINED_ON"):
        parse_model_spec(f"tiny={tiny['model']}")
    with pytest.raises(CheapTestError, match="give a DocBin"):
        parse_model_spec(f"tiny={tiny['model']}@ids.txt")

    run = tmp_path / "run"
    store = CheckpointStore(run)
    nlp = load_pipeline(tiny["model"])
    settings = {"cheap_path": str(tiny["corpus"]), "initial_expert_ids": [7, 8]}
    added: list[int] = []
    for iteration, ids in enumerate([[], [300, 301], [302]]):
        added = added + ids
        record = manifest(
            version=2,
            iteration=iteration,
            n_initial_expert=2,
            added_ids=ids,
            all_added_ids=added,
            dev=dict.fromkeys(DEV_KEYS, 0.5),
            gain=None,
            settings=settings,
        )
        store.commit(nlp, record)
    shutil.rmtree(store.pipeline_path("active_iter_1_added_2"))  # pruned: left out
    models = al_run_models(run, "cnn/al")
    assert [m.name for m in models] == [
        "cnn/al/active_iter_0_added_0",
        "cnn/al/active_iter_2_added_3",
    ]
    assert models[1].train_ids == frozenset({*range(100, 106), 7, 8, 300, 301, 302})
    assert [m.name for m in al_run_models(run, include_initial=False)] == [
        "run/active_iter_2_added_3"
    ]
    # a folder of runs (al-compare): every run's checkpoints
    assert [m.name for m in al_run_models(tmp_path)][
        0
    ] == f"{tmp_path.name}/run/active_iter_0_added_0"


def test_track_reports_cheap_and_gold_f1_per_model(tiny) -> None:
    models = [
        ComparedModel("tiny", tiny["model"], frozenset(range(100, 106))),
        ComparedModel("weak", tiny["weak"], frozenset(range(100, 106))),
    ]
    dev = sentence_docs(split="dev")
    report = track(models, held_out_docs(LLM_ENTS), held_out_docs(None), dev, progress=False)
    assert report["held_out"]["ids"] == list(range(200, 206))
    assert report["held_out"]["llm_vs_gold"]["f1"] == pytest.approx(2 * 7 / 21)
    tiny_row = report["models"][0]
    assert tiny_row["cheap"]["f1"] == pytest.approx(2 / 3)
    assert tiny_row["held_out_gold"]["f1"] == tiny_row["dev"]["f1"] == pytest.approx(1.0)
    weak_nlp = load_pipeline(tiny["weak"])
    weak_cheap = cheap_f1(weak_nlp, held_out_docs(LLM_ENTS), train_ids=range(100, 106))
    assert report["models"][1]["cheap"] == pytest.approx(weak_cheap)
    assert set(report["tracking"]) == {"held_out_gold", "dev"}
    assert report["tracking"]["dev"]["best_by_gold"] == "tiny"
    with pytest.raises(HeldOutOverlapError, match="weak: 200, 201, 202, 203, 204, 205"):
        track(
            [models[0], ComparedModel("weak", tiny["weak"], frozenset(range(300)))],
            held_out_docs(LLM_ENTS),
            progress=False,
        )


def test_cli_writes_the_json_markdown_and_png(tiny) -> None:
    output = tiny["base"] / "out" / "cheap_testing.json"
    args = [
        str(tiny["llm"]),
        str(output),
        "--model",
        f"tiny={tiny['model']}@{tiny['corpus']}",
        "--model",
        f"weak={tiny['weak']}@{tiny['corpus']}",
        "--gold",
        str(tiny["gold"]),
        "--dev",
        str(tiny["dev"]),
        "--n-held-out",
        "6",
    ]
    result = run_cli(app, args)
    assert result.exit_code == 0, result.output
    assert "all models, held-out gold: 2 models" in result.output
    report = json.loads(output.read_text())
    assert report["held_out"]["ids"] == list(range(200, 206))
    held_out = report["held_out"]
    assert (held_out["llm"], held_out["gold"], held_out["dev"]) == tuple(
        str(tiny[key]) for key in ("llm", "gold", "dev")
    )
    assert (held_out["drawn"], held_out["seed"], held_out["n_candidates"]) == (True, 0, 6)
    assert [row["name"] for row in report["models"]] == ["tiny", "weak"]
    assert report["models"][0]["cheap"]["f1"] == pytest.approx(2 / 3)
    markdown = output.with_suffix(".md").read_text()
    assert "6 held-out sentences (seed 0) that none of the 2 models trained on" in markdown
    assert "| tiny | 6 | 0.6667 | 1.0000 | 1.0000 |" in markdown
    assert output.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_held_out_ids(output) == list(range(200, 206))


def test_cli_refuses_an_overlapping_held_out_set_and_writes_nothing(tiny) -> None:
    ids = tiny["base"] / "ids.json"
    ids.write_text(json.dumps([200, 201]))
    output = tiny["base"] / "refused" / "cheap_testing.json"
    args = [
        str(tiny["llm"]),
        str(output),
        "--model",
        f"tiny={tiny['model']}@{tiny['corpus']},{tiny['gold']}",
        "--held-out-ids",
        str(ids),
    ]
    result = run_cli(app, args)
    assert result.exit_code == 1
    assert "held-out sentences that a model trained on (sent_id): tiny: 200, 201." in " ".join(
        result.output.split()
    )
    assert not output.parent.exists()
