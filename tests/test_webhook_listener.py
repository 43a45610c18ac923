"""The webhook listener against clients that misbehave, over raw sockets to a real listener on 127.0.0.1:
wrong shapes, paths, body framing (no body read as a next request), idle and slow clients, and running
out of file descriptors."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from acrtask.watch.events import PushEvent
from acrtask.watch.webhook import MAX_BODY, WebhookServer
from tests.support.waiting import wait_for
from tests.support.webhook_payloads import DEEP, WRONG_SHAPES, distribution_event

TOKEN = "s3cret"
GOOD = json.dumps({"events": [distribution_event()]}).encode()


class Listener:
    def __init__(self, **options: float) -> None:
        self.received: queue.Queue[list[PushEvent]] = queue.Queue()
        self.server = WebhookServer("127.0.0.1", 0, TOKEN, self.received.put, **options)  # type: ignore[arg-type]
        self.port = self.server.server_address[1]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def events(self) -> list[list[PushEvent]]:
        out = []
        while not self.received.empty():
            out.append(self.received.get_nowait())
        return out


@pytest.fixture
def listener() -> Iterator[Listener]:
    with serving() as server:
        yield server


@contextmanager
def serving(**options: float) -> Iterator[Listener]:
    server = Listener(**options)
    server.server.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def post(body: bytes, path: str = "/", headers: dict[str, str] | None = None, token: bool = True) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    if token:
        lines.append(f"Authorization: Bearer {TOKEN}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Responses:
    """Reads HTTP/1.1 responses one at a time from a socket (framed by their Content-Length)."""

    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def next(self) -> tuple[int, dict[str, str], str]:
        status_line = self.file.readline()
        assert status_line, "the connection was closed without an answer"
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        for _ in range(100):
            line = self.file.readline().decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers.get("content-length", "0"))).decode()
        return status, headers, body

    def closed(self) -> bool:
        """True when the server ends the connection (end of file) instead of sending more."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True


# Item 2: wrong shapes and deep nesting get 400 with a reason, over one keep-alive connection.

def test_wrong_shapes_get_400_with_a_reason_and_the_listener_keeps_answering(listener: Listener) -> None:
    bodies = [json.dumps(payload).encode() for payload, _ in WRONG_SHAPES] + DEEP
    with listener.connect() as sock:
        responses = Responses(sock)
        for body in bodies:
            sock.sendall(post(body))
            status, headers, text = responses.next()
            assert status == 400, text
            assert text.startswith("unknown payload: ") and text.count("\n") == 1
            assert headers.get("connection") != "close"
        sock.sendall(post(GOOD))
        assert responses.next()[0] == 202
    assert [[e.tag for e in events] for events in listener.events()] == [["1"]]  # only the good one


@pytest.mark.parametrize("path", ["//", "//?token=s3cret", "/hooks", "/./", "/%2F", "*", "http://x/"])
def test_only_the_root_path_is_accepted(listener: Listener, path: str) -> None:
    with listener.connect() as sock:
        responses = Responses(sock)
        sock.sendall(post(GOOD, path=path))
        assert responses.next()[0] == 404
        sock.sendall(post(GOOD, path="/?token=" + TOKEN, token=False))
        assert responses.next()[0] == 202
    assert len(listener.events()) == 1


# Item 6: every answer leaves the connection in step; bad lengths are refused, never waited on.

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(("path", "token", "status"), [
    ("/", False, 401), ("/elsewhere", True, 404), ("/", True, 400),
])
def test_a_body_is_never_read_as_the_next_request(listener: Listener, path: str, token: bool, status: int) -> None:
    with listener.connect() as sock:
        responses = Responses(sock)
        sock.sendall(post(SMUGGLED, path=path, token=token))  # Content-Length 35: the body is a request
        sock.sendall(post(GOOD))
        assert responses.next()[0] == status
        assert responses.next()[0] == 202  # the next answer is the next request's, not /smuggled's (501)
    assert len(listener.events()) == 1


@pytest.mark.parametrize(("headers", "status"), [
    ("Content-Length: -1", 400),
    ("Content-Length: abc", 400),
    ("Content-Length: 35\r\nContent-Length: 36", 400),
    ("Content-Length: 99999999999999999999", 400),
    ("", 411),
    ("Transfer-Encoding: chunked", 411),
    (f"Content-Length: {MAX_BODY + 1}", 413),
])
def test_bad_or_missing_lengths_are_answered_and_the_connection_closed(listener: Listener, headers: str,
                                                                      status: int) -> None:
    lines = ["POST / HTTP/1.1", "Host: x", f"Authorization: Bearer {TOKEN}", *([headers] if headers else [])]
    head = "\r\n".join(lines) + "\r\n\r\n"
    with listener.connect() as sock:
        responses = Responses(sock)
        sock.sendall(head.encode() + SMUGGLED)
        answer, reply_headers, _ = responses.next()
        assert answer == status
        assert reply_headers["connection"] == "close"
        assert responses.closed()  # no second answer: the rest was never parsed as a request
    assert listener.events() == []
    with listener.connect() as sock:  # and the listener goes on
        responses = Responses(sock)
        sock.sendall(post(GOOD))
        assert responses.next()[0] == 202


def test_a_body_that_stops_short_is_dropped_without_holding_the_handler() -> None:
    with serving(request_timeout=0.5) as server:
        with server.connect() as sock:
            sock.sendall(post(GOOD)[:-10])  # ten bytes never come
            assert Responses(sock).closed()
        wait_for(lambda: server.server.open_connections() == 0, 10, "the connection to be forgotten")
        assert server.events() == []


