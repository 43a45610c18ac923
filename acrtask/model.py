"""The task model: frozen values with one dict shape (az's camelCase) for storage and for output.

`to_dict(reveal_secrets=False)` is what users see; tasks are stored with
`reveal_secrets=True`. TOML has no null, so None values are left out of dicts and come back as
defaults in `from_dict`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from acrtask import stored
from acrtask.platform import Platform

DEFAULT_BASE_IMAGE_TRIGGER_NAME = "defaultBaseimageTriggerName"
DEFAULT_SOURCE_TRIGGER_NAME = "defaultSourceTriggerName"


class Status(StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class BaseImageTriggerType(StrEnum):
    ALL = "All"
    RUNTIME = "Runtime"


class DependencyType(StrEnum):
    RUNTIME = "RunTime"  # the API's spelling (BaseImageDependencyType); "Runtime" is read too
    BUILD_TIME = "BuildTime"

    @classmethod
    def parse(cls, text: str) -> DependencyType:
        """Any case: state files written before the API's spelling say "Runtime"."""
        for member in cls:
            if member.value.lower() == text.lower():
                return member
        raise ValueError(f"{text!r} is not a dependency type (RunTime or BuildTime)")


class StepType(StrEnum):
    DOCKER = "Docker"
    FILE_TASK = "FileTask"  # a multi-step task file read from the context at run time
    ENCODED_TASK = "EncodedTask"  # a multi-step task file stored in the task (base64)


class BuilderName(StrEnum):
    AUTO = "auto"
    BUILDAH = "buildah"
    DOCKER = "docker"
    PODMAN = "podman"


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class Argument:
    """A build argument. `value` None means: read the environment variable of that name at run time."""

    name: str
    value: str | None = None
    is_secret: bool = False

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        shown = self.value if (reveal_secrets or not self.is_secret) else None
        return _drop_none({"name": self.name, "value": shown, "isSecret": self.is_secret})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Argument:
        return cls(name=stored.text(data, "name"), value=stored.optional_text(data, "value"),
                   is_secret=bool(data.get("isSecret", False)))


@dataclass(frozen=True)
class BaseImageDependency:
    """A base image a build used, with the digests seen just before that build."""

    type: DependencyType
    registry: str
    repository: str
    tag: str | None
    digest: str | None
    platform_digest: str | None = None
    platform: str | None = None  # the platform the digest was chosen for (FROM --platform or the task's)
    pinned: bool = False  # FROM image@sha256:...: recorded, but can never trigger
    step: str | None = None  # the build step of a multi-step task whose Dockerfile uses it

    @property
    def image(self) -> str:
        """The tag watched, fully qualified: registry/repository:tag."""
        return f"{self.registry}/{self.repository}:{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "type": str(self.type), "registry": self.registry, "repository": self.repository,
            "tag": self.tag, "digest": self.digest, "platformDigest": self.platform_digest,
            "platform": self.platform, "isPinned": self.pinned or None, "stepId": self.step,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseImageDependency:
        return cls(
            type=DependencyType.parse(stored.text(data, "type")), registry=stored.text(data, "registry"),
            repository=stored.text(data, "repository"), tag=stored.optional_text(data, "tag"),
            digest=stored.optional_text(data, "digest"), platform_digest=stored.optional_text(data, "platformDigest"),
            platform=stored.optional_text(data, "platform"), pinned=bool(data.get("isPinned", False)),
            step=stored.optional_text(data, "stepId"),
        )


@dataclass(frozen=True)
class TimerTrigger:
    name: str
    schedule: str
    status: Status = Status.ENABLED

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "schedule": self.schedule, "status": str(self.status)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimerTrigger:
        return cls(name=stored.text(data, "name"), schedule=stored.text(data, "schedule"),
                   status=Status(data.get("status", "Enabled")))


