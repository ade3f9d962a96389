"""Token vectors from a frozen transformer, cached on disk: transformer features at CNN cost.

Registers (loaded by ``components/bio_ner.py``, so ``--code components/bio_ner.py`` is enough):

- ``nerloop.FrozenTransformer.v1`` (architecture): a tok2vec for the ``bio_ner`` tagger. A
  Hugging Face encoder with its weights frozen gives every hidden layer's states (the embeddings
  and each layer), pooled over each word's subwords; the layer learns a weighted mix of them
  (softmax weights and a scale, as in ELMo's scalar mix), so only this mix and the tagger's head
  are trained.
- ``FeatureStore``: the encoder's outputs for a corpus, kept on disk and memory-mapped (float16),
  keyed by the token sequence of each Doc and a fingerprint of the encoder weights, tokenizer,
  layers and pooling. Every process of a run (k-fold workers, strategy comparison) reads the same
  store; it is built once with a progress bar (``ensure_features``), grows by immutable shards
  that appear by an atomic rename (a killed build leaves nothing behind), and a new fingerprint
  (another encoder, other pooling) gets a new folder, so stale features are never read.

Without a store, or for Docs the store lacks (a packaged pipeline on raw text), the same features
are computed live by the same code, rounded to float16 as in the store, so both give the same
vectors and the same entities (tested).

Why not spacy-transformers: its listener backpropagates into the transformer and recomputes it on
every batch; a frozen encoder's outputs depend on the words only, so they can be computed once per
corpus and shared between processes, which spacy-transformers has no store for.

This file ships inside packaged pipelines, so it imports installed libraries only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain
from thinc.model import deserialize_attr, serialize_attr
from thinc.types import Floats2d, Floats3d

FEATURES_VERSION = 1  # bump when the computation changes: a new fingerprint, a new store
POOLINGS = ("mean", "first", "last")
STORE_DTYPE = numpy.float16
SOURCE_ATTR = "frozen_encoder_source"
FINGERPRINT_ATTR = "frozen_encoder_fingerprint"
_SHARD_PREFIX = "shard-"
_TMP_PREFIX = "tmp-"
_KEY_BYTES = 16
_CHUNK = 1 << 20


class FrozenEncoderError(ValueError):
    """A frozen encoder or feature store that cannot be used (the message says why and how)."""


# ---------------------------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------------------------


@registry.architectures("nerloop.FrozenTransformer.v1")
def build_frozen_transformer(
    name: str,
    store: str | None = None,
    layers: list[int] | None = None,
    pooling: str = "mean",
    max_subwords: int = 512,
    batch_size: int = 32,
    memory_limit_mb: int = 1024,
) -> Model[list[Doc], list[Floats2d]]:
    """A tok2vec from a frozen encoder: a learned weighted mix of its hidden layers per word.

    name (str): The encoder, a transformers model folder or hub name (``nerloop.gt_minilm_path.v1``
        gives the offline all-MiniLM-L6-v2).
    store (Optional[str]): The feature store folder (created when missing); None computes every
        Doc's features live (and keeps up to ``memory_limit_mb`` of them in memory).
    layers (Optional[List[int]]): The hidden states to keep: 0 is the embedding output, 1..N the
        layers, negative counts from the end. None keeps all of them.
    pooling (str): How a word's subword vectors become one: "mean", "first" or "last".
    max_subwords (int): The longest window the encoder reads, special tokens included; longer
        Docs are split into windows at word boundaries.
    batch_size (int): Sequences per encoder batch when features are computed.
    memory_limit_mb (int): Live-computed features kept in memory per process, in MB.
    RETURNS (Model[List[Doc], List[Floats2d]]): One (n_words, hidden) array per Doc.
    """
    if pooling not in POOLINGS:
        raise FrozenEncoderError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    if max_subwords < 8:
        raise FrozenEncoderError(f"max_subwords must be at least 8, not {max_subwords}")
    source = FeatureSource(
        name,
        store=store,
        layers=layers,
        pooling=pooling,
        max_subwords=max_subwords,
        batch_size=batch_size,
        memory_limit_mb=memory_limit_mb,
    )
    features: Model[list[Doc], list[Floats3d]] = Model(
        "frozen_encoder_features",
        _features_forward,
        init=_features_init,
        attrs={SOURCE_ATTR: source, FINGERPRINT_ATTR: ""},
    )
    mix = ScalarMix()
    model: Model[list[Doc], list[Floats2d]] = chain(features, mix)
    model.set_ref("features", features)
    model.set_ref("mix", mix)
    model.name = "frozen_transformer"
    return model


def _features_init(model: Model, X: Any = None, Y: Any = None) -> None:
    source: FeatureSource = model.attrs[SOURCE_ATTR]
    model.attrs[FINGERPRINT_ATTR] = source.fingerprint


def _features_forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[list[Floats3d], Callable]:
    source: FeatureSource = model.attrs[SOURCE_ATTR]
    trained_with = model.attrs.get(FINGERPRINT_ATTR)
    if trained_with and trained_with != source.fingerprint:
        raise FrozenEncoderError(
            f"this pipeline was trained on the features of encoder {trained_with[:12]} but "
            f"{source.name} gives {source.fingerprint[:12]}: install the encoder it was trained "
            "with (see the pipeline's requirements) or retrain it"
        )
    arrays = source.features(docs)
    return [model.ops.asarray3f(array) for array in arrays], lambda dY: []


def ScalarMix() -> Model[list[Floats3d], list[Floats2d]]:
    """A learned weighted sum of layers: ``gamma * sum_l softmax(w)_l * x[:, l, :]``.

    RETURNS (Model[List[Floats3d], List[Floats2d]]): (n, layers, width) -> (n, width) per Doc.
    """
    return Model("scalar_mix", _scalar_mix_forward, init=_scalar_mix_init, dims={"nO": None})


def _scalar_mix_init(model: Model, X: list[Floats3d] | None = None, Y: Any = None) -> None:
    if X is None:
        return
    shapes = [x.shape for x in X if x.ndim == 3]
    if not shapes:
        return
    n_layers, width = shapes[0][1], shapes[0][2]
    model.set_dim("nO", width)
    model.set_param("layer_weights", model.ops.alloc1f(n_layers))
    model.set_param("gamma", model.ops.asarray1f([1.0]))


def _scalar_mix_forward(
    model: Model, X: list[Floats3d], is_train: bool
) -> tuple[list[Floats2d], Callable]:
    logits = model.get_param("layer_weights")
    gamma = float(model.get_param("gamma")[0])
    weights = model.ops.softmax(logits)
    mixed = [model.ops.xp.tensordot(x, weights, axes=([1], [0])) for x in X]
    Y = [gamma * m for m in mixed]

    def backprop(dY: list[Floats2d]) -> list[Floats3d]:
        # d/dw_l of sum(dY * gamma * sum_l w_l x_l) = gamma * <dY, x_l>; softmax's jacobian on top
        per_layer = sum(
            (model.ops.xp.einsum("nd,nld->l", dy, x) for dy, x in zip(dY, X, strict=True)),
            start=model.ops.alloc1f(weights.shape[0]),
        )
        d_weights = gamma * per_layer
        d_logits = weights * (d_weights - (weights * d_weights).sum())
        d_gamma = float(sum((dy * m).sum() for dy, m in zip(dY, mixed, strict=True)))
        model.inc_grad("layer_weights", d_logits)
        model.inc_grad("gamma", model.ops.asarray1f([d_gamma]))
        return []  # the encoder is frozen: nothing flows into the features

    return Y, backprop


def frozen_feature_sources(model: Model) -> list[FeatureSource]:
    """The feature sources of every frozen encoder layer inside a model."""
    return [node.attrs[SOURCE_ATTR] for node in model.walk() if SOURCE_ATTR in node.attrs]


def ensure_features(nlp_or_model: Any, docs: Iterable[Doc], *, progress: bool = True) -> int:
    """Make sure every frozen encoder store in a pipeline (or model) holds these Docs.

    nlp_or_model (Union[Language, Model]): A pipeline or a thinc model.
    docs (Iterable[Doc]): The Docs whose features training or scoring will read.
    progress (bool): Show a progress bar while features are computed.
    RETURNS (int): The number of Docs whose features were computed (0 when all were stored).
    """
    models = (
        [pipe.model for _, pipe in nlp_or_model.pipeline if hasattr(pipe, "model")]
        if hasattr(nlp_or_model, "pipeline")
        else [nlp_or_model]
    )
    docs = list(docs)
    built = 0
    seen: set[int] = set()
    for model in models:
        if not isinstance(model, Model):
            continue
        for source in frozen_feature_sources(model):
            if id(source) not in seen:
                seen.add(id(source))
                built += source.ensure(docs, progress=progress)
    return built


# ---------------------------------------------------------------------------------------------
# Features: the encoder, the store and the live path share one computation
# ---------------------------------------------------------------------------------------------


def doc_key(words: Sequence[str]) -> bytes:
    """The store key of a token sequence (features depend on the words only)."""
    data = json.dumps(list(words), ensure_ascii=False).encode("utf8")
    return hashlib.blake2b(data, digest_size=_KEY_BYTES).digest()


class FeatureSource:
    """Per-word hidden states of a frozen encoder, from a store or computed live.

    name (str): The encoder folder or hub name.
    store (Optional[str]): The store root; features live in ``<store>/<fingerprint[:16]>/``.
    """

    def __init__(
        self,
        name: str,
        *,
        store: str | None = None,
        layers: list[int] | None = None,
        pooling: str = "mean",
        max_subwords: int = 512,
        batch_size: int = 32,
        memory_limit_mb: int = 1024,
    ) -> None:
        self.name = str(name)
        self.store_root = Path(store) if store else None
        self.layers = list(layers) if layers is not None else None
        self.pooling = pooling
        self.max_subwords = max_subwords
        self.batch_size = batch_size
        self.memory_limit = memory_limit_mb * (1 << 20)
        self._encoder: Any = None
        self._tokenizer: Any = None
        self._fingerprint: str | None = None
        self._store: FeatureStore | None = None
        self._memory: OrderedDict[bytes, numpy.ndarray] = OrderedDict()
        self._memory_bytes = 0

    def __deepcopy__(self, memo: dict) -> FeatureSource:
        return self  # settings and caches are shared by copies of a model (nothing is trained)

    def to_bytes(self) -> bytes:
        import srsly

        return srsly.msgpack_dumps(
            {"name": self.name, "pooling": self.pooling, "layers": self.layers}
        )

    # -- identity -------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """sha256 of the encoder weights, config and tokenizer, the layers and the pooling."""
        if self._fingerprint is None:
            self._fingerprint = _hash_json(
                {
                    "version": FEATURES_VERSION,
                    "encoder": _encoder_identity(self.name, self._load),
                    "layers": self.layers,
                    "pooling": self.pooling,
                    "max_subwords": self.max_subwords,
                    "dtype": numpy.dtype(STORE_DTYPE).name,
                }
            )
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "layers": self.layers,
            "pooling": self.pooling,
            "max_subwords": self.max_subwords,
            "dtype": numpy.dtype(STORE_DTYPE).name,
            "version": FEATURES_VERSION,
        }

    @property
    def store(self) -> FeatureStore | None:
        if self.store_root is None:
            return None
        if self._store is None:
            self._store = FeatureStore(self.store_root / self.fingerprint[:16], self.describe())
        return self._store

    # -- reading --------------------------------------------------------------------------

    def features(self, docs: Sequence[Doc]) -> list[numpy.ndarray]:
        """(n_words, n_layers, width) float32 arrays, from the store, memory, or computed."""
        keys = [doc_key([t.text for t in doc]) for doc in docs]
        found: dict[int, numpy.ndarray] = {}
        store = self.store
        for i, key in enumerate(keys):
            array = store.get(key) if store is not None else None
            if array is None:
                array = self._memory.get(key)
            if array is not None:
                found[i] = array
        if store is not None and len(found) < len(docs):
            store.refresh()  # another process may have added a shard since
            for i, key in enumerate(keys):
                if i not in found and (array := store.get(key)) is not None:
                    found[i] = array
        missing = [i for i in range(len(docs)) if i not in found]
        if missing:
            computed = self.compute([[t.text for t in docs[i]] for i in missing])
            for i, array in zip(missing, computed, strict=True):
                found[i] = array
                self._remember(keys[i], array)
        return [numpy.asarray(found[i], dtype="float32") for i in range(len(docs))]

    def _remember(self, key: bytes, array: numpy.ndarray) -> None:
        if array.nbytes > self.memory_limit:
            return
        self._memory[key] = array
        self._memory_bytes += array.nbytes
        while self._memory_bytes > self.memory_limit:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= old.nbytes

    def ensure(self, docs: Iterable[Doc], *, progress: bool = True, on_batch=None) -> int:
        """Add the Docs the store lacks to it (one new shard); returns how many were added.

        on_batch (Optional[Callable[[int], None]]): Called with the number of sequences encoded
            so far, after each encoder batch.
        """
        store = self.store
        if store is None:
            return 0
        words = {}
        for doc in docs:
            tokens = [t.text for t in doc]
            words.setdefault(doc_key(tokens), tokens)
        with store.lock():
            store.refresh()
            missing = [(key, tokens) for key, tokens in words.items() if not store.has(key)]
            if not missing:
                return 0
            lengths = [len(tokens) for _, tokens in missing]
            shape = self.feature_shape()
            with store.new_shard([key for key, _ in missing], lengths, shape) as views:
                self.compute(
                    [tokens for _, tokens in missing],
                    progress=progress,
                    on_batch=on_batch,
                    out=views,
                )
        return len(missing)

    # -- computing ------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any]:
        if self._encoder is None:
            import transformers

            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(self.name, use_fast=True)
                encoder = transformers.AutoModel.from_pretrained(self.name)
            except OSError as err:
                raise FrozenEncoderError(
                    f"the frozen encoder {self.name!r} cannot be loaded ({err}); give a model "
                    "folder, or a hub name with the hub reachable"
                ) from err
            if not getattr(tokenizer, "is_fast", False):
                raise FrozenEncoderError(
                    f"{self.name!r} has no fast tokenizer: word alignment needs one"
                )
            try:
                tokenizer([["a"]], is_split_into_words=True)
            except (ValueError, AssertionError):  # byte-level BPE (RoBERTa, GPT-2) needs this
                tokenizer = transformers.AutoTokenizer.from_pretrained(
                    self.name, use_fast=True, add_prefix_space=True
                )
            encoder.eval()
            for parameter in encoder.parameters():
                parameter.requires_grad_(False)
            self._tokenizer, self._encoder = tokenizer, encoder
        return self._tokenizer, self._encoder

    def _selected_layers(self, encoder: Any) -> list[int]:
        n_layers = encoder.config.num_hidden_layers + 1
        layer_index = list(range(n_layers)) if self.layers is None else self.layers
        try:
            return [range(n_layers)[i] for i in layer_index]
        except IndexError:
            raise FrozenEncoderError(
                f"layers {self.layers} are not all among the {n_layers} hidden states of "
                f"{self.name} (0 = embeddings, 1..{n_layers - 1} = layers)"
            ) from None

    def feature_shape(self) -> tuple[int, int]:
        """(layers kept, width) of each word's features."""
        _, encoder = self._load()
        return len(self._selected_layers(encoder)), encoder.config.hidden_size

    def compute(
        self,
        sentences: Sequence[Sequence[str]],
        *,
        progress: bool = False,
        on_batch: Callable[[int], None] | None = None,
        out: Sequence[numpy.ndarray] | None = None,
    ) -> list[numpy.ndarray]:
        """Encode token sequences: one (n_words, n_layers, width) float16 array each.

        out (Optional[Sequence[numpy.ndarray]]): Arrays to write into (e.g. views of a shard
            being written), zero-filled, one per sentence.
        """
        import torch

        tokenizer, encoder = self._load()
        windows = _windows(tokenizer, sentences, self.max_subwords)
        selected = self._selected_layers(encoder)
        width = encoder.config.hidden_size
        if out is None:
            out = [numpy.zeros((len(w), len(selected), width), STORE_DTYPE) for w in sentences]
        label = getattr(encoder.config, "model_type", "encoder")
        bar = _progress(len(windows), f"Encoding ({label}, frozen)", progress)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i][2]))
        done = 0
        pad = tokenizer.pad_token_id or 0
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = [windows[i] for i in order[start : start + self.batch_size]]
                length = max(len(ids) for _, _, ids, _ in batch)
                input_ids = torch.full((len(batch), length), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), length), dtype=torch.long)
                for row, (_, _, ids, _) in enumerate(batch):
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    mask[row, : len(ids)] = 1
                output = encoder(
                    input_ids=input_ids, attention_mask=mask, output_hidden_states=True
                )
                states = torch.stack([output.hidden_states[i] for i in selected], dim=1)
                for row, (index, first, ids, word_ids) in enumerate(batch):
                    pooled = _pool(states[row, :, : len(ids)], word_ids, self.pooling)
                    out[index][first : first + pooled.shape[0]] = pooled.numpy()
                done += len(batch)
                bar(len(batch))
                if on_batch is not None:
                    on_batch(done)
        bar(0, close=True)
        return list(out)


