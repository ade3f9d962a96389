"""Train a ``bio_ner`` pipeline programmatically on in-memory Docs, evaluating on dev.

Shared by the expert-budget experiment (``scripts/kfold.py``, ``scripts/init_model.py``) and the
active-learning loop. A pipeline comes either fresh from a training config (``init_nlp``, as
``spacy train`` does) or warm-started from a trained pipeline folder (e.g. the LLM-only model);
``finetune`` then trains it with spaCy's own loop (``spacy.training.loop.train_while_improving``)
and the pipeline's ``[training]`` block (optimizer and its schedules, batcher, dropout,
``accumulate_gradient``, ``patience``, ``max_steps``, ``score_weights``, frozen and annotating
components, ``before_update``), with per-call overrides. It scores the pipeline on dev with
``nerloop.eval.pipeline.evaluate_pipeline`` (entity F1, seqeval accuracy, validation loss) at the
end of every ``eval_every``-th epoch and keeps the history and the best and last weights.

Runs are deterministic for a seed on CPU (``spacy.util.fix_random_seed`` fixes random, numpy and
torch; the shuffling has its own seeded generator).
"""

from __future__ import annotations

import copy
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalogue import RegistryError
from confection import ConfigValidationError
from spacy import util
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.training.loop import train_while_improving
from tqdm import tqdm

from nerloop.corpus import meta
from nerloop.errors import NerloopError, SettingsError
from nerloop.eval.pipeline import (
    TAGGER_NAME,
    ensure_features,
    evaluate_pipeline,
    load_pipeline,
)
from nerloop.io_utils import atomic_path, atomic_write_json, write_docbin

# The dev scores kept per evaluation (evaluate_pipeline also gives per-type scores and timings).
DEV_KEYS = ("f1", "precision", "recall", "accuracy", "loss")
SELECT_BY = "f1"  # the selection score when [training.score_weights] weighs nothing
# spaCy's names in [training.score_weights] for the scores evaluate_pipeline reports as DEV_KEYS
# (the DEV_KEYS themselves may be weighted too, e.g. ``loss = -0.1``).
SCORE_NAMES = {"ents_f": "f1", "ents_p": "precision", "ents_r": "recall"}
# The [training] settings finetune reads (``training`` overrides may set any of them) ...
TRAINING_KEYS = (
    "accumulate_gradient",
    "annotating_components",
    "batcher",
    "before_update",
    "dropout",
    "eval_frequency",
    "frozen_components",
    "max_epochs",
    "max_steps",
    "optimizer",
    "patience",
    "score_weights",
)
# ... and the [training] settings it does not read, with what takes their place.
UNUSED_TRAINING_KEYS = {
    "seed": "finetune's seed argument seeds the run",
    "gpu_allocator": "load_or_init_pipeline's gpu_id sets up the GPU",
    "train_corpus": "finetune trains on the Docs it is given",
    "dev_corpus": "finetune evaluates on the Docs it is given",
    "logger": "finetune shows a progress bar and returns the history",
    "before_to_disk": "finetune does not write the pipeline",
}


class TrainingDataError(NerloopError, ValueError):
    """The Docs or the pipeline given to training cannot be trained on."""