@dataclass(frozen=True)
class SourceTrigger:
    """A commit trigger on a git context: the branch head is polled for new commits."""

    repository_url: str
    branch: str | None
    status: Status = Status.ENABLED
    name: str = DEFAULT_SOURCE_TRIGGER_NAME
    pull_request: bool = False  # --pull-request-trigger-enabled: recorded as az does; needs a webhook, not polled

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "sourceRepository": _drop_none({
                "sourceControlType": "Git", "repositoryUrl": self.repository_url, "branch": self.branch,
            }),
            "sourceTriggerEvents": ["commit", "pullrequest"] if self.pull_request else ["commit"],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceTrigger:
        repo = stored.table(data, "sourceRepository", {})
        return cls(
            repository_url=stored.text(repo, "repositoryUrl"), branch=stored.optional_text(repo, "branch"),
            status=Status(data.get("status", "Enabled")),
            name=stored.text(data, "name") if "name" in data else DEFAULT_SOURCE_TRIGGER_NAME,
            pull_request="pullrequest" in stored.strings(data, "sourceTriggerEvents"),
        )


class UpdateTriggerPayloadType(StrEnum):
    DEFAULT = "Default"
    TOKEN = "Token"  # the POST carries `Authorization: Bearer <the task's update trigger token>`


