"""One run of a multi-step task: the task file read and checked, its steps run, what they used recorded.

The run works in a fresh folder: a copy of the context (so steps that write to /workspace never touch
your sources), mounted at /workspace in every cmd step and used as the root of build contexts;
`{{.Run.SharedVolume}}` is its path on this host. Build steps build into the builder's local storage
(scanning each Dockerfile as Docker tasks are scanned, with the digests of its bases resolved just
before the build); push steps push from there; cmd steps run containers from there or a registry.
The Runner records the result (runner.py): the bases of every build step, with the step they came
from, and the images pushed.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from acrtask import dockerfile, instructions
from acrtask.builders.base import Builder, BuildSpec
from acrtask.dependency import BaseImageDependency
from acrtask.errors import AcrTaskError, BuildCanceledError, BuildError, BuildTimeoutError, ValidationError
from acrtask.model import Task
from acrtask.multistep import document, templates
from acrtask.multistep.document import Loaded
from acrtask.multistep.engine import Container, StepEngine
from acrtask.multistep.executor import Ending, Executor, StepContext
from acrtask.multistep.spec import DEFAULT_WORKING_DIRECTORY, StepSpec
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.run_record import Run, StepRecord
from acrtask.times import parse_time

Log = Callable[[str], None]
Resolve = Callable[[Sequence[dockerfile.BaseImage], Platform, Log], list[BaseImageDependency]]
WORKSPACE = DEFAULT_WORKING_DIRECTORY  # where the run's folder is mounted in cmd steps


@dataclass(frozen=True)
class Job:
    """Everything one multi-step run needs, gathered by the Runner."""

    task: Task
    run: Run
    text: str  # the task file
    file_name: str  # for error messages
    inputs: document.Inputs
    context_dir: Path | None  # None: no context (-c /dev/null)
    commit: str | None
    branch: str | None
    date: str  # {{.Run.Date}}
    secrets: tuple[str, ...]  # values to hide in logs
    environ: Mapping[str, str]


@dataclass(frozen=True)
class Result:
    dependencies: list[BaseImageDependency]
    pushed: tuple[ImageRef, ...]
    stable_images: tuple[str, ...]  # pushed names that every run pushes the same (no {{.Run.ID}})


def run_values(job: Job, shared_volume: str, *, volatile: str | None = None) -> templates.RunValues:
    """The run's variables; with `volatile`, those that change per run get made-up values instead."""
    return templates.RunValues(
        id=volatile or job.run.run_id, registry=job.task.registry, date=volatile or job.date,
        os=job.task.platform.os, architecture=job.task.platform.architecture,
        commit=volatile or job.commit or "", branch=job.branch or "", task_name=job.task.name,
        shared_volume=volatile or shared_volume,
    )


def load(job: Job, shared_volume: str = WORKSPACE) -> Loaded:
    reader = None
    if job.context_dir is not None:
        context = job.context_dir

        def reader(path: str) -> str:
            return _read_text(context / path, "alias file")

    return document.load(job.text, job.file_name, run_values(job, shared_volume), job.inputs, job.task.registry,
                         reader)


def stable_pushes(job: Job, loaded: Loaded) -> tuple[str, ...]:
    """Pushed names that do not change from run to run: the same when the run's variables change."""
    try:
        other = document.load(job.text, job.file_name, run_values(job, "", volatile="acrtaskvolatile0"),
                              job.inputs, job.task.registry)
    except ValidationError:
        return ()
    names = []
    for step, twin in zip(loaded.file.steps, other.file.steps, strict=True):
        names += [image for image, again in zip(step.push, twin.push, strict=False) if image == again]
    return tuple(dict.fromkeys(names))


def execute(job: Job, builder: Builder, engine: StepEngine, resolve: Resolve, is_insecure: Callable[[ImageRef], bool],
            save_steps: Callable[[list[StepRecord]], None], now: Callable[[], str], log: Log,
            cancel: threading.Event) -> Result:
    """Run every step; raise (AcrTaskError, BuildTimeoutError, BuildCanceledError) when the run does not succeed."""
    folder = Path(tempfile.mkdtemp(prefix="acrtask-run-"))
    try:
        workspace = folder / "workspace"
        if job.context_dir is not None:
            shutil.copytree(job.context_dir, workspace, symlinks=True)
        else:
            workspace.mkdir()
        loaded = load(job, str(workspace))
        steps = _Steps(job, loaded, workspace, folder / "volumes", builder, engine, resolve, is_insecure)
        total = min(job.task.timeout, loaded.file.total_timeout or job.task.timeout)
        outcome = Executor(loaded, steps.perform, log, cancel, total_timeout=total, now=now,
                           on_change=save_steps).run()
        steps.finish(log)
        if outcome.ending is Ending.CANCELED:
            raise BuildCanceledError(outcome.error or "canceled", "Run the task again when you are ready.")
        if outcome.ending is Ending.TIMEOUT:
            raise BuildTimeoutError(outcome.error or "timed out", "Allow more time with --timeout or totalTimeout.")
        if outcome.ending is Ending.FAILED:
            raise AcrTaskError(outcome.error or "a step failed")  # the step's error says what to do
        records = outcome.records.values()
        dependencies = [dep for record in records for dep in record.dependencies]
        pushed = tuple(image for record in records for image in record.output_images)
        return Result(dependencies, pushed, stable_pushes(job, loaded))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise BuildError(f"Cannot read the {what} {path}: {reason}.", "Check the path and the context.") from exc


