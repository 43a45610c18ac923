"""Copy tasks (`task create --import`) and `image import`'s references, through the CLI and imports.py;
the copies themselves, against real registries, are in tests/integration/test_import.py."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import pytest

from acrtask import imports
from acrtask.dependency import DependencyType
from acrtask.errors import BuildCanceledError, BuildTimeoutError, ValidationError
from acrtask.model import Task
from acrtask.reference import ImageRef
from acrtask.registry.copy import CopyResult
from tests.support.cli import run_cli

REG = "localhost:5000"
SOURCE = "docker.io/library/node:20-alpine"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACRTASK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACRTASK_REGISTRY", raising=False)
    return tmp_path / "home"


def create_copy(*extra: str, name: str = "node-copy"):
    return run_cli("task", "create", "-n", name, "--import", "node:20-alpine", "-t", f"{REG}/base/node:20-alpine",
                   *extra)


def test_a_copy_task_names_its_source_and_one_target(home: Path) -> None:
    done = create_copy("--schedule", "weekly:0 4 * * Sun")
    assert done.code == 0, done.err
    task = done.json()
    assert task["step"]["type"] == "Import"
    assert task["step"]["importSource"] == SOURCE
    assert task["step"]["imageNames"] == [f"{REG}/base/node:20-alpine"]
    assert "baseImageDependencies" not in task["step"]  # known after its first run, as for builds
    assert task["trigger"]["baseImageTrigger"]["status"] == "Enabled"
    assert task["trigger"]["timerTriggers"][0]["name"] == "weekly"
    row = run_cli("task", "list", "-o", "table").out.splitlines()[2]
    assert f"import {SOURCE}" in row
    assert row.rstrip().endswith("BASE_IMAGE, TIMER")
    # It round-trips through the state database.
    assert run_cli("task", "show", "-n", "node-copy").json()["step"] == task["step"]


def test_short_copy_targets_go_under_the_registry(home: Path) -> None:
    done = run_cli("task", "create", "-n", "node-copy", "--import", "node:20", "-r", REG, "-t", "base/node:20")
    assert done.code == 0, done.err
    assert done.json()["step"]["imageNames"] == [f"{REG}/base/node:20"]


BAD_COPY_TASKS = [
    (["-c", "."], "-c/--context cannot be used with --import"),
    (["--arg", "A=1", "--no-cache"], "--arg/--secret-arg, --no-cache cannot be used with --import"),
    (["--platform", "linux/arm64"], "--platform cannot be used with --import"),
    (["-t", f"{REG}/other:1"], "exactly one -t/--image (got 2)"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_COPY_TASKS, ids=[b[1][:30] for b in BAD_COPY_TASKS])
def test_build_flags_on_a_copy_task_are_refused(home: Path, extra: list[str], message: str) -> None:
    done = create_copy(*extra)
    assert done.code == 2
    assert done.err.startswith("ERROR: ") and done.err.count("\n") == 1, done.err
    assert message in done.err
    assert not (home / "state.db").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--import", "node:20"], "exactly one -t/--image (got 0)"),
    (["--import", "node:20", "-t", f"{REG}/app:{{{{.Run.ID}}}}"], "a copy needs a stable tag"),
    (["--import", f"{REG}/base:1", "-t", f"{REG}/base:1"], "is the source itself"),
    (["--import", "Node:20", "-t", f"{REG}/base:1"], "must be lowercase"),
    (["-t", f"{REG}/base:1"], "-c/--context (or --import for a copy task)"),
])
def test_bad_copy_tasks_are_input_errors(home: Path, argv: list[str], message: str) -> None:
    done = run_cli("task", "create", "-n", "node-copy", *argv)
    assert done.code == 2, done.err
    assert message in done.err


def test_update_of_a_copy_task(home: Path, tmp_path: Path) -> None:
    assert create_copy().code == 0
    assert run_cli("task", "update", "-n", "node-copy", "--no-cache").code == 2
    moved = run_cli("task", "update", "-n", "node-copy", "--import", "node:22-alpine", "--status", "Disabled")
    assert moved.code == 0, moved.err
    assert moved.json()["step"]["importSource"] == "docker.io/library/node:22-alpine"
    assert moved.json()["status"] == "Disabled"
    # A build task takes no --import.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    assert run_cli("task", "create", "-n", "app-task", "-c", str(ctx), "-t", f"{REG}/app:1").code == 0
    refused = run_cli("task", "update", "-n", "app-task", "--import", "node:20")
    assert refused.code == 2
    assert "builds a Dockerfile; --import is only for copy tasks" in refused.err


def test_a_new_source_forgets_the_recorded_digest() -> None:
    task = imports.new_task("node-copy", _changes(import_source="node:20", images=(f"{REG}/base/node:20",)))
    done = _ran(task, Future())
    recorded = replace(task, step=replace(task.step, base_image_dependencies=done))
    same = imports.updated_task(recorded, _changes(import_source="node:20"))
    assert same.step.base_image_dependencies == done
    moved = imports.updated_task(recorded, _changes(import_source="node:22"))
    assert moved.step.base_image_dependencies is None


def test_import_targets() -> None:
    source = ImageRef.parse("ghcr.io/org/tool:1.2")
    assert str(imports.target_of(source, None, REG)) == f"{REG}/org/tool:1.2"
    assert str(imports.target_of(source, "tools/tool:1", REG)) == f"{REG}/tools/tool:1"
    with pytest.raises(ValidationError, match="required: -t/--image"):
        imports.target_of(source, None, None)
    with pytest.raises(ValidationError, match="has no tag to keep"):
        imports.target_of(ImageRef.parse(f"ghcr.io/org/tool@{DIGEST}"), None, REG)
    with pytest.raises(ValidationError, match="cannot name a digest"):
        imports.target_of(source, f"{REG}/tool@{DIGEST}", None)
    # A digest copied to the tag it came from is allowed: that pins the tag back.
    pinned = ImageRef.parse(f"{REG}/tool:1@{DIGEST}")
    assert str(imports.target_of(pinned, f"{REG}/tool:1", None)) == f"{REG}/tool:1"


class FutureCopier:
    """Hands out a future the test settles (or never settles): the run's waiting, not a copy."""

    def __init__(self, future: Future[CopyResult]) -> None:
        self.future = future
        self.asked: list[tuple[str, str, bool]] = []

    def start_copy(self, source: ImageRef, target: ImageRef, *, force: bool = False, log_line=None):
        self.asked.append((str(source), str(target), force))
        return self.future


