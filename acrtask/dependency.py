"""A base image a build used: recorded on its task (what watch checks) and on a multi-step run's steps.

The image is an `ImageRef` naming the tag watched; its stored shape (az's baseImageDependencies entry) keeps
`registry`, `repository` and `tag` apart and the platform as `os/arch[/variant]` text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from acrtask import stored
from acrtask.platform import Platform
from acrtask.reference import ImageRef


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


@dataclass(frozen=True)
class BaseImageDependency:
    """A base image a build used, with the digests seen just before that build."""

    type: DependencyType
    image: ImageRef  # the tag watched: registry/repository:tag, no digest (tag None for FROM image@sha256:...)
    digest: str | None
    platform_digest: str | None = None
    platform: Platform | None = None  # the platform the digest was chosen for (FROM --platform or the task's)
    pinned: bool = False  # FROM image@sha256:...: recorded, but can never trigger
    step: str | None = None  # the build step of a multi-step task whose Dockerfile uses it

    @property
    def name(self) -> str:
        """The base as task graphs name it: `registry/repository:tag`, or `registry/repository@digest` pinned."""
        return str(self.image) if self.image.tag is not None else f"{self.image}@{self.digest}"

    def to_dict(self) -> dict[str, Any]:
        return stored.drop_none({
            "type": str(self.type), "registry": self.image.registry, "repository": self.image.repository,
            "tag": self.image.tag, "digest": self.digest, "platformDigest": self.platform_digest,
            "platform": None if self.platform is None else str(self.platform), "isPinned": self.pinned or None,
            "stepId": self.step,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseImageDependency:
        platform = stored.optional_text(data, "platform")
        return cls(
            type=DependencyType.parse(stored.text(data, "type")),
            image=ImageRef(stored.text(data, "registry"), stored.text(data, "repository"),
                           stored.optional_text(data, "tag")),
            digest=stored.optional_text(data, "digest"), platform_digest=stored.optional_text(data, "platformDigest"),
            platform=None if platform is None else Platform.parse(platform, source="platform"),
            pinned=bool(data.get("isPinned", False)), step=stored.optional_text(data, "stepId"),
        )
