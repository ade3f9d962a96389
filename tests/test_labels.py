"""The label scheme: one file sets the labels of every step (nerloop/labels.py, the tagger configs'
``nerloop.label_scheme.v1``, exports, imports, compare, analyze, the report), and no CoNLL label is
a constant in library code."""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

import components.bio_ner as bio_ner
from nerloop.corpus import meta
from nerloop.corpus.conll import ConllFormatError, read_tagged_columns
from nerloop.eval.analyze import quality_table
from nerloop.eval.compare import compare_predictions, comparison_table
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.formats.common import (
    LABEL_STUDIO_CONFIG_FILE,
    LABEL_STUDIO_TASKS_FILE,
    PRODIGY_TASKS_FILE,
)
from nerloop.formats.export import ExportError, export_batch
from nerloop.formats.importing import ImportValidationError, import_annotations
from nerloop.io_utils import read_docbin, write_docbin
from nerloop.labels import (
    DEFAULT_SCHEME_PATH,
    LabelScheme,
    LabelSchemeError,
    UnknownLabelError,
    load_scheme,
)
from nerloop.report.report import entity_counts_table

ROOT = Path(__file__).resolve().parent.parent
TINY_CONFIG = ROOT / "configs" / "tagger_tiny.cfg"
CONLL = ["PER", "LOC", "ORG", "MISC"]
CUSTOM = ["JOB_TITLE", "DRUG", "SYMPTOM"]
DESCRIPTIONS = {
    "JOB_TITLE": "A job or position held by a person, e.g. nurse.",
    "DRUG": "A medicine or active substance, e.g. aspirin.",
    "SYMPTOM": "A sign of illness a patient has, e.g. fever.",
}
RULES = "a label starts with a letter and holds only letters, digits, '_', '.' or '-'"


def write_scheme(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf8")
    return path


@pytest.fixture
def custom_scheme(tmp_path: Path) -> Path:
    lines = "".join(f"{label} = {json.dumps(text)}\n" for label, text in DESCRIPTIONS.items())
    return write_scheme(tmp_path / "medical.cfg", "# a user's own labels\n[labels]\n" + lines)


# ---------------------------------------------------------------------------------------------
# nerloop/labels.py: loading and validation
# ---------------------------------------------------------------------------------------------


def test_default_scheme_is_conll_in_file_order() -> None:
    scheme = load_scheme(None)
    assert scheme.labels == tuple(CONLL)
    assert scheme.path == DEFAULT_SCHEME_PATH
    assert scheme.tag_names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"] + [
        "B-ORG",
        "I-ORG",
        "B-MISC",
        "I-MISC",
    ]
    assert scheme.description("MISC").startswith("Other names: nationalities")


def test_custom_scheme_keeps_file_order_and_descriptions(custom_scheme: Path) -> None:
    scheme = load_scheme(custom_scheme)
    assert scheme.labels == tuple(CUSTOM)
    assert scheme.descriptions == DESCRIPTIONS
    assert scheme.tag_names == [
        "O",
        "B-JOB_TITLE",
        "I-JOB_TITLE",
        "B-DRUG",
        "I-DRUG",
        "B-SYMPTOM",
        "I-SYMPTOM",
    ]


def test_missing_scheme_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.cfg"
    with pytest.raises(LabelSchemeError) as err:
        load_scheme(path)
    assert str(err.value) == (
        f"label scheme {path} does not exist: write a file with a [labels] section "
        f'(one `LABEL = "description"` per line; see {DEFAULT_SCHEME_PATH})'
    )


def test_scheme_without_labels_section(tmp_path: Path) -> None:
    path = write_scheme(tmp_path / "s.cfg", '[entities]\nDRUG = "a medicine"\n')
    with pytest.raises(LabelSchemeError) as err:
        load_scheme(path)
    assert str(err.value) == (
        f"label scheme {path} has no [labels] section: add one with a "
        '`LABEL = "description"` line per label'
    )
    path = write_scheme(tmp_path / "empty.cfg", "[labels]\n")
    with pytest.raises(LabelSchemeError) as err:
        load_scheme(path)
    assert str(err.value) == f"the label scheme in {path} lists no labels"


