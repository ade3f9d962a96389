"""The label scheme: which entity types a project tags, each with a one-line description.

A scheme is a small config file with one ``[labels]`` section, a label per line::

    [labels]
    JOB_TITLE = "A job or position held by a person, e.g. chief executive."
    DRUG = "A medicine or active substance, by brand or generic name."

Everything that needs the label set reads it from this one file (the LLM tasks, the tagger's
``[initialize]`` labels, the Label Studio and Prodigy exports, import validation, analysis,
compare and the report), so a user's own entity types are set in one place. CoNLL-2003's four
labels are only the default scheme (``nerloop/schemes/conll2003.cfg``); no label is a constant in
library code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nerloop.errors import NerloopError

DEFAULT_SCHEME_PATH = Path(__file__).parent / "schemes" / "conll2003.cfg"
OUTSIDE = "O"
# Letters, digits, "_" and "-" (spaCy labels may hold any string, but tags are written as
# "B-<label>" in CoNLL columns and Prodigy/Label Studio configs, so whitespace is refused).
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")


class LabelSchemeError(NerloopError, ValueError):
    """A label scheme file that cannot be used."""


class UnknownLabelError(NerloopError, ValueError):
    """A label that the project's scheme does not list."""


@dataclass(frozen=True)
class LabelScheme:
    """The entity labels of a project, in order, with their descriptions.

    labels (Tuple[str, ...]): The entity labels, e.g. ``("Chemical", "Disease")``.
    descriptions (Dict[str, str]): A one-line description per label.
    path (Optional[Path]): The file the scheme was read from.
    """

    labels: tuple[str, ...]
    descriptions: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        where = f" in {self.path}" if self.path else ""
        if not self.labels:
            raise LabelSchemeError(f"the label scheme{where} lists no labels")
        seen: set[str] = set()
        for label in self.labels:
            if not isinstance(label, str) or not _LABEL_RE.match(label) or label == OUTSIDE:
                raise LabelSchemeError(
                    f"label {label!r}{where} is not usable: a label starts with a letter and "
                    "holds only letters, digits, '_', '.' or '-' (and 'O' means outside)"
                )
            if label.upper() in seen:
                raise LabelSchemeError(f"label {label!r}{where} is listed twice")
            seen.add(label.upper())

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        return iter(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    @property
    def tag_names(self) -> list[str]:
        """The IOB2 tags: ``O`` then ``B-X``, ``I-X`` per label, in scheme order."""
        return [OUTSIDE] + [f"{prefix}-{label}" for label in self.labels for prefix in "BI"]

    def description(self, label: str) -> str:
        """The description of a label ("" when the file gave none)."""
        return self.descriptions.get(label, "")

    def check(self, label: str, where: str = "") -> str:
        """Return ``label`` if the scheme lists it, else raise an error naming ``where``.

        label (str): The label to check.
        where (str): Where it was found, e.g. ``"answers.jsonl line 12"``.
        RETURNS (str): The label.
        """
        if label in self.labels:
            return label
        at = f" ({where})" if where else ""
        close = [known for known in self.labels if known.lower() == str(label).lower()]
        hint = f"; did you mean {close[0]!r}?" if close else "."
        source = f" in {self.path}" if self.path else ""
        raise UnknownLabelError(
            f"unknown label {label!r}{at}: the label scheme{source} has "
            f"{', '.join(self.labels)}{hint} Add it to the scheme or fix the input."
        )

    def check_all(self, labels: Iterable[str], where: str = "") -> None:
        """Check several labels (see ``check``)."""
        for label in labels:
            self.check(label, where)


def load_scheme(path: str | Path | None = None) -> LabelScheme:
    """Read a label scheme file (``None``: the default CoNLL-2003 scheme).

    path (Optional[Union[str, Path]]): A config file with a ``[labels]`` section.
    RETURNS (LabelScheme): The labels in file order with their descriptions.
    """
    from confection import Config

    path = Path(path) if path is not None else DEFAULT_SCHEME_PATH
    if not path.exists():
        raise LabelSchemeError(
            f"label scheme {path} does not exist: write a file with a [labels] section "
            f'(one `LABEL = "description"` per line; see {DEFAULT_SCHEME_PATH})'
        )
    try:
        config = Config().from_disk(path, interpolate=False)
    except Exception as err:  # confection raises several types for a malformed file
        raise LabelSchemeError(f"label scheme {path} cannot be read: {err}") from err
    if "labels" not in config or not isinstance(config["labels"], dict):
        raise LabelSchemeError(
            f"label scheme {path} has no [labels] section: add one with a "
            '`LABEL = "description"` line per label'
        )
    section = config["labels"]
    descriptions = {}
    for label, description in section.items():
        if not isinstance(description, str):
            raise LabelSchemeError(
                f"label {label!r} in {path}: its description must be a quoted string, "
                f"got {description!r}"
            )
        descriptions[label] = description.strip()
    return LabelScheme(tuple(section), descriptions, path)


def scheme_from_labels(labels: Sequence[str]) -> LabelScheme:
    """A scheme from a list of labels without descriptions (e.g. a trained pipeline's)."""
    return LabelScheme(tuple(labels))


def as_scheme(value: LabelScheme | str | Path | Sequence[str] | None) -> LabelScheme:
    """Accept a scheme, a scheme file, a list of labels or None (the default scheme)."""
    if isinstance(value, LabelScheme):
        return value
    if value is None or isinstance(value, (str, Path)):
        return load_scheme(value)
    return scheme_from_labels(value)
