"""The final mix of an active learning run: the cheap set with gold labels for every expert
sentence of the run's chosen checkpoint (its initial experts and those active learning added),
mixed with the run's own pool and loss weights. ``package`` can ship the chosen checkpoint as it
is (the experiment tagger: the frozen encoder on CPU) or a model retrained on this mix with the
full fine-tuning config (``retrain-final``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nerloop.al.checkpoints import open_store
from nerloop.al.loop import HISTORY_FILE
from nerloop.errors import NerloopError
from nerloop.io_utils import atomic_write_json
from nerloop.mixing import mix_from_files, write_mixed


class FinalMixError(NerloopError, ValueError):
    """An active learning run that is not finished, or whose checkpoint lost its manifest."""


def final_experts(run_dir: Path | str) -> dict[str, Any]:
    """The chosen checkpoint of a finished run and every expert sentence it was trained with.

    run_dir (Path): An ``al`` output folder (``history.json``).
    RETURNS (dict): ``checkpoint``, ``dev`` (its dev scores), ``expert_ids`` (initial first, then
        in the order active learning added them), ``n_initial_expert``, ``n_added`` and the
        run's ``pool``, ``cheap_weight`` and ``expert_weight``.
    """
    run_dir = Path(run_dir)
    history_path = run_dir / HISTORY_FILE
    if not history_path.exists():
        raise FinalMixError(f"{history_path} does not exist: run the active learning loop first")
    history = json.loads(history_path.read_text(encoding="utf8"))
    chosen = history["chosen"]["checkpoint"]
    manifest_path = open_store(run_dir).manifest_path(chosen)
    if not manifest_path.exists():
        raise FinalMixError(f"{manifest_path} is missing: the chosen checkpoint was removed")
    manifest = json.loads(manifest_path.read_text(encoding="utf8"))
    settings = history["settings"]
    initial = [int(i) for i in settings.get("initial_expert_ids", [])]
    added = [int(i) for i in manifest["all_added_ids"]]
    return {
        "run": str(run_dir),
        "checkpoint": chosen,
        "dev": history["chosen"]["dev"],
        "expert_ids": initial + added,
        "n_initial_expert": len(initial),
        "n_added": len(added),
        "pool": history.get("pool", {}).get("setting", settings.get("pool", "auto")),
        "cheap_weight": float(settings.get("cheap_weight", 1.0)),
        "expert_weight": float(settings.get("expert_weight", 1.0)),
    }


def write_final_mix(
    run_dir: Path | str,
    cheap_path: Path,
    gold_path: Path,
    output_path: Path,
    summary_path: Path,
) -> dict[str, Any]:
    """Write the final mix of a run (DocBin and provenance summary, each atomically)."""
    experts = final_experts(run_dir)
    mixed = mix_from_files(
        cheap_path,
        gold_path,
        output_path,
        expert_ids=experts["expert_ids"],
        pool=experts["pool"],
        cheap_weight=experts["cheap_weight"],
        expert_weight=experts["expert_weight"],
    )
    mixed.summary["from_run"] = {k: v for k, v in experts.items() if k != "expert_ids"}
    write_mixed(mixed, output_path, summary_path)
    return mixed.summary


def copy_chosen(run_dir: Path | str, output_dir: Path | str) -> Path:
    """Copy the chosen checkpoint's pipeline of a finished run to a fixed folder (for
    ``package``), through a temporary folder renamed into place: a crash leaves the old copy."""
    experts = final_experts(run_dir)
    source = open_store(run_dir).pipeline_path(experts["checkpoint"])
    output_dir = Path(output_dir)
    partial = output_dir.with_name(f".{output_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    atomic_write_json(partial / "nerloop_final.json", experts)
    old = output_dir.with_name(f".{output_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if output_dir.exists():
        output_dir.rename(old)
    partial.rename(output_dir)
    shutil.rmtree(old, ignore_errors=True)
    return output_dir
