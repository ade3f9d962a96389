"""Choose the next batch for the experts from the strategy scores (kept apart from scoring).

Candidates are taken by decreasing score, ties broken by increasing sentence id, so a selection
is a pure function of the scores. Two rules shape the batch:

- a token sequence is never picked twice in one batch (CoNLL-2003 repeats bylines, datelines and
  headlines: labelling the same words twice in one round teaches nothing new);
- optionally (``max_jaccard``), a candidate whose token set is too similar to an already picked
  one (Jaccard similarity above the threshold) is passed over; when the diverse candidates run
  out before the batch is full, the passed-over ones fill it, best first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy

from nerloop.errors import NerloopError, SettingsError


class EmptyPoolError(NerloopError, ValueError):
    """There is nothing left in the pool to select from."""


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two token sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def rank(sent_ids: Sequence[int], scores: Sequence[float]) -> list[int]:
    """Positions ordered by decreasing score, ties by increasing sentence id."""
    scores_array = numpy.asarray(scores, dtype=numpy.float64)
    if len(sent_ids) != len(scores_array):
        raise ValueError(f"{len(sent_ids)} sentence ids but {len(scores_array)} scores")
    if numpy.isnan(scores_array).any():
        raise ValueError("a strategy gave a NaN score")
    return numpy.lexsort((numpy.asarray(sent_ids), -scores_array)).tolist()


def select_batch(
    sent_ids: Sequence[int],
    scores: Sequence[float],
    tokens: Sequence[Sequence[str]],
    batch_size: int,
    *,
    max_jaccard: float | None = None,
) -> list[int]:
    """The sentence ids to label next, best first.

    sent_ids (Sequence[int]): The pool's sentence ids.
    scores (Sequence[float]): One uncertainty score per sentence (higher: picked first).
    tokens (Sequence[Sequence[str]]): Each sentence's words.
    batch_size (int): How many to pick (fewer when the pool has fewer distinct sentences).
    max_jaccard (Optional[float]): Pass over a candidate whose token-set Jaccard similarity to a
        picked sentence is above this (None: no diversity rule).
    RETURNS (List[int]): The chosen sentence ids.
    """
    if batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1, not {batch_size}")
    if not len(sent_ids):
        raise EmptyPoolError("the expert pool is empty: every sentence has been labelled")
    if len(tokens) != len(sent_ids):
        raise ValueError(f"{len(sent_ids)} sentence ids but {len(tokens)} token lists")
    if max_jaccard is not None and not 0.0 <= max_jaccard <= 1.0:
        raise SettingsError(f"max_jaccard must be in [0, 1], not {max_jaccard}")
    picked: list[int] = []
    picked_sequences: set[tuple[str, ...]] = set()
    picked_sets: list[frozenset[str]] = []
    passed_over: list[int] = []
    for position in rank(sent_ids, scores):
        if len(picked) == batch_size:
            break
        sequence = tuple(tokens[position])
        if sequence in picked_sequences:
            continue
        token_set = frozenset(sequence)
        if max_jaccard is not None and any(
            jaccard(token_set, other) > max_jaccard for other in picked_sets
        ):
            passed_over.append(position)
            continue
        picked.append(position)
        picked_sequences.add(sequence)
        picked_sets.append(token_set)
    for position in passed_over:
        if len(picked) == batch_size:
            break
        sequence = tuple(tokens[position])
        if sequence not in picked_sequences:
            picked.append(position)
            picked_sequences.add(sequence)
    return [int(sent_ids[position]) for position in picked]
