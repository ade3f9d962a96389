"""The active learning loop and the strategy comparison on tiny DocBins with
configs/tagger_tiny.cfg: the stopping rule, checkpoint names and manifests, resume after an
interruption (no sentence added twice, the same selections), warm vs scratch, and the comparison
table and plot."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from nerloop.al import compare as al_compare
from nerloop.al.checkpoints import CheckpointStore, ResumeError
from nerloop.al.loop import LoopSettings, run_loop, stop_reason
from nerloop.al.scoring import score_pool
from nerloop.al.strategies import MissingLlmLabelsError, make_strategy
from nerloop.errors import SettingsError
from nerloop.eval.pipeline import load_pipeline
from tests.tiny_corpus import cheap_docs, gold_docs, write_tiny_corpus

ROOT = Path(__file__).parent.parent
TINY_CONFIG = ROOT / "configs" / "tagger_tiny.cfg"
INITIAL_EXPERTS = (10, 11)
LENGTHS = {doc.user_data["sent_id"]: len(doc) for doc in gold_docs(40)}  # 5, 6, 7 or 5 tokens


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """40 gold train sentences (4 templates repeated), the first 10 cheap, 8 dev: the pool is
    sentences 10-39 and every token sequence occurs 7 or 8 times in it."""
    paths = write_tiny_corpus(tmp_path_factory.mktemp("al_loop") / "corpus")
    return paths


def tiny_settings(corpus: dict[str, Path], **changes) -> LoopSettings:
    values = {
        "cheap_path": str(corpus["cheap"]),
        "gold_path": str(corpus["gold"]),
        "dev_path": str(corpus["dev"]),
        "init_config": str(TINY_CONFIG),
        "initial_expert_ids": INITIAL_EXPERTS,
        "initial_epochs": 2,
        "finetune_epochs": 1,
        "batch_to_add": 3,
        "improvement_threshold": -1.0,  # a gain is never below -1: run to max_iterations
        "min_iterations": 1,
        "max_iterations": 2,
        "strategy": "entropy",
        **changes,
    }
    return LoopSettings(**values)


def manifests(output_dir: Path) -> list[dict]:
    return CheckpointStore(output_dir).manifests()


def added_ids(output_dir: Path) -> list[int]:
    return manifests(output_dir)[-1]["all_added_ids"]


@pytest.fixture(scope="module")
def uninterrupted(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three iterations in one go: what every resumed run must reproduce."""
    output = tmp_path_factory.mktemp("uninterrupted")
    run_loop(tiny_settings(corpus, max_iterations=3), output, progress=False)
    return output


def from_start_model(corpus: dict[str, Path], uninterrupted: Path) -> LoopSettings:
    """One iteration from the uninterrupted run's start model, used as it is."""
    init_model = uninterrupted / "checkpoints" / "active_iter_0_added_0"
    return replace(
        tiny_settings(corpus, max_iterations=1),
        init_model=str(init_model),
        init_config=None,
        initial_epochs=None,
    )


def test_stop_rule() -> None:
    rule = {"improvement_threshold": 0.01, "min_iterations": 2, "max_iterations": 4}
    history = [{"iteration": 0, "gain": None}, {"iteration": 1, "gain": 0.0}]
    assert stop_reason(history, **rule) is None  # the gain is low but min_iterations is 2
    history.append({"iteration": 2, "gain": 0.009})
    assert stop_reason(history, **rule) == "gain below threshold"
    history[-1]["gain"] = 0.01
    assert stop_reason(history, **rule) is None
    assert stop_reason(history, **rule, pool_left=0) == "pool exhausted"
    history += [{"iteration": 3, "gain": 0.5}, {"iteration": 4, "gain": 0.5}]
    assert stop_reason(history, **rule) == "max iterations"
    assert stop_reason(history[:1], **{**rule, "max_iterations": 0}) == "max iterations"


def test_loop_stops_when_the_gain_is_below_the_threshold(corpus, tmp_path: Path) -> None:
    # a dev F1 gain of 1.0 is impossible here, so every gain is below the threshold
    settings = tiny_settings(corpus, improvement_threshold=1.0, min_iterations=2, max_iterations=5)
    history = run_loop(settings, tmp_path, progress=False)
    assert history["stopped"] == "gain below threshold"
    assert [entry["iteration"] for entry in history["iterations"]] == [0, 1, 2]
    assert history["iterations"][2]["gain"] < 1.0


