"""One fingerprint helper: the sha256 of a JSON value, of a file, of a folder.

Every cache key, result fingerprint and input record in nerloop goes through these, so the same
inputs give the same fingerprint in every process, run and machine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of a value (sorted keys, UTF-8)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf8")


def fingerprint(value: Any) -> str:
    """sha256 (hex) of the canonical JSON of a value."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def file_fingerprint(path: Path | str) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def path_fingerprint(path: Path | str) -> str:
    """sha256 of a file, or of every file of a folder with its relative path (a pipeline)."""
    path = Path(path)
    if not path.is_dir():
        return file_fingerprint(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file_fingerprint(file).encode())
    return digest.hexdigest()


def small_int_hash(value: Any) -> int:
    """A signed 32-bit hash of a JSON value, the same in every process (Prodigy's task hashes)."""
    return int.from_bytes(hashlib.sha1(canonical_json(value)).digest()[:4], "big", signed=True)