class _Steps:
    """What each kind of step does."""

    def __init__(self, job: Job, loaded: Loaded, workspace: Path, volumes: Path, builder: Builder, engine: StepEngine,
                 resolve: Resolve, is_insecure: Callable[[ImageRef], bool]) -> None:
        self.job, self.loaded, self.workspace = job, loaded, workspace
        self.builder, self.engine, self.resolve, self.is_insecure = builder, engine, resolve, is_insecure
        self.built = {tag for step in loaded.file.steps if step.build for tag in step.build.tags}
        self.volumes = self._write_volumes(volumes)
        self.secrets = tuple(job.secrets) + tuple(
            content.decode("utf-8", "replace") for volume in loaded.file.volumes for _, content in volume.files)
        self.local_images: list[str] = []  # tags made up for builds without -t, removed at the end
        self.detached: list[tuple[str, threading.Thread, threading.Event]] = []

    def perform(self, context: StepContext) -> None:
        kind = context.step.kind
        if kind == "build":
            self._build(context)
        elif kind == "push":
            self._push(context)
        else:
            self._cmd(context)

    def finish(self, log: Log) -> None:
        """Stop detached containers (the run is over) and remove the images made up for untagged builds."""
        for step_id, thread, stop in self.detached:
            stop.set()
            thread.join()
            log(f"Stopped the detached step {step_id}.")
        for image in self.local_images:
            self.engine.remove_image(image, log)

    # -- build ---------------------------------------------------------------------------------------

    def _build(self, context: StepContext) -> None:
        step = context.step
        build = step.build
        assert build is not None
        folder = self._host_folder(step)
        build_context = (folder / build.context).resolve()
        if not build_context.is_dir():
            raise BuildError(f"The build context {build.context} is not a folder of the run's workspace.",
                             "Give the context relative to the step's working directory.")
        file = self._dockerfile(folder, build_context, build.file)
        env = dict(entry.split("=", 1) for entry in self._env(step))
        args = {name: env.get(name) if value is None else value for name, value in build.build_args}
        plain = {name: value for name, value in args.items() if value is not None and value not in self.secrets}
        secret = {name: value for name, value in args.items() if value is not None and value in self.secrets}
        instructions.check_file_size(file.stat().st_size)  # as for Dockerfile tasks: before reading it
        scan = dockerfile.scan(_read_text(file, "Dockerfile"), {**plain, **secret}, build.target)
        external = [base for base in scan.bases if _name(base.image) not in self.built]
        for base in scan.bases:
            if base not in external:
                context.log(f"Base image {base.image} is built by this task file: not an external base.")
        platform = Platform.parse(build.platform, source="--platform") if build.platform else self.job.task.platform
        dependencies = [replace(dep, step=step.id) for dep in self.resolve(external, platform, context.log)]
        tags = build.tags
        if not tags:
            tags = (f"localhost/acrtask-{self.job.run.run_id}-{_safe(step.id)}:latest",)
            self.local_images.append(tags[0])
        annotations = {}
        if scan.runtime is not None and scan.runtime in external:
            annotations = {"org.opencontainers.image.base.name": str(scan.runtime.image),
                           "org.opencontainers.image.base.digest": dependencies[0].digest or ""}
        refs = [ImageRef.parse(tag) for tag in tags] + [base.image for base in scan.bases]
        spec = BuildSpec(
            context_dir=build_context, dockerfile=file, images=tags, build_args=plain, secret_args=secret,
            target=build.target, platform=platform, no_cache=build.no_cache, push=False,
            insecure_registries=frozenset(ref.registry for ref in refs if self.is_insecure(ref)),
            annotations=annotations, labels=dict(build.labels), timeout=context.remaining(),
        )
        self.builder.build(spec, context.log, context.stop)
        context.record = replace(context.record, images=build.tags, dependencies=tuple(dependencies))

    def _dockerfile(self, folder: Path, build_context: Path, file: str | None) -> Path:
        if file is None:
            return build_context / "Dockerfile"
        for candidate in (folder / file, build_context / file):  # docker: the working directory; ACR: the context
            if candidate.is_file():
                return candidate.resolve()
        raise BuildError(f"The Dockerfile {file} does not exist in the step's working directory or its context.",
                         "Give -f relative to the step's working directory.")

    def _host_folder(self, step: StepSpec) -> Path:
        """The step's working directory on this host: build steps work inside the run's folder."""
        where = posixpath.normpath(posixpath.join(WORKSPACE, self.loaded.file.working_directory_of(step) or "."))
        if where != WORKSPACE and not where.startswith(WORKSPACE + "/"):
            raise BuildError(f"The working directory {where} of build step {step.id} is outside {WORKSPACE}.",
                             f"Build steps work in the run's folder, mounted at {WORKSPACE}.")
        return self.workspace / posixpath.relpath(where, WORKSPACE)

    # -- push ----------------------------------------------------------------------------------------

    def _push(self, context: StepContext) -> None:
        pushed = []
        for image in context.step.push:
            ref = ImageRef.parse(image)
            digest = self.engine.push(image, self.is_insecure(ref), context.log, context.stop, context.deadline,
                                      self.secrets)
            context.log(f"Pushed {image}: {digest}")
            pushed.append(replace(ref, digest=digest))
        context.record = replace(context.record, output_images=tuple(pushed))

    # -- cmd -----------------------------------------------------------------------------------------

    def _cmd(self, context: StepContext) -> None:
        step = context.step
        image = step.cmd[0]
        workdir = self.loaded.file.working_directory_of(step)
        mounts = [(str(self.workspace), WORKSPACE, False)]
        mounts += [(str(self.volumes[m.name]), m.mount_path, True) for m in step.volume_mounts]
        container = Container(
            name=f"acrtask-{self.job.run.run_id}-{_safe(step.id)}-{uuid.uuid4().hex[:6]}", image=image,
            args=step.cmd[1:], entry_point=step.entry_point,
            env=tuple(tuple(entry.split("=", 1)) for entry in self._env(step)),  # type: ignore[misc]
            workdir=None if workdir is None else posixpath.join(WORKSPACE, workdir), user=step.user,
            mounts=tuple(mounts), pull_always=step.pull, insecure=self.is_insecure(ImageRef.parse(image)),
            keep=step.keep,
        )
        if step.detach:
            self._detach(context, container)
            return
        code = self.engine.run(container, context.log, context.stop, context.deadline, self.secrets)
        if code != 0:
            how = f"exit code {code}" if code > 0 else f"signal {-code}"
            raise BuildError(f"The command in {image} failed ({how}).", "Read the step's log for the cause.")

    def _detach(self, context: StepContext, container: Container) -> None:
        stop = threading.Event()
        log = context.log

        def background() -> None:
            try:
                code = self.engine.run(container, log, stop, None, self.secrets)
                if not stop.is_set():
                    log(f"The detached step {context.step.id} ended by itself (exit code {code}).")
            except BuildCanceledError:
                pass  # stopped at the end of the run, as intended
            except AcrTaskError as exc:
                log(f"The detached step {context.step.id} ended: {exc}")

        thread = threading.Thread(target=background, name=f"detached-{context.step.id}", daemon=True)
        thread.start()
        self.detached.append((context.step.id, thread, stop))
        log(f"Started {container.name} in the background; it is stopped when the run ends.")

    def _env(self, step: StepSpec) -> list[str]:
        """The task's env under the step's (a step's entry wins), as ACR merges them."""
        names = {entry.split("=", 1)[0] for entry in step.env}
        return [*step.env, *(entry for entry in self.loaded.file.env if entry.split("=", 1)[0] not in names)]

    def _write_volumes(self, root: Path) -> dict[str, Path]:
        folders = {}
        for volume in self.loaded.file.volumes:
            folder = root / volume.name
            folder.mkdir(parents=True, mode=0o700)
            for name, content in volume.files:
                path = folder / name
                path.touch(mode=0o600)
                path.write_bytes(content)
            folders[volume.name] = folder
        return folders


