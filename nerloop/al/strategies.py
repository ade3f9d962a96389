"""Query strategies: how uncertain the tagger is about each pool sentence.

One small contract, as in small-text: a strategy turns the model's predictions for the pool
(``PoolPredictions``) into one score per sentence, **higher meaning more uncertain** (ask the
experts first). Selecting a batch from the scores is a separate step
(``nerloop.al.selection``), so each strategy is a few lines. Every strategy has a readable
``__str__`` used in logs and result files.

Sentence-level definitions (``p_t`` is token ``t``'s tag distribution, ``y_t`` its tag on the
predicted sequence, i.e. the constrained-Viterbi path, ``H`` the entropy in nats):

=================  ====================================================================
entropy            mean over tokens of ``H(p_t)`` (the study's measure)
max-entropy        max over tokens of ``H(p_t)``
least-confidence   ``1 - prod_t p_t(y_t)``: one minus the probability of the predicted sequence
margin             ``1 - min_t (p_t(first) - p_t(second))``: the most ambiguous token decides
mnlp               ``-(1/n) sum_t log p_t(y_t)``: maximum normalised log-probability, negated
bald               mean over tokens of ``H(mean_s p_t^s) - mean_s H(p_t^s)`` over MC dropout
                   samples ``s`` (mutual information between the tag and the weights)
entropy-per-token  ``sum_t H(p_t) / (n + sentence_overhead_tokens)``: uncertainty per token an
                   expert reads (for a budget counted in tokens, ``[loop] budget_unit``)
llm-disagreement   mean over tokens of ``p_t(y_t) * [l_t != y_t]``, ``l_t`` the LLM's tag: how
                   confidently the model contradicts the LLM label (``[mix] pool = cheap``)
random             a seeded uniform number per sentence id (the baseline)
=================  ====================================================================

An empty sentence scores 0 with every strategy but ``random``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy

from nerloop.errors import NerloopError, SettingsError

_LOG_FLOOR = 1e-12


class UnknownStrategyError(NerloopError, ValueError):
    """A strategy name that is not in ``STRATEGIES``."""


class MissingSamplesError(NerloopError, ValueError):
    """A strategy needs Monte Carlo dropout samples that the predictions do not carry."""


class MissingLlmLabelsError(NerloopError, ValueError):
    """A strategy needs the LLM's labels of the pool sentences that the predictions lack."""


def no_llm_labels(strategy: object) -> MissingLlmLabelsError:
    """The error of a strategy that needs the LLM's labels, used on a pool without them."""
    return MissingLlmLabelsError(
        f"{strategy} needs the LLM's labels of the pool sentences, and this pool has none: use "
        "it where experts relabel LLM-labelled sentences ([mix] pool = cheap)"
    )


@dataclass
class PoolPredictions:
    """What the tagger says about each pool sentence: the input of every strategy.

    sent_ids (List[int]): The sentence ids, one per sentence.
    probs (List[numpy.ndarray]): Per sentence, the (n_tokens, n_tags) predictive distribution (the
        mean of the MC samples when there are samples).
    paths (List[numpy.ndarray]): Per sentence, the (n_tokens,) predicted tag ids (Viterbi path).
    samples (Optional[List[numpy.ndarray]]): Per sentence, (n_samples, n_tokens, n_tags) Monte
        Carlo dropout samples (BALD).
    round (int): The active learning iteration (seeds the random baseline).
    llm_tags (Optional[List[numpy.ndarray]]): Per sentence, the (n_tokens,) ids of the LLM's
        (cheap) tags in the columns of ``probs`` (llm-disagreement); None when the pool sentences
        have no LLM labels.
    """

    sent_ids: list[int]
    probs: list[numpy.ndarray]
    paths: list[numpy.ndarray]
    samples: list[numpy.ndarray] | None = None
    round: int = 0
    llm_tags: list[numpy.ndarray] | None = None

    def __post_init__(self) -> None:
        n = len(self.sent_ids)
        sizes = [len(self.probs), len(self.paths)]
        for optional in (self.samples, self.llm_tags):
            if optional is not None:
                sizes.append(len(optional))
        if any(size != n for size in sizes):
            raise ValueError(f"{n} sentence ids but per-sentence arrays of lengths {sizes}")
        if self.llm_tags is not None:
            for sent_id, tags, probs in zip(self.sent_ids, self.llm_tags, self.probs, strict=True):
                if len(tags) != len(probs):
                    raise ValueError(
                        f"sentence {sent_id}: {len(tags)} LLM tags for {len(probs)} tokens"
                    )

    def __len__(self) -> int:
        return len(self.sent_ids)


