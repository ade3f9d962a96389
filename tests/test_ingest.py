from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from nerloop.corpus import meta
from nerloop.corpus.ingest import IngestError, ingest
from nerloop.corpus.preprocess import convert_split
from nerloop.errors import NerloopError
from nerloop.io_utils import read_docbin
from nerloop.labels import LabelScheme, UnknownLabelError, load_scheme
from scripts.ingest import app
from tests.cli_support import run_cli
from tests.conftest import FIXTURES, PROJECT_ROOT

CONLL = LabelScheme(("PER", "LOC", "ORG", "MISC"))
DRUGS = LabelScheme(("Chemical", "Disease"))
DATA_DIR = Path(os.environ.get("NERLOOP_DATA_DIR") or PROJECT_ROOT.parent / "shared" / "data")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf8")
    return path


def run(tmp_path: Path, inputs, **options):
    output = tmp_path / "out" / "corpus.spacy"
    inputs = inputs if isinstance(inputs, list) else [inputs]
    summary = ingest(inputs, output, **options)
    return summary, read_docbin(output)


def tokens(doc: Doc) -> list[str]:
    return [t.text for t in doc]


def ents(doc: Doc) -> list[tuple[str, str]]:
    return [(e.text, e.label_) for e in doc.ents]


def ids(docs: list[Doc]) -> list[tuple[int, int]]:
    return [(d.user_data[meta.SENT_ID], d.user_data[meta.DOC_ID]) for d in docs]


def fails(tmp_path: Path, inputs, error=IngestError, **options) -> str:
    """The message of the error ingest raises; checks that nothing was written."""
    output = tmp_path / "failed" / "corpus.spacy"
    inputs = inputs if isinstance(inputs, list) else [inputs]
    with pytest.raises(error) as info:
        ingest(inputs, output, **options)
    assert isinstance(info.value, NerloopError)
    assert not output.parent.exists() or list(output.parent.iterdir()) == []
    return str(info.value)


# ------------------------------------------------------------------------------------ text


