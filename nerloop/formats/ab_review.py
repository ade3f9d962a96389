"""Blind A/B review of two taggers by people, and the win rate their choices give.

``build_ab_review`` tags a seeded random sample of a corpus with two trained pipelines and writes,
into the output folder (each file atomically, after everything has been computed):

- ``labelstudio_ab_tasks.json``: one Label Studio task per sentence, ``data``: ``ab_id``,
  ``sent_id``, ``text`` and the two readings ``option_1`` / ``option_2``, each the sentence with its
  entities marked (``[Peter Blackburn]PER visited [Paris]LOC .``). Which model gave which option
  is drawn per task from the seed; the tasks carry no prediction, model name or path;
- ``labelstudio_ab_config.xml``: the labeling config: the two readings side by side and a
  ``<Choices>`` of ``1`` / ``2`` / ``equal``;
- ``prodigy_ab.jsonl``: the same tasks in the style of Prodigy's ``ner.eval-ab`` (a ``choice``
  task: ``text``, ``options`` with ids ``1``, ``2`` and ``equal``; the chosen id comes back in
  ``accept``), to be opened with ``prodigy mark DATASET prodigy_ab.jsonl --view-id choice``;
- ``mapping.json``: per task, which model each option shows, and the two models' paths. It is
  kept aside: the people who review never see it.

Sentences on which both models predict exactly the same entities (same characters, same
labels) cannot be preferred either way: by default they are not shown, and the summary counts
them (``n_identical``), so the reviewed tasks are ``n - n_identical`` of the ``n`` sampled.

``score_ab_review`` reads the people's choices back (a Label Studio JSON export or a Prodigy
``db-out`` JSONL), maps each option to its model and reports model A against model B: wins,
losses, ties, the win rate excluding ties with its Wilson 95% interval, and a two-sided sign
test p-value (exact binomial test of the wins among the decided tasks, p = 0.5).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from spacy.tokens import Doc

from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.fingerprint import fingerprint, small_int_hash
from nerloop.formats.common import LABEL_STUDIO, PRODIGY
from nerloop.io_utils import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_docbin
from nerloop.labels import LabelScheme, as_scheme

# File names inside the review folder.
AB_TASKS_FILE = "labelstudio_ab_tasks.json"
AB_CONFIG_FILE = "labelstudio_ab_config.xml"
PRODIGY_AB_FILE = "prodigy_ab.jsonl"
MAPPING_FILE = "mapping.json"
SCORE_JSON_FILE = "ab_score.json"
SCORE_MD_FILE = "ab_score.md"

# The choices people make, and the names of the labeling config's tags.
FIRST, SECOND, EQUAL = "1", "2", "equal"
CHOICES = (FIRST, SECOND, EQUAL)
MODEL_A, MODEL_B = "A", "B"
CHOICE_NAME = "preference"
SENTENCE_NAME = "sentence"
OPTION_FIELDS = {FIRST: "option_1", SECOND: "option_2"}
AB_ID = "ab_id"
# Two-sided 95% normal quantile, scipy.stats.norm.ppf(0.975).
Z_95 = 1.959963984540054


class ABReviewError(NerloopError, ValueError):
    """A review that cannot be built, or answers that cannot be scored (the message names the
    task or the setting and the fix)."""


def marked_text(doc: Doc) -> str:
    """The sentence with each entity in brackets followed by its label.

    doc (Doc): A Doc with ``doc.ents``.
    RETURNS (str): e.g. ``"[Peter Blackburn]PER visited [Paris]LOC ."``.
    """
    parts: list[str] = []
    position = 0
    for ent in doc.ents:
        parts.append(doc.text[position : ent.start_char])
        parts.append(f"[{ent.text}]{ent.label_}")
        position = ent.end_char
    parts.append(doc.text[position:])
    return "".join(parts)


def entity_key(doc: Doc) -> tuple[tuple[int, int, str], ...]:
    """The entities as ``(start_char, end_char, label)``: equal keys are identical readings."""
    return tuple((ent.start_char, ent.end_char, ent.label_) for ent in doc.ents)


def sample_positions(n_docs: int, n: int, seed: int) -> list[int]:
    """A seeded random sample of ``n`` of ``n_docs`` positions, in drawn order."""
    if n < 1:
        raise ABReviewError(f"--n is {n}: ask for at least one sentence")
    if n > n_docs:
        raise ABReviewError(
            f"--n {n} is more than the {n_docs} sentences of the corpus: lower --n to at most "
            f"{n_docs} or review a larger corpus"
        )
    return random.Random(seed).sample(range(n_docs), n)


def label_studio_ab_config(labels: LabelScheme | Sequence[str] | None = None) -> str:
    """The labeling config: the sentence, the two readings side by side, one required choice.

    labels (Union[LabelScheme, Sequence[str], None]): The label scheme, listed as a legend.
    RETURNS (str): The XML.
    """
    scheme = as_scheme(labels)
    legend = "; ".join(
        f"{label}: {scheme.description(label)}" if scheme.description(label) else label
        for label in scheme.labels
    )
    option_views = ""
    for choice, field in OPTION_FIELDS.items():
        option_views += (
            '    <View style="flex: 1; padding: 0 1em;">\n'
            f'      <Header value={quoteattr("Option " + choice)} size="5"/>\n'
            f'      <Text name={quoteattr(field)} value="${field}"/>\n'
            "    </View>\n"
        )
    choices = "".join(f"    <Choice value={quoteattr(choice)}/>\n" for choice in CHOICES)
    return (
        "<View>\n"
        '  <Header value="Which option marks the entities of the sentence better?"/>\n'
        f'  <Text name={quoteattr(SENTENCE_NAME)} value="$text"/>\n'
        f'  <Header value={quoteattr("Labels: " + legend)} size="6"/>\n'
        '  <View style="display: flex;">\n'
        f"{option_views}"
        "  </View>\n"
        f"  <Choices name={quoteattr(CHOICE_NAME)} toName={quoteattr(SENTENCE_NAME)} "
        'choice="single" required="true" showInline="true">\n'
        f"{choices}"
        "  </Choices>\n"
        "</View>\n"
    )


def _check_labels(docs: Sequence[Doc], scheme: LabelScheme, model: str) -> None:
    """Refuse a model that predicts a label the scheme does not list."""
    unknown = sorted({ent.label_ for doc in docs for ent in doc.ents} - set(scheme.labels))
    if unknown:
        source = f" of {scheme.path}" if scheme.path else ""
        raise ABReviewError(
            f"model {model} predicts labels {unknown} that the label scheme{source} does not "
            f"list ({', '.join(scheme.labels)}): build the review with the scheme the models "
            "were trained with (--labels)"
        )


def build_ab_review(
    model_a: Path,
    model_b: Path,
    corpus_path: Path,
    output_dir: Path,
    n: int,
    seed: int = 0,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
    skip_identical: bool = True,
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Tag a seeded sample with two models and write the blind A/B review files.

    model_a (Path): The first trained pipeline ("A" in the score).
    model_b (Path): The second trained pipeline ("B").
    corpus_path (Path): DocBin of the sentences to sample from.
    output_dir (Path): Folder for the four files (created when missing).
    n (int): Sentences to sample.
    seed (int): Seed of the sample and of each task's option order.
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme (None: default).
    skip_identical (bool): Leave out sentences both models read identically (counted).
    batch_size (int): Sentences per forward pass.
    progress (bool): Show progress bars.
    RETURNS (dict): A summary: counts (sampled, identical, tasks, A shown first), the review id,
        the rule for identical readings and the paths written.
    """
    if Path(model_a).resolve() == Path(model_b).resolve():
        raise ABReviewError(
            f"MODEL_A and MODEL_B are the same folder ({model_a}): pass two different models"
        )
    scheme = as_scheme(labels)
    nlp_a = load_pipeline(model_a)
    nlp_b = load_pipeline(model_b)
    docs = read_docbin(corpus_path, nlp_a.vocab)
    positions = sample_positions(len(docs), n, seed)
    sampled = [docs[i] for i in positions]
    predicted_a, _ = predict_with_probs(nlp_a, sampled, batch_size=batch_size, progress=progress)
    predicted_b, _ = predict_with_probs(nlp_b, sampled, batch_size=batch_size, progress=progress)
    _check_labels(predicted_a, scheme, "A")
    _check_labels(predicted_b, scheme, "B")

    order_rng = random.Random(f"ab-order-{seed}")
    rows: list[dict[str, Any]] = []
    n_identical = 0
    for position, doc, pred_a, pred_b in zip(
        positions, sampled, predicted_a, predicted_b, strict=True
    ):
        identical = entity_key(pred_a) == entity_key(pred_b)
        if identical:
            n_identical += 1
            if skip_identical:
                continue
        a_first = order_rng.random() < 0.5
        shown = (pred_a, pred_b) if a_first else (pred_b, pred_a)
        models = (MODEL_A, MODEL_B) if a_first else (MODEL_B, MODEL_A)
        sent_id = meta.sent_id(doc) if meta.SENT_ID in doc.user_data else position
        rows.append(
            {
                "sent_id": sent_id,
                "text": doc.text,
                "options": {FIRST: marked_text(shown[0]), SECOND: marked_text(shown[1])},
                "models": {FIRST: models[0], SECOND: models[1]},
            }
        )
    if not rows:
        raise ABReviewError(
            f"both models read all {n} sampled sentences identically: nothing to review. Raise "
            "--n, or keep identical readings (--keep-identical) to measure ties"
        )
    review_id = fingerprint([[row["sent_id"], row["options"]] for row in rows])[:8]
    for index, row in enumerate(rows):
        row[AB_ID] = f"ab-{review_id}-{index:04d}"

    paths = {
        "labelstudio_tasks": output_dir / AB_TASKS_FILE,
        "labelstudio_config": output_dir / AB_CONFIG_FILE,
        "prodigy_tasks": output_dir / PRODIGY_AB_FILE,
        "mapping": output_dir / MAPPING_FILE,
    }
    mapping = {
        "review_id": review_id,
        "seed": seed,
        "n_sampled": n,
        "corpus": str(corpus_path),
        "models": {MODEL_A: str(model_a), MODEL_B: str(model_b)},
        "tasks": {row[AB_ID]: row["models"] for row in rows},
    }
    atomic_write_json(paths["labelstudio_tasks"], [label_studio_ab_task(row) for row in rows])
    atomic_write_text(paths["labelstudio_config"], label_studio_ab_config(scheme))
    atomic_write_jsonl(paths["prodigy_tasks"], [prodigy_ab_task(row) for row in rows])
    atomic_write_json(paths["mapping"], mapping)
    return {
        "review_id": review_id,
        "n_sampled": n,
        "n_identical": n_identical,
        "n_tasks": len(rows),
        "n_a_first": sum(row["models"][FIRST] == MODEL_A for row in rows),
        "identical_rule": (
            "sentences both models read identically (same entity characters and labels) are "
            + ("left out" if skip_identical else "kept")
            + " and counted as n_identical"
        ),
        "prodigy_command": f"prodigy mark DATASET {paths['prodigy_tasks']} --view-id choice",
        "paths": {name: str(path) for name, path in paths.items()},
    }


