"""--platform on the command line takes what containerd's platforms.Parse takes, bare architectures too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_cli


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACRTASK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACRTASK_REGISTRY", raising=False)
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM localhost:5000/base:1\n")
    return folder


@pytest.mark.parametrize(("given", "stored"), [
    ("arm64", {"os": "linux", "architecture": "arm64"}),
    ("aarch64", {"os": "linux", "architecture": "arm64"}),
    ("x86_64", {"os": "linux", "architecture": "amd64"}),
    ("armhf", {"os": "linux", "architecture": "arm", "variant": "v7"}),
    ("s390x", {"os": "linux", "architecture": "s390x"}),
])
def test_create_and_update_take_a_bare_architecture(ctx: Path, given: str, stored: dict[str, str]) -> None:
    created = run_cli("task", "create", "-n", "bare-arch", "-c", str(ctx), "-t", "localhost:5000/a:1",
                      "--platform", given)
    assert created.code == 0, created.err
    assert created.json()["platform"] == stored
    updated = run_cli("task", "update", "-n", "bare-arch", "--platform", "i386")
    assert updated.code == 0, updated.err
    assert updated.json()["platform"] == {"os": "linux", "architecture": "386"}


def test_a_word_that_is_no_platform_is_one_error_line(ctx: Path) -> None:
    result = run_cli("task", "create", "-n", "bad-arch", "-c", str(ctx), "-t", "localhost:5000/a:1",
                     "--platform", "sparc")
    assert result.code == 2
    assert result.err.startswith("ERROR: 'sparc' is not a valid OS or architecture in --platform 'sparc'.")
    assert run_cli("task", "show", "-n", "bad-arch").code == 3
