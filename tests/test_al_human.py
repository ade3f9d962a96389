"""Active learning with real experts, one iteration at a time (``scripts/al_human.py``): select
exports a batch, the 'experts' answer in Prodigy's format, update imports, fine-tunes and saves a
checkpoint; a bad answer file or a second select while a batch is pending changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from spacy.vocab import Vocab
from typer.testing import CliRunner

from nerloop.al.human import EXPERT_FILE, STATE_FILE
from nerloop.corpus import meta
from nerloop.formats.common import (
    LABEL_STUDIO_CONFIG_FILE,
    LABEL_STUDIO_TASKS_FILE,
    PRODIGY_TASKS_FILE,
    prodigy_span,
)
from nerloop.io_utils import read_docbin
from scripts.al_human import app
from tests.tiny_corpus import gold_docs, write_tiny_corpus
from tests.tiny_tagger import train_tiny_tagger

BATCH = 3
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, [str(arg) for arg in args])


def flat(output: str) -> str:
    """CLI output with wasabi's line wrapping undone."""
    return " ".join(output.split())


def state_of(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / STATE_FILE).read_text())


def ents_by_id(path: Path) -> dict[int, list[tuple[str, str]]]:
    docs = read_docbin(path, Vocab())
    return {meta.sent_id(doc): [(e.text, e.label_) for e in doc.ents] for doc in docs}


def expert_answers(state_dir: Path, iteration: int, drop_last_of: int | None = None) -> Path:
    """``prodigy db-out`` after experts replaced the model's spans with the gold entities (for
    sentence ``drop_last_of`` they leave out its last entity: the experts' word, not gold)."""
    gold = {meta.sent_id(doc): doc for doc in gold_docs(40)}
    export = state_dir / f"iter_{iteration}" / "export" / PRODIGY_TASKS_FILE
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    for row in rows:
        sent_id = row["meta"]["sent_id"]
        spans = [prodigy_span(ent) for ent in gold[sent_id].ents]
        row.update(
            spans=spans[:-1] if sent_id == drop_last_of else spans,
            answer="accept",
            _annotator_id="round-alice",
        )
    path = state_dir.parent / f"answers_{iteration}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def answered_ents(path: Path) -> dict[int, list[tuple[str, str]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {
        row["meta"]["sent_id"]: [
            (row["text"][s["start"] : s["end"]], s["label"]) for s in row["spans"]
        ]
        for row in rows
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """select 1 -> answers -> update 1 -> select 2, with a snapshot of the state folder after
    each step (tests work on copies)."""
    base = tmp_path_factory.mktemp("al_human")
    corpus = write_tiny_corpus(base / "corpus")
    model = train_tiny_tagger(base / "model", max_epochs=10)
    state = base / "run" / "state"
    common = ["--pool", corpus["gold"], "--loop.strategy", "entropy", "--loop.batch_to_add", BATCH]
    snapshots: dict[str, Any] = {"corpus": corpus, "model": model, "outputs": {}}

    def snapshot(name: str, result: Any) -> None:
        assert result.exit_code == 0, result.output
        snapshots["outputs"][name] = result.output
        snapshots[name] = base / name / "state"
        shutil.copytree(state, snapshots[name])

    snapshot("select_1", invoke("select", state, "--model", model, *common, "--no-progress"))
    first = state_of(state)["pending"]["selected_ids"]
    answers = expert_answers(state, 1, drop_last_of=first[0])
    snapshots["answers_1"] = answers
    update = [
        "--cheap",
        corpus["cheap"],
        "--dev",
        corpus["dev"],
        "--training.finetune_epochs",
        1,
        "--no-progress",
    ]
    snapshots["update_args"] = update
    snapshot(
        "update_1", invoke("update", state, "--answers", answers, "--format", "prodigy", *update)
    )
    snapshot("select_2", invoke("select", state, *common, "--no-progress"))
    return snapshots


def copy_of(run: dict[str, Any], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run[name], tmp_path / "state"))


