"""The project's own promises: project.yml is valid, README and CI agree."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin
from weasel.cli.run import check_rerun, get_lock_entry
from weasel.util import load_project_config

from nerloop.project_deps import analyze_project, missing_deps, stale_deps, write_deps

ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks]


def test_project_yml_is_valid_and_steps_are_documented() -> None:
    config = load_project_config(ROOT)
    names = [command["name"] for command in config["commands"]]
    assert len(names) == len(set(names))
    for command in config["commands"]:
        assert command.get("help"), command["name"]
        for line in command["script"]:
            module = re.search(r"python -m scripts\.(\w+)", line)
            if module:
                script = f"scripts/{module.group(1)}.py"
                assert (ROOT / script).exists(), script
    for workflow in config["workflows"].values():
        assert set(workflow) <= set(names)
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert f"`{name}`" in readme, (
            f"README workflow table lacks {name}: run spacy project document"
        )


def test_every_command_lists_the_modules_and_inputs_its_script_lines_need() -> None:
    """Each step's imports (followed transitively) and the inputs its script lines name are
    derived from the script lines; deps must hold them all (fix: python -m scripts.project_deps
    --write)."""
    config = load_project_config(ROOT)
    analysis = analyze_project(ROOT)
    for command in config["commands"]:
        info = analysis[command["name"]]
        for line in command["script"]:
            for module in re.findall(r"python -m scripts\.(\w+)", line):
                assert f"scripts/{module}.py" in info.modules, (command["name"], module)
            for codes in re.findall(r"--code (\S+)", line):
                for code in codes.split(","):
                    assert code in info.modules, (command["name"], code)
        assert set(info.modules) <= set(command["deps"]), command["name"]
    # transitive imports count, and imports inside functions: nerloop.training imports
    # components.bio_ner in the function that builds a pipeline
    assert {"nerloop/al/loop.py", "nerloop/al/strategies.py"} <= set(analysis["al"].modules)
    assert "components/bio_ner.py" in analysis["train-experiment-models"].modules
    assert "components/bio_ner.py" in analysis["train-gold"].modules  # --code
    assert missing_deps(ROOT) == {}
    assert stale_deps(ROOT) == {}


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))


SYNTHETIC_PROJECT = """\
    title: "synthetic"
    vars:
      corpus: "corpus"
      config: "x.cfg"
    directories: ["configs", "corpus", "training", "scripts", "nerloop", "components"]
    commands:
      - name: "make"
        script:
          - "python -m scripts.make ${vars.corpus}/train.spacy"
        deps:
          - "scripts/__init__.py"
          - "scripts/make.py"
        outputs:
          - "${vars.corpus}/train.spacy"

      - name: "train"
        script:
          - "python -m scripts.train ${vars.corpus}/train.spacy --code components/extra.py -o model"
        deps:
          # the config
          - "configs/${vars.config}"
          - "scripts/train.py"
          - "nerloop/gone.py"
        outputs:
          - "model"
"""


TRAIN_DEPS = """\
    deps:
      # the config
      - "configs/${vars.config}"
      - "scripts/train.py"
      - "nerloop/gone.py"
"""
TRAIN_DEPS_WRITTEN = """\
    deps:
      # the config
      - "${vars.corpus}/train.spacy"
      - "configs/${vars.config}"
      - "scripts/train.py"
      - "components/extra.py"
      - "nerloop/__init__.py"
      - "nerloop/deep.py"
      - "nerloop/helper.py"
      - "scripts/__init__.py"
