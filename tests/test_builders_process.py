"""process.run with real, plain commands (sh, sleep, setsid): streaming, redaction, stopping, no leftovers."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from acrtask.errors import BuildError
from acrtask.process import (
    BuildCanceledError,
    BuildTimeoutError,
    LineRedactor,
    capture,
    run,
)
from tests.support.procs import wait_gone, zombie_children

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def marker() -> str:
    """A unique `sleep` duration, so leftovers of this test can be found in /proc by command line."""
    return f"300.{uuid.uuid4().int % 10**6:06d}"


def assert_gone(mark: str) -> None:
    # SIGKILL is delivered asynchronously: allow the kernel a moment, bounded.
    assert wait_gone(mark) == []




def collect(argv: list[str], timeout: float | None = 10.0, secrets: tuple[str, ...] = (),
            cancel: threading.Event | None = None, **kwargs: float) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run(argv, ENV, lines.append, cancel or threading.Event(), timeout, secrets, **kwargs)
    return code, lines


# -- streaming and exit codes -----------------------------------------------------------------------------


def test_streams_merged_output_in_order_and_returns_the_exit_code() -> None:
    code, lines = collect(sh("echo one; echo two >&2; echo three; exit 7"))
    assert code == 7
    assert lines == ["one", "two", "three"]


def test_zero_exit_and_last_line_without_newline() -> None:
    assert collect(sh("printf 'a\\nb'")) == (0, ["a", "b"])


def test_only_the_given_environment_reaches_the_child() -> None:
    lines: list[str] = []
    run(["env"], {"PATH": ENV["PATH"], "ONLY": "this"}, lines.append, threading.Event(), 10.0)
    assert sorted(lines) == sorted([f"PATH={ENV['PATH']}", "ONLY=this"])


def test_lines_arrive_while_the_command_runs(tmp_path: Path) -> None:
    # A handshake, not a timing: the command waits (up to 20 s) for a file that only the log callback
    # of its first line creates, so "second" comes quickly only if "first" was streamed while it ran.
    flag = tmp_path / "first-seen"
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "first":
            flag.touch()

    start = time.monotonic()
    run(sh(f"echo first; i=0; while [ ! -e {flag} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
           "echo second"), ENV, on_line, threading.Event(), 60.0)
    assert seen == ["first", "second"]
    assert time.monotonic() - start < 15.0


def test_a_missing_program_is_a_build_error() -> None:
    with pytest.raises(BuildError, match="not installed or not on PATH"):
        collect(["acrtask-no-such-program-xyz"])


# -- redaction --------------------------------------------------------------------------------------------


def test_secrets_are_redacted_in_full_lines_split_writes_and_the_last_partial_line() -> None:
    script = "echo token=hunter2; printf 'split hun'; sleep 0.2; printf 'ter2 end\\n'; printf 'tail hunter2'"
    code, lines = collect(sh(script), secrets=("hunter2",))
    assert code == 0
    assert lines == ["token=***", "split *** end", "tail ***"]


def test_longest_secret_wins_and_empty_secrets_are_ignored() -> None:
    _, lines = collect(sh("echo abc-abcdef-x"), secrets=("abc", "abcdef", ""))
    assert lines == ["***-***-x"]


def test_a_multi_line_secret_is_hidden_line_by_line() -> None:
    _, lines = collect(sh("printf 'key:\\nline-one-abc\\nline-two-def\\nend\\n'"),
                       secrets=("line-one-abc\nline-two-def\n",))
    assert lines == ["key:", "***", "***", "end"]


def test_redactor_holds_back_a_possible_secret_start_in_an_overlong_line() -> None:
    out: list[str] = []
    redactor = LineRedactor(["SECRET"], out.append, max_line=8)
    redactor.feed(b"0123456789SEC")
    redactor.feed(b"RET-tail\n")
    redactor.close()
    assert "".join(out) == "0123456789***-tail"
    assert not any("SEC" in piece for piece in out)


def test_redactor_joins_crlf_split_across_reads_and_utf8_split_across_reads() -> None:
    out: list[str] = []
    redactor = LineRedactor([], out.append)
    redactor.feed(b"one\r")
    redactor.feed(b"\ntwo \xc3")
    redactor.feed(b"\xa9\rthree")
    redactor.close()
    assert out == ["one", "two é", "three"]


# -- stopping: timeout, cancel, failures in the caller --------------------------------------------------------


def test_timeout_kills_the_whole_group_quickly() -> None:
    mark = marker()
    start = time.monotonic()
    with pytest.raises(BuildTimeoutError, match="did not finish within 0.5 s"):
        collect(sh(f"echo started; sleep {mark} & sleep {mark}"), timeout=0.5)
    assert time.monotonic() - start < 3.0
    assert_gone(mark)
    assert zombie_children() == []


def test_timeout_also_kills_descendants_that_left_the_group() -> None:
    mark = marker()
    with pytest.raises(BuildTimeoutError):
        collect(sh(f"setsid sleep {mark} & wait"), timeout=0.5)
    assert_gone(mark)


def test_a_child_that_ignores_sigterm_gets_sigkill_after_the_grace() -> None:
    mark = marker()
    start = time.monotonic()
    with pytest.raises(BuildTimeoutError):
        collect(sh(f"trap '' TERM; echo ready; sleep {mark}"), timeout=2.0, grace=0.5)
    # The trap was set well before the timeout (2 s), and SIGTERM alone did not end it.
    assert 2.5 <= time.monotonic() - start < 6.0
    assert_gone(mark)


def test_cancel_from_another_thread_stops_the_command() -> None:
    mark = marker()
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(BuildCanceledError, match="canceled"):
            collect(sh(f"sleep {mark} & sleep {mark}"), timeout=None, cancel=cancel)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 3.0
    assert_gone(mark)
    assert zombie_children() == []


def test_background_leftovers_are_stopped_when_the_command_exits() -> None:
    mark = marker()
    start = time.monotonic()
    code, lines = collect(sh(f"sleep {mark} & echo done"))
    assert (code, lines) == (0, ["done"])
    assert time.monotonic() - start < 3.0  # the leftover keeps the pipe open: run must not wait for it
    assert_gone(mark)


def test_a_failing_log_callback_stops_the_command_and_propagates() -> None:
    mark = marker()

    def log(line: str) -> None:
        raise RuntimeError("log sink broke")

    with pytest.raises(RuntimeError, match="log sink broke"):
        run(sh(f"echo hi; sleep {mark}"), ENV, log, threading.Event(), 10.0)
    assert_gone(mark)
    assert zombie_children() == []


def test_capture_returns_code_and_output_and_treats_missing_programs_as_failing() -> None:
    assert capture(sh("echo v1.2; exit 0"), ENV) == (0, "v1.2")
    assert capture(sh("exit 4"), ENV)[0] == 4
    assert capture(["acrtask-no-such-program-xyz"], ENV)[0] == 127
