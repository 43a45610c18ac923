"""Global notification targets (`acrtask notify add`): where run events go, which events, in which format.

A target's stored shape is a small JSON object per name ({url, on, format}), so moving the targets into
the state database is one table (name TEXT PRIMARY KEY, document TEXT) read and written by NotifyStore.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from acrtask import stored
from acrtask.errors import ValidationError
from acrtask.notify.endpoints import redact

TARGET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,50}$")


class RunEvent(StrEnum):
    TRIGGERED = "triggered"  # watch queued a run for a trigger
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # Failed, Error or Timeout (a Canceled run is not news)


class Format(StrEnum):
    JSON = "json"
    SLACK = "slack"
    TEAMS = "teams"


ALL_EVENTS = (RunEvent.SUCCEEDED, RunEvent.FAILED, RunEvent.TRIGGERED)


@dataclass(frozen=True)
class NotifyTarget:
    name: str
    url: str
    events: frozenset[RunEvent] = frozenset(ALL_EVENTS)
    format: Format = Format.JSON

    def to_dict(self, reveal_url: bool = False) -> dict[str, Any]:
        """Stored with the URL; shown redacted (a chat webhook's path is its secret)."""
        return {"name": self.name, "url": self.url if reveal_url else redact(self.url),
                "on": [str(e) for e in ALL_EVENTS if e in self.events], "format": str(self.format)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotifyTarget:
        return cls(name=stored.text(data, "name"), url=stored.text(data, "url"),
                   events=frozenset(RunEvent(e) for e in stored.strings(data, "on")),
                   format=Format(data.get("format", "json")))


def parse_name(name: str) -> str:
    if not TARGET_NAME.match(name):
        raise ValidationError(f"Invalid notification target name '{name}': 1-50 letters, digits, - or _.",
                              "For example: team-chat.")
    return name


def parse_events(text: str) -> frozenset[RunEvent]:
    """`--on succeeded,failed,triggered`."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    valid = ", ".join(str(e) for e in ALL_EVENTS)
    if not names:
        raise ValidationError("--on needs at least one event.", f"Choose from: {valid}.")
    events = set()
    for name in names:
        try:
            events.add(RunEvent(name))
        except ValueError:
            raise ValidationError(f"Invalid --on event '{name}'.", f"Choose from: {valid}.") from None
    return frozenset(events)
