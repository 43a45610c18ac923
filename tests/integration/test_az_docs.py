"""Command lines from Azure's ACR Tasks tutorials, run as they are written, against local registries.

Only the registry and the context are swapped: `$ACR_NAME` / `$BASE_ACR` are registry *names* that
`acrtask registry add` points at local registries (their `.azurecr.io` login servers become the local ones),
and the GitHub context becomes a local git repository holding the sample's Dockerfiles. Where ACR's service
acts on its own (noticing a pushed base), `acrtask task watch --once` stands in for it. `az acr build` lines
(quick tasks) are not here: they are `acrtask build`, from the multi-step work.

Sources (MicrosoftDocs/azure-management-docs, articles/container-registry/):
- container-registry-tutorial-base-image-update.md
- container-registry-tasks-scheduled.md
- container-registry-tutorial-private-base-image-update.md (and -tasks-cross-registry-authentication.md)
- container-registry-tutorial-multistep-task.md (`az acr task logs`)
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support import ALICE, head_digest, push_base_image
from tests.support.cli import Result

pytestmark = pytest.mark.integration

GIT_PAT = "ghp_notarealtokenbutkeptsecret0123456789"
SAMPLE = "https://github.com/$GIT_USER/acr-build-helloworld-node.git"


class Docs:
    """Runs `az acr ...` lines from the docs as `acrtask ...` with the registries and context swapped."""

    def __init__(self, bench: Workbench, base_host: str, context: Path) -> None:
        self.bench = bench
        self.swaps = [
            (f"{SAMPLE}#master", str(context)), (f"{SAMPLE}#main", str(context)),
            ("$ACR_NAME.azurecr.io", bench.host), ("$BASE_ACR.azurecr.io", base_host),
            ("$ACR_NAME", "myregistry"), ("$BASE_ACR", "mybaseregistry"), ("$GIT_PAT", GIT_PAT),
        ]

    def az(self, line: str) -> Result:
        for before, after in self.swaps:
            line = line.replace(before, after)
        argv = shlex.split(line)
        assert argv[:2] == ["az", "acr"], line
        done = self.bench.acrtask(*argv[2:])
        assert GIT_PAT not in done.out + done.err
        return done


def _table(done: Result) -> list[list[str]]:
    """The rows of `-o table` output, split on runs of 2+ spaces (blank cells are lost: fine for these checks)."""
    import re

    return [re.split(r"\s{2,}", row.strip()) for row in done.out.splitlines()[2:]]


def _sample_repo(folder: Path, registry_name_arg: str) -> Path:
    """The sample's two Dockerfiles, in a local git repository (the commit trigger's kind of context)."""
    folder.mkdir()
    (folder / "Dockerfile-app").write_text(
        "ARG REGISTRY_NAME\nFROM ${REGISTRY_NAME}/baseimages/node:15-alpine\nCOPY hello.txt /hello.txt\n")
    (folder / "Dockerfile").write_text(f"FROM {registry_name_arg}/baseimages/node:15-alpine\n")
    (folder / "hello.txt").write_text("Hello World!\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "sample"]):
        subprocess.run(["git", "-C", str(folder), *argv], check=True, capture_output=True, timeout=30)
    return folder


@pytest.fixture
def docs(registry, auth_registry, tmp_path: Path, buildah_env: dict[str, str]) -> Docs:
    bench = Workbench(registry, tmp_path, buildah_env)
    config = tmp_path / "docker"  # the user's `docker login` to the base registry (--use-identity falls back to it)
    config.mkdir()
    login = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": login}}}))
    bench.env.update(DOCKER_CONFIG=str(config))
    for name, server in (("myregistry", registry.host), ("mybaseregistry", auth_registry.host)):
        assert bench.acrtask("registry", "add", name, server).code == 0
    return Docs(bench, auth_registry.host, _sample_repo(tmp_path / "acr-build-helloworld-node", registry.host))


def test_base_image_update_tutorial(docs: Docs) -> None:
    bench = docs.bench
    push_base_image(bench.host, "baseimages/node:15-alpine", "15.2.1", env=bench.env)  # `az acr build` of the base

    created = docs.az("""az acr task create \
    --registry $ACR_NAME \
    --name baseexample1 \
    --image helloworld:{{.Run.ID}} \
    --arg REGISTRY_NAME=$ACR_NAME.azurecr.io \
    --context https://github.com/$GIT_USER/acr-build-helloworld-node.git#master \
    --file Dockerfile-app \
    --git-access-token $GIT_PAT""")
    assert created.code == 0, created.err
    task = created.json()
    assert (task["registry"], task["step"]["imageNames"], task["step"]["contextAccessToken"]) == (
        bench.host, ["helloworld:{{.Run.ID}}"], None)
    assert task["id"] == f"/registries/{bench.host}/tasks/baseexample1"
    assert task["type"] == "Microsoft.ContainerRegistry/registries/tasks"

    ran = docs.az("az acr task run --registry $ACR_NAME --name baseexample1")
    assert ran.code == 0, ran.err + ran.out
    assert ran.err.splitlines()[0] == "Queued a run with ID: ca1"
    assert ran.out.rstrip().splitlines()[-1].startswith("Run ID: ca1 was successful after")
    assert head_digest(bench.host, "helloworld", "ca1")  # pushed under the registry's login server

    listed = docs.az("az acr task list-runs --registry $ACR_NAME --output table")
    assert listed.out.splitlines()[0].split()[:8] == ["RUN", "ID", "TASK", "PLATFORM", "STATUS", "TRIGGER",
                                                      "STARTED", "DURATION"]  # az's columns (then acrtask's AGENT)
    assert _table(listed)[0][:5] == ["ca1", "baseexample1", "linux", "Succeeded", "Manual"]

    push_base_image(bench.host, "baseimages/node:15-alpine", "15.2.1a", env=bench.env)  # the base's "patch"
    assert bench.acrtask("task", "watch", "--once").code == 0  # what ACR's service does by itself

    listed = docs.az("az acr task list-runs --registry $ACR_NAME --output table")
    assert _table(listed)[0][:5] == ["ca2", "baseexample1", "linux", "Succeeded", "Image Update"]
    assert head_digest(bench.host, "helloworld", "ca2")

    disabled = docs.az("az acr task update --registry $ACR_NAME --name baseexample1 --base-image-trigger-enabled False")
    assert disabled.code == 0 and disabled.json()["trigger"]["baseImageTrigger"]["status"] == "Disabled"


def test_scheduled_tutorial(docs: Docs) -> None:
    bench = docs.bench
    push_base_image(bench.host, "baseimages/node:15-alpine", "15", env=bench.env)
    created = docs.az("""az acr task create \
  --name timertask \
  --registry $ACR_NAME \
  --context https://github.com/$GIT_USER/acr-build-helloworld-node.git#master \
  --file Dockerfile \
  --image timertask:{{.Run.ID}} \
  --git-access-token $GIT_PAT \
  --schedule "0 21 * * *\"""")
    assert created.code == 0, created.err

    shown = docs.az("az acr task show --name timertask --registry $ACR_NAME --output table")
    assert shown.out.splitlines()[0].split() == ["NAME", "PLATFORM", "STATUS", "SOURCE", "REPOSITORY", "TRIGGERS"]
    assert _table(shown)[0][0] == "timertask" and _table(shown)[0][-1] == "BASE_IMAGE, SOURCE, TIMER"

    ran = docs.az("az acr task run --name timertask --registry $ACR_NAME")
    assert ran.code == 0, ran.err + ran.out
    listed = docs.az("az acr task list-runs --name timertask --registry $ACR_NAME --output table")
    assert _table(listed)[0][:5] == ["ca1", "timertask", "linux", "Succeeded", "Manual"]

    added = docs.az("""az acr task timer add \
  --name timertask \
  --registry $ACR_NAME \
  --timer-name timer2 \
  --schedule "30 10 * * *\"""")
    assert added.code == 0 and added.json()["name"] == "timertask"  # the task, as az returns it
    updated = docs.az("""az acr task timer update \
  --name timertask \
  --registry $ACR_NAME \
  --timer-name timer2 \
  --schedule "30 11 * * *\"""")
    assert updated.code == 0
    timers = docs.az("az acr task timer list --name timertask --registry $ACR_NAME").json()
    assert sorted(timers, key=lambda t: t["name"]) == [
        {"name": "t1", "schedule": "0 21 * * *", "status": "Enabled"},
        {"name": "timer2", "schedule": "30 11 * * *", "status": "Enabled"}]
    removed = docs.az("""az acr task timer remove \
  --name timertask \
  --registry $ACR_NAME \
  --timer-name timer2""")
    assert removed.code == 0 and [t["name"] for t in removed.json()["trigger"]["timerTriggers"]] == ["t1"]


