"""Choose the next batch for the experts from the strategy scores (kept apart from scoring).

Candidates are taken by decreasing score, ties broken by increasing sentence id, so a selection
is a pure function of the scores. Two rules shape the batch:

- a token sequence is never picked twice in one batch (CoNLL-2003 repeats bylines, datelines and
  headlines: labelling the same words twice in one round teaches nothing new);
- optionally (``max_jaccard``), a candidate whose token set is too similar to an already picked
  one (Jaccard similarity above the threshold) is passed over; when the diverse candidates run
  out before the batch is full, the passed-over ones fill it, best first.

The batch's size is counted in sentences or in tokens (``budget_unit``; experts' time follows
tokens). Under a token budget the batch is filled greedily in the same order: a candidate that
does not fit in what is left of the budget is passed by for shorter ones after it, so the budget is
never exceeded, except that a batch always holds at least one sentence (the best candidate, when
none fits).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy

from nerloop.errors import NerloopError, SettingsError

#: What a batch's size counts: sentences, or the tokens of the sentences (experts' time).
BUDGET_UNITS = ("sentences", "tokens")


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
    budget_unit: str = "sentences",
) -> list[int]:
    """The sentence ids to label next, best first.

    sent_ids (Sequence[int]): The pool's sentence ids.
    scores (Sequence[float]): One uncertainty score per sentence (higher: picked first).
    tokens (Sequence[Sequence[str]]): Each sentence's words.
    batch_size (int): The batch's budget in ``budget_unit``: how many sentences, or how many
        tokens (fewer when the pool has fewer distinct sentences).
    max_jaccard (Optional[float]): Pass over a candidate whose token-set Jaccard similarity to a
        picked sentence is above this (None: no diversity rule).
    budget_unit (str): ``sentences`` or ``tokens`` (``BUDGET_UNITS``).
    RETURNS (List[int]): The chosen sentence ids.
    """
    if batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1, not {batch_size}")
    if budget_unit not in BUDGET_UNITS:
        raise SettingsError(f"budget_unit must be one of {BUDGET_UNITS}, not {budget_unit!r}")
    if not len(sent_ids):
        raise EmptyPoolError("the expert pool is empty: every sentence has been labelled")
    if len(tokens) != len(sent_ids):
        raise ValueError(f"{len(sent_ids)} sentence ids but {len(tokens)} token lists")
    if max_jaccard is not None and not 0.0 <= max_jaccard <= 1.0:
        raise SettingsError(f"max_jaccard must be in [0, 1], not {max_jaccard}")
    costs = [1 if budget_unit == "sentences" else len(words) for words in tokens]
    ranked = rank(sent_ids, scores)
    picked: list[int] = []
    spent = 0
    picked_sequences: set[tuple[str, ...]] = set()
    picked_sets: list[frozenset[str]] = []
    passed_over: list[int] = []

    def pick(position: int, sequence: tuple[str, ...]) -> None:
        nonlocal spent
        picked.append(position)
        spent += costs[position]
        picked_sequences.add(sequence)
        picked_sets.append(frozenset(sequence))

    for position in ranked:
        if spent >= batch_size:
            break
        sequence = tuple(tokens[position])
        if sequence in picked_sequences or spent + costs[position] > batch_size:
            continue
        if max_jaccard is not None and any(
            jaccard(frozenset(sequence), other) > max_jaccard for other in picked_sets
        ):
            passed_over.append(position)
            continue
        pick(position, sequence)
    for position in passed_over:
        if spent >= batch_size:
            break
        sequence = tuple(tokens[position])
        if sequence not in picked_sequences and spent + costs[position] <= batch_size:
            pick(position, sequence)
    if not picked:  # no candidate fits in the token budget: the best one alone
        pick(ranked[0], tuple(tokens[ranked[0]]))
    return [int(sent_ids[position]) for position in picked]
