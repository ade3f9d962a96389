"""The README's "From Python" block runs as written, on a tiny project laid out like ours."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from nerloop.io_utils import read_docbin
from nerloop.training import finetune, init_pipeline
from tests.tiny_corpus import write_tiny_corpus

ROOT = Path(__file__).parent.parent
TINY_CONFIG = ROOT / "configs" / "tagger_tiny.cfg"


def readme_python_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## From Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_block_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    paths = write_tiny_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "cheap").mkdir()
    shutil.move(paths["cheap"], tmp_path / "corpus" / "cheap" / "llama405b.spacy")
    cheap = read_docbin(tmp_path / "corpus" / "cheap" / "llama405b.spacy")
    nlp = init_pipeline(TINY_CONFIG, cheap, seed=0)
    result = finetune(nlp, cheap, read_docbin(paths["dev"]), epochs=2, progress=False)
    result.save(tmp_path / "training" / "llm_pure_llama405b_exp")
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "kfold.cfg", tmp_path / "configs" / "kfold.cfg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_python_block(), "README.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "LLM-only dev F1" in out and "with experts" in out
    # 2 budgets x 2 folds, each run written once, and the summary beside its settings
    assert len(namespace["report"].computed) == 4 and not namespace["report"].failed
    assert (tmp_path / "runs" / "kfold" / "summary.json").is_file()
    assert (tmp_path / "runs" / "kfold" / "config.cfg").is_file()
    assert namespace["summary"]["saturation"]["rule"]
