"""Atomic writes (an interrupted step never leaves a half-written output behind) and the
content hashes of inputs (so a rerun can tell whether its inputs changed)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacy.tokens import Doc, DocBin

from nerloop.errors import NerloopError
from nerloop.fingerprint import file_fingerprint, path_fingerprint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class MissingInputError(NerloopError, FileNotFoundError):
    """An input file or folder that does not exist; the message says which step makes it."""


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Works for files and directories (a directory target is replaced as a whole).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {path}")
        if path.is_dir() and not path.is_symlink():
            backup = path.with_name(f".{path.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            path.rename(backup)
            tmp.rename(path)
            shutil.rmtree(backup)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf8")
    return Path(path)


def atomic_write_json(path: Path | str, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path | str, rows: Iterable[Any]) -> Path:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def write_docbin(path: Path | str, docs: Iterable[Doc]) -> Path:
    """Write Docs (with their user_data) to a .spacy file atomically."""
    doc_bin = DocBin(store_user_data=True)
    for doc in docs:
        doc_bin.add(doc)
    with atomic_path(path) as tmp:
        doc_bin.to_disk(tmp)
    return Path(path)


@contextlib.contextmanager
def png_figure(
    path: Path | str, *, figsize: tuple[float, float] = (7.5, 4.8), dpi: int = 150
) -> Iterator[tuple[Figure, Axes]]:
    """Yield a matplotlib figure with one axes (Agg backend) to draw on; when the block ends
    without error, lay it out and write it to ``path`` as a PNG atomically. It is always closed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield fig, ax
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def read_docbin(path: Path | str, vocab=None) -> list[Doc]:
    """Read all Docs of a .spacy file; a clear error when it is missing."""
    from spacy.vocab import Vocab

    path = Path(path)
    if not path.exists():
        raise MissingInputError(
            f"{path} does not exist: run `python -m spacy project run preprocess` first"
        )
    return list(DocBin().from_disk(path).get_docs(vocab or Vocab()))


# Kept for nerloop/al/human.py, which is not part of this change; new code imports
# nerloop.fingerprint.file_fingerprint.
file_sha256 = file_fingerprint


def input_hashes(paths: dict[str, str | None]) -> dict[str, str]:
    """sha256 of each input file, and of every file of an input folder (e.g. the init model).

    paths (Dict[str, Optional[str]]): input name -> file or folder (None: no such input).
    RETURNS (Dict[str, str]): input name -> ``nerloop.fingerprint.path_fingerprint``.
    """
    return {key: path_fingerprint(value) for key, value in paths.items() if value is not None}