def test_select_records_and_exports_a_pending_batch(run) -> None:
    state_dir = run["select_1"]
    state = state_of(state_dir)
    assert state["iteration"] == 0 and state["labelled_ids"] == [] and state["history"] == []
    assert state["start_model"] == str(run["model"].resolve()) == state["model"]
    pending = state["pending"]
    assert pending["iteration"] == 1 and len(pending["selected_ids"]) == BATCH
    selected = read_docbin(state_dir / "iter_1" / "selected.spacy", Vocab())
    assert [meta.sent_id(doc) for doc in selected] == pending["selected_ids"]
    assert len({tuple(t.text for t in doc) for doc in selected}) == BATCH  # distinct sentences
    assert all(not doc.ents for doc in selected)  # the pool's gold labels do not travel
    export = state_dir / "iter_1" / "export"
    for name in (LABEL_STUDIO_TASKS_FILE, LABEL_STUDIO_CONFIG_FILE, PRODIGY_TASKS_FILE):
        assert (export / name).exists()
    tasks = json.loads((export / LABEL_STUDIO_TASKS_FILE).read_text())
    assert [task["data"]["sent_id"] for task in tasks] == pending["selected_ids"]
    rows = (export / PRODIGY_TASKS_FILE).read_text().splitlines()
    assert [json.loads(row)["meta"]["sent_id"] for row in rows] == pending["selected_ids"]
    assert "python -m scripts.al_human update" in flat(run["outputs"]["select_1"])


def test_update_saves_checkpoint_expert_docs_and_state(run) -> None:
    state_dir = run["update_1"]
    added = state_of(run["select_1"])["pending"]["selected_ids"]
    name = f"active_iter_1_added_{BATCH}"
    assert (state_dir / "checkpoints" / name / "config.cfg").exists()
    manifest = json.loads((state_dir / "checkpoints" / f"{name}.json").read_text())
    assert manifest["checkpoint"] == name and manifest["iteration"] == 1
    assert manifest["added_ids"] == added == manifest["all_added_ids"]
    assert set(manifest["dev"]) == {"f1", "precision", "recall", "accuracy", "loss"}
    assert manifest["answers"]["annotators"] == {"round-alice": BATCH}
    cheap_ids = set(range(10))
    assert manifest["training_set"]["counts"] == {
        "cheap": len(cheap_ids - set(added)),
        "expert": BATCH,
    }
    # the experts' labels (one entity dropped on purpose), not gold
    expert = ents_by_id(state_dir / EXPERT_FILE)
    assert expert == answered_ents(run["answers_1"])
    gold = {meta.sent_id(d): [(e.text, e.label_) for e in d.ents] for d in gold_docs(40)}
    assert expert[added[0]] == gold[added[0]][:-1] != gold[added[0]]
    docs = read_docbin(state_dir / EXPERT_FILE, Vocab())
    assert {doc.user_data[meta.SOURCE] for doc in docs} == {"expert"}
    state = state_of(state_dir)
    assert state["pending"] is None and state["iteration"] == 1
    assert state["labelled_ids"] == added
    assert state["model"] == f"checkpoints/{name}"
    assert [entry["iteration"] for entry in state["history"]] == [0, 1]
    assert state["history"][1]["dev"] == manifest["dev"]
    assert state["history"][1]["gain"] == pytest.approx(
        manifest["dev"]["f1"] - state["history"][0]["dev"]["f1"]
    )
    output = flat(run["outputs"]["update_1"])
    assert f"dev F1 {manifest['dev']['f1']:.4f}" in output and "gain" in output


def test_second_select_skips_labelled_sentences_and_uses_the_checkpoint(run) -> None:
    state = state_of(run["select_2"])
    pending = state["pending"]
    assert pending["iteration"] == 2 and len(pending["selected_ids"]) == BATCH
    assert not set(pending["selected_ids"]) & set(state["labelled_ids"])
    assert pending["model"] == f"checkpoints/active_iter_1_added_{BATCH}"


def test_select_is_refused_while_an_iteration_is_pending(run, tmp_path: Path) -> None:
    state_dir = copy_of(run, "select_2", tmp_path)
    before = (state_dir / STATE_FILE).read_bytes()
    result = invoke("select", state_dir, "--pool", run["corpus"]["gold"], "--no-progress")
    assert result.exit_code == 1
    assert "iteration 2 is pending" in flat(result.output)
    assert "python -m scripts.al_human update" in flat(result.output)
    assert (state_dir / STATE_FILE).read_bytes() == before
    assert not (state_dir / "iter_3").exists()