@dataclass(frozen=True)
class BaseImageTrigger:
    type: BaseImageTriggerType = BaseImageTriggerType.RUNTIME
    status: Status = Status.ENABLED
    name: str = DEFAULT_BASE_IMAGE_TRIGGER_NAME
    # Created with --base-image-trigger-enabled false: az sends no trigger at all, so `task show` has null
    # there. Stored as a disabled trigger that says so (the key `omitted`), shown as az shows it.
    omitted: bool = False
    # az's --update-trigger-endpoint: watch POSTs here when a base image update triggers the task.
    update_trigger_endpoint: str | None = None
    update_trigger_payload_type: UpdateTriggerPayloadType = UpdateTriggerPayloadType.DEFAULT
    update_trigger_token: str | None = None  # a secret: stored, never shown

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"baseImageTriggerType": str(self.type), "name": self.name, "status": str(self.status),
                                "omitted": self.omitted or None}
        if self.update_trigger_endpoint:
            data["updateTriggerEndpoint"] = self.update_trigger_endpoint
            data["updateTriggerPayloadType"] = str(self.update_trigger_payload_type)
        if self.update_trigger_token:
            # Shown as set, never by value (as a secret argument's value is left out).
            data["updateTriggerToken"] = self.update_trigger_token if reveal_secrets else None
            data["isUpdateTriggerTokenSet"] = True
        return _drop_none(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseImageTrigger:
        return cls(
            type=BaseImageTriggerType(data.get("baseImageTriggerType", "Runtime")),
            status=Status(data.get("status", "Enabled")),
            name=stored.text(data, "name") if "name" in data else DEFAULT_BASE_IMAGE_TRIGGER_NAME,
            omitted=bool(data.get("omitted", False)),
            update_trigger_endpoint=stored.optional_text(data, "updateTriggerEndpoint"),
            update_trigger_payload_type=UpdateTriggerPayloadType(data.get("updateTriggerPayloadType", "Default")),
            update_trigger_token=stored.optional_text(data, "updateTriggerToken"),
        )


@dataclass(frozen=True)
class Trigger:
    base_image: BaseImageTrigger = field(default_factory=BaseImageTrigger)
    timers: tuple[TimerTrigger, ...] = ()
    sources: tuple[SourceTrigger, ...] = ()

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        return {
            "baseImageTrigger": self.base_image.to_dict(reveal_secrets),
            "timerTriggers": [timer.to_dict() for timer in self.timers],
            "sourceTriggers": [source.to_dict() for source in self.sources],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        return cls(
            base_image=BaseImageTrigger.from_dict(stored.table(data, "baseImageTrigger", {})),
            timers=tuple(TimerTrigger.from_dict(t) for t in stored.tables(data, "timerTriggers")),
            sources=tuple(SourceTrigger.from_dict(s) for s in stored.tables(data, "sourceTriggers")),
        )

    def kinds(self) -> list[str]:
        """The TRIGGERS column of `task list -o table`: enabled trigger kinds, sorted as az does."""
        kinds = []
        if self.base_image.status is Status.ENABLED:
            kinds.append("BASE_IMAGE")
        if any(source.status is Status.ENABLED for source in self.sources):
            kinds.append("SOURCE")
        if any(timer.status is Status.ENABLED for timer in self.timers):
            kinds.append("TIMER")
        return kinds


@dataclass(frozen=True)
class Step:
    """What a run does: a Docker build of `docker_file_path` in `context_path`, pushed as `image_names`;
    or (FileTask, EncodedTask) the steps of a multi-step task file, filled in with `values`."""

    context_path: str
    docker_file_path: str = "Dockerfile"
    image_names: tuple[str, ...] = ()
    is_push_enabled: bool = True
    no_cache: bool = False
    target: str | None = None
    arguments: tuple[Argument, ...] = ()
    # None until a run discovers them (ACR needs one run first); () after a FROM scratch build.
    base_image_dependencies: tuple[BaseImageDependency, ...] | None = None
    type: StepType = StepType.DOCKER
    task_file_path: str | None = None  # FileTask: relative to the context
    values_file_path: str | None = None  # FileTask: relative to the context
    encoded_task_content: str | None = None  # EncodedTask: the task file, base64
    encoded_values_content: str | None = None  # EncodedTask: the values file, base64
    values: tuple[Argument, ...] = ()  # --set / --set-secret of a multi-step task
    import_source: str | None = None  # a copy task: its run imports this image to image_names[0], no build
    context_access_token: str | None = None  # --git-access-token: a secret, for https git contexts

    @property
    def is_import(self) -> bool:
        return self.import_source is not None

    @property
    def dependencies(self) -> tuple[BaseImageDependency, ...]:
        return self.base_image_dependencies or ()

    @property
    def is_multistep(self) -> bool:
        return self.type is not StepType.DOCKER

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        if self.is_multistep:
            return self._multistep_dict(reveal_secrets)
        return _drop_none({
            "type": "Import" if self.is_import else "Docker",
            "importSource": self.import_source,
            "contextPath": self.context_path,
            "contextAccessToken": self.context_access_token if reveal_secrets else None,
            "dockerFilePath": self.docker_file_path,
            "imageNames": list(self.image_names),
            "isPushEnabled": self.is_push_enabled,
            "noCache": self.no_cache,
            "target": self.target,
            "arguments": [arg.to_dict(reveal_secrets) for arg in self.arguments],
            "baseImageDependencies": None if self.base_image_dependencies is None else [
                dep.to_dict() for dep in self.base_image_dependencies],
        })

    def _multistep_dict(self, reveal_secrets: bool) -> dict[str, Any]:
        return _drop_none({
            "type": str(self.type),
            "contextPath": self.context_path,
            "contextAccessToken": self.context_access_token if reveal_secrets else None,
            "taskFilePath": self.task_file_path,
            "valuesFilePath": self.values_file_path,
            "encodedTaskContent": self.encoded_task_content,
            "encodedValuesContent": self.encoded_values_content,
            "values": [value.to_dict(reveal_secrets) for value in self.values],
            "imageNames": list(self.image_names) or None,  # what its last run pushed under stable tags
            "baseImageDependencies": None if self.base_image_dependencies is None else [
                dep.to_dict() for dep in self.base_image_dependencies],
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            # "Docker" and "Import" (a copy task, told by importSource) are both Docker-type steps here
            type=StepType(data["type"]) if data.get("type") in ("FileTask", "EncodedTask") else StepType.DOCKER,
            task_file_path=stored.optional_text(data, "taskFilePath"),
            values_file_path=stored.optional_text(data, "valuesFilePath"),
            encoded_task_content=stored.optional_text(data, "encodedTaskContent"),
            encoded_values_content=stored.optional_text(data, "encodedValuesContent"),
            values=tuple(Argument.from_dict(a) for a in stored.tables(data, "values")),
            context_path=stored.text(data, "contextPath"),
            docker_file_path=stored.text(data, "dockerFilePath") if "dockerFilePath" in data else "Dockerfile",
            image_names=stored.strings(data, "imageNames"),
            is_push_enabled=bool(data.get("isPushEnabled", True)),
            no_cache=bool(data.get("noCache", False)),
            target=stored.optional_text(data, "target"),
            arguments=tuple(Argument.from_dict(a) for a in stored.tables(data, "arguments")),
            base_image_dependencies=None if "baseImageDependencies" not in data else tuple(
                BaseImageDependency.from_dict(d) for d in stored.tables(data, "baseImageDependencies")
            ),
            import_source=data.get("importSource"),
            context_access_token=stored.optional_text(data, "contextAccessToken"),
        )


def _login_server(registry: str | None, image_names: Any) -> str | None:
    if registry:
        return registry
    from acrtask.reference import names_registry

    first = next(iter(image_names or ()), "")
    return first.partition("/")[0].lower() if first and names_registry(first) else None


def document_login_server(document: dict[str, Any]) -> str | None:
    """Task.login_server, read from a stored task document (no Task built)."""
    return _login_server(document.get("registry"), (document.get("step") or {}).get("imageNames"))


@dataclass(frozen=True)
class RegistryCredential:
    """A login for one registry (az's customRegistries entry). `identity` (a managed identity in Azure) has no
    meaning here: such an entry falls back to the Docker config's login for that server."""

    login_server: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity: str | None = None

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        def secret(value: str | None, shown: bool) -> dict[str, Any] | None:
            return None if value is None else {"type": "Opaque", "value": value if shown else None}

        return {"userName": secret(self.username, True), "password": secret(self.password, reveal_secrets),
                "identity": self.identity}


def credentials_dict(credentials: tuple[RegistryCredential, ...], reveal_secrets: bool) -> dict[str, Any] | None:
    """az's `credentials` object; TOML has no null, so the empty parts are dropped (None when there is none)."""
    if not credentials:
        return None
    return {"customRegistries": {c.login_server: _drop_none_deep(c.to_dict(reveal_secrets)) for c in credentials},
            "sourceRegistry": {"loginMode": "Default"}}


def _drop_none_deep(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none_deep(v) if isinstance(v, dict) else v) for k, v in values.items() if v is not None}


def credentials_from_dict(data: dict[str, Any]) -> tuple[RegistryCredential, ...]:
    found = []
    for server, entry in stored.table(data, "customRegistries", {}).items():
        if not isinstance(entry, dict):
            raise TypeError(f"the credential for {server!r} must be a table")
        user, password = entry.get("userName") or {}, entry.get("password") or {}
        found.append(RegistryCredential(login_server=server, username=stored.optional_text(user, "value"),
                                        password=stored.optional_text(password, "value"),
                                        identity=stored.optional_text(entry, "identity")))
    return tuple(found)


@dataclass(frozen=True)
class Task:
    name: str
    step: Step
    platform: Platform = field(default_factory=lambda: Platform("linux", "amd64"))
    status: Status = Status.ENABLED
    trigger: Trigger = field(default_factory=Trigger)
    timeout: int = 3600
    builder: BuilderName = BuilderName.AUTO
    creation_date: str = ""
    # The login server of -r: the registry the task belongs to, where short -t go, {{.Run.Registry}}.
    registry: str | None = None
    credentials: tuple[RegistryCredential, ...] = ()  # `task credential add`: logins for other registries

    @property
    def login_server(self) -> str | None:
        """The registry the task belongs to: its -r, else (tasks made before -r was kept) its first image's."""
        return _login_server(self.registry, self.step.image_names)

    @property
    def qualified_image_names(self) -> tuple[str, ...]:
        """The -t names with the registry's login server in front of short ones, as ACR pushes them."""
        from acrtask.reference import names_registry

        return tuple(name if names_registry(name) or not self.registry else f"{self.registry}/{name}"
                     for name in self.step.image_names)

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        return _drop_none({
            "name": self.name,
            "status": str(self.status),
            "platform": self.platform.to_dict(),
            "step": self.step.to_dict(reveal_secrets),
            "trigger": self.trigger.to_dict(reveal_secrets),
            "timeout": self.timeout,
            "builder": str(self.builder),
            "creationDate": self.creation_date,
            "registry": self.registry,
            "credentials": credentials_dict(self.credentials, reveal_secrets),
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(
            name=stored.text(data, "name"),
            status=Status(data.get("status", "Enabled")),
            platform=Platform.from_dict(data.get("platform", {"os": "linux", "architecture": "amd64"})),
            step=Step.from_dict(stored.table(data, "step")),
            trigger=Trigger.from_dict(stored.table(data, "trigger", {})),
            timeout=int(data.get("timeout", 3600)),
            builder=BuilderName(data.get("builder", "auto")),
            creation_date=stored.text(data, "creationDate") if "creationDate" in data else "",
            registry=stored.optional_text(data, "registry"),
            credentials=credentials_from_dict(stored.table(data, "credentials", {})),
        )


# Runs: one build of a task, recorded from queueing to its end.


class RunStatus(StrEnum):
    """ACR's run statuses, all of them (`list-runs --run-status` takes each); acrtask's runs go Queued,
    Running, then one of the last five. Started is ACR's short step between Queued and Running."""

    QUEUED = "Queued"
    STARTED = "Started"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"
    ERROR = "Error"
    TIMEOUT = "Timeout"

    @property
    def is_terminal(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.STARTED, RunStatus.RUNNING)


class TriggerKind(StrEnum):
    MANUAL = "Manual"
    BASE_IMAGE_UPDATE = "BaseImageUpdate"
    TIMER = "Timer"
    COMMIT = "Commit"


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "none"


@dataclass(frozen=True)
class RunTrigger:
    """Why a run happened. For a base image update: which base, and its digest before and after."""

    kind: TriggerKind = TriggerKind.MANUAL
    base_image: str | None = None       # fully qualified name:tag of the base that moved
    old_digest: str | None = None
    new_digest: str | None = None
    timer_name: str | None = None
    schedule_occurrence: str | None = None
    commit_id: str | None = None
    upstream_run_id: str | None = None  # the run whose push moved the base, when acrtask pushed it
    base_image_step: str | None = None  # the build step of a multi-step task that uses the base

    def reason(self) -> str:
        if self.kind is TriggerKind.BASE_IMAGE_UPDATE:
            via = f", pushed by run {self.upstream_run_id}" if self.upstream_run_id else ""
            step = f" (step {self.base_image_step})" if self.base_image_step else ""
            return (f"base image {self.base_image}{step} changed: {_short(self.old_digest)} -> "
                    f"{_short(self.new_digest)}{via}")
        if self.kind is TriggerKind.TIMER:
            return f"timer {self.timer_name} ({self.schedule_occurrence})"
        if self.kind is TriggerKind.COMMIT:
            return f"commit {self.commit_id}"
        return "manual run"

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "kind": str(self.kind), "baseImage": self.base_image, "oldDigest": self.old_digest,
            "newDigest": self.new_digest, "timerName": self.timer_name,
            "scheduleOccurrence": self.schedule_occurrence, "commitId": self.commit_id,
            "upstreamRunId": self.upstream_run_id, "baseImageStep": self.base_image_step,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTrigger:
        return cls(
            kind=TriggerKind(data.get("kind", "Manual")), base_image=data.get("baseImage"),
            old_digest=data.get("oldDigest"), new_digest=data.get("newDigest"), timer_name=data.get("timerName"),
            schedule_occurrence=data.get("scheduleOccurrence"), commit_id=data.get("commitId"),
            upstream_run_id=data.get("upstreamRunId"), base_image_step=data.get("baseImageStep"),
        )


@dataclass(frozen=True)
class OutputImage:
    registry: str
    repository: str
    tag: str | None
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"registry": self.registry, "repository": self.repository, "tag": self.tag,
                           "digest": self.digest})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputImage:
        return cls(data["registry"], data["repository"], data.get("tag"), data["digest"])


class StepStatus(StrEnum):
    """A multi-step run's step, as acr-builder logs it ("Step ID: x marked as successful")."""

    SKIPPED = "skipped"
    IN_PROGRESS = "inprogress"
    SUCCESSFUL = "successful"
    FAILED = "failed"


@dataclass(frozen=True)
class StepRecord:
    """One step of a multi-step run: what it was, how it went, what it built, pushed and built on."""

    id: str
    type: str  # build | push | cmd
    status: StepStatus = StepStatus.SKIPPED
    start_time: str | None = None
    finish_time: str | None = None
    error: str | None = None  # with status successful: an error ignored (ignoreErrors)
    images: tuple[str, ...] = ()  # a build step's tags
    output_images: tuple[OutputImage, ...] = ()  # a push step's images, with digests
    dependencies: tuple[BaseImageDependency, ...] = ()  # a build step's bases, with digests

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "stepId": self.id, "type": self.type, "status": str(self.status), "startTime": self.start_time,
            "finishTime": self.finish_time, "error": self.error, "images": list(self.images) or None,
            "outputImages": [i.to_dict() for i in self.output_images] or None,
            "baseImageDependencies": [d.to_dict() for d in self.dependencies] or None,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        return cls(
            id=data["stepId"], type=data["type"], status=StepStatus(data.get("status", "skipped")),
            start_time=data.get("startTime"), finish_time=data.get("finishTime"), error=data.get("error"),
            images=tuple(data.get("images", [])),
            output_images=tuple(OutputImage.from_dict(i) for i in data.get("outputImages", [])),
            dependencies=tuple(BaseImageDependency.from_dict(d) for d in data.get("baseImageDependencies", [])),
        )


@dataclass(frozen=True)
class Run:
    run_id: str
    task: str
    status: RunStatus
    trigger: RunTrigger
    create_time: str
    platform: Platform = field(default_factory=lambda: Platform("linux", "amd64"))
    start_time: str | None = None
    finish_time: str | None = None
    output_images: tuple[OutputImage, ...] = ()
    error: str | None = None
    commit_id: str | None = None
    pid: int | None = None  # the process that runs it, so a crashed one can be told from a live one
    registry: str | None = None  # the login server of its task, so -r can scope runs
    # az's runType when set (QuickBuild / QuickRun: `acrtask build` / `acrtask run`, runs of no task); else a run
    # of a task, by hand or by a trigger, is an AutoRun, as ACR's task runs are (AutoBuild is its legacy kind).
    run_type: str | None = None
    steps: tuple[StepRecord, ...] = ()  # a multi-step run's steps, in file order
    agent: str | None = None  # the build endpoint it was placed on; None: this machine
    agent_lost: bool = False  # the endpoint stopped answering during the build

    def duration_seconds(self) -> float | None:
        if not self.start_time or not self.finish_time:
            return None
        return (parse_time(self.finish_time) - parse_time(self.start_time)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """az's run shape (runId, status, outputImages, imageUpdateTrigger, ...), plus `reason`."""
        data: dict[str, Any] = {
            "runId": self.run_id, "name": self.run_id, "task": self.task, "status": str(self.status),
            "runType": self.run_type or "AutoRun",
            "createTime": self.create_time, "startTime": self.start_time,
            "finishTime": self.finish_time, "platform": self.platform.to_dict(),
            "outputImages": [image.to_dict() for image in self.output_images],
            "runErrorMessage": self.error, "trigger": self.trigger.to_dict(), "reason": self.trigger.reason(),
            "pid": self.pid, "registry": self.registry, "steps": [step.to_dict() for step in self.steps] or None,
            "agentPoolName": self.agent, "agentLost": self.agent_lost or None,
        }
        trigger = self.trigger
        if trigger.kind is TriggerKind.BASE_IMAGE_UPDATE and trigger.base_image:
            name, _, tag = trigger.base_image.rpartition(":")
            registry, _, repository = name.partition("/")
            data["imageUpdateTrigger"] = {
                # One id per base update: every run the same move of the same tag started shares it.
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{trigger.base_image}@{trigger.new_digest}")),
                "timestamp": self.create_time,
                "images": [_drop_none({"registry": registry, "repository": repository, "tag": tag,
                                       "digest": trigger.new_digest, "previousDigest": trigger.old_digest})]}
        elif trigger.kind is TriggerKind.TIMER:
            data["timerTrigger"] = _drop_none({"timerTriggerName": trigger.timer_name,
                                               "scheduleOccurrence": trigger.schedule_occurrence})
        elif trigger.kind is TriggerKind.COMMIT:
            data["sourceTrigger"] = _drop_none({"eventType": "commit", "commitId": trigger.commit_id})
        if self.commit_id:
            data["sourceCommitId"] = self.commit_id
        return _drop_none(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        return cls(
            run_id=data["runId"], task=data["task"], status=RunStatus(data["status"]),
            trigger=RunTrigger.from_dict(data.get("trigger", {})), create_time=data["createTime"],
            platform=Platform.from_dict(data.get("platform", {"os": "linux", "architecture": "amd64"})),
            start_time=data.get("startTime"), finish_time=data.get("finishTime"),
            output_images=tuple(OutputImage.from_dict(i) for i in data.get("outputImages", [])),
            error=data.get("runErrorMessage"), commit_id=data.get("sourceCommitId"), pid=data.get("pid"),
            # Only the quick kinds are facts of their own; AutoRun (and the AutoBuild older records say) is a task's.
            registry=data.get("registry"), run_type=data.get("runType") if data.get("runType") in _QUICK else None,
            steps=tuple(StepRecord.from_dict(step) for step in data.get("steps", [])),
            agent=data.get("agentPoolName"), agent_lost=bool(data.get("agentLost", False)),
        )


_QUICK = ("QuickBuild", "QuickRun")


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
