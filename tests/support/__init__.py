"""Test support: a real local registry (docker-registry) and tiny busybox base images (buildah).

Beside them, what more than one test module needs and no test module may export: `builds` (BuildSpecs),
`cli` (commands run in-process), `fake_registry` (a scripted registry, for faults), `tasks` (tasks and
dependencies), `runner` (a real Runner without a registry), `webhook_payloads`, `procs` (the process table),
`waiting` (bounded waits).
"""

from tests.support.images import (
    ImageToolError,
    buildah_env,
    check_tools,
    default_buildah_env,
    fetch_manifest,
    head_digest,
    push_base_image,
    push_multiarch_base,
)
from tests.support.registry import INSTALL_HINT, LocalRegistry, NotificationSink, RegistryStartError

ALICE = ("alice", "s3cret-pass")

__all__ = [
    "ALICE",
    "INSTALL_HINT",
    "ImageToolError",
    "LocalRegistry",
    "NotificationSink",
    "RegistryStartError",
    "buildah_env",
    "check_tools",
    "default_buildah_env",
    "fetch_manifest",
    "head_digest",
    "push_base_image",
    "push_multiarch_base",
]