def test_bad_answers_change_nothing_and_good_ones_then_go_through(run, tmp_path: Path) -> None:
    state_dir = copy_of(run, "select_2", tmp_path)
    before = {name: (state_dir / name).read_bytes() for name in (STATE_FILE, EXPERT_FILE)}
    answers = expert_answers(state_dir, 2)
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    bad = [dict(row) for row in rows]
    first = bad[0]
    word = first["tokens"][0]
    first["spans"] = [{"start": 0, "end": word["end"] - 1, "label": "PER"}]  # off a token end
    bad_path = tmp_path / "bad.jsonl"
    bad_path.write_text("".join(json.dumps(row) + "\n" for row in bad))
    args = ["update", state_dir, "--answers", bad_path, "--format", "prodigy", *run["update_args"]]
    result = invoke(*args)
    assert result.exit_code == 1
    assert "does not fall on token boundaries" in flat(result.output)
    assert f"sent_id {first['meta']['sent_id']}" in flat(result.output)
    assert {name: (state_dir / name).read_bytes() for name in before} == before
    assert not (state_dir / "iter_2" / "answers.spacy").exists()
    assert not list((state_dir / "checkpoints").glob("active_iter_2_*"))
    # the same iteration, answered properly
    args[3] = answers
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    state = state_of(state_dir)
    assert state["iteration"] == 2 and state["pending"] is None
    assert len(state["labelled_ids"]) == 2 * BATCH
    assert (state_dir / "checkpoints" / f"active_iter_2_added_{2 * BATCH}.json").exists()
    assert set(ents_by_id(state_dir / EXPERT_FILE)) == set(state["labelled_ids"])
    assert [entry["iteration"] for entry in state["history"]] == [0, 1, 2]


def test_update_without_a_pending_iteration_is_refused(run, tmp_path: Path) -> None:
    state_dir = copy_of(run, "update_1", tmp_path)
    answers = ["--answers", run["answers_1"], "--format", "prodigy"]
    result = invoke("update", state_dir, *answers, *run["update_args"])
    assert result.exit_code == 1
    assert "no iteration is pending" in flat(result.output)


