"""The Dockerfile scan inside a run: its errors end the run Failed, and the run's timeout and cancel reach it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from acrtask import dockerfile
from acrtask.model import Run, RunStatus, RunTrigger, Step, Task
from tests.support.runner import offline_runner


def no_builder(task: Task, run: Run) -> None:
    raise AssertionError("a run whose Dockerfile cannot be scanned must not reach the builder")


def run_task(tmp_path: Path, text: str, timeout: int = 3600) -> tuple[Run, list[str]]:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(text)
    runner, cancel = offline_runner(tmp_path, no_builder)
    task = Task(name="scan-task", step=Step(context_path=str(ctx), image_names=("r.io/a:1",)), timeout=timeout)
    lines: list[str] = []
    finished = runner.execute(runner.queue(task, RunTrigger()), task, lines.append, cancel)
    assert runner.runs.get(finished.run_id).status is finished.status  # the record says the same
    return finished, lines


@pytest.mark.timeout(60)  # before the limits, a 10 MB line kept `task run` busy for more than 5 minutes
def test_an_oversized_dockerfile_fails_the_run_with_a_clear_error(tmp_path: Path) -> None:
    finished, lines = run_task(tmp_path, "FROM alpine\nRUN echo " + "x" * (10 * 1024 * 1024) + "\n")
    assert finished.status is RunStatus.FAILED
    assert finished.error is not None
    assert finished.error.startswith("The Dockerfile is 10,485,782 bytes; acrtask reads Dockerfiles of up to")
    assert lines[-1].startswith("Run failed: The Dockerfile is 10,485,782 bytes")


def test_deeply_nested_defaults_fail_the_run_with_the_line_not_a_recursion_error(tmp_path: Path) -> None:
    text = "ARG A\nFROM alpine:" + "${A:-" * 5000 + "3.19" + "}" * 5000 + "\n"
    finished, _ = run_task(tmp_path, text)
    assert finished.status is RunStatus.FAILED  # not Error with "RecursionError: ..."
    assert finished.error is not None
    assert finished.error.startswith("FROM on line 2: ")
    assert "nests ${...} more than 32 levels deep" in finished.error


@pytest.fixture
def slow_scan(monkeypatch: pytest.MonkeyPatch):
    """A scan that does not finish until the test ends (a stand-in for a pathological Dockerfile)."""
    release = threading.Event()
    started = threading.Event()

    def scan(text: str, build_args: object = None, target: object = None) -> dockerfile.ScanResult:
        started.set()
        release.wait(30)
        raise AssertionError("the run must not wait for this scan")

    monkeypatch.setattr(dockerfile, "scan", scan)
    yield started
    release.set()


def test_a_scan_slower_than_the_task_timeout_ends_the_run_as_timeout(tmp_path: Path,
                                                                    slow_scan: threading.Event) -> None:
    finished, lines = run_task(tmp_path, "FROM alpine\n", timeout=1)
    assert slow_scan.is_set()
    assert finished.status is RunStatus.TIMEOUT
    assert finished.error == ("Scanning the Dockerfile did not finish within the task's timeout (1 s). "
                              "Allow more time with --timeout, or simplify the Dockerfile.")
    assert lines[-1].startswith("Run timed out: Scanning the Dockerfile")


def test_cancel_reaches_a_scan_in_progress(tmp_path: Path, slow_scan: threading.Event) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM alpine\n")
    runner, cancel = offline_runner(tmp_path, no_builder)
    task = Task(name="scan-task", step=Step(context_path=str(ctx), image_names=("r.io/a:1",)))

    def cancel_once_scanning() -> None:
        if slow_scan.wait(30):
            cancel.set()

    canceller = threading.Thread(target=cancel_once_scanning, daemon=True)
    canceller.start()
    finished = runner.execute(runner.queue(task, RunTrigger()), task, lambda line: None, cancel)
    canceller.join(30)
    assert finished.status is RunStatus.CANCELED
    assert finished.error == "The run was canceled while its Dockerfile was being scanned."