def test_checkpoints_manifests_and_history(uninterrupted: Path) -> None:
    folder = uninterrupted / "checkpoints"
    names = ["active_iter_0_added_0", "active_iter_1_added_3", "active_iter_2_added_6"]
    names.append("active_iter_3_added_9")
    assert sorted(p.name for p in folder.iterdir()) == sorted(names + [f"{n}.json" for n in names])
    for name in names:
        assert (folder / name / "config.cfg").exists()
    found = manifests(uninterrupted)
    assert [m["checkpoint"] for m in found] == names
    last = found[-1]
    assert last["iteration"] == 3 and last["n_added"] == 9 and last["n_expert_total"] == 11
    assert last["all_added_ids"] == [i for m in found for i in m["added_ids"]]
    assert len(set(last["all_added_ids"])) == 9
    assert not set(last["all_added_ids"]) & set(INITIAL_EXPERTS)
    assert all(10 <= i < 40 for i in last["all_added_ids"])
    # no token sequence twice within one batch (the pool repeats 4 sentences)
    for manifest in found[1:]:
        texts = [selected["text"] for selected in manifest["selected"]]
        assert len(set(texts)) == len(texts) == 3
    assert set(last["dev"]) == {"f1", "precision", "recall", "accuracy", "loss"}
    assert last["n_train_docs"] == 10 + 2 + 9  # cheap + initial experts + added
    assert last["scoring"]["n_sentences"] == 30 - 2 - 6
    assert last["scoring"]["sentences_per_second"] > 0
    assert set(last["seconds"]) == {"score", "finetune", "save", "iteration"}
    assert last["settings"]["batch_to_add"] == 3 and last["mode"] == "warm"
    history = json.loads((uninterrupted / "history.json").read_text())
    assert history["stopped"] == "max iterations" and history["final"] == names[-1]
    assert history["chosen"]["rule"] == "highest dev F1 (earliest on ties)"
    best = max(m["dev"]["f1"] for m in found)
    assert history["chosen"]["dev"]["f1"] == best
    # the experts' effort in tokens: each selected sentence's, and cumulative in the history
    for manifest, entry in zip(found, history["iterations"], strict=True):
        assert [row["n_tokens"] for row in manifest["selected"]] == [
            LENGTHS[i] for i in manifest["added_ids"]
        ]
        assert entry["n_added_tokens"] == sum(LENGTHS[i] for i in manifest["all_added_ids"])
        assert entry["n_expert_tokens_total"] == entry["n_added_tokens"] + 7 + 5  # 10 and 11
    assert history["chosen"]["n_added_tokens"] == sum(
        LENGTHS[i] for i in found[history["chosen"]["iteration"]]["all_added_ids"]
    )


