"""Learning from noisy cheap labels (nerloop.noisy): exact weights and relabels from given
probabilities, expert sentences untouched, counts kept, seeds, the mix CLI and the init model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.errors import SettingsError
from nerloop.eval.metrics import doc_to_iob2
from nerloop.eval.pipeline import load_pipeline, predict_with_probs, tagger_of
from nerloop.io_utils import read_docbin
from nerloop.mixing import mix_corpus, mix_files, noisy_report_path
from nerloop.noisy import (
    Disagreement,
    Judgement,
    JudgementError,
    NoisySettings,
    apply_noisy,
    confident_everywhere,
    confident_types,
    disagreement,
    downweight_factor,
    downweight_from_judgements,
    droptypes_from_judgements,
    judge,
    mix_files_noisy,
    own_tag_confidences,
    read_noisy_section,
    relabel_from_judgements,
)
from nerloop.settings import load_settings
from tests.test_mix import run_mix_cli
from tests.tiny_corpus import cheap_docs, gold_docs, write_tiny_corpus
from tests.tiny_tagger import TINY_CONFIG, train_tiny_tagger

ROOT = Path(__file__).resolve().parent.parent
KFOLD_CONFIG = ROOT / "configs" / "kfold.cfg"
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def entities(doc: Doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


def judged(tags: list[str], confidences: list[float]) -> Judgement:
    """A judgement with the entities of its IOB2 tags."""
    doc = Doc(Vocab(), words=[f"w{i}" for i in range(len(tags))], ents=tags)
    return Judgement(
        tags=tags,
        confidences=numpy.asarray(confidences),
        entities=[(ent.start, ent.end, ent.label_) for ent in doc.ents],
    )


def docbin_bytes(docs: list[Doc]) -> bytes:
    doc_bin = DocBin(store_user_data=True)
    for doc in docs:
        doc_bin.add(doc)
    return doc_bin.to_bytes()


@pytest.fixture
def mixed() -> list[Doc]:
    """Cheap sentences 0-3 (weight 0.5: LOC called ORG, MISC missed) and the expert sentences
    4 and 6 (weight 2.0, gold labels)."""
    vocab = Vocab()
    corpus = mix_corpus(
        cheap_docs([0, 1, 2, 3], vocab),
        gold_docs(8, vocab),
        [4, 6],
        cheap_weight=0.5,
        expert_weight=2.0,
    )
    return corpus.docs


def disagreeing_judgements() -> dict[int, Judgement]:
    """Hand-made judgements of the ``mixed`` sentences (the experts' are wrong on purpose)."""
    return {
        # Peter Blackburn visited Paris . -- Paris is LOC, at 0.95 (1 token of 5 differs)
        0: judged(["B-PER", "I-PER", "O", "B-LOC", "O"], [0.9, 0.9, 0.9, 0.95, 0.9]),
        # The EU rejects German beef . -- "German beef" MISC at 0.8 and 0.99 (2 of 6)
        1: judged(["O", "B-ORG", "O", "B-MISC", "I-MISC", "O"], [0.99, 0.5, 0.99, 0.8, 0.99, 0.99]),
        # Anna works for Reuters in London . -- no entity at all, at 0.99 (3 of 7 differ)
        2: judged(["O"] * 7, [0.99] * 7),
        # Results of the match . -- agrees
        3: judged(["O"] * 5, [0.99] * 5),
        4: judged(["O"] * 5, [1.0] * 5),
        6: judged(["O"] * 7, [1.0] * 7),
    }


# -- the scoring helpers ---------------------------------------------------------------------------


def test_own_tag_confidences_pick_the_chosen_column() -> None:
    probs = numpy.array([[0.7, 0.2, 0.1] + [0.0] * 6, [0.1, 0.0, 0.6, 0.3] + [0.0] * 5])
    assert own_tag_confidences(probs, ["O", "I-PER"], TAGS).tolist() == [0.7, 0.6]
    # the decoder's tag, not the top one: B-LOC after a constraint overrode I-PER
    assert own_tag_confidences(probs, ["B-PER", "B-LOC"], TAGS).tolist() == [0.2, 0.3]
    assert own_tag_confidences(numpy.zeros((0, 9)), [], TAGS).tolist() == []


def test_disagreement_mean_and_max_on_the_differing_tokens_only() -> None:
    cheap = ["B-PER", "I-PER", "O", "B-ORG", "O", "O"]
    model = ["B-PER", "I-PER", "O", "B-LOC", "B-MISC", "O"]
    confidences = [0.1, 0.1, 0.1, 0.95, 0.75, 0.1]
    mean = disagreement(cheap, model, confidences, threshold=0.85)
    assert mean == Disagreement(n_tokens=6, n_differ=2, confidence=0.85, confident=True)
    assert mean.share == 2 / 6 and downweight_factor(mean, floor=0.1) == 1 - 2 / 6
    assert not disagreement(cheap, model, confidences, threshold=0.86).confident
    highest = disagreement(cheap, model, confidences, threshold=0.95, aggregate="max")
    assert highest.confidence == 0.95 and highest.confident
    assert downweight_factor(highest, floor=0.9) == 0.9  # never below the floor
    agreed = disagreement(cheap, cheap, confidences, threshold=0.0001)
    assert agreed == Disagreement(6, 0, None, False) and downweight_factor(agreed, 0.1) == 1.0
    empty = disagreement([], [], [], threshold=0.5)
    assert empty.share == 0.0 and downweight_factor(empty, 0.1) == 1.0
    with pytest.raises(JudgementError, match="2 cheap tags, 1 judged tags and 2 confidences"):
        disagreement(["O", "O"], ["O"], [0.5, 0.5], threshold=0.5)


def test_confident_everywhere_and_confident_types() -> None:
    assert confident_everywhere([0.9, 0.95], 0.9) and not confident_everywhere([0.9, 0.89], 0.9)
    assert not confident_everywhere([], 0.5)  # an empty sentence is never relabelled
    judgements = disagreeing_judgements()
    assert confident_types(judgements, 0.9) == {"PER", "LOC"}  # MISC has a 0.8, ORG a 0.5
    assert confident_types(judgements, 0.8) == {"PER", "LOC", "MISC"}
    assert confident_types(judgements, 0.5) == {"PER", "LOC", "MISC", "ORG"}


def test_settings_are_checked() -> None:
    assert read_noisy_section(None) == NoisySettings() and not NoisySettings().active
    settings = read_noisy_section({"method": "downweight", "threshold": 1, "aggregate": "max"})
    assert settings == NoisySettings("downweight", 1.0, 0.1, "max") and settings.active
    assert str(settings) == "downweight(threshold=1, floor=0.1, aggregate=max)"
    assert str(NoisySettings("relabel", 0.95)) == "relabel(threshold=0.95)"
    with pytest.raises(SettingsError, match=r"kfold.cfg: \[noisy\] has unknown settings treshold"):
        read_noisy_section({"treshold": 0.9}, "kfold.cfg")
    with pytest.raises(SettingsError, match=r"\[noisy\] noisy threshold must be in \(0, 1\]"):
        read_noisy_section({"method": "relabel", "threshold": 0})
    with pytest.raises(SettingsError, match="noisy floor must be in"):
        NoisySettings("downweight", floor=1.5)
    with pytest.raises(SettingsError, match="noisy method must be one of none, downweight"):
        NoisySettings("reweight")
    with pytest.raises(SettingsError, match="noisy aggregate must be one of mean, max"):
        NoisySettings("downweight", aggregate="median")
    with pytest.raises(SettingsError, match="noisy threshold must be a number"):
        NoisySettings("relabel", threshold=True)


# -- the methods on given judgements ---------------------------------------------------------------


def test_downweight_gives_exact_weights_and_leaves_experts_alone(mixed: list[Doc]) -> None:
    before = docbin_bytes(mixed)
    settings = NoisySettings("downweight", threshold=0.9, floor=0.1)
    result = downweight_from_judgements(mixed, disagreeing_judgements(), settings)
    assert docbin_bytes(mixed) == before  # the inputs are not changed
    ids = [meta.sent_id(doc) for doc in result.docs]
    assert ids == [0, 1, 2, 3, 4, 6]  # counts in == counts out, same order
    weights = {meta.sent_id(doc): meta.weight(doc) for doc in result.docs}
    # 0: 0.95 on 1 of 5 tokens -> x 0.8; 1: mean 0.895 < 0.9 -> kept; 2: 3 of 7 -> x 4/7
    assert weights == {0: 0.5 * 0.8, 1: 0.5, 2: 0.5 * (1 - 3 / 7), 3: 0.5, 4: 2.0, 6: 2.0}
    assert [entities(a) for a in result.docs] == [entities(b) for b in mixed]
    report = result.report
    assert report["n_docs_in"] == report["n_docs_out"] == 6
    assert (report["n_cheap"], report["n_untouched_other"]) == (4, 2)
    assert report["n_disagreeing"] == 3 and report["reweighted_ids"] == [0, 2]
    assert report["n_reweighted"] == report["n_changed"] == 2
    assert report["mean_cheap_weight_before"] == 0.5
    assert report["mean_cheap_weight"] == pytest.approx((0.4 + 0.5 + 0.5 * 4 / 7 + 0.5) / 4)
    assert report["entities_added"] == report["entities_removed"] == 0
    json.dumps(report)

    highest = NoisySettings("downweight", threshold=0.9, floor=0.6, aggregate="max")
    weights = {
        meta.sent_id(doc): meta.weight(doc)
        for doc in downweight_from_judgements(mixed, disagreeing_judgements(), highest).docs
    }
    # 1: max 0.99 -> x (1 - 2/6); 2: 1 - 3/7 is below the floor -> x 0.6
    assert weights == {0: 0.5 * 0.8, 1: 0.5 * (1 - 2 / 6), 2: 0.5 * 0.6, 3: 0.5, 4: 2.0, 6: 2.0}


def test_relabel_replaces_only_confident_sentences(mixed: list[Doc]) -> None:
    settings = NoisySettings("relabel", threshold=0.9)
    result = relabel_from_judgements(mixed, disagreeing_judgements(), settings)
    by_id = meta.by_sent_id(result.docs)
    assert [meta.sent_id(doc) for doc in result.docs] == [0, 1, 2, 3, 4, 6]
    assert entities(by_id[0]) == [("Peter Blackburn", "PER"), ("Paris", "LOC")]
    assert entities(by_id[1]) == [("EU", "ORG")]  # a 0.5 token: kept as the LLM labelled it
    assert entities(by_id[2]) == []  # relabelled to no entity, but kept
    assert entities(by_id[3]) == []
    # the experts keep their gold labels although their judgements say "no entity"
    assert entities(by_id[4]) == [("Peter Blackburn", "PER"), ("Paris", "LOC")]
    assert entities(by_id[6]) == [("Anna", "PER"), ("Reuters", "ORG"), ("London", "LOC")]
    annotators = {key: doc.user_data[meta.ANNOTATOR] for key, doc in by_id.items()}
    assert annotators == {
        0: "self_training",
        1: "fakellm",
        2: "self_training",
        3: "fakellm",
        4: "gold",
        6: "gold",
    }
    relabelled = by_id[0].user_data
    assert (relabelled[meta.SENT_ID], relabelled[meta.DOC_ID], relabelled[meta.SOURCE]) == (
        0,
        0,
        "cheap",
    )
    assert {meta.weight(doc) for doc in result.docs} == {0.5, 2.0}
    assert doc_to_iob2(by_id[0]) == disagreeing_judgements()[0].tags
    report = result.report
    assert report["n_confident"] == 3 and report["relabelled_ids"] == [0, 2]
    assert report["n_relabelled"] == report["n_changed"] == 2 and report["n_confirmed"] == 1
    assert report["n_emptied"] == 1
    # Paris ORG -> LOC: one added, one removed; Anna, Reuters and London removed
    assert (report["entities_added"], report["entities_removed"]) == (1, 4)
    assert report["n_docs_in"] == report["n_docs_out"] == 6


def test_droptypes_removes_the_types_never_predicted_confidently(mixed: list[Doc]) -> None:
    result = droptypes_from_judgements(
        mixed, disagreeing_judgements(), NoisySettings("droptypes", threshold=0.9)
    )
    by_id = meta.by_sent_id(result.docs)
    assert entities(by_id[0]) == [("Peter Blackburn", "PER")]
    assert entities(by_id[1]) == []  # its only entity was ORG; the sentence stays
    assert entities(by_id[2]) == [("Anna", "PER")]
    assert entities(by_id[6]) == [("Anna", "PER"), ("Reuters", "ORG"), ("London", "LOC")]
    report = result.report
    assert report["confident_types"] == ["LOC", "PER"] and report["dropped_types"] == ["ORG"]
    assert report["changed_ids"] == [0, 1, 2] and report["entities_removed"] == 4
    assert report["entities_removed_by_type"] == {"ORG": 4}
    assert report["n_docs_in"] == report["n_docs_out"] == 6


def test_a_cheap_sentence_without_its_judgement_is_an_error(mixed: list[Doc]) -> None:
    judgements = disagreeing_judgements()
    del judgements[2]
    with pytest.raises(JudgementError, match="cheap sentence 2 has no judgement"):
        relabel_from_judgements(mixed, judgements, NoisySettings("relabel"))
    judgements[2] = judged(["O"] * 5, [0.9] * 5)
    with pytest.raises(JudgementError, match="cheap sentence 2 has 7 tokens but its judgement 5"):
        downweight_from_judgements(mixed, judgements, NoisySettings("downweight"))


# -- with a trained tagger as the judge ------------------------------------------------------------


@pytest.fixture(scope="module")
def judge_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tagger trained on gold sentences: it calls Paris LOC where the LLM said ORG."""
    return train_tiny_tagger(tmp_path_factory.mktemp("judge"))


def test_judge_reads_the_taggers_own_probabilities(judge_model: Path, mixed: list[Doc]) -> None:
    nlp = load_pipeline(judge_model)
    judgements = judge(nlp, mixed)
    assert sorted(judgements) == [0, 1, 2, 3]  # the cheap sentences only
    cheap = [doc for doc in mixed if doc.user_data[meta.SOURCE] == "cheap"]
    predicted, probs = predict_with_probs(nlp, cheap, progress=False)
    names = tagger_of(nlp).tag_names
    for doc, tagged, doc_probs in zip(cheap, predicted, probs, strict=True):
        judgement = judgements[meta.sent_id(doc)]
        assert judgement.tags == doc_to_iob2(tagged)
        assert judgement.entities == [(e.start, e.end, e.label_) for e in tagged.ents]
        columns = [names.index(tag) for tag in judgement.tags]
        assert judgement.confidences.tolist() == [
            float(doc_probs[i, column]) for i, column in enumerate(columns)
        ]
    assert judgements[0].tags == ["B-PER", "I-PER", "O", "B-LOC", "O"]


def test_methods_with_the_tiny_tagger_are_exact_and_seeded(
    judge_model: Path, mixed: list[Doc]
) -> None:
    nlp = load_pipeline(judge_model)
    settings = NoisySettings("downweight", threshold=0.75, floor=0.1)
    first = apply_noisy(mixed, nlp, settings, seed=3)
    again = apply_noisy(mixed, load_pipeline(judge_model), settings, seed=3)
    assert docbin_bytes(first.docs) == docbin_bytes(again.docs) and first.report == again.report
    # Paris: LOC for the judge (confidence ~0.78), ORG for the LLM; the MISC and London
    # disagreements are below 0.75
    assert first.report["reweighted_ids"] == [0] and first.report["seed"] == 3
    weights = [meta.weight(doc) for doc in first.docs]
    assert weights == [0.5 * 0.8, 0.5, 0.5, 0.5, 2.0, 2.0]
    relabelled = apply_noisy(mixed, nlp, NoisySettings("relabel", threshold=0.5))
    assert relabelled.report["relabelled_ids"] == [0] and relabelled.report["n_confirmed"] == 1
    assert entities(relabelled.docs[0]) == [("Peter Blackburn", "PER"), ("Paris", "LOC")]
    assert [entities(doc) for doc in relabelled.docs[4:]] == [entities(d) for d in mixed[4:]]
    unchanged = apply_noisy(mixed, None, NoisySettings())
    assert docbin_bytes(unchanged.docs) == docbin_bytes(mixed)
    with pytest.raises(SettingsError, match="noisy method relabel needs a judge model"):
        apply_noisy(mixed, None, NoisySettings("relabel"))


def test_mix_files_writes_the_noisy_report_beside_the_corpus(
    tmp_path: Path, judge_model: Path
) -> None:
    paths = write_tiny_corpus(tmp_path / "corpus")
    settings = NoisySettings("downweight", threshold=0.75)
    outputs = []
    for name in ("a", "b"):
        summary = mix_files_noisy(
            paths["cheap"],
            paths["gold"],
            tmp_path / f"{name}.spacy",
            tmp_path / f"{name}.json",
            expert_ids=[12, 30],
            cheap_weight=0.5,
            noisy=settings,
            judge_model=judge_model,
        )
        outputs.append((tmp_path / f"{name}.spacy").read_bytes())
    assert outputs[0] == outputs[1]
    report_path = tmp_path / "b.noisy.json"
    assert noisy_report_path(tmp_path / "b.spacy") == report_path
    report = json.loads(report_path.read_text())
    assert summary["noisy"] == {
        "method": "downweight",
        "settings": settings.as_dict(),
        "judge_model": str(judge_model),
        "n_changed": 3,
        "report": str(report_path),
    }
    assert summary["counts"] == {"cheap": 10, "expert": 2}
    assert report["n_docs_in"] == report["n_docs_out"] == summary["n_docs"] == 12
    # cheap sentences 0, 4 and 8 are "Peter Blackburn visited Paris ."
    assert report["reweighted_ids"] == [0, 4, 8] and report["judge_model"] == str(judge_model)
    docs = read_docbin(tmp_path / "b.spacy")
    weights = {meta.sent_id(doc): meta.weight(doc) for doc in docs}
    assert weights == {**{i: 0.5 for i in range(10)}, 0: 0.4, 4: 0.4, 8: 0.4, 12: 1.0, 30: 1.0}
    # mixed again without a method: the stale report goes
    mix_files(paths["cheap"], paths["gold"], tmp_path / "b.spacy", tmp_path / "b.json", budget=1)
    assert not report_path.exists() and "noisy" not in json.loads((tmp_path / "b.json").read_text())
    inputs = (paths["cheap"], paths["gold"], tmp_path / "c.spacy", tmp_path / "c.json")
    with pytest.raises(SettingsError, match="needs a judge: give --judge-model PATH"):
        mix_files_noisy(*inputs, budget=1, noisy=settings)
    with pytest.raises(SettingsError, match="--judge-model is only used with --noisy"):
        mix_files_noisy(*inputs, budget=1, noisy=NoisySettings(), judge_model=judge_model)
    assert not any((tmp_path / name).exists() for name in ("c.spacy", "c.json", "c.noisy.json"))


def test_mix_cli_with_noisy_downweight_writes_the_report(
    tmp_path: Path, judge_model: Path, monkeypatch, capsys
) -> None:
    paths = write_tiny_corpus(tmp_path / "corpus")
    args = [str(paths["cheap"]), str(paths["gold"]), str(tmp_path / "mixed.spacy")]
    args += ["--summary", str(tmp_path / "s.json"), "--budget", "2", "--seed", "1"]
    noisy = ["--noisy", "downweight", "--noisy-threshold", "0.75", "--noisy-floor", "0.5"]
    code, out = run_mix_cli([*args, *noisy, "--judge-model", str(judge_model)], monkeypatch, capsys)
    assert code == 0, out
    report = json.loads((tmp_path / "mixed.noisy.json").read_text())
    assert report["method"] == "downweight" and report["reweighted_ids"] == [0, 4, 8]
    assert report["settings"] == {
        "method": "downweight",
        "threshold": 0.75,
        "floor": 0.5,
        "aggregate": "mean",
    }
    assert report["seed"] == 1 and report["n_docs_out"] == 12
    assert "downweight(threshold=0.75, floor=0.5, aggregate=mean): 3 cheap sentences changed" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["noisy"]["report"] == str(tmp_path / "mixed.noisy.json")
    code, out = run_mix_cli(
        [*args, "--noisy", "downweight", "--summary", str(tmp_path / "t.json")],
        monkeypatch,
        capsys,
    )
    assert code == 1 and "needs a judge: give --judge-model PATH" in out
    code, out = run_mix_cli(
        [*args, "--noisy", "reweight", "--judge-model", str(judge_model)], monkeypatch, capsys
    )
    assert code == 1 and "noisy method must be one of none, downweight, relabel" in out
    assert not (tmp_path / "t.json").exists()


# -- the init model --------------------------------------------------------------------------------


def init_settings(tmp_path: Path, noisy: str) -> Path:
    """configs/kfold.cfg with its [noisy] section (the last one) replaced by ``noisy``."""
    settings = tmp_path / "kfold_noisy.cfg"
    base = KFOLD_CONFIG.read_text(encoding="utf8").split("\n[noisy]\n")[0]
    settings.write_text(base + "\n[noisy]\n" + noisy)
    return settings


def test_init_model_judges_the_cheap_labels_with_the_llm_only_model(
    tmp_path: Path, judge_model: Path
) -> None:
    from nerloop.budget.init_model import train_init_models

    paths = write_tiny_corpus(tmp_path / "corpus")
    settings = init_settings(tmp_path, 'method = "relabel"\nthreshold = 0.5\n')
    overrides = {
        "paths.cheap": str(paths["cheap"]),
        "paths.gold": str(paths["gold"]),
        "paths.dev": str(paths["dev"]),
        "paths.test": str(paths["dev"]),  # dev only: no test file is read
        "paths.init_model": str(judge_model),
        "init.budgets": "20",
        "init.epochs": 1,
        "init.training_dir": str(tmp_path / "training"),
        "init.corpus_dir": str(tmp_path / "mixed"),
        "init.metrics_dir": str(tmp_path / "metrics"),
    }
    index = train_init_models(load_settings(settings, overrides), progress=False)
    assert sorted(index["models"]) == ["init_20"]
    report_path = tmp_path / "mixed" / "init_20.noisy.json"
    report = json.loads(report_path.read_text())
    assert report["method"] == "relabel" and report["judge_model"] == str(judge_model)
    assert report["relabelled_ids"] == [0, 4, 8] and report["n_docs_out"] == 12
    provenance = json.loads((tmp_path / "mixed" / "init_20.json").read_text())
    assert provenance["noisy"]["n_changed"] == 3 and provenance["counts"]["cheap"] == 10
    docs = meta.by_sent_id(read_docbin(tmp_path / "mixed" / "init_20.spacy"))
    assert len(docs) == 12 and docs[4].user_data[meta.ANNOTATOR] == "self_training"
    assert entities(docs[4]) == [("Peter Blackburn", "PER"), ("Paris", "LOC")]
    metrics = json.loads((tmp_path / "metrics" / "init_20.json").read_text())
    assert metrics["expert_budget"]["noisy"]["report"] == str(report_path)
    history = json.loads((tmp_path / "training" / "init_20" / "history.json").read_text())
    assert history["settings"]["noisy"]["method"] == "relabel"
    resolved = load_settings(tmp_path / "training" / "init_20" / "config.cfg")
    assert resolved["noisy"] == {"method": "relabel", "threshold": 0.5}
    # the noisy settings are part of the fingerprint: another threshold trains again
    train_init_models(load_settings(settings, {**overrides, "noisy.threshold": 0.99}))
    again = json.loads((tmp_path / "metrics" / "init_20.json").read_text())
    assert again["fingerprint"] != metrics["fingerprint"]
    assert json.loads(report_path.read_text())["relabelled_ids"] == []  # none is that sure

    scratch = {**overrides, "paths.init_model": None, "paths.train_config": str(TINY_CONFIG)}
    with pytest.raises(SettingsError, match="needs the LLM-only model as its judge"):
        train_init_models(load_settings(settings, scratch), progress=False)
    typo = init_settings(tmp_path, 'method = "relabel"\ntreshold = 0.5\n')
    with pytest.raises(SettingsError, match=r"kfold_noisy.cfg: \[noisy\] has unknown settings"):
        train_init_models(load_settings(typo, overrides), source=typo, progress=False)