def label_studio_ab_task(row: dict[str, Any]) -> dict[str, Any]:
    """A Label Studio task: the sentence and the two marked readings, nothing about models."""
    return {
        "data": {
            AB_ID: row[AB_ID],
            meta.SENT_ID: row["sent_id"],
            "text": row["text"],
            **{field: row["options"][choice] for choice, field in OPTION_FIELDS.items()},
        }
    }


def prodigy_ab_task(row: dict[str, Any]) -> dict[str, Any]:
    """A Prodigy ``choice`` task in ``ner.eval-ab`` style, without the mapping."""
    options = [{"id": choice, "text": row["options"][choice]} for choice in (FIRST, SECOND)]
    options.append({"id": EQUAL, "text": "Both equally good"})
    input_hash = small_int_hash({"text": row["text"]})
    return {
        AB_ID: row[AB_ID],
        "text": row["text"],
        "options": options,
        "meta": {AB_ID: row[AB_ID], meta.SENT_ID: row["sent_id"]},
        "_input_hash": input_hash,
        "_task_hash": small_int_hash({"input": input_hash, "options": options}),
    }


def read_mapping(path: Path) -> dict[str, Any]:
    """Read ``mapping.json``; an ABReviewError when it is not one ``build`` wrote."""
    path = Path(path)
    if not path.exists():
        raise ABReviewError(
            f"{path} does not exist: pass the mapping.json that `ab_review build` wrote"
        )
    try:
        mapping = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise ABReviewError(f"{path} is not JSON ({err}): pass the build's mapping.json") from err
    if not isinstance(mapping, dict) or not isinstance(mapping.get("tasks"), dict):
        raise ABReviewError(f"{path} has no 'tasks': pass the mapping.json `build` wrote")
    return mapping


