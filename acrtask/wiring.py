"""Real parts put together for the CLI: the state database, runs, the registry client, builders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cache
from typing import Any

from acrtask import builders, paths
from acrtask.builders.endpoint import Endpoint
from acrtask.builders.pool import Pool, SlotFiles
from acrtask.builders.pooled import PooledBuilder
from acrtask.builders.remote import RemoteEngine
from acrtask.endpoints import EndpointStore
from acrtask.errors import AcrTaskError
from acrtask.model import Argument, Run, RunStatus, RunTrigger, Task
from acrtask.platform import DEFAULT_PLATFORM, Platform
from acrtask.process import RUN_TAG
from acrtask.reference import ImageRef
from acrtask.runner import Runner
from acrtask.runs import RunStore, pid_alive
from acrtask.service import RunOverrides, TaskService
from acrtask.state import Database, StateStore, open_database
from acrtask.triggers import BaseKey
from acrtask.workspace import Workspace

DETACHED_ARGS_ENV = "ACRTASK_RUN_ARGS"  # extra args of a --no-wait run, for the child (not on its argv)
DETACHED_OVERRIDES_ENV = "ACRTASK_RUN_OVERRIDES"  # its -c/-f/--target


def database() -> Database:
    return open_database(paths.state_db())


def state_store(db: Database | None = None) -> StateStore:
    return StateStore(db or database())


def run_store(db: Database | None = None) -> RunStore:
    return RunStore(db or database(), paths.runs_dir())


_reply_hooks: list[Callable[[str, Any, int | None, float], None]] = []


def observe_registry_replies(hook: Callable[[str, Any, int | None, float], None]) -> None:
    """Have `hook(method, url, status, seconds)` called for every registry request's answer (watch's metrics)."""
    _reply_hooks.append(hook)


def _replied(method: str, url: Any, status: int | None, seconds: float) -> None:
    for hook in _reply_hooks:
        hook(method, url, status, seconds)


@cache
def registry_client() -> Any:
    """The process's shared client. Its logins: any task's credentials for a server, then the Docker config."""
    from acrtask.registry import BlockingRegistryClient
    from acrtask.task_credentials import AllTasksCredentials

    return BlockingRegistryClient(credentials=AllTasksCredentials(lambda: state_store().all()),
                                  on_reply=_replied)


def task_registry_client(task: Task) -> Any:
    """A client of its own for a run of a task with credentials: that task's logins, then the Docker config."""
    from acrtask.registry import BlockingRegistryClient
    from acrtask.task_credentials import TaskCredentialSource

    return BlockingRegistryClient(credentials=TaskCredentialSource(task.credentials), on_reply=_replied)


