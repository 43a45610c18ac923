"""One run of a task, start to finish: scan the Dockerfile, resolve its bases, build, push, record.

Whatever goes wrong inside a run ends the run (Failed, Timeout, Canceled) with its message; it
does not escape as an exception, so every run leaves a finished record and a log. The digests of
the bases are resolved *before* the build and recorded after it succeeds: if a tag moves during
the build, the next check sees the difference, and no update is missed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from acrtask import context as contexts
from acrtask import dockerfile, explain, imports, instructions, task_credentials
from acrtask.builders.base import Builder, BuildSpec
from acrtask.dependency import BaseImageDependency
from acrtask.errors import AcrTaskError, BuildCanceledError, BuildTimeoutError
from acrtask.insecure import insecure_registries
from acrtask.model import Argument, Task
from acrtask.multistep import engine as engines
from acrtask.multistep import run as multistep
from acrtask.multistep import templates
from acrtask.multistep.kinds import NO_CONTEXT
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.run_record import Run, RunStatus, RunTrigger, RunType, StepRecord
from acrtask.runs import RunStore
from acrtask.state import StateStore
from acrtask.times import parse_time

log = logging.getLogger("acrtask.runner")

_SCAN_POLL = 0.05  # how often a scan's wait looks at cancel and the deadline
BASE_NAME_ANNOTATION = "org.opencontainers.image.base.name"
BASE_DIGEST_ANNOTATION = "org.opencontainers.image.base.digest"


class ResolvedDigest(Protocol):  # read-only, so that registry.Resolved (a frozen dataclass) is one
    @property
    def digest(self) -> str: ...

    @property
    def platform_digest(self) -> str | None: ...


class DigestResolver(Protocol):
    def resolve(self, ref: ImageRef, platform: Platform | None = None) -> ResolvedDigest: ...


class ContextWorkspace(Protocol):
    """A build context made ready on disk: a local folder as is, or a fresh clone of a git context."""

    def prepare(self, task: Task, log: Callable[[str], None],
                cancel: threading.Event | None = None) -> tuple[Path, str | None]: ...

    def cleanup(self) -> None: ...


LogSink = Callable[[str], None]


def build_arguments(arguments: tuple[Argument, ...],
                    environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Plain and secret build args; a value left out is read from the environment at run time (az)."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for arg in arguments:
        value = arg.value if arg.value is not None else environ.get(arg.name, "")
        (secret if arg.is_secret else plain)[arg.name] = value
    return plain, secret


def fill_in(image: str, task: Task, run: Run, commit: str | None) -> str:
    """A `-t` name with its run variables ({{.Run.ID}}, {{.Run.Date}}, ...) filled in for this run."""
    start = parse_time(run.start_time) if run.start_time else parse_time(run.create_time)
    values = templates.RunValues(
        id=run.run_id, registry=task.registry, date=start.strftime(templates.DATE_FORMAT), os=task.platform.os,
        architecture=task.platform.architecture, commit=commit or "", task_name=task.name)
    return templates.render(image, values.fields())


class Runner:
    def __init__(self, state: StateStore, runs: RunStore, resolver: DigestResolver,
                 builder_for: Callable[[Task, Run], Builder], workspace_for: Callable[[Task], ContextWorkspace],
                 environ: Mapping[str, str] | None = None, copier: imports.ImageCopier | None = None,
                 engine_for: Callable[[Builder, Run], engines.StepEngine] | None = None,
                 registry_for: Callable[[Task], AbstractContextManager[Any]] | None = None) -> None:
        self.copier = copier  # copy tasks' runs import through it (imports.py)
        # multi-step tasks push and run containers with the engine that goes with the builder
        self.engine_for = engine_for or (lambda builder, run: engines.for_builder(builder.name))
        self.registry_for = registry_for  # a client of its own for a task with credentials (resolves and copies)
        self.state = state
        self.runs = runs
        self.resolver = resolver
        self.builder_for = builder_for
        self.workspace_for = workspace_for
        self.environ = dict(os.environ if environ is None else environ)

    def queue(self, task: Task, trigger: RunTrigger, run_type: RunType | None = None) -> Run:
        """A Queued run; `run_type` for `acrtask build` / `acrtask run`."""
        run = self.runs.create(task, trigger)
        return self.runs.save(replace(run, run_type=run_type)) if run_type else run

    def execute(self, run: Run, task: Task, emit: LogSink, cancel: threading.Event,
                extra_args: tuple[Argument, ...] = ()) -> Run:
        """Run a queued run to its end and return the finished record.

        One run per task at a time, across processes: a second one waits, Queued, for the first.
        `acrtask task cancel-run` from another shell reaches the run through its cancel marker.
        """
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel_marker, args=(run.run_id, cancel, done), daemon=True)
        watcher.start()
        try:
            # a quick run (no task name) locks nothing: two `acrtask build`s may run at once
            with self.runs.task_lock(task.name, cancel) if task.name else contextlib.nullcontext():
                if cancel.is_set():
                    return self.runs.finish(run, RunStatus.CANCELED, "canceled before it started")
                return self._execute(run, task, emit, cancel, extra_args)
        finally:
            done.set()
            self.runs.clear_cancel(run.run_id)

    def _watch_cancel_marker(self, run_id: str, cancel: threading.Event, done: threading.Event) -> None:
        while not done.wait(0.3):
            if self.runs.cancel_requested(run_id):
                cancel.set()
                return

    def _execute(self, run: Run, task: Task, emit: LogSink, cancel: threading.Event,
                 extra_args: tuple[Argument, ...]) -> Run:
        run = self.runs.save(replace(run, status=RunStatus.RUNNING, start_time=self.runs.now(), pid=os.getpid()))
        with self.runs.open_log(run.run_id) as log_file:
            secrets: list[str] = []

            def redact(text: str) -> str:
                # The builder redacts its own output; this covers our messages and error texts too.
                for value in secrets:
                    if value:
                        text = text.replace(value, "***")
                return text

            def sink(line: str) -> None:
                line = redact(line)
                log_file.write(line.rstrip("\n") + "\n")
                emit(line)

            def end(status: RunStatus, what: str, error: str) -> Run:
                message = redact(error)
                sink(f"{what}: {message}")
                # The latest record keeps what the run learned before it ended (its commit).
                return self.runs.finish(self.runs.get(run.run_id), status, message)

            workspace = self.workspace_for(task)
            try:
                args = tuple({a.name: a for a in task.step.arguments + task.step.values + extra_args}.values())
                plain, secret = build_arguments(args, self.environ)
                secrets.extend(secret.values())
                secrets.extend(task_credentials.secrets_of(task.credentials))
                secrets.extend(filter(None, [task.step.context_access_token]))
                with self._clients(task) as (resolver, copier):
                    return self._build(run, task, plain, secret, workspace, sink, cancel, resolver, copier)
            except BuildTimeoutError as exc:
                return end(RunStatus.TIMEOUT, "Run timed out", str(exc))
            except BuildCanceledError as exc:
                return end(RunStatus.CANCELED, "Run was canceled", str(exc))
            except AcrTaskError as exc:
                return end(RunStatus.FAILED, "Run failed", str(exc))
            except Exception as exc:  # a bug or an unforeseen failure: the run still ends, recorded
                return end(RunStatus.ERROR, "Run ended in error", f"{type(exc).__name__}: {exc}")
            finally:
                workspace.cleanup()

    @contextmanager
    def _clients(self, task: Task) -> Iterator[tuple[DigestResolver, imports.ImageCopier | None]]:
        """The registry client a run resolves and copies with: its own, with the task's logins first, when the
        task has credentials (`task credential add`); else the shared one."""
        if not task.credentials or self.registry_for is None:
            yield self.resolver, self.copier
            return
        with self.registry_for(task) as client:
            yield client, client

    def _build(self, run: Run, task: Task, plain: dict[str, str], secret: dict[str, str], workspace: ContextWorkspace,
               sink: LogSink, cancel: threading.Event, resolver: DigestResolver,
               copier: imports.ImageCopier | None) -> Run:
        sink(f"Run ID: {run.run_id}, task {task.name or '(quick run)'}: {explain.reason(run.trigger)}")
        if task.step.is_import:
            if copier is None:
                raise AcrTaskError(f"The task '{task.name}' is a copy task, and this runner cannot copy images.")
            dependencies, pushed = imports.run(task, copier, sink, cancel)
            return self._succeeded(run, task.name, dependencies, pushed, sink)
        if task.step.is_multistep:
            return self._multistep(run, task, plain, secret, workspace, sink, cancel)
        context_dir, commit = workspace.prepare(task, sink, cancel)
        if commit:
            run = self.runs.save(replace(run, commit_id=commit))
        file = Path(task.step.docker_file_path)
        dockerfile_path = file if file.is_absolute() else context_dir / file
        try:
            instructions.check_file_size(dockerfile_path.stat().st_size)  # before reading a huge file
            text = dockerfile_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise AcrTaskError(f"Cannot read the Dockerfile {dockerfile_path}: {reason}.",
                               "Check -f/--file and the context.") from exc
        started = time.monotonic()
        scan = _scan_within(text, {**plain, **secret}, task.step.target, float(task.timeout), cancel)
        budget = max(float(task.timeout) - (time.monotonic() - started), 1.0)  # the scan's time is the run's
        dependencies = self._resolve(scan, task, sink, resolver)

        outputs = [ImageRef.parse(fill_in(name, task, run, commit)) for name in task.qualified_image_names]
        annotations = {}
        if scan.runtime is not None:
            runtime_dep = dependencies[0]
            annotations = {BASE_NAME_ANNOTATION: str(scan.runtime.image),
                           BASE_DIGEST_ANNOTATION: runtime_dep.digest or ""}
        spec = BuildSpec(
            context_dir=context_dir, dockerfile=dockerfile_path, images=tuple(str(o) for o in outputs),
            build_args=plain, secret_args=secret, target=task.step.target, platform=task.platform,
            no_cache=task.step.no_cache, push=task.step.is_push_enabled,
            insecure_registries=insecure_registries(outputs + [b.image for b in scan.bases], self.environ),
            annotations=annotations, timeout=budget,
        )
        builder = self.builder_for(task, run)
        sink(f"Building with {builder.name} for {task.platform}: {', '.join(spec.images) or '(no tags)'}")
        registries = [o.registry for o in outputs] + [b.image.registry for b in scan.bases]
        with task_credentials.build_auth(task, registries) as auth_file:
            result = builder.build(replace(spec, auth_file=auth_file), sink, cancel)
        pushed = tuple(replace(ref, digest=result.pushed[str(ref)]) for ref in outputs if str(ref) in result.pushed)
        return self._succeeded(run, task.name, dependencies, pushed, sink)

    def _succeeded(self, run: Run, task_name: str, dependencies: list[BaseImageDependency],
                   pushed: tuple[ImageRef, ...], sink: LogSink) -> Run:
        self._record_dependencies(task_name, dependencies)
        sink(_dependency_report(dependencies))
        # The latest record: the builder may have noted where it built (a build endpoint).
        run = self.runs.finish(self.runs.get(run.run_id), RunStatus.SUCCEEDED, output_images=pushed)
        sink(f"Run ID: {run.run_id} was successful after {_seconds(run)}s")
        return run

    def _multistep(self, run: Run, task: Task, plain: dict[str, str], secret: dict[str, str],
                   workspace: ContextWorkspace, sink: LogSink, cancel: threading.Event) -> Run:
        """A multi-step task's run (multistep/run.py): its steps run, then what they used is recorded."""
        context_dir: Path | None = None
        commit = branch = None
        if task.step.context_path != NO_CONTEXT:
            context_dir, commit = workspace.prepare(task, sink, cancel)
            branch = contexts.parse(task.step.context_path).branch
            if commit:
                run = self.runs.save(replace(run, commit_id=commit))
        given = [(name, value, False) for name, value in plain.items()]
        given += [(name, value, True) for name, value in secret.items()]
        job = multistep.job(task, run, context_dir, commit, branch, given, self.environ)
        builder = self.builder_for(task, run)
        lock = threading.Lock()

        def save_steps(records: list[StepRecord]) -> None:
            with lock:
                self.runs.save(replace(self.runs.get(run.run_id), steps=tuple(records)))

        result = multistep.execute(
            job, builder, self.engine_for(builder, run), self._resolve_bases,
            lambda ref: bool(insecure_registries([ref], self.environ)), save_steps, self.runs.now, sink, cancel)
        self._record_dependencies(task.name, result.dependencies, result.stable_images)
        sink(_dependency_report(result.dependencies) if result.dependencies else
             "The following dependencies were found: none.")
        run = self.runs.finish(self.runs.get(run.run_id), RunStatus.SUCCEEDED, output_images=result.pushed)
        sink(f"Run ID: {run.run_id} was successful after {_seconds(run)}s")
        return run

    def _resolve(self, scan: dockerfile.ScanResult, task: Task, sink: LogSink,
                 resolver: DigestResolver) -> list[BaseImageDependency]:
        """Digests of every base, runtime first, taken before the build starts."""
        return self._resolve_bases(scan.bases, task.platform, sink, resolver)

    def _resolve_bases(self, bases: Sequence[dockerfile.BaseImage], default: Platform,
                       sink: LogSink, resolver: DigestResolver | None = None) -> list[BaseImageDependency]:
        found = []
        for base in bases:
            platform = base.platform or default
            resolved = (resolver or self.resolver).resolve(base.image, platform)
            sink(f"Base image {base.image}: {resolved.digest}")
            found.append(BaseImageDependency(
                type=base.type, image=replace(base.image, digest=None), digest=resolved.digest,
                platform_digest=resolved.platform_digest, platform=platform, pinned=base.image.is_pinned,
            ))
        return found

    def _record_dependencies(self, task_name: str, dependencies: list[BaseImageDependency],
                             pushes: tuple[str, ...] | None = None) -> None:
        """The bases a run used; for a multi-step task also what it pushes under stable names. Only this
        task's rows are written; a task deleted while it built has nothing to record on."""
        if not task_name:  # a quick run: no task to record on
            return
        if pushes is None:
            self.state.record_dependencies(task_name, dependencies)
            return
        with self.state.transaction() as tx:
            task = tx.get(task_name)
            if task is None:
                return
            tx.put(replace(task, step=replace(task.step, image_names=pushes)))
            tx.record_dependencies(task_name, dependencies)


