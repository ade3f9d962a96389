from __future__ import annotations

from pathlib import Path

import pytest

from nerloop.corpus import meta
from nerloop.corpus.conll import ConllFormatError
from nerloop.corpus.preprocess import preprocess
from nerloop.corpus.recorded_sets import RECORDED_SETS, UnknownRecordedSetError
from nerloop.errors import NerloopError
from nerloop.eval.analyze import analyze
from nerloop.io_utils import MissingInputError, read_docbin

ALL_SETS = list(RECORDED_SETS)


def ents(doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


def test_gold_docs_keep_tokens_entities_and_ids(fixture_assets: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    report = preprocess(fixture_assets, corpus, ALL_SETS)
    train = read_docbin(corpus / "train.spacy")
    assert [d.text for d in train][:2] == ["EU rejects German call .", "Peter Blackburn"]
    assert ents(train[0]) == [("EU", "ORG"), ("German", "MISC")]
    # IOB1 B-PER right after I-PER is a second entity
    assert ents(train[4]) == [("Jordan", "PER"), ("Smith", "PER"), ("Rabat", "LOC")]
    assert [d.user_data[meta.SENT_ID] for d in train] == [0, 1, 2, 3, 4]
    assert [d.user_data[meta.DOC_ID] for d in train] == [0, 0, 1, 1, 1]
    assert train[0].user_data[meta.ANNOTATOR] == "gold"
    assert list(train[0].user_data[meta.CHUNK_TAGS]) == ["I-NP", "I-VP", "I-NP", "I-NP", "O"]
    assert [t.tag_ for t in train[0]] == ["NNP", "VBZ", "JJ", "NN", "."]
    # tokens outside entities are annotated O, not missing
    assert [t.ent_iob_ for t in train[0]] == ["B", "O", "B", "O", "O"]
    assert report["splits"]["train"] == {
        "file": str(fixture_assets / "conll2003" / "train.txt"),
        "sentences": 5,
        "documents": 2,
        "tokens": 15,
        "entities": 8,
        "entities_per_type": {"LOC": 2, "MISC": 1, "ORG": 1, "PER": 4},
    }
    dev = read_docbin(corpus / "dev.spacy")
    assert ents(dev[0]) == [("Japan", "LOC")] and dev[0].user_data[meta.SPLIT] == "dev"


def test_cheap_sets_aligned_and_repaired(fixture_assets: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    report = preprocess(fixture_assets, corpus, ALL_SETS)
    chatgpt = read_docbin(corpus / "cheap" / "chatgpt.spacy")
    assert len(chatgpt) == 5
    # I-MISC after O repaired to a start; Blackburn O -> one-token PER
    assert ents(chatgpt[0]) == [("EU", "ORG"), ("German", "MISC")]
    assert ents(chatgpt[3]) == [("Peter", "PER")]
    assert {d.user_data[meta.ANNOTATOR] for d in chatgpt} == {"chatgpt"}
    assert {d.user_data[meta.SOURCE] for d in chatgpt} == {"cheap"}
    assert report["cheap"]["chatgpt"]["repaired_invalid_continuations"] == 1
    uniner = read_docbin(corpus / "cheap" / "uniner.spacy")
    # digits restored from gold while the labels come from the 0-normalised file
    assert uniner[2].text == "BRUSSELS 1996-08-22"
    assert ents(uniner[2]) == [("BRUSSELS", "LOC"), ("1996-08-22", "MISC")]
    llama = read_docbin(corpus / "cheap" / "llama405b.spacy")
    # aligned by tokens: the repeated "Peter Blackburn" takes the first unused match
    assert [d.user_data[meta.SENT_ID] for d in llama] == [1, 3, 4]
    assert ents(llama[1]) == [("Peter", "PER"), ("Blackburn", "LOC")]
    # [CLS] dropped, the I-PER after it repaired to a start
    assert ents(llama[2]) == [("Smith", "PER"), ("Rabat", "LOC")]
    assert report["cheap"]["llama405b"]["dropped_garbage_tags"] == 1
    assert report["cheap"]["llama405b"]["repaired_invalid_continuations"] == 2
    noisebench = read_docbin(corpus / "cheap" / "noisebench.spacy")
    assert [d.user_data[meta.SENT_ID] for d in noisebench] == [0, 4]


def test_missing_local_only_set_is_skipped(fixture_assets: Path, tmp_path: Path) -> None:
    (fixture_assets / RECORDED_SETS["noisebench"].path).unlink()
    report = preprocess(fixture_assets, tmp_path / "corpus", ALL_SETS)
    assert "noisebench" in report["skipped"]
    assert not (tmp_path / "corpus" / "cheap" / "noisebench.spacy").exists()


def _assert_nothing_written(corpus: Path) -> None:
    assert not corpus.exists() or not any(p.is_file() for p in corpus.rglob("*")), list(
        corpus.rglob("*")
    )


def test_unknown_set_and_missing_split_are_nerloop_errors(
    fixture_assets: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        UnknownRecordedSetError, match="unknown recorded set 'gpt5'; known: chatgpt"
    ):
        preprocess(fixture_assets, tmp_path / "corpus", ["gpt5"])
    (fixture_assets / "conll2003" / "dev.txt").unlink()
    with pytest.raises(MissingInputError, match=r"dev.txt does not exist: run `python -m spacy"):
        preprocess(fixture_assets, tmp_path / "corpus", ALL_SETS)
    for error, builtin in ((UnknownRecordedSetError, ValueError), (MissingInputError, OSError)):
        assert issubclass(error, NerloopError) and issubclass(error, builtin)
    assert not (tmp_path / "corpus").exists()


def test_token_mismatch_by_position_stops_with_line(fixture_assets: Path, tmp_path: Path) -> None:
    path = fixture_assets / RECORDED_SETS["chatgpt"].path
    path.write_text(path.read_text().replace("Blackburn\tI-PER", "Blackbum\tI-PER", 1))
    corpus = tmp_path / "corpus"
    with pytest.raises(ConllFormatError) as err:
        preprocess(fixture_assets, corpus, ALL_SETS)
    assert err.value.path == str(path) and err.value.line == 7
    assert "does not match train sentence 1 (conll2003/train.txt:9)" in str(err.value)
    assert "token 1: 'Blackbum' vs train 'Blackburn'" in str(err.value)
    _assert_nothing_written(corpus)


def test_sentence_count_mismatch(fixture_assets: Path, tmp_path: Path) -> None:
    path = fixture_assets / RECORDED_SETS["uniner"].path
    path.write_text(path.read_text() + "\nextra\tO\tO\n")
    with pytest.raises(ConllFormatError, match="6 sentences, but train has 5"):
        preprocess(fixture_assets, tmp_path / "corpus", ALL_SETS)
    _assert_nothing_written(tmp_path / "corpus")


def test_token_match_alignment_failure(fixture_assets: Path, tmp_path: Path) -> None:
    path = fixture_assets / RECORDED_SETS["llama405b"].path
    path.write_text(path.read_text() + "\nPeter B-PER\nBlackburn I-PER\n")  # a third copy
    with pytest.raises(ConllFormatError) as err:
        preprocess(fixture_assets, tmp_path / "corpus", ALL_SETS)
    assert err.value.line == 12 and "every identical one is already taken" in str(err.value)
    path.write_text("Nobody B-PER\n")
    with pytest.raises(ConllFormatError, match=r"llm.txt:1: no train sentence has the tokens"):
        preprocess(fixture_assets, tmp_path / "corpus", ALL_SETS)
    _assert_nothing_written(tmp_path / "corpus")


def test_index_alignment_failures(fixture_assets: Path, tmp_path: Path) -> None:
    path = fixture_assets / RECORDED_SETS["noisebench"].path
    path.write_text('{"conll03_train_sent_idx": 1, "tokens": ["EU"], "llm_tags": ["O"]}\n')
    with pytest.raises(ConllFormatError, match=r":1: tokens differ from train sentence 1"):
        preprocess(fixture_assets, tmp_path / "corpus", ALL_SETS)
    path.write_text('{"conll03_train_sent_idx": 99, "tokens": ["EU"], "llm_tags": ["O"]}\n')
    with pytest.raises(ConllFormatError, match="index 99 out of range"):
        preprocess(fixture_assets, tmp_path / "corpus", ALL_SETS)


def test_bad_gold_leaves_previous_corpus_untouched(fixture_assets: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    preprocess(fixture_assets, corpus, ALL_SETS)
    before = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    test_path = fixture_assets / "conll2003" / "test.txt"
    test_path.write_text(test_path.read_text() + "\nBeijing NNP I-NP I-GPE\n")
    with pytest.raises(ConllFormatError, match=r"test.txt:7: unknown NER tag 'I-GPE'"):
        preprocess(fixture_assets, corpus, ALL_SETS)
    after = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    assert after == before


def test_cli_reports_file_and_line(fixture_assets: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    (fixture_assets / "conll2003" / "dev.txt").write_text("Japan NNP I-LOC\n")
    result = subprocess.run(
        [sys.executable, "-m", "scripts.preprocess", str(fixture_assets), str(tmp_path / "c")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert result.returncode == 1
    output = " ".join(result.stdout.split())  # wasabi wraps long lines
    assert "dev.txt:1: expected 4 space-separated columns" in output
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_full_data_preprocess_and_analyze(real_data_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    report = preprocess(real_data_dir, corpus, ALL_SETS)
    expected = {"train": (14041, 23499), "dev": (3250, 5942), "test": (3453, 5648)}
    for split, (n_sentences, n_entities) in expected.items():
        assert (report["splits"][split]["sentences"], report["splits"][split]["entities"]) == (
            n_sentences,
            n_entities,
        )
        docs = read_docbin(corpus / f"{split}.spacy")
        assert len(docs) == n_sentences
        assert sum(len(d.ents) for d in docs) == n_entities
    assert report["splits"]["train"]["entities_per_type"] == {
        "LOC": 7140,
        "MISC": 3438,
        "ORG": 6321,
        "PER": 6600,
    }
    assert {name: s["sentences"] for name, s in report["cheap"].items()} == {
        "chatgpt": 14041,
        "uniner": 14041,
        "llama405b": 2037,
        "noisebench": 5883,
    }
    assert report["cheap"]["chatgpt"]["repaired_invalid_continuations"] == 179
    assert report["cheap"]["uniner"]["repaired_invalid_continuations"] == 89
    assert report["cheap"]["llama405b"]["dropped_garbage_tags"] == 9
    result = analyze(corpus, tmp_path / "metrics", tmp_path / "plots")
    published = {"chatgpt": 0.775, "noisebench": 0.554, "uniner": 0.475, "llama405b": 0.456}
    for name, f1 in published.items():
        assert result["quality"][name]["f1"] == pytest.approx(f1, abs=0.005), name
    assert (tmp_path / "metrics" / "annotation_quality.md").read_text().count("| chatgpt |") == 1
    assert sum(result["distributions"]["train"]["entity"].values()) == 23499
    assert result["distributions"]["train"]["pos"]["NNP"] > 0
    assert all(
        (tmp_path / "plots" / f"tags_{k}.png").stat().st_size > 1000
        for k in ("pos", "chunk", "ner")
    )
