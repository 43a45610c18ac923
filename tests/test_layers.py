"""The layering rules of docs/architecture.md, read from the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "acrtask"
PURE = [name for name in ("model", "reference", "platform", "dockerfile", "shellvars", "triggers", "validate", "graph",
                         "stored", "instructions", "dockerargs", "graph_svg", "insecure", "runids")
        if (PACKAGE / f"{name}.py").exists()]


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_cli_imports_typer_and_rich(path: Path) -> None:
    if path.relative_to(PACKAGE).parts[0] in ("cli", "watch"):
        return
    ui = {n for n in imports_of(path) if n.split(".")[0] in ("typer", "rich", "click")}
    assert not ui, f"{path.name} imports {ui}: only acrtask.cli may"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_below_cli_imports_cli(path: Path) -> None:
    if path.relative_to(PACKAGE).parts[0] in ("cli", "__main__.py"):
        return
    assert not {n for n in imports_of(path) if n.startswith("acrtask.cli")}


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_do_no_io(name: str) -> None:
    path = PACKAGE / f"{name}.py"
    io_modules = {"subprocess", "httpx", "socket", "os", "asyncio", "acrtask.state", "acrtask.registry"}
    found = {n for n in imports_of(path) if n in io_modules or n.startswith("acrtask.registry")}
    assert not found, f"{name}.py is meant to be pure but imports {found}"


def test_registry_knows_nothing_of_tasks() -> None:
    for path in (PACKAGE / "registry").glob("*.py"):
        found = {n for n in imports_of(path) if n in ("acrtask.model", "acrtask.state", "acrtask.service")}
        assert not found, f"{path.name} imports {found}"


def test_no_shell_true_anywhere() -> None:
    for path in modules():
        assert "shell=True" not in path.read_text(), path


def test_watch_never_imports_the_builders() -> None:
    for path in (PACKAGE / "watch").glob("*.py"):
        found = {n for n in imports_of(path) if n.startswith("acrtask.builders") or n == "acrtask.process"}
        assert not found, f"watch/{path.name} imports {found}: what it needs comes through the executor"


def test_the_watch_scheduler_does_no_io() -> None:
    """Events in, decisions out: the driver (watch/loop.py) owns time, files and threads."""
    io_modules = ("os", "time", "threading", "queue", "logging", "subprocess", "socket", "concurrent.futures",
                  "acrtask.state", "acrtask.runs", "acrtask.registry", "acrtask.builders", "acrtask.process",
                  "acrtask.recovery")
    for name in ("scheduler", "planning", "events", "options"):
        found = {n for n in imports_of(PACKAGE / "watch" / f"{name}.py") if n.startswith(io_modules)}
        assert not found, f"watch/{name}.py is meant to be pure but imports {found}"