def test_private_base_image_update_tutorial(docs: Docs, auth_registry) -> None:
    bench = docs.bench
    push_base_image(auth_registry.host, "baseimages/node:15-alpine", "15", creds=ALICE, env=bench.env)
    created = docs.az("""az acr task create \
    --registry $ACR_NAME \
    --name baseexample2 \
    --image helloworld:{{.Run.ID}} \
    --context https://github.com/$GIT_USER/acr-build-helloworld-node.git#main \
    --file Dockerfile-app \
    --git-access-token $GIT_PAT \
    --arg REGISTRY_NAME=$BASE_ACR.azurecr.io \
    --assign-identity""")
    assert created.code == 0, created.err
    assert created.err == "WARNING: Ignored here (no meaning outside Azure): --assign-identity.\n"

    principal = docs.az("az acr task show --name baseexample2 --registry $ACR_NAME --query identity.principalId "
                        "--output tsv")
    assert (principal.code, principal.out) == (0, "")  # no managed identity here: nothing to print

    added = docs.az("""az acr task credential add \
  --name baseexample2 \
  --registry $ACR_NAME \
  --login-server $BASE_ACR.azurecr.io \
  --use-identity [system] """)
    assert added.code == 0, added.err
    assert list(added.json()) == [auth_registry.host]

    ran = docs.az("az acr task run --registry $ACR_NAME --name baseexample2")
    assert ran.code == 0, ran.err + ran.out
    listed = docs.az("az acr task list-runs --registry $ACR_NAME --output table")
    assert _table(listed)[0][:5] == ["ca1", "baseexample2", "linux", "Succeeded", "Manual"]

    logs = docs.az("az acr task logs --registry $ACR_NAME")
    assert logs.err.splitlines() == ["Showing logs of the last created run.", "Run ID: ca1"]
    assert logs.out.rstrip().splitlines()[-1].startswith("Run ID: ca1 was successful after")

    # The task belongs to myregistry: another registry does not see it, as in az.
    other = bench.acrtask("task", "show", "-n", "baseexample2", "-r", "mybaseregistry")
    assert other.code == 3 and other.err.startswith(
        f"ERROR: The task 'baseexample2' could not be found in the registry {auth_registry.host}.")
