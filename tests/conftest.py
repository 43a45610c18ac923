from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ALICE, INSTALL_HINT, LocalRegistry, check_tools, default_buildah_env
from tests.support.registry import REGISTRY_BIN


def pytest_configure(config: pytest.Config) -> None:
    declared = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    if "integration" not in declared:
        config.addinivalue_line("markers", "integration: uses a real registry and buildah")


def _require(problems: list[str]) -> None:
    # Integration tests never skip: missing tools are a failure with the fix in the message.
    if problems:
        pytest.fail("; ".join(problems) + f" -- {INSTALL_HINT}", pytrace=False)


def _registry_problems() -> list[str]:
    if os.access(REGISTRY_BIN, os.X_OK):
        return []
    return [f"{REGISTRY_BIN} is missing (package docker-registry)"]


@pytest.fixture
def registry() -> Iterator[LocalRegistry]:
    """A fresh anonymous registry on 127.0.0.1 (`.host`, `.url`)."""
    _require(_registry_problems())
    with LocalRegistry() as reg:
        yield reg


@pytest.fixture
def auth_registry() -> Iterator[LocalRegistry]:
    """A fresh registry with Basic auth for tests.support.ALICE = ("alice", "s3cret-pass")."""
    _require(_registry_problems())
    with LocalRegistry(htpasswd=ALICE) as reg:
        yield reg


@pytest.fixture(scope="session")
def buildah_env() -> dict[str, str]:
    """Env for buildah/skopeo subprocesses: vfs + chroot, this worker's private storage."""
    _require(check_tools())
    return dict(default_buildah_env())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$ACRTASK_HOME in a fresh temporary folder (not created yet), and no ACRTASK_REGISTRY."""
    monkeypatch.setenv("ACRTASK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACRTASK_REGISTRY", raising=False)
    return tmp_path / "home"


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    """A build context folder with a one-line Dockerfile."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM localhost:5000/base:1\n")
    return folder