@pytest.mark.parametrize(
    "line,label",
    [('9LIVES = "cats"', "9LIVES"), ('O = "outside"', "O"), ('JOB TITLE = "a job"', "JOB TITLE")],
)
def test_bad_label(tmp_path: Path, line: str, label: str) -> None:
    path = write_scheme(tmp_path / "s.cfg", f'[labels]\nDRUG = "a medicine"\n{line}\n')
    with pytest.raises(LabelSchemeError) as err:
        load_scheme(path)
    assert str(err.value) == (
        f"label {label!r} in {path} is not usable: {RULES} (and 'O' means outside)"
    )


def test_duplicate_label(tmp_path: Path) -> None:
    path = write_scheme(tmp_path / "s.cfg", '[labels]\nDRUG = "a"\nSYMPTOM = "b"\ndrug = "c"\n')
    with pytest.raises(LabelSchemeError) as err:
        load_scheme(path)
    assert str(err.value) == f"label 'drug' in {path} is listed twice"
    path = write_scheme(tmp_path / "same.cfg", '[labels]\nDRUG = "a"\nDRUG = "b"\n')
    with pytest.raises(LabelSchemeError) as err:
        load_scheme(path)
    assert str(err.value).startswith(f"label scheme {path} cannot be read: ")
    assert "option 'DRUG' in section 'labels' already exists" in str(err.value)


@pytest.mark.parametrize("value,shown", [("3", "3"), ('["a medicine"]', "['a medicine']")])
def test_description_must_be_a_string(tmp_path: Path, value: str, shown: str) -> None:
    path = write_scheme(tmp_path / "s.cfg", f'[labels]\nSYMPTOM = "b"\nDRUG = {value}\n')
    with pytest.raises(LabelSchemeError) as err:
        load_scheme(path)
    assert str(err.value) == (
        f"label 'DRUG' in {path}: its description must be a quoted string, got {shown}"
    )


def test_check_names_where_and_the_scheme(custom_scheme: Path) -> None:
    scheme = load_scheme(custom_scheme)
    assert scheme.check("DRUG", "a.jsonl line 3") == "DRUG"
    with pytest.raises(UnknownLabelError) as err:
        scheme.check("drug", "a.jsonl line 3")
    assert str(err.value) == (
        f"unknown label 'drug' (a.jsonl line 3): the label scheme in {custom_scheme} has "
        "JOB_TITLE, DRUG, SYMPTOM; did you mean 'DRUG'? Add it to the scheme or fix the input."
    )
    with pytest.raises(UnknownLabelError) as err:
        LabelScheme(("DRUG",)).check("PER")
    assert str(err.value) == (
        "unknown label 'PER': the label scheme has DRUG. Add it to the scheme or fix the input."
    )


# ---------------------------------------------------------------------------------------------
# components/bio_ner.py: nerloop.label_scheme.v1
# ---------------------------------------------------------------------------------------------


def test_read_label_scheme_gives_the_file_order(custom_scheme: Path) -> None:
    assert bio_ner.read_label_scheme(str(custom_scheme)) == CUSTOM
    assert bio_ner.read_label_scheme() == CONLL
    assert bio_ner.default_label_scheme_path() == DEFAULT_SCHEME_PATH.resolve()
    config = {"labels": {"@misc": "nerloop.label_scheme.v1", "path": str(custom_scheme)}}
    assert spacy.util.registry.resolve(config)["labels"] == CUSTOM


def test_read_label_scheme_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.cfg"
    with pytest.raises(FileNotFoundError) as err:
        bio_ner.read_label_scheme(str(missing))
    assert str(err.value) == (
        f"label scheme {missing} does not exist: set paths.labels to a file with a [labels] "
        'section (one LABEL = "description" line per label), or to null for the default scheme'
    )
    for name, text in (("none.cfg", '[other]\nX = "y"\n'), ("empty.cfg", "[labels]\n")):
        path = write_scheme(tmp_path / name, text)
        with pytest.raises(ValueError) as err:
            bio_ner.read_label_scheme(str(path))
        assert str(err.value) == (
            f"label scheme {path} has no labels: add a [labels] section with one "
            'LABEL = "description" line per label'
        )


