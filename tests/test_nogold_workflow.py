"""A user without gold labels, end to end through the CLIs: raw clinical notes with a scheme of
their own (JOB_TITLE, DRUG, SYMPTOM) -> ingest -> the LLM (a loopback OpenAI-style server)
labels them -> a seeded random dev sample goes to the experts -> the cheap model trains on the
LLM labels of the rest -> two rounds of active learning with the experts (select, export to
Label Studio and Prodigy, import their Label Studio answers, fine-tune) -> the rounds report ->
spacy package -> the packaged model loads elsewhere and tags.

The experts are simulated: they answer with the fixture's true labels
(tests/fixtures/nogold/truth.jsonl) in Label Studio's JSON export format. The LLM is imperfect:
it misses every entity of some sentences and gives an unreadable reply for one."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.al.checkpoints import open_store
from nerloop.al.human import STATE_FILE, HumanLoopError, select_for_experts
from nerloop.al.settings import IterationSettings
from nerloop.corpus import meta
from nerloop.eval.metrics import doc_to_iob2
from nerloop.formats.common import (
    LABEL_STUDIO_CONFIG_FILE,
    LABEL_STUDIO_TASKS_FILE,
    PRODIGY_TASKS_FILE,
    label_studio_result,
)
from nerloop.io_utils import read_docbin
from nerloop.labels import load_scheme
from nerloop.llm.loopback_server import FakeOpenAIServer, FakeReply, Oracle, prompt_tokens
from nerloop.llm.tasks.token_ner import tag_ids_for_labels
from nerloop.nogold import NoGoldError, rounds_report, sample_ids
from scripts import al_human, al_import, annotate, dev_sample, finetune, ingest
from scripts import rounds_report as rounds_report_cli
from tests.annotate_support import KEY_ENV, TOKEN_NER_CONFIG, live_overrides
from tests.cli_support import run_cli

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "nogold"
NOTES = FIXTURES / "notes.txt"
SCHEME = FIXTURES / "labels.cfg"
LABELS = ("JOB_TITLE", "DRUG", "SYMPTOM")
N_SENTENCES = 48
N_DOCUMENTS = 16
DEV_SIZE = 12
SEED = 0
BATCH = 5
# the LLM misses every entity of these sentences, and cannot answer for the last one
LLM_MISSES = {3, 9, 15, 21, 27, 33, 39, 45}
LLM_FAILS = 47


def truth() -> dict[str, list[tuple[str, str]]]:
    rows = [json.loads(line) for line in (FIXTURES / "truth.jsonl").read_text().splitlines()]
    return {row["text"]: [tuple(entity) for entity in row["entities"]] for row in rows}


def true_doc(doc: Doc) -> Doc:
    """A copy of a sentence Doc with the fixture's true entities."""
    copy = doc.copy()
    spans, start = [], 0
    for text, label in truth()[doc.text]:
        begin = doc.text.index(text, start)
        start = begin + len(text)
        span = copy.char_span(begin, start, label=label)
        assert span is not None, (doc.text, text)
        spans.append(span)
    copy.set_ents(spans, default="outside")
    return copy


