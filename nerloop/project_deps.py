"""The ``deps`` of every ``project.yml`` command, derived from its script lines.

``spacy project run`` (weasel) reruns a command when one of its ``deps`` changed, so ``deps``
must name every input a step reads: the project modules its script imports and the corpora,
configs and models named on its script lines. This module derives both from the script lines:

- **modules**: ``python -m scripts.x`` and every project file given on a line (``--code
  components/bio_ner.py``) are read with :mod:`ast`, and every ``import`` of a project package
  (``scripts``, ``nerloop``, ``components``), at module level or inside a function, is followed
  transitively. Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too, so those
  count. Imports under ``if TYPE_CHECKING:`` never run and do not count; modules imported by a
  name computed at run time (``importlib.import_module(name)``) cannot be seen.
- **inputs**: the script lines after weasel has substituted ``${vars.*}``
  (:func:`weasel.util.load_project_config`), split into words. A word is an input when it is
  an output of another command, a folder holding outputs of other commands (covered when a dep
  lies inside it), or an existing file or folder of a source folder of the project (one of the
  ``directories`` that holds no command's outputs: ``configs/``, ``components/``...), and it is
  not one of the command's own outputs, a folder holding them or a path inside them.

:func:`write_deps` rewrites the ``deps`` lists in ``project.yml`` as text, so comments, order
and formatting stay: data deps are kept as they are and missing inputs are added (spelt with
``${vars.*}`` as on the script line), module deps that are no longer imported (or no longer
exist) are removed and missing ones are added.
"""

from __future__ import annotations

import ast
import posixpath
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import srsly
from weasel.cli.main import PROJECT_FILE
from weasel.util import load_project_config

from nerloop.errors import NerloopError
from nerloop.io_utils import atomic_write_text

# top-level packages of the project: their files are modules, followed through imports
PROJECT_PACKAGES = ("scripts", "nerloop", "components")

_VAR = re.compile(r"\$\{vars\.([\w.-]+)\}")
_NAME = re.compile(r"^(\s*)- name:\s*(.+?)\s*$")
_ITEM = re.compile(r"^(\s*)- (.*?)\s*$")


class ProjectDepsError(NerloopError):
    """project.yml cannot be analysed or rewritten (a module that does not parse, a deps list
    in a form the text rewrite does not handle)."""


@dataclass
class CommandDeps:
    """What one command's script lines need, beside what its ``deps`` list.

    name (str): the command's name.
    modules (list[str]): project modules the script lines import (POSIX paths, sorted).
    inputs (list[str]): input paths named on the script lines, spelt as there (``${vars.*}``).
    missing (list[str]): modules and inputs its deps lack, spelt as they would be written.
    stale (list[str]): module deps no longer imported or no longer existing, spelt as in deps.
    """

    name: str
    modules: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def _norm(path: str) -> str | None:
    """A path relative to the project root in POSIX form, or None when it is not one."""
    if not path or "://" in path or path.startswith(("-", "/", "~")):
        return None
    normed = posixpath.normpath(path)
    if normed in (".", "") or normed.startswith(".."):
        return None
    return normed


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _substitute(text: str, variables: dict[str, Any]) -> str:
    """``${vars.x}`` replaced by its value (used to spell a word back as written)."""
    return _VAR.sub(lambda m: str(variables.get(m.group(1), m.group(0))), text)


def _words(line: str) -> list[str]:
    """The words of a script line; ``--option=value`` gives its value as a word too."""
    words = []
    for word in shlex.split(line):
        words.append(word)
        if word.startswith("--") and "=" in word:
            words.append(word.split("=", 1)[1])
    return words


def _module_file(project_dir: Path, dotted: str) -> str | None:
    """The file of a project module or package (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    parts = dotted.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = "/".join(parts)
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (project_dir / candidate).is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, package: str) -> Iterable[str]:
    """Dotted names every import statement of ``tree`` loads (``from a import b``: ``a``
    and ``a.b``, the latter in case ``b`` is a submodule)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            yield base
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}"
        stack.extend(ast.iter_child_nodes(node))