def test_text_one_document_per_file_is_split_into_sentences(tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    write(folder / "a.txt", "Hello there.  It is me!\n\n\nAnd you?\n")
    write(folder / "b.txt", "Second file here.")
    summary, docs = run(tmp_path, folder, format="text", scheme=CONLL)
    assert [tokens(d) for d in docs] == [
        ["Hello", "there", "."],
        ["It", "is", "me", "!"],
        ["And", "you", "?"],
        ["Second", "file", "here", "."],
    ]
    assert [d.text for d in docs][:2] == ["Hello there.", "It is me!"]
    assert ids(docs) == [(0, 0), (1, 0), (2, 0), (3, 1)]
    assert {d.user_data[meta.ANNOTATOR] for d in docs} == {"none"}
    assert {d.user_data[meta.SOURCE] for d in docs} == {"none"}
    assert docs[0].user_data[meta.SPLIT] == "train"
    # unlabelled: entity annotation missing, not O
    assert [t.ent_iob_ for t in docs[0]] == ["", "", ""]
    assert (summary.files, summary.documents, summary.sentences, summary.tokens) == (2, 2, 4, 14)
    assert summary.labelled_sentences == 0 and sum(summary.entities.values()) == 0
    # the final "\n" is a sentence of its own for the sentencizer: counted, not kept
    assert dict(summary.skipped) == {"whitespace-only sentences": 1}


def test_text_one_document_per_line(tmp_path: Path) -> None:
    path = write(tmp_path / "lines.txt", "First doc. Two sentences.\n\nSecond doc\r\n")
    summary, docs = run(tmp_path, path, format="text", text_mode="doc-per-line", scheme=CONLL)
    assert [tokens(d) for d in docs] == [
        ["First", "doc", "."],
        ["Two", "sentences", "."],
        ["Second", "doc"],
    ]
    assert ids(docs) == [(0, 0), (1, 0), (2, 1)]
    assert dict(summary.skipped) == {"blank lines": 1}


def test_german_text_is_tokenised_with_lang_de(tmp_path: Path) -> None:
    path = write(tmp_path / "de.txt", "Das ist z.B. ein Test. Wir gehen heute ins Kino.")
    _, docs = run(tmp_path, path, format="text", lang="de", scheme=CONLL)
    assert [tokens(d) for d in docs] == [
        ["Das", "ist", "z.B.", "ein", "Test", "."],
        ["Wir", "gehen", "heute", "ins", "Kino", "."],
    ]
    # the English tokenizer does not know the German abbreviation
    _, english = run(tmp_path, path, format="text", lang="en", scheme=CONLL)
    assert tokens(english[0]) == ["Das", "ist", "z.", "B.", "ein", "Test", "."]


def test_a_pipeline_named_by_path_splits_sentences(tmp_path: Path) -> None:
    nlp = spacy.blank("es")
    nlp.add_pipe("sentencizer", config={"punct_chars": [";"]})
    nlp.to_disk(tmp_path / "es_pipeline")
    path = write(tmp_path / "es.txt", "Hola, ¿qué tal? Bien; gracias.")
    _, docs = run(
        tmp_path, path, format="text", lang="es", sentencizer=str(tmp_path / "es_pipeline")
    )
    # only ";" ends a sentence in this pipeline
    assert [tokens(d) for d in docs] == [
        ["Hola", ",", "¿", "qué", "tal", "?", "Bien", ";"],
        ["gracias", "."],
    ]
    message = fails(
        tmp_path, path, format="text", lang="en", sentencizer=str(tmp_path / "es_pipeline")
    )
    assert "the pipeline's language is 'es', not --lang 'en'" in message
    message = fails(tmp_path, path, format="text", sentencizer="xx_no_such_pipeline_sm")
    assert "--sentencizer xx_no_such_pipeline_sm: no installed spaCy pipeline" in message
    assert "python -m spacy download xx_no_such_pipeline_sm" in message
    assert "spaCy has no language 'qq'" in fails(tmp_path, path, format="text", lang="qq")


# ------------------------------------------------------------------------------------ JSONL


def test_jsonl_character_spans_round_trip_and_split_into_sentences(tmp_path: Path) -> None:
    rows = [
        {
            "text": "Angela Merkel visited Paris. She met Macron.",
            "spans": [
                {"start": 0, "end": 13, "label": "PER"},
                {"start": 22, "end": 27, "label": "LOC", "token_start": 3, "token_end": 3},
                {"start": 37, "end": 43, "label": "PER"},
            ],
        },
        {"text": "No entities here.", "spans": []},
        {"text": "Unlabelled line."},
    ]
    path = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    summary, docs = run(tmp_path, path, scheme=CONLL)
    assert summary.formats == {str(path): "jsonl"}
    assert [tokens(d) for d in docs] == [
        ["Angela", "Merkel", "visited", "Paris", "."],
        ["She", "met", "Macron", "."],
        ["No", "entities", "here", "."],
        ["Unlabelled", "line", "."],
    ]
    assert [ents(d) for d in docs] == [
        [("Angela Merkel", "PER"), ("Paris", "LOC")],
        [("Macron", "PER")],
        [],
        [],
    ]
    assert ids(docs) == [(0, 0), (1, 0), (2, 1), (3, 2)]
    assert [d.user_data[meta.ANNOTATOR] for d in docs] == ["gold", "gold", "gold", "none"]
    assert [t.ent_iob_ for t in docs[2]] == ["O", "O", "O", "O"]
    assert [t.ent_iob_ for t in docs[3]] == ["", "", ""]
    assert summary.entities == {"PER": 2, "LOC": 1}
    assert summary.labelled_sentences == 3


def test_jsonl_prodigy_tokens_are_the_tokenisation_and_rejects_are_counted(
    tmp_path: Path,
) -> None:
    tokens_ = [
        {"text": "e-mail", "start": 0, "end": 6, "id": 0, "ws": True},
        {"text": "Acme", "start": 7, "end": 11, "id": 1, "ws": False},
        {"text": "!", "start": 11, "end": 12, "id": 2, "ws": False},
    ]
    rows = [
        {
            "text": "e-mail Acme!",
            "tokens": tokens_,
            "answer": "accept",
            "spans": [{"start": 7, "end": 11, "label": "ORG", "token_start": 1, "token_end": 1}],
        },
        {"text": "Rejected one.", "spans": [], "answer": "reject"},
        {"text": "Ignored one.", "spans": [], "answer": "ignore"},
    ]
    path = write(tmp_path / "db.jsonl", "\n".join(json.dumps(r) for r in rows))
    summary, docs = run(tmp_path, path, scheme=CONLL)
    assert [tokens(d) for d in docs] == [["e-mail", "Acme", "!"]]
    assert ents(docs[0]) == [("Acme", "ORG")]
    assert dict(summary.skipped) == {"prodigy answer reject": 1, "prodigy answer ignore": 1}


def test_jsonl_token_tags_as_strings_ids_and_biluo(tmp_path: Path) -> None:
    path = write(
        tmp_path / "tags.jsonl",
        json.dumps(
            {
                "tokens": ["EU", "rejects", "German", "call"],
                "ner_tags": ["B-ORG", "O", "B-MISC", "O"],
            }
        )
        + "\n"
        + json.dumps({"tokens": ["New", "York", "Times"], "ner_tags": ["B-ORG", "I-ORG", "I-ORG"]})
        + "\n",
    )
    summary, docs = run(tmp_path, path, scheme=CONLL)
    assert summary.formats == {str(path): "jsonl/iob2"}
    assert [d.text for d in docs] == ["EU rejects German call", "New York Times"]
    assert [ents(d) for d in docs] == [
        [("EU", "ORG"), ("German", "MISC")],
        [("New York Times", "ORG")],
    ]
    assert ids(docs) == [(0, 0), (1, 1)]

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    ids_path = write(
        tmp_path / "ids.jsonl",
        json.dumps({"tokens": ["Peter", "Blackburn", "in", "Rome"], "ner_tags": [1, 2, 0, 3]}),
    )
    _, docs = run(tmp_path, ids_path, scheme=CONLL, tag_names=names)
    assert ents(docs[0]) == [("Peter Blackburn", "PER"), ("Rome", "LOC")]
    names_file = write(tmp_path / "tag_names.txt", "\n".join(names) + "\n")
    _, docs = run(tmp_path, ids_path, scheme=CONLL, tag_names=names_file)
    assert ents(docs[0]) == [("Peter Blackburn", "PER"), ("Rome", "LOC")]
    message = fails(tmp_path, ids_path, scheme=CONLL)
    assert message == (
        f"{ids_path}:1: ner_tags are integer ids but no tag names were given. Pass --tag-names "
        "O,B-X,I-X,... (or a file with one tag a line) in id order"
    )

    biluo = write(
        tmp_path / "biluo.jsonl",
        json.dumps(
            {
                "tokens": ["Peter", "Blackburn", "in", "Rome"],
                "ner_tags": ["B-PER", "L-PER", "O", "U-LOC"],
                "spaces": [True, True, True, False],
            }
        ),
    )
    summary, docs = run(tmp_path, biluo, scheme=CONLL)
    assert summary.formats == {str(biluo): "jsonl/biluo"}
    assert ents(docs[0]) == [("Peter Blackburn", "PER"), ("Rome", "LOC")]


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    good = json.dumps({"text": "Fine.", "spans": []})
    crossing = json.dumps(
        {"text": "He met Tom. Smith came.", "spans": [{"start": 7, "end": 17, "label": "PER"}]}
    )
    path = write(tmp_path / "cross.jsonl", good + "\n" + crossing + "\n")
    # the sentencizer ends a sentence after "Tom ."
    assert fails(tmp_path, path, scheme=CONLL) == (
        f"{path}:2: the PER entity 'Tom. Smith' crosses a sentence boundary (before 'Smith', "
        "token 4). Fix the entity or the text, or use another --sentencizer"
    )
    misaligned = json.dumps(
        {"text": "Visit London now.", "spans": [{"start": 7, "end": 11, "label": "LOC"}]}
    )
    path = write(tmp_path / "misaligned.jsonl", good + "\n\n" + misaligned)
    message = fails(tmp_path, path, scheme=CONLL)
    assert message.startswith(
        f"{path}:3 span #0: the LOC span 7-11 'ondo' does not start and end on token boundaries "
        "(the tokens there: 'London')"
    )
    unknown = json.dumps(
        {"text": "Visit London.", "spans": [{"start": 6, "end": 12, "label": "CITY"}]}
    )
    path = write(tmp_path / "unknown.jsonl", unknown)
    message = fails(tmp_path, path, error=UnknownLabelError, scheme=CONLL)
    assert message.startswith(f"unknown label 'CITY' ({path}:1 span #0)")
    path = write(tmp_path / "broken.jsonl", good + "\n{not json\n")
    assert fails(tmp_path, path, scheme=CONLL).startswith(f"{path}:2: not valid JSON")
    overlapping = json.dumps(
        {
            "text": "New York City",
            "spans": [
                {"start": 0, "end": 8, "label": "LOC"},
                {"start": 4, "end": 13, "label": "LOC"},
            ],
        }
    )
    path = write(tmp_path / "overlap.jsonl", overlapping)
    assert fails(tmp_path, path, scheme=CONLL).startswith(
        f"{path}:1: spans 'New York' (LOC) and 'York City' (LOC) overlap"
    )


# ------------------------------------------------------------------------------------ CoNLL


def test_conll2003_fixture_reads_like_preprocess(tmp_path: Path) -> None:
    train = FIXTURES / "assets" / "conll2003" / "train.txt"
    summary, docs = run(tmp_path, train, format="conll", scheme=CONLL)
    gold, _ = convert_split(train, "train", spacy.blank("en").vocab)
    assert summary.formats == {str(train): "conll/iob1"}
    assert [tokens(d) for d in docs] == [tokens(d) for d in gold]
    assert [ents(d) for d in docs] == [ents(d) for d in gold]
    assert ids(docs) == [(d.user_data[meta.SENT_ID], d.user_data[meta.DOC_ID]) for d in gold]
    assert ids(docs) == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 1)]
    assert ents(docs[4]) == [("Jordan", "PER"), ("Smith", "PER"), ("Rabat", "LOC")]
    assert (summary.documents, summary.sentences, summary.tokens) == (2, 5, 15)


