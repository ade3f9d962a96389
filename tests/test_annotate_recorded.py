"""annotate --source recorded:<set>: a recorded LLM set applied to any DocBin, by sent_id."""

from __future__ import annotations

import json

import spacy
from typer.testing import CliRunner

from nerloop.io_utils import read_docbin, write_docbin
from scripts.annotate import app
from tests.annotate_support import PROJECT_ROOT, SENTENCES, make_doc, make_docs, tags_of

# What the recorded LLM said about train sentences 0, 1, 2, 3 and 5 (4, 6, 7 not covered);
# sentence 5 was recorded with other tokens.
RECORDED = {
    0: ["B-LOC", "O", "B-MISC", "O", "O", "O", "B-LOC", "O", "O"],
    1: ["B-PER", "I-PER"],
    2: ["B-LOC", "O"],
    3: ["O", "B-ORG", "I-ORG", "O", "O", "B-MISC", "O", "O", "O"],
}


def test_recorded_source_labels_by_sent_id_and_records_what_it_cannot(tmp_path):
    vocab = spacy.blank("en").vocab
    recorded_docs = [
        make_doc(
            vocab,
            list(SENTENCES[i][0]),
            tags,
            sent_id=i,
            split="train",
            annotator="mini",
            source="cheap",
        )
        for i, tags in RECORDED.items()
    ]
    recorded_docs.append(
        make_doc(
            vocab,
            ["Fischler", "proposed", "measures"],
            ["B-PER", "O", "O"],
            sent_id=5,
            split="train",
            annotator="mini",
            source="cheap",
        )
    )
    write_docbin(tmp_path / "cheap" / "mini.spacy", recorded_docs)
    train = make_docs()
    dev = make_docs(SENTENCES[:1], split="dev")  # dev sentence 0: not the train sentence 0
    write_docbin(tmp_path / "in.spacy", train + dev)

    result = CliRunner().invoke(
        app,
        [
            str(tmp_path / "in.spacy"),
            str(tmp_path / "out.spacy"),
            "--source",
            "recorded:mini",
            "--recorded-dir",
            str(tmp_path / "cheap"),
            "--prices",
            str(PROJECT_ROOT / "configs" / "llm_prices.json"),
        ],
    )
    assert result.exit_code == 0, result.output

    out = read_docbin(tmp_path / "out.spacy")
    assert [doc.user_data["sent_id"] for doc in out] == [0, 1, 2, 3]
    assert tags_of(out) == list(RECORDED.values())
    for doc, before in zip(out, train):
        assert [t.text for t in doc] == [t.text for t in before]
        assert doc.user_data == {**before.user_data, "annotator": "mini", "source": "cheap"}

    failures = [json.loads(line) for line in (tmp_path / "out.failures.jsonl").open()]
    assert [(f["sent_id"], f["split"], f["reason"]) for f in failures] == [
        (4, "train", "not_in_recorded_set"),
        (5, "train", "token_mismatch"),
        (6, "train", "not_in_recorded_set"),
        (7, "train", "not_in_recorded_set"),
        (0, "dev", "split_mismatch"),
    ]
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["sentences"], summary["annotated"], summary["failed"]) == (9, 4, 5)
    assert summary["failure_reasons"] == {
        "not_in_recorded_set": 3,
        "split_mismatch": 1,
        "token_mismatch": 1,
    }
    assert summary["entities"] == 7
    cost = summary["cost"]
    assert cost["usage_estimated"] is True
    assert cost["sentences"] == 4
    assert cost["price_entry"] is None  # "mini" is not in the price table
    assert cost["expert_usd"] == round(4 * 30 / 3600 * 30.0, 2)


def test_unknown_recorded_set_is_a_clear_error(tmp_path):
    write_docbin(tmp_path / "in.spacy", make_docs())
    (tmp_path / "cheap").mkdir()
    result = CliRunner().invoke(
        app,
        [
            str(tmp_path / "in.spacy"),
            str(tmp_path / "out.spacy"),
            "--source",
            "recorded:nope",
            "--recorded-dir",
            str(tmp_path / "cheap"),
        ],
    )
    assert result.exit_code != 0
    assert "recorded set 'nope' not found" in str(result.exception)
    assert not (tmp_path / "out.spacy").exists()
