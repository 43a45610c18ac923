"""Columns for `-o table`, per kind of result, as az's table transformers."""

from __future__ import annotations

from typing import Any

from acrtask import explain


def tasks(result: Any) -> list[dict[str, Any]]:
    items = result if isinstance(result, list) else [result]
    rows = []
    for task in items:
        kinds = explain.trigger_kinds(task.get("trigger") or {})
        rows.append({
            "NAME": task.get("name"),
            "PLATFORM": task.get("platform", {}).get("os"),
            "STATUS": task.get("status"),
            # A copy task's source is its image, not a context: "import <source>".
            "SOURCE REPOSITORY": task.get("step", {}).get("contextPath") or
            f"import {task.get('step', {}).get('importSource', '')}",
            "TRIGGERS": ", ".join(kinds),
        })
    return rows


def timers(result: Any) -> list[dict[str, Any]]:
    return [{"NAME": t.get("name"), "SCHEDULE": t.get("schedule"), "STATUS": t.get("status")} for t in result]


_TRIGGER_NAMES = {"Manual": "Manual", "BaseImageUpdate": "Image Update", "Timer": "Timer", "Commit": "Commit"}


def runs(result: Any) -> list[dict[str, Any]]:
    from acrtask.times import parse_time

    items = result if isinstance(result, list) else [result]
    rows = []
    for run in items:
        started, duration = run.get("startTime"), ""
        if started and run.get("finishTime"):
            seconds = int((parse_time(run["finishTime"]) - parse_time(started)).total_seconds())
            duration = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        platform = run.get("platform", {})
        rows.append({
            "RUN ID": run.get("runId"),
            "TASK": run.get("task"),
            "PLATFORM": platform.get("os"),
            "STATUS": run.get("status"),
            "TRIGGER": _TRIGGER_NAMES.get(run.get("trigger", {}).get("kind", "Manual"), "Manual"),
            "STARTED": parse_time(started).strftime("%Y-%m-%dT%H:%M:%SZ") if started else "",
            "DURATION": duration,
            "AGENT": run.get("agentPoolName") or "local",
        })
    return rows
