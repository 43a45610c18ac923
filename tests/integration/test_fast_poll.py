"""A push to the tasks' own registry by another tool triggers the dependent through the fast poll: no webhook,
no `--listen`, and the slow interval left at 10-60 minutes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support.waiting import wait_for
from tests.support.watch_process import app_on_base

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def test_a_buildah_push_to_the_tasks_registry_triggers_within_the_fast_interval(bench: Workbench,
                                                                                 tmp_path: Path) -> None:
    old = app_on_base(bench)  # base pushed by buildah; app-task builds FROM it and pushes to the same registry
    log = tmp_path / "watch.log"
    base_heads = "/v2/baseimages/node/manifests/1"

    def heads() -> int:
        return sum(1 for method, path, _ in bench.registry.access_log() if method == "HEAD" and path == base_heads)

    before = heads()
    with open(log, "w") as err:
        watch = subprocess.Popen([sys.executable, "-m", "acrtask", "task", "watch", "--fast-poll-interval", "1s"],
                                 env=bench.env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        # Polled again and again (not only the check at start) before anything is pushed.
        wait_for(lambda: heads() >= before + 2, 60, "two polls of the base by watch")
        new = bench.push_base("baseimages/node:1", "v2")  # `buildah push`, not acrtask
        wait_for(lambda: len(bench.runs("app-task")) == 2 and bench.runs("app-task")[-1]["status"] == "Succeeded",
                 120, "the app rebuilt after the push")
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=60)
    assert watch.returncode == 0, log.read_text()
    rebuilt = bench.runs("app-task")[-1]
    assert rebuilt["trigger"] == {"kind": "BaseImageUpdate", "baseImage": bench.image("baseimages/node:1"),
                                  "oldDigest": old, "newDigest": new}  # no upstreamRunId: another tool pushed
    said = log.read_text()
    assert (f"Schedule: {bench.host} is polled every 1s (fast: tasks push there): 1 base tag(s): "
            "baseimages/node:1.") in said
    assert "Listening for registry webhooks" not in said
