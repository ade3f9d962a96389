"""Write ``reports/report.md``: every table and plot of the study in one Markdown file.

It gathers what the workflow's steps wrote under ``metrics/`` (tag distributions, LLM label
quality and cost, the model table and comparison, the expert-budget curve and weights, the init
models, the active learning curves and speed) and names the packaged model. Plots are copied next
to the report (``reports/plots/``) so the folder can be shared as it is. A missing input is not
an error: its section says which ``spacy project run`` step writes it. Per-type rows list the label
scheme's labels in its order (``nerloop.labels``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from nerloop.io_utils import atomic_path, atomic_write_text
from nerloop.labels import LabelScheme, as_scheme, load_scheme


@dataclass(frozen=True)
class ReportInputs:
    """Where the report reads from: the project's variables decide these paths (and ``labels``,
    the label scheme, defaults to the default scheme file)."""

    metrics_dir: Path
    plots_dir: Path
    training_dir: Path
    packages_dir: Path
    cheap_set: str
    al_strategy: str
    package_name: str
    package_version: str
    labels: LabelScheme = field(default_factory=lambda: load_scheme(None))

    @property
    def set_dir(self) -> Path:
        return self.metrics_dir / self.cheap_set

    def wheel(self) -> Path:
        folder = f"en_{self.package_name}-{self.package_version}"
        return self.packages_dir / folder / "dist" / f"{folder}-py3-none-any.whl"


class Report:
    """Markdown lines and the plots to copy next to them."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.lines: list[str] = []
        self.plots: list[tuple[Path, Path]] = []
        self.missing: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.lines += ["#" * level + " " + text, ""]

    def text(self, text: str) -> None:
        self.lines += [text, ""]

    def missing_input(self, path: Path, step: str) -> None:
        self.missing.append(str(path))
        self.text(f"_Not produced yet: `{path}` (run `python -m spacy project run {step}`)._")

    def markdown_file(self, path: Path, step: str, demote: int = 2) -> bool:
        """Embed a Markdown file, its headings moved ``demote`` levels down."""
        if not path.exists():
            self.missing_input(path, step)
            return False
        body = []
        for line in path.read_text(encoding="utf8").rstrip().splitlines():
            body.append("#" * demote + line if line.startswith("#") else line)
        self.lines += body + [""]
        return True

    def plot(self, path: Path, caption: str, step: str) -> None:
        if not path.exists():
            self.missing_input(path, step)
            return
        target = Path("plots") / path.name
        self.plots.append((path, self.output.parent / target))
        self.text(f"![{caption}]({target.as_posix()})")

    def write(self) -> None:
        for source, target in self.plots:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        atomic_write_text(self.output, "\n".join(self.lines).rstrip() + "\n")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


