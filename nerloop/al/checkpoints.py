"""Checkpoints of the active learning loop: one pipeline folder and one manifest per iteration.

Layout under the run's output folder::

    checkpoints/active_iter_0_added_0/        the initial pipeline
    checkpoints/active_iter_0_added_0.json    its manifest
    checkpoints/active_iter_1_added_10/       after the first round (10 sentences added so far)
    checkpoints/active_iter_1_added_10.json
    ...

Names follow the study's branches (``active_iter_{i}_added_{n}``, ``n`` the sentences added so
far). The pipeline folder is written atomically first and its manifest atomically last, so an
iteration is finished exactly when its manifest exists: a folder without a manifest is what a
crash leaves behind, and is removed before the iteration is done again.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spacy.language import Language

from nerloop.errors import NerloopError
from nerloop.eval.pipeline import load_pipeline
from nerloop.io_utils import atomic_write_json
from nerloop.training import save_pipeline

CHECKPOINTS_DIR = "checkpoints"
NAME_PATTERN = re.compile(r"^active_iter_(\d+)_added_(\d+)$")


class ResumeError(NerloopError, ValueError):
    """The checkpoints on disk cannot be continued with the settings given."""


def checkpoint_name(iteration: int, n_added: int) -> str:
    """``active_iter_{iteration}_added_{n_added}`` (the study's branch names)."""
    return f"active_iter_{iteration}_added_{n_added}"


class CheckpointStore:
    """The checkpoints and manifests of one active learning run."""

    def __init__(self, output_dir: Path | str) -> None:
        self.output_dir = Path(output_dir)
        self.folder = self.output_dir / CHECKPOINTS_DIR

    def pipeline_path(self, name: str) -> Path:
        return self.folder / name

    def manifest_path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def save_pipeline(
        self, nlp: Language, name: str, dev_scores: dict[str, float] | None = None
    ) -> Path:
        """Write a checkpoint's pipeline folder atomically (before its manifest)."""
        if NAME_PATTERN.match(name) is None:
            raise ValueError(f"not a checkpoint name: {name!r}")
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