def _read_answers_file(path: Path, answer_format: str) -> list[dict[str, Any]]:
    """The answer records of a Label Studio JSON export or a Prodigy JSONL file."""
    path = Path(path)
    if not path.exists():
        raise ABReviewError(f"answers file {path} does not exist: export the answers first")
    text = path.read_text(encoding="utf8")
    if answer_format == LABEL_STUDIO:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ABReviewError(
                f"{path} is not JSON ({err}): export the project from Label Studio as JSON"
            ) from err
        if not isinstance(records, list):
            raise ABReviewError(f"{path} is not a list of tasks: export Label Studio as JSON")
        return records
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ABReviewError(
                f"{path} line {line_number} is not JSON ({err}): pass `prodigy db-out` output"
            ) from err
    return records


def label_studio_choice(record: Any, where: str) -> str | None:
    """The choice of a Label Studio task's last annotation (None: not answered or cancelled)."""
    if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
        raise ABReviewError(f"{where} has no 'data': pass a Label Studio JSON export")
    annotations = record.get("annotations") or []
    if not annotations:
        return None
    last = annotations[-1]
    if not isinstance(last, dict):
        raise ABReviewError(f"{where}: its last annotation is not an object")
    if last.get("was_cancelled"):
        return None
    choices = [
        item
        for item in last.get("result") or []
        if isinstance(item, dict) and item.get("type") == "choices"
    ]
    if len(choices) != 1:
        raise ABReviewError(
            f"{where}: its last annotation has {len(choices)} choices results, expected one "
            f"'{CHOICE_NAME}' choice: annotate it with the labeling config `build` wrote"
        )
    values = (choices[0].get("value") or {}).get("choices")
    if not isinstance(values, list) or len(values) != 1 or values[0] not in CHOICES:
        raise ABReviewError(
            f"{where}: its choice is {values!r}, expected exactly one of {list(CHOICES)}: fix "
            "the answer in Label Studio"
        )
    return values[0]


