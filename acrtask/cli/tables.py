"""Columns for `-o table`, per kind of result, as az's table transformers."""

from __future__ import annotations

from typing import Any


def tasks(result: Any) -> list[dict[str, Any]]:
    items = result if isinstance(result, list) else [result]
    rows = []
    for task in items:
        trigger = task.get("trigger", {})
        kinds = []
        if trigger.get("baseImageTrigger", {}).get("status") == "Enabled":
            kinds.append("BASE_IMAGE")
        if any(s.get("status") == "Enabled" for s in trigger.get("sourceTriggers", [])):
            kinds.append("SOURCE")
        if any(t.get("status") == "Enabled" for t in trigger.get("timerTriggers", [])):
            kinds.append("TIMER")
        rows.append({
            "NAME": task.get("name"),
            "PLATFORM": task.get("platform", {}).get("os"),
            "STATUS": task.get("status"),
            "SOURCE REPOSITORY": task.get("step", {}).get("contextPath"),
            "TRIGGERS": ", ".join(kinds),
        })
    return rows


def timers(result: Any) -> list[dict[str, Any]]:
    return [{"NAME": t.get("name"), "SCHEDULE": t.get("schedule"), "STATUS": t.get("status")} for t in result]