def entropy(probs: numpy.ndarray, axis: int = -1) -> numpy.ndarray:
    """Entropy in nats along ``axis`` (``0 log 0 = 0``)."""
    p = numpy.asarray(probs, dtype=numpy.float64)
    return -(p * numpy.log(numpy.maximum(p, _LOG_FLOOR))).sum(axis=axis)


def path_log_probs(probs: numpy.ndarray, path: numpy.ndarray) -> numpy.ndarray:
    """``log p_t(y_t)`` of each token on a tag path."""
    picked = numpy.asarray(probs, dtype=numpy.float64)[numpy.arange(len(path)), path]
    return numpy.log(numpy.maximum(picked, _LOG_FLOOR))


def _per_sentence(
    values: Sequence[numpy.ndarray], reduce: Callable[[numpy.ndarray], float]
) -> numpy.ndarray:
    """One float per sentence from per-token values; 0.0 for an empty sentence."""
    return numpy.asarray([float(reduce(v)) if len(v) else 0.0 for v in values], dtype=numpy.float64)


class QueryStrategy(ABC):
    """Scores pool sentences: higher means more uncertain, so asked first."""

    #: Monte Carlo dropout samples the strategy needs (0: the deterministic prediction).
    mc_samples: int = 0
    mc_dropout: float = 0.0
    #: Whether the strategy needs the LLM's labels of the pool (``PoolPredictions.llm_tags``).
    needs_llm_tags: bool = False

    @abstractmethod
    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        """RETURNS (numpy.ndarray): (len(pool),) float64 uncertainty scores."""

    def __str__(self) -> str:
        return f"{type(self).__name__}()"


class MeanTokenEntropy(QueryStrategy):
    """Mean token entropy over the sentence's tokens (the study's measure)."""

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        return _per_sentence([entropy(p) for p in pool.probs], numpy.mean)


class MaxTokenEntropy(QueryStrategy):
    """The entropy of the sentence's most uncertain token."""

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        return _per_sentence([entropy(p) for p in pool.probs], numpy.max)


class LeastConfidence(QueryStrategy):
    """One minus the probability of the predicted (Viterbi) tag sequence."""

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        log_probs = [path_log_probs(p, y) for p, y in zip(pool.probs, pool.paths, strict=True)]
        return _per_sentence(log_probs, lambda lp: 1.0 - numpy.exp(lp.sum()))


class SmallestMargin(QueryStrategy):
    """One minus the smallest gap between a token's two most probable tags."""

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        top_two = [numpy.sort(numpy.asarray(p, dtype=numpy.float64))[:, -2:] for p in pool.probs]
        return _per_sentence(top_two, lambda t: 1.0 - (t[:, 1] - t[:, 0]).min())


class MNLP(QueryStrategy):
    """Maximum normalised log-probability (Shen et al. 2018), negated: the mean negative log
    probability of the predicted (Viterbi) tags."""

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        log_probs = [path_log_probs(p, y) for p, y in zip(pool.probs, pool.paths, strict=True)]
        return _per_sentence(log_probs, lambda lp: -lp.mean())


class BALD(QueryStrategy):
    """Bayesian active learning by disagreement with Monte Carlo dropout (Houlsby et al. 2011;
    Gal et al. 2017): the mean over tokens of the mutual information between tag and weights."""

    def __init__(self, mc_samples: int = 10, mc_dropout: float = 0.1) -> None:
        if mc_samples < 2:
            raise SettingsError(f"BALD needs at least 2 Monte Carlo samples, not {mc_samples}")
        if not 0.0 < mc_dropout < 1.0:
            raise SettingsError(f"BALD needs a dropout rate in (0, 1), not {mc_dropout}")
        self.mc_samples, self.mc_dropout = mc_samples, mc_dropout

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        if pool.samples is None:
            raise MissingSamplesError(f"{self} needs Monte Carlo dropout samples")
        mutual_information = [
            entropy(s.mean(axis=0)) - entropy(s).mean(axis=0) for s in pool.samples
        ]
        return _per_sentence(mutual_information, lambda mi: numpy.maximum(mi, 0.0).mean())

    def __str__(self) -> str:
        return f"BALD(mc_samples={self.mc_samples}, mc_dropout={self.mc_dropout})"


