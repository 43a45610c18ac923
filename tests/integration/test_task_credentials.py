"""`task credential add`: a task builds FROM a base in a registry that needs a login (htpasswd), with the login
given to the task, and the password shows up nowhere: not in output, logs, run records, nor in the arguments or
environment of any process while the run builds."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support import ALICE, push_base_image

pytestmark = pytest.mark.integration

USER, PASSWORD = ALICE


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    made = Workbench(registry, tmp_path, buildah_env)
    empty = tmp_path / "docker-config"  # no login of the user's own may help the build
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    made.env.update(DOCKER_CONFIG=str(empty))
    for name in ("REGISTRY_AUTH_FILE", "DOCKER_AUTH_CONFIG"):
        made.env.pop(name, None)
    return made


class ProcessWatch:
    """Reads every process's argv and environment while a run builds; keeps those that hold `secret`."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.seen = 0  # processes looked at, so the test knows the watch saw the build
        self.leaks: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        for _ in range(20000):  # bounded: the run ends well before this many passes
            if self._stop.wait(0.01):
                return
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or int(entry.name) == os.getpid():
                    continue
                for part in ("cmdline", "environ"):
                    try:
                        data = (entry / part).read_bytes()
                    except OSError:  # gone, or not ours to read
                        continue
                    if b"buildah" in data:
                        self.seen += 1
                    if self.secret in data:
                        self.leaks.append(f"{entry.name}/{part}: {data[:200]!r}")


def test_a_task_login_pulls_its_base_and_the_password_is_never_shown(bench: Workbench, auth_registry) -> None:
    base = f"{auth_registry.host}/baseimages/node:15-alpine"
    first = push_base_image(auth_registry.host, "baseimages/node:15-alpine", "v1", creds=ALICE, env=bench.env)
    ctx = bench.context("app", f"FROM {base}\nRUN echo app > /app.txt\n")
    created = bench.acrtask("task", "create", "-n", "private-base", "-r", bench.host, "-c", str(ctx),
                            "-t", "app:{{.Run.ID}}", "-o", "none")
    assert created.code == 0, created.err

    # Without the login, the base cannot even be resolved: the registry wants credentials.
    refused = bench.run("private-base")
    assert refused.code == 1
    assert f"{auth_registry.host} requires a login" in refused.err, refused.err

    added = bench.acrtask("task", "credential", "add", "-n", "private-base", "-r", bench.host,
                          "--login-server", auth_registry.host, "-u", USER, "-p", PASSWORD)
    assert added.code == 0, added.err
    assert added.json() == {auth_registry.host: {"identity": None, "password": {"type": "Opaque", "value": None},
                                                 "userName": {"type": "Opaque", "value": USER}}}

    with ProcessWatch(PASSWORD) as watch:
        done = bench.run("private-base")
    assert done.code == 0, done.err + done.out
    assert watch.seen > 0, "the process watch never saw the build"
    assert watch.leaks == []

    task = bench.task("private-base")
    [dep] = task["step"]["baseImageDependencies"]
    assert (dep["type"], dep["registry"], dep["digest"]) == ("RunTime", auth_registry.host, first)
    run = bench.acrtask("task", "show-run", "--run-id", "ca2").json()
    assert run["status"] == "Succeeded" and run["outputImages"][0]["tag"] == "ca2"

    # Shown masked everywhere, revealed only when asked for; stored only in the private state file.
    shown = ""
    for argv in (["task", "show", "-n", "private-base"], ["task", "list", "-o", "yaml"],
                 ["task", "list", "-o", "table"], ["task", "credential", "list", "-n", "private-base"],
                 ["task", "show-run", "--run-id", "ca2"], ["task", "list-runs"], ["task", "logs", "--run-id", "ca2"],
                 ["task", "logs", "--run-id", "ca1"]):
        result = bench.acrtask(*argv)
        assert result.code == 0, (argv, result.err)
        shown += result.out + result.err
    shown += done.out + done.err + refused.out + refused.err + added.out + added.err
    shown += "".join(path.read_text(errors="replace") for path in (bench.home / "runs").iterdir() if path.is_file())
    assert PASSWORD not in shown
    revealed = bench.acrtask("task", "show", "-n", "private-base", "--with-secure-properties",
                             "--query", f"credentials.customRegistries.\"{auth_registry.host}\".password.value",
                             "-o", "tsv")
    assert revealed.out.strip() == PASSWORD
    state = bench.home / "state.db"
    stored = b"".join(path.read_bytes() for path in bench.home.glob("state.db*"))  # the database and its WAL
    assert PASSWORD.encode() in stored
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_watch_checks_a_private_base_with_the_task_login_and_rebuilds(bench: Workbench, auth_registry) -> None:
    push_base_image(auth_registry.host, "base:1", "v1", creds=ALICE, env=bench.env)
    ctx = bench.context("app", f"FROM {auth_registry.host}/base:1\n")
    assert bench.acrtask("task", "create", "-n", "private-app", "-r", bench.host, "-c", str(ctx),
                         "-t", "app:latest", "-o", "none").code == 0
    env = {**bench.env, "ACRTASK_CREDENTIAL_PASSWORD": PASSWORD}  # kept out of argv as the help says
    added = bench.acrtask("task", "credential", "add", "-n", "private-app", "--login-server", auth_registry.host,
                          "-u", USER, env=env)
    assert added.code == 0, added.err
    assert bench.run("private-app").code == 0

    moved = push_base_image(auth_registry.host, "base:1", "v2", creds=ALICE, env=bench.env)
    watched = bench.acrtask("task", "watch", "--once")
    assert watched.code == 0, watched.err
    runs = bench.runs("private-app")
    assert [(r["trigger"]["kind"], r["status"], r["runType"]) for r in runs] == [
        ("Manual", "Succeeded", "AutoRun"), ("BaseImageUpdate", "Succeeded", "AutoRun")]
    assert runs[-1]["imageUpdateTrigger"]["images"][0]["digest"] == moved
    assert PASSWORD not in watched.out + watched.err

    removed = bench.acrtask("task", "credential", "remove", "-n", "private-app", "--login-server", auth_registry.host)
    assert removed.code == 0 and removed.json() == {}
    again = bench.acrtask("task", "credential", "remove", "-n", "private-app", "--login-server", auth_registry.host)
    assert again.code == 3 and again.err.startswith(f"ERROR: Login server '{auth_registry.host}' not found.")
