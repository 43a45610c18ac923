"""Run records: one run of a task, from queueing to its end, as the facts stored about it.

The stored document holds facts only: ids, status, times, the trigger, what was pushed and built on.
What az shows beside them (`runType` AutoRun, `name`, `imageUpdateTrigger`, `reason`, ...) is made from
these facts by run_shape.py; records written before that split still carry those keys, and they are
read past (`facts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from acrtask.dependency import BaseImageDependency
from acrtask.platform import DEFAULT_PLATFORM, Platform
from acrtask.reference import ImageRef
from acrtask.stored import drop_none
from acrtask.times import parse_time


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


class RunType(StrEnum):
    """A run of no task: `acrtask build` / `acrtask run`. A task's run has none stored (az shows AutoRun)."""

    QUICK_BUILD = "QuickBuild"
    QUICK_RUN = "QuickRun"


class TriggerKind(StrEnum):
    MANUAL = "Manual"
    BASE_IMAGE_UPDATE = "BaseImageUpdate"
    TIMER = "Timer"
    COMMIT = "Commit"


@dataclass(frozen=True)
class RunTrigger:
    """Why a run happened. For a base image update: which base, and its digest before and after."""

    kind: TriggerKind = TriggerKind.MANUAL
    base_image: ImageRef | None = None  # the tag of the base that moved
    old_digest: str | None = None
    new_digest: str | None = None
    timer_name: str | None = None
    schedule_occurrence: str | None = None
    commit_id: str | None = None
    upstream_run_id: str | None = None  # the run whose push moved the base, when acrtask pushed it
    base_image_step: str | None = None  # the build step of a multi-step task that uses the base

    def to_dict(self) -> dict[str, Any]:
        return drop_none({
            "kind": str(self.kind), "baseImage": None if self.base_image is None else str(self.base_image),
            "oldDigest": self.old_digest, "newDigest": self.new_digest, "timerName": self.timer_name,
            "scheduleOccurrence": self.schedule_occurrence, "commitId": self.commit_id,
            "upstreamRunId": self.upstream_run_id, "baseImageStep": self.base_image_step,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTrigger:
        base = data.get("baseImage")
        return cls(
            kind=TriggerKind(data.get("kind", "Manual")), base_image=None if base is None else ImageRef.parse(base),
            old_digest=data.get("oldDigest"), new_digest=data.get("newDigest"), timer_name=data.get("timerName"),
            schedule_occurrence=data.get("scheduleOccurrence"), commit_id=data.get("commitId"),
            upstream_run_id=data.get("upstreamRunId"), base_image_step=data.get("baseImageStep"),
        )


def output_image_dict(image: ImageRef) -> dict[str, Any]:
    """An image a run pushed (tag and digest), as az's outputImages entry."""
    return drop_none({"registry": image.registry, "repository": image.repository, "tag": image.tag,
                      "digest": image.digest})


def output_image(data: dict[str, Any]) -> ImageRef:
    return ImageRef(data["registry"], data["repository"], data.get("tag"), data["digest"])


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
    images: tuple[str, ...] = ()  # a build step's tags, as the task file writes them
    output_images: tuple[ImageRef, ...] = ()  # a push step's images, with digests
    dependencies: tuple[BaseImageDependency, ...] = ()  # a build step's bases, with digests

    def to_dict(self) -> dict[str, Any]:
        return drop_none({
            "stepId": self.id, "type": self.type, "status": str(self.status), "startTime": self.start_time,
            "finishTime": self.finish_time, "error": self.error, "images": list(self.images) or None,
            "outputImages": [output_image_dict(i) for i in self.output_images] or None,
            "baseImageDependencies": [d.to_dict() for d in self.dependencies] or None,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        return cls(
            id=data["stepId"], type=data["type"], status=StepStatus(data.get("status", "skipped")),
            start_time=data.get("startTime"), finish_time=data.get("finishTime"), error=data.get("error"),
            images=tuple(data.get("images", [])),
            output_images=tuple(output_image(i) for i in data.get("outputImages", [])),
            dependencies=tuple(BaseImageDependency.from_dict(d) for d in data.get("baseImageDependencies", [])),
        )


@dataclass(frozen=True)
class Run:
    run_id: str
    task: str
    status: RunStatus
    trigger: RunTrigger
    create_time: str
    platform: Platform = DEFAULT_PLATFORM
    start_time: str | None = None
    finish_time: str | None = None
    output_images: tuple[ImageRef, ...] = ()  # tags pushed, each with the digest pushed
    error: str | None = None
    commit_id: str | None = None
    pid: int | None = None  # the process that runs it, so a crashed one can be told from a live one
    registry: str | None = None  # the login server of its task, so -r can scope runs
    run_type: RunType | None = None  # a quick run's; None for a run of a task, by hand or by a trigger
    steps: tuple[StepRecord, ...] = ()  # a multi-step run's steps, in file order
    agent: str | None = None  # the build endpoint it was placed on; None: this machine
    agent_lost: bool = False  # the endpoint stopped answering during the build

    def duration_seconds(self) -> float | None:
        if not self.start_time or not self.finish_time:
            return None
        return (parse_time(self.finish_time) - parse_time(self.start_time)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """The stored record: facts only, in az's field names."""
        return drop_none({
            "runId": self.run_id, "task": self.task, "status": str(self.status),
            "runType": None if self.run_type is None else str(self.run_type),
            "createTime": self.create_time, "startTime": self.start_time, "finishTime": self.finish_time,
            "platform": self.platform.to_dict(), "outputImages": [output_image_dict(i) for i in self.output_images],
            "runErrorMessage": self.error, "trigger": self.trigger.to_dict(), "pid": self.pid,
            "registry": self.registry, "steps": [step.to_dict() for step in self.steps] or None,
            "agentPoolName": self.agent, "agentLost": self.agent_lost or None, "sourceCommitId": self.commit_id,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """A stored record; also one written before the facts were split from az's shape (`facts`)."""
        run_type = data.get("runType")
        return cls(
            run_id=data["runId"], task=data["task"], status=RunStatus(data["status"]),
            trigger=RunTrigger.from_dict(data.get("trigger", {})), create_time=data["createTime"],
            platform=Platform.from_dict(data["platform"]) if "platform" in data else DEFAULT_PLATFORM,
            start_time=data.get("startTime"), finish_time=data.get("finishTime"),
            output_images=tuple(output_image(i) for i in data.get("outputImages", [])),
            error=data.get("runErrorMessage"), commit_id=data.get("sourceCommitId"), pid=data.get("pid"),
            registry=data.get("registry"), run_type=RunType(run_type) if run_type in _QUICK else None,
            steps=tuple(StepRecord.from_dict(step) for step in data.get("steps", [])),
            agent=data.get("agentPoolName"), agent_lost=bool(data.get("agentLost", False)),
        )


_QUICK = frozenset(str(kind) for kind in RunType)
# What records written before the split stored beside the facts: az's view of them, made again when shown.
SHOWN_ONLY = ("name", "reason", "imageUpdateTrigger", "timerTrigger", "sourceTrigger")


def facts(document: dict[str, Any]) -> dict[str, Any]:
    """A stored record without the keys an older acrtask stored for show (and a runType that was not a fact:
    AutoRun, or the AutoBuild older records say, is every task run's)."""
    kept = {key: value for key, value in document.items() if key not in SHOWN_ONLY}
    if kept.get("runType") not in _QUICK:
        kept.pop("runType", None)
    return kept