def ents(doc: Doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


def run_ok(module: Any, *args: Any) -> str:
    result = run_cli(module.app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def label_studio_answers(tasks_path: Path, corpus: dict[int, Doc], output: Path) -> Path:
    """Label Studio's JSON export after the experts replaced the pre-annotations with the true
    entities (task ids and timestamps as the tool writes them)."""
    tasks = json.loads(tasks_path.read_text())
    for position, task in enumerate(tasks):
        doc = true_doc(corpus[task["data"]["sent_id"]])
        task["id"] = 100 + position
        task["annotations"] = [
            {
                "id": 500 + position,
                "completed_by": 3,
                "was_cancelled": False,
                "created_at": "2024-05-02T10:00:00.000000Z",
                "updated_at": "2024-05-02T10:01:00.000000Z",
                "result": [label_studio_result(ent, i) for i, ent in enumerate(doc.ents)],
            }
        ]
    output.write_text(json.dumps(tasks))
    return output


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every step of the no-gold path, once; the tests below check what each one wrote."""
    base = tmp_path_factory.mktemp("nogold")
    out: dict[str, Any] = {"base": base, "outputs": {}}
    corpus_path = base / "corpus" / "notes.spacy"
    out["outputs"]["ingest"] = run_ok(
        ingest, NOTES, corpus_path, "--format", "text", "--text-mode", "doc-per-line",
        "--labels", SCHEME,
    )  # fmt: skip
    corpus = {meta.sent_id(doc): doc for doc in read_docbin(corpus_path, Vocab())}
    out["corpus"] = corpus

    # The LLM: correct tags, except for the sentences it misses or cannot answer.
    by_tokens = {}
    for sent_id, doc in corpus.items():
        tags = doc_to_iob2(true_doc(doc))
        by_tokens[tuple(t.text for t in doc)] = ["O"] * len(doc) if sent_id in LLM_MISSES else tags
    oracle = Oracle(by_tokens, tag_ids=tag_ids_for_labels(LABELS))
    failing = [t.text for t in corpus[LLM_FAILS]]

    def responder(prompt: str, attempt: int) -> FakeReply:
        if prompt_tokens(prompt) == failing:
            return FakeReply(content="I cannot label this sentence.")
        return oracle.responder(prompt, attempt)

    annotated_path = base / "corpus" / "llm.spacy"
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, secrets.token_hex(8))
    try:
        with FakeOpenAIServer(responder) as server:
            overrides = live_overrides(server.base_url)
            out["outputs"]["annotate"] = run_ok(
                annotate, corpus_path, annotated_path, "--source", TOKEN_NER_CONFIG,
                "--labels", SCHEME, "--cache-dir", base / "cache",
                "--prices", ROOT / "configs" / "llm_prices.json", "--no-progress",
                *[arg for key, value in overrides.items() for arg in (f"--{key}", value)],
            )  # fmt: skip
    finally:
        mp.undo()
    out["annotated"] = read_docbin(annotated_path, Vocab())

    sample_dir = base / "corpus" / "nogold"
    out["outputs"]["dev_sample"] = run_ok(
        dev_sample, corpus_path, annotated_path, sample_dir, "--size", DEV_SIZE,
        "--seed", SEED, "--labels", SCHEME,
    )  # fmt: skip
    out["sample_dir"] = sample_dir
    dev_answers = label_studio_answers(
        sample_dir / "export" / LABEL_STUDIO_TASKS_FILE, corpus, base / "dev_answers.json"
    )
    dev_path = sample_dir / "dev.spacy"
    run_ok(
        al_import, dev_answers, sample_dir / "dev_sample.spacy", dev_path,
        "--labels", SCHEME, "--summary", base / "dev_import.json",
    )  # fmt: skip
    out["dev_path"] = dev_path
    pool_path = sample_dir / "pool.spacy"
    cheap_dir = base / "training" / "cheap"
    run_ok(
        finetune, pool_path, dev_path, cheap_dir, "--config", ROOT / "configs" / "tagger_tiny.cfg",
        "--paths.labels", SCHEME, "--epochs", 20, "--batch-words", 16,
    )  # fmt: skip
    out["cheap_model"] = cheap_dir / "model-best"

    state = base / "training" / "al"
    out["state"] = state
    select = ["--pool", pool_path, "--loop.strategy", "entropy", "--loop.batch_to_add", BATCH]
    update = ["--format", "labelstudio", "--cheap", pool_path, "--dev", dev_path]
    update += ["--training.finetune_epochs", 2, "--training.batch_words", 16, "--no-progress"]
    out["selected"] = []
    for iteration in (1, 2):
        model = ["--model", out["cheap_model"]] if iteration == 1 else []
        out["outputs"][f"select_{iteration}"] = run_ok(
            al_human, "select", state, *model, *select, "--no-progress"
        )
        out["selected"].append(json.loads((state / STATE_FILE).read_text())["pending"])
        export = state / f"iter_{iteration}" / "export"
        shutil.copytree(export, base / f"export_{iteration}")  # as the experts got it
        answers = label_studio_answers(
            export / LABEL_STUDIO_TASKS_FILE, corpus, base / f"answers_{iteration}.json"
        )
        run_ok(al_human, "update", state, "--answers", answers, *update)

    out["report_path"] = base / "reports" / "rounds.json"
    out["final_model"] = base / "training" / "model-final"
    out["outputs"]["report"] = run_ok(
        rounds_report_cli, state, out["report_path"], "--dev", dev_path,
        "--markdown", base / "reports" / "rounds.md", "--final-model", out["final_model"],
    )  # fmt: skip
    return out


def test_ingest_and_the_llm_label_the_raw_notes(workflow) -> None:
    corpus = workflow["corpus"]
    assert len(corpus) == N_SENTENCES and sorted(corpus) == list(range(N_SENTENCES))
    assert len({doc.user_data["doc_id"] for doc in corpus.values()}) == N_DOCUMENTS
    assert all(doc.user_data["annotator"] == "none" and not doc.ents for doc in corpus.values())
    annotated = {meta.sent_id(doc): doc for doc in workflow["annotated"]}
    assert sorted(annotated) == [i for i in range(N_SENTENCES) if i != LLM_FAILS]
    for sent_id, doc in annotated.items():
        expected = [] if sent_id in LLM_MISSES else ents(true_doc(corpus[sent_id]))
        assert ents(doc) == expected, sent_id
    assert {ent.label_ for doc in annotated.values() for ent in doc.ents} == set(LABELS)


def test_the_dev_sample_is_seeded_and_its_exports_carry_the_llm_labels(workflow) -> None:
    sample_dir, corpus = workflow["sample_dir"], workflow["corpus"]
    summary = json.loads((sample_dir / "dev_sample.json").read_text())
    ids = summary["sent_ids"]
    assert ids == sample_ids(list(range(N_SENTENCES)), DEV_SIZE, SEED)
    assert ids != sample_ids(list(range(N_SENTENCES)), DEV_SIZE, SEED + 1)
    assert len(ids) == DEV_SIZE == summary["size"]
    llm_labelled = N_SENTENCES - 1
    n_pool = llm_labelled - len(set(ids) - {LLM_FAILS})
    assert (summary["n_corpus"], summary["n_annotated"], summary["n_pool"]) == (
        N_SENTENCES,
        llm_labelled,
        n_pool,
    )
    assert summary["n_sample_without_llm_labels"] == int(LLM_FAILS in ids)
    sample = read_docbin(sample_dir / "dev_sample.spacy", Vocab())
    assert [meta.sent_id(doc) for doc in sample] == ids and all(not d.ents for d in sample)
    assert summary["n_sample_tokens"] == sum(len(doc) for doc in sample)
    pool = read_docbin(sample_dir / "pool.spacy", Vocab())
    assert len(pool) == n_pool and not {meta.sent_id(doc) for doc in pool} & set(ids)
    tasks = json.loads((sample_dir / "export" / LABEL_STUDIO_TASKS_FILE).read_text())
    assert [task["data"]["sent_id"] for task in tasks] == ids
    for task in tasks:
        (prediction,) = task["predictions"]
        assert "score" not in prediction and prediction["model_version"] == "llm:token_ner_openai"
        found = [(r["value"]["text"], r["value"]["labels"][0]) for r in prediction["result"]]
        sent_id = task["data"]["sent_id"]
        missed = sent_id in LLM_MISSES or sent_id == LLM_FAILS
        assert found == ([] if missed else ents(true_doc(corpus[sent_id]))), sent_id
    rows = (sample_dir / "export" / PRODIGY_TASKS_FILE).read_text().splitlines()
    assert [json.loads(row)["meta"]["sent_id"] for row in rows] == ids
    config = (sample_dir / "export" / LABEL_STUDIO_CONFIG_FILE).read_text()
    assert '<Label value="JOB_TITLE" hint="A job or position held by a person' in config
    assert "--label JOB_TITLE,DRUG,SYMPTOM" in summary["prodigy_command"]


def test_the_experts_dev_set_holds_their_answers(workflow) -> None:
    dev = read_docbin(workflow["dev_path"], Vocab())
    summary = json.loads((workflow["dev_path"].parent / "dev_sample.json").read_text())
    assert [meta.sent_id(doc) for doc in dev] == summary["sent_ids"]
    for doc in dev:
        assert ents(doc) == ents(true_doc(workflow["corpus"][meta.sent_id(doc)]))
        assert doc.user_data["source"] == "expert"
        assert doc.user_data["annotator"] == "labelstudio-user-3"


def test_active_learning_never_chooses_the_dev_sample(workflow) -> None:
    dev_ids = set(json.loads((workflow["sample_dir"] / "dev_sample.json").read_text())["sent_ids"])
    first, second = (pending["selected_ids"] for pending in workflow["selected"])
    assert len(first) == len(second) == BATCH
    assert not set(first) & set(second)
    assert not (set(first) | set(second)) & dev_ids
    state = json.loads((workflow["state"] / STATE_FILE).read_text())
    assert state["iteration"] == 2 and state["pending"] is None
    assert state["labelled_ids"] == first + second
    for iteration, chosen in ((1, first), (2, second)):
        folder = workflow["state"] / f"iter_{iteration}"
        answers = read_docbin(folder / "answers.spacy", Vocab())
        assert [meta.sent_id(doc) for doc in answers] == chosen
        for doc in answers:
            assert ents(doc) == ents(true_doc(workflow["corpus"][meta.sent_id(doc)]))
        export = workflow["base"] / f"export_{iteration}"
        tasks = json.loads((export / LABEL_STUDIO_TASKS_FILE).read_text())
        assert [task["data"]["sent_id"] for task in tasks] == chosen
        predicted = {r["value"]["labels"][0] for t in tasks for r in t["predictions"][0]["result"]}
        assert predicted <= set(LABELS)
        config = (export / LABEL_STUDIO_CONFIG_FILE).read_text()
        assert '<Label value="SYMPTOM" hint="Something a patient feels or shows' in config
        prodigy = [
            json.loads(row) for row in (export / PRODIGY_TASKS_FILE).read_text().splitlines()
        ]
        assert [row["meta"]["sent_id"] for row in prodigy] == chosen


def test_the_rounds_report_gives_dev_f1_and_expert_effort(workflow) -> None:
    report = json.loads(workflow["report_path"].read_text())
    state = json.loads((workflow["state"] / STATE_FILE).read_text())
    dev = read_docbin(workflow["dev_path"], Vocab())
    dev_tokens = sum(len(doc) for doc in dev)
    assert report["dev"]["sentences"] == DEV_SIZE and report["dev"]["tokens"] == dev_tokens
    rows = report["rounds"]
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert [row["dev_f1"] for row in rows] == [entry["dev"]["f1"] for entry in state["history"]]
    assert rows[0]["checkpoint"] == "active_iter_0_added_0" and rows[0]["gain"] is None
    tokens = [0]
    for pending in workflow["selected"]:
        tokens.append(sum(len(workflow["corpus"][i]) for i in pending["selected_ids"]))
    assert [row["sentences"] for row in rows] == [0, BATCH, BATCH]
    assert [row["tokens"] for row in rows] == tokens
    assert [row["al_sentences"] for row in rows] == [0, BATCH, 2 * BATCH]
    assert [row["expert_sentences"] for row in rows] == [DEV_SIZE + n * BATCH for n in range(3)]
    assert [row["expert_tokens"] for row in rows] == [
        dev_tokens + sum(tokens[: n + 1]) for n in range(3)
    ]
    for row in rows[1:]:
        assert row["gain"] == pytest.approx(row["dev_f1"] - rows[row["round"] - 1]["dev_f1"])
    markdown = (workflow["report_path"].parent / "rounds.md").read_text()
    table = [line.split(" | ")[:2] for line in markdown.splitlines() if line.startswith("| ")]
    assert table[1:] == [[f"| {row['round']}", f"{row['dev_f1']:.4f}"] for row in rows]
    assert f"Expert totals include the dev sample: {DEV_SIZE} sentences" in markdown
    # the final model is the round best on the experts' dev sample; the current one is the last
    best = max(rows, key=lambda row: (row["dev_f1"], -row["round"]))
    assert report["chosen"]["round"] == best["round"]
    assert report["current_model"] == str(workflow["state"] / state["model"])
    expected = (
        state["start_model"]
        if best["round"] == 0
        else str(open_store(workflow["state"]).pipeline_path(best["checkpoint"]))
    )
    assert report["final_model"] == expected
    assert f"Final model: round {best['round']} (dev F1 {best['dev_f1']:.4f}" in markdown
    last = rounds_report(workflow["state"], workflow["dev_path"], choose="last")
    assert last["final_model"] == last["current_model"] == report["current_model"]
    assert last["chosen"]["round"] == rows[-1]["round"]
    with pytest.raises(NoGoldError, match="choose must be one of best, last"):
        rounds_report(workflow["state"], workflow["dev_path"], choose="first")
    final = spacy.load(workflow["final_model"])
    assert final.get_pipe("bio_ner").labels == LABELS


def test_the_report_needs_a_scored_round_and_the_dev_set_of_the_run(workflow, tmp_path) -> None:
    with pytest.raises(NoGoldError, match="has no scored round yet"):
        rounds_report(tmp_path)
    other_dev = tmp_path / "other.spacy"
    other_dev.write_bytes(workflow["dev_path"].read_bytes() + b"\0")
    with pytest.raises(NoGoldError, match="was scored on another dev set than"):
        rounds_report(workflow["state"], other_dev)


def test_a_sample_leaves_sentences_to_train_on() -> None:
    with pytest.raises(NoGoldError, match="cannot be drawn from 4: give a size from 1 to 3"):
        sample_ids([0, 1, 2, 3], 4, 0)
    assert sample_ids([3, 1, 2, 0], 2, 7) == sample_ids([0, 1, 2, 3], 2, 7)


def test_the_human_loop_excludes_the_dev_sample_from_a_full_pool(workflow, tmp_path) -> None:
    """Given the whole LLM-labelled corpus as the pool, ``exclude`` keeps the dev sample out,
    even when the batch could take every candidate."""
    dev_ids = json.loads((workflow["sample_dir"] / "dev_sample.json").read_text())["sent_ids"]
    full_pool = workflow["base"] / "corpus" / "llm.spacy"
    state = tmp_path / "state"
    pending = select_for_experts(
        state,
        full_pool,
        model=workflow["cheap_model"],
        exclude=workflow["dev_path"],
        settings=IterationSettings(strategy="random", batch_to_add=N_SENTENCES),
        progress=False,
    )
    expected = sorted({meta.sent_id(doc) for doc in workflow["annotated"]} - set(dev_ids))
    assert sorted(pending["selected_ids"]) == expected
    recorded = json.loads((state / STATE_FILE).read_text())
    assert recorded["excluded_ids"] == dev_ids
    with pytest.raises(HumanLoopError, match="--exclude is only read on first use"):
        select_for_experts(state, full_pool, exclude=workflow["dev_path"], progress=False)


def test_the_packaged_model_loads_elsewhere_and_tags(workflow) -> None:
    packages = workflow["base"] / "packages"
    packages.mkdir()
    subprocess.run(
        [
            sys.executable, "-m", "spacy", "package", str(workflow["final_model"]),
            str(packages), "--name", "nogold_test", "--version", "0.0.1",
            "--code", "components/bio_ner.py,components/frozen_encoder.py",
            "--build", "none", "--force",
        ],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    module_dir = packages / "en_nogold_test-0.0.1" / "en_nogold_test"
    data_dir = module_dir / "en_nogold_test-0.0.1"
    assert (module_dir / "bio_ner.py").exists() and (data_dir / "config.cfg").exists()
    elsewhere = workflow["base"] / "elsewhere"
    elsewhere.mkdir()
    text = "The night nurse gave ibuprofen for the headache."
    # the package's own copies of the code register the components (as its __init__ does once
    # a build installs it; --build none builds nothing), then spacy.load reads its data folder
    code = (
        "import json, spacy, bio_ner, frozen_encoder; "
        f"nlp = spacy.load({str(data_dir)!r}); doc = nlp({text!r}); "
        "print(json.dumps([bio_ner.__file__, list(nlp.get_pipe('bio_ner').labels), "
        "[[e.text, e.label_] for e in doc.ents]]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env={"PYTHONPATH": str(module_dir), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    code_file, labels, found = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert code_file == str(module_dir / "bio_ner.py")
    assert labels == list(LABELS)
    assert found and {label for _, label in found} <= set(LABELS)
    model = spacy.load(workflow["final_model"])
    assert found == [[e.text, e.label_] for e in model(text).ents]


def test_select_refuses_a_model_without_the_exported_labels(workflow, tmp_path) -> None:
    """A scheme given explicitly must hold what the model predicts (here: CoNLL's labels)."""
    from nerloop.formats.export import ExportError

    with pytest.raises(ExportError, match="that the label scheme of .*conll2003.cfg does not"):
        select_for_experts(
            tmp_path / "state",
            workflow["sample_dir"] / "pool.spacy",
            model=workflow["cheap_model"],
            labels=load_scheme(),
            settings=IterationSettings(strategy="random", batch_to_add=N_SENTENCES),
            progress=False,
        )
