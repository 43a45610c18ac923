"""Bulk work that makes many objects at once, with Python's cyclic garbage collector paused meanwhile.

Loading 10,000 tasks makes about a million objects; each allocation burst sets off full collections
that walk all of them again, a third of the load time. Nothing made during such a load is garbage
(tasks and documents hold no reference cycles), so the collector simply waits until it is over.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