def _name(ref: ImageRef) -> str:
    return str(ImageRef(ref.registry, ref.repository, ref.tag, None))


def _safe(step_id: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in step_id).lower()




def job(task: Task, run: Run, context_dir: Path | None, commit: str | None, branch: str | None,
        given: Sequence[tuple[str, str, bool]], environ: Mapping[str, str], encoded_name: str = "acb.yaml") -> Job:
    """A run's inputs: the task file and values file (from the context, or the task's encoded content)."""
    step = task.step
    if step.encoded_task_content is not None:
        text, name = document.decode(step.encoded_task_content, "the task's encoded task file"), encoded_name
        values_text = None if step.encoded_values_content is None else document.decode(
            step.encoded_values_content, "the task's encoded values file")
        values_name = "values file"
    else:
        if context_dir is None or step.task_file_path is None:
            raise ValidationError(f"The task '{task.name}' has no task file to read.", "Recreate it with -f FILE.")
        text = _read_text(context_dir / step.task_file_path, "task file")
        name = step.task_file_path
        values_name = step.values_file_path or ""
        values_text = None if not step.values_file_path else _read_text(context_dir / step.values_file_path,
                                                                         "values file")
    start = parse_time(run.start_time) if run.start_time else datetime.now(UTC)
    return Job(task=task, run=run, text=text, file_name=name, inputs=document.inputs(values_text, values_name, given),
               context_dir=context_dir, commit=commit, branch=branch,
               date=start.astimezone(UTC).strftime(templates.DATE_FORMAT),
               secrets=tuple(value for _, value, secret in given if secret and value), environ=environ)
