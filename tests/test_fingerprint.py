"""The one fingerprint helper keeps the values that caches, records and Prodigy already hold."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nerloop.fingerprint import file_fingerprint, small_int_hash
from nerloop.io_utils import file_sha256, input_hashes
from nerloop.llm.cache import cache_key


def test_cache_key_keeps_the_value_of_existing_caches() -> None:
    identity = {"name": "gpt-4o", "temperature": 0.0}
    key = cache_key(identity, "Tag: Zürich")
    assert key == "2e29605c79fa0d25269d8ab96e3f52c288f68ee39c625ba22f7a028a45632d05"
    assert cache_key(dict(reversed(identity.items())), "Tag: Zürich") == key
    assert cache_key(identity, "Tag: Zurich") != key
    assert cache_key({**identity, "temperature": 0.5}, "Tag: Zürich") != key


def test_small_int_hash_keeps_the_prodigy_hashes() -> None:
    input_hash = small_int_hash({"text": "EU rejects German call ."})
    assert input_hash == -356623606
    span = {"start": 0, "end": 2, "token_start": 0, "token_end": 0, "label": "ORG"}
    assert small_int_hash({"input": input_hash, "spans": [span]}) == -1338639969
    assert small_int_hash({"spans": [span], "input": input_hash}) == -1338639969


def test_input_hashes_of_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "model" / "ner").mkdir(parents=True)
    (tmp_path / "model" / "config.cfg").write_bytes(b"[nlp]\n")
    (tmp_path / "model" / "ner" / "model").write_bytes(b"\x00\x01weights")
    (tmp_path / "train.spacy").write_bytes(b"docbin")
    hashes = input_hashes(
        {"train": str(tmp_path / "train.spacy"), "model": str(tmp_path / "model"), "dev": None}
    )
    # sha256 over each file's relative path and sha256, in sorted order (the records' format)
    assert hashes == {
        "train": hashlib.sha256(b"docbin").hexdigest(),
        "model": "280eeec2a9714345cc24ced1e0befe08d15a92729c956873bb54e05b965a852f",
    }
    assert file_sha256 is file_fingerprint