# ---------------------------------------------------------------------------------------------
# A 3-label scheme through spacy train, export and import
# ---------------------------------------------------------------------------------------------

# (words, entities as (start token, end token, label))
MEDICAL = [
    (
        ["The", "nurse", "gave", "aspirin", "for", "fever", "."],
        [(1, 2, "JOB_TITLE"), (3, 4, "DRUG"), (5, 6, "SYMPTOM")],
    ),
    (["A", "surgeon", "took", "ibuprofen", "."], [(1, 2, "JOB_TITLE"), (3, 4, "DRUG")]),
    (["Her", "cough", "got", "worse", "."], [(1, 2, "SYMPTOM")]),
    (["Nothing", "happened", "today", "."], []),
    (
        ["The", "nurse", "noted", "fever", "and", "cough", "."],
        [(1, 2, "JOB_TITLE"), (3, 4, "SYMPTOM"), (5, 6, "SYMPTOM")],
    ),
]


def medical_docs() -> list[Doc]:
    vocab = Vocab()
    docs = []
    for i, (words, ents) in enumerate(MEDICAL):
        doc = Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
        doc.set_ents([Span(doc, s, e, label=label) for s, e, label in ents], default="outside")
        meta.set_meta(doc, sent_id=200 + i, doc_id=0, split="train", source="gold")
        docs.append(doc)
    return docs


def gold_ents() -> dict[int, list[tuple[str, str]]]:
    return {meta.sent_id(doc): ents(doc) for doc in medical_docs()}


