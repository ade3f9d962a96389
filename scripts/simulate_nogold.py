"""The whole no-gold workflow on a corpus that does have gold labels, with a simulated LLM and
simulated experts, to measure it (README "BC5CDR with a simulated LLM"):

    python -m scripts.simulate_nogold corpus/bc5cdr/train.spacy corpus/bc5cdr/test.spacy \
        training/bc5cdr_nogold metrics/bc5cdr/nogold --labels configs/labels_bc5cdr.cfg \
        --config configs/tagger_trf_frozen.cfg --features features

Every step is the CLI a user runs (``scripts.dev_sample``, ``al_import``, ``finetune``,
``al_human select``/``update``, ``rounds_report``, ``evaluate``), in a subprocess, in order. Only
the people are replaced: the LLM is the gold train labels corrupted at the stated, seeded rates
(``scripts.simulate_llm``), and the experts answer every Label Studio export with the gold
entities of its sentences (``nerloop.corpus.simulate.expert_answers``). The gold labels of the
train corpus are used for nothing else. Test F1 is scored once per model, after the last round.

A rerun skips every step whose output exists and resumes the rounds from the loop's state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import typer
from spacy.vocab import Vocab
from wasabi import msg

from nerloop.al.human import STATE_FILE, iteration_dir
from nerloop.cli import run_app
from nerloop.corpus import meta
from nerloop.corpus.simulate import expert_answers
from nerloop.eval.metrics import doc_entity_scores
from nerloop.formats.common import LABEL_STUDIO_TASKS_FILE
from nerloop.io_utils import atomic_write_json, read_docbin

ROOT = Path(__file__).resolve().parent.parent


def _run(step: str, *args: object) -> float:
    """Run one step's CLI from the project root; stop everything if it fails."""
    command = [sys.executable, "-m", f"scripts.{step}", *[str(arg) for arg in args]]
    msg.divider(" ".join(command[2:4]))
    start = time.perf_counter()
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        msg.fail(f"step failed: {' '.join(command)}", exits=1)
    return time.perf_counter() - start


def _answer(tasks_path: Path, gold: dict, output: Path) -> Path:
    tasks = json.loads(tasks_path.read_text(encoding="utf8"))
    atomic_write_json(output, expert_answers(tasks, gold))
    return output


