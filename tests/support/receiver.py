"""A notification receiver on 127.0.0.1: records each POST (path, headers, JSON body) and answers with a
scripted status per request; a request may be held until the test releases it (a receiver that hangs)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class Receiver:
    """`answers`: the status for request 1, 2, ...; past the list, 200. `hold_first`: request 1 waits for
    `release` (at most `hold_limit` seconds) before it is answered."""

    def __init__(self, answers: list[int] | None = None, hold_first: bool = False, hold_limit: float = 120.0) -> None:
        self.answers = list(answers or [])
        self.requests: list[Received] = []
        self.release = threading.Event()
        self.holding = threading.Event()  # set while request 1 is held
        self.hold_first, self.hold_limit = hold_first, hold_limit
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), json.loads(body)))
                    number = len(receiver.requests)
                    receiver._lock.notify_all()
                if number == 1 and receiver.hold_first:
                    receiver.holding.set()
                    receiver.release.wait(receiver.hold_limit)
                    receiver.holding.clear()
                status = receiver.answers[number - 1] if number <= len(receiver.answers) else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self._lock:
            self._lock.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)