def _scan_within(text: str, build_args: Mapping[str, str], target: str | None, timeout: float,
                 cancel: threading.Event) -> dockerfile.ScanResult:
    """Scan the Dockerfile under the run's timeout and cancel.

    The size limits bound the scan (well under a second); the worker only lets a timeout or a cancel end
    the run at once, whatever the scan is doing. A scan left behind finishes on its own, unobserved.
    """
    outcome: list[dockerfile.ScanResult | BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append(dockerfile.scan(text, build_args, target))
        except BaseException as exc:  # handed to the run's thread, which reports it
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="dockerfile-scan", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(max(0.0, min(_SCAN_POLL, deadline - time.monotonic()))):
        if cancel.is_set():
            raise BuildCanceledError("The run was canceled while its Dockerfile was being scanned.")
        if time.monotonic() >= deadline:
            raise BuildTimeoutError(f"Scanning the Dockerfile did not finish within the task's timeout "
                                    f"({timeout:g} s).", "Allow more time with --timeout, or simplify the Dockerfile.")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _dependency_report(dependencies: list[BaseImageDependency]) -> str:
    if not dependencies:
        return "The following dependencies were found: none (FROM scratch)."
    lines = ["The following dependencies were found:"]
    for dep in dependencies:
        lines.append(f"- {dep.type}: {dep.image.name}:{dep.image.tag} {dep.digest}")
    return "\n".join(lines)


def _seconds(run: Run) -> int:
    duration = run.duration_seconds()
    return round(duration) if duration is not None else 0