# A source is configuration plus caches. It lives in the model's attrs so that copies and loaded
# pipelines find it, and is serialised as its settings only: the encoder weights are not changed
# by training and are loaded from ``name``, and the fingerprint attr catches another encoder.
@serialize_attr.register(FeatureSource)
def _serialize_source(_: FeatureSource, value: FeatureSource, name: str, model: Model) -> bytes:
    return value.to_bytes()


@deserialize_attr.register(FeatureSource)
def _deserialize_source(
    current: FeatureSource, value: bytes, name: str, model: Model
) -> FeatureSource:
    return current  # the settings came from the config: keep the source built from them


def _windows(
    tokenizer: Any, sentences: Sequence[Sequence[str]], max_subwords: int
) -> list[tuple[int, int, list[int], list[int | None]]]:
    """Split word sequences into encoder windows at word boundaries.

    Returns (sentence index, first word, subword ids with special tokens, word index per subword
    relative to the first word, None for special tokens). A word with no subwords (whitespace)
    gets no position, so its vector stays zero; a single word longer than a window keeps its
    first subwords.
    """
    todo = [(index, 0, list(words)) for index, words in enumerate(sentences) if len(words)]
    windows: list[tuple[int, int, list[int], list[int | None]]] = []
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    while todo:
        encoded = tokenizer(
            [words for _, _, words in todo],
            is_split_into_words=True,
            add_special_tokens=True,
            truncation=False,
        )
        again = []
        for row, (index, first, words) in enumerate(todo):
            ids = encoded["input_ids"][row]
            word_ids = encoded.word_ids(row)
            if len(ids) <= max_subwords:
                windows.append((index, first, ids, word_ids))
                continue
            # Too long: cut after the last word that fits, encode both parts again.
            budget = max_subwords - specials
            counts = [0] * len(words)
            for word in word_ids:
                if word is not None:
                    counts[word] += 1
            end, used = 0, 0
            while end < len(words) and (used + counts[end] <= budget or end == 0):
                used += counts[end]
                end += 1
            if end == 1 and counts[0] > budget:  # one word longer than a window
                kept = [w for w in word_ids if w is not None][:budget]
                window_ids = [ids[p] for p, w in enumerate(word_ids) if w is not None][:budget]
                head = tokenizer.build_inputs_with_special_tokens(window_ids)
                n_before = head.index(window_ids[0]) if window_ids else 0
                aligned = [None] * n_before + kept + [None] * (len(head) - n_before - len(kept))
                windows.append((index, first, head, aligned))
            else:
                again.append((index, first, words[:end]))
            if end < len(words):
                again.append((index, first + end, words[end:]))
        todo = again
    return windows