def main(
    gold_train: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold train DocBin"),
    gold_test: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold test DocBin"),
    work_dir: Path = typer.Argument(..., file_okay=False, help="Folder of the run"),
    metrics_dir: Path = typer.Argument(..., file_okay=False, help="Where the figures go"),
    labels: Path = typer.Option(..., "--labels", exists=True, dir_okay=False, help="Scheme"),
    config: Path = typer.Option(ROOT / "configs" / "tagger_trf_frozen.cfg", "--config"),
    features: Path = typer.Option(ROOT / "features", "--features", help="Feature store"),
    al_config: Path = typer.Option(ROOT / "configs" / "al.cfg", "--al-config", exists=True),
    miss_rate: float = typer.Option(0.3, help="Simulated LLM: probability an entity is missed"),
    wrong_label_rate: float = typer.Option(0.1, help="Simulated LLM: a kept entity mislabelled"),
    dev_size: int = typer.Option(300, help="Sentences in the experts' fixed dev sample"),
    epochs: int = typer.Option(5, help="Epochs of the cheap model"),
    rounds: int = typer.Option(3, help="Rounds of experts"),
    batch: int = typer.Option(100, help="Sentences the experts label per round"),
    strategy: str = typer.Option("entropy", help="Query strategy"),
    finetune_epochs: int = typer.Option(2, help="Warm fine-tuning epochs per round"),
    cheap_weight: float = typer.Option(1.0, help="Loss weight of the LLM labels in each round"),
    seed: int = typer.Option(0, help="Seeds the LLM, the dev sample, training, selection"),
) -> None:
    """Measure the no-gold workflow with a simulated LLM and simulated experts."""
    start = time.perf_counter()
    gold = meta.by_sent_id(read_docbin(gold_train, Vocab()))
    seconds: dict[str, float] = {}
    nogold_dir, llm_path = work_dir / "nogold", work_dir / "llm.spacy"
    if not llm_path.exists():
        seconds["simulate_llm"] = _run(
            "simulate_llm", gold_train, llm_path, "--miss-rate", miss_rate,
            "--wrong-label-rate", wrong_label_rate, "--seed", seed, "--labels", labels,
        )  # fmt: skip
    llm_docs = read_docbin(llm_path, Vocab())
    label_quality = doc_entity_scores([gold[meta.sent_id(d)] for d in llm_docs], llm_docs)

    if not (nogold_dir / "pool.spacy").exists():
        seconds["dev_sample"] = _run(
            "dev_sample", gold_train, llm_path, nogold_dir, "--size", dev_size,
            "--seed", seed, "--labels", labels,
        )  # fmt: skip
    dev_path = nogold_dir / "dev.spacy"
    if not dev_path.exists():
        answers = _answer(
            nogold_dir / "export" / LABEL_STUDIO_TASKS_FILE, gold, work_dir / "dev_answers.json"
        )
        seconds["dev_import"] = _run(
            "al_import", answers, nogold_dir / "dev_sample.spacy", dev_path,
            "--format", "labelstudio", "--labels", labels,
            "--summary", nogold_dir / "dev_import.json",
        )  # fmt: skip
    cheap_dir = work_dir / "cheap"
    if not (cheap_dir / "model-best").exists():
        seconds["train_cheap"] = _run(
            "finetune", nogold_dir / "pool.spacy", dev_path, cheap_dir, "--config", config,
            "--epochs", epochs, "--seed", seed, "--paths.labels", labels,
            "--paths.features", features,
        )  # fmt: skip

    state_dir = work_dir / "al"
    overrides = ["--training.finetune_epochs", finetune_epochs, "--mix.cheap_weight", cheap_weight]
    for round_number in range(1, rounds + 1):
        state = (
            json.loads((state_dir / STATE_FILE).read_text())
            if (state_dir / STATE_FILE).exists()
            else {"iteration": 0, "pending": None}
        )
        if state["iteration"] >= round_number:
            continue
        if state["pending"] is None:
            first = ["--model", cheap_dir / "model-best"] if round_number == 1 else []
            seconds[f"select_{round_number}"] = _run(
                "al_human", "select", state_dir, "--pool", nogold_dir / "pool.spacy", *first,
                "--labels", labels, "--config", al_config, "--loop.strategy", strategy,
                "--loop.batch_to_add", batch, "--loop.seed", seed, "--no-progress",
            )  # fmt: skip
        export = iteration_dir(state_dir, round_number) / "export" / LABEL_STUDIO_TASKS_FILE
        answers = _answer(export, gold, work_dir / f"answers_{round_number}.json")
        seconds[f"update_{round_number}"] = _run(
            "al_human", "update", state_dir, "--answers", answers, "--format", "labelstudio",
            "--cheap", nogold_dir / "pool.spacy", "--dev", dev_path, "--labels", labels,
            "--config", al_config, *overrides, "--no-progress",
        )  # fmt: skip

    final_dir = work_dir / "final"
    _run(
        "rounds_report", state_dir, metrics_dir / "nogold_rounds.json", "--dev", dev_path,
        "--markdown", metrics_dir / "nogold_rounds.md", "--final-model", final_dir,
    )  # fmt: skip
    scores = {}
    for name, model in (("cheap", cheap_dir), ("final", final_dir)):
        output = metrics_dir / f"nogold_{name}.json"
        if not output.exists():
            _run("evaluate", model, name, dev_path, gold_test, "--output", output)
        result = json.loads(output.read_text())
        scores[name] = {split: result[split]["f1"] for split in ("dev", "test")}
    summary = {
        "simulated": "LLM: gold labels corrupted; experts: gold labels",
        "miss_rate": miss_rate,
        "wrong_label_rate": wrong_label_rate,
        "seed": seed,
        "llm_label_quality": {k: label_quality[k] for k in ("precision", "recall", "f1")},
        "dev_size": dev_size,
        "strategy": strategy,
        "batch": batch,
        "cheap_weight": cheap_weight,
        "finetune_epochs": finetune_epochs,
        "config": str(config),
        "rounds": json.loads((metrics_dir / "nogold_rounds.json").read_text())["rounds"],
        "f1": scores,
        "seconds_this_run": {**seconds, "total": time.perf_counter() - start},
    }
    atomic_write_json(metrics_dir / "nogold_summary.json", summary)
    msg.good(
        f"simulated LLM labels F1 {label_quality['f1']:.3f}; cheap model dev "
        f"{scores['cheap']['dev']:.4f} test {scores['cheap']['test']:.4f}; after {rounds} rounds "
        f"dev {scores['final']['dev']:.4f} test {scores['final']['test']:.4f} "
        f"-> {metrics_dir / 'nogold_summary.json'}"
    )


if __name__ == "__main__":
    run_app(main)
