"""Checkpoints of the active learning loop: one pipeline folder and one manifest per iteration.

Layout under the run's output folder::

    checkpoints/active_iter_0_added_0/        the initial pipeline
    checkpoints/active_iter_0_added_0.json    its manifest
    checkpoints/active_iter_1_added_10/       after the first round (10 sentences added so far)
    checkpoints/active_iter_1_added_10.json
    ...

Names follow the study's branches (``active_iter_{i}_added_{n}``, ``n`` the manifest's
``n_added``). The pipeline folder is written atomically first and its manifest atomically last, so
an iteration is finished exactly when its manifest exists: a folder without a manifest is what a
crash leaves behind, and is removed before the iteration is done again.

The simulated loop (``al``, ``al-compare``) and the loop with real experts (``al_human``) write
the same folders with the same manifest keys (``MANIFEST_KEYS``), so one ``CheckpointStore`` reads
either. ``HubMirroredStore`` extends it: every checkpoint it commits is also pushed to its own
branch of a Hub repo (``nerloop.hub.CheckpointPusher``), recorded in ``hub_pushed.json``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spacy.language import Language

from nerloop.errors import NerloopError
from nerloop.eval.pipeline import load_pipeline
from nerloop.hub import CheckpointPusher, HubSettings
from nerloop.io_utils import atomic_write_json
from nerloop.training import save_pipeline

CHECKPOINTS_DIR = "checkpoints"
NAME_PATTERN = re.compile(r"^active_iter_(\d+)_added_(\d+)$")
# which checkpoints are on the Hub (beside history.json or state.json; never holds the token)
HUB_RECORD_FILE = "hub_pushed.json"
# The keys of every manifest, simulated or human (see ``manifest``).
MANIFEST_KEYS = (
    "version",
    "checkpoint",
    "iteration",
    "n_added",
    "n_initial_expert",
    "n_expert_total",
    "added_ids",
    "all_added_ids",
    "selected",
    "dev",
    "gain",
    "n_train_docs",
    "training_set",
    "epochs",
    "mode",
    "strategy",
    "from_model",
    "scoring",
    "answers",
    "skipped",
    "inputs",
    "seconds",
    "fingerprint",
    "settings",
)


class ResumeError(NerloopError, ValueError):
    """The checkpoints on disk cannot be continued with the settings given."""


def checkpoint_name(iteration: int, n_added: int) -> str:
    """``active_iter_{iteration}_added_{n_added}`` (the study's branch names)."""
    return f"active_iter_{iteration}_added_{n_added}"


def manifest(
    *,
    version: int,
    iteration: int,
    n_initial_expert: int,
    added_ids: list[int],
    all_added_ids: list[int],
    dev: dict[str, float],
    gain: float | None,
    **values: Any,
) -> dict[str, Any]:
    """A checkpoint's manifest, with every key of ``MANIFEST_KEYS`` (None or empty when unused).

    iteration (int): 0 for the starting model, ``i`` after the ``i``-th batch.
    n_initial_expert (int): Expert sentences the starting model was trained with.
    added_ids (List[int]): The sentences this iteration added.
    all_added_ids (List[int]): Every sentence active learning added so far, in order (never an
        initial expert sentence).
    dev (dict): The dev scores (``DEV_KEYS``).
    gain (Optional[float]): The dev F1 gained over the previous iteration (None at iteration 0).
    values: The other keys of ``MANIFEST_KEYS``.
    RETURNS (dict): The manifest. ``n_added`` is the number of expert sentences added by active
        learning so far, not counting the initial experts (``len(all_added_ids)``), and names
        the checkpoint ``active_iter_{iteration}_added_{n_added}``; ``n_expert_total`` adds the
        initial experts.
    """
    unknown = sorted(set(values) - set(MANIFEST_KEYS))
    if unknown:
        raise KeyError(f"not manifest keys: {unknown}")
    n_added = len(all_added_ids)
    record: dict[str, Any] = {key: None for key in MANIFEST_KEYS}
    record.update(
        selected=[],
        skipped=[],
        training_set={},
        inputs={},
        seconds={},
        settings={},
    )
    record.update(values)
    record.update(
        version=version,
        checkpoint=checkpoint_name(iteration, n_added),
        iteration=iteration,
        n_added=n_added,
        n_initial_expert=n_initial_expert,
        n_expert_total=n_initial_expert + n_added,
        added_ids=list(added_ids),
        all_added_ids=list(all_added_ids),
        dev=dev,
        gain=gain,
    )
    return record


OnCheckpoint = Callable[[Path, dict[str, Any]], Any]


class CheckpointStore:
    """The checkpoints and manifests of one active learning run (simulated or human).

    output_dir (Path): The run's folder (``checkpoints/`` is made inside it).
    on_checkpoint (Optional[Callable[[Path, dict], Any]]): Called with the pipeline folder and
        the manifest of each checkpoint committed.
    """

    def __init__(self, output_dir: Path | str, on_checkpoint: OnCheckpoint | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.folder = self.output_dir / CHECKPOINTS_DIR
        self.on_checkpoint = on_checkpoint

    def commit(self, nlp: Language, record: dict[str, Any], started: float | None = None) -> Path:
        """Save the pipeline, then its manifest (the iteration is finished from then on), then
        call ``on_checkpoint``.

        record (dict): The manifest (``manifest``); its ``seconds`` get ``save`` and, with
            ``started`` (a ``time.perf_counter()`` value), ``iteration``.
        RETURNS (Path): The pipeline folder.
        """
        name = record["checkpoint"]
        start = time.perf_counter()
        path = self.save_pipeline(nlp, name, record["dev"])
        record["seconds"]["save"] = time.perf_counter() - start
        if started is not None:
            record["seconds"]["iteration"] = time.perf_counter() - started
        self.write_manifest(record)
        if self.on_checkpoint is not None:
            self.on_checkpoint(path, record)
        return path

    def finished(self) -> dict[str, Path]:
        """Checkpoint name -> pipeline folder, for every finished iteration in order."""
        return {m["checkpoint"]: self.pipeline_path(m["checkpoint"]) for m in self.manifests()}

    def pipeline_path(self, name: str) -> Path:
        return self.folder / name

    def manifest_path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def save_pipeline(
        self, nlp: Language, name: str, dev_scores: dict[str, float] | None = None
    ) -> Path:
        """Write a checkpoint's pipeline folder atomically (before its manifest)."""
        if NAME_PATTERN.match(name) is None:
            raise ResumeError(f"not a checkpoint name: {name!r}")
        return save_pipeline(nlp, self.pipeline_path(name), dev_scores)

    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        """Write a manifest atomically: the iteration is finished from now on."""
        name = manifest["checkpoint"]
        if not (self.pipeline_path(name) / "config.cfg").exists():
            raise FileNotFoundError(f"write the pipeline of {name} before its manifest")
        return atomic_write_json(self.manifest_path(name), manifest)

    def load(self, manifest: dict[str, Any]) -> Language:
        path = self.pipeline_path(manifest["checkpoint"])
        if not (path / "config.cfg").exists():
            raise ResumeError(
                f"{path} is missing (pruned or deleted): the run cannot continue from "
                f"iteration {manifest['iteration']}"
            )
        return load_pipeline(path)

    def remove_unfinished(self) -> list[Path]:
        """Remove pipeline folders without a manifest and temporary files of atomic writes."""
        removed: list[Path] = []
        if not self.folder.exists():
            return removed
        for path in sorted(self.folder.iterdir()):
            unfinished = path.is_dir() and NAME_PATTERN.match(path.name) is not None
            unfinished = unfinished and not self.manifest_path(path.name).exists()
            stray = path.name.startswith(".") and path.name.endswith((".tmp", ".old"))
            if unfinished or stray:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
        return removed

    def manifests(self) -> list[dict[str, Any]]:
        """The finished iterations' manifests, by iteration; they must be 0, 1, 2, ..."""
        if not self.folder.exists():
            return []
        found = []
        for path in self.folder.glob("active_iter_*_added_*.json"):
            match = NAME_PATTERN.match(path.stem)
            if match is None:
                continue
            manifest = json.loads(path.read_text(encoding="utf8"))
            if manifest.get("checkpoint") != path.stem:
                raise ResumeError(f"{path} names another checkpoint: {manifest.get('checkpoint')}")
            found.append(manifest)
        found.sort(key=lambda m: m["iteration"])
        iterations = [m["iteration"] for m in found]
        if iterations != list(range(len(found))):
            raise ResumeError(
                f"{self.folder} holds iterations {iterations}: expected 0, 1, 2, ... without gaps"
            )
        return found

    def prune(self, keep: Iterable[str]) -> list[Path]:
        """Delete the pipeline folders not named in ``keep`` (their manifests stay)."""
        keep = set(keep)
        removed = []
        for manifest in self.manifests():
            path = self.pipeline_path(manifest["checkpoint"])
            if manifest["checkpoint"] not in keep and path.exists():
                shutil.rmtree(path)
                removed.append(path)
        return removed


class HubMirroredStore(CheckpointStore):
    """A ``CheckpointStore`` whose every committed checkpoint is also pushed to its own branch of
    a Hub repo (``nerloop.hub.CheckpointPusher``; the token is checked here, before any
    training). What is on the Hub is recorded in ``output_dir/hub_pushed.json``, so
    ``catch_up`` pushes the finished checkpoints a crash or a failed push left behind."""

    def __init__(
        self, output_dir: Path | str, hub: HubSettings, on_checkpoint: OnCheckpoint | None = None
    ) -> None:
        super().__init__(output_dir, on_checkpoint)
        self.pusher = CheckpointPusher(hub, Path(output_dir) / HUB_RECORD_FILE)

    def commit(self, nlp: Language, record: dict[str, Any], started: float | None = None) -> Path:
        path = super().commit(nlp, record, started)
        self.pusher(path, record)
        return path

    def catch_up(self) -> list[str]:
        """Push the finished checkpoints not on the Hub yet, in order."""
        return self.pusher.catch_up(self.finished())


def open_store(
    output_dir: Path | str,
    hub: HubSettings | None = None,
    on_checkpoint: OnCheckpoint | None = None,
) -> CheckpointStore:
    """The run's checkpoint store: mirrored to ``hub`` when given, else local only."""
    if hub is None:
        return CheckpointStore(output_dir, on_checkpoint)
    return HubMirroredStore(output_dir, hub, on_checkpoint)
