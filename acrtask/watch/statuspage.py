"""The read-only status page (GET / with Accept: text/html), and the same facts as JSON. Pure: the facts
come in, text goes out.

Every piece of text from tasks, runs, registries and errors is HTML-escaped where it is written; the page
has no script and one inline style sheet, whose hash the server's Content-Security-Policy allows (nothing
else runs or loads). It refreshes itself every 30 seconds.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from acrtask import explain
from acrtask import graph as graphs
from acrtask.graph_svg import MAX_NODES, to_svg
from acrtask.model import Task
from acrtask.run_record import Run
from acrtask.watch.board import Picture
from acrtask.watch.health import Verdict

REFRESH_SECONDS = 30

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;
vertical-align:top}th{background:#f4f4f4;font-weight:600}code{font-size:.92em}
.muted{color:#666}.ok{color:#17702e}.bad{color:#b00020}.warn{color:#8a5a00}
.Succeeded{color:#17702e}.Failed,.Error,.Timeout{color:#b00020}.Running,.Queued{color:#0b5cad}.Canceled{color:#666}
.scroll{overflow-x:auto;border:1px solid #ddd;padding:.5em}pre{white-space:pre-wrap;font-size:.85em}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src '{STYLE_HASH}'; img-src data:; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class StatusFacts:
    now: float  # Unix time of the page
    version: str
    readiness: Verdict
    picture: Picture | None  # None: the loop has not started
    runs: tuple[Run, ...]  # newest first


def _time(moment: float | None) -> str:
    return "-" if moment is None else datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _relative(moment: float | None, now: float) -> str:
    if moment is None:
        return ""
    seconds = int(round(moment - now))
    span = abs(seconds)
    text = f"{span}s" if span < 120 else f"{span // 60}m" if span < 7200 else f"{span // 3600}h"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _when(moment: float | None, now: float) -> str:
    if moment is None:
        return "-"
    return f'{escape(_time(moment))} <span class="muted">({escape(_relative(moment, now))})</span>'


def _short(digest: str | None) -> str:
    if not digest:
        return "-"
    return f'<code title="{escape(digest)}">{escape(digest[:19])}…</code>'


def _latest(runs: tuple[Run, ...]) -> dict[str, Run]:
    latest: dict[str, Run] = {}
    for run in runs:  # newest first: the first seen per task is its latest
        latest.setdefault(run.task, run)
    return latest


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _run_cells(run: Run) -> list[str]:
    return [f"<code>{escape(run.run_id)}</code>", escape(run.task),
            f'<span class="{escape(run.status.value)}">{escape(run.status.value)}</span>',
            escape(explain.reason(run.trigger)), escape(run.create_time.replace("T", " ")[:19] + "Z"),
            escape(f"{run.duration_seconds():.0f}s") if run.duration_seconds() is not None else "-",
            escape(run.error or "")]


def _tasks(tasks: tuple[Task, ...], latest: dict[str, Run]) -> str:
    rows = []
    for task in tasks:
        run = latest.get(task.name)
        last = "-" if run is None else (f'<code>{escape(run.run_id)}</code> <span class="{escape(run.status.value)}">'
                                        f'{escape(run.status.value)}</span>: {escape(explain.reason(run.trigger))}')
        kinds = explain.trigger_kinds(task.trigger.to_dict())
        rows.append([escape(task.name), escape(task.status.value), escape(", ".join(kinds) or "-"),
                     "<br>".join(escape(i) for i in task.step.image_names) or "-", last])
    return _table(["Task", "Status", "Triggers", "Pushes", "Latest run"], rows, "No tasks.")


def _bases(picture: Picture, now: float) -> str:
    rows = [[escape(base.image), escape(", ".join(base.tasks)), _short(base.digest), _when(base.last_check, now),
             _when(base.next_check, now) if base.next_check is not None else '<span class="muted">checking</span>',
             f'<span class="bad">{escape(base.error)}</span>' if base.error else ""]
            for base in picture.snapshot.bases]
    return _table(["Base image", "Tasks", "Digest", "Last check", "Next check", "Error"], rows,
                  "No base images watched yet: a task's first run records them.")


def _graph(tasks: tuple[Task, ...]) -> str:
    built = graphs.build(tasks)
    svg = to_svg(built)
    if svg is None and built.tasks:
        drawn = (f'<p class="muted">{len(built.tasks) + len(built.images)} tasks and images: more than {MAX_NODES} '
                 "are not drawn here; use <code>acrtask task graph -o dot</code>.</p>")
    else:
        drawn = f'<div class="scroll">{svg}</div>' if svg else '<p class="muted">No tasks.</p>'
    source = escape(graphs.to_mermaid(built))
    return f"{drawn}<details><summary>Mermaid source</summary><pre>{source}</pre></details>"


def render(facts: StatusFacts) -> str:
    now, picture = facts.now, facts.picture
    ready = facts.readiness
    state = '<span class="ok">ready</span>' if ready.ok else (
        '<span class="bad">not ready</span>: ' + escape("; ".join(ready.reasons)))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', "<title>acrtask watch</title>", f"<style>{STYLE}</style></head><body>",
        f"<h1>acrtask watch</h1><p>{state} · version {escape(facts.version)} · page of {escape(_time(now))}</p>",
    ]
    if picture is None:
        parts.append('<p class="warn">The watch loop has not started yet.</p>')
    else:
        snap = picture.snapshot
        if now - picture.at > 5:
            parts.append(f'<p class="warn">The loop has not answered since {escape(_time(picture.at))}: '
                         "this is its last picture.</p>")
        running = ", ".join(f"<code>{escape(run_id)}</code> ({escape(task)})" for run_id, task in snap.running)
        queued = ", ".join(escape(task) for task in snap.queued)
        parts += [f"<p>Running: {running or 'none'} · Queued: {queued or 'none'} · Last trigger: "
                  f"{escape(snap.last_trigger or 'none yet')}</p>"]
        for group in picture.cycles:
            parts.append(f'<p class="warn">Cycle: {escape(" -> ".join(group))}</p>')
        parts += ["<h2>Tasks</h2>", _tasks(picture.tasks, _latest(facts.runs)),
                  "<h2>Base images</h2>", _bases(picture, now), "<h2>Task graph</h2>", _graph(picture.tasks)]
    parts += ["<h2>Recent runs</h2>",
              _table(["Run", "Task", "Status", "Reason", "Created", "Duration", "Error"],
                     [_run_cells(run) for run in facts.runs[:25]], "No runs yet."),
              "</body></html>"]
    return "\n".join(parts)


def to_json(facts: StatusFacts) -> dict[str, Any]:
    """The same facts for scripts (GET / without text/html)."""
    picture = facts.picture
    data: dict[str, Any] = {"ready": facts.readiness.ok, "reasons": list(facts.readiness.reasons),
                            "version": facts.version, "time": _time(facts.now)}
    if picture is not None:
        snap = picture.snapshot
        data["tasks"] = [{"name": t.name, "status": str(t.status), "imageNames": list(t.step.image_names)}
                         for t in picture.tasks]
        data["bases"] = [{"image": b.image, "tasks": list(b.tasks), "digest": b.digest,
                          "lastCheck": None if b.last_check is None else _time(b.last_check),
                          "nextCheck": None if b.next_check is None else _time(b.next_check), "error": b.error}
                         for b in snap.bases]
        data["running"] = [{"runId": run_id, "task": task} for run_id, task in snap.running]
        data["queued"] = list(snap.queued)
    data["recentRuns"] = [{"runId": r.run_id, "task": r.task, "status": str(r.status),
                           "reason": explain.reason(r.trigger), "createTime": r.create_time, "error": r.error}
                          for r in facts.runs[:25]]
    return data