def ents(doc: Doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


@pytest.fixture(scope="module")
def medical(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny tagger trained by ``spacy train`` with ``paths.labels`` set to a 3-label scheme."""
    from spacy.cli.train import train

    base = tmp_path_factory.mktemp("medical")
    lines = "".join(f"{label} = {json.dumps(text)}\n" for label, text in DESCRIPTIONS.items())
    scheme = write_scheme(base / "medical.cfg", "[labels]\n" + lines)
    corpus = write_docbin(base / "corpus.spacy", medical_docs())
    train(
        TINY_CONFIG,
        base / "training",
        overrides={
            "paths.train": str(corpus),
            "paths.dev": str(corpus),
            "paths.labels": str(scheme),
            "training.max_epochs": 40,
        },
    )
    return {"scheme": scheme, "corpus": corpus, "model": base / "training" / "model-best"}


def test_spacy_train_tags_the_schemes_labels_in_order(medical: dict[str, Path]) -> None:
    tagger = load_pipeline(medical["model"]).get_pipe("bio_ner")
    assert tagger.labels == tuple(CUSTOM)
    assert tagger.tag_names == load_scheme(medical["scheme"]).tag_names


def test_export_import_round_trip_with_a_custom_scheme(
    medical: dict[str, Path], tmp_path: Path
) -> None:
    nlp = load_pipeline(medical["model"])
    predicted, _ = predict_with_probs(nlp, read_docbin(medical["corpus"], nlp.vocab))
    assert {200 + i: ents(doc) for i, doc in enumerate(predicted)} == gold_ents()  # overfitted
    out = tmp_path / "export"
    summary = export_batch(medical["model"], medical["corpus"], out, labels=medical["scheme"])
    assert summary["labels"] == CUSTOM
    assert summary["prodigy_command"] == (
        f"prodigy ner.manual DATASET blank:en {out / PRODIGY_TASKS_FILE} "
        "--label JOB_TITLE,DRUG,SYMPTOM"
    )
    root = ElementTree.fromstring((out / LABEL_STUDIO_CONFIG_FILE).read_text(encoding="utf8"))
    assert [label.attrib for label in root.find("Labels")] == [
        {"value": label, "hint": text} for label, text in DESCRIPTIONS.items()
    ]
    # Label Studio: the expert submits the pre-annotations unchanged
    tasks = json.loads((out / LABEL_STUDIO_TASKS_FILE).read_text(encoding="utf8"))
    for i, task in enumerate(tasks):
        task["id"] = 700 + i
        task["annotations"] = [
            {"id": i, "completed_by": 3, "result": task["predictions"][0]["result"]}
        ]
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks), encoding="utf8")
    output = tmp_path / "expert.spacy"
    result = import_annotations(export, medical["corpus"], output, labels=medical["scheme"])
    assert result["n_imported"] == 5 and result["n_entities"] == 9
    docs = read_docbin(output, Vocab())
    assert {meta.sent_id(doc): ents(doc) for doc in docs} == gold_ents()
    # Prodigy: accepted as they are
    rows = [json.loads(line) for line in (out / PRODIGY_TASKS_FILE).read_text().splitlines()]
    export = tmp_path / "db-out.jsonl"
    export.write_text("".join(json.dumps({**row, "answer": "accept"}) + "\n" for row in rows))
    import_annotations(export, medical["corpus"], tmp_path / "p.spacy", labels=medical["scheme"])
    docs = read_docbin(tmp_path / "p.spacy", Vocab())
    assert {meta.sent_id(doc): ents(doc) for doc in docs} == gold_ents()
    # the default scheme refuses the custom labels, naming the task and the span
    with pytest.raises(ImportValidationError) as err:
        import_annotations(export, medical["corpus"], tmp_path / "default.spacy")
    assert str(err.value.problems[0]) == (
        "task line 1, sent_id 200: unknown label 'JOB_TITLE' (span 4:9): the label scheme in "
        f"{DEFAULT_SCHEME_PATH} has PER, LOC, ORG, MISC. Add it to the scheme or fix the input."
    )
    assert len(err.value.problems) == 9 and str(export) in str(err.value)
    assert not (tmp_path / "default.spacy").exists()


def test_export_refuses_labels_outside_the_scheme(medical: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError) as err:
        export_batch(medical["model"], medical["corpus"], tmp_path / "export")
    assert str(err.value) == (
        "the model predicts labels ['DRUG', 'JOB_TITLE', 'SYMPTOM'] that the label scheme of "
        f"{DEFAULT_SCHEME_PATH} does not offer (PER, LOC, ORG, MISC): the experts could not "
        "keep them. Export with the scheme the model was trained with (--labels)"
    )
    assert not (tmp_path / "export").exists()


# ---------------------------------------------------------------------------------------------
# Readers and tables take the scheme
# ---------------------------------------------------------------------------------------------


def test_compare_table_lists_the_schemes_labels_in_order(custom_scheme: Path) -> None:
    gold = [["B-JOB_TITLE", "O", "B-DRUG"], ["B-SYMPTOM", "I-SYMPTOM", "O"]]
    pred_a = [["B-JOB_TITLE", "O", "O"], ["O", "O", "O"]]
    result = compare_predictions(gold, pred_a, gold, n_resamples=20, seed=0, labels=custom_scheme)
    assert result["per_type_f1"] == {
        "JOB_TITLE": {"a": 1.0, "b": 1.0, "diff": 0.0},
        "DRUG": {"a": 0.0, "b": 1.0, "diff": 1.0},
        "SYMPTOM": {"a": 0.0, "b": 1.0, "diff": 1.0},
        "micro": {"a": 0.5, "b": 1.0, "diff": 0.5},
    }
    assert comparison_table(result, "llm", "gold").splitlines()[:6] == [
        "| type | llm F1 | gold F1 | difference |",
        "|---|---|---|---|",
        "| JOB_TITLE | 1.0000 | 1.0000 | +0.0000 |",
        "| DRUG | 0.0000 | 1.0000 | +1.0000 |",
        "| SYMPTOM | 0.0000 | 1.0000 | +1.0000 |",
        "| micro | 0.5000 | 1.0000 | +0.5000 |",
    ]
    with pytest.raises(UnknownLabelError) as err:
        compare_predictions([["B-PER"]], [["O"]], [["O"]], n_resamples=5, labels=custom_scheme)
    assert str(err.value) == (
        f"unknown label 'PER' (gold sentence 0): the label scheme in {custom_scheme} has "
        "JOB_TITLE, DRUG, SYMPTOM. Add it to the scheme or fix the input."
    )


def test_column_reader_checks_tags_against_the_scheme(tmp_path: Path, custom_scheme: Path) -> None:
    path = tmp_path / "tags.txt"
    path.write_text("aspirin B-DRUG\nfor O\nfever B-SYMPTOM\n\nPeter B-PER\n", encoding="utf8")
    with pytest.raises(ConllFormatError) as err:
        read_tagged_columns(path, n_columns=2, tag_column=1, separator=" ", labels=custom_scheme)
    assert str(err.value) == (
        f"{path}:5: unknown NER tag 'B-PER' (allowed tags: O, B-X, I-X with X in "
        f"JOB_TITLE/DRUG/SYMPTOM (label scheme {custom_scheme}))"
    )
    with pytest.raises(ConllFormatError, match=rf"{re.escape(str(path))}:1: unknown NER tag"):
        read_tagged_columns(path, n_columns=2, tag_column=1, separator=" ")


def test_report_and_analyze_tables_follow_the_scheme(custom_scheme: Path) -> None:
    scheme = load_scheme(custom_scheme)
    distributions = {
        "train": {"entity": {"SYMPTOM": 5, "DRUG": 2, "OTHER": 1}},
        "dev": {"entity": {"JOB_TITLE": 1}},
    }
    assert entity_counts_table(distributions, scheme).splitlines() == [
        "| entity | train | dev |",
        "|---|---:|---:|",
        "| JOB_TITLE | 0 | 1 |",
        "| DRUG | 2 | 0 |",
        "| SYMPTOM | 5 | 0 |",
        "| OTHER | 1 | 0 |",
        "| all | 8 | 1 |",
    ]
    scores = {"n_sentences": 10, "precision": 0.5, "recall": 0.25, "f1": 1 / 3}
    scores["per_type"] = {"DRUG": {"f1": 0.75}}
    assert quality_table({"llm": scores}, labels=scheme).splitlines() == [
        "| LLM set | sentences | P | R | F1 | JOB_TITLE F1 | DRUG F1 | SYMPTOM F1 |",
        "|---|---|---|---|---|---|---|---|",
        "| llm | 10 | 0.500 | 0.250 | **0.333** | 0.000 | 0.750 | 0.000 |",
    ]


# ---------------------------------------------------------------------------------------------
# No CoNLL label is a constant in library code
# ---------------------------------------------------------------------------------------------

CONLL_LABEL = re.compile(r"^(?:[BIESLU]-)?(?:PER|LOC|ORG|MISC)$")  # also as IOB/BILUO tags
CONSTANT_NAME = re.compile(r"\bENTITY_LABELS\b")


def _literal_items(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return list(node.elts)
    if isinstance(node, ast.Dict):
        return [key for key in node.keys if key is not None]
    return []


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.alias):
        return node.asname or node.name
    return ""


def label_constants(path: Path) -> list[int]:
    """Lines of ``path`` with a list, tuple, set or dict literal holding two or more CoNLL labels
    (or tags), or the name ``ENTITY_LABELS``; docstrings and comments do not count."""
    lines = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"), str(path))):
        labels = [
            item.value
            for item in _literal_items(node)
            if isinstance(item, ast.Constant)
            and isinstance(item.value, str)
            and CONLL_LABEL.match(item.value)
        ]
        if len(labels) >= 2 or CONSTANT_NAME.search(_name(node)):
            lines.add(node.lineno)
    return sorted(lines)


def test_the_scan_finds_label_constants(tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_text(
        '"""Docs may say ("PER", "LOC")."""\n'
        "# a comment may too: ['PER', 'LOC']\n"
        'LABELS = (\n    "PER",\n    "LOC",\n)\n'
        'TAGS = ["O", "B-ORG", "I-ORG", "B-MISC"]\n'
        'ONE = ["PER"]\n'
        "from nerloop.corpus.meta import ENTITY_LABELS\n"
        "x = meta.ENTITY_LABELS\n",
        encoding="utf8",
    )
    assert label_constants(path) == [3, 7, 9, 10]


def test_no_conll_label_constants_in_library_code() -> None:
    files = [
        path
        for folder in ("nerloop", "components")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "schemes" not in path.relative_to(ROOT / folder).parts
    ]
    assert len(files) > 50
    hits = [f"{path.relative_to(ROOT)}:{line}" for path in files for line in label_constants(path)]
    assert hits == [], (
        "label constants in library code (take a nerloop.labels.LabelScheme instead): "
        + ", ".join(hits)
    )