@dataclass
class FinetuneResult:
    """What ``finetune`` returns.

    nlp (Language): The pipeline after the last step (averaged weights applied when the optimizer
        keeps averages).
    history (List[dict]): One entry per epoch trained (the last one may be partial when
        ``patience`` or ``max_steps`` stopped the run): ``epoch``, ``train_loss``, ``words``,
        ``seconds`` and, for the epochs evaluated, ``dev`` (``f1``, ``precision``, ``recall``,
        ``accuracy``, ``loss``) and ``score`` (the ``score_weights`` sum).
    best_epoch (int): The evaluated epoch with the highest score (the earliest on ties).
    best_bytes (Optional[bytes]): The pipeline's bytes at ``best_epoch`` (``keep_best=True``).
    settings (dict): The training settings, for the record.
    checkpoints (List[dict]): Every evaluation spaCy's loop made, in order, as ``patience``
        saw them: ``step``, ``epoch``, ``score`` and ``dev``.
    steps (int): The optimizer steps taken (one per batch).
    """

    nlp: Language
    history: list[dict[str, Any]]
    best_epoch: int
    best_bytes: bytes | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0

    @property
    def last_epoch(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def scores(self, epoch: int) -> dict[str, float]:
        """The dev scores of an evaluated epoch."""
        for entry in self.history:
            if entry["epoch"] == epoch and "dev" in entry:
                return entry["dev"]
        raise KeyError(f"epoch {epoch} was not evaluated on dev")

    @property
    def best_scores(self) -> dict[str, float]:
        return self.scores(self.best_epoch)

    @property
    def last_scores(self) -> dict[str, float]:
        return self.scores(self.last_epoch)

    def best_nlp(self) -> Language:
        """A new pipeline with the weights of the best epoch (the last one if none was kept)."""
        if self.best_bytes is None or self.best_epoch == self.last_epoch:
            return self.nlp
        nlp = util.load_model_from_config(self.nlp.config, meta=dict(self.nlp.meta))
        return nlp.from_bytes(self.best_bytes)

    def save(self, output_dir: Path | str) -> Path:
        """Write ``model-last``, ``model-best`` and ``history.json`` under ``output_dir``, each
        atomically."""
        output_dir = Path(output_dir)
        save_pipeline(self.nlp, output_dir / "model-last", self.last_scores, self.settings)
        best = self.best_nlp()
        save_pipeline(best, output_dir / "model-best", self.best_scores, self.settings)
        atomic_write_json(
            output_dir / "history.json",
            {
                "best_epoch": self.best_epoch,
                "steps": self.steps,
                "settings": self.settings,
                "history": self.history,
                "checkpoints": self.checkpoints,
            },
        )
        return output_dir


def save_pipeline(
    nlp: Language,
    path: Path | str,
    dev_scores: dict[str, float] | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write a pipeline folder atomically, with its dev scores in ``meta.json``."""
    if dev_scores is not None:
        nlp.meta["performance"] = {f"dev_{key}": dev_scores[key] for key in DEV_KEYS}
    if settings is not None:
        nlp.meta["nerloop_training"] = settings
    with atomic_path(path) as tmp:
        nlp.to_disk(tmp)
    return Path(path)


def init_pipeline(
    config_path: Path | str,
    train_docs: Sequence[Doc],
    *,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    gpu_id: int = -1,
) -> Language:
    """A fresh pipeline from a training config, initialised on ``train_docs`` as ``spacy train``
    does (``spacy.util.load_config`` + ``init_nlp``; labels and ``[initialize]`` settings come
    from the config).

    config_path (Path): The training config, e.g. configs/tagger_cnn.cfg.
    train_docs (Sequence[Doc]): Gold Docs for initialisation (written to a temporary DocBin that
        ``paths.train`` and ``paths.dev`` point to).
    seed (int): Overrides ``training.seed``.
    overrides (Optional[dict]): More config overrides (dotted keys).
    gpu_id (int): GPU to use, or -1 for CPU.
    RETURNS (Language): The initialised pipeline.
    """
    import components.bio_ner  # noqa: F401  (registers the architectures and the factory)

    with tempfile.TemporaryDirectory(prefix="nerloop-init-") as tmp:
        corpus = write_docbin(Path(tmp) / "train.spacy", train_docs)
        settings = {
            "paths.train": str(corpus),
            "paths.dev": str(corpus),
            "training.seed": seed,
            **(overrides or {}),
        }
        config = util.load_config(config_path, overrides=settings, interpolate=False)
        nlp = init_nlp(config, use_gpu=gpu_id)
    # The temporary paths must not stay in the pipeline's config.
    nlp.config["paths"]["train"] = None
    nlp.config["paths"]["dev"] = None
    return nlp


def load_or_init_pipeline(
    train_docs: Sequence[Doc],
    *,
    init_model: Path | None = None,
    config_path: Path | None = None,
    seed: int = 0,
    gpu_id: int = -1,
    overrides: dict[str, Any] | None = None,
) -> Language:
    """Warm start from ``init_model`` (a trained pipeline folder) or a fresh pipeline from
    ``config_path`` with config ``overrides`` (e.g. ``{"paths.features": "features"}``):
    exactly one of them must be given."""
    if (init_model is None) == (config_path is None):
        raise SettingsError("give exactly one of init_model (warm start) and config_path (fresh)")
    if gpu_id >= 0:
        util.require_gpu(gpu_id)
    if init_model is not None:
        return load_pipeline(init_model)
    assert config_path is not None
    return init_pipeline(config_path, train_docs, seed=seed, gpu_id=gpu_id, overrides=overrides)


def training_settings(
    nlp: Language,
    training: dict[str, Any] | None = None,
    *,
    epochs: int | None = None,
    learn_rate: float | None = None,
    dropout: float | None = None,
    batch_words: int | None = None,
) -> dict[str, Any]:
    """The pipeline's ``[training]`` block with overrides, resolved as ``spacy train`` does.

    nlp (Language): The pipeline; its ``nlp.config["training"]`` is the base (not changed).
    training (Optional[dict]): Overrides of ``[training]`` settings, dotted keys allowed
        (``{"patience": 3, "optimizer.learn_rate": 1e-3}``, an optional ``training.`` prefix).
    epochs (Optional[int]): Sets ``max_epochs``.
    learn_rate (Optional[float]): Sets ``optimizer.learn_rate`` (a constant rate then).
    dropout (Optional[float]): Sets ``dropout``.
    batch_words (Optional[int]): Sets ``batcher`` to batches of about this many words
        (``spacy.batch_by_words.v1``, tolerance 0.2).
    RETURNS (dict): The resolved settings (``ConfigSchemaTraining``): the optimizer, the batcher
        and the ``before_update`` callback are objects.
    """
    block = dict(nlp.config.interpolate()["training"])  # a copy: nlp.config stays as it is
    for key, value in (training or {}).items():
        _set_training_value(block, key, copy.deepcopy(value))
    if epochs is not None:
        if epochs < 1:
            raise SettingsError(f"epochs must be at least 1, not {epochs}")
        block["max_epochs"] = int(epochs)
    if learn_rate is not None:
        if not learn_rate > 0:
            raise SettingsError(f"learn_rate must be positive, not {learn_rate}")
        block["optimizer"] = {**block["optimizer"], "learn_rate": float(learn_rate)}
    if dropout is not None:
        if not 0.0 <= dropout < 1.0:
            raise SettingsError(f"dropout must be in [0, 1), not {dropout}")
        block["dropout"] = float(dropout)
    if batch_words is not None:
        if batch_words < 1:
            raise SettingsError(f"batch_words must be positive, not {batch_words}")
        block["batcher"] = {
            "@batchers": "spacy.batch_by_words.v1",
            "size": int(batch_words),
            "tolerance": 0.2,
            "discard_oversize": False,
            "get_length": None,
        }
    try:
        resolved = util.registry.resolve(block, schema=ConfigSchemaTraining)
    except (ConfigValidationError, RegistryError) as err:
        raise SettingsError(f"the [training] settings cannot be used: {err}") from err
    for name in ("accumulate_gradient", "eval_frequency"):
        if resolved[name] < 1:
            raise SettingsError(f"[training] {name} must be at least 1, not {resolved[name]}")
    for name in ("patience", "max_steps"):
        if resolved[name] < 0:
            raise SettingsError(f"[training] {name} must not be negative, not {resolved[name]}")
    if resolved["max_epochs"] < 0:
        raise SettingsError(
            f"[training] max_epochs = {resolved['max_epochs']} streams a corpus; finetune trains "
            "on in-memory Docs: give a number of epochs (0 = until patience or max_steps stops)"
        )
    if resolved["max_epochs"] == 0 and not (resolved["patience"] or resolved["max_steps"]):
        raise SettingsError(
            "[training] max_epochs = 0 trains until patience or max_steps stops it, and "
            "neither is set: give epochs, patience or max_steps"
        )
    return resolved


def _set_training_value(block: dict[str, Any], key: str, value: Any) -> None:
    """Set one dotted ``[training]`` key in ``block``, refusing keys finetune does not read."""
    path = key.split(".")
    if path[0] == "training" and len(path) > 1:
        path = path[1:]
    name = path[0]
    if name in UNUSED_TRAINING_KEYS:
        raise SettingsError(
            f"[training] {name} is not used by finetune ({UNUSED_TRAINING_KEYS[name]}): "
            f"remove the override {key!r}"
        )
    if name not in TRAINING_KEYS or not all(path):
        raise SettingsError(
            f"unknown [training] setting {key!r}; finetune reads {', '.join(TRAINING_KEYS)}"
        )
    node = block
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}  # e.g. "before_update.@callbacks" over before_update = null
        node = node[part]
    node[path[-1]] = value


def score_weights(weights: dict[str, float | None]) -> dict[str, float]:
    """``[training.score_weights]`` in ``evaluate_pipeline``'s names (``ents_f`` -> ``f1``).

    Null weights are dropped, as ``spacy train`` drops them; a weight on a score that
    ``evaluate_pipeline`` does not report raises ``SettingsError`` unless it is 0.
    weights (Dict[str, Optional[float]]): e.g. ``{"ents_f": 1.0, "ents_per_type": None}``.
    RETURNS (Dict[str, float]): e.g. ``{"f1": 1.0}``; ``{SELECT_BY: 1.0}`` when nothing is weighed.
    """
    combined: dict[str, float] = {}
    for name, weight in weights.items():
        if weight is None:
            continue
        key = SCORE_NAMES.get(name, name)
        if key not in DEV_KEYS:
            if weight:
                raise SettingsError(
                    f"[training.score_weights] {name} = {weight}: finetune's dev evaluation has "
                    f"no such score; weigh {', '.join([*SCORE_NAMES, *DEV_KEYS])}"
                )
            continue
        combined[key] = combined.get(key, 0.0) + float(weight)
    return combined or {SELECT_BY: 1.0}


class _Batches:
    """The training batches for ``train_while_improving``: ``(epoch, examples)`` for every batch
    of every epoch (``epoch`` counts from 0, as in spaCy; ``max_epochs = 0``: without end).

    Each epoch shuffles the Docs with its own seeded generator and batches them with the
    configured batcher, then yields fresh examples (as ``gold_preproc`` gives them). It knows
    where the step being trained stands: ``train_while_improving`` takes the next batch only
    after it has updated, evaluated and yielded the current one.
    """

    def __init__(
        self,
        nlp: Language,
        docs: Sequence[Doc],
        batcher: Callable[[Iterable[Doc]], Iterable[list[Doc]]],
        max_epochs: int,
        seed: int,
    ) -> None:
        self.nlp = nlp
        self.docs = list(docs)
        self.batcher = batcher
        self.max_epochs = max_epochs
        self.shuffler = random.Random(seed)
        self.epoch = 0  # the epoch of the current step, from 0
        self.ends_epoch = False  # whether the current step is its epoch's last batch
        self._order = list(self.docs)
        # With a known number of epochs, the batches of all of them are drawn up front (the
        # same shuffles in the same order), so the number of steps is known before training.
        self._planned = [self._next_epoch() for _ in range(max_epochs)] if max_epochs else None

    @property
    def n_steps(self) -> int | None:
        """The steps of the whole run (None without max_epochs)."""
        return None if self._planned is None else sum(len(batches) for batches in self._planned)

    def _next_epoch(self) -> list[list[Doc]]:
        self.shuffler.shuffle(self._order)
        return [list(batch) for batch in self.batcher(self._order)]

    def __iter__(self) -> Iterator[tuple[int, list[Example]]]:
        epoch = 0
        while not self.max_epochs or epoch < self.max_epochs:
            batches = self._planned[epoch] if self._planned is not None else self._next_epoch()
            for i, batch in enumerate(batches):
                self.epoch, self.ends_epoch = epoch, i == len(batches) - 1
                yield epoch, _examples(self.nlp, batch)
            epoch += 1


class _EvaluationSchedule:
    """When finetune evaluates, in the place of ``train_while_improving``'s ``eval_frequency``.

    spaCy's loop evaluates after a step when ``not (step % eval_frequency)``; ``step % self``
    (``__rmod__``) is 0 exactly after the steps below, so the loop itself evaluates there, keeps
    the results that ``patience`` reads, and resets the losses:

    - step 0, which spaCy's loop always evaluates (``patience`` needs a first result);
    - the last step of every ``eval_every``-th epoch and of the last epoch (epoch ends);
    - every ``eval_frequency``-th step, when ``eval_frequency`` was set explicitly;
    - step ``max_steps``, after which the loop stops.
    """

    def __init__(
        self,
        batches: _Batches,
        eval_every: int,
        eval_frequency: int | None,
        max_steps: int,
    ) -> None:
        self.batches = batches
        self.eval_every = eval_every
        self.eval_frequency = eval_frequency
        self.max_steps = max_steps
        self.step = -1  # the step the loop asked about last

    def ends_evaluated_epoch(self) -> bool:
        """Whether the current step ends an epoch evaluated for the history."""
        if not self.batches.ends_epoch:
            return False
        epoch = self.batches.epoch + 1
        return epoch % self.eval_every == 0 or epoch == self.batches.max_epochs

    def due(self, step: int) -> bool:
        """Whether to evaluate after ``step`` (from 0)."""
        self.step = step
        return (
            step == 0
            or self.ends_evaluated_epoch()
            or bool(self.eval_frequency and step % self.eval_frequency == 0)
            or bool(self.max_steps and step >= self.max_steps)
        )

    def __rmod__(self, step: int) -> int:
        return 0 if self.due(step) else 1


class _Selection:
    """The best evaluated epoch by score (the earliest on ties), and its bytes."""

    def __init__(self, keep_bytes: bool) -> None:
        self.keep_bytes = keep_bytes
        self.epoch = 0
        self.score = -math.inf
        self.bytes: bytes | None = None

    def consider(self, nlp: Language, epoch: int, score: float) -> None:
        """Called while the weights evaluated (the averages, if any) are in use."""
        if score > self.score:
            self.epoch, self.score = epoch, score
            self.bytes = nlp.to_bytes() if self.keep_bytes else None


def _examples(nlp: Language, references: Sequence[Doc]) -> list[Example]:
    """Fresh unannotated predicted Docs with the gold tokens (as ``gold_preproc`` does)."""
    return [
        Example(
            Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref]),
            ref,
        )
        for ref in references
    ]


def _dev_scores(nlp: Language, dev_docs: Sequence[Doc], batch_size: int) -> dict[str, float]:
    scores = evaluate_pipeline(nlp, dev_docs, batch_size=batch_size, progress=False)
    return {key: float(scores[key]) for key in DEV_KEYS}


def finetune(
    nlp: Language,
    train_docs: Sequence[Doc],
    dev_docs: Sequence[Doc],
    *,
    epochs: int | None = None,
    seed: int = 0,
    learn_rate: float | None = None,
    dropout: float | None = None,
    batch_words: int | None = None,
    eval_every: int = 1,
    keep_best: bool = True,
    eval_batch_size: int = 256,
    progress: bool = True,
    description: str = "finetune",
    training: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Train ``nlp`` on ``train_docs`` with spaCy's training loop, scoring it on ``dev_docs``.

    The settings are the pipeline's ``[training]`` block, then the ``training`` overrides, then
    the explicit arguments (see ``training_settings``). Each epoch shuffles the Docs (seeded) and
    batches them (``[training.batcher]``); ``spacy.training.loop.train_while_improving`` takes
    one optimizer step per batch: ``before_update``, then ``nlp.update`` on the batch split into
    ``accumulate_gradient`` parts (frozen components excluded, annotating components setting
    annotations), then the optimizer and its schedules. A Doc's loss is weighted by its
    ``user_data["weight"]`` (``bio_ner``'s ``get_loss``).

    Dev is scored with ``evaluate_pipeline`` after the last step of every ``eval_every``-th
    epoch and of the last epoch; spaCy's loop also evaluates after step 0, after every
    ``eval_frequency``-th step when ``training`` sets ``eval_frequency``, and after step
    ``max_steps``. The score is the ``[training.score_weights]`` sum (``ents_f`` is the F1:
    by default the F1). ``patience`` counts steps since the best of all these evaluations, as in
    ``spacy train``; when it stops the run between evaluations, the last step is evaluated too.
    When the optimizer keeps parameter averages, they are evaluated and applied at the end.

    nlp (Language): A pipeline with a ``bio_ner`` component, initialised (see
        ``load_or_init_pipeline``). It is trained in place.
    train_docs (Sequence[Doc]): Gold-annotated training Docs (entities in ``doc.ents``).
    dev_docs (Sequence[Doc]): Gold dev Docs; selection only ever happens on these.
    epochs (Optional[int]): Passes over ``train_docs`` (``max_epochs``; None: the config's).
    seed (int): Seeds random, numpy and torch (``fix_random_seed``) and the shuffling.
    learn_rate (Optional[float]): A constant learning rate instead of the configured one.
    dropout (Optional[float]): Instead of ``[training] dropout``.
    batch_words (Optional[int]): Batches of about this many words instead of the configured batcher.
    eval_every (int): Evaluate every this many epochs (the last epoch is always evaluated).
    keep_best (bool): Keep the bytes of the best epoch (``FinetuneResult.best_nlp``).
    eval_batch_size (int): Sentences per forward pass on dev.
    progress (bool): Show a progress bar (words trained).
    description (str): The progress bar's label.
    training (Optional[dict]): Overrides of ``[training]`` settings (dotted keys), e.g.
        ``{"accumulate_gradient": 2, "patience": 3, "optimizer.learn_rate": 1e-3}``.
    RETURNS (FinetuneResult): The trained pipeline, the per-epoch history and the best epoch.
    """
    if eval_every < 1:
        raise SettingsError(f"eval_every must be at least 1, not {eval_every}")
    if not train_docs:
        raise TrainingDataError(
            "there are no training Docs: check the training DocBin is not empty"
        )
    if TAGGER_NAME not in nlp.pipe_names:
        raise TrainingDataError(
            f"the pipeline has no {TAGGER_NAME!r} component (it has {nlp.pipe_names}): train "
            "or load a nerloop pipeline (configs/tagger_*.cfg)"
        )
    # A Doc of loss weight 0 (the cheap sentences with cheap_weight 0: learning from the experts
    # alone) adds nothing to any gradient (bio_ner's get_loss), but costs a forward and backward
    # pass: with the 14,041 cheap sentences of the ChatGPT set and a few hundred experts that is
    # almost the whole cost of an epoch. They are left out of the batches.
    n_given = len(train_docs)
    train_docs = [doc for doc in train_docs if meta.weight(doc) > 0]
    if not train_docs:
        raise TrainingDataError(
            f"all {n_given} training Docs have loss weight 0, so there is nothing to learn: "
            "give some Docs a positive weight (e.g. expert sentences, or cheap_weight > 0)"
        )
    # A frozen encoder's features are computed once into its store (a no-op when stored).
    ensure_features(nlp, [*train_docs, *dev_docs], progress=progress)
    overrides = dict(training or {})
    T = training_settings(  # named as in spacy.training.loop.train
        nlp,
        overrides,
        epochs=epochs,
        learn_rate=learn_rate,
        dropout=dropout,
        batch_words=batch_words,
    )
    util.fix_random_seed(seed)
    # The pipeline's own eval_frequency is not used: finetune evaluates per epoch.
    explicit = {key.removeprefix("training.") for key in overrides}
    eval_frequency = T["eval_frequency"] if "eval_frequency" in explicit else None
    optimizer = T["optimizer"]
    batches = _Batches(nlp, train_docs, T["batcher"], T["max_epochs"], seed)
    schedule = _EvaluationSchedule(batches, eval_every, eval_frequency, T["max_steps"])
    weights = score_weights(T["score_weights"])
    selection = _Selection(keep_best)

    # spaCy's loop needs a result after step 0 (it reads the best one after every step). That
    # result only matters when patience can stop this run (or eval_frequency asked for it):
    # otherwise it would cost a dev pass per fine-tuning for nothing, so the loop is given
    # "not evaluated" (-inf, never the best of a later real score, and never recorded).
    # the last step's index (0: no bound): max_steps, or the planned steps of max_epochs
    planned = batches.n_steps
    last_step = min(filter(None, (T["max_steps"], planned - 1 if planned else None)), default=0)
    step_zero_matters = bool(eval_frequency) or bool(
        T["patience"] and (not last_step or T["patience"] <= last_step)
    )

    def evaluate() -> tuple[float, dict[str, float] | None]:
        if schedule.step == 0 and not step_zero_matters and not schedule.ends_evaluated_epoch():
            return float("-inf"), None
        scores = _dev_scores(nlp, dev_docs, eval_batch_size)
        score = sum(weight * scores[key] for key, weight in weights.items())
        if schedule.ends_evaluated_epoch():
            selection.consider(nlp, batches.epoch + 1, score)
        return score, scores

    steps = train_while_improving(
        nlp,
        optimizer,
        batches,
        evaluate,
        dropout=T["dropout"],
        eval_frequency=schedule,  # type: ignore[arg-type]  # stands in for an int
        accumulate_gradient=T["accumulate_gradient"],
        patience=T["patience"],
        max_steps=T["max_steps"],
        exclude=T["frozen_components"],
        annotating_components=T["annotating_components"],
        before_update=T["before_update"],
    )
    n_words = sum(len(doc) for doc in train_docs)
    total = T["max_epochs"] * n_words if T["max_epochs"] else None
    bar = tqdm(total=total, desc=description, unit="word", disable=not progress)
    history: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    running: dict[str, float] = {}  # train_while_improving's losses, reset after evaluations
    counted = 0.0  # the part of running[TAGGER_NAME] already in the history
    n_steps, evaluated = 0, False
    mark = time.perf_counter()
    for batch, info, is_best_checkpoint in steps:
        epoch = info["epoch"] + 1
        if not history or history[-1]["epoch"] != epoch:
            history.append({"epoch": epoch, "train_loss": 0.0, "words": 0, "seconds": 0.0})
        entry = history[-1]
        if info["losses"] is not running:
            running, counted = info["losses"], 0.0
        loss = float(running.get(TAGGER_NAME, 0.0))
        entry["train_loss"] += loss - counted
        counted = loss
        words = sum(len(eg) for eg in batch)
        entry["words"] += words
        evaluated = is_best_checkpoint is not None and info["other_scores"] is not None
        n_steps = info["step"] + 1
        if evaluated:
            dev = info["other_scores"]
            checkpoints.append(
                {"step": info["step"], "epoch": epoch, "score": info["score"], "dev": dev}
            )
            if schedule.ends_evaluated_epoch():
                entry["dev"], entry["score"] = dev, info["score"]
                bar.set_postfix(loss=f"{entry['train_loss']:.1f}", dev_f1=f"{dev['f1']:.4f}")
        bar.update(words)
        now = time.perf_counter()
        entry["seconds"] += now - mark
        mark = now
    bar.close()
    last = history[-1]
    if "dev" not in last:  # patience or max_steps stopped the run before the epoch's end
        with nlp.use_params(optimizer.averages or {}):
            if evaluated:  # the last step was evaluated: the weights have not changed since
                last["dev"], last["score"] = checkpoints[-1]["dev"], checkpoints[-1]["score"]
            else:
                last["dev"] = _dev_scores(nlp, dev_docs, eval_batch_size)
                last["score"] = sum(weight * last["dev"][key] for key, weight in weights.items())
            selection.consider(nlp, last["epoch"], last["score"])
        last["seconds"] += time.perf_counter() - mark
    if optimizer.averages:
        with nlp.use_params(optimizer.averages):
            averaged = nlp.to_bytes()
        nlp.from_bytes(averaged)  # the averaged weights, as spacy train saves them
    settings = {
        "epochs": T["max_epochs"],
        "seed": seed,
        "learn_rate": learn_rate,
        "dropout": T["dropout"],
        "batch_words": batch_words,
        "accumulate_gradient": T["accumulate_gradient"],
        "patience": T["patience"],
        "max_steps": T["max_steps"],
        "eval_every": eval_every,
        "eval_frequency": eval_frequency,
        "score_weights": weights,
        "training": overrides,
        "n_train_docs": len(train_docs),
        "n_dev_docs": len(dev_docs),
    }
    return FinetuneResult(
        nlp, history, selection.epoch, selection.bytes, settings, checkpoints, n_steps
    )


def train_on_docs(
    train_docs: Sequence[Doc],
    dev_docs: Sequence[Doc],
    *,
    init_model: Path | None = None,
    config_path: Path | None = None,
    output_dir: Path | None = None,
    gpu_id: int = -1,
    overrides: dict[str, Any] | None = None,
    **finetune_kwargs: Any,
) -> FinetuneResult:
    """``load_or_init_pipeline`` then ``finetune``; saves to ``output_dir`` when given.

    overrides (Optional[dict]): Config overrides of a fresh pipeline (dotted keys).
    """
    seed = finetune_kwargs.get("seed", 0)
    nlp = load_or_init_pipeline(
        train_docs,
        init_model=init_model,
        config_path=config_path,
        seed=seed,
        gpu_id=gpu_id,
        overrides=overrides,
    )
    result = finetune(nlp, train_docs, dev_docs, **finetune_kwargs)
    result.settings["init_model"] = str(init_model) if init_model else None
    result.settings["config"] = str(config_path) if config_path else None
    if output_dir is not None:
        result.save(output_dir)
    return result