def test_conll_tab_iob2_biluo_and_concatenated_inputs(tmp_path: Path) -> None:
    iob2 = write(
        tmp_path / "a.tsv",
        "Aspirin\tx\tB-Chemical\ncauses\tx\tO\nacute\tx\tB-Disease\npain\tx\tI-Disease\n\n"
        "Ibuprofen\tx\tB-Chemical\n",
    )
    biluo = write(
        tmp_path / "b.conll",
        "-DOCSTART- O\n\nlithium U-Chemical\nand O\nrenal B-Disease\nfailure L-Disease\n\n"
        "-DOCSTART- O\n\nnephrotoxicity U-Disease\n",
    )
    summary, docs = run(tmp_path, [iob2, biluo], scheme=DRUGS)
    assert summary.formats == {str(iob2): "conll/iob2", str(biluo): "conll/biluo"}
    assert [d.text for d in docs] == [
        "Aspirin causes acute pain",
        "Ibuprofen",
        "lithium and renal failure",
        "nephrotoxicity",
    ]
    assert [ents(d) for d in docs] == [
        [("Aspirin", "Chemical"), ("acute pain", "Disease")],
        [("Ibuprofen", "Chemical")],
        [("lithium", "Chemical"), ("renal failure", "Disease")],
        [("nephrotoxicity", "Disease")],
    ]
    # sentence ids continue over files; every file and every -DOCSTART- starts a document
    assert ids(docs) == [(0, 0), (1, 0), (2, 1), (3, 2)]
    assert summary.entities == {"Chemical": 3, "Disease": 3}
    assert summary.documents == 3