def prodigy_choice(record: Any, where: str) -> str | None:
    """The accepted option of a Prodigy answer (None: rejected or ignored)."""
    if not isinstance(record, dict):
        raise ABReviewError(f"{where} is not an object: pass `prodigy db-out` output")
    answer = record.get("answer")
    if answer in ("reject", "ignore"):
        return None
    if answer != "accept":
        raise ABReviewError(
            f"{where}: its answer is {answer!r}, expected 'accept', 'reject' or 'ignore'"
        )
    accepted = record.get("accept")
    if not isinstance(accepted, list) or len(accepted) != 1 or accepted[0] not in CHOICES:
        raise ABReviewError(
            f"{where}: it accepts {accepted!r}, expected exactly one option id of "
            f"{list(CHOICES)}: review it again with one option selected"
        )
    return accepted[0]


def read_choices(
    answers_path: Path, mapping: dict[str, Any], answer_format: str
) -> tuple[dict[str, str], int]:
    """Each answered task's choice, checked against the mapping.

    answers_path (Path): The Label Studio JSON export or the Prodigy JSONL.
    mapping (dict): The build's mapping (``read_mapping``).
    answer_format (str): ``labelstudio`` or ``prodigy``.
    RETURNS (Tuple[Dict[str, str], int]): task id -> choice (the last answer per task), and the
        number of answers without a choice (cancelled, rejected or ignored).
    """
    if answer_format not in (LABEL_STUDIO, PRODIGY):
        raise ABReviewError(
            f"unknown answers format {answer_format!r}: use {LABEL_STUDIO} or {PRODIGY}"
        )
    records = _read_answers_file(answers_path, answer_format)
    choices: dict[str, str] = {}
    n_skipped = 0
    for number, record in enumerate(records, start=1):
        if answer_format == LABEL_STUDIO:
            data = record.get("data") if isinstance(record, dict) else None
            task_id = data.get(AB_ID) if isinstance(data, dict) else None
        else:
            task_id = record.get(AB_ID) if isinstance(record, dict) else None
        unit = "task" if answer_format == LABEL_STUDIO else "line"
        where = f"{answers_path} {unit} {number} ({AB_ID} {task_id!r})"
        if not isinstance(task_id, str) or task_id not in mapping["tasks"]:
            raise ABReviewError(
                f"{where} is not a task of this review ({mapping.get('review_id')}): pass the "
                "mapping.json written with these tasks"
            )
        reader = label_studio_choice if answer_format == LABEL_STUDIO else prodigy_choice
        choice = reader(record, where)
        if choice is None:
            n_skipped += 1
            choices.pop(task_id, None)
        else:
            choices[task_id] = choice
    return choices, n_skipped


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial proportion (None without trials).

    successes (int): e.g. the wins.
    trials (int): e.g. the wins and losses.
    z (float): The normal quantile (1.96 for 95%).
    RETURNS (Optional[Tuple[float, float]]): The lower and upper bounds.
    """
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, center - half), min(1.0, center + half)


def sign_test_p_value(wins: int, losses: int) -> float | None:
    """Two-sided exact sign test of ``wins`` against ``losses`` (ties left out)."""
    if wins + losses == 0:
        return None
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def score_choices(choices: dict[str, str], mapping: dict[str, Any]) -> dict[str, Any]:
    """Model A against model B from the people's choices.

    choices (Dict[str, str]): task id -> ``1``, ``2`` or ``equal``.
    mapping (dict): The build's mapping.
    RETURNS (dict): wins, losses and ties of A, the win rate excluding ties, its Wilson 95%
        interval, the sign test p-value and the models' paths.
    """
    wins = losses = ties = 0
    for task_id, choice in choices.items():
        if choice == EQUAL:
            ties += 1
        elif mapping["tasks"][task_id][choice] == MODEL_A:
            wins += 1
        else:
            losses += 1
    decided = wins + losses
    interval = wilson_interval(wins, decided)
    return {
        "model_a": mapping.get("models", {}).get(MODEL_A),
        "model_b": mapping.get("models", {}).get(MODEL_B),
        "review_id": mapping.get("review_id"),
        "n_tasks": len(mapping["tasks"]),
        "n_answered": len(choices),
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "win_rate": wins / decided if decided else None,
        "wilson_95": list(interval) if interval else None,
        "sign_test_p": sign_test_p_value(wins, losses),
    }


def score_markdown(score: dict[str, Any]) -> str:
    """The score as a short Markdown report."""

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    interval = score["wilson_95"]
    interval_text = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "n/a"
    return (
        "# Blind A/B review\n\n"
        f"- A: `{score['model_a']}`\n- B: `{score['model_b']}`\n"
        f"- review `{score['review_id']}`: {score['n_answered']} of {score['n_tasks']} tasks "
        f"answered ({score['n_skipped']} answers skipped)\n\n"
        "| A wins | A losses | ties | A win rate (ties excluded) | Wilson 95% | sign test p |\n"
        "|---:|---:|---:|---:|---|---:|\n"
        f"| {score['wins']} | {score['losses']} | {score['ties']} | "
        f"{number(score['win_rate'])} | {interval_text} | {number(score['sign_test_p'])} |\n"
    )


def score_ab_review(
    answers_path: Path,
    mapping_path: Path,
    answer_format: str,
    output_dir: Path | None = None,
) -> dict[str, Any]:
    """Read the people's choices, score A against B and write ``ab_score.json`` and ``.md``.

    answers_path (Path): The Label Studio JSON export or the Prodigy ``db-out`` JSONL.
    mapping_path (Path): The build's ``mapping.json``.
    answer_format (str): ``labelstudio`` or ``prodigy``.
    output_dir (Optional[Path]): Folder of the two reports (default: the mapping's folder).
    RETURNS (dict): The score (see ``score_choices``) with ``n_skipped`` and the paths.
    """
    mapping = read_mapping(mapping_path)
    choices, n_skipped = read_choices(answers_path, mapping, answer_format)
    score = score_choices(choices, mapping)
    score["n_skipped"] = n_skipped
    score["format"] = answer_format
    folder = Path(output_dir) if output_dir is not None else Path(mapping_path).parent
    paths = {"json": folder / SCORE_JSON_FILE, "markdown": folder / SCORE_MD_FILE}
    score["paths"] = {name: str(path) for name, path in paths.items()}
    atomic_write_json(paths["json"], score)
    atomic_write_text(paths["markdown"], score_markdown(score))
    return score