def test_rerun_with_more_iterations_runs_only_the_new_one(corpus, uninterrupted, tmp_path) -> None:
    run_loop(tiny_settings(corpus, max_iterations=2), tmp_path, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").glob("*.json")}
    assert len(before) == 3
    history = run_loop(tiny_settings(corpus, max_iterations=3), tmp_path, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").glob("*.json")}
    assert {k: after[k] for k in before} == before  # finished iterations are not redone
    assert set(after) - set(before) == {"active_iter_3_added_9.json"}
    assert len(history["iterations"]) == 4
    ids = added_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 9
    assert ids == added_ids(uninterrupted)  # the same selections as one uninterrupted run
    # a finished run started again does nothing
    run_loop(tiny_settings(corpus, max_iterations=3), tmp_path, progress=False)
    assert len(manifests(tmp_path)) == 4


def test_resume_after_a_crash_between_checkpoint_and_manifest(
    corpus, uninterrupted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tiny_settings(corpus, max_iterations=3)
    original = CheckpointStore.write_manifest

    def crash_at_iteration_2(self, manifest):
        if manifest["iteration"] == 2:
            raise KeyboardInterrupt("killed")
        return original(self, manifest)

    monkeypatch.setattr(CheckpointStore, "write_manifest", crash_at_iteration_2)
    with pytest.raises(KeyboardInterrupt):
        run_loop(settings, tmp_path, progress=False)
    monkeypatch.undo()
    folder = tmp_path / "checkpoints"
    assert (folder / "active_iter_2_added_6" / "config.cfg").exists()  # the partial checkpoint
    assert not (folder / "active_iter_2_added_6.json").exists()
    (folder / ".active_iter_2_added_6.x1y2.tmp").mkdir()  # a half-written atomic write
    history = run_loop(settings, tmp_path, progress=False)
    assert not (folder / ".active_iter_2_added_6.x1y2.tmp").exists()
    assert [entry["iteration"] for entry in history["iterations"]] == [0, 1, 2, 3]
    ids = added_ids(tmp_path)
    assert len(ids) == len(set(ids)) and ids == added_ids(uninterrupted)


def test_resume_refuses_other_settings(corpus, uninterrupted: Path, tmp_path: Path) -> None:
    shutil.copytree(uninterrupted, tmp_path / "run")
    with pytest.raises(ResumeError, match="other settings"):
        run_loop(tiny_settings(corpus, batch_to_add=2, max_iterations=4), tmp_path / "run")
    history = run_loop(
        tiny_settings(corpus, batch_to_add=2, max_iterations=1), tmp_path / "run", restart=True
    )
    assert [entry["checkpoint"] for entry in history["iterations"]][-1] == "active_iter_1_added_2"


def test_from_scratch_retrains_from_the_config(corpus, tmp_path: Path) -> None:
    finished = []
    history = run_loop(
        tiny_settings(corpus, from_scratch=True, max_iterations=1),
        tmp_path,
        progress=False,
        on_checkpoint=lambda path, manifest: finished.append((path.name, manifest["iteration"])),
    )
    assert finished == [("active_iter_0_added_0", 0), ("active_iter_1_added_3", 1)]
    manifest = manifests(tmp_path)[1]
    assert manifest["mode"] == "scratch" and manifest["epochs"] == 2  # initial_epochs
    assert history["iterations"][1]["n_added"] == 3


def test_random_strategy_with_pool_sample_and_diversity(corpus, tmp_path: Path) -> None:
    settings = tiny_settings(
        corpus, strategy="random", seed=5, pool_sample=12, max_jaccard=0.5, max_iterations=1
    )
    first = run_loop(settings, tmp_path / "a", progress=False)
    second = run_loop(settings, tmp_path / "b", progress=False)
    assert first["iterations"][1]["added_ids"] == second["iterations"][1]["added_ids"]
    assert manifests(tmp_path / "a")[1]["scoring"]["n_sentences"] == 12


def test_token_budget_loop_records_the_tokens_of_the_selected_sentences(
    corpus, tmp_path: Path
) -> None:
    settings = tiny_settings(
        corpus, strategy="entropy-per-token", budget_unit="tokens", batch_to_add=12
    )
    history = run_loop(settings, tmp_path, progress=False)
    found = manifests(tmp_path)
    assert [m["settings"]["budget_unit"] for m in found] == ["tokens"] * 3
    assert found[1]["strategy"] == "EntropyPerToken(sentence_overhead_tokens=2.0)"
    total = 0
    for manifest, entry in zip(found[1:], history["iterations"][1:], strict=True):
        lengths = [LENGTHS[i] for i in manifest["added_ids"]]
        assert [row["n_tokens"] for row in manifest["selected"]] == lengths
        assert sum(lengths) <= 12 and len(lengths) >= 1
        # filled greedily: no unselected sentence with other words would still fit
        texts = {row["text"] for row in manifest["selected"]}
        left = 12 - sum(lengths)
        unused = set(range(10, 40)) - set(INITIAL_EXPERTS) - set(manifest["all_added_ids"])
        assert all(
            LENGTHS[i] > left
            for i in unused
            if " ".join(t.text for t in gold_docs(40)[i]) not in texts
        )
        total += sum(lengths)
        assert entry["n_added_tokens"] == total
        assert entry["n_added"] == len(manifest["all_added_ids"])
        assert (
            manifest["checkpoint"] == f"active_iter_{entry['iteration']}_added_{entry['n_added']}"
        )
    assert history["iterations"][0]["n_added_tokens"] == 0


def test_llm_disagreement_needs_the_cheap_pool(corpus, tmp_path: Path) -> None:
    settings = tiny_settings(corpus, strategy="llm-disagreement")  # pool auto: rest here
    with pytest.raises(MissingLlmLabelsError, match=r"this pool has none.*\[mix\] pool = cheap"):
        run_loop(settings, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(SettingsError, match="budget_unit must be one of sentences, tokens"):
        tiny_settings(corpus, budget_unit="words")


def test_llm_disagreement_loop_scores_the_cheap_labels(corpus, tmp_path: Path) -> None:
    settings = tiny_settings(
        corpus, strategy="llm-disagreement", pool="cheap", initial_expert_ids=(0, 1)
    )
    history = run_loop(replace(settings, max_iterations=1), tmp_path, progress=False)
    assert history["pool"] == {"setting": "cheap", "size": 10}
    manifest = manifests(tmp_path)[1]
    assert manifest["strategy"] == "LlmDisagreement()"
    assert manifest["scoring"]["n_sentences"] == 8
    # the scores are those of the iteration-0 model against the cheap (LLM) labels
    nlp = load_pipeline(tmp_path / "checkpoints" / "active_iter_0_added_0")
    candidates = list(range(2, 10))
    scored = score_pool(
        nlp,
        [gold_docs(10)[i] for i in candidates],
        make_strategy("llm-disagreement"),
        llm_docs=cheap_docs(candidates),
        progress=False,
    )
    expected = dict(zip(scored.sent_ids, scored.scores.tolist(), strict=True))
    for row in manifest["selected"]:
        assert row["score"] == pytest.approx(expected[row["sent_id"]], abs=1e-6)
    best = sorted(candidates, key=lambda i: (-expected[i], i))[0]
    assert manifest["added_ids"][0] == best


def test_comparison_table_counts_sentences_to_target_and_ratio() -> None:
    def history(name: str, curve: list[tuple[int, float]]) -> dict:
        iterations = [
            {
                "iteration": i,
                "n_added": n,
                "dev": {"f1": f1},
                "seconds": {"iteration": 2.0},
                "scoring": {"sentences_per_second": 100.0},
            }
            for i, (n, f1) in enumerate(curve)
        ]
        best = max(iterations, key=lambda e: e["dev"]["f1"])
        return {
            "strategy": name,
            "n_initial_expert": 5,
            "stopped": "max iterations",
            "iterations": iterations,
            "chosen": {"checkpoint": f"active_iter_{best['iteration']}", "dev": best["dev"]},
        }

    histories = {
        "entropy": history("e", [(0, 0.5), (10, 0.6), (20, 0.8), (30, 0.85)]),
        "random": history("r", [(0, 0.5), (10, 0.55), (20, 0.6), (30, 0.62), (40, 0.81)]),
        "margin": history("m", [(0, 0.5), (10, 0.52)]),
    }
    rows = {row["strategy"]: row for row in al_compare.compare_histories(histories, 0.8)}
    assert rows["entropy"]["sentences_to_target"] == 20
    assert rows["random"]["sentences_to_target"] == 40
    assert rows["entropy"]["ratio_to_random"] == 0.5
    assert rows["margin"]["sentences_to_target"] is None
    assert rows["margin"]["ratio_to_random"] is None
    assert rows["entropy"]["curve_area"] == pytest.approx((0.5 + 0.6 + 0.8 + 0.85) / 4)
    assert rows["entropy"]["iterations"] == 3 and rows["entropy"]["best_dev_f1"] == 0.85
    # histories without token counts (recorded before them) and no gold F1: None, not an error
    assert rows["entropy"]["tokens_to_target"] is None
    assert rows["entropy"]["sentences_to_90pct"] is None


def test_comparison_counts_tokens_and_the_90_and_95_percent_targets() -> None:
    def history(curve: list[tuple[int, int, float]]) -> dict:
        iterations = [
            {
                "iteration": i,
                "n_added": n,
                "n_added_tokens": tokens,
                "dev": {"f1": f1},
                "seconds": {"iteration": 2.0},
                "scoring": {"sentences_per_second": 100.0},
            }
            for i, (n, tokens, f1) in enumerate(curve)
        ]
        best = max(iterations, key=lambda e: e["dev"]["f1"])
        return {
            "strategy": "s",
            "n_initial_expert": 5,
            "stopped": "max iterations",
            "iterations": iterations,
            "chosen": {"checkpoint": f"active_iter_{best['iteration']}", "dev": best["dev"]},
        }

    histories = {
        "entropy-per-token": history([(0, 0, 0.5), (12, 100, 0.725), (30, 200, 0.77)]),
        "random": history([(0, 0, 0.5), (7, 100, 0.6), (14, 200, 0.73), (21, 300, 0.8)]),
    }
    # gold dev F1 0.8: 90% is 0.72, 95% is 0.76
    rows = {row["strategy"]: row for row in al_compare.compare_histories(histories, 0.7, 0.8)}
    ours, random = rows["entropy-per-token"], rows["random"]
    assert (ours["sentences_to_target"], ours["tokens_to_target"]) == (12, 100)
    assert (random["sentences_to_target"], random["tokens_to_target"]) == (14, 200)
    assert ours["ratio_to_random"] == 12 / 14 and ours["tokens_ratio_to_random"] == 0.5
    assert (ours["sentences_to_90pct"], ours["tokens_to_90pct"]) == (12, 100)
    assert (ours["sentences_to_95pct"], ours["tokens_to_95pct"]) == (30, 200)
    assert (random["sentences_to_90pct"], random["tokens_to_90pct"]) == (14, 200)
    assert (random["sentences_to_95pct"], random["tokens_to_95pct"]) == (21, 300)
    assert ours["final_n_added_tokens"] == 200
    without_gold = al_compare.compare_histories(histories, 0.7)[0]
    assert without_gold["tokens_to_target"] == 100 and without_gold["tokens_to_95pct"] is None


def test_compare_strategies_end_to_end(corpus, uninterrupted: Path, tmp_path: Path) -> None:
    init_model = uninterrupted / "checkpoints" / "active_iter_0_added_0"
    gold_metrics = tmp_path / "gold.json"
    gold_metrics.write_text(json.dumps({"model": "gold", "dev": {"f1": 0.5}}))
    settings = replace(
        tiny_settings(corpus, max_iterations=1), init_model=str(init_model), init_config=None
    )
    settings = replace(settings, initial_epochs=None)
    target = al_compare.resolve_target(gold_metrics, 0.95, None)
    assert target["f1"] == pytest.approx(0.475)
    assert target["fractions"] == pytest.approx({"90pct": 0.45, "95pct": 0.475})
    given = al_compare.resolve_target(gold_metrics, 0.95, 0.3)
    assert (given["f1"], given["description"], given["reference"]["f1"]) == (0.3, "given", 0.5)
    result = al_compare.run_comparison(
        settings,
        tmp_path / "compare",
        ["entropy", "random"],
        target=target,
        evaluate_test=corpus["dev"],
        chosen_strategy="entropy",
        progress=False,
    )
    assert [row["strategy"] for row in result["rows"]] == ["entropy", "random"]
    start = {name: curve[0]["dev"]["f1"] for name, curve in result["curves"].items()}
    assert start["entropy"] == start["random"]  # the same initial model
    assert [p["n_added"] for p in result["curves"]["random"]] == [0, 3]
    # the experts' effort in tokens: the curves, the rows, the 90% and 95% targets
    random_history = json.loads((tmp_path / "compare" / "random" / "history.json").read_text())
    added = random_history["iterations"][1]["added_ids"]
    assert [p["n_added_tokens"] for p in result["curves"]["random"]] == [
        0,
        sum(LENGTHS[i] for i in added),
    ]
    for row in result["rows"]:
        curve = result["curves"][row["strategy"]]
        assert row["final_n_added_tokens"] == curve[-1]["n_added_tokens"]
        for key, f1 in (("target", 0.475), ("90pct", 0.45), ("95pct", 0.475)):
            reached = [p for p in curve if p["dev"]["f1"] >= f1]
            sentences = reached[0]["n_added"] if reached else None
            tokens = reached[0]["n_added_tokens"] if reached else None
            assert row[f"sentences_to_{key}"] == sentences, (row["strategy"], key)
            assert row[f"tokens_to_{key}"] == tokens, (row["strategy"], key)
    saved = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert saved["rows"] == result["rows"] and "95pct" in saved["target"]["fractions"]
    for name in ("comparison.json", "comparison.md", "comparison.png"):
        assert (tmp_path / "compare" / name).stat().st_size > 0
    assert (tmp_path / "compare" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "compare" / "comparison.md").read_text()
    assert "| entropy |" in table and "| random |" in table
    assert "| strategy | 90% (0.4500): sentences | tokens | 95% (0.4750): sentences | tokens |" in (
        table
    )
    # only the chosen checkpoint of the chosen strategy is scored on test
    assert result["test"]["strategy"] == "entropy"
    assert (tmp_path / "compare" / "entropy" / "test_metrics.json").exists()
    assert not (tmp_path / "compare" / "random" / "test_metrics.json").exists()


def test_strategies_in_parallel_processes_match_the_serial_run(
    corpus, uninterrupted: Path, tmp_path: Path
) -> None:
    """--processes 2 runs each strategy in its own process: same selections and scores."""
    settings = from_start_model(corpus, uninterrupted)
    runs = {}
    for processes in (1, 2):
        histories = al_compare.run_strategies(
            settings,
            tmp_path / f"p{processes}",
            ["entropy", "random"],
            processes=processes,
            progress=False,
        )
        runs[processes] = {
            name: [(e.get("added_ids", []), e["dev"]) for e in h["iterations"]]
            for name, h in histories.items()
        }
    assert list(runs[2]) == ["entropy", "random"]
    assert runs[1] == runs[2]


# -- settings from configs/al.cfg ---------------------------------------------------------------


def config_args(corpus: dict[str, Path], output: Path, *extra: str) -> list[str]:
    """The CLI arguments of a tiny run: inputs and a short loop as overrides of al.cfg."""
    args = [str(output), "--paths.cheap", str(corpus["cheap"]), "--paths.gold"]
    args += [str(corpus["gold"]), "--paths.dev", str(corpus["dev"])]
    args += ["--paths.init_config", str(TINY_CONFIG), "--paths.initial_expert_ids"]
    args += [str(corpus["ids"]), "--training.initial_epochs", "2"]
    args += ["--training.finetune_epochs", "1", "--loop.improvement_threshold", "-1"]
    return args + ["--loop.min_iterations", "1", "--loop.max_iterations", "1", *extra]


@pytest.fixture(scope="module")
def corpus_with_ids(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    ids = tmp_path_factory.mktemp("ids") / "initial.json"
    ids.write_text(json.dumps(list(INITIAL_EXPERTS)))
    return {**corpus, "ids": ids}


def test_the_defaults_are_the_study_settings() -> None:
    from nerloop.al.settings import (
        DEFAULT_CONFIG,
        STUDY_SETTINGS,
        IterationSettings,
        compare_settings,
        iteration_settings,
        load_al_config,
    )

    config = load_al_config(DEFAULT_CONFIG)
    assert {key: config["loop"][key] for key in ("batch_to_add", "min_iterations")} == {
        "batch_to_add": 10,
        "min_iterations": 10,
    }
    assert config["loop"]["max_iterations"] == STUDY_SETTINGS["max_iterations"] == 15
    assert config["loop"]["improvement_threshold"] == STUDY_SETTINGS["improvement_threshold"]
    assert config["loop"]["strategy"] == STUDY_SETTINGS["strategy"]
    assert config["loop"]["keep_checkpoints"] == 0 and config["loop"]["pool_sample"] == 0
    assert config["training"]["finetune_epochs"] == STUDY_SETTINGS["finetune_epochs"] == 2
    assert config["training"]["initial_epochs"] is None
    assert iteration_settings(config) == IterationSettings()
    assert compare_settings(config).chosen_strategy == "entropy"
    gpu = load_al_config(ROOT / "configs" / "al_gpu.cfg")
    assert gpu["loop"] == {**config["loop"], "gpu_id": 0}
    assert {name: gpu[name] for name in ("mix", "training", "compare")} == {
        name: config[name] for name in ("mix", "training", "compare")
    }


def test_al_and_al_compare_read_the_same_config(
    corpus_with_ids, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change in al.cfg's [loop] reaches both CLIs: they build the same loop settings."""
    from typer.testing import CliRunner

    from nerloop.al import loop as al_loop_module
    from scripts import al_compare as compare_cli
    from scripts import al_loop as loop_cli

    class Captured(Exception):
        pass

    seen: dict[str, LoopSettings] = {}

    def capture(name: str):
        def fake(settings: LoopSettings, *args, **kwargs) -> None:
            seen[name] = settings
            raise Captured(name)

        return fake

    monkeypatch.setattr(al_loop_module, "run_loop", capture("al"))
    monkeypatch.setattr(al_compare, "run_comparison", capture("al-compare"))
    text = (ROOT / "configs" / "al.cfg").read_text()
    assert "\nbatch_to_add = 10\n" in text and "\nmc_samples = 10\n" in text
    changed = tmp_path / "al.cfg"
    changed.write_text(text.replace("\nbatch_to_add = 10\n", "\nbatch_to_add = 4\n"))
    for path in (ROOT / "configs" / "al.cfg", changed):
        args = config_args(corpus_with_ids, tmp_path / "out", "--config", str(path))
        for app in (loop_cli.app, compare_cli.app):
            result = CliRunner().invoke(app, args)
            assert isinstance(result.exception, Captured), result.output
        assert seen["al"] == seen["al-compare"]
        assert seen["al"].batch_to_add == (10 if path.parent == ROOT / "configs" else 4)
        assert seen["al"].initial_expert_ids == INITIAL_EXPERTS
    assert not (tmp_path / "out").exists()


def test_override_changes_the_batch_and_the_resolved_config_is_written(
    corpus_with_ids, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from nerloop.al.settings import load_al_config, loop_settings, with_input_hashes
    from scripts import al_loop as loop_cli

    output = tmp_path / "run"
    args = config_args(corpus_with_ids, output, "--loop.batch_to_add", "2")
    result = CliRunner().invoke(loop_cli.app, args)
    assert result.exit_code == 0, result.output
    found = manifests(output)
    assert [m["checkpoint"] for m in found] == ["active_iter_0_added_0", "active_iter_1_added_2"]
    assert len(found[1]["added_ids"]) == 2 and found[1]["settings"]["batch_to_add"] == 2
    assert sorted(p.name for p in output.iterdir()) == ["checkpoints", "config.cfg", "history.json"]
    resolved = load_al_config(output / "config.cfg")
    assert resolved["loop"]["batch_to_add"] == 2
    assert resolved["paths"]["cheap"] == str(corpus_with_ids["cheap"])
    assert resolved["training"]["initial_epochs"] == 2
    # the resolved config is the run: started from it, the finished run resumes and does nothing
    assert with_input_hashes(loop_settings(resolved)).fingerprint() == found[-1]["fingerprint"]
    before = {p.name: p.stat().st_mtime_ns for p in (output / "checkpoints").glob("*.json")}
    again = CliRunner().invoke(loop_cli.app, [str(output), "--config", str(output / "config.cfg")])
    assert again.exit_code == 0, again.output
    after = {p.name: p.stat().st_mtime_ns for p in (output / "checkpoints").glob("*.json")}
    assert after == before


def test_bad_settings_are_one_line_errors_before_anything_is_written(
    corpus_with_ids, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from scripts import al_loop as loop_cli

    output = tmp_path / "run"
    cases = {
        ("--loop.batch_size", "3"): "[loop] has unknown settings batch_size",
        ("--hub.repo", "no-namespace"): "[hub] a Hub repo id is 'namespace/name'",
        ("--loop.batch_to_add", "0"): "batch_to_add must be at least 1, not 0",
        ("--loop.strategy", "nope"): "unknown strategy 'nope'",
        ("--loop.batch_to_add", '"10"'): "batch_to_add must be int, not '10'",
    }
    for extra, message in cases.items():
        result = CliRunner().invoke(loop_cli.app, config_args(corpus_with_ids, output, *extra))
        assert result.exit_code == 1, (extra, result.output)
        assert message in " ".join(result.output.split()), (extra, result.output)
    missing = CliRunner().invoke(
        loop_cli.app, [str(output), "--paths.gold", str(corpus_with_ids["gold"])]
    )
    assert missing.exit_code == 1 and "[paths] cheap is not set" in missing.output
    assert not output.exists()


def test_compare_runs_with_the_serial_executor_and_writes_each_config(
    corpus_with_ids, uninterrupted: Path, tmp_path: Path
) -> None:
    from spacy.cli._util import parse_config_overrides

    from nerloop.al.settings import load_al_config

    init_model = uninterrupted / "checkpoints" / "active_iter_0_added_0"
    overrides = parse_config_overrides(config_args(corpus_with_ids, tmp_path / "out")[1:])
    overrides |= {"paths.init_config": None, "paths.init_model": str(init_model)}
    overrides |= {"training.initial_epochs": None, "executor.executor": "serial"}
    overrides |= {"compare.strategies": "random,entropy", "loop.batch_to_add": 2}
    result = al_compare.run_comparison_from_config(
        ROOT / "configs" / "al.cfg", tmp_path / "out", overrides, progress=False
    )
    assert result["strategies"] == ["random", "entropy"]
    assert [p["n_added"] for p in result["curves"]["entropy"]] == [0, 2]
    assert load_al_config(tmp_path / "out" / "config.cfg")["executor"]["executor"] == "serial"
    for name in ("random", "entropy"):
        resolved = load_al_config(tmp_path / "out" / name / "config.cfg")
        assert resolved["loop"]["strategy"] == name and resolved["loop"]["batch_to_add"] == 2


def test_strategies_as_ray_tasks_match_the_serial_run(
    corpus, uninterrupted: Path, tmp_path: Path
) -> None:
    """executor ray (the grid's engine too) gives the serial run's selections and scores."""
    pytest.importorskip("ray")
    settings = from_start_model(corpus, uninterrupted)
    runs = {}
    for executor in ("serial", "ray"):
        histories = al_compare.run_strategies(
            settings,
            tmp_path / executor,
            ["entropy", "random"],
            processes=2,
            executor=executor,
            threads=1,
            progress=False,
        )
        runs[executor] = {
            name: [(e.get("added_ids", []), e["dev"]) for e in h["iterations"]]
            for name, h in histories.items()
        }
    assert list(runs["ray"]) == ["entropy", "random"]
    assert runs["serial"] == runs["ray"]


def test_seeds_are_averaged_with_their_spread_and_reach_counts() -> None:
    def row(strategy: str, best: float, to_90: int | None, ratio: float | None) -> dict:
        return {
            "strategy": strategy,
            "description": strategy,
            "n_initial_expert": 5,
            "stopped": "max iterations",
            "best_checkpoint": "active_iter_1_added_10",
            "iterations": 2,
            "final_n_added": 20,
            "final_n_added_tokens": 300,
            "final_dev_f1": best,
            "best_dev_f1": best,
            "curve_area": best,
            "seconds_per_iteration": 1.0,
            "scoring_sentences_per_second": 10.0,
            "sentences_to_target": to_90,
            "tokens_to_target": None,
            "ratio_to_random": ratio,
            "tokens_ratio_to_random": None,
            "sentences_to_90pct": to_90,
            "tokens_to_90pct": None,
            "sentences_to_95pct": None,
            "tokens_to_95pct": None,
        }

    rows = al_compare.aggregate_seeds(
        {
            0: [row("margin", 0.6, 10, 0.5), row("random", 0.5, 20, 1.0)],
            1: [row("margin", 0.8, 30, 1.5), row("random", 0.7, 20, 1.0)],
            2: [row("margin", 0.7, None, None), row("random", 0.6, None, None)],
        }
    )
    margin = rows[0]
    assert margin["strategy"] == "margin" and margin["n_seeds"] == 3
    assert margin["best_dev_f1"] == pytest.approx(0.7)
    assert margin["best_dev_f1_std"] == pytest.approx(0.1)
    # the effort is averaged over the two seeds that reached the target, and they are counted
    assert (margin["sentences_to_90pct"], margin["sentences_to_90pct_reached"]) == (20, 2)
    assert margin["sentences_to_90pct_std"] == pytest.approx(2**0.5 * 10)
    assert margin["ratio_to_random"] == pytest.approx(1.0)
    assert margin["sentences_to_95pct"] is None and margin["sentences_to_95pct_reached"] == 0
    table = al_compare.comparison_markdown(
        {
            "target": {"f1": 0.7, "description": "given"},
            "rows": rows,
            "n_initial_expert": 5,
            "seeds": [0, 1, 2],
        }
    )
    assert "| margin | 20 ± 14 (2/3) | not reached (0/3) | 1.00 ± 0.71 (2/3) |" in table
    assert "0.7000 ± 0.1000" in table and "over 3 seeds (0, 1, 2)" in table


def test_compare_over_seeds_runs_each_seed_in_its_folder(
    corpus, uninterrupted: Path, tmp_path: Path
) -> None:
    settings = from_start_model(corpus, uninterrupted)
    result = al_compare.run_comparison(
        settings,
        tmp_path / "compare",
        ["entropy", "random"],
        target={"f1": 0.3, "description": "given"},
        evaluate_test=corpus["dev"],
        chosen_strategy="entropy",
        progress=False,
        executor="serial",
        seeds=[3, 4],
    )
    assert result["seeds"] == [3, 4] and set(result["per_seed"]) == {"3", "4"}
    added = {}
    for seed in (3, 4):
        history = json.loads(
            (tmp_path / "compare" / f"seed_{seed}" / "random" / "history.json").read_text()
        )
        assert history["settings"]["seed"] == seed
        added[seed] = history["iterations"][1]["added_ids"]
    assert added[3] != added[4]  # the random baseline follows the seed
    rows = {row["strategy"]: row for row in result["rows"]}
    per_seed = [
        {r["strategy"]: r for r in result["per_seed"][s]["rows"]}["entropy"] for s in ("3", "4")
    ]
    assert rows["entropy"]["best_dev_f1"] == pytest.approx(
        (per_seed[0]["best_dev_f1"] + per_seed[1]["best_dev_f1"]) / 2
    )
    assert result["test"]["seed"] == 3
    assert (tmp_path / "compare" / "seed_3" / "entropy" / "test_metrics.json").exists()
    assert (tmp_path / "compare" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "over 2 seeds (3, 4)" in (tmp_path / "compare" / "comparison.md").read_text()

    # test F1 at fixed budgets: each seed's checkpoint with that many added, scored once
    from nerloop.al.budget_test import BudgetTestError, budget_markdown, evaluate_budgets

    n_added = result["per_seed"]["3"]["curves"]["random"][1]["n_added"]
    budgets = evaluate_budgets(
        tmp_path / "compare", corpus["dev"], [0, n_added], reference_test_f1=0.5, pool_size=20
    )
    random_row = {row["strategy"]: row for row in budgets["rows"]}["random"]
    start, after = random_row["budgets"]
    assert start["checkpoints"] == ["active_iter_0_added_0"] * 2
    assert start["test_f1"][0] == start["test_f1"][1]  # the same init model for both seeds
    assert after["checkpoints"] == [f"active_iter_1_added_{n_added}"] * 2
    assert after["test_f1_mean"] == pytest.approx(sum(after["test_f1"]) / 2)
    assert after["share_of_reference"] == pytest.approx(after["test_f1_mean"] / 0.5)
    assert after["pct_of_pool"] == pytest.approx(100 * n_added / 20)
    kept = tmp_path / "compare" / "seed_4" / "random" / "budget_test"
    kept = kept / f"active_iter_1_added_{n_added}.json"
    before = kept.stat().st_mtime_ns
    again = evaluate_budgets(tmp_path / "compare", corpus["dev"], [n_added])
    assert kept.stat().st_mtime_ns == before  # not scored again
    assert again["rows"][1]["budgets"][0]["test_f1"] == after["test_f1"]
    assert f"| random | {start['test_f1_mean']:.4f} ± 0.0000 (" in budget_markdown(budgets)
    with pytest.raises(BudgetTestError, match="no checkpoint with 999 added sentences"):
        evaluate_budgets(tmp_path / "compare", corpus["dev"], [999])
    # al-compare --output put the comparison elsewhere
    moved = tmp_path / "elsewhere.json"
    (tmp_path / "compare" / "comparison.json").rename(moved)
    with pytest.raises(BudgetTestError, match="run al-compare first"):
        evaluate_budgets(tmp_path / "compare", corpus["dev"], [n_added])
    elsewhere = evaluate_budgets(
        tmp_path / "compare", corpus["dev"], [n_added], comparison_path=moved
    )
    assert elsewhere["rows"] == again["rows"]


def test_compare_seeds_from_the_settings_file_or_the_command_line() -> None:
    from nerloop.al.settings import compare_settings, load_al_config
    from nerloop.errors import SettingsError

    config = ROOT / "configs" / "al.cfg"
    assert compare_settings(load_al_config(config)).seeds is None
    assert compare_settings(load_al_config(config, {"compare.seeds": "0,1,2"})).seeds == (0, 1, 2)
    assert compare_settings(load_al_config(config, {"compare.seeds": [5, 6]})).seeds == (5, 6)
    with pytest.raises(SettingsError, match="seeds must be distinct"):
        compare_settings(load_al_config(config, {"compare.seeds": "1,1"}))
    with pytest.raises(SettingsError, match="seeds must be integers"):
        compare_settings(load_al_config(config, {"compare.seeds": "one,two"}))


def test_final_mix_holds_every_expert_of_the_chosen_checkpoint(
    corpus, uninterrupted: Path, tmp_path: Path
) -> None:
    from spacy.vocab import Vocab

    from nerloop.al.checkpoints import open_store
    from nerloop.al.final import FinalMixError, copy_chosen, final_experts, write_final_mix
    from nerloop.corpus import meta
    from nerloop.io_utils import read_docbin

    history = json.loads((uninterrupted / "history.json").read_text())
    chosen = history["chosen"]["checkpoint"]
    manifest = json.loads(open_store(uninterrupted).manifest_path(chosen).read_text())
    experts = final_experts(uninterrupted)
    assert experts["checkpoint"] == chosen
    assert experts["expert_ids"] == list(INITIAL_EXPERTS) + manifest["all_added_ids"]
    assert experts["n_added"] == history["chosen"]["n_added"]
    summary = write_final_mix(
        uninterrupted, corpus["cheap"], corpus["gold"], tmp_path / "final.spacy",
        tmp_path / "final.json",
    )  # fmt: skip
    docs = read_docbin(tmp_path / "final.spacy", Vocab())
    by_source = {}
    for doc in docs:
        by_source.setdefault(doc.user_data["source"], set()).add(meta.sent_id(doc))
    assert by_source["expert"] == set(experts["expert_ids"])
    assert summary["from_run"]["checkpoint"] == chosen
    gold = meta.by_sent_id(read_docbin(corpus["gold"], Vocab()))
    for doc in docs:
        if doc.user_data["source"] == "expert":  # the experts' labels are the gold ones
            gold_ents = [(e.start, e.end, e.label_) for e in gold[meta.sent_id(doc)].ents]
            assert [(e.start, e.end, e.label_) for e in doc.ents] == gold_ents
    copied = copy_chosen(uninterrupted, tmp_path / "final_experiment")
    assert (copied / "config.cfg").exists()
    assert json.loads((copied / "nerloop_final.json").read_text())["checkpoint"] == chosen
    copy_chosen(uninterrupted, tmp_path / "final_experiment")  # replaces the old copy
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(FinalMixError, match="run the active learning loop first"):
        final_experts(tmp_path)
