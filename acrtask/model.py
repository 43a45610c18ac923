"""Task definitions: a task, its step and triggers, as frozen values with one dict shape, az's camelCase task.

A task's stored document is the shape az shows (`task show` prints it without building a Task), so
`to_dict(reveal_secrets=True)` is what is stored and `to_dict()` leaves secret values out. TOML has no
null, so None values are left out of dicts and come back as defaults in `from_dict`. What a run records
is in run_record.py; the bases a task builds on in dependency.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from acrtask import stored
from acrtask.dependency import BaseImageDependency
from acrtask.platform import DEFAULT_PLATFORM, Platform
from acrtask.reference import names_registry
from acrtask.stored import drop_none

DEFAULT_BASE_IMAGE_TRIGGER_NAME = "defaultBaseimageTriggerName"
DEFAULT_SOURCE_TRIGGER_NAME = "defaultSourceTriggerName"


class Status(StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class BaseImageTriggerType(StrEnum):
    ALL = "All"
    RUNTIME = "Runtime"


class StepType(StrEnum):
    DOCKER = "Docker"
    FILE_TASK = "FileTask"  # a multi-step task file read from the context at run time
    ENCODED_TASK = "EncodedTask"  # a multi-step task file stored in the task (base64)


class BuilderName(StrEnum):
    AUTO = "auto"
    BUILDAH = "buildah"
    DOCKER = "docker"
    PODMAN = "podman"


@dataclass(frozen=True)
class Argument:
    """A build argument. `value` None means: read the environment variable of that name at run time."""

    name: str
    value: str | None = None
    is_secret: bool = False

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        shown = self.value if (reveal_secrets or not self.is_secret) else None
        return drop_none({"name": self.name, "value": shown, "isSecret": self.is_secret})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Argument:
        return cls(name=stored.text(data, "name"), value=stored.optional_text(data, "value"),
                   is_secret=bool(data.get("isSecret", False)))


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
            "sourceRepository": drop_none({
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
        return drop_none(data)

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
        return drop_none({
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
        return drop_none({
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
    platform: Platform = DEFAULT_PLATFORM
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
        return tuple(name if names_registry(name) or not self.registry else f"{self.registry}/{name}"
                     for name in self.step.image_names)

    def to_dict(self, reveal_secrets: bool = False) -> dict[str, Any]:
        return drop_none({
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
            platform=Platform.from_dict(data["platform"]) if "platform" in data else DEFAULT_PLATFORM,
            step=Step.from_dict(stored.table(data, "step")),
            trigger=Trigger.from_dict(stored.table(data, "trigger", {})),
            timeout=int(data.get("timeout", 3600)),
            builder=BuilderName(data.get("builder", "auto")),
            creation_date=stored.text(data, "creationDate") if "creationDate" in data else "",
            registry=stored.optional_text(data, "registry"),
            credentials=credentials_from_dict(stored.table(data, "credentials", {})),
        )
