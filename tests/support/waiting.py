"""Waiting for a condition in tests: bounded in time, polled, and saying what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.3) -> None:
    """`interval`: how often `condition` is asked (in-process tests ask often, subprocess ones less)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
