"""Experiment settings in config files (confection), overridable the spaCy way.

The k-fold grid, the init model and the active learning loop read their settings from files
such as ``configs/kfold.cfg`` and ``configs/al.cfg`` (sections like ``[loop]``, ``[mix]``,
``[training]``), with ``--section.key value`` overrides on the command line, and every run
writes the resolved settings beside its results (``config.cfg``), so a result always says how it
was made.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confection import Config, ConfigValidationError

from nerloop.errors import SettingsError
from nerloop.io_utils import atomic_write_text

RESOLVED_CONFIG_FILE = "config.cfg"


def load_settings(
    path: Path | str,
    overrides: dict[str, Any] | None = None,
    required: Iterable[str] = (),
) -> Config:
    """Read a settings file, apply overrides and interpolate ``${...}`` references.

    path (Path | str): the settings file (``configs/al.cfg``).
    overrides (dict | None): dotted keys (``{"loop.batch_to_add": 10}``), as parsed by
        ``nerloop.cli.config_overrides``.
    required (Iterable[str]): sections that must be present.
    RETURNS (Config): the interpolated settings.
    """
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"settings file not found: {path}")
    overrides = dict(overrides or {})
    try:
        config = Config().from_disk(path, overrides=overrides, interpolate=True)
    except ConfigValidationError as err:
        raise SettingsError(f"{path}: {err}") from err
    except Exception as err:  # confection's parser errors name the line
        raise SettingsError(f"{path}: cannot read the settings: {err}") from err
    for section in required:
        if section not in config:
            raise SettingsError(f"{path}: no [{section}] section (sections: {', '.join(config)})")
    return config


def section(config: Config, name: str, known: Iterable[str], path: Path | str = "") -> dict:
    """One section as a dict, refusing keys that no setting reads (a typo would be ignored)."""
    values = dict(config.get(name, {}))
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f"{path}: " if path else ""
        raise SettingsError(
            f"{where}[{name}] has unknown settings {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return values


def dotted(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as dotted keys: ``{"optimizer": {"learn_rate": 1e-3}}`` becomes
    ``{"optimizer.learn_rate": 1e-3}`` (how ``finetune(training=...)`` takes overrides)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def write_resolved(config: Config, output_dir: Path | str) -> Path:
    """Write the resolved settings beside a run's results (atomically)."""
    return atomic_write_text(Path(output_dir) / RESOLVED_CONFIG_FILE, config.to_str())
