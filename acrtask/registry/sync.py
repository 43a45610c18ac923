"""RegistryClient for synchronous callers (the CLI, the watch loop, runs on worker threads).

`BlockingRegistryClient` runs one RegistryClient on an event loop of its own, on a daemon thread, so tokens,
connections and index lookups survive between calls, and any thread may call it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.registry.client import CheckKey, RegistryClient, Resolved
from acrtask.registry.copy import CopyResult, LogSink, copy_image

T = TypeVar("T")


class BlockingRegistryClient:
    """The blocking face of RegistryClient; takes the same keyword arguments. Close it (or use `with`)."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="acrtask-registry", daemon=True)
        self._thread.start()
        self._client = RegistryClient(**options)
        self._closed = False

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("BlockingRegistryClient is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def resolve(self, ref: ImageRef, platform: Platform | None = None, *,
                known: Mapping[str, str] | None = None) -> Resolved:
        return self._run(self._client.resolve(ref, platform, known=known))

    def platform_digest(self, ref: ImageRef, digest: str, platform: Platform) -> str:
        return self._run(self._client.platform_digest(ref, digest, platform))

    def check_many(self, items: Iterable[CheckKey]) -> dict[CheckKey, Resolved | Exception]:
        return self._run(self._client.check_many(list(items)))

    def start_copy(self, source: ImageRef, target: ImageRef, *, force: bool = False,
                   log_line: LogSink | None = None) -> Future[CopyResult]:
        """Begin copying `source` to `target` (copy.py); the caller waits on the future, and may cancel it."""
        if self._closed:
            raise RuntimeError("BlockingRegistryClient is closed")
        return asyncio.run_coroutine_threadsafe(
            copy_image(self._client, source, target, force=force, log_line=log_line), self._loop)

    def cap_circuit(self, seconds: float) -> None:
        self._run(self._cap_circuit(seconds))

    async def _cap_circuit(self, seconds: float) -> None:
        self._client.cap_circuit(seconds)  # on the client's own loop: sessions are only touched there

    def close(self) -> None:
        """Close connections; calls still waiting (a check of a hanging registry) end with CancelledError."""
        if self._closed:
            return
        self._run(_cancel_others())
        self._run(self._client.aclose())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> BlockingRegistryClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


async def _cancel_others() -> None:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def resolve_sync(ref: ImageRef, platform: Platform | None = None, **options: Any) -> Resolved:
    """One-off resolve for the CLI: a fresh client, one reference, closed afterwards."""

    async def once() -> Resolved:
        async with RegistryClient(**options) as client:
            return await client.resolve(ref, platform)

    return asyncio.run(once())


def copy_sync(source: ImageRef, target: ImageRef, *, force: bool = False, log_line: LogSink | None = None,
              **options: Any) -> CopyResult:
    """One-off copy for the CLI (`image import`): a fresh client, closed afterwards."""

    async def once() -> CopyResult:
        async with RegistryClient(**options) as client:
            return await copy_image(client, source, target, force=force, log_line=log_line)

    return asyncio.run(once())
