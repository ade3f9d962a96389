from __future__ import annotations

from pathlib import Path

import pytest

from nerloop.corpus.conll import (
    ConllFormatError,
    Span,
    read_aligned_jsonl,
    read_conll2003,
    read_tagged_columns,
    spans_from_iob1,
    spans_from_iob2,
    spans_to_iob2,
)


def write(tmp_path: Path, text: str, name: str = "in.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    return path


def test_read_conll2003_counts_sentences_and_documents(fixture_assets: Path) -> None:
    sentences = read_conll2003(fixture_assets / "conll2003" / "train.txt")
    assert [s.tokens for s in sentences] == [
        ["EU", "rejects", "German", "call", "."],
        ["Peter", "Blackburn"],
        ["BRUSSELS", "1996-08-22"],
        ["Peter", "Blackburn"],
        ["Jordan", "Smith", "met", "Rabat"],
    ]
    assert [s.sent_id for s in sentences] == [0, 1, 2, 3, 4]
    assert [s.doc_id for s in sentences] == [0, 0, 1, 1, 1]
    assert sentences[0].line == 3 and sentences[0].lines == [3, 4, 5, 6, 7]
    assert sentences[0].pos == ["NNP", "VBZ", "JJ", "NN", "."]
    assert sentences[0].chunks == ["I-NP", "I-VP", "I-NP", "I-NP", "O"]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["I-ORG", "O", "I-MISC", "O"], [Span(0, 1, "ORG"), Span(2, 3, "MISC")]),
        (["I-PER", "I-PER"], [Span(0, 2, "PER")]),
        # B- separates two adjacent entities of the same type in IOB1
        (
            ["I-PER", "B-PER", "O", "I-LOC"],
            [Span(0, 1, "PER"), Span(1, 2, "PER"), Span(3, 4, "LOC")],
        ),
        # a type change starts a new entity
        (["I-PER", "I-LOC"], [Span(0, 1, "PER"), Span(1, 2, "LOC")]),
        (["O", "O"], []),
        ([], []),
    ],
)
def test_spans_from_iob1(tags: list[str], expected: list[Span]) -> None:
    assert spans_from_iob1(tags) == expected


def test_spans_from_iob2_repairs_and_counts() -> None:
    spans, counts = spans_from_iob2(["O", "I-PER", "I-PER", "I-LOC", "[CLS]", "I-LOC", "B-ORG"])
    assert spans == [Span(1, 3, "PER"), Span(3, 4, "LOC"), Span(5, 6, "LOC"), Span(6, 7, "ORG")]
    assert counts.invalid_continuations == 3  # I-PER after O, I-LOC after PER, I-LOC after [CLS]
    assert counts.garbage_tags == 1


def test_spans_to_iob2_round_trip() -> None:
    spans = [Span(0, 2, "PER"), Span(2, 3, "PER"), Span(4, 5, "MISC")]
    tags = spans_to_iob2(spans, 5)
    assert tags == ["B-PER", "I-PER", "B-PER", "O", "B-MISC"]
    assert spans_from_iob2(tags)[0] == spans


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ\n")
    with pytest.raises(ConllFormatError) as err:
        read_conll2003(path)
    assert err.value.line == 4
    assert str(err.value).startswith(f"{path}:4: expected 4 space-separated columns")


def test_wrong_column_count_with_extra_column(tmp_path: Path) -> None:
    path = write(tmp_path, "EU NNP I-NP I-ORG extra\n")
    with pytest.raises(ConllFormatError, match=r":1: expected 4 space-separated columns"):
        read_conll2003(path)


def test_empty_column_is_malformed(tmp_path: Path) -> None:
    path = write(tmp_path, "EU NNP  I-ORG\n")
    with pytest.raises(ConllFormatError, match=r":1: expected 4"):
        read_conll2003(path)


def test_unknown_tag_in_gold_stops(tmp_path: Path) -> None:
    path = write(tmp_path, "EU NNP I-NP I-ORG\n\nParis NNP I-NP I-CITY\n")
    with pytest.raises(ConllFormatError) as err:
        read_conll2003(path)
    assert err.value.line == 3
    assert "unknown NER tag 'I-CITY'" in str(err.value)
    assert "allowed tags" in str(err.value)


def test_garbage_tag_is_an_error_in_gold(tmp_path: Path) -> None:
    path = write(tmp_path, "EU NNP I-NP [CLS]\n")
    with pytest.raises(ConllFormatError, match="unknown NER tag"):
        read_conll2003(path)


def test_docstart_inside_sentence(tmp_path: Path) -> None:
    path = write(tmp_path, "EU NNP I-NP I-ORG\n-DOCSTART- -X- O O\n")
    with pytest.raises(ConllFormatError, match=r":2: -DOCSTART- inside a sentence"):
        read_conll2003(path)


def test_tagged_columns_reader(tmp_path: Path) -> None:
    path = write(tmp_path, "EU\tB-ORG\tB-ORG\nsays\tO\tO\n\nParis\t[CLS]\tB-LOC\n")
    sentences = read_tagged_columns(path, n_columns=3, tag_column=1)
    assert [(s.tokens, s.tags, s.line) for s in sentences] == [
        (["EU", "says"], ["B-ORG", "O"], 1),
        (["Paris"], ["[CLS]"], 4),
    ]


def test_tagged_columns_wrong_count_and_unknown_tag(tmp_path: Path) -> None:
    path = write(tmp_path, "EU\tB-ORG\n")
    with pytest.raises(ConllFormatError, match=r":1: expected 3 tab-separated columns"):
        read_tagged_columns(path, n_columns=3, tag_column=1)
    path = write(tmp_path, "EU B-ORG\nParis B-GPE\n", "b.txt")
    with pytest.raises(ConllFormatError, match=r"b.txt:2: unknown NER tag 'B-GPE'"):
        read_tagged_columns(path, n_columns=2, tag_column=1, separator=" ")


def test_aligned_jsonl_bad_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path, '{"conll03_train_sent_idx": 0, "tokens": ["a"], "llm_tags": ["O"]}\nnot json\n'
    )
    with pytest.raises(ConllFormatError, match=r":2: not a valid aligned-sentence object"):
        read_aligned_jsonl(path)
    path = write(
        tmp_path, '{"conll03_train_sent_idx": 0, "tokens": ["a", "b"], "llm_tags": ["O"]}\n'
    )
    with pytest.raises(ConllFormatError, match=r":1: 2 tokens but 1 tags"):
        read_aligned_jsonl(path)
