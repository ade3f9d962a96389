"""Fetch the project's input files (CoNLL-2003, recorded LLM annotations) into ``assets/``.

Each asset in ``project.yml`` has a ``dest`` under ``assets/``, the public ``url`` it comes from
(absent for local-only files), its ``checksum`` (md5, what ``spacy project assets`` checks) and its
``sha256``. When the environment variable ``NERLOOP_DATA_DIR`` names a folder, files are copied
from there (same sub-layout as ``assets/``); otherwise they are downloaded. Both checksums are
verified either way, and a file is only moved into place once verified.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import srsly
from tqdm import tqdm
from wasabi import msg

from nerloop.errors import NerloopError
from nerloop.io_utils import atomic_path

DATA_DIR_ENV = "NERLOOP_DATA_DIR"
ASSETS_ROOT = "assets"


class AssetError(NerloopError, RuntimeError):
    """An asset that cannot be provided; the message says which file and how to fix it."""


@dataclass(frozen=True)
class Asset:
    dest: str
    url: str | None
    md5: str | None
    sha256: str | None
    description: str = ""

    @property
    def relative(self) -> Path:
        """The path below ``assets/`` (and below ``NERLOOP_DATA_DIR``)."""
        dest = Path(self.dest)
        if dest.parts[0] != ASSETS_ROOT:
            raise AssetError(f"asset dest {self.dest!r} must be under {ASSETS_ROOT}/")
        return Path(*dest.parts[1:])

    @property
    def local_only(self) -> bool:
        return not self.url


def load_assets(project_file: Path) -> list[Asset]:
    config = srsly.read_yaml(project_file)
    assets = []
    for entry in config.get("assets", []):
        assets.append(
            Asset(
                dest=entry["dest"],
                url=entry.get("url"),
                md5=entry.get("checksum"),
                sha256=entry.get("sha256"),
                description=entry.get("description", ""),
            )
        )
    return assets


def file_digests(path: Path) -> tuple[str, str]:
    """md5 (``spacy project``'s asset checksum) and sha256 of a file, in one read.

    Not ``nerloop.fingerprint.file_fingerprint``: that gives the sha256 only, and the assets
    (the CoNLL files, the LLM sets) would be read twice.
    """
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with path.open("rb") as file_:
        for block in iter(lambda: file_.read(1 << 20), b""):
            md5.update(block)
            sha256.update(block)
    return md5.hexdigest(), sha256.hexdigest()


def checksum_problem(asset: Asset, path: Path) -> str | None:
    """None when ``path`` has the asset's checksums, else what differs."""
    md5, sha256 = file_digests(path)
    if asset.sha256 and sha256 != asset.sha256:
        return f"sha256 is {sha256}, expected {asset.sha256}"
    if asset.md5 and md5 != asset.md5:
        return f"md5 is {md5}, expected {asset.md5}"
    return None


def _download(url: str, target: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "nerloop-fetch-assets"})
    with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))


def fetch_asset(
    asset: Asset, project_dir: Path, data_dir: Path | None, timeout: float = 60.0
) -> str:
    """Put one asset in place, verified. RETURNS (str): what was done."""
    dest = project_dir / asset.dest
    if dest.exists() and checksum_problem(asset, dest) is None:
        return "up to date"
    how_to = f"set {DATA_DIR_ENV} to a folder holding {asset.relative}" + (
        f", or unset it to download {asset.url}" if asset.url else ""
    )
    if data_dir is not None:
        source = data_dir / asset.relative
        if not source.exists():
            raise AssetError(
                f"{asset.dest}: {source} does not exist ({DATA_DIR_ENV}={data_dir}). "
                f"Expected a file with sha256 {asset.sha256}; {how_to}."
            )
        problem = checksum_problem(asset, source)
        if problem:
            raise AssetError(
                f"{asset.dest}: {source} is corrupted or a different version: {problem}. "
                f"Replace it with the original ({asset.url or asset.description})."
            )
        with atomic_path(dest) as tmp:
            shutil.copyfile(source, tmp)
        return f"copied from {source}"
    if asset.local_only:
        raise AssetError(
            f"{asset.dest} is local-only (no public URL: {asset.description.strip()}). "
            f"Set {DATA_DIR_ENV} to a folder holding {asset.relative}."
        )
    with atomic_path(dest) as tmp:
        try:
            _download(asset.url, tmp, timeout)
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise AssetError(
                f"{asset.dest}: download of {asset.url} failed ({err}). "
                f"Check the network, or set {DATA_DIR_ENV} to a local copy of the data."
            ) from None
        problem = checksum_problem(asset, tmp)
        if problem:
            raise AssetError(
                f"{asset.dest}: the file downloaded from {asset.url} does not match: {problem}. "
                "Nothing was written; the origin may have changed."
            )
    return f"downloaded from {asset.url}"


def fetch_assets(project_dir: Path, data_dir: Path | None, timeout: float = 60.0) -> dict[str, str]:
    """Fetch every asset; local-only assets that cannot be had are skipped with a warning.

    RETURNS (Dict[str, str]): dest -> what was done. Raises AssetError on the first failure
    of a required asset, after trying all of them.
    """
    results: dict[str, str] = {}
    errors: list[str] = []
    for asset in load_assets(project_dir / "project.yml"):
        try:
            results[asset.dest] = fetch_asset(asset, project_dir, data_dir, timeout)
            msg.good(f"{asset.dest}: {results[asset.dest]}")
        except AssetError as err:
            if asset.local_only and data_dir is None:
                results[asset.dest] = "skipped (local-only)"
                msg.warn(str(err))
            else:
                errors.append(str(err))
                msg.fail(str(err))
    if errors:
        raise AssetError(f"{len(errors)} asset(s) missing or corrupted:\n" + "\n".join(errors))
    return results
