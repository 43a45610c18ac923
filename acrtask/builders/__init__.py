"""Builders: turn a BuildSpec into a built (and pushed) image with buildah, docker (buildx) or podman."""

from acrtask.builders.base import (
    BUILDER_NAMES,
    Builder,
    BuildResult,
    BuildSpec,
    select,
)
from acrtask.errors import BuildCanceledError, BuildTimeoutError

__all__ = [
    "BUILDER_NAMES",
    "BuildCanceledError",
    "BuildResult",
    "BuildSpec",
    "BuildTimeoutError",
    "Builder",
    "select",
]
