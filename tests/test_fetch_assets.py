from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import srsly

from nerloop.corpus.assets import AssetError, fetch_assets, load_assets

PROJECT_ROOT = Path(__file__).parent.parent
CONTENT = {"conll2003/train.txt": b"EU NNP I-NP I-ORG\n", "extra/notes.txt": b"local only\n"}


def digests(data: bytes) -> tuple[str, str]:
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback serving CONTENT; records the paths requested."""
    served = tmp_path / "served"
    for relative, data in CONTENT.items():
        (served / relative).parent.mkdir(parents=True, exist_ok=True)
        (served / relative).write_bytes(data)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            return super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def make_project(tmp_path: Path, base_url: str, corrupt_checksum: bool = False) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    md5, sha256 = digests(CONTENT["conll2003/train.txt"])
    if corrupt_checksum:
        sha256 = "0" * 64
    local_md5, local_sha = digests(CONTENT["extra/notes.txt"])
    srsly.write_yaml(
        project / "project.yml",
        {
            "title": "t",
            "assets": [
                {
                    "dest": "assets/conll2003/train.txt",
                    "url": f"{base_url}/conll2003/train.txt",
                    "checksum": md5,
                    "sha256": sha256,
                },
                {
                    "dest": "assets/extra/notes.txt",
                    "checksum": local_md5,
                    "sha256": local_sha,
                    "description": "LOCAL-ONLY notes",
                },
            ],
        },
    )
    return project


def make_data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for relative, content in CONTENT.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_bytes(content)
    return data


def test_project_yml_lists_every_input_with_url_and_checksums() -> None:
    assets = load_assets(PROJECT_ROOT / "project.yml")
    dests = {a.dest for a in assets}
    assert {
        "assets/conll2003/train.txt",
        "assets/conll2003/dev.txt",
        "assets/conll2003/test.txt",
        "assets/llm_annotations/dsner_chatgpt/train.txt",
        "assets/llm_annotations/dsner_uniner/train.txt",
        "assets/llm_annotations/ispras_llama31_405b/llm.txt",
    } <= dests
    for asset in assets:
        assert asset.md5 and len(asset.md5) == 32 and asset.sha256 and len(asset.sha256) == 64
        assert asset.url or "LOCAL-ONLY" in asset.description, asset.dest


def test_project_yml_checksums_match_the_real_data(real_data_dir: Path) -> None:
    from nerloop.corpus.assets import checksum_problem

    for asset in load_assets(PROJECT_ROOT / "project.yml"):
        assert checksum_problem(asset, real_data_dir / asset.relative) is None, asset.dest


def test_copy_from_data_dir(tmp_path: Path) -> None:
    project = make_project(tmp_path, "http://127.0.0.1:9")  # port 9 is never reached
    results = fetch_assets(project, make_data_dir(tmp_path))
    assert (project / "assets/conll2003/train.txt").read_bytes() == CONTENT["conll2003/train.txt"]
    assert results["assets/conll2003/train.txt"].startswith("copied from")
    assert fetch_assets(project, make_data_dir(tmp_path))["assets/extra/notes.txt"] == "up to date"


def test_missing_file_in_data_dir_names_it(tmp_path: Path) -> None:
    project = make_project(tmp_path, "http://127.0.0.1:9")
    data = make_data_dir(tmp_path)
    (data / "conll2003/train.txt").unlink()
    with pytest.raises(AssetError) as err:
        fetch_assets(project, data)
    text = str(err.value)
    assert "assets/conll2003/train.txt" in text and "does not exist" in text
    assert "expected a file with sha256" in text.lower()
    assert "NERLOOP_DATA_DIR" in text
    assert not (project / "assets/conll2003/train.txt").exists()


def test_corrupted_file_in_data_dir_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, "http://127.0.0.1:9")
    data = make_data_dir(tmp_path)
    (data / "conll2003/train.txt").write_bytes(b"EU NNP I-NP I-LOC\n")
    with pytest.raises(AssetError, match="corrupted or a different version: sha256 is"):
        fetch_assets(project, data)
    assert not (project / "assets/conll2003/train.txt").exists()


def test_download_verifies_checksum(tmp_path: Path, http_server) -> None:
    base_url, requests = http_server
    project = make_project(tmp_path, base_url)
    results = fetch_assets(project, None)
    assert (
        results["assets/conll2003/train.txt"] == f"downloaded from {base_url}/conll2003/train.txt"
    )
    assert results["assets/extra/notes.txt"] == "skipped (local-only)"
    assert requests == ["/conll2003/train.txt"]
    # a second run finds the verified file and downloads nothing
    assert fetch_assets(project, None)["assets/conll2003/train.txt"] == "up to date"
    assert requests == ["/conll2003/train.txt"]


def test_download_with_wrong_checksum_writes_nothing(tmp_path: Path, http_server) -> None:
    base_url, _ = http_server
    project = make_project(tmp_path, base_url, corrupt_checksum=True)
    with pytest.raises(AssetError, match="does not match: sha256 is"):
        fetch_assets(project, None)
    assert not list((project / "assets").rglob("*.txt"))


def test_download_failure_says_how_to_fix(tmp_path: Path, http_server) -> None:
    base_url, _ = http_server
    project = make_project(tmp_path, base_url + "/missing")
    with pytest.raises(
        AssetError, match=r"download of .*/missing/conll2003/train.txt failed .*NERLOOP_DATA_DIR"
    ):
        fetch_assets(project, None)
