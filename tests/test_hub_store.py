"""Checkpoints on the Hugging Face Hub, against a fake Hub on loopback (tests/fake_hf_hub.py)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest
from typer.testing import CliRunner

from nerloop import hub as hub_store
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.hub import (
    CheckpointNotFoundError,
    HubAuthError,
    HubCheckpointStore,
    HubSettings,
    HubTokenMissingError,
    load_checkpoint,
    push_to_hub,
)
from scripts import hub_store as hub_cli
from tests.cli_support import run_cli
from tests.fake_hf_hub import FakeHub
from tests.tiny_tagger import sentence_docs, train_tiny_tagger

TOKEN = "hf_fakeTokenForTests0123456789abcdef"
REPO = "nerloop-test/tiny-al"
BRANCH = "active_iter_1_added_10"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_tagger(tmp_path_factory.mktemp("hub_model"), max_epochs=10)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A fresh fake Hub; the environment of a user with a valid token and an empty cache."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub(tokens=(TOKEN,)) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def predictions(nlp) -> tuple[list[list[tuple[str, str]]], list[numpy.ndarray]]:
    predicted, probs = predict_with_probs(nlp, sentence_docs(), progress=False)
    return [[(e.text, e.label_) for e in doc.ents] for doc in predicted], probs


def all_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def assert_token_not_written(folder: Path, token: str = TOKEN) -> int:
    """Every file under ``folder`` (the cache's symlinks resolved) is free of the token."""
    files = all_files(folder)
    for path in files:
        assert token.encode() not in path.read_bytes(), f"the token was written to {path}"
    return len(files)


def test_push_to_branch_and_load_back_identical(
    hub: FakeHub, tiny_model: Path, tmp_path: Path
) -> None:
    store = HubCheckpointStore(tmp_path / "checkpoints", HubSettings(REPO))
    saved = store.add(tiny_model, BRANCH)
    assert saved == tmp_path / "checkpoints" / BRANCH
    # on the Hub: a private repo, the branch, the pipeline's files byte for byte
    repo = hub.repos[REPO]
    assert repo.private and set(repo.branches) == {"main", BRANCH}
    local = {p.relative_to(tiny_model).as_posix(): p.read_bytes() for p in all_files(tiny_model)}
    pushed = hub.files(REPO, BRANCH)
    assert {path: pushed[path] for path in local} == local
    assert set(pushed) - set(local) == {".gitattributes"}
    assert hub.files(REPO, "main") == {".gitattributes": b"*.bin filter=lfs\n"}
    record = store.manifest()[BRANCH]
    assert record["commit"] == repo.branches[BRANCH]
    assert record["repo_id"] == REPO and record["endpoint"] == hub.url
    assert record["n_files"] == len(local)
    # every request carried the token
    assert hub.authorizations() == {f"Bearer {TOKEN}"}
    assert [r.status for r in hub.requests] == [200] * len(hub.requests)
    # loaded back from the Hub (into an empty cache) and from the local store: same predictions
    expected_ents, expected_probs = predictions(load_pipeline(tiny_model))
    assert sum(len(ents) for ents in expected_ents) > 0
    for nlp in (
        load_checkpoint(REPO, BRANCH),
        load_checkpoint(tmp_path / "checkpoints", BRANCH),
        store.load(BRANCH),
    ):
        ents, probs = predictions(nlp)
        assert ents == expected_ents
        for got, want in zip(probs, expected_probs, strict=True):
            numpy.testing.assert_array_equal(got, want)
    cached = list((tmp_path / "hf_home" / "hub").glob("models--nerloop-test--tiny-al/refs/*"))
    assert [path.name for path in cached] == [BRANCH]


def test_each_checkpoint_gets_its_own_branch(hub: FakeHub, tiny_model: Path, tmp_path: Path):
    store = HubCheckpointStore(tmp_path / "checkpoints", HubSettings(REPO, endpoint=hub.url))
    nlp = load_pipeline(tiny_model)
    store.save(nlp, "active_iter_0_added_0")
    store.save(nlp, "active_iter_1_added_10")
    store.save(nlp, "active_iter_1_added_10")  # a rerun pushes a new commit to the same branch
    assert set(hub.repos[REPO].branches) == {
        "main",
        "active_iter_0_added_0",
        "active_iter_1_added_10",
    }
    assert store.branches() == ["active_iter_0_added_0", "active_iter_1_added_10"]
    assert sorted(store.manifest()) == store.branches()
    commits = [r.path for r in hub.requests if "/commit/" in r.path]
    assert commits == [
        f"/api/models/{REPO}/commit/active_iter_0_added_0",
        f"/api/models/{REPO}/commit/active_iter_1_added_10",
        f"/api/models/{REPO}/commit/active_iter_1_added_10",
    ]
    assert store.manifest()[BRANCH]["commit"] == hub.repos[REPO].branches[BRANCH]


def test_push_to_hub_mirrors_a_folder_of_another_store(
    hub: FakeHub, tiny_model: Path, tmp_path: Path
) -> None:
    """A loop that writes its own ``checkpoints/<branch>/`` folders pushes each with push_to_hub."""
    folder = tmp_path / "run" / "checkpoints" / BRANCH
    shutil.copytree(tiny_model, folder)
    record = push_to_hub(folder, BRANCH, HubSettings(REPO, private=False))
    assert record["commit"] == hub.repos[REPO].branches[BRANCH]
    assert not hub.repos[REPO].private
    expected = predictions(load_pipeline(tiny_model))[0]
    assert predictions(load_checkpoint(REPO, BRANCH))[0] == expected
    assert predictions(load_checkpoint(tmp_path / "run" / "checkpoints", BRANCH))[0] == expected


def test_large_weights_upload_and_download_intact(
    hub: FakeHub, tiny_model: Path, tmp_path: Path
) -> None:
    """Files of any size take the regular (inline) commit path: the fake answers no LFS."""
    folder = tmp_path / "big"
    shutil.copytree(tiny_model, folder)
    weights = numpy.random.default_rng(0).bytes(12 * 1024 * 1024)
    (folder / "bio_ner" / "extra_weights.bin").write_bytes(weights)
    push_to_hub(folder, BRANCH, HubSettings(REPO))
    snapshot = hub_store.download_checkpoint(REPO, BRANCH, TOKEN)
    assert (snapshot / "bio_ner" / "extra_weights.bin").read_bytes() == weights
    assert not [r for r in hub.requests if "lfs" in r.path or "xet" in r.path]


def test_token_never_written(
    hub: FakeHub, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not in the store, its manifest, the download cache, a DEBUG log, errors or CLI output."""
    log_file = tmp_path / "logs" / "run.log"
    log_file.parent.mkdir()
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    try:
        store = HubCheckpointStore(tmp_path / "checkpoints", HubSettings(REPO))
        store.add(tiny_model, BRANCH)
        load_checkpoint(REPO, BRANCH, cache_dir=tmp_path / "cache")
        pulled = runner.invoke(hub_cli.app, ["pull", REPO, BRANCH, str(tmp_path / "pulled")])
        pushed = runner.invoke(hub_cli.app, ["push", str(tiny_model), "cli_branch", "--repo", REPO])
        with pytest.raises(CheckpointNotFoundError) as missing:
            load_checkpoint(REPO, "no_such_branch")
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()
    assert pulled.exit_code == 0, pulled.output
    assert pushed.exit_code == 0, pushed.output
    assert hub.authorizations() == {f"Bearer {TOKEN}"}  # it was sent ...
    n_files = assert_token_not_written(tmp_path)  # ... and never written
    assert n_files > 40  # the store, the manifest, two caches, the pulled copy, the log
    assert (tmp_path / "checkpoints" / hub_store.MANIFEST_NAME).exists()
    assert log_file.stat().st_size > 0
    texts = [record.getMessage() for record in caplog.records]
    texts += [pulled.output, pushed.output, str(missing.value), repr(store)]
    assert not [text for text in texts if TOKEN in text]


def test_wrong_token_is_a_clear_401(
    hub: FakeHub, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HubCheckpointStore(tmp_path / "checkpoints", HubSettings(REPO))
    store.add(tiny_model, BRANCH)
    load_checkpoint(REPO, BRANCH)  # cached now: a rejected token must still be an error
    wrong = "hf_expiredToken_000000000000"
    monkeypatch.setenv("HF_TOKEN", wrong)
    with pytest.raises(HubAuthError) as pushing:
        store.push(BRANCH)
    with pytest.raises(HubAuthError) as loading:
        load_checkpoint(REPO, BRANCH)
    for err in (pushing.value, loading.value):
        message = str(err)
        assert "401" in message and "$HF_TOKEN" in message and REPO in message
        assert wrong not in message
    assert "cannot push to" in str(pushing.value) and "cannot download" in str(loading.value)
    assert hub.requests[-1].authorization == f"Bearer {wrong}"
    assert hub.requests[-1].status == 401


def test_unknown_branch_is_a_clear_404(hub: FakeHub, tiny_model: Path, tmp_path: Path) -> None:
    HubCheckpointStore(tmp_path / "checkpoints", HubSettings(REPO)).add(tiny_model, BRANCH)
    with pytest.raises(CheckpointNotFoundError) as caught:
        load_checkpoint(REPO, "active_iter_9_added_90")
    assert str(caught.value) == (
        f"cannot download {REPO}@active_iter_9_added_90 on {hub.url}: "
        "the repo has no branch 'active_iter_9_added_90' (404)"
    )
    with pytest.raises(CheckpointNotFoundError, match="repository 'nobody/nothing' not found"):
        load_checkpoint("nobody/nothing", BRANCH)
    with pytest.raises(CheckpointNotFoundError) as local:
        load_checkpoint(tmp_path / "checkpoints", "active_iter_9_added_90")
    assert f"checkpoints: {BRANCH}" in str(local.value)


def test_private_repo_without_token(
    hub: FakeHub, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    HubCheckpointStore(tmp_path / "checkpoints", HubSettings(REPO)).add(tiny_model, BRANCH)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(CheckpointNotFoundError, match=r"no token was sent.*\$HF_TOKEN"):
        load_checkpoint(REPO, BRANCH)
    assert hub.requests[-1].authorization is None


def test_missing_token_stops_before_anything_is_stored(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("NERLOOP_HUB_TOKEN", TOKEN)
    with pytest.raises(HubTokenMissingError, match="HF_TOKEN holds no token"):
        HubCheckpointStore(tmp_path / "checkpoints", HubSettings(REPO))
    # the variable's name is configurable
    store = HubCheckpointStore(
        tmp_path / "checkpoints", HubSettings(REPO, token_env="NERLOOP_HUB_TOKEN")
    )
    assert store.hub.token_env == "NERLOOP_HUB_TOKEN"
    assert hub.requests == [] and not (tmp_path / "checkpoints").exists()
    # no Hub configured: a plain local store, no token needed
    assert HubCheckpointStore(tmp_path / "local").branches() == []


@pytest.mark.parametrize("branch", ["../escape", "", "a/b", "x.lock", ".hidden"])
def test_branch_names_are_checked(branch: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid checkpoint branch name"):
        HubCheckpointStore(tmp_path).path(branch)


def test_endpoint_comes_from_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub_store.resolve_endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert hub_store.resolve_endpoint() == "http://127.0.0.1:9"
    assert hub_store.resolve_endpoint("http://mirror:8080") == "http://mirror:8080"
    assert hub_store.public_endpoint("https://user:secret@hub.example/") == "https://hub.example/"


def test_cli_push_and_pull(hub: FakeHub, tiny_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result: Any = runner.invoke(
        hub_cli.app,
        ["push", str(tiny_model), BRANCH, "--repo", REPO, "--endpoint", hub.url, "--public"],
    )
    assert result.exit_code == 0, result.output
    assert not hub.repos[REPO].private
    result = runner.invoke(hub_cli.app, ["pull", REPO, BRANCH, str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    assert not any(p.is_symlink() for p in (tmp_path / "model").rglob("*"))
    ents, _ = predictions(load_pipeline(tmp_path / "model"))
    assert ents == predictions(load_pipeline(tiny_model))[0]
    result = run_cli(hub_cli.app, ["pull", REPO, "nope", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "has no branch 'nope' (404)" in result.output
    assert not (tmp_path / "nope").exists()


def test_al_loop_pushes_each_checkpoint_and_catches_up_after_a_failed_push(
    hub: FakeHub, tmp_path: Path
) -> None:
    """--hub-repo: every finished iteration lands on its own branch; a push lost to a crash is
    made when the loop is resumed, and no checkpoint is pushed twice."""
    import json

    from scripts import al_loop
    from tests.tiny_corpus import write_tiny_corpus

    corpus = write_tiny_corpus(tmp_path / "corpus")
    output = tmp_path / "al"
    app = al_loop.app
    root = Path(__file__).parent.parent
    args = [str(output), "--paths.cheap", str(corpus["cheap"]), "--paths.gold", str(corpus["gold"])]
    args += ["--paths.dev", str(corpus["dev"])]
    args += ["--paths.init_config", str(root / "configs" / "tagger_tiny.cfg")]
    args += ["--training.initial_epochs", "1", "--loop.initial_budget_pct", "20"]
    args += ["--training.finetune_epochs", "1", "--loop.batch_to_add", "2"]
    args += ["--loop.improvement_threshold", "-1", "--loop.min_iterations", "1", "--hub.repo", REPO]

    def commits() -> list[str]:
        return [r.path.rsplit("/", 1)[-1] for r in hub.requests if "/commit/" in r.path]

    first = CliRunner().invoke(app, args + ["--loop.max_iterations", "1"])
    assert first.exit_code == 0, first.output
    names = ["active_iter_0_added_0", "active_iter_1_added_2"]
    assert set(hub.repos[REPO].branches) == {"main", *names}
    record_path = output / al_loop.HUB_RECORD_FILE
    record = json.loads(record_path.read_text())
    assert sorted(record) == names
    assert commits() == names
    # the push of iteration 1 is lost (a crash after its manifest was written)
    del record["active_iter_1_added_2"]
    record_path.write_text(json.dumps(record))
    second = CliRunner().invoke(app, args + ["--loop.max_iterations", "2"])
    assert second.exit_code == 0, second.output
    assert commits() == names + ["active_iter_1_added_2", "active_iter_2_added_4"]
    assert sorted(json.loads(record_path.read_text())) == names + ["active_iter_2_added_4"]
    assert_token_not_written(output)


def test_al_loop_with_a_hub_repo_and_no_token_stops_before_training(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts import al_loop
    from tests.tiny_corpus import write_tiny_corpus

    monkeypatch.delenv("HF_TOKEN")
    corpus = write_tiny_corpus(tmp_path / "corpus")
    app = al_loop.app
    root = Path(__file__).parent.parent
    args = [str(tmp_path / "al"), "--paths.cheap", str(corpus["cheap"])]
    args += ["--paths.gold", str(corpus["gold"]), "--paths.dev", str(corpus["dev"])]
    args += ["--paths.init_config", str(root / "configs" / "tagger_tiny.cfg"), "--hub.repo", REPO]
    result = CliRunner().invoke(app, args + ["--loop.initial_budget_pct", "20"])
    assert result.exit_code == 1
    assert "HF_TOKEN holds no token" in result.output
    assert not (tmp_path / "al").exists() and hub.requests == []
