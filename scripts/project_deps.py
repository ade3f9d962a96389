"""Check or fix the ``deps`` of every project.yml command against its script lines.

    python -m scripts.project_deps --check   # exit 1 listing what deps lack or list in vain
    python -m scripts.project_deps --write   # add what is missing, drop stale module deps

Modules are the project files a step's script imports (followed transitively); inputs are the
corpora, configs and models its script lines name (see ``nerloop.project_deps``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.project_deps import analyze_project, write_deps


def main(
    project_dir: Path = typer.Option(Path("."), help="Folder holding project.yml"),
    check: bool = typer.Option(False, "--check", help="Exit 1 when a command's deps are wrong"),
    write: bool = typer.Option(False, "--write", help="Rewrite the deps lists in project.yml"),
) -> None:
    """Report (--check) or fix (--write) the deps lists of project.yml."""
    if write:
        changed = write_deps(project_dir)
        for name, info in changed.items():
            added = ", ".join(info.missing) or "-"
            msg.info(f"{name}: added {added}; removed {', '.join(info.stale) or '-'}")
        msg.good(f"Rewrote the deps of {len(changed)} commands" if changed else "Deps up to date")
        return
    wrong = {n: c for n, c in analyze_project(project_dir).items() if c.missing or c.stale}
    for name, info in wrong.items():
        for path in info.missing:
            msg.fail(f"{name}: deps lack {path}")
        for path in info.stale:
            msg.warn(f"{name}: deps list {path}, which its script no longer imports")
    if wrong and check:
        msg.fail(f"{len(wrong)} commands with wrong deps: run with --write", exits=1)
    if not wrong:
        msg.good("Every command's deps hold what its script lines need")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