class EntropyPerToken(QueryStrategy):
    """Uncertainty per token an expert labels: the sum of the token entropies divided by the
    tokens plus a per-sentence reading overhead. Filling a token budget greedily by this score
    maximises the uncertainty bought per token (a short, unsure sentence beats a long one that is
    unsure in one place), while the overhead keeps one-word fragments from crowding the batch."""

    def __init__(self, sentence_overhead_tokens: float = 2.0) -> None:
        if not sentence_overhead_tokens >= 0:
            raise SettingsError(
                f"sentence_overhead_tokens must not be negative, not {sentence_overhead_tokens}"
            )
        self.sentence_overhead_tokens = float(sentence_overhead_tokens)

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        overhead = self.sentence_overhead_tokens
        return _per_sentence(
            [entropy(p) for p in pool.probs], lambda h: h.sum() / (len(h) + overhead)
        )

    def __str__(self) -> str:
        return f"EntropyPerToken(sentence_overhead_tokens={self.sentence_overhead_tokens})"


class LlmDisagreement(QueryStrategy):
    """How confidently the model contradicts the LLM label: the mean over tokens of
    ``p_t(y_t) * [l_t != y_t]``, ``y_t`` the model's (Viterbi) tag and ``l_t`` the LLM's.

    Chosen over ``1 - p_t(l_t)`` because it is 0 wherever the two agree, however unsure the
    model is: an expert relabelling a cheap sentence fixes nothing there, and ``1 - p_t(l_t)``
    would rank agreed but uncertain sentences high, i.e. repeat uncertainty sampling. Weighting a
    disagreement by the model's confidence puts first the sentences where the model, trained with
    the experts' labels so far, most clearly believes the LLM is wrong (or is itself confidently
    wrong): the expert's answer settles the most either way."""

    needs_llm_tags = True

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        if pool.llm_tags is None:
            raise no_llm_labels(self)
        disagreement = [
            numpy.exp(path_log_probs(p, y)) * (numpy.asarray(llm) != y)
            for p, y, llm in zip(pool.probs, pool.paths, pool.llm_tags, strict=True)
        ]
        return _per_sentence(disagreement, numpy.mean)


class RandomSampling(QueryStrategy):
    """The baseline: a uniform number per sentence id, from ``seed`` and the round only (the same
    sentence gets the same number whatever the order or the size of the pool)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, pool: PoolPredictions) -> numpy.ndarray:
        if not len(pool):
            return numpy.zeros(0)
        ids = numpy.asarray(pool.sent_ids, dtype=numpy.int64)
        if ids.min() < 0:
            raise ValueError("sentence ids must not be negative")
        draws = numpy.random.default_rng([self.seed, pool.round]).random(int(ids.max()) + 1)
        return draws[ids]

    def __str__(self) -> str:
        return f"RandomSampling(seed={self.seed})"


STRATEGIES: dict[str, type[QueryStrategy]] = {
    "entropy": MeanTokenEntropy,
    "max-entropy": MaxTokenEntropy,
    "least-confidence": LeastConfidence,
    "margin": SmallestMargin,
    "mnlp": MNLP,
    "bald": BALD,
    "entropy-per-token": EntropyPerToken,
    "llm-disagreement": LlmDisagreement,
    "random": RandomSampling,
}


def make_strategy(
    name: str,
    *,
    seed: int = 0,
    mc_samples: int = 10,
    mc_dropout: float = 0.1,
    sentence_overhead_tokens: float = 2.0,
) -> QueryStrategy:
    """The strategy registered under ``name`` (see ``STRATEGIES``).

    name (str): The strategy's name.
    seed (int): Seeds the random baseline.
    mc_samples / mc_dropout: Monte Carlo dropout of ``bald``.
    sentence_overhead_tokens (float): The per-sentence reading overhead of
        ``entropy-per-token``, in tokens.
    RETURNS (QueryStrategy): The strategy.
    """
    if name not in STRATEGIES:
        raise UnknownStrategyError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}")
    if name == "bald":
        return BALD(mc_samples=mc_samples, mc_dropout=mc_dropout)
    if name == "entropy-per-token":
        return EntropyPerToken(sentence_overhead_tokens=sentence_overhead_tokens)
    if name == "random":
        return RandomSampling(seed=seed)
    return STRATEGIES[name]()