def test_conll_iob2_i_without_b_is_repaired_or_refused_with_strict(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "the\tO\nAspirin\tB-Chemical\ndose\tO\nfever\tI-Disease\n")
    summary, docs = run(tmp_path, path, scheme=DRUGS, tag_scheme="iob2")
    assert ents(docs[0]) == [("Aspirin", "Chemical"), ("fever", "Disease")]
    assert summary.repaired_i_starts == 1
    assert fails(tmp_path, path, scheme=DRUGS, tag_scheme="iob2", strict=True) == (
        f"{path}:4: IOB2 tag 'I-Disease' follows 'O': an I- without a B-. Tag the entity's first "
        "token B-Disease, or drop --strict to read it as an entity start"
    )


def test_conll_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad_tag.tsv", "Aspirin\tB-Chemical\ncauses\tB_Disease\n")
    assert fails(tmp_path, path, scheme=DRUGS) == (
        f"{path}:2: 'B_Disease' is not a valid tag. Use O or B-/I-/L-/U- followed by a label "
        "(IOB1, IOB2 or BILUO)"
    )
    path = write(tmp_path / "unknown.tsv", "Aspirin\tB-Chemical\n\nfever\tB-Symptom\n")
    message = fails(tmp_path, path, error=UnknownLabelError, scheme=DRUGS)
    assert message.startswith(f"unknown label 'Symptom' ({path}:3)")
    path = write(tmp_path / "header.tsv", "token\ttag\nAspirin\tB-Chemical\n")
    assert fails(tmp_path, path, scheme=DRUGS).startswith(
        f"{path}:1: 'tag' is not a valid tag (is the first line a header row?)"
    )
    path = write(tmp_path / "u.tsv", "Aspirin\tU-Chemical\n")
    assert fails(tmp_path, path, scheme=DRUGS, tag_scheme="iob2") == (
        f"{path}:1: tag 'U-Chemical' is not IOB2. Use --tag-scheme biluo (or auto) for L-/U- tags"
    )
    path = write(tmp_path / "biluo.tsv", "renal\tB-Disease\nfailure\tO\nlithium\tU-Chemical\n")
    assert fails(tmp_path, path, scheme=DRUGS) == (
        f"{path}:2: BILUO tag 'O' follows an unfinished Disease entity. End the entity with "
        "L-Disease (or U- for one token)"
    )
    path = write(tmp_path / "columns.tsv", "Aspirin\tNN\tB-Chemical\ncauses\tO\n")
    assert fails(tmp_path, path, scheme=DRUGS).startswith(
        f"{path}:2: 2 tab-separated columns where the file's first token line has 3"
    )
    path = write(tmp_path / "docstart.conll", "EU I-ORG\n-DOCSTART- O\n")
    assert fails(tmp_path, path, scheme=CONLL) == (
        f"{path}:2: -DOCSTART- inside a sentence. Put a blank line before it"
    )
    path = write(tmp_path / "empty.tsv", "\n\n")
    assert fails(tmp_path, path, scheme=DRUGS) == (
        f"{path}:1: the file is empty (no token lines). Give a file with data"
    )
    path = write(tmp_path / "header_only.conll", "-DOCSTART- -X- O O\n\n")
    assert fails(tmp_path, path, scheme=CONLL) == (
        f"{path}:1: the file has no token lines (empty or header-only). Give token lines with "
        "the tag in the last column"
    )
    path = write(tmp_path / "train.txt", "EU I-ORG\n")
    assert fails(tmp_path, path, scheme=CONLL) == (
        f"{path}: a .txt file may be plain text or CoNLL columns. Give the format: "
        "--format text|jsonl|conll|labelstudio|spacy"
    )