"""


def test_a_missing_module_and_a_missing_input_are_reported_and_written(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "project.yml": SYNTHETIC_PROJECT,
            "configs/x.cfg": "[nlp]\n",
            "scripts/__init__.py": "",
            "scripts/make.py": "import json\n",
            "scripts/train.py": "def main():\n    from nerloop import helper\n",
            "nerloop/__init__.py": "",
            "nerloop/helper.py": """\
                from typing import TYPE_CHECKING

                from .deep import value

                if TYPE_CHECKING:
                    from nerloop import typing_only
            """,
            "nerloop/deep.py": "value = 1\n",
            "nerloop/typing_only.py": "",
            "components/extra.py": "import spacy\n",
        },
    )
    assert missing_deps(tmp_path) == {
        "train": [
            "${vars.corpus}/train.spacy",
            "components/extra.py",
            "nerloop/__init__.py",
            "nerloop/deep.py",
            "nerloop/helper.py",
            "scripts/__init__.py",
        ]
    }
    assert stale_deps(tmp_path) == {"train": ["nerloop/gone.py"]}
    assert sorted(write_deps(tmp_path)) == ["train"]
    text = (tmp_path / "project.yml").read_text()
    # the corpus goes among the data deps, but not right after "configs/${vars.config}" (weasel
    # would merge the two items); the comment and the other commands stay as they were
    assert text == textwrap.dedent(SYNTHETIC_PROJECT).replace(TRAIN_DEPS, TRAIN_DEPS_WRITTEN)
    assert load_project_config(tmp_path)["commands"][1]["deps"][:2] == [
        "corpus/train.spacy",
        "configs/x.cfg",
    ]
    assert missing_deps(tmp_path) == {} and stale_deps(tmp_path) == {}
    assert write_deps(tmp_path) == {}


def write_words(path: Path, sentences: list[str]) -> None:
    nlp = spacy.blank("en")
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=[nlp(text) for text in sentences]).to_disk(path)


def test_changing_the_cheap_docbin_makes_al_rerun(tmp_path: Path) -> None:
    """The lock entry weasel keeps for al goes stale when corpus/cheap/<set>.spacy changes."""
    (tmp_path / "project.yml").write_text((ROOT / "project.yml").read_text())
    config = load_project_config(tmp_path)
    al = next(command for command in config["commands"] if command["name"] == "al")
    cheap = f"corpus/cheap/{config['vars']['cheap_set']}.spacy"
    assert cheap in al["deps"]
    write_words(tmp_path / cheap, ["EU rejects German call"])
    srsly.write_yaml(tmp_path / "project.lock", {"al": get_lock_entry(tmp_path, al)})
    assert check_rerun(tmp_path, al) is False
    write_words(tmp_path / cheap, ["EU rejects German call", "Peter Blackburn"])
    assert check_rerun(tmp_path, al) is True


TINY_PROJECT = """\
    title: "tiny"
    vars:
      corpus: "corpus"
    directories: ["assets", "corpus", "metrics", "scripts"]
    commands:
      - name: "make"
        script:
          - "python scripts/make.py assets/words.txt ${vars.corpus}/words.spacy"
        deps:
          - "assets/words.txt"
          - "scripts/make.py"
        outputs:
          - "${vars.corpus}/words.spacy"

      - name: "count"
        script:
          - "python scripts/count.py ${vars.corpus}/words.spacy metrics/count.json"
        deps:
          - "${vars.corpus}/words.spacy"
          - "scripts/count.py"
        outputs:
          - "metrics/count.json"
"""

MAKE_SCRIPT = """\
    import sys

    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    lines = open(sys.argv[1]).read().splitlines()
    DocBin(docs=[nlp(line) for line in lines]).to_disk(sys.argv[2])
"""

COUNT_SCRIPT = """\
    import json
    import sys
    from pathlib import Path

    import spacy
    from spacy.tokens import DocBin

    docs = list(DocBin().from_disk(sys.argv[1]).get_docs(spacy.blank("en").vocab))
    Path(sys.argv[2]).parent.mkdir(parents=True, exist_ok=True)
    Path(sys.argv[2]).write_text(json.dumps({"docs": len(docs)}))
"""


@pytest.mark.slow
def test_a_step_reruns_when_its_docbin_changes(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "project.yml": TINY_PROJECT,
            "assets/words.txt": "EU rejects German call\nPeter Blackburn\n",
            "scripts/make.py": MAKE_SCRIPT,
            "scripts/count.py": COUNT_SCRIPT,
        },
    )
    assert missing_deps(tmp_path) == {} and stale_deps(tmp_path) == {}

    def run(name: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "weasel", "run", name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    run("make")
    assert "Skipping" not in run("count")
    assert json.loads((tmp_path / "metrics" / "count.json").read_text()) == {"docs": 2}
    assert "Skipping 'count': nothing changed" in run("count")
    write_words(tmp_path / "corpus" / "words.spacy", ["EU", "rejects", "German"])
    assert "Skipping" not in run("count")
    assert json.loads((tmp_path / "metrics" / "count.json").read_text()) == {"docs": 3}


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = readme_commands()
    test_command = next(c for c in commands if "pytest" in c)
    main_command = next(c for c in commands if "spacy project run" in c)
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert test_command in ci_lines
    assert "project run all" in main_command


def test_no_dep_or_output_is_merged_by_interpolation() -> None:
    """confection merges a list item ending in a variable with a next item starting with one
    ("configs/${vars.x}", "${vars.y}/z" -> "configs/x, y/z"): keep such items apart."""
    config = load_project_config(ROOT)
    merged = [
        (command["name"], item)
        for command in config["commands"]
        for item in command.get("deps", []) + command.get("outputs", [])
        if ", " in item
    ]
    assert merged == []


def test_every_file_of_a_comma_separated_code_option_is_a_module_dep() -> None:
    """spacy package --code a.py,b.py imports both files: both are the step's modules."""
    from nerloop.project_deps import line_modules

    line = (
        "python -m spacy package training/gold/model-selected packages "
        "--code components/bio_ner.py,components/frozen_encoder.py --build wheel"
    )
    modules = line_modules(ROOT, line)
    assert "components/bio_ner.py" in modules and "components/frozen_encoder.py" in modules
