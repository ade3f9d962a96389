"""Cheap testing: rank models by their F1 against LLM labels before experts label a dev set.

A model's *cheap F1* is its seqeval entity F1 against an LLM's labels on held-out sentences,
ones that no compared model trained on (``cheap_f1``). Nothing but the LLM's labels is needed,
so it can choose between models (LLM-only, mixed, active learning checkpoints) before any expert
has labelled a dev set. ``track`` measures how well that works where gold labels exist: per
model the cheap F1 and the gold F1 (on the same held-out sentences, and on dev), their Pearson,
Spearman and Kendall correlations over the models, and whether the best model by cheap F1 is
the best by gold F1 (and how much gold F1 the cheap pick loses when it is not). The same is
measured within groups of models (name prefixes such as ``cnn`` or ``cnn/al/entropy``): across
model families a gap between them can make almost any score correlate, while choosing a
checkpoint of one run is the decision cheap testing is for.

A held-out sentence that a model trained on would flatter that model, so the training sentence
ids of every model are part of its description (``ComparedModel``) and ``check_held_out``
refuses a held-out set that overlaps any of them. The ids come from what the model trained on:
a DocBin (the cheap set, a mixed corpus: every ``sent_id`` in it) or an active learning
checkpoint manifest (``nerloop/al/checkpoints.py``: the cheap set named in its settings, the
initial expert ids and every id added so far). Ids are sentence ids of one split (train): the
held-out sentences are train sentences whose LLM labels are recorded.

Outputs of ``write_report``: a JSON (the held-out ids, per model scores, the tracking
statistics), a Markdown table and a scatter PNG of cheap F1 against gold F1, each atomically.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm

from nerloop.al.checkpoints import CHECKPOINTS_DIR, CheckpointStore
from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.metrics import EvaluationError, doc_entity_scores
from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline, predict_with_probs
from nerloop.io_utils import (
    MissingInputError,
    atomic_write_json,
    atomic_write_text,
    png_figure,
    read_docbin,
)

logger = logging.getLogger(__name__)

SCORE_KEYS = ("f1", "precision", "recall")
# the gold references a cheap F1 is tracked against, in report order
REFERENCES = {"held_out_gold": "held-out gold", "dev": "dev gold"}
_SHOWN_IDS = 10


class HeldOutOverlapError(NerloopError, ValueError):
    """Held-out sentences that a compared model trained on."""


class CheapTestError(NerloopError, ValueError):
    """Inputs of a cheap test that cannot be used (no models, too few sentences, bad specs)."""


@dataclass(frozen=True)
class ComparedModel:
    """A model to rank, with the sentence ids it trained on.

    name (str): Its name in the report (unique among the compared models).
    path (Path): The pipeline folder.
    train_ids (FrozenSet[int]): Every train sentence id it (or a model it started from) saw.
    trained_on (Tuple[str, ...]): Where the ids were read from, for the report.
    """

    name: str
    path: Path
    train_ids: frozenset[int]
    trained_on: tuple[str, ...] = ()


def sent_ids_of(docs: Iterable[Doc]) -> list[int]:
    """The ``sent_id`` of every Doc, in order."""
    return [meta.sent_id(doc) for doc in docs]


def _shown(ids: Iterable[int]) -> str:
    ids = sorted(ids)
    text = ", ".join(str(i) for i in ids[:_SHOWN_IDS])
    return text + (f", ... ({len(ids)} in all)" if len(ids) > _SHOWN_IDS else "")


def training_ids_from_docbin(path: Path | str) -> frozenset[int]:
    """Every ``sent_id`` of a training DocBin (a cheap set, a mixed corpus, a gold split)."""
    return frozenset(sent_ids_of(read_docbin(path)))


def training_ids_from_manifest(path: Path | str) -> frozenset[int]:
    """The sentences an active learning checkpoint trained on, from its manifest: the cheap set
    of its settings (``cheap_path``, else ``inputs.cheap``), the initial expert ids (those of
    the initial model's mixed corpus) and every sentence added up to this checkpoint."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path} does not exist: not a finished checkpoint")
    record = json.loads(path.read_text(encoding="utf8"))
    settings = record.get("settings") or {}
    if "all_added_ids" not in record or "initial_expert_ids" not in settings:
        raise CheapTestError(
            f"{path} is not an active learning manifest (no all_added_ids or "
            "settings.initial_expert_ids): give the model's training DocBin instead"
        )
    cheap_path = settings.get("cheap_path") or (record.get("inputs") or {}).get("cheap")
    ids = set(record["all_added_ids"]) | set(settings["initial_expert_ids"] or [])
    if cheap_path:
        ids |= training_ids_from_docbin(cheap_path)
    return frozenset(int(i) for i in ids)


def training_ids_from(source: Path | str) -> frozenset[int]:
    """Training ids from a DocBin (``.spacy``) or an active learning manifest (``.json``)."""
    source = Path(source)
    if source.suffix == ".spacy":
        return training_ids_from_docbin(source)
    if source.suffix == ".json":
        return training_ids_from_manifest(source)
    raise CheapTestError(
        f"cannot read training ids from {source}: give a DocBin (.spacy) or an active "
        "learning checkpoint manifest (.json)"
    )


def parse_model_spec(spec: str) -> ComparedModel:
    """A model from ``NAME=MODEL_PATH@TRAINED_ON[,TRAINED_ON...]``.

    Each ``TRAINED_ON`` is a DocBin or a checkpoint manifest (``training_ids_from``); their ids
    are united, so a fine-tuned model lists its own corpus and its starting model's.
    """
    name, sep, rest = spec.partition("=")
    model_path, at, sources = rest.partition("@")
    names = [s for s in sources.split(",") if s]
    if not sep or not at or not name or not model_path or not names:
        raise CheapTestError(
            f"model spec {spec!r}: expected NAME=MODEL_PATH@TRAINED_ON[,TRAINED_ON...] "
            "(TRAINED_ON: the DocBins or checkpoint manifests of what the model trained on)"
        )
    ids: set[int] = set()
    for source in names:
        ids |= training_ids_from(source)
    return ComparedModel(name, Path(model_path), frozenset(ids), tuple(names))


def al_run_models(
    run_dir: Path | str, prefix: str | None = None, include_initial: bool = True
) -> list[ComparedModel]:
    """Every finished checkpoint of an active learning run that still has its pipeline, named
    ``PREFIX/<checkpoint>``; a folder of runs (``al-compare``) gives every run's checkpoints
    as ``PREFIX/<run>/<checkpoint>``. ``prefix`` defaults to the folder's name.
    ``include_initial=False`` leaves out iteration 0, a copy of the initial model (which is
    often compared already, and would be counted once per run).
    """
    run_dir = Path(run_dir)
    prefix = run_dir.name if prefix is None else prefix
    folder = run_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        runs = [] if not run_dir.is_dir() else sorted(run_dir.iterdir())
        runs = [run for run in runs if (run / CHECKPOINTS_DIR).is_dir()]
        if not runs:
            raise MissingInputError(
                f"{run_dir} holds no {CHECKPOINTS_DIR}/ folder (nor runs with one): run the "
                "al or al-compare step first"
            )
        return [
            model
            for run in runs
            for model in al_run_models(run, f"{prefix}/{run.name}", include_initial)
        ]
    store = CheckpointStore(run_dir)
    found = []
    for record in store.manifests():
        name = record["checkpoint"]
        if record["iteration"] == 0 and not include_initial:
            continue
        if not (store.pipeline_path(name) / "config.cfg").exists():
            logger.info("skipping %s: its pipeline was pruned", store.pipeline_path(name))
            continue
        manifest_path = store.manifest_path(name)
        found.append(
            ComparedModel(
                f"{prefix}/{name}",
                store.pipeline_path(name),
                training_ids_from_manifest(manifest_path),
                (str(manifest_path),),
            )
        )
    return found


def models_from_specs(
    model_specs: Sequence[str] = (),
    al_run_specs: Sequence[str] = (),
    include_initial: bool = True,
) -> list[ComparedModel]:
    """The models of a command line: ``parse_model_spec`` of each model spec, then the
    checkpoints of each ``[PREFIX=]RUN_DIR`` (``al_run_models``)."""
    models = [parse_model_spec(spec) for spec in model_specs]
    for spec in al_run_specs:
        prefix, _, run_dir = spec.rpartition("=")
        models.extend(al_run_models(run_dir, prefix or None, include_initial))
    return models


def read_held_out_ids(path: Path | str) -> list[int]:
    """Held-out ids from a JSON list of ints or a previous report (its ``held_out.ids``)."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path} does not exist: give a JSON list of sentence ids")
    data = json.loads(path.read_text(encoding="utf8"))
    if isinstance(data, dict):
        data = (data.get("held_out") or {}).get("ids")
    if not isinstance(data, list) or not all(isinstance(i, int) for i in data):
        raise CheapTestError(
            f"{path} is neither a JSON list of sentence ids nor a cheap test report"
        )
    return data


def check_held_out(models: Sequence[ComparedModel], held_out_ids: Iterable[int]) -> None:
    """Refuse held-out sentences that any model trained on (a ``HeldOutOverlapError`` naming
    each such model and the ids) and duplicate model names."""
    names = [model.name for model in models]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CheapTestError(f"model names must be unique: {', '.join(duplicates)}")
    held_out = set(held_out_ids)
    overlaps = [(m.name, held_out & m.train_ids) for m in models if held_out & m.train_ids]
    if overlaps:
        lines = "; ".join(f"{name}: {_shown(ids)}" for name, ids in overlaps)
        raise HeldOutOverlapError(
            f"held-out sentences that a model trained on (sent_id): {lines}. Hold out other "
            "sentences (leave --held-out-ids out to draw them outside every training set) "
            "or leave the model out"
        )


def draw_held_out(
    candidate_ids: Iterable[int], excluded_ids: Iterable[int], n: int, seed: int
) -> list[int]:
    """A seeded random sample of ``n`` candidate ids outside ``excluded_ids``, sorted.

    candidate_ids (Iterable[int]): The sentences with LLM (and gold) labels.
    excluded_ids (Iterable[int]): Every sentence any compared model trained on.
    n (int): How many to hold out.
    seed (int): The same seed gives the same sample.
    RETURNS (List[int]): The held-out sentence ids.
    """
    pool = sorted(set(candidate_ids) - set(excluded_ids))
    if n < 1 or n > len(pool):
        raise CheapTestError(
            f"cannot hold out {n} sentences: {len(pool)} labelled sentences are outside every "
            "model's training set (lower --n-held-out)"
        )
    rng = numpy.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(pool, size=n, replace=False))


def select_docs(docs: Sequence[Doc], ids: Sequence[int], what: str) -> list[Doc]:
    """The Docs with the given sentence ids, in the order of ``ids``."""
    index = meta.by_sent_id(docs)
    missing = [i for i in ids if i not in index]
    if missing:
        raise CheapTestError(f"{what} lacks held-out sentences (sent_id): {_shown(missing)}")
    return [index[i] for i in ids]


def _scores(scores: dict[str, Any]) -> dict[str, float]:
    return {key: float(scores[key]) for key in SCORE_KEYS}


def _held_out_scores(
    nlp: Language,
    held_out_llm_docs: Sequence[Doc],
    held_out_gold_docs: Sequence[Doc] | None,
    batch_size: int,
    progress: bool,
) -> dict[str, dict[str, float]]:
    predicted, _ = predict_with_probs(nlp, held_out_llm_docs, batch_size, progress)
    result = {"cheap": _scores(doc_entity_scores(held_out_llm_docs, predicted))}
    if held_out_gold_docs is not None:
        result["held_out_gold"] = _scores(doc_entity_scores(held_out_gold_docs, predicted))
    return result


def cheap_f1(
    nlp: Language,
    held_out_llm_docs: Sequence[Doc],
    train_ids: Iterable[int],
    *,
    name: str = "the model",
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, float]:
    """A model's seqeval entity F1 (with precision and recall) against the LLM's labels of
    held-out sentences.

    nlp (Language): A pipeline with a ``bio_ner`` component.
    held_out_llm_docs (Sequence[Doc]): The held-out sentences with the LLM's entities (and
        their ``sent_id``).
    train_ids (Iterable[int]): The sentence ids the model trained on; a held-out sentence among
        them is a ``HeldOutOverlapError``.
    name (str): The model's name in that error.
    batch_size (int): Sentences per forward pass.
    progress (bool): Show a progress bar.
    RETURNS (Dict[str, float]): ``{"f1", "precision", "recall"}``.
    """
    model = ComparedModel(name, Path(), frozenset(int(i) for i in train_ids))
    check_held_out([model], sent_ids_of(held_out_llm_docs))
    return _held_out_scores(nlp, held_out_llm_docs, None, batch_size, progress)["cheap"]


def _correlation(kind: str, x: numpy.ndarray, y: numpy.ndarray) -> float | None:
    """None where undefined (fewer than 2 models, or a constant column)."""
    from scipy import stats

    if len(x) < 2 or numpy.ptp(x) == 0 or numpy.ptp(y) == 0:
        return None
    func = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall_tau": stats.kendalltau}
    value = float(func[kind](x, y)[0])
    return None if math.isnan(value) else value


def tracking_stats(
    names: Sequence[str], cheap: Sequence[float], gold: Sequence[float]
) -> dict[str, Any]:
    """How well cheap F1 tracks gold F1 over models.

    names (Sequence[str]): The models, in the order of the scores.
    cheap (Sequence[float]): Each model's cheap F1.
    gold (Sequence[float]): Each model's gold F1.
    RETURNS (dict): ``n_models``; ``pearson``, ``spearman`` and ``kendall_tau`` (tau-b; None
        where undefined); ``best_by_cheap`` and ``best_by_gold`` (the first of any tie);
        ``same_best`` (the cheap pick has the highest gold F1); ``gold_f1_of_cheap_pick``,
        ``best_gold_f1``, ``gold_f1_lost`` (their difference) and ``gold_rank_of_cheap_pick``
        (1 is the best; ties share the better rank); ``mean_gap`` (mean cheap minus gold F1).
    """
    if not (len(names) == len(cheap) == len(gold)) or not names:
        raise CheapTestError(
            f"tracking needs one cheap and one gold F1 per model: {len(names)} models, "
            f"{len(cheap)} cheap and {len(gold)} gold F1"
        )
    x, y = numpy.asarray(cheap, dtype=float), numpy.asarray(gold, dtype=float)
    pick, best = int(numpy.argmax(x)), int(numpy.argmax(y))
    return {
        "n_models": len(names),
        **{kind: _correlation(kind, x, y) for kind in ("pearson", "spearman", "kendall_tau")},
        "best_by_cheap": names[pick],
        "best_by_gold": names[best],
        "same_best": bool(y[pick] == y[best]),
        "gold_f1_of_cheap_pick": float(y[pick]),
        "best_gold_f1": float(y[best]),
        "gold_f1_lost": float(y[best] - y[pick]),
        "gold_rank_of_cheap_pick": int((y > y[pick]).sum()) + 1,
        "mean_gap": float((x - y).mean()),
    }


def in_group(name: str, group: str) -> bool:
    """Whether a model name lies in a group: the group itself or a name under ``group/``."""
    group = group.rstrip("/")
    return name == group or name.startswith(group + "/")


def tracking_of(rows: Sequence[dict[str, Any]], groups: Sequence[str] = ()) -> dict[str, Any]:
    """``tracking_stats`` per gold reference over all rows (``tracking``) and within each group
    of model names (``tracking_by_group``: a group with fewer than 2 models is left out)."""

    def stats(subset: Sequence[dict[str, Any]]) -> dict[str, Any]:
        names = [row["name"] for row in subset]
        cheap = [row["cheap"]["f1"] for row in subset]
        return {
            key: tracking_stats(names, cheap, [row[key]["f1"] for row in subset])
            for key in REFERENCES
            if key in subset[0]
        }

    by_group = {}
    for group in groups:
        subset = [row for row in rows if in_group(row["name"], group)]
        if len(subset) >= 2:
            by_group[group] = stats(subset)
        else:
            logger.warning("group %s has %d models: no tracking within it", group, len(subset))
    return {"tracking": stats(rows), "tracking_by_group": by_group}


def track(
    models: Sequence[ComparedModel],
    held_out_llm: Sequence[Doc],
    held_out_gold: Sequence[Doc] | None = None,
    dev_gold: Sequence[Doc] | None = None,
    *,
    groups: Sequence[str] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every model on the held-out LLM labels and on the gold references, and measure
    how well cheap F1 tracks gold F1.

    models (Sequence[ComparedModel]): The models to rank (none may have trained on a held-out
        sentence: ``check_held_out``).
    held_out_llm (Sequence[Doc]): The held-out sentences with the LLM's entities.
    held_out_gold (Optional[Sequence[Doc]]): The same sentences (by ``sent_id``) with gold
        entities: gold F1 on exactly the sentences of the cheap F1.
    dev_gold (Optional[Sequence[Doc]]): A gold dev set: the gold F1 used in practice.
    groups (Sequence[str]): Name prefixes (``frozen`` for ``frozen/...``) of model families
        to track within as well: across families, a gap between them can make any score
        correlate.
    batch_size (int): Sentences per forward pass.
    progress (bool): Show progress bars.
    RETURNS (dict): ``held_out`` (ids, size, the LLM's own F1 against gold), ``models`` (per
        model its scores), ``tracking`` and ``tracking_by_group`` (``tracking_of``).
    """
    if not models:
        raise CheapTestError("no models to compare: give at least one")
    if not held_out_llm:
        raise CheapTestError("no held-out sentences")
    ids = sent_ids_of(held_out_llm)
    check_held_out(models, ids)
    gold = None if held_out_gold is None else select_docs(held_out_gold, ids, "the gold set")
    held_out: dict[str, Any] = {"n_sentences": len(ids), "ids": ids}
    if gold is not None:
        held_out["llm_vs_gold"] = _scores(doc_entity_scores(gold, held_out_llm))
    rows = []
    for model in tqdm(models, desc="models", unit="model", disable=not progress):
        nlp = load_pipeline(model.path)
        row: dict[str, Any] = {
            "name": model.name,
            "path": str(model.path),
            "n_train_sentences": len(model.train_ids),
            "trained_on": list(model.trained_on),
        }
        row.update(_held_out_scores(nlp, held_out_llm, gold, batch_size, progress=False))
        if dev_gold is not None:
            dev = evaluate_pipeline(nlp, dev_gold, batch_size, progress=False)
            row["dev"] = {**_scores(dev), "loss": float(dev["loss"])}
        logger.info(
            "%s: cheap F1 %.4f%s",
            model.name,
            row["cheap"]["f1"],
            "".join(f", {key} F1 {row[key]['f1']:.4f}" for key in REFERENCES if key in row),
        )
        rows.append(row)
    return {
        "held_out": held_out,
        "n_models": len(rows),
        "models": rows,
        **tracking_of(rows, groups),
    }


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per group and gold reference: correlations and best-model agreement."""
    tables = {"all models": report["tracking"], **report.get("tracking_by_group", {})}
    return [
        f"{group}, {REFERENCES[key]}: {stats['n_models']} models, Pearson "
        f"{_number(stats['pearson'])}, Spearman {_number(stats['spearman'])}, Kendall "
        f"{_number(stats['kendall_tau'])}, same best: {'yes' if stats['same_best'] else 'no'}"
        for group, tracking in tables.items()
        for key, stats in tracking.items()
    ]


def report_markdown(report: dict[str, Any]) -> str:
    """The tracking statistics and the models ordered by cheap F1, as Markdown."""
    held_out = report["held_out"]
    source = held_out.get("llm", "the LLM")
    lines = [
        "# Cheap testing: F1 against LLM labels on held-out sentences",
        "",
        f"{held_out['n_sentences']} held-out sentences"
        + (f" (seed {held_out['seed']})" if "seed" in held_out else "")
        + f" that none of the {report['n_models']} models trained on; cheap labels: {source}.",
    ]
    if "llm_vs_gold" in held_out:
        lines[-1] += f" The LLM's own F1 against gold on them: {held_out['llm_vs_gold']['f1']:.4f}."
    tables = {"all models": report["tracking"], **report.get("tracking_by_group", {})}
    if report["tracking"]:
        lines += [
            "",
            "| models | gold reference | n | Pearson | Spearman | Kendall tau | best by cheap F1 "
            "| best by gold F1 | same best | gold F1 lost | mean cheap - gold |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for group, tracking in tables.items():
        for key, stats in tracking.items():
            lines.append(
                f"| {group} | {REFERENCES[key]} | {stats['n_models']} | "
                f"{_number(stats['pearson'])} | "
                f"{_number(stats['spearman'])} | {_number(stats['kendall_tau'])} | "
                f"{stats['best_by_cheap']} | {stats['best_by_gold']} | "
                f"{'yes' if stats['same_best'] else 'no'} | {stats['gold_f1_lost']:.4f} | "
                f"{stats['mean_gap']:+.4f} |"
            )
    present = [key for key in REFERENCES if report["models"] and key in report["models"][0]]
    header = " | ".join(f"{REFERENCES[key]} F1" for key in present)
    lines += [
        "",
        "## Models by cheap F1",
        "",
        "| model | trained sentences | cheap F1 | " + (header + " |" if header else ""),
        "|---|---|---|" + "---|" * len(present),
    ]
    for row in sorted(report["models"], key=lambda r: -r["cheap"]["f1"]):
        cells = "".join(f" {row[key]['f1']:.4f} |" for key in present)
        lines.append(
            f"| {row['name']} | {row['n_train_sentences']} | {row['cheap']['f1']:.4f} |{cells}"
        )
    return "\n".join(lines) + "\n"


def plot_scatter(report: dict[str, Any], path: Path | str) -> Path:
    """Gold F1 against cheap F1, one point per model and gold reference (a marker per
    reference, a colour per group of ``tracking_by_group``), written atomically."""
    rows = report["models"]
    groups = list(report.get("tracking_by_group", {}))
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        family = next((g for g in groups if in_group(row["name"], g)), "other" if groups else "")
        families.setdefault(family, []).append(row)
    markers = {"held_out_gold": "o", "dev": "^"}
    with png_figure(path, figsize=(6.8, 5.8)) as (_, ax):
        keys = list(report["tracking"]) or ["cheap"]
        for i, (family, members) in enumerate(families.items()):
            for key in keys:
                ax.scatter(
                    [row["cheap"]["f1"] for row in members],
                    [row[key]["f1"] for row in members],
                    marker=markers.get(key, "s"),
                    color=f"C{i}",
                    alpha=0.45 if key == "dev" else 0.8,
                    label=", ".join(part for part in (family, REFERENCES.get(key, key)) if part),
                )
        picks = {stats["best_by_cheap"]: key for key, stats in report["tracking"].items()}
        for name, key in picks.items():
            pick = next(row for row in rows if row["name"] == name)
            ax.annotate(
                f"best by cheap F1: {name}",
                (pick["cheap"]["f1"], pick[key]["f1"]),
                textcoords="offset points",
                xytext=(-12, 14),
                ha="right",
                fontsize="x-small",
                arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.6},
            )
        (x_low, x_high), (y_low, y_high) = ax.get_xlim(), ax.get_ylim()
        low, high = min(x_low, y_low), max(x_high, y_high)
        ax.plot(
            [low, high], [low, high], linestyle="--", color="grey", linewidth=0.8, label="y = x"
        )
        ax.set_xlabel(f"cheap F1 (against {report['held_out'].get('llm', 'LLM')} labels)")
        ax.set_ylabel("gold entity F1 (seqeval)")
        title = f"Cheap testing over {report['n_models']} models"
        for key, stats in report["tracking"].items():
            title += (
                f"\n{REFERENCES[key]}: Pearson {_number(stats['pearson'])}, "
                f"Spearman {_number(stats['spearman'])}, Kendall {_number(stats['kendall_tau'])}"
            )
        ax.set_title(title, pad=10, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="best")
    return Path(path)


def write_report(
    report: dict[str, Any], output: Path | str, table: Path | None = None, plot: Path | None = None
) -> list[Path]:
    """The JSON at ``output``, the Markdown and the PNG beside it (same stem) unless given;
    each written atomically."""
    output = Path(output)
    return [
        atomic_write_json(output, report),
        atomic_write_text(table or output.with_suffix(".md"), report_markdown(report)),
        plot_scatter(report, plot or output.with_suffix(".png")),
    ]


def run_cheap_test(
    llm_path: Path,
    models: Sequence[ComparedModel],
    *,
    gold_path: Path | None = None,
    dev_path: Path | None = None,
    held_out_ids: Sequence[int] | None = None,
    n_held_out: int = 1000,
    seed: int = 0,
    groups: Sequence[str] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """The cheap test on DocBins: hold out sentences that the LLM labels (and the gold set, when
    given) outside every model's training set, then ``track``.

    llm_path (Path): The LLM-labelled sentences (``corpus/cheap/<set>.spacy``).
    models (Sequence[ComparedModel]): The models to rank.
    gold_path (Optional[Path]): Gold labels of the same split (gold F1 on the held-out set).
    dev_path (Optional[Path]): A gold dev set.
    held_out_ids (Optional[Sequence[int]]): The held-out sentence ids; None draws
        ``n_held_out`` of them with ``seed`` (``draw_held_out``).
    groups (Sequence[str]): Model families to track within as well (``track``).
    RETURNS (dict): ``track``'s report, with ``held_out`` completed by the LLM set's path, the
        seed and how the ids were chosen.
    """
    llm_docs = read_docbin(llm_path)
    gold_docs = None if gold_path is None else read_docbin(gold_path)
    if held_out_ids is None:
        candidates = set(sent_ids_of(llm_docs))
        if gold_docs is not None:
            candidates &= set(sent_ids_of(gold_docs))
        excluded = frozenset().union(*(m.train_ids for m in models))
        if len(candidates - excluded) < n_held_out:
            largest = max(models, key=lambda m: len(m.train_ids & candidates))
            raise CheapTestError(
                f"cannot hold out {n_held_out} sentences: {len(candidates - excluded)} of the "
                f"{len(candidates)} labelled sentences are outside every model's training set "
                f"({largest.name} trained on {len(largest.train_ids & candidates)} of them); "
                "lower --n-held-out or leave out models that trained on most of them"
            )
        ids = draw_held_out(candidates, excluded, n_held_out, seed)
        how = {"drawn": True, "seed": seed, "n_candidates": len(candidates - excluded)}
    else:
        ids = sorted(set(int(i) for i in held_out_ids))
        check_held_out(models, ids)
        how = {"drawn": False}
    held_out_llm = select_docs(llm_docs, ids, str(llm_path))
    dev_docs = None if dev_path is None else read_docbin(dev_path)
    if dev_docs is not None and not dev_docs:
        raise EvaluationError(f"{dev_path} holds no sentences")
    report = track(
        models,
        held_out_llm,
        gold_docs,
        dev_docs,
        groups=groups,
        batch_size=batch_size,
        progress=progress,
    )
    report["held_out"] = {
        "llm": str(llm_path),
        "gold": None if gold_path is None else str(gold_path),
        "dev": None if dev_path is None else str(dev_path),
        **how,
        **report["held_out"],
    }
    return report
