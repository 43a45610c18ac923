"""`TaskChanges`: the flags of `task create` and `task update`, parsed, as the services take them.

A module of its own because both the task service (service.py) and copy tasks (imports.py) read it,
and the service calls imports.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from acrtask.model import Argument, BaseImageTriggerType, BuilderName, Status, UpdateTriggerPayloadType
from acrtask.platform import Platform


@dataclass(frozen=True)
class TaskChanges:
    """Flags of `task create` / `task update`, already parsed. None means "not given"."""

    context: str | None = None
    file: str | None = None
    images: tuple[str, ...] | None = None
    arguments: tuple[Argument, ...] | None = None
    target: str | None = None
    platform: Platform | None = None
    push_enabled: bool | None = None
    no_cache: bool | None = None
    status: Status | None = None
    timeout: int | None = None
    base_image_trigger_enabled: bool | None = None
    base_image_trigger_type: BaseImageTriggerType | None = None
    schedules: tuple[str, ...] | None = None
    commit_trigger_enabled: bool | None = None
    builder: BuilderName | None = None
    registry: str | None = None  # -r as a login server: the task's registry on create ({{.Run.Registry}}), else a scope
    # Multi-step tasks (multistep/tasks.py):
    values: tuple[Argument, ...] | None = None  # --set / --set-secret
    values_file: str | None = None  # --values
    cmd: str | None = None  # --cmd IMAGE ARGS
    stdin_text: str | None = None  # what `-f -` reads
    import_source: str | None = None  # --import: a copy task (imports.py)
    git_access_token: str | None = None  # a secret: used to clone https git contexts
    base_image_trigger_name: str | None = None
    source_trigger_name: str | None = None
    pull_request_trigger_enabled: bool | None = None
    update_trigger_endpoint: str | None = None  # "" clears it (notify/endpoints.py)
    update_trigger_payload_type: UpdateTriggerPayloadType | None = None
    update_trigger_token: str | None = None  # a secret; "" clears it