def test_update_interrupted_before_the_state_is_written_can_be_run_again(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state.json is the commit point: a crash after the checkpoint and expert.spacy were written
    leaves the iteration pending, and the rerun does not add the batch twice."""
    from nerloop.al import human as al_human

    state_dir = copy_of(run, "select_2", tmp_path)
    answers = expert_answers(state_dir, 2)
    corpus = run["corpus"]

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(al_human, "write_state", crash)
        with pytest.raises(KeyboardInterrupt):
            al_human.update_from_experts(
                state_dir, answers, "prodigy", corpus["cheap"], corpus["dev"], progress=False
            )
    assert state_of(state_dir)["pending"]["iteration"] == 2
    assert len(read_docbin(state_dir / EXPERT_FILE, Vocab())) == 2 * BATCH
    al_human.update_from_experts(
        state_dir, answers, "prodigy", corpus["cheap"], corpus["dev"], progress=False
    )
    state = state_of(state_dir)
    assert state["pending"] is None and len(state["labelled_ids"]) == 2 * BATCH
    ids = [meta.sent_id(doc) for doc in read_docbin(state_dir / EXPERT_FILE, Vocab())]
    assert sorted(ids) == sorted(state["labelled_ids"])


def test_initial_experts_join_training_and_are_never_selected(run, tmp_path: Path) -> None:
    """--initial-experts: the expert Docs of the start model's training stay in every training
    set, count as labelled, and the checkpoints count only the sentences the loop added."""
    corpus = run["corpus"]
    state_dir = tmp_path / "state"
    initial = gold_docs(40)[10:14]
    initial_path = tmp_path / "initial.spacy"
    from nerloop.io_utils import write_docbin

    write_docbin(initial_path, initial)
    initial_ids = [meta.sent_id(doc) for doc in initial]
    select = ["select", state_dir, "--model", run["model"], "--pool", corpus["gold"]]
    select += ["--initial-experts", initial_path, "--loop.batch_to_add", "2", "--no-progress"]
    result = invoke(*select)
    assert result.exit_code == 0, result.output
    state = state_of(state_dir)
    assert state["labelled_ids"] == initial_ids and state["n_initial_experts"] == 4
    assert not set(state["pending"]["selected_ids"]) & set(initial_ids)
    assert sorted(ents_by_id(state_dir / EXPERT_FILE)) == initial_ids
    again = invoke(*select)
    assert again.exit_code == 1 and "only read on first use" in flat(again.output)


def test_a_human_loop_folder_reads_like_a_simulated_run(run) -> None:
    """CheckpointStore reads the state folder: iteration 0 is the start model scored on dev,
    then one checkpoint per update, named by the sentences active learning added."""
    from nerloop.al.checkpoints import CheckpointStore
    from nerloop.eval.pipeline import load_pipeline

    state_dir = run["update_1"]
    store = CheckpointStore(state_dir)
    found = store.manifests()
    names = ["active_iter_0_added_0", f"active_iter_1_added_{BATCH}"]
    assert [m["checkpoint"] for m in found] == names
    assert list(store.finished()) == names
    assert [m["n_added"] for m in found] == [0, BATCH] and found[1]["n_expert_total"] == BATCH
    state = state_of(state_dir)
    assert found[0]["dev"] == state["history"][0]["dev"] and found[0]["mode"] == "initial"
    assert found[1]["gain"] == pytest.approx(found[1]["dev"]["f1"] - found[0]["dev"]["f1"])
    assert [s["sent_id"] for s in found[1]["selected"]] == state["labelled_ids"]
    loaded = store.load(found[1])
    original = load_pipeline(state_dir / state["model"])
    assert loaded.to_bytes() == original.to_bytes()


def test_human_and_simulated_manifests_have_the_same_keys(run, tmp_path: Path) -> None:
    from nerloop.al.checkpoints import MANIFEST_KEYS, CheckpointStore
    from nerloop.al.loop import LoopSettings, run_loop

    corpus = run["corpus"]
    settings = LoopSettings(
        cheap_path=str(corpus["cheap"]),
        gold_path=str(corpus["gold"]),
        dev_path=str(corpus["dev"]),
        init_model=str(run["model"]),
        batch_to_add=BATCH,
        finetune_epochs=1,
        max_iterations=1,
    )
    run_loop(settings, tmp_path / "simulated", progress=False)
    simulated = CheckpointStore(tmp_path / "simulated").manifests()
    human = CheckpointStore(run["update_1"]).manifests()
    assert len(simulated) == len(human) == 2
    for manifest in simulated + human:
        assert list(manifest) == list(MANIFEST_KEYS)
    # n_added counts the sentences active learning added, never the initial experts
    for manifests in (simulated, human):
        assert [m["n_added"] for m in manifests] == [len(m["all_added_ids"]) for m in manifests]


def test_initial_experts_are_not_counted_in_n_added(run, tmp_path: Path) -> None:
    from nerloop.al.checkpoints import CheckpointStore
    from nerloop.io_utils import write_docbin

    corpus = run["corpus"]
    state_dir = tmp_path / "state"
    initial_path = tmp_path / "initial.spacy"
    write_docbin(initial_path, gold_docs(40)[10:14])
    select = ["select", state_dir, "--model", run["model"], "--pool", corpus["gold"]]
    select += ["--initial-experts", initial_path, "--loop.batch_to_add", "2", "--no-progress"]
    assert invoke(*select).exit_code == 0
    answers = expert_answers(state_dir, 1)
    args = ["update", state_dir, "--answers", answers, "--format", "prodigy"]
    result = invoke(*args, *run["update_args"])
    assert result.exit_code == 0, result.output
    found = CheckpointStore(state_dir).manifests()
    assert [m["checkpoint"] for m in found] == ["active_iter_0_added_0", "active_iter_1_added_2"]
    assert [m["n_initial_expert"] for m in found] == [4, 4]
    assert [m["n_expert_total"] for m in found] == [4, 6]
    added = state_of(state_dir)["labelled_ids"][4:]
    assert found[1]["all_added_ids"] == found[1]["added_ids"] == added and len(added) == 2
    assert found[1]["training_set"]["counts"]["expert"] == 6
    assert (state_dir / "iter_1" / "config.cfg").exists()
