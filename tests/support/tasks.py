"""Tasks and their recorded base-image dependencies, made short for tests: `task("app", [dep("r/base:1")])`.

Digests come in pairs, an old and a new one (`OLD`/`NEW` for a tag, `P_OLD`/`P_NEW` for its platform's
manifest), so a test reads as "the base moved from OLD to NEW".
"""

from __future__ import annotations

from acrtask.model import (
    BaseImageDependency,
    BaseImageTrigger,
    BaseImageTriggerType,
    DependencyType,
    Status,
    Step,
    Task,
    Trigger,
)

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
P_OLD, P_NEW = "sha256:" + "c" * 64, "sha256:" + "d" * 64


def dep(image: str, type_: DependencyType = DependencyType.RUNTIME, digest: str = OLD,
        platform_digest: str | None = P_OLD, pinned: bool = False) -> BaseImageDependency:
    name, _, tag = image.rpartition(":")
    registry, _, repository = name.partition("/")
    return BaseImageDependency(type_, registry, repository, tag, digest, platform_digest, "linux/amd64", pinned)


def task(name: str, deps: list[BaseImageDependency] | None, outputs: tuple[str, ...] = (), *,
         trigger_type: BaseImageTriggerType = BaseImageTriggerType.RUNTIME, enabled: bool = True,
         trigger_enabled: bool = True) -> Task:
    return Task(
        name=name,
        status=Status.ENABLED if enabled else Status.DISABLED,
        step=Step(context_path="/src", image_names=outputs,
                  base_image_dependencies=None if deps is None else tuple(deps)),
        trigger=Trigger(base_image=BaseImageTrigger(
            type=trigger_type, status=Status.ENABLED if trigger_enabled else Status.DISABLED)),
    )