def _changes(**fields):
    from acrtask.task_changes import TaskChanges

    return TaskChanges(**fields)


def _ran(task: Task, future: Future[CopyResult]):
    source, target = ImageRef.parse(task.step.import_source or ""), ImageRef.parse(task.step.image_names[0])
    future.set_result(CopyResult(source, target, DIGEST, "application/vnd.oci.image.index.v1+json"))
    copier = FutureCopier(future)
    dependencies, pushed = imports.run(task, copier, lambda line: None, threading.Event())
    assert copier.asked == [(str(source), str(target), True)]  # a run always overwrites its copy
    assert [(p.repository, p.tag, p.digest) for p in pushed] == [(target.repository, target.tag, DIGEST)]
    return tuple(dependencies)


def test_a_copy_run_records_the_source_at_the_digest_copied() -> None:
    task = imports.new_task("node-copy", _changes(import_source="node:20", images=(f"{REG}/base/node:20",)))
    [dep] = _ran(task, Future())
    assert (dep.type, dep.image.registry, dep.image.repository, dep.image.tag, dep.digest) == (
        DependencyType.RUNTIME, "docker.io", "library/node", "20", DIGEST)
    assert dep.platform_digest is None and not dep.pinned  # every platform is copied: any move runs it


def test_a_copy_run_stops_on_cancel_and_on_timeout() -> None:
    task = imports.new_task("node-copy", _changes(import_source="node:20", images=(f"{REG}/base/node:20",),
                                                  timeout=5))
    cancel = threading.Event()
    cancel.set()
    pending: Future[CopyResult] = Future()
    with pytest.raises(BuildCanceledError):
        imports.run(task, FutureCopier(pending), lambda line: None, cancel)
    assert pending.cancelled()
    ticks = iter([0.0, 10.0])
    pending = Future()
    with pytest.raises(BuildTimeoutError, match="timeout"):
        imports.run(task, FutureCopier(pending), lambda line: None, threading.Event(), clock=lambda: next(ticks))
    assert pending.cancelled()