def entity_counts_table(
    distributions: dict[str, Any], labels: LabelScheme | Sequence[str] | None = None
) -> str:
    """Entities per type and split from ``tag_distributions.json``.

    distributions (Dict[str, Any]): The tag distributions per split.
    labels (Union[LabelScheme, Sequence[str], None]): The label scheme: a row per label in its
        order (None: the default scheme); labels the scheme lacks follow, sorted.
    RETURNS (str): The Markdown table, with a last row for all types.
    """
    scheme = as_scheme(labels)
    splits = list(distributions)
    found = {t for split in splits for t in distributions[split]["entity"]}
    types = list(scheme.labels) + sorted(found - set(scheme.labels))
    lines = ["| entity | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for label in types + ["all"]:
        cells = []
        for split in splits:
            counts = distributions[split]["entity"]
            value = sum(counts.values()) if label == "all" else counts.get(label, 0)
            cells.append(f"{value:,}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def init_models_table(index: dict[str, Any]) -> str:
    lines = ["| model | expert budget | expert sentences | dev F1 | test F1 | role |"]
    lines.append("|---|---:|---:|---:|---:|---|")
    for name, row in index["models"].items():
        roles = []
        if index.get("recommended") == name:
            roles.append("recommended by the k-fold rule")
        if index.get("study") == name:
            roles.append("the study's budget")
        lines.append(
            f"| {name} | {row['budget_pct']:g}% | {row['n_expert']:,} | {row['dev_f1']:.4f} | "
            f"{row['test_f1']:.4f} | {', '.join(roles)} |"
        )
    return "\n".join(lines)


def al_speed_text(history: dict[str, Any]) -> str:
    """Scoring throughput and wall time per iteration of one loop (medians)."""
    later = history["iterations"][1:]
    if not later:
        return "The loop has not run an iteration yet."
    scoring = median([e["scoring"]["sentences_per_second"] for e in later])
    iteration = median([e["seconds"]["iteration"] for e in later])
    finetune = median([e["seconds"]["finetune"] for e in later])
    final = history["iterations"][-1]
    return (
        f"Strategy `{history['strategy_name']}`: {len(later)} iterations (stopped: "
        f"{history['stopped']}), {final['n_added']} expert sentences added to "
        f"{history['n_initial_expert']} initial ones; final dev F1 {final['dev']['f1']:.4f}. "
        f"Median per iteration: scoring {scoring:,.0f} pool sentences/s, fine-tuning "
        f"{finetune:.1f} s, whole iteration {iteration:.1f} s. Chosen checkpoint (highest dev "
        f"F1): `{history['chosen']['checkpoint'] if history.get('chosen') else 'none'}`."
    )


def _json_section(report: Report, path: Path, step: str, render: Callable[[Any], str]) -> None:
    if path.exists():
        report.text(render(_read_json(path)))
    else:
        report.missing_input(path, step)


def build_report(inputs: ReportInputs, output: Path) -> Report:
    """Collect every table and plot into a Report (not yet written)."""
    m, plots, cheap = inputs.metrics_dir, inputs.plots_dir, inputs.cheap_set
    report = Report(output)
    report.heading("nerloop study report", level=1)
    scheme = inputs.labels
    source = f" (`{scheme.path.name}`)" if scheme.path else ""
    report.text(
        f"CoNLL-2003; the cheap set of the budget and active learning experiments: **{cheap}**. "
        f"Entity labels{source}: {', '.join(scheme.labels)}. "
        "Every figure is on dev unless it says test; test is scored once per chosen model."
    )

    report.heading("1. Data: tag distributions")
    _json_section(
        report,
        m / "tag_distributions.json",
        "analyze",
        lambda distributions: entity_counts_table(distributions, scheme),
    )
    report.plot(plots / "tags_entity.png", "entities per type and split", "analyze")
    report.plot(plots / "tags_ner.png", "BIO tags per split", "analyze")

    report.heading("2. LLM labels: quality and cost")
    report.text("Entity-level quality of each recorded LLM set against the gold train labels:")
    report.markdown_file(m / "annotation_quality.md", "analyze")
    report.plot(plots / "annotation_quality.png", "LLM label quality", "analyze")
    report.text("Annotators on one seeded gold sample:")
    report.markdown_file(m / "annotate_eval.md", "annotate-eval")
    report.text("Cost per 1,000 sentences, LLM against expert:")
    report.markdown_file(m / "annotation_cost.md", "annotation-cost")

    report.heading("3. Models: the study's table")
    report.text(
        "LLM-only, init (cheap + initial expert budget) and gold models: validation loss, "
        "seqeval accuracy and entity F1, beside the study's F1 (its BERT model)."
    )
    report.markdown_file(m / "models.md", "model-table")
    report.text(f"Per-type test F1, LLM-only ({cheap}) against gold, paired bootstrap:")
    report.markdown_file(m / f"compare_llm_pure_{cheap}_vs_gold.md", "compare")

    report.heading("4. Expert budget (k-fold)")
    report.markdown_file(m / f"kfold_{cheap}" / "summary.md", "kfold", demote=2)
    report.plot(m / f"kfold_{cheap}" / "f1_curve.png", "dev F1 against expert sentences", "kfold")
    report.heading("Expert loss weight", level=3)
    report.markdown_file(m / f"kfold_weights_{cheap}" / "summary.md", "kfold-weights", demote=3)
    report.heading("Init models (scored on test once)", level=3)
    _json_section(report, inputs.set_dir / "init_models.json", "init-model", init_models_table)

    report.heading("5. Active learning")
    report.markdown_file(inputs.set_dir / "al_compare.md", "al-compare", demote=2)
    report.plot(plots / f"al_compare_{cheap}.png", "dev F1 against expert sentences added", "al")
    history = inputs.training_dir / cheap / "al" / inputs.al_strategy / "history.json"
    report.heading("Speed", level=3)
    _json_section(report, history, "al", al_speed_text)

    report.heading("6. Packaged model")
    wheel = inputs.wheel()
    if wheel.exists():
        report.text(
            f"Package **en_{inputs.package_name}** {inputs.package_version} "
            f"(the gold pipeline): `{wheel}`. Install it with `pip install {wheel}`, then "
            f'`spacy.load("en_{inputs.package_name}")`.'
        )
    else:
        report.missing_input(wheel, "package")
    if report.missing:
        report.heading("Missing inputs")
        report.text("\n".join(f"- `{path}`" for path in report.missing))
    return report