def _pool(states: Any, word_ids: Sequence[int | None], pooling: str) -> Any:
    """(layers, subwords, width) -> (words in window, layers, width) float16 by the pooling rule.

    Words are numbered from 0 in the window; one without subwords keeps a zero row.
    """
    import torch

    positions = [p for p, word in enumerate(word_ids) if word is not None]
    words = torch.tensor([word_ids[p] for p in positions], dtype=torch.long)
    n_words = int(words.max()) + 1 if positions else 0
    subwords = states[:, positions].transpose(0, 1)  # (subwords, layers, width)
    pooled = torch.zeros((n_words,) + tuple(subwords.shape[1:]), dtype=states.dtype)
    if pooling == "mean":
        pooled.index_add_(0, words, subwords)
        counts = torch.bincount(words, minlength=n_words).clamp(min=1).to(states.dtype)
        pooled = pooled / counts[:, None, None]
    else:
        chosen: dict[int, int] = {}
        for row, word in enumerate(words.tolist()):
            if pooling == "last" or word not in chosen:
                chosen[word] = row
        pooled[list(chosen)] = subwords[list(chosen.values())]
    return pooled.to(torch.float16)


def _progress(total: int, desc: str, enabled: bool) -> Callable[..., None]:
    if not enabled or total == 0:
        return lambda n, close=False: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="seq", file=sys.stderr, leave=False)

    def update(n: int, close: bool = False) -> None:
        if n:
            bar.update(n)
        if close:
            bar.close()

    return update


