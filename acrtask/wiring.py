"""The composition root: the one place acrtask's parts are built and put together, for the CLI and for watch.

A `Program` builds each part the first time it is asked for and shares it from then on, so a command opens
the state database once, and watch's stores, runs and builds share one database and one registry client.
Commands get their services from `program()` and never construct a store, a database or a registry client
themselves (tests/test_layers.py keeps acrtask.cli from importing those modules). `cli/app.main` ends each
command's Program (`end()`): tests run many commands, in many homes, in one process.

Each part imports what it builds when it is first asked for, as the commands did before: `task list` pays
for neither the registry client nor the builders.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from acrtask import paths

if TYPE_CHECKING:
    from acrtask.builders.base import Builder
    from acrtask.builders.endpoint import Endpoint
    from acrtask.builders.pool import Pool
    from acrtask.builders.remote import RemoteEngine
    from acrtask.endpoint_service import EndpointService
    from acrtask.endpoints import EndpointStore
    from acrtask.model import Task
    from acrtask.notify.store import NotifyStore
    from acrtask.platform import Platform
    from acrtask.reference import ImageRef
    from acrtask.registry import BlockingRegistryClient, CopyResult, Resolved
    from acrtask.registry.http import ReplyHook
    from acrtask.run_record import Run
    from acrtask.run_service import RunService
    from acrtask.runner import Runner
    from acrtask.runs import RunStore
    from acrtask.service import TaskService
    from acrtask.state import Database, StateStore
    from acrtask.state.aliases import RegistryAliases
    from acrtask.tag_checker import RegistryTagChecker
    from acrtask.watch.commits import CommitPoller
    from acrtask.watch.loop import Watcher
    from acrtask.watch.options import WatchOptions
    from acrtask.watch.serve import Address, WatchService
    from acrtask.watch.view import WatchView

T = TypeVar("T")


class Program:
    """acrtask's parts, each built on first use and then shared (from any thread)."""

    def __init__(self) -> None:
        self._parts: dict[str, Any] = {}
        self._lock = threading.RLock()  # build threads ask for parts too; building one may ask for another
        self._reply_hooks: list[ReplyHook] = []

    def _part(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._parts:
                self._parts[name] = build()
            return self._parts[name]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close what this program opened: the shared registry client and the state database."""
        with self._lock:
            parts, self._parts = self._parts, {}
        if "registry_client" in parts:
            parts["registry_client"].close()
        if "database" in parts:
            parts["database"].close()

    # -- the state: tasks, runs, registry aliases, notification targets ---------------------------------

    @property
    def database(self) -> Database:
        from acrtask.state import open_database

        return self._part("database", lambda: open_database(paths.state_db()))

    @property
    def state_store(self) -> StateStore:
        from acrtask.state import StateStore

        return self._part("state_store", lambda: StateStore(self.database))

    @property
    def run_store(self) -> RunStore:
        from acrtask.runs import RunStore

        return self._part("run_store", lambda: RunStore(self.database, paths.runs_dir()))

    @property
    def registry_aliases(self) -> RegistryAliases:
        from acrtask.state.aliases import RegistryAliases

        return self._part("registry_aliases", lambda: RegistryAliases(self.database))

    @property
    def notify_store(self) -> NotifyStore:
        from acrtask.notify.store import NotifyStore

        return self._part("notify_store", lambda: NotifyStore(paths.notify_file()))

    # -- services ---------------------------------------------------------------------------------------

    @property
    def task_service(self) -> TaskService:
        from acrtask.service import TaskService

        return self._part("task_service", lambda: TaskService(self.state_store))

    @property
    def run_service(self) -> RunService:
        from acrtask.run_service import RunService

        return self._part("run_service", lambda: RunService(self.task_service, self.run_store, self.runner))

    @property
    def endpoint_service(self) -> EndpointService:
        from acrtask.endpoint_service import EndpointService

        return self._part("endpoint_service", lambda: EndpointService(
            self.endpoint_store, self.build_pool, lambda endpoint: self.remote_engine(endpoint).probe()))

    # -- registries -------------------------------------------------------------------------------------

    @property
    def registry_client(self) -> BlockingRegistryClient:
        """The shared client. Its logins: any task's credentials for a server, then the Docker config."""
        from acrtask.registry import BlockingRegistryClient
        from acrtask.task_credentials import AllTasksCredentials

        return self._part("registry_client", lambda: BlockingRegistryClient(
            credentials=AllTasksCredentials(lambda: self.state_store.all()), on_reply=self._replied))

    def task_registry_client(self, task: Task) -> BlockingRegistryClient:
        """A client of its own for a run of a task with credentials (the run closes it): that task's logins,
        then the Docker config."""
        from acrtask.registry import BlockingRegistryClient
        from acrtask.task_credentials import TaskCredentialSource

        return BlockingRegistryClient(credentials=TaskCredentialSource(task.credentials), on_reply=self._replied)

    def observe_registry_replies(self, hook: ReplyHook) -> None:
        """Have `hook(method, url, status, seconds)` called for every registry request's answer (watch's metrics)."""
        self._reply_hooks.append(hook)

    def _replied(self, method: str, url: Any, status: int | None, seconds: float) -> None:
        for hook in self._reply_hooks:
            hook(method, url, status, seconds)

    @property
    def tag_checker(self) -> RegistryTagChecker:
        from acrtask.tag_checker import RegistryTagChecker

        return self._part("tag_checker", lambda: RegistryTagChecker(self.registry_client))

    def resolve_image(self, ref: ImageRef, platform: Platform | None) -> Resolved:
        """`image digest`: a one-off client (the Docker config's logins), closed afterwards."""
        from acrtask.registry import resolve_sync

        return resolve_sync(ref, platform)

    def import_image(self, source: ImageRef, target: ImageRef, *, force: bool, login: tuple[str, str] | None,
                     log_line: Callable[[str], None]) -> CopyResult:
        """`image import`: a one-off client; `login` (user, password) for the source, else the Docker config's."""
        from acrtask.registry import Credentials, DockerCredentials, GivenCredentials, copy_sync

        options: dict[str, Any] = {}
        if login is not None:
            options["credentials"] = GivenCredentials(source.registry, Credentials(*login), DockerCredentials())
        return copy_sync(source, target, force=force, log_line=log_line, **options)

    # -- builds -----------------------------------------------------------------------------------------

    @property
    def endpoint_store(self) -> EndpointStore:
        from acrtask.endpoints import EndpointStore

        return self._part("endpoint_store", lambda: EndpointStore(paths.builders_file()))

    @property
    def build_pool(self) -> Pool:
        """The pool of build endpoints (their health is this program's view; their slots are shared by all)."""
        from acrtask.builders.pool import Pool, SlotFiles

        return self._part("build_pool", lambda: Pool(self.endpoint_store, SlotFiles(paths.home() / "slots"),
                                                     lambda endpoint: self.remote_engine(endpoint).probe()))

    def remote_engine(self, endpoint: Endpoint, env: Mapping[str, str] | None = None) -> RemoteEngine:
        from acrtask.builders.remote import RemoteEngine
        from acrtask.reference import ImageRef
        from acrtask.registry.credentials import DockerCredentials

        def digest_of(image: str) -> str:
            return str(self.registry_client.resolve(ImageRef.parse(image)).digest)

        return RemoteEngine(endpoint, env=env, credentials=DockerCredentials(env).get, digest_of=digest_of,
                            buildx_config=paths.home() / "buildx")

    def build_env(self, run: Run) -> dict[str, str]:
        """A build's environment: this process's, tagged with the run so that its leftovers can be found."""
        from acrtask.process import RUN_TAG

        return {**os.environ, RUN_TAG: self.run_store.process_tag(run.run_id)}

    def builder_for(self, task: Task, run: Run) -> Builder:
        """A build endpoint when there are any (the pool places it), else the task's builder on this machine.

        A multi-step task stays on this machine: its cmd and push steps use the images its build steps made,
        in this machine's engine.
        """
        env, pool, runs = self.build_env(run), self.build_pool, self.run_store
        if task.step.is_multistep or not pool.endpoints():
            from acrtask.builders.local import select

            return select(str(task.builder), env)
        from acrtask.builders.pooled import PooledBuilder

        def note(**changes: Any) -> None:
            runs.save(replace(runs.get(run.run_id), **changes))

        return PooledBuilder(pool, self.remote_engine, env, on_placed=lambda endpoint: note(agent=endpoint.name),
                             on_lost=lambda endpoint: note(agent=endpoint.name, agent_lost=True))

    @property
    def runner(self) -> Runner:
        return self._part("runner", self._runner)

    def _runner(self) -> Runner:
        from acrtask.multistep import engine
        from acrtask.runner import Runner
        from acrtask.workspace import Workspace

        return Runner(
            state=self.state_store, runs=self.run_store, resolver=self.registry_client,
            builder_for=self.builder_for, workspace_for=lambda task: Workspace(),
            copier=self.registry_client, registry_for=self.task_registry_client,
            engine_for=lambda builder, run: engine.for_builder(builder.name, self.build_env(run)),
        )

    # -- watch ------------------------------------------------------------------------------------------

    def commit_poller(self, interval: float) -> CommitPoller:
        from acrtask.watch.commits import CommitPoller
        from acrtask.workspace import ls_remote

        return CommitPoller(ls_remote, interval)

    def watcher(self, view: WatchView, options: WatchOptions, service: WatchService) -> Watcher:
        """The watch loop over this program's stores, registry client and runs, reporting to `view` and to the
        service's observers; the build endpoints' changes go to its log, and each endpoint is asked once now
        (in the background) so the view shows their state. The service's listeners start, feeding it."""
        from acrtask.watch.loop import Watcher

        pool = self.build_pool
        watcher = Watcher(self.state_store, self.run_store, self.tag_checker, self.run_service, view, options,
                          commits=self.commit_poller(options.commit_poll_interval), observer=service.observers,
                          endpoint_status=lambda: tuple(pool.status()))
        pool.on_event = watcher.note  # endpoints going down and coming back, in the log
        pool.check_all_in_background()
        service.attach(watcher.note, watcher.notify_push)
        return watcher

    def watch_service(self, listen: Address | None, metrics_listen: Address | None) -> WatchService:
        """What makes watch a service (metrics, health, the status page, webhooks, notifications out)."""
        from acrtask.watch import serve

        pool = self.build_pool
        return serve.build(
            listen=listen, metrics_listen=metrics_listen, environ=os.environ, state_probe=self.state_store.probe,
            recent_runs=self.run_store.all, notify_store=self.notify_store, log_line=lambda line: None,
            observe_registry=self.observe_registry_replies,
            endpoints=lambda: [(status.name, status.state == "up") for status in pool.status()])


_current: Program | None = None


def program() -> Program:
    """The parts of the command being run (made on first use)."""
    global _current
    if _current is None:
        _current = Program()
    return _current


def end() -> None:
    """The command is over: close what its parts opened; the next command starts with a new Program."""
    global _current
    ended, _current = _current, None
    if ended is not None:
        ended.close()
