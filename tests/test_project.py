"""The project's own promises: project.yml is valid, README and CI agree."""

from __future__ import annotations

import re
from pathlib import Path

from weasel.util import load_project_config

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


def test_every_script_a_command_runs_is_in_its_deps() -> None:
    config = load_project_config(ROOT)
    for command in config["commands"]:
        for line in command["script"]:
            for module in re.findall(r"python -m scripts\.(\w+)", line):
                assert f"scripts/{module}.py" in command.get("deps", []), (command["name"], module)


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
