"""What `-o json` shows of tasks and runs, with the fields az fills that have a local equivalent (`id`, `type`,
`provisioningState`, `lastUpdatedTime`). A task: its stored document, secrets masked, and a base-image trigger
that was created off shown as az shows it (null), made from the stored dict so that listing builds no Task.
A run: az's shape of its record's facts (run_shape.py)."""

from __future__ import annotations

import copy
from typing import Any

from acrtask.model import document_login_server
from acrtask.run_record import Run
from acrtask.run_shape import az_run

TASK_TYPE = "Microsoft.ContainerRegistry/registries/tasks"
RUN_TYPE = "Microsoft.ContainerRegistry/registries/runs"


def _scope(registry: str | None) -> str:
    # ARM ids read /subscriptions/.../registries/<name>/...; here the registry's login server is its name.
    return f"/registries/{registry}" if registry else ""


def task(document: dict[str, Any], with_secure_properties: bool = False) -> dict[str, Any]:
    shown = copy.deepcopy(document)
    shown["id"] = f"{_scope(document_login_server(document))}/tasks/{document.get('name')}"
    shown["type"] = TASK_TYPE
    shown["provisioningState"] = "Succeeded"
    step = shown.setdefault("step", {})
    if not with_secure_properties:
        step.pop("contextAccessToken", None)
        for arg in step.get("arguments", []):
            if arg.get("isSecret"):
                arg.pop("value", None)
    step.setdefault("contextAccessToken", None)
    shown["credentials"] = _credentials(shown.get("credentials"), with_secure_properties)
    trigger = shown.setdefault("trigger", {})
    base = trigger.get("baseImageTrigger")
    if isinstance(base, dict):
        trigger["baseImageTrigger"] = None if base.pop("omitted", False) else base
    return shown


def _credentials(found: Any, reveal: bool) -> Any:
    if not isinstance(found, dict):
        return None
    for entry in (found.get("customRegistries") or {}).values():
        entry.setdefault("identity", None)
        entry.setdefault("userName", None)
        password = entry.get("password")
        if isinstance(password, dict) and not reveal:
            password["value"] = None
        entry.setdefault("password", None)
    return found


def credential_list(document: dict[str, Any]) -> dict[str, Any]:
    """`task credential list`: az's customRegistries map, passwords never shown."""
    found = _credentials(copy.deepcopy(document.get("credentials")), False)
    return found.get("customRegistries", {}) if found else {}


def run(record: Run) -> dict[str, Any]:
    shown = az_run(record)
    shown["id"] = f"{_scope(record.registry)}/runs/{record.run_id}"
    shown["type"] = RUN_TYPE
    shown["provisioningState"] = "Succeeded"
    shown["lastUpdatedTime"] = record.finish_time or record.start_time or record.create_time
    return shown