@lru_cache(maxsize=4096)
def _direct_imports(project_dir: Path, module_path: str, mtime: float) -> tuple[str, ...]:
    """Project files one module imports directly, with the packages above them."""
    source = (project_dir / module_path).read_text(encoding="utf8")
    try:
        tree = ast.parse(source, filename=module_path)
    except SyntaxError as err:
        raise ProjectDepsError(f"{module_path} does not parse: {err}") from None
    # the package relative imports start from: a/b/c.py and a/b/__init__.py are both in a.b
    package = ".".join(module_path[: -len(".py")].split("/")[:-1])
    found = set()
    for dotted in _imported_names(tree, package):
        pieces = dotted.split(".")
        for end in range(1, len(pieces) + 1):  # importing a.b.c runs a and a.b first
            file = _module_file(project_dir, ".".join(pieces[:end]))
            if file is not None:
                found.add(file)
    return tuple(sorted(found))


def module_closure(project_dir: Path, roots: Iterable[str]) -> list[str]:
    """Every project file that importing ``roots`` (project file paths) runs, roots included.

    project_dir (Path): the project root.
    roots (Iterable[str]): module files, relative POSIX paths (``scripts/mix.py``).
    RETURNS (list[str]): the files, sorted.
    """
    project_dir = Path(project_dir).resolve()
    seen: set[str] = set()
    todo = [root for root in roots if (project_dir / root).is_file()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        mtime = (project_dir / path).stat().st_mtime
        todo.extend(_direct_imports(project_dir, path, mtime))
    return sorted(seen)


def _is_module_path(path: str, project_dir: Path) -> bool:
    """A dep that belongs to the module part: a .py file or a folder of a project package."""
    top = path.split("/", 1)[0]
    return top in PROJECT_PACKAGES and (path.endswith(".py") or (project_dir / path).is_dir())


def line_modules(project_dir: Path, line: str) -> list[str]:
    """The project modules a (substituted) script line runs, imports followed.

    ``python -m scripts.x`` runs ``scripts/__init__.py`` and ``scripts/x.py``; a project
    ``.py`` file named on the line (``--code components/bio_ner.py``) is imported by it.
    """
    project_dir = Path(project_dir).resolve()
    words = _words(line)
    roots = []
    for i, word in enumerate(words):
        if word == "-m" and i + 1 < len(words):
            pieces = words[i + 1].split(".")
            for end in range(1, len(pieces) + 1):
                file = _module_file(project_dir, ".".join(pieces[:end]))
                if file is not None:
                    roots.append(file)
        for piece in word.split(","):  # spacy package --code a.py,b.py
            path = _norm(piece)
            if path and path.endswith(".py") and _is_module_path(path, project_dir):
                roots.append(path)
    return module_closure(project_dir, roots)


def _source_dirs(config: dict[str, Any]) -> list[str]:
    """The project's folders that hold no command's outputs (configs/, components/...)."""
    output_tops = {
        path.split("/", 1)[0]
        for command in config.get("commands", [])
        for path in filter(None, map(_norm, _outputs(command)))
    }
    return [d for d in config.get("directories", []) if _norm(d) and _norm(d) not in output_tops]


def _outputs(command: dict[str, Any]) -> list[str]:
    return [*command.get("outputs", []), *command.get("outputs_no_cache", [])]


def _line_inputs(
    project_dir: Path,
    line: str,
    own_outputs: Sequence[str],
    other_outputs: Sequence[str],
    source_dirs: Sequence[str],
) -> list[tuple[str, bool]]:
    """The input paths a substituted script line names, each with whether it is a folder
    holding other commands' outputs (covered by any dep inside it)."""
    found = []
    for word in _words(line):
        path = _norm(word)
        if path is None or _is_module_path(path, project_dir):
            continue
        if any(_inside(out, path) or _inside(path, out) for out in own_outputs):
            continue
        if path in other_outputs:
            found.append((path, False))
        elif any(_inside(out, path) for out in other_outputs):
            found.append((path, True))
        elif any(_inside(path, d) for d in source_dirs) and (project_dir / path).exists():
            found.append((path, (project_dir / path).is_dir()))
    return found


def _raw_spelling(raw_lines: Sequence[str], variables: dict[str, Any]) -> dict[str, str]:
    """Substituted path -> the word as the raw script lines spell it (with ``${vars.*}``)."""
    spelling: dict[str, str] = {}
    for line in raw_lines:
        try:
            words = _words(line)
        except ValueError:
            continue
        for word in words:
            path = _norm(_substitute(word, variables))
            if path is not None:
                spelling.setdefault(path, word)
    return spelling


def analyze_project(project_dir: Path) -> dict[str, CommandDeps]:
    """Derive every command's modules and inputs from its script lines and compare them with
    its ``deps``.

    project_dir (Path): the folder holding project.yml.
    RETURNS (dict[str, CommandDeps]): command name -> what it needs, lacks and lists in vain.
    """
    project_dir = Path(project_dir).resolve()
    config = load_project_config(project_dir)
    raw_config = load_project_config(project_dir, interpolate=False)
    raw_commands = {c["name"]: c for c in raw_config.get("commands", [])}
    variables = config.get("vars", {})
    source_dirs = _source_dirs(config)
    outputs = {c["name"]: [p for p in map(_norm, _outputs(c)) if p] for c in config["commands"]}
    result = {}
    for command in config["commands"]:
        name = command["name"]
        raw = raw_commands.get(name, {})
        deps = [p for p in map(_norm, command.get("deps", [])) if p]
        raw_deps = list(raw.get("deps", []))
        spelling = _raw_spelling(raw.get("script", []), variables)
        others = [p for other, paths in outputs.items() if other != name for p in paths]
        modules: set[str] = set()
        inputs: dict[str, bool] = {}
        for line in command.get("script", []):
            modules.update(line_modules(project_dir, line))
            for path, is_folder in _line_inputs(
                project_dir, line, outputs[name], others, source_dirs
            ):
                inputs.setdefault(path, is_folder)
        info = CommandDeps(name, sorted(modules), [spelling.get(p, p) for p in inputs])
        for path, is_folder in inputs.items():
            covered = any(_inside(path, dep) for dep in deps) or (
                is_folder and any(_inside(dep, path) for dep in deps)
            )
            if not covered:
                info.missing.append(spelling.get(path, path))
        info.missing.extend(m for m in info.modules if m not in deps)
        for raw_dep in raw_deps:
            path = _norm(_substitute(raw_dep, variables))
            if path and _is_module_path(path, project_dir) and path not in modules:
                info.stale.append(raw_dep)
        result[name] = info
    return result


def missing_deps(project_dir: Path) -> dict[str, list[str]]:
    """Command name -> the modules and inputs its script lines need that its deps lack (only
    commands that lack some)."""
    return {n: c.missing for n, c in analyze_project(project_dir).items() if c.missing}


def stale_deps(project_dir: Path) -> dict[str, list[str]]:
    """Command name -> module deps its script lines no longer import (only where some are)."""
    return {n: c.stale for n, c in analyze_project(project_dir).items() if c.stale}


def _yaml_scalar(text: str) -> str:
    value = srsly.yaml_loads(text)
    if not isinstance(value, str):
        raise ProjectDepsError(f"expected a string in project.yml, not {text!r}")
    return value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _merges(before: str, after: str) -> bool:
    """confection merges a list item ending in a variable with a next one starting with one."""
    return before.rstrip().endswith("}") and after.lstrip().startswith("${")


def _insert_safely(items: list[str], new: str, start: int) -> int:
    """Insert ``new`` at ``start``, else at the nearest position before it, else after it,
    where it merges with neither neighbour; returns the position."""
    positions = [*range(start, -1, -1), *range(start + 1, len(items) + 1)]
    for pos in positions:
        before = items[pos - 1] if pos > 0 else None
        after = items[pos] if pos < len(items) else None
        if (before is None or not _merges(before, new)) and (
            after is None or not _merges(new, after)
        ):
            items.insert(pos, new)
            return pos
    raise ProjectDepsError(f"no place in the deps list where {new!r} is not merged")


@dataclass
class _Block:
    """The lines of one command's deps list in project.yml."""

    key_line: int  # index of "deps:" (or where to insert it)
    start: int  # first item line
    end: int  # one past the last item line
    indent: str  # of the items
    has_key: bool


def _command_blocks(lines: list[str]) -> dict[str, tuple[int, int, str]]:
    """Command name -> (first line, one past the last line, indent of its keys)."""
    starts = []
    in_commands = False
    for i, line in enumerate(lines):
        if re.match(r"^commands:\s*$", line):
            in_commands = True
            continue
        if in_commands and line and not line[0].isspace() and not line.startswith("#"):
            starts.append((i, None, ""))  # a top-level key after commands ends them
            break
        match = _NAME.match(line) if in_commands else None
        if match:
            starts.append((i, _yaml_scalar(match.group(2)), match.group(1) + "  "))
    if in_commands and (not starts or starts[-1][1] is not None):
        starts.append((len(lines), None, ""))
    blocks = {}
    for (start, name, indent), (end, _, _) in zip(starts, starts[1:]):
        if name is not None:
            blocks[name] = (start, end, indent)
    return blocks


def _deps_block(lines: list[str], start: int, end: int, indent: str) -> _Block:
    key = re.compile(rf"^{indent}deps:\s*(.*?)\s*$")
    for i in range(start, end):
        match = key.match(lines[i])
        if not match:
            continue
        if match.group(1) and not match.group(1).startswith("#"):
            raise ProjectDepsError(f"line {i + 1}: write deps as a block list, one item a line")
        last = i
        item_indent = indent + "  "
        for j in range(i + 1, end):
            item = _ITEM.match(lines[j])
            if item and len(item.group(1)) > len(indent):
                item_indent, last = item.group(1), j
            elif not lines[j].strip().startswith("#"):
                break
        return _Block(i, i + 1, last + 1, item_indent, True)
    # no deps key: insert one before outputs (or at the end of the command)
    where = next(
        (i for i in range(start, end) if re.match(rf"^{indent}outputs(_no_cache)?:", lines[i])),
        None,
    )
    if where is None:
        where = end
        while where > start + 1 and not lines[where - 1].strip():
            where -= 1
    return _Block(where, where, where, indent + "  ", False)


def write_deps(project_dir: Path) -> dict[str, CommandDeps]:
    """Rewrite the deps lists of project.yml so they hold what the script lines need: missing
    inputs and modules added, stale module deps removed; the rest of the file untouched.

    project_dir (Path): the folder holding project.yml.
    RETURNS (dict[str, CommandDeps]): the commands whose deps changed, with what changed.
    """
    project_dir = Path(project_dir).resolve()
    analysis = analyze_project(project_dir)
    changed = {n: c for n, c in analysis.items() if c.missing or c.stale}
    if not changed:
        return {}
    path = project_dir / PROJECT_FILE
    text = path.read_text(encoding="utf8")
    lines = text.split("\n")
    blocks = _command_blocks(lines)
    # rewrite from the bottom, so earlier line numbers stay valid
    for name, (start, end, indent) in sorted(blocks.items(), key=lambda kv: -kv[1][0]):
        if name not in changed:
            continue
        info = changed[name]
        block = _deps_block(lines, start, end, indent)
        old = lines[block.start : block.end]
        items: list[str] = []  # the values, in the list's order; None for a comment line
        kept: list[str] = []  # the lines, in the same order
        for line in old:
            match = _ITEM.match(line)
            if match and not line.strip().startswith("#"):
                value = _yaml_scalar(match.group(2))
                if value in info.stale:
                    continue
                items.append(value)
            else:
                items.append("")
            kept.append(line)
        modules = set(info.modules)
        last_data = max(
            (
                i + 1
                for i, value in enumerate(items)
                if value and not _is_module_path(value, project_dir)
            ),
            default=0,
        )
        for value in info.missing:
            is_module = value in modules
            start_at = len(items) if is_module else last_data
            pos = _insert_safely(items, value, start_at)
            kept.insert(pos, f"{block.indent}- {_quote(value)}")
            if not is_module:
                last_data = pos + 1
        new_lines = kept if block.has_key else [f"{indent}deps:", *kept]
        lines[block.start : block.end] = new_lines
    atomic_write_text(path, "\n".join(lines))
    return changed
