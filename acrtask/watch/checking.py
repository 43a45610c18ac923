"""Checking base tags, one registry at a time: each registry's batch runs on a thread of its own and its
result comes back to the loop as an event, so a registry that hangs, fails or rate-limits delays only
its own bases; the loop, the webhook and every other registry carry on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from acrtask import triggers
from acrtask.triggers import BaseKey, Interest
from acrtask.watch.checks import CheckResult, PlatformKey, TagChecker


class RegistryChecks:
    """Each batch on a thread of its own, so batches of different registries run side by side (the scheduler
    sends at most one per registry at a time)."""

    def __init__(self, checker: TagChecker, deliver: Callable[[CheckResult], None]) -> None:
        self.checker = checker
        self.deliver = deliver

    def start(self, registry: str, batch: dict[BaseKey, str | None],
              interests: Mapping[BaseKey, list[Interest]]) -> None:
        worker = threading.Thread(target=self._check, args=(registry, batch, interests), daemon=True,
                                  name=f"check {registry}")  # daemon: a hanging registry never holds up exit
        try:
            worker.start()
        except RuntimeError as exc:  # no thread to be had: the batch fails now and is retried like any failure
            self.deliver(CheckResult(registry, batch, dict.fromkeys(batch, exc), {}))

    def _check(self, registry: str, batch: dict[BaseKey, str | None],
               interests: Mapping[BaseKey, list[Interest]]) -> None:
        try:
            digests = self.checker.digests(list(batch))
        except Exception as exc:  # e.g. out of file descriptors: every tag of the batch failed
            digests = dict.fromkeys(batch, exc)
        platforms: dict[PlatformKey, str | None | Exception] = {}
        for key, digest in digests.items():
            if not isinstance(digest, str):
                continue
            for interest in triggers.changed(interests.get(key, ()), digest):
                wanted = (key, interest.dependency.platform)
                if wanted not in platforms:
                    try:
                        platforms[wanted] = self.checker.platform_digest(key, digest, wanted[1])
                    except Exception as exc:
                        platforms[wanted] = exc
        self.deliver(CheckResult(registry, batch, digests, platforms))
