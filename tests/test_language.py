"""Another language: a German corpus is ingested with German tokenisation (``--lang de``) and the
frozen-encoder tagger is trained with ``[nlp] lang`` set from an override (``--nlp.lang de``) and
its encoder name overridden (here a tiny random BERT whose vocabulary has German letters; a user
sets a multilingual or German encoder, e.g. ``bert-base-german-cased``). The pipeline it saves is
German, tokenises raw text as spaCy's German tokenizer does, and overfits the fixture."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import spacy
from spacy.lang.de import German
from spacy.vocab import Vocab

from nerloop.io_utils import read_docbin
from scripts import finetune, ingest
from tests.cli_support import run_cli

ROOT = Path(__file__).parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "nogold" / "de_news.jsonl"
ENCODER_NAME = "components.bio_ner.model.tok2vec.*.encoder.name"
RAW = "Dr. Müller trifft z.B. am 3. Mai Frau Becker in Köln, wie geht's?"


def build_tiny_german_bert(path: Path) -> Path:
    """A randomly initialised 1-layer BERT with a character vocabulary (German letters too),
    saved for transformers (as tests/test_bio_ner.py builds its English one)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True)
    chars = list(string.ascii_letters + string.digits + string.punctuation + "äöüÄÖÜß")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(
        vocab_file=str(path / "vocab.txt"), do_lower_case=False, strip_accents=False
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    return path


def gold() -> list[tuple[str, list[tuple[str, str]]]]:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf8").splitlines()]
    return [
        (row["text"], [(row["text"][s["start"] : s["end"]], s["label"]) for s in row["spans"]])
        for row in rows
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("language")
    corpus = base / "de.spacy"
    result = run_cli(ingest.app, [str(FIXTURE), str(corpus), "--lang", "de"])
    assert result.exit_code == 0, result.output
    bert = build_tiny_german_bert(base / "tiny-german-bert")
    features = base / "features"
    args = [str(corpus), str(corpus), str(base / "model")]
    args += ["--config", str(ROOT / "configs" / "tagger_trf_frozen.cfg")]
    args += ["--nlp.lang", "de", f"--{ENCODER_NAME}", str(bert), "--paths.features", str(features)]
    args += ["--components.bio_ner.model.width", "32", "--components.bio_ner.model.dropout", "0"]
    args += ["--epochs", "40", "--batch-words", "30", "--learn-rate", "0.01", "--dropout", "0"]
    result = run_cli(finetune.app, args)
    assert result.exit_code == 0, result.output
    return {"corpus": corpus, "model": base / "model" / "model-best", "features": features}


def test_ingest_tokenises_with_the_german_tokenizer(trained) -> None:
    docs = read_docbin(trained["corpus"], Vocab())
    assert len(docs) == len(gold()) == 12
    german, english = spacy.blank("de"), spacy.blank("en")
    words = [[t.text for t in doc] for doc in docs]
    assert words == [[t.text for t in german(text)] for text, _ in gold()]
    differs = [w != [t.text for t in english(text)] for w, (text, _) in zip(words, gold())]
    assert sum(differs) == 5  # z.B., d.h., geht's, 3. Mai, 12. Juni stay whole in German
    assert words[1][:4] == ["Dr.", "Müller", "arbeitet", "z.B."]
    assert [[(e.text, e.label_) for e in doc.ents] for doc in docs] == [ents for _, ents in gold()]


def test_the_trained_pipeline_is_german_and_overfits(trained) -> None:
    nlp = spacy.load(trained["model"])
    assert nlp.lang == "de" and isinstance(nlp, German)
    assert nlp.config["nlp"]["lang"] == "de"
    encoder = nlp.config["components"]["bio_ner"]["model"]["tok2vec"]["*"]["encoder"]
    assert Path(encoder["name"]).name == "tiny-german-bert"
    assert [t.text for t in nlp.make_doc(RAW)] == [t.text for t in spacy.blank("de")(RAW)]
    assert [t.text for t in nlp.make_doc(RAW)][:4] == ["Dr.", "Müller", "trifft", "z.B."]
    predicted = [[(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe(t for t, _ in gold())]
    assert predicted == [ents for _, ents in gold()]
    assert any(trained["features"].iterdir())  # training read the encoder's features from the store
