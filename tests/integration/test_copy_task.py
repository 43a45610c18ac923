"""Copy tasks end to end: a "public" registry holds the source, the tasks' registry holds the copy, and an
app is built FROM the copy with real buildah."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support import LocalRegistry, head_digest, push_base_image
from tests.support.registry import REGISTRY_BIN

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(registry: LocalRegistry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


@pytest.fixture
def upstream() -> Iterator[LocalRegistry]:
    """Stands in for docker.io: another registry the tasks never push to."""
    assert os.access(REGISTRY_BIN, os.X_OK), f"{REGISTRY_BIN} is missing (package docker-registry)"
    with LocalRegistry() as reg:
        yield reg


def copy_task(bench: Workbench, upstream: LocalRegistry) -> str:
    source = push_base_image(upstream.host, "library/node:20", "node-v1", env=bench.env)
    done = bench.acrtask("task", "create", "-n", "node-copy", "--import", f"{upstream.host}/library/node:20",
                         "-t", bench.image("base/node:20"), "-o", "none")
    assert done.code == 0, done.err
    first = bench.run("node-copy")
    assert first.code == 0, first.err
    assert "Pushed manifest" in first.out  # the run's log shows the copy
    assert bench.digest("base/node", "20") == source
    return source


def test_a_copy_task_whose_source_did_not_move_does_nothing(bench: Workbench, upstream: LocalRegistry) -> None:
    source = copy_task(bench, upstream)
    [dep] = bench.task("node-copy")["step"]["baseImageDependencies"]
    assert (dep["registry"], dep["repository"], dep["tag"], dep["digest"]) == (
        upstream.host, "library/node", "20", source)
    before = len(bench.registry.access_log())
    done = bench.acrtask("task", "watch", "--once")
    assert done.code == 0, done.err
    assert len(bench.runs()) == 1
    assert not [r for r in bench.registry.access_log()[before:] if r[0] in ("PUT", "POST")]  # nothing pushed


def test_a_moved_source_is_imported_again_and_what_is_built_from_the_copy_rebuilds_once_in_order(
        bench: Workbench, upstream: LocalRegistry) -> None:
    old = copy_task(bench, upstream)
    ctx = bench.context("app", f"FROM {bench.image('base/node:20')}\nRUN echo app > /app\n")
    bench.create("app-task", ctx, "app:latest")
    assert bench.run("app-task").code == 0
    quiet = bench.acrtask("task", "watch", "--once")
    assert quiet.code == 0, quiet.err
    assert len(bench.runs()) == 2

    new = push_base_image(upstream.host, "library/node:20", "node-v2", env=bench.env)
    done = bench.acrtask("task", "watch", "--once")
    assert done.code == 0, done.err
    runs = bench.runs()[2:]
    assert [(r["task"], r["status"]) for r in runs] == [("node-copy", "Succeeded"), ("app-task", "Succeeded")]
    copied, rebuilt = runs
    assert copied["trigger"] == {"kind": "BaseImageUpdate", "baseImage": f"{upstream.host}/library/node:20",
                                 "oldDigest": old, "newDigest": new}
    assert copied["outputImages"] == [{"registry": bench.host, "repository": "base/node", "tag": "20",
                                       "digest": new}]
    assert head_digest(bench.host, "base/node", "20") == new  # the copy is the source, by digest
    assert rebuilt["trigger"]["baseImage"] == bench.image("base/node:20")
    assert rebuilt["trigger"]["newDigest"] == new
    assert rebuilt["trigger"]["upstreamRunId"] == copied["runId"]
    assert rebuilt["startTime"] >= copied["finishTime"]
    assert bench.task("node-copy")["step"]["baseImageDependencies"][0]["digest"] == new
    # Consumed: checking again runs nothing.
    assert bench.acrtask("task", "watch", "--once").code == 0
    assert len(bench.runs()) == 4
