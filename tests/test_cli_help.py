"""Every command's --help renders, with az-style examples."""

from __future__ import annotations

import pytest
import typer

from acrtask.cli.app import app
from tests.support.cli import run_cli


def command_paths() -> list[tuple[tuple[str, ...], bool]]:
    """Every visible command path, and whether it is a leaf command (not a group)."""
    paths: list[tuple[tuple[str, ...], bool]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if sub.hidden:
                continue
            paths.append(((*path, name), not hasattr(sub, "commands")))
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


@pytest.mark.parametrize(("path", "is_leaf"), command_paths(),
                         ids=lambda p: " ".join(p) if isinstance(p, tuple) else "")
def test_help_renders(path: tuple[str, ...], is_leaf: bool) -> None:
    result = run_cli(*path, "--help")
    assert result.code == 0, result.err
    assert "Usage" in result.out
    if is_leaf:
        assert "Examples:" in result.out, f"{' '.join(path)} --help has no examples"
