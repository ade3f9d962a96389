"""The LLM tasks take their labels from the label scheme; token repairs are kept per sentence."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import spacy
from spacy.util import load_config
from typer.testing import CliRunner

from nerloop.errors import SettingsError
from nerloop.io_utils import read_docbin, write_docbin
from nerloop.labels import load_scheme
from nerloop.llm.annotator import annotate_docs, apply_label_scheme
from nerloop.llm.loopback_server import FakeOpenAIServer, FakeReply, Oracle, prompt_tokens
from nerloop.llm.run import annotate_file
from nerloop.llm.tasks.token_ner import (
    make_token_ner_task,
    parse_reply,
    resolve_type,
    tag_ids_for_labels,
)
from scripts.annotate import app
from tests.annotate_support import (
    KEY_ENV,
    PROJECT_ROOT,
    SENTENCES,
    SPACY_NER_CONFIG,
    TOKEN_NER_CONFIG,
    live_overrides,
    make_doc,
    make_docs,
    oracle_sentences,
    tags_of,
)

MEDICAL = [
    (["Aspirin", "eases", "migraine", "."], ["B-DRUG", "O", "B-DISEASE", "O"]),
    (
        ["Take", "ibuprofen", "for", "rheumatoid", "arthritis"],
        ["O", "B-DRUG", "O", "B-DISEASE", "I-DISEASE"],
    ),
]
MEDICAL_SCHEME = """[labels]
DRUG = "A medicine or active substance, by brand or generic name."
DISEASE = "An illness, disorder or syndrome."
"""
MEDICAL_IDS = {"O": 0, "B-DRUG": 1, "I-DRUG": 2, "B-DISEASE": 3, "I-DISEASE": 4}


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, value)
    return value


@pytest.fixture
def scheme_path(tmp_path: Path) -> Path:
    path = tmp_path / "medical.cfg"
    path.write_text(MEDICAL_SCHEME, encoding="utf8")
    return path


def test_tag_ids_follow_the_scheme_and_the_default_scheme_keeps_the_studys():
    assert tag_ids_for_labels(["DRUG", "DISEASE"]) == MEDICAL_IDS
    conll = tag_ids_for_labels(load_scheme().labels)
    assert list(conll) == [
        "O",
        "B-PER",
        "I-PER",
        "B-ORG",
        "I-ORG",
        "B-LOC",
        "I-LOC",
        "B-MISC",
        "I-MISC",
    ]
    assert tag_ids_for_labels(["MISC", "LOC", "ORG", "PER"]) == conll


def test_reply_types_resolve_against_the_scheme_labels():
    labels = ["PER", "ORG", "LOC", "MISC"]
    assert resolve_type("person", labels) == "PER"
    assert resolve_type("Organisation", labels) == "ORG"
    assert resolve_type("GPE", labels) is None
    assert resolve_type("GPE", labels, {"GPE": "LOC"}) == "LOC"
    assert resolve_type("job-title", ["JOB_TITLE", "Chemical"]) == "JOB_TITLE"
    assert resolve_type("CHEMICALS", ["JOB_TITLE", "Chemical"]) == "Chemical"
    # "LOC" starts both labels: no guess.
    assert resolve_type("LOC", ["LOCATION", "LOCAL_TEAM"]) is None


def test_the_token_parser_reads_the_schemes_types():
    ids = tag_ids_for_labels(["Chemical", "JOB_TITLE"])
    tokens = ["Ethanol", "chief", "executive"]
    reply = json.dumps({"tokens": tokens, "ner_tags": ["chemical", "B-JOB_TITLE", "I-JOB-TITLE"]})
    assert parse_reply(reply, tokens, ids).tags == ["B-Chemical", "B-JOB_TITLE", "I-JOB_TITLE"]
    # The CoNLL types are no tags of this scheme.
    parsed = parse_reply(json.dumps(["PER", "O", "O"]), tokens, ids)
    assert (parsed.tags, parsed.error) == (None, "the reply's JSON has no list of tags")


def test_token_task_labels_and_tag_ids_must_agree():
    task = make_token_ner_task(labels=["DRUG", "DISEASE"])
    assert task.tag_ids == MEDICAL_IDS
    assert task.labels == ("DRUG", "DISEASE")
    with pytest.raises(SettingsError, match=r"tag_ids name the labels \['DRUG', 'DISEASE'\]"):
        make_token_ner_task(labels=["PER"], tag_ids=MEDICAL_IDS)
    with pytest.raises(SettingsError, match="maps 'GPE' to 'LOC', which is not a label"):
        make_token_ner_task(labels=["DRUG", "DISEASE"], type_synonyms={"GPE": "LOC"})


def test_a_scheme_cannot_be_applied_to_an_unknown_task(scheme_path):
    config = load_config(TOKEN_NER_CONFIG, interpolate=False)
    config["components"]["llm"]["task"] = {"@llm_tasks": "spacy.TextCat.v3", "labels": ["X"]}
    with pytest.raises(SettingsError, match="cannot set the labels of llm task 'spacy.TextCat.v3'"):
        apply_label_scheme(config, load_scheme(scheme_path), where="x.cfg")


def test_token_task_with_a_custom_scheme_end_to_end(tmp_path, api_key, scheme_path):
    docs = make_docs(MEDICAL)
    write_docbin(tmp_path / "in.spacy", docs)
    oracle = Oracle(oracle_sentences(MEDICAL), tag_ids=MEDICAL_IDS)
    with FakeOpenAIServer(oracle.responder) as server:
        summary = annotate_file(
            tmp_path / "in.spacy",
            tmp_path / "out.spacy",
            str(TOKEN_NER_CONFIG),
            cache_dir=tmp_path / "cache",
            labels_path=scheme_path,
            prices_path=None,
            overrides=live_overrides(server.base_url),
            progress=False,
        )
        prompt = next(iter(server.received))
    assert (
        "- NER tags: {'O': 0, 'B-DRUG': 1, 'I-DRUG': 2, 'B-DISEASE': 3, 'I-DISEASE': 4}" in prompt
    )
    # The format example keeps its shape; its CoNLL ids are not this scheme's tags.
    assert "{'ner_tags': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]," in prompt
    assert (summary["annotated"], summary["failed"]) == (2, 0)
    assert summary["labels"] == ["DRUG", "DISEASE"]
    assert tags_of(read_docbin(tmp_path / "out.spacy")) == [tags for _, tags in MEDICAL]


def test_ner_v3_labels_and_definitions_come_from_the_scheme(tmp_path, api_key, scheme_path):
    write_docbin(tmp_path / "train.spacy", make_docs(MEDICAL))
    docs = make_docs(MEDICAL[:1])

    def responder(prompt: str, attempt: int) -> FakeReply:
        return FakeReply(
            content="1. Aspirin | True | DRUG | a medicine\n2. migraine | True | DISEASE | ill"
        )

    with FakeOpenAIServer(responder) as server:
        overrides = {
            **live_overrides(server.base_url),
            "paths.train": str(tmp_path / "train.spacy"),
        }
        run = annotate_docs(
            docs,
            str(SPACY_NER_CONFIG),
            cache_dir=tmp_path / "cache",
            overrides=overrides,
            labels=scheme_path,
            progress=False,
        )
        (prompt,) = server.received
    assert "Entities must have one of the following labels: DISEASE, DRUG." in prompt
    assert "DRUG: A medicine or active substance, by brand or generic name.\n" in prompt
    assert "DISEASE: An illness, disorder or syndrome.\n" in prompt
    assert "Other proper names" not in prompt  # the config's CoNLL definitions are replaced
    assert run.failures == []
    assert tags_of(run.docs) == [MEDICAL[0][1]]


def test_a_recorded_set_with_labels_outside_the_scheme_fails_those_sentences(tmp_path, scheme_path):
    vocab = spacy.blank("en").vocab
    recorded = [make_doc(vocab, SENTENCES[1][0], SENTENCES[1][1], sent_id=0, split="train")]
    recorded.append(make_doc(vocab, MEDICAL[0][0], MEDICAL[0][1], sent_id=1, split="train"))
    write_docbin(tmp_path / "cheap" / "mixed.spacy", recorded)
    docs = make_docs([SENTENCES[1], MEDICAL[0]])
    run = annotate_docs(docs, "recorded:mixed", recorded_dir=tmp_path / "cheap", labels=scheme_path)
    assert [doc.user_data["sent_id"] for doc in run.docs] == [1]
    assert [(row["sent_id"], row["reason"]) for row in run.failures] == [(0, "unknown_label")]
    assert "labels ['PER'] are not in the label scheme (DRUG, DISEASE)" in run.failures[0]["detail"]


NYSE = 7  # "New York Stock Exchange shares rose 5,060 points ."


def test_token_repairs_are_recorded_per_sentence_and_counted(tmp_path, api_key):
    docs = make_docs()
    write_docbin(tmp_path / "in.spacy", docs)
    oracle = Oracle(oracle_sentences())
    repaired_reply = json.dumps(
        {
            "tokens": ["New York", "Stock", "Exchange", "rose", "5", ",", "060", "points"]
            + ["today", "."],
            "ner_tags": [3, 4, 4, 0, 0, 0, 0, 0, 0, 0],
        }
    )

    def responder(prompt: str, attempt: int) -> FakeReply:
        if prompt_tokens(prompt) == SENTENCES[NYSE][0]:
            return FakeReply(content=repaired_reply)
        return oracle.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        overrides = live_overrides(server.base_url)
        result = CliRunner().invoke(
            app,
            [
                str(tmp_path / "in.spacy"),
                str(tmp_path / "out.spacy"),
                "--source",
                str(TOKEN_NER_CONFIG),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--prices",
                str(PROJECT_ROOT / "configs" / "llm_prices.json"),
                "--labels",
                str(PROJECT_ROOT / "nerloop" / "schemes" / "conll2003.cfg"),
                "--no-progress",
                *[arg for key, value in overrides.items() for arg in (f"--{key}", str(value))],
            ],
        )
    assert result.exit_code == 0, result.output
    expected = [
        {
            "kind": "merged",
            "positions": [0, 1],
            "tokens": ["New", "York"],
            "reply_tokens": ["New York"],
        },
        {"kind": "dropped", "positions": [4], "tokens": ["shares"]},
        {"kind": "split", "positions": [6], "tokens": ["5,060"], "reply_tokens": ["5", ",", "060"]},
        {"kind": "invented", "at": 8, "reply_tokens": ["today"]},
    ]
    out = read_docbin(tmp_path / "out.spacy")
    assert tags_of(out) == tags_of(docs)  # the repairs kept every entity
    # (a DocBin gives lists back as tuples: compare their JSON)
    stored = [json.loads(json.dumps(doc.user_data.get("llm_repairs"))) for doc in out]
    assert stored == [None] * 7 + [expected]
    rows = [json.loads(line) for line in (tmp_path / "out.repairs.jsonl").open()]
    assert rows == [{"index": NYSE, "sent_id": NYSE, "split": "train", **r} for r in expected]
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["repaired_sentences"] == 1
    assert summary["repairs"] == {"dropped": 1, "invented": 1, "merged": 1, "split": 1}
    assert summary["labels_file"].endswith("conll2003.cfg")
    assert "1 annotated sentences were repaired (dropped: 1, invented: 1, merged: 1, split: 1)" in (
        " ".join(result.output.split())
    )
