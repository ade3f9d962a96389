"""nerloop.TokenNER.v1: the study's prompt, and a parser for what real LLMs send back."""

from __future__ import annotations

import json

import pytest
import spacy
from spacy.tokens import Doc
from spacy_llm.registry import registry

from nerloop.labels import load_scheme
from nerloop.llm.tasks.token_ner import (
    ERROR_EXTENSION,
    STATS_EXTENSION,
    iob2_to_spans,
    parse_reply,
    repair_iob2,
    tag_ids_for_labels,
)
from nerloop.llm.tasks.token_ner.parser import extract_json, normalize_tag

# The study's ids, which the default (CoNLL-2003) label scheme gives the token task.
STUDY_TAG_IDS = {
    "O": 0,
    "B-PER": 1,
    "I-PER": 2,
    "B-ORG": 3,
    "I-ORG": 4,
    "B-LOC": 5,
    "I-LOC": 6,
    "B-MISC": 7,
    "I-MISC": 8,
}
DEFAULT_TAG_IDS = tag_ids_for_labels(load_scheme().labels)

TOKENS = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
GOLD = ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
IDS = [3, 0, 7, 0, 0, 0, 7, 0, 0]

# Copied from the study's prompts-latest.json (first key), byte for byte.
STUDY_PROMPT = (
    "Identify each named entity from the following sequence of tokens and classify it by the "
    'NER tags. Each token is enquoted with "`" and "`" is not part of token:\n'
    "    - NER tags: {'O': 0, 'B-PER': 1, 'I-PER': 2, 'B-ORG': 3, 'I-ORG': 4, 'B-LOC': 5, "
    "'I-LOC': 6, 'B-MISC': 7, 'I-MISC': 8}\n"
    "    Tokens: '`EU`, `rejects`, `German`, `call`, `to`, `boycott`, `British`, `lamb`, `.`'\n"
    "    Return the response in JSON format with the fields: ner_tags, tokens.\n"
    "    Each token has to be evaluated. The number of tags must match the number of tokens of "
    "each token type. \n"
    "    Example of the correct output:\n"
    "    {'ner_tags': [0, 0, 5, 0, 0, 0, 0, 1, 0, 0, 0, 0],\n"
    "    'tokens': ['SOCCER', '-', 'JAPAN', 'GET', 'LUCKY', 'WIN', ',', 'CHINA', 'IN', "
    "'SURPRISE', 'DEFEAT', '.']}"
)


@pytest.fixture(scope="module")
def task():
    import nerloop.llm  # noqa: F401  (registers nerloop.*)

    return registry.llm_tasks.get("nerloop.TokenNER.v1")()


def test_prompt_reproduces_the_study_byte_for_byte(task):
    doc = Doc(spacy.blank("en").vocab, words=TOKENS)
    ((prompts, shards),) = list(task.generate_prompts([doc]))
    assert prompts == [STUDY_PROMPT]
    assert task.tag_ids == DEFAULT_TAG_IDS == STUDY_TAG_IDS


