"""Builders: turn a BuildSpec into a built (and pushed) image with buildah, docker (buildx) or podman.

Which one a name means: `acrtask.builders.local.select`.
"""

from acrtask.builders.base import (
    Builder,
    BuildResult,
    BuildSpec,
)

__all__ = [
    "BuildResult",
    "BuildSpec",
    "Builder",
]