# Item 1: idle and slow clients are closed after the timeout; a flood of them cannot lock a registry out.

def test_idle_and_slow_clients_are_closed_after_the_request_timeout() -> None:
    with serving(request_timeout=0.5) as server:
        idle = [server.connect() for _ in range(20)]
        keep_alive = server.connect()
        keep_alive.sendall(post(GOOD))
        slow = server.connect()
        slow.sendall(b"POST / HTTP/1.1\r\n")
        try:
            assert Responses(keep_alive).next()[0] == 202
            # A header line every 0.1 s keeps each read short, but the whole request has a deadline.
            dropped = False
            for i in range(100):
                try:
                    slow.sendall(f"X-Slow-{i}: 1\r\n".encode())
                except OSError:  # reset: the server closed it
                    dropped = True
                    break
                time.sleep(0.1)
            assert dropped, "the slow client was never dropped"
            for sock in [*idle, keep_alive]:
                assert Responses(sock).closed()
            wait_for(lambda: server.server.open_connections() == 0, 10, "every connection to be closed")
        finally:
            for sock in [*idle, keep_alive, slow]:
                sock.close()


def test_a_flood_of_idle_connections_cannot_lock_out_a_webhook() -> None:
    # A long timeout: what makes room is the bound (the longest-waiting connection goes), not the clock.
    with serving(max_connections=8, request_timeout=60) as server:
        idle: list[socket.socket] = []
        try:
            for _ in range(300):
                idle.append(server.connect())
            with server.connect() as sock:
                sock.sendall(post(GOOD))
                assert Responses(sock).next()[0] == 202
            assert [[e.tag for e in events] for events in server.events()] == [["1"]]
            assert server.server.open_connections() <= 2 * 8
            assert Responses(idle[0]).closed()  # the oldest idle connections made room
        finally:
            for sock in idle:
                sock.close()


def test_past_the_bound_with_every_connection_busy_a_new_one_is_refused() -> None:
    with serving(max_connections=2) as server:
        release = threading.Event()
        calls: list[int] = []

        def slow_loop(events: list[PushEvent]) -> None:  # a loop that does not take events for now
            calls.append(len(events))
            release.wait(10)

        server.server.on_event = slow_loop
        busy = [server.connect() for _ in range(2)]
        try:
            for sock in busy:
                sock.sendall(post(GOOD))
            wait_for(lambda: len(calls) == 2, 10, "both requests to be handled")
            with server.connect() as third:
                third.sendall(post(GOOD))
                assert Responses(third).closed()  # no room, and no waiting connection to drop
            assert server.server.open_connections() == 2
            release.set()
            assert [Responses(sock).next()[0] for sock in busy] == [202, 202]
        finally:
            release.set()
            for sock in busy:
                sock.close()


# Item 1: running out of file descriptors logs one ERROR line and the listener accepts again later.

_STARVED_LISTENER = """
import logging, os, resource, sys
logging.basicConfig(stream=sys.stderr, format="%(levelname)s: %(message)s", level=logging.INFO)
from acrtask.watch.webhook import WebhookServer
server = WebhookServer("127.0.0.1", 0, "s3cret", lambda events: print("events", len(events), flush=True),
                       accept_pause=0.02)
server.start()
print(server.server_address[1], flush=True)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
held = []
for _ in range(64):
    try:
        held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        break
print("full", flush=True)
sys.stdin.readline()
for fd in held:
    os.close(fd)
print("freed", flush=True)
sys.stdin.readline()
"""


def test_running_out_of_descriptors_logs_one_error_and_accepting_resumes() -> None:
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen([sys.executable, "-u", "-c", _STARVED_LISTENER], cwd=root, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(root)})
    errors: list[str] = []

    def read_errors() -> None:
        for line in child.stderr or []:
            errors.append(line)

    reader = threading.Thread(target=read_errors, daemon=True)
    reader.start()
    try:
        assert child.stdout and child.stdin
        port = int(child.stdout.readline())
        assert child.stdout.readline() == "full\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(post(GOOD))  # waits in the listen backlog: accept() fails with EMFILE
            wait_for(lambda: any(line.startswith("ERROR: ") for line in errors), 10, "the ERROR line")
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline() == "freed\n"
            assert Responses(sock).next()[0] == 202
        assert child.stdout.readline() == "events 1\n"
        child.stdin.close()
        assert child.wait(timeout=10) == 0
        reader.join(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    error_lines = [line for line in errors if line.startswith("ERROR: ")]
    assert len(error_lines) == 1, errors  # one line, however many times accept() failed
    assert "Too many open files (EMFILE)" in error_lines[0] and "ulimit -n" in error_lines[0]
    assert any("accepts connections again" in line for line in errors)


# Item 8: one body with 1,000 events reaches the loop as one call (which logs one line for it).

def test_a_body_of_1000_events_is_one_call(listener: Listener) -> None:
    events = [distribution_event(tag=str(i)) for i in range(1000)]
    with listener.connect() as sock:
        sock.sendall(post(json.dumps({"events": events}).encode()))
        status, _, text = Responses(sock).next()
    assert (status, text) == (202, "1000 push event(s)\n")
    calls = listener.events()
    assert [len(call) for call in calls] == [1000]
