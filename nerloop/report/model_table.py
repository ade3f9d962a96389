"""A Markdown table comparing trained models from their ``metrics/<model>.json`` files."""

from __future__ import annotations

# Figures of the published study (entity F1 on its evaluation split), for side-by-side tables.
# The study's cheap set is llama405b.
STUDY_F1 = {"llm_pure_llama405b": 0.475, "init_12_llama405b": 0.653, "gold": 0.890}


def study_f1(result: dict) -> float | None:
    """The study's figure for this model: ``llm_pure_<set>``, ``init_<pct>_<set>`` or ``gold``,
    whatever the tok2vec (the experiment models' ``_exp`` suffix is ignored)."""
    name = result.get("study_name", result["model"])
    return STUDY_F1.get(name.removesuffix("_exp"))


def tok2vec_name(result: dict) -> str:
    """What ``evaluate`` recorded (``nerloop.eval.evaluate.tok2vec_kind``); for metrics from
    before it, ``transformer`` when the pipeline has a transformer component, else ``CNN``."""
    if "tok2vec" in result:
        return result["tok2vec"]
    return "transformer" if "transformer" in result.get("pipeline", []) else "CNN"


def model_table(metrics: list[dict]) -> str:
    header = [
        "model",
        "tok2vec",
        "dev loss",
        "dev acc",
        "dev F1",
        "test loss",
        "test acc",
        "test P",
    ]
    header += ["test R", "**test F1**", "study F1"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in metrics:
        dev, test = result["dev"], result["test"]
        study = study_f1(result)
        cells = [
            result.get("study_name", result["model"]),  # init models: init_<pct>_<cheap set>
            tok2vec_name(result),
            f"{dev['loss']:.3f}",
            f"{dev['accuracy']:.4f}",
        ]
        cells += [f"{dev['f1']:.4f}", f"{test['loss']:.3f}", f"{test['accuracy']:.4f}"]
        cells += [f"{test['precision']:.4f}", f"{test['recall']:.4f}", f"**{test['f1']:.4f}**"]
        cells.append("" if study is None else f"{study:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