class RegistryTagChecker:
    """The watch loop's view of the registry client: one HEAD per tag, platform digests on demand."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def digests(self, keys: list[BaseKey]) -> dict[BaseKey, str | Exception]:
        refs = {key: ImageRef(key.registry, key.repository, key.tag, None) for key in keys}
        results = self.client.check_many(list(refs.values()))
        return {key: (r if isinstance(r, Exception) else r.digest) for key, r in
                ((key, results[ref]) for key, ref in refs.items())}

    def platform_digest(self, key: BaseKey, digest: str, platform: str | None) -> str | None:
        ref = ImageRef(key.registry, key.repository, key.tag, None)
        return self.client.platform_digest(ref, digest, Platform.parse(platform) if platform else DEFAULT_PLATFORM)

    def cap_circuit(self, seconds: float) -> None:
        self.client.cap_circuit(seconds)


class RunService:
    """What `task run`, `cancel-run` and watch do with runs."""

    def __init__(self, tasks: TaskService, runs: RunStore, runner: Runner) -> None:
        self.tasks = tasks
        self.runs = runs
        self.runner = runner

    def task(self, name: str, registry: str | None = None) -> Task:
        return self.tasks.show(name, registry)

    def queue(self, task: Task, trigger: RunTrigger, run_type: str | None = None) -> Run:
        return self.runner.queue(task, trigger, run_type)

    def execute(self, run: Run, task: Task, emit: Callable[[str], None], cancel: threading.Event,
                extra_args: tuple[Argument, ...] = ()) -> Run:
        return self.runner.execute(run, task, emit, cancel, extra_args)

    def start_detached(self, run: Run, extra_args: tuple[Argument, ...],
                       overrides: RunOverrides | None = None) -> None:
        """`task run --no-wait`: a child process of its own session runs it; this one returns."""
        env = {**os.environ, DETACHED_ARGS_ENV: json.dumps([a.to_dict(reveal_secrets=True) for a in extra_args]),
               DETACHED_OVERRIDES_ENV: json.dumps((overrides or RunOverrides()).to_dict())}
        subprocess.Popen(  # noqa: S603 - our own interpreter and module, an argument list
            [sys.executable, "-m", "acrtask", "task", "execute-run", "--run-id", run.run_id, "-o", "none"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )

    def execute_detached(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run.status is not RunStatus.QUEUED:
            raise AcrTaskError(f"The run '{run_id}' is {run.status.value}, not Queued.")
        args = tuple(Argument.from_dict(a) for a in json.loads(os.environ.pop(DETACHED_ARGS_ENV, "[]")))
        overrides = RunOverrides.from_dict(json.loads(os.environ.pop(DETACHED_OVERRIDES_ENV, "{}")))
        run = self.runs.save(replace(run, pid=os.getpid()))
        return self.execute(run, overrides.apply(self.task(run.task)), lambda line: None, threading.Event(), args)

    def request_cancel(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run.status.is_terminal:
            raise AcrTaskError(f"The run '{run_id}' has already ended ({run.status.value}).")
        if not pid_alive(run.pid):  # nobody will see the marker: settle it here
            return self.runs.finish(run, RunStatus.CANCELED, "canceled by the user")
        self.runs.request_cancel(run_id)
        return run


def endpoint_store() -> EndpointStore:
    return EndpointStore(paths.builders_file())


def remote_engine(endpoint: Endpoint, env: Mapping[str, str] | None = None) -> RemoteEngine:
    from acrtask.registry.credentials import DockerCredentials

    def digest_of(image: str) -> str:
        return str(registry_client().resolve(ImageRef.parse(image)).digest)

    return RemoteEngine(endpoint, env=env, credentials=DockerCredentials(env).get, digest_of=digest_of,
                        buildx_config=paths.home() / "buildx")


@cache
def build_pool() -> Pool:
    """This process's pool of build endpoints (their health is per process; their slots are shared)."""
    return Pool(endpoint_store(), SlotFiles(paths.home() / "slots"), lambda endpoint: remote_engine(endpoint).probe())


def _builder_for(task: Task, run: Run, runs: RunStore, env: dict[str, str]) -> builders.Builder:
    """A build endpoint when there are any (the pool places it), else the task's builder on this machine.

    A multi-step task stays on this machine: its cmd and push steps use the images its build steps made,
    in this machine's engine.
    """
    pool = build_pool()
    if task.step.is_multistep or not pool.endpoints():
        return builders.select(str(task.builder), env)

    def note(**changes: Any) -> None:
        runs.save(replace(runs.get(run.run_id), **changes))

    return PooledBuilder(pool, remote_engine, env, on_placed=lambda endpoint: note(agent=endpoint.name),
                         on_lost=lambda endpoint: note(agent=endpoint.name, agent_lost=True))


def runner(environ: dict[str, str] | None = None, db: Database | None = None) -> Runner:
    from acrtask.multistep import engine

    db = db or database()
    runs = run_store(db)

    def build_env(run: Run) -> dict[str, str]:
        return {**os.environ, RUN_TAG: runs.process_tag(run.run_id)}

    return Runner(
        state=state_store(db), runs=runs, resolver=registry_client(),
        builder_for=lambda task, run: _builder_for(task, run, runs, build_env(run)),
        workspace_for=lambda task: Workspace(),
        environ=environ, copier=registry_client(), registry_for=task_registry_client,
        engine_for=lambda builder, run: engine.for_builder(builder.name, build_env(run)),
    )


def run_service(db: Database | None = None) -> RunService:
    db = db or database()
    return RunService(TaskService(state_store(db)), run_store(db), runner(db=db))