# ------------------------------------------------------------------------------ encodings


def test_a_utf8_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    bom = "\ufeff"
    conll = write(tmp_path / "bom.conll", bom + "EU I-ORG\nrejects O\n")
    _, docs = run(tmp_path, conll, scheme=CONLL)
    assert [tokens(d) for d in docs] == [["EU", "rejects"]]
    assert ents(docs[0]) == [("EU", "ORG")]
    text = write(tmp_path / "bom.txt", bom + "Hello world.")
    _, docs = run(tmp_path, text, format="text")
    assert [tokens(d) for d in docs] == [["Hello", "world", "."]]
    lines = write(tmp_path / "bom_lines.txt", bom + "\nHello world.\n")
    summary, docs = run(tmp_path, lines, format="text", text_mode="doc-per-line")
    assert [tokens(d) for d in docs] == [["Hello", "world", "."]]
    assert dict(summary.skipped) == {"blank lines": 1}
    jsonl = write(
        tmp_path / "bom.jsonl",
        bom + json.dumps({"text": "Rome.", "spans": [{"start": 0, "end": 4, "label": "LOC"}]}),
    )
    _, docs = run(tmp_path, jsonl, scheme=CONLL)
    assert ents(docs[0]) == [("Rome", "LOC")]


def test_non_utf8_bytes_name_file_line_and_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.conll", "EU I-ORG\n\nM\xfcnchen I-LOC\n".encode("latin1"))
    assert fails(tmp_path, path, scheme=CONLL) == (
        f"{path}:3: byte 0xfc at byte offset 11 of the file (byte 2 of the line) is not UTF-8. "
        "Save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
    )


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    for name, format_ in (("e.txt", "text"), ("e.jsonl", "jsonl"), ("e.json", "labelstudio")):
        path = write(tmp_path / name, "  \n")
        assert fails(tmp_path, path, format=format_, scheme=CONLL).startswith(
            f"{path}:1: the file is empty"
        )


# ----------------------------------------------------------------------------- Label Studio


def label_studio_task(task_id: int, text: str, annotations: list) -> dict:
    return {"id": task_id, "data": {"text": text}, "annotations": annotations}


