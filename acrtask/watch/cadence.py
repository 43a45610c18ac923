"""How often each base tag is polled: fast for your own registries, the slow random interval for public ones.

ACR checks base images in your own registries at once and public ones every 10-60 minutes. Without a
webhook acrtask cannot hear a push by another tool, so "at once" becomes "within the fast interval": a HEAD
per tag every 30 s costs a private registry little (bench/fast_poll.py). The rules, first match wins:

1. A public registry stays slow: docker.io (and index.docker.io, registry-1.docker.io), mcr.microsoft.com,
   ghcr.io, quay.io, gcr.io and its regional *.gcr.io. Marking one fast is refused.
2. A registry marked with `watch --fast-registry HOST` (or ACRTASK_FAST_REGISTRIES=host,host) is fast; a bare
   host covers every port of it, as for ACRTASK_INSECURE_REGISTRIES.
3. A registry any task pushes to (a -t image, copy tasks' targets included) is fast.
4. Any other registry is slow.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from acrtask.errors import ValidationError
from acrtask.insecure import is_listed
from acrtask.model import Task
from acrtask.reference import host_of, names_registry, parse_registry
from acrtask.triggers import BaseKey

FAST_ENV = "ACRTASK_FAST_REGISTRIES"
PUBLIC_REGISTRIES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "mcr.microsoft.com",
                               "ghcr.io", "quay.io", "gcr.io"})
_LISTED_TAGS = 5  # tags named per registry in the log line; the rest are counted


class Speed(StrEnum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True)
class Schedule:
    speed: Speed
    why: str


def is_public(registry: str) -> bool:
    host = host_of(registry.lower())
    return host in PUBLIC_REGISTRIES or host.endswith(".gcr.io")


def pushed_registries(tasks: Iterable[Task]) -> frozenset[str]:
    """The registries tasks push to (short -t names are under the task's registry)."""
    return frozenset(name.partition("/")[0].lower() for task in tasks for name in task.qualified_image_names)


def schedule_of(registry: str, marked: frozenset[str], pushed: frozenset[str]) -> Schedule:
    if is_public(registry):
        return Schedule(Speed.SLOW, "public registry")
    if is_listed(registry, marked):
        return Schedule(Speed.FAST, "marked fast")
    if registry.lower() in pushed:
        return Schedule(Speed.FAST, "tasks push there")
    return Schedule(Speed.SLOW, "not a registry tasks push to; mark it with --fast-registry")


def parse_marks(values: Iterable[str], environ: Mapping[str, str]) -> frozenset[str]:
    """`--fast-registry` values and ACRTASK_FAST_REGISTRIES, checked: host[:port], and not a public registry."""
    found = list(values) + [item for item in environ.get(FAST_ENV, "").split(",") if item.strip()]
    marked = set()
    for value in (item.strip().lower() for item in found):
        try:
            # A registry an image reference can name: `myhost` alone would mean docker.io/myhost/...
            registry = parse_registry(value) if value and names_registry(f"{value}/probe") else ""
        except ValidationError:
            registry = ""
        if registry != value:
            raise ValidationError(f"Invalid --fast-registry '{value}': expected a registry host[:port].",
                                  "For example --fast-registry registry.example.com or --fast-registry "
                                  "localhost:5000.")
        if is_public(value):
            raise ValidationError(f"--fast-registry {value}: a public registry stays on the --poll-interval "
                                  "schedule (polling it every few seconds only spends its rate limits).",
                                  "Keep a copy in your own registry with a copy task (task create --import) "
                                  "and build FROM the copy; see docs/copies.md.")
        marked.add(value)
    return frozenset(marked)


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


class PollSchedule:
    """The schedule of every watched base tag, and the delay to its next check."""

    def __init__(self, marked: frozenset[str], fast_interval: float, slow: tuple[float, float],
                 rng: random.Random) -> None:
        self.marked, self.fast_interval, self.slow, self.rng = marked, fast_interval, slow, rng
        self.by_registry: dict[str, Schedule] = {}
        self._told: dict[str, tuple[Schedule, tuple[str, ...]]] = {}

    def interval(self, key: BaseKey) -> float:
        """Seconds until `key`'s next check: the fast interval, or a random draw from the slow range."""
        found = self.by_registry.get(key.registry)
        if found is not None and found.speed is Speed.FAST:
            return self.fast_interval
        return self.rng.uniform(*self.slow)

    def shortest(self, key: BaseKey) -> float:
        """The shortest time between two checks of `key` (what a failed check's retry stays under)."""
        found = self.by_registry.get(key.registry)
        return self.fast_interval if found is not None and found.speed is Speed.FAST else self.slow[0]

    def update(self, keys: Iterable[BaseKey], tasks: Iterable[Task], next_check: dict[BaseKey, float],
               now: float) -> list[str]:
        """Work out each registry's schedule again (tasks changed); bring a base that became fast forward in
        `next_check`. Returns one log line per registry whose schedule or tags changed."""
        pushed = pushed_registries(tasks)
        tags: dict[str, list[str]] = {}
        for key in sorted(keys):
            tags.setdefault(key.registry, []).append(f"{key.repository}:{key.tag}")
        before = self.by_registry
        self.by_registry = {registry: schedule_of(registry, self.marked, pushed) for registry in tags}
        for key, due in next_check.items():
            schedule = self.by_registry.get(key.registry)
            was = before.get(key.registry)
            if schedule is not None and schedule.speed is Speed.FAST and (was is None or was.speed is Speed.SLOW):
                next_check[key] = min(due, now + self.fast_interval)
        lines = []
        for registry, names in tags.items():
            schedule = self.by_registry[registry]
            if self._told.get(registry) == (schedule, tuple(names)):
                continue
            self._told[registry] = (schedule, tuple(names))
            low, high = self.slow
            every = (f"every {_duration(self.fast_interval)}" if schedule.speed is Speed.FAST else
                     f"every {_duration(low)}" if low == high else
                     f"every {_duration(low)}-{_duration(high)} at random")
            shown = ", ".join(names[:_LISTED_TAGS]) + (f" and {len(names) - _LISTED_TAGS} more"
                                                       if len(names) > _LISTED_TAGS else "")
            lines.append(f"Schedule: {registry} is polled {every} ({schedule.speed}: {schedule.why}): "
                         f"{len(names)} base tag(s): {shown}.")
        for registry in set(self._told) - set(tags):
            del self._told[registry]
        return lines
