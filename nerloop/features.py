"""The frozen encoder's feature store for a project's corpora (``components/frozen_encoder.py``).

``build_feature_store`` reads the encoder settings from a training config (the
``nerloop.FrozenTransformer.v1`` block of ``configs/tagger_trf_frozen.cfg``), and computes the
features of every sentence of the given DocBins that the store lacks, in one shard. Training and
scoring call the same ``ensure`` on their own Docs, so this step only moves the one-off encoder
pass ahead, where it shows a progress bar and its cost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy import util

from nerloop.errors import SettingsError
from nerloop.io_utils import read_docbin

ARCHITECTURE = "nerloop.FrozenTransformer.v1"


def _frozen_blocks(block: Any, path: str = "") -> list[tuple[str, dict]]:
    found = []
    if isinstance(block, dict):
        if block.get("@architectures") == ARCHITECTURE:
            found.append((path, block))
        for key, value in block.items():
            found.extend(_frozen_blocks(value, f"{path}.{key}" if path else key))
    return found


def encoder_sources(config_path: Path | str, overrides: dict[str, Any] | None = None) -> list:
    """The feature sources of every frozen encoder block in a training config (none for a
    config without one, e.g. the CNN's)."""
    import components.bio_ner  # noqa: F401  (registers nerloop.FrozenTransformer.v1)
    from components.frozen_encoder import frozen_feature_sources

    config = util.load_config(config_path, overrides=overrides or {}, interpolate=True)
    blocks = _frozen_blocks(config.get("components", {}), "components")
    sources = []
    for where, block in blocks:
        if not block.get("store"):
            raise SettingsError(
                f"{config_path} [{where}] has no store: set paths.features (or pass "
                "--paths.features FOLDER)"
            )
        model = util.registry.resolve({"model": block})["model"]
        sources.extend(frozen_feature_sources(model))
    return sources


def build_feature_store(
    config_path: Path | str,
    docbins: Sequence[Path | str],
    *,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fill the feature store of a frozen-encoder config with the sentences of ``docbins``.

    config_path (Union[Path, str]): A training config with a ``nerloop.FrozenTransformer.v1``.
    docbins (Sequence[Union[Path, str]]): Corpora whose sentences training or scoring will read.
    overrides (Optional[dict]): Config overrides, e.g. ``{"paths.features": "features"}``.
    progress (bool): Show the encoder's progress bar.
    RETURNS (Dict[str, Any]): Per store: its folder, the sentences computed now, the sentences
        it holds, its size in bytes and the seconds spent. No stores for a config without a
        frozen encoder (nothing to compute).
    """
    sources = encoder_sources(config_path, overrides)
    docs = [doc for path in docbins for doc in read_docbin(Path(path))] if sources else []
    summaries = []
    for source in sources:
        start = time.perf_counter()
        computed = source.ensure(docs, progress=progress)
        store = source.store
        summaries.append(
            {
                "store": str(store.path),
                "fingerprint": source.fingerprint,
                "encoder": source.name,
                "computed": computed,
                "sentences": len(store),
                "bytes": store.nbytes(),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
    return {"corpora": [str(p) for p in docbins], "stores": summaries}