def _hash_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf8")).hexdigest()


_IDENTITY_CACHE: dict[tuple, dict[str, Any]] = {}


def _encoder_identity(name: str, load: Callable[[], tuple[Any, Any]]) -> dict[str, Any]:
    """What the features depend on: file hashes of a model folder, else the loaded weights."""
    folder = Path(name)
    if folder.is_dir():
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file()
            and (
                p.suffix in (".safetensors", ".bin", ".json", ".txt", ".model")
                and p.name not in ("README.md", "data_config.json", "modules.json")
            )
        )
        stat_key = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        cache_key = (str(folder.resolve()), stat_key)
        if cache_key not in _IDENTITY_CACHE:
            _IDENTITY_CACHE[cache_key] = {p.name: _file_sha256(p) for p in files}
        return _IDENTITY_CACHE[cache_key]
    tokenizer, encoder = load()
    digest = hashlib.sha256()
    for key, tensor in sorted(encoder.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return {
        "name": name,
        "weights": digest.hexdigest(),
        "vocab": _hash_json(sorted(tokenizer.get_vocab().items())),
    }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The on-disk store
# ---------------------------------------------------------------------------------------------


class FeatureStore:
    """Immutable shards of per-word features in one folder per encoder fingerprint.

    A shard is a folder ``shard-<id>/`` with ``keys.npy`` (n_docs, 16) uint8, ``offsets.npy``
    (n_docs + 1) int64 and ``features.npy`` (n_words, n_layers, width) float16, read
    memory-mapped. Shards are written in a ``tmp-`` folder and renamed when complete, under a
    file lock, so readers in other processes see whole shards or none, and two builders never
    compute the same Docs twice.

    path (Path): The fingerprint's folder.
    description (Dict[str, Any]): The source's settings, written to ``encoder.json``.
    """

    def __init__(self, path: Path, description: dict[str, Any]) -> None:
        self.path = Path(path)
        self.description = description
        self._index: dict[bytes, tuple[int, int, int]] = {}
        self._shards: list[Path] = []
        self._features: list[numpy.ndarray] = []
        self.refresh()

    def __len__(self) -> int:
        return len(self._index)

    @property
    def shards(self) -> list[Path]:
        return list(self._shards)

    def nbytes(self) -> int:
        """Bytes of the stored features on disk."""
        return int(sum(array.nbytes for array in self._features))

    def has(self, key: bytes) -> bool:
        return key in self._index

    def get(self, key: bytes) -> numpy.ndarray | None:
        entry = self._index.get(key)
        if entry is None:
            return None
        shard, start, end = entry
        return self._features[shard][start:end]

    def refresh(self) -> None:
        """Read the shards that appeared since the last refresh."""
        if not self.path.exists():
            return
        known = set(self._shards)
        for shard in sorted(self.path.glob(f"{_SHARD_PREFIX}*")):
            if shard in known or not (shard / "features.npy").exists():
                continue
            keys = numpy.load(shard / "keys.npy")
            offsets = numpy.load(shard / "offsets.npy")
            features = numpy.load(shard / "features.npy", mmap_mode="r")
            number = len(self._shards)
            self._shards.append(shard)
            self._features.append(features)
            for i, key in enumerate(keys):
                self._index.setdefault(
                    key.tobytes(), (number, int(offsets[i]), int(offsets[i + 1]))
                )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the store folder (blocks until other builders are done)."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._remove_stale_tmp()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_stale_tmp(self) -> None:
        # Only called with the lock held: no other builder is writing, so any tmp folder is
        # what a killed build left behind.
        for tmp in self.path.glob(f"{_TMP_PREFIX}*"):
            shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def new_shard(
        self, keys: Sequence[bytes], lengths: Sequence[int], shape: tuple[int, int]
    ) -> Iterator[list[numpy.ndarray]]:
        """Write one shard (call with ``lock()`` held): yields one zero-filled, writable view
        per Doc into the memory-mapped features; the shard appears, by an atomic rename, only
        when the block ends without an error. A killed or failed build leaves a ``tmp-``
        folder that no reader looks at and the next build removes.
        """
        if not keys:
            raise FrozenEncoderError("a shard needs at least one Doc")
        offsets = numpy.concatenate([[0], numpy.cumsum(lengths)]).astype(numpy.int64)
        tmp = self.path / f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            key_array = numpy.frombuffer(b"".join(keys), numpy.uint8).reshape(-1, _KEY_BYTES)
            numpy.save(tmp / "keys.npy", key_array)
            numpy.save(tmp / "offsets.npy", offsets)
            features = numpy.lib.format.open_memmap(
                tmp / "features.npy",
                mode="w+",
                dtype=STORE_DTYPE,
                shape=(max(int(offsets[-1]), 0),) + tuple(shape),
            )
            yield [features[start:end] for start, end in zip(offsets[:-1], offsets[1:])]
            features.flush()
            del features
            (tmp / "encoder.json").write_text(json.dumps(self.description, indent=2))
            for name in ("keys.npy", "offsets.npy", "features.npy"):
                with (tmp / name).open("rb") as handle:
                    os.fsync(handle.fileno())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        encoder_json = self.path / "encoder.json"
        if not encoder_json.exists():
            encoder_json.write_text(json.dumps(self.description, indent=2))
        os.rename(tmp, self.path / f"{_SHARD_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}")
        self.refresh()