def test_repair_iob2_turns_orphan_continuations_into_beginnings():
    tags, changed = repair_iob2(["I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "I-MISC"])
    assert tags == ["B-PER", "O", "B-LOC", "I-LOC", "B-ORG", "B-MISC"]
    assert changed == 3


def test_iob2_to_spans():
    doc = Doc(spacy.blank("en").vocab, words=["New", "York", "and", "Paris", "Hilton"])
    spans = iob2_to_spans(doc, ["B-LOC", "I-LOC", "O", "B-LOC", "B-PER"])
    assert [(s.text, s.label_) for s in spans] == [
        ("New York", "LOC"),
        ("Paris", "LOC"),
        ("Hilton", "PER"),
    ]


CLEAN = json.dumps({"ner_tags": IDS, "tokens": TOKENS})


@pytest.mark.parametrize(
    "reply",
    [
        CLEAN,
        f"```json\n{CLEAN}\n```",
        f"Sure! Here is the JSON you asked for:\n{CLEAN}\nLet me know if you need more.",
        "{'ner_tags': [3, 0, 7, 0, 0, 0, 7, 0, 0], 'tokens': ['EU', 'rejects', 'German', 'call', "
        "'to', 'boycott', 'British', 'lamb', '.']}",
        '{"ner_tags": [3, 0, 7, 0, 0, 0, 7, 0, 0,], "tokens": ["EU", "rejects", "German", '
        '"call", "to", "boycott", "British", "lamb", ".",],}',
        json.dumps({"ner_tags": GOLD, "tokens": TOKENS}),
        json.dumps({"ner_tags": [str(i) for i in IDS], "tokens": TOKENS}),
        json.dumps({"NER_TAGS": ["B_ORG", "o", "B-MISC", 0, 0, 0, "S-MISC", "O", "O"]}),
        json.dumps({"result": {"tokens": TOKENS, "tags": IDS}}),
        json.dumps([[t, tag] for t, tag in zip(TOKENS, GOLD)]),
        json.dumps([{"token": t, "tag": i} for t, i in zip(TOKENS, IDS)]),
        json.dumps(IDS),
    ],
    ids=[
        "clean",
        "code-fence",
        "prose-around",
        "single-quotes",
        "trailing-commas",
        "tag-names",
        "id-strings",
        "names-and-bioes-no-tokens",
        "wrapped",
        "pairs",
        "objects",
        "bare-id-list",
    ],
)
def test_parser_accepts_what_real_llms_send(reply):
    parsed = parse_reply(reply, TOKENS, DEFAULT_TAG_IDS)
    assert parsed.error is None
    assert parsed.tags == GOLD


def test_parser_realigns_dropped_merged_split_changed_and_invented_tokens():
    tokens = ["New", "York", "Stock", "Exchange", "rose", "5,060", "points", "in", "Boston", "."]
    # The LLM merged "New York", split "5,060", dropped "in", changed "points" to "pts" and
    # invented "today".
    reply = json.dumps(
        {
            "tokens": [
                "New York",
                "Stock",
                "Exchange",
                "rose",
                "5",
                ",",
                "060",
                "pts",
                "Boston",
                "today",
                ".",
            ],
            "ner_tags": ["B-ORG", "I-ORG", "I-ORG", "O", "O", "O", "O", "O", "B-LOC", "O", "O"],
        }
    )
    parsed = parse_reply(reply, tokens, DEFAULT_TAG_IDS)
    assert parsed.error is None
    assert parsed.tags == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "O", "O", "B-LOC", "O"]
    assert parsed.stats["dropped"] == 1
    assert parsed.stats["invented"] == 1
    assert parsed.stats["merged_or_split"] >= 3


def test_parser_repairs_i_after_o_and_maps_unknown_tags_to_o():
    reply = json.dumps({"tokens": TOKENS, "ner_tags": [4, 0, 8, 0, "[CLS]", 0, 7, 0, 0]})
    parsed = parse_reply(reply, TOKENS, DEFAULT_TAG_IDS)
    assert parsed.tags == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
    assert parsed.stats["repaired_iob"] == 2
    assert parsed.stats["unknown_tags"] == 1


@pytest.mark.parametrize(
    "reply, message",
    [
        ("I cannot help with that.", "no complete JSON"),
        ('{"ner_tags": [3, 0, 7', "no complete JSON"),
        # Complete tags, cut tokens: the tag list alone is not taken for the whole reply.
        (
            '{"ner_tags": [3, 0, 7, 0, 0, 0, 7, 0, 0], "tokens": ["EU", "rej',
            "the '{' at character 0 is never closed (cut off?)",
        ),
        ('{"answer": "EU is an organisation"}', "no list of tags"),
        (json.dumps({"ner_tags": [3, 0, 7]}), "3 tags for 9 tokens"),
        (
            json.dumps({"tokens": ["Completely", "different", "words"], "ner_tags": [1, 2, 0]}),
            "tokens could be aligned",
        ),
    ],
)
def test_parser_reports_what_cannot_be_aligned(reply, message):
    parsed = parse_reply(reply, TOKENS, DEFAULT_TAG_IDS)
    assert parsed.tags is None
    assert message in parsed.error


def test_normalize_tag_spellings():
    assert normalize_tag(1, DEFAULT_TAG_IDS) == "B-PER"
    assert normalize_tag("b-person", DEFAULT_TAG_IDS) == "B-PER"
    assert normalize_tag("LOCATION", DEFAULT_TAG_IDS) == "I-LOC"
    assert normalize_tag("E-ORG", DEFAULT_TAG_IDS) == "I-ORG"
    assert normalize_tag(9, DEFAULT_TAG_IDS) is None
    assert normalize_tag(True, DEFAULT_TAG_IDS) is None
    assert normalize_tag("B-DATE", DEFAULT_TAG_IDS) is None


def test_extract_json_skips_unrelated_json_before_the_reply():
    text = 'Format: {"note": "x"} then [1, "a"]. Answer: {"ner_tags": [0, 1]}'
    assert extract_json(text) == {"ner_tags": [0, 1]}


def test_task_sets_entities_or_reports_the_error_on_the_doc(task):
    vocab = spacy.blank("en").vocab
    good, bad = Doc(vocab, words=TOKENS), Doc(vocab, words=TOKENS)
    docs = list(task.parse_responses([[good], [bad]], [[CLEAN], ["no json here"]]))
    assert [(e.text, e.label_) for e in docs[0].ents] == [
        ("EU", "ORG"),
        ("German", "MISC"),
        ("British", "MISC"),
    ]
    assert docs[0]._.get(ERROR_EXTENSION) is None
    assert docs[0]._.get(STATS_EXTENSION)["aligned"] == len(TOKENS)
    assert docs[1].ents == ()
    assert "no complete JSON" in docs[1]._.get(ERROR_EXTENSION)
