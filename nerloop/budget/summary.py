"""The grid's summary: mean and std over folds per budget, the tables and the F1 curve."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy

from nerloop.budget.plan import format_number
from nerloop.budget.run import RunSettings
from nerloop.budget.saturation import DEFAULT_SATURATION_THRESHOLD, find_saturation
from nerloop.io_utils import atomic_write_json, atomic_write_text, png_figure

METRICS = ("f1", "accuracy", "loss")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    array = numpy.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return float(array.mean()), std


def summarise_runs(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (expert weight, budget): n expert sentences and the mean and std over folds of
    dev F1, accuracy and loss, sorted by weight then budget."""
    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["expert_weight"], result["budget_pct"]), []).append(result)
    rows = []
    for (weight, pct), group in sorted(groups.items()):
        group = sorted(group, key=lambda r: r["fold"])
        row: dict[str, Any] = {
            "budget_pct": pct,
            "n_expert": group[0]["n_expert"],
            "expert_weight": weight,
            "n_folds": len(group),
        }
        for metric in METRICS:
            mean, std = _mean_std([r["dev"][metric] for r in group])
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
        row["f1_per_fold"] = [r["dev"]["f1"] for r in group]
        rows.append(row)
    return rows


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    columns = ["budget_pct", "n_expert", "expert_weight", "n_folds"] + [
        f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "std")
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in columns})
    return buffer.getvalue()


