"""Data analysis, the study's first stage: tag distributions per split and LLM label quality.

The per-type columns and bars are the label scheme's labels, in its order (``nerloop.labels``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from spacy.tokens import Doc

from nerloop.corpus import meta
from nerloop.eval.metrics import EvaluationError, docs_to_iob2, entity_scores
from nerloop.io_utils import atomic_path, atomic_write_json, atomic_write_text, read_docbin
from nerloop.labels import LabelScheme, as_scheme

SPLITS = ("train", "dev", "test")


def tag_distributions(docs: Sequence[Doc]) -> dict[str, dict[str, int]]:
    """Counts of POS tags, chunk tags, IOB2 NER tags and entity types over a split."""
    pos = Counter(token.tag_ for doc in docs for token in doc)
    chunk = Counter(tag for doc in docs for tag in doc.user_data.get(meta.CHUNK_TAGS, []))
    ner = Counter(tag for tags in docs_to_iob2(docs) for tag in tags)
    entities = Counter(ent.label_ for doc in docs for ent in doc.ents)

    def ordered(counter: Counter) -> dict[str, int]:
        return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))

    return {
        "pos": ordered(pos),
        "chunk": ordered(chunk),
        "ner": ordered(ner),
        "entity": ordered(entities),
    }


def annotation_quality(gold_train: Sequence[Doc], cheap: Sequence[Doc]) -> dict:
    """Entity-level quality of a cheap set against gold on the sentences it covers."""
    gold_by_id = meta.by_sent_id(gold_train)
    gold_docs = []
    for doc in cheap:
        gold = gold_by_id[meta.sent_id(doc)]
        if [t.text for t in gold] != [t.text for t in doc]:
            raise EvaluationError(f"cheap sentence {meta.sent_id(doc)} has other tokens than gold")
        gold_docs.append(gold)
    return entity_scores(docs_to_iob2(gold_docs), docs_to_iob2(cheap))


def quality_table(
    quality: dict[str, dict],
    reference: dict[str, float] | None = None,
    labels: LabelScheme | Sequence[str] | None = None,
) -> str:
    """A Markdown table of LLM label quality (micro P/R/F1 and per-type F1).

    quality (Dict[str, dict]): ``annotation_quality`` per LLM set.
    reference (Optional[Dict[str, float]]): Unused (kept for callers).
    labels (Union[LabelScheme, Sequence[str], None]): The label scheme: a per-type F1 column
        per label, in its order (None: the default scheme).
    RETURNS (str): The table.
    """
    labels = list(as_scheme(labels).labels)
    header = (
        "| LLM set | sentences | P | R | F1 | " + " | ".join(f"{lab} F1" for lab in labels) + " |"
    )
    lines = [header, "|" + "---|" * (5 + len(labels))]
    for name, scores in sorted(quality.items(), key=lambda item: -item[1]["f1"]):
        per_type = [scores["per_type"].get(lab, {}).get("f1", 0.0) for lab in labels]
        lines.append(
            f"| {name} | {scores['n_sentences']:,} | {scores['precision']:.3f} | "
            f"{scores['recall']:.3f} | **{scores['f1']:.3f}** | "
            + " | ".join(f"{f:.3f}" for f in per_type)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _bar_chart(
    path: Path, title: str, series: dict[str, dict[str, float]], normalise: bool, ylabel: str = ""
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = list(next(iter(series.values())).keys())
    for counts in series.values():
        keys += [k for k in counts if k not in keys]
    x = np.arange(len(keys))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(min(16, max(6, 0.3 * len(keys) + 2)), 4))
    for i, (name, counts) in enumerate(series.items()):
        total = sum(counts.values()) or 1
        values = [counts.get(k, 0) / (total if normalise else 1) for k in keys]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(keys, rotation=90 if len(keys) > 12 else 0, fontsize=8)
    ax.set_ylabel(ylabel or ("share of tokens" if normalise else "count"))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _quality_chart(path: Path, quality: dict[str, dict], scheme: LabelScheme) -> None:
    per_type = {
        name: {lab: scores["per_type"].get(lab, {}).get("f1", 0.0) for lab in scheme.labels}
        | {"micro": scores["f1"]}
        for name, scores in quality.items()
    }
    _bar_chart(path, "LLM label quality vs gold", per_type, normalise=False, ylabel="entity F1")


def _in_scheme_order(counts: dict[str, int], scheme: LabelScheme) -> dict[str, int]:
    """Counts per label, the scheme's labels first (in its order, zeros included)."""
    ordered = {label: counts.get(label, 0) for label in scheme.labels}
    return ordered | {label: n for label, n in counts.items() if label not in ordered}


def analyze(
    corpus_dir: Path,
    metrics_dir: Path,
    plots_dir: Path,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
) -> dict:
    """Write the tag distributions and the LLM label quality (JSON, Markdown, PNG).

    corpus_dir (Path): The folder with ``{train,dev,test}.spacy`` and ``cheap/``.
    metrics_dir (Path): Where the JSON and Markdown go.
    plots_dir (Path): Where the PNG charts go.
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme (or its file) of
        the per-type columns and bars (None: the default scheme).
    RETURNS (dict): ``distributions`` per split and ``quality`` per LLM set.
    """
    scheme = as_scheme(labels)
    docs = {split: read_docbin(corpus_dir / f"{split}.spacy") for split in SPLITS}
    distributions = {split: tag_distributions(split_docs) for split, split_docs in docs.items()}
    atomic_write_json(metrics_dir / "tag_distributions.json", distributions)
    for kind in ("pos", "chunk", "ner", "entity"):
        series = {split: distributions[split][kind] for split in SPLITS}
        if kind == "entity":
            series = {split: _in_scheme_order(counts, scheme) for split, counts in series.items()}
        _bar_chart(
            plots_dir / f"tags_{kind}.png",
            f"{kind.upper()} tags per split" if kind != "entity" else "Entities per type per split",
            series,
            normalise=kind != "entity",
        )
    quality = {}
    for path in sorted((corpus_dir / "cheap").glob("*.spacy")):
        quality[path.stem] = annotation_quality(docs["train"], read_docbin(path))
    atomic_write_json(metrics_dir / "annotation_quality.json", quality)
    atomic_write_text(metrics_dir / "annotation_quality.md", quality_table(quality, labels=scheme))
    if quality:
        _quality_chart(plots_dir / "annotation_quality.png", quality, scheme)
    return {"distributions": distributions, "quality": quality}