def ls_result(start: int, end: int, label: str, text: str | None = None) -> dict:
    value = {"start": start, "end": end, "labels": [label]}
    if text is not None:
        value["text"] = text
    return {"type": "labels", "from_name": "label", "to_name": "text", "value": value}


def test_label_studio_takes_the_latest_annotation_that_was_not_cancelled(tmp_path: Path) -> None:
    text = "Obama visited Berlin. Then he left."
    tasks = [
        label_studio_task(
            7,
            text,
            [
                {"id": 1, "updated_at": "2024-01-01T00:00:00", "result": [ls_result(0, 5, "ORG")]},
                # the latest one: its span includes a space, which is trimmed
                {
                    "id": 2,
                    "updated_at": "2024-02-01T00:00:00",
                    "result": [
                        ls_result(0, 5, "PER", "Obama"),
                        ls_result(13, 20, "LOC", " Berlin"),
                        {"type": "textarea", "value": {"text": ["a comment"]}},
                    ],
                },
                {
                    "id": 3,
                    "updated_at": "2024-03-01T00:00:00",
                    "was_cancelled": True,
                    "result": [ls_result(0, 5, "MISC")],
                },
            ],
        ),
        label_studio_task(8, "Nothing to see.", [{"id": 4, "result": []}]),
    ]
    path = write(tmp_path / "export.json", json.dumps(tasks))
    summary, docs = run(tmp_path, path, scheme=CONLL)
    assert [d.text for d in docs] == ["Obama visited Berlin.", "Then he left.", "Nothing to see."]
    assert [ents(d) for d in docs] == [[("Obama", "PER"), ("Berlin", "LOC")], [], []]
    assert ids(docs) == [(0, 0), (1, 0), (2, 1)]
    assert summary.labelled_sentences == 3


def test_label_studio_unannotated_task_is_an_error_unless_kept(tmp_path: Path) -> None:
    tasks = [
        label_studio_task(1, "Done here.", [{"id": 1, "result": []}]),
        label_studio_task(2, "Not yet.", [{"id": 2, "was_cancelled": True, "result": []}]),
    ]
    path = write(tmp_path / "export.json", json.dumps(tasks))
    assert fails(tmp_path, path, scheme=CONLL) == (
        f"{path} task 2: the task has no annotation that was not cancelled. Annotate it, "
        "remove it, or pass --keep-unannotated to ingest it unlabelled"
    )
    summary, docs = run(tmp_path, path, scheme=CONLL, keep_unannotated=True)
    assert [d.user_data[meta.ANNOTATOR] for d in docs] == ["gold", "none"]
    assert [t.ent_iob_ for t in docs[1]] == ["", "", ""]
    assert dict(summary.skipped) == {"label studio tasks without annotation (kept unlabelled)": 1}
    tasks = [
        label_studio_task(
            3, "Visit Rome.", [{"id": 5, "result": [ls_result(6, 10, "LOC", "Paris")]}]
        )
    ]
    path = write(tmp_path / "wrong_text.json", json.dumps(tasks))
    assert fails(tmp_path, path, scheme=CONLL).startswith(
        f"{path} task 3 result #0: the text at 6-10 is 'Rome', not 'Paris'"
    )


# ------------------------------------------------------------------------------- DocBins


