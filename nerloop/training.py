"""Train a ``bio_ner`` pipeline programmatically on in-memory Docs, evaluating on dev each epoch.

Shared by the expert-budget experiment (``scripts/kfold.py``, ``scripts/init_model.py``) and the
active-learning loop. A pipeline comes either fresh from a training config (``init_nlp``, as
``spacy train`` does) or warm-started from a trained pipeline folder (e.g. the LLM-only model);
``finetune`` then trains it for a fixed number of epochs with the optimizer and batcher of the
pipeline's ``[training]`` block (learning rate, dropout and batch size can be overridden), scores it
on dev with ``scripts.tagger_eval.evaluate_pipeline`` (entity F1, seqeval accuracy, validation
loss) after each epoch, and keeps the history and the best and last weights.

Runs are deterministic for a seed on CPU (``spacy.util.fix_random_seed`` fixes random, numpy and
torch; the shuffling has its own seeded generator).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from spacy import util
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from spacy.training.initialize import init_nlp
from thinc.api import Optimizer
from tqdm import tqdm

from nerloop.eval.pipeline import TAGGER_NAME, evaluate_pipeline, load_pipeline
from nerloop.io_utils import atomic_path, atomic_write_json, write_docbin

# The dev scores kept per epoch (evaluate_pipeline also gives per-type scores and timings).
DEV_KEYS = ("f1", "precision", "recall", "accuracy", "loss")
SELECT_BY = "f1"

# The CLI options of the training overrides, one spelling for every script that trains; the
# default stays in each signature: `learn_rate: LearnRateOption = None`.
LearnRateOption = Annotated[
    float | None, typer.Option(help="Constant learning rate (default: config)")
]
DropoutOption = Annotated[float | None, typer.Option(help="Dropout (default: config)")]
BatchWordsOption = Annotated[int | None, typer.Option(help="Words per batch (default: config)")]
GpuIdOption = Annotated[int, typer.Option(help="GPU id, -1 for CPU")]


@dataclass
class FinetuneResult:
    """What ``finetune`` returns.

    nlp (Language): The pipeline after the last epoch (averaged weights applied when the optimizer
        keeps averages).
    history (List[dict]): One entry per epoch: ``epoch``, ``train_loss``, ``words``, ``seconds``
        and ``dev`` (``f1``, ``precision``, ``recall``, ``accuracy``, ``loss``; absent for
        epochs that were not evaluated).
    best_epoch (int): The evaluated epoch with the highest dev F1 (the earliest on ties).
    best_bytes (Optional[bytes]): The pipeline's bytes at ``best_epoch`` (``keep_best=True``).
    settings (dict): The training settings, for the record.
    """

    nlp: Language
    history: list[dict[str, Any]]
    best_epoch: int
    best_bytes: bytes | None = None
    settings: dict[str, Any] = field(default_factory=dict)

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
            {"best_epoch": self.best_epoch, "settings": self.settings, "history": self.history},
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
) -> Language:
    """Warm start from ``init_model`` (a trained pipeline folder) or a fresh pipeline from
    ``config_path``: exactly one of them must be given."""
    if (init_model is None) == (config_path is None):
        raise ValueError("give exactly one of init_model (warm start) and config_path (fresh)")
    if gpu_id >= 0:
        util.require_gpu(gpu_id)
    if init_model is not None:
        return load_pipeline(init_model)
    assert config_path is not None
    return init_pipeline(config_path, train_docs, seed=seed, gpu_id=gpu_id)


def make_optimizer(nlp: Language, learn_rate: float | None = None) -> Optimizer:
    """A fresh optimizer from the pipeline's ``[training.optimizer]`` block; ``learn_rate``
    replaces the configured rate or schedule (a constant rate then)."""
    block = dict(nlp.config.interpolate()["training"]["optimizer"])
    if learn_rate is not None:
        if not learn_rate > 0:
            raise ValueError(f"learn_rate must be positive, not {learn_rate}")
        block["learn_rate"] = float(learn_rate)
    return util.registry.resolve({"optimizer": block})["optimizer"]


def make_batcher(nlp: Language, batch_words: int | None = None) -> Callable[[Iterable], Iterable]:
    """The pipeline's ``[training.batcher]``, or batches of about ``batch_words`` words."""
    if batch_words is not None:
        if batch_words < 1:
            raise ValueError(f"batch_words must be positive, not {batch_words}")

        def by_words(items: Iterable) -> Iterable:
            return minibatch_by_words(items, size=batch_words, tolerance=0.2)

        return by_words
    block = nlp.config.interpolate()["training"]["batcher"]
    return util.registry.resolve({"batcher": block})["batcher"]


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
    epochs: int,
    seed: int = 0,
    learn_rate: float | None = None,
    dropout: float | None = None,
    batch_words: int | None = None,
    eval_every: int = 1,
    keep_best: bool = True,
    eval_batch_size: int = 256,
    progress: bool = True,
    description: str = "finetune",
) -> FinetuneResult:
    """Train ``nlp`` on ``train_docs`` for ``epochs`` epochs, scoring it on ``dev_docs``.

    Each epoch shuffles the Docs (seeded), batches them (``[training.batcher]`` or
    ``batch_words``), calls ``nlp.update`` with the optimizer of ``[training.optimizer]``
    (frozen and annotating components as in ``[training]``), and steps the optimizer's schedules
    once per batch. A Doc's loss is weighted by its ``user_data["weight"]``. When the optimizer
    keeps parameter averages, they are used to evaluate and are applied at the end, as in
    ``spacy train``.

    nlp (Language): A pipeline with a ``bio_ner`` component, initialised (see
        ``load_or_init_pipeline``). It is trained in place.
    train_docs (Sequence[Doc]): Gold-annotated training Docs (entities in ``doc.ents``).
    dev_docs (Sequence[Doc]): Gold dev Docs; selection only ever happens on these.
    epochs (int): Number of passes over ``train_docs``.
    seed (int): Seeds random, numpy and torch (``fix_random_seed``) and the shuffling.
    learn_rate (Optional[float]): A constant learning rate instead of the configured one.
    dropout (Optional[float]): Instead of ``[training] dropout``.
    batch_words (Optional[int]): Batches of about this many words instead of the configured batcher.
    eval_every (int): Evaluate every this many epochs (the last epoch is always evaluated).
    keep_best (bool): Keep the bytes of the best epoch (``FinetuneResult.best_nlp``).
    eval_batch_size (int): Sentences per forward pass on dev.
    progress (bool): Show a progress bar (words trained).
    description (str): The progress bar's label.
    RETURNS (FinetuneResult): The trained pipeline, the per-epoch history and the best epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be at least 1, not {eval_every}")
    if not train_docs:
        raise ValueError("there are no training Docs")
    if TAGGER_NAME not in nlp.pipe_names:
        raise ValueError(f"the pipeline has no {TAGGER_NAME!r} component: {nlp.pipe_names}")
    util.fix_random_seed(seed)
    training = nlp.config.interpolate()["training"]
    dropout = float(training["dropout"] if dropout is None else dropout)
    frozen = list(training.get("frozen_components", []))
    annotating = list(training.get("annotating_components", []))
    optimizer = make_optimizer(nlp, learn_rate)
    batcher = make_batcher(nlp, batch_words)
    shuffler = random.Random(seed)
    settings = {
        "epochs": epochs,
        "seed": seed,
        "learn_rate": learn_rate,
        "dropout": dropout,
        "batch_words": batch_words,
        "n_train_docs": len(train_docs),
        "n_dev_docs": len(dev_docs),
    }
    n_words = sum(len(doc) for doc in train_docs)
    bar = tqdm(total=epochs * n_words, desc=description, unit="word", disable=not progress)
    history: list[dict[str, Any]] = []
    best_epoch, best_f1, best_bytes = 0, -1.0, None
    last_bytes: bytes | None = None
    order = list(train_docs)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        shuffler.shuffle(order)
        losses: dict[str, float] = {}
        for batch in batcher(order):
            nlp.update(
                _examples(nlp, batch),
                drop=dropout,
                sgd=optimizer,
                losses=losses,
                exclude=frozen,
                annotates=annotating,
            )
            optimizer.step_schedules()
            bar.update(sum(len(doc) for doc in batch))
        entry: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": float(losses.get(TAGGER_NAME, 0.0)),
            "words": n_words,
        }
        if epoch % eval_every == 0 or epoch == epochs:
            with nlp.use_params(optimizer.averages or {}):
                entry["dev"] = _dev_scores(nlp, dev_docs, eval_batch_size)
                if entry["dev"][SELECT_BY] > best_f1:
                    best_epoch, best_f1 = epoch, entry["dev"][SELECT_BY]
                    best_bytes = nlp.to_bytes() if keep_best else None
                if epoch == epochs and optimizer.averages:
                    last_bytes = nlp.to_bytes()
            bar.set_postfix(loss=f"{entry['train_loss']:.1f}", dev_f1=f"{entry['dev']['f1']:.4f}")
        entry["seconds"] = time.perf_counter() - start
        history.append(entry)
    bar.close()
    if last_bytes is not None:
        nlp.from_bytes(last_bytes)  # the averaged weights, as spacy train saves them
    return FinetuneResult(nlp, history, best_epoch, best_bytes, settings)


def train_on_docs(
    train_docs: Sequence[Doc],
    dev_docs: Sequence[Doc],
    *,
    init_model: Path | None = None,
    config_path: Path | None = None,
    output_dir: Path | None = None,
    gpu_id: int = -1,
    **finetune_kwargs: Any,
) -> FinetuneResult:
    """``load_or_init_pipeline`` then ``finetune``; saves to ``output_dir`` when given."""
    seed = finetune_kwargs.get("seed", 0)
    nlp = load_or_init_pipeline(
        train_docs, init_model=init_model, config_path=config_path, seed=seed, gpu_id=gpu_id
    )
    result = finetune(nlp, train_docs, dev_docs, **finetune_kwargs)
    result.settings["init_model"] = str(init_model) if init_model else None
    result.settings["config"] = str(config_path) if config_path else None
    if output_dir is not None:
        result.save(output_dir)
    return result