def _pm(row: dict[str, Any], metric: str, digits: int = 4) -> str:
    return f"{row[f'{metric}_mean']:.{digits}f} ± {row[f'{metric}_std']:.{digits}f}"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The budget table, the saturation point and, with several expert weights, the weights
    table."""
    rows = summary["rows"]
    weights = sorted({row["expert_weight"] for row in rows})
    lines = [
        f"# Expert budget, {summary['grid']['k']}-fold (dev, mean ± std over folds)",
        "",
        "| budget % | expert sentences | expert weight | folds | dev F1 | dev accuracy "
        "| dev loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {format_number(row['budget_pct'])} | {row['n_expert']} | "
            f"{format_number(row['expert_weight'])} | {row['n_folds']} | {_pm(row, 'f1')} | "
            f"{_pm(row, 'accuracy')} | {_pm(row, 'loss', 3)} |"
        )
    references = summary.get("references", {})
    for key, label in (("llm_pure", "LLM-only"), ("gold", "gold")):
        if references.get(key):
            reference = references[key]
            lines.append(f"\n{label} dev F1: {reference['f1']:.4f} ({reference['path']})")
    saturation = summary["saturation"]
    lines += ["", "## Saturation", "", f"Rule: {saturation['rule']}.", ""]
    lines.append(
        f"Threshold: {saturation['threshold_f1_per_100_sentences']} dev F1 per 100 expert "
        f"sentences (curve of expert weight {format_number(saturation['expert_weight'])})."
    )
    if saturation["reached"]:
        lines.append(
            f"Saturation point and recommended starting budget: "
            f"**{format_number(saturation['recommended_budget_pct'])}%** "
            f"({saturation['recommended_n_expert']} expert sentences)."
        )
    else:
        lines.append(f"Saturation not reached: {saturation.get('note', '')}.")
        if saturation["recommended_budget_pct"] is not None:
            lines.append(
                f"Recommended starting budget: "
                f"**{format_number(saturation['recommended_budget_pct'])}%** "
                f"({saturation['recommended_n_expert']} expert sentences)."
            )
    if len(weights) > 1:
        lines += ["", "## Expert weight", ""]
        lines.append(
            "| budget % | expert sentences | expert weight | dev F1 | ΔF1 vs first weight "
            "| dev accuracy | dev loss |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        by_budget: dict[float, list[dict[str, Any]]] = {}
        for row in rows:
            by_budget.setdefault(row["budget_pct"], []).append(row)
        for pct, group in sorted(by_budget.items()):
            group = sorted(group, key=lambda r: r["expert_weight"])
            base = group[0]["f1_mean"]
            for row in group:
                lines.append(
                    f"| {format_number(pct)} | {row['n_expert']} | "
                    f"{format_number(row['expert_weight'])} | {_pm(row, 'f1')} | "
                    f"{row['f1_mean'] - base:+.4f} | {_pm(row, 'accuracy')} | "
                    f"{_pm(row, 'loss', 3)} |"
                )
    return "\n".join(lines) + "\n"


def plot_curve(summary: dict[str, Any], path: Path) -> Path:
    """Dev F1 against expert sentences (mean ± std over folds), with the LLM-only and gold dev
    F1 as horizontal lines and the saturation point as a vertical line; written atomically."""
    rows = summary["rows"]
    n_cheap = summary["grid"]["n_cheap"]
    with png_figure(path) as (_, ax):
        for weight in sorted({row["expert_weight"] for row in rows}):
            curve = sorted(
                (r for r in rows if r["expert_weight"] == weight), key=lambda r: r["n_expert"]
            )
            ax.errorbar(
                [r["n_expert"] for r in curve],
                [r["f1_mean"] for r in curve],
                yerr=[r["f1_std"] for r in curve],
                marker="o",
                capsize=3,
                label=f"cheap + expert (weight {format_number(weight)})",
            )
        references = summary.get("references", {})
        styles = {"llm_pure": ("LLM-only", "--", "tab:red"), "gold": ("all gold", ":", "tab:green")}
        for key, (label, style, color) in styles.items():
            if references.get(key):
                f1 = references[key]["f1"]
                ax.axhline(f1, linestyle=style, color=color, label=f"{label} ({f1:.3f})")
        saturation = summary["saturation"]
        if saturation.get("reached"):
            ax.axvline(
                saturation["saturation_n_expert"],
                color="grey",
                linewidth=0.8,
                label=f"saturation ({format_number(saturation['saturation_budget_pct'])}%)",
            )
        ax.set_xlabel("expert sentences mixed in")
        ax.set_ylabel("dev entity F1 (seqeval)")
        ax.set_title(f"Expert budget, {summary['grid']['k']}-fold mean ± std", pad=12)
        if n_cheap:
            top = ax.secondary_xaxis(
                "top", functions=(lambda n: 100.0 * n / n_cheap, lambda p: p * n_cheap / 100.0)
            )
            top.set_xlabel("% of the cheap set")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    return Path(path)


def build_summary(
    results: Sequence[dict[str, Any]],
    grid: dict[str, Any],
    settings: RunSettings,
    *,
    threshold: float = DEFAULT_SATURATION_THRESHOLD,
    llm_pure: dict[str, Any] | None = None,
    gold: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary JSON: grid, settings, rows per budget, references and the saturation point
    (on the curve of the smallest expert weight)."""
    rows = summarise_runs(results)
    weights = sorted({row["expert_weight"] for row in rows})
    curve_weight = 1.0 if 1.0 in weights else (weights[0] if weights else 1.0)
    saturation = find_saturation([r for r in rows if r["expert_weight"] == curve_weight], threshold)
    saturation["expert_weight"] = curve_weight
    if llm_pure:
        for row in rows:
            row["f1_gain_over_llm_pure"] = row["f1_mean"] - llm_pure["f1"]
    settings_data = asdict(settings)
    settings_data.pop("threads")
    return {
        "grid": grid,
        "settings": settings_data,
        "n_runs": len(results),
        "rows": rows,
        "references": {"llm_pure": llm_pure, "gold": gold},
        "saturation": saturation,
        "recommended_budget_pct": saturation["recommended_budget_pct"],
        "recommended_n_expert": saturation["recommended_n_expert"],
        "seconds_per_run_mean": (
            float(numpy.mean([r["seconds"] for r in results])) if results else None
        ),
    }


def write_outputs(summary: dict[str, Any], output_dir: Path) -> list[Path]:
    """summary.json, summary.csv, summary.md and f1_curve.png under ``output_dir``."""
    return [
        atomic_write_json(output_dir / "summary.json", summary),
        atomic_write_text(output_dir / "summary.csv", rows_to_csv(summary["rows"])),
        atomic_write_text(output_dir / "summary.md", summary_markdown(summary)),
        plot_curve(summary, output_dir / "f1_curve.png"),
    ]