def test_docbins_keep_entities_and_are_split_when_needed(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    unsplit = nlp("Alice lives in Paris. Bob too.")
    unsplit.set_ents(
        [unsplit.char_span(0, 5, "PER"), unsplit.char_span(15, 20, "LOC")], default="outside"
    )
    meta.set_meta(unsplit, annotator="chatgpt", source="cheap")
    presplit = Doc(
        nlp.vocab,
        words=["One", ".", "Two", "."],
        sent_starts=[True, False, True, False],
        ents=["O", "O", "B-MISC", "O"],
    )
    db = DocBin(store_user_data=True)
    db.add(unsplit)
    db.add(presplit)
    path = tmp_path / "in.spacy"
    db.to_disk(path)
    summary, docs = run(tmp_path, path, scheme=CONLL)
    assert [d.text for d in docs] == ["Alice lives in Paris.", "Bob too.", "One .", "Two ."]
    assert [ents(d) for d in docs] == [
        [("Alice", "PER"), ("Paris", "LOC")],
        [],
        [],
        [("Two", "MISC")],
    ]
    assert ids(docs) == [(0, 0), (1, 0), (2, 1), (3, 1)]
    # a recorded annotator and source are kept
    assert [(d.user_data[meta.ANNOTATOR], d.user_data[meta.SOURCE]) for d in docs] == [
        ("chatgpt", "cheap"),
        ("chatgpt", "cheap"),
        ("gold", "gold"),
        ("gold", "gold"),
    ]
    # an ingested DocBin reads back unchanged (each Doc with a sent_id is one sentence)
    again = tmp_path / "again.spacy"
    second = ingest([tmp_path / "out" / "corpus.spacy"], again, scheme=CONLL)
    redone = read_docbin(again)
    assert [(d.text, ents(d), d.user_data) for d in redone] == [
        (d.text, ents(d), d.user_data) for d in docs
    ]
    assert second.to_dict()["entities_per_label"] == summary.to_dict()["entities_per_label"]
    db = DocBin()
    db.add(unsplit)
    path = tmp_path / "drugs.spacy"
    db.to_disk(path)
    assert fails(tmp_path, path, error=UnknownLabelError, scheme=DRUGS).startswith(
        f"unknown label 'PER' ({path} doc 0, entity 'Alice')"
    )


# ------------------------------------------------------------------------------ real data


def needs_data(relative: str) -> Path:
    path = DATA_DIR / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data folder (../shared/data) is not here")
    return path


def test_bc5cdr_train_is_read_as_iob2_with_its_labels(tmp_path: Path) -> None:
    train = needs_data("bc5cdr/train.tsv")
    scheme = load_scheme(PROJECT_ROOT / "configs" / "labels_bc5cdr.cfg")
    summary, docs = run(tmp_path, train, format="conll", scheme=scheme)
    assert summary.formats == {str(train): "conll/iob2"}
    assert summary.sentences == 4560 and len(docs) == 4560
    assert summary.entities == {"Chemical": 5203, "Disease": 4182}
    assert summary.tokens == 118170 and summary.repaired_i_starts == 0
    assert ents(docs[0]) == [
        ("Selegiline", "Chemical"),
        ("postural hypotension", "Disease"),
        ("Parkinson ' s disease", "Disease"),
    ]
    assert ents(docs[1]) == [
        ("Parkinson ' s Disease", "Disease"),
        ("Parkinson ' s disease", "Disease"),
        ("PD", "Disease"),
        ("selegiline", "Chemical"),
        ("L - dopa", "Chemical"),
        ("L - dopa", "Chemical"),
    ]
    assert docs[-1].user_data[meta.SENT_ID] == 4559


def test_conll2003_dev_is_detected_as_iob1(tmp_path: Path) -> None:
    dev = needs_data("conll2003/dev.txt")
    summary, docs = run(tmp_path, dev, format="conll", scheme=CONLL)
    assert summary.formats == {str(dev): "conll/iob1"}
    assert (summary.sentences, summary.documents, summary.tokens) == (3250, 216, 51362)
    assert summary.entities == {"PER": 1842, "LOC": 1837, "ORG": 1341, "MISC": 922}


# ------------------------------------------------------------------------------------ CLI


def test_cli_ingests_and_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths: wasabi wraps long lines
    tmp_path = Path(".")
    labels = write(tmp_path / "labels.cfg", '[labels]\nDrug = "A medicine."\n')
    first = write(tmp_path / "a.tsv", "Aspirin\tB-Drug\nhelps\tO\n")
    second = write(tmp_path / "b.jsonl", json.dumps({"tokens": ["Take", "it"], "ner_tags": [0, 0]}))
    output = tmp_path / "corpus.spacy"
    result = run_cli(
        app,
        [
            str(first),
            str(second),
            str(output),
            "--labels",
            str(labels),
            "--tag-names",
            "O,B-Drug,I-Drug",
        ],
    )
    assert result.exit_code == 0, result.output
    output_text = " ".join(result.output.split())
    assert "2 sentences (2 labelled) in 2 documents from 2 files, 4 tokens" in output_text
    assert [ents(d) for d in read_docbin(output)] == [[("Aspirin", "Drug")], []]
    bad = write(tmp_path / "c.tsv", "Aspirin\tB-Chemical\n")
    result = run_cli(app, [str(bad), str(tmp_path / "bad.spacy"), "--labels", str(labels)])
    assert result.exit_code == 1
    output_text = " ".join(result.output.split())
    assert f"unknown label 'Chemical' ({bad}:1)" in output_text
    assert not (tmp_path / "bad.spacy").exists()
