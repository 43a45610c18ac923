"""The one place acrtask starts a subprocess (`run`, `capture`, and `start_detached` for a child that outlives us).

`run` starts a command in its own session (so its own process group), streams its merged
stdout/stderr line by line to a log callback with every secret value replaced by `***`, and stops
the whole group on timeout, on cancel, or when anything goes wrong in the caller (a log callback
raising, KeyboardInterrupt): SIGTERM first, SIGKILL after a short grace. Descendants that left the
group (setsid) are found through /proc while their parents live, and signalled too.
"""

from __future__ import annotations

import codecs
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from acrtask.errors import BuildCanceledError, BuildError, BuildTimeoutError

__all__ = [
    "KILL_GRACE",
    "REDACTED",
    "BuildCanceledError",
    "BuildTimeoutError",
    "LineRedactor",
    "capture",
    "run",
    "start_detached",
]

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL: buildah and docker clean up well within this
REDACTED = "***"
_POLL = 0.05  # how often cancel and the deadline are checked while the child is quiet
_DRAIN = 2.0  # at most this long to read what is left in the pipe once the child is gone
_CHUNK = 65536
_MAX_LINE = 65536  # a longer line without a newline is logged in pieces (still redacted)
_NEWLINE = re.compile(r"\r\n|\r|\n")  # a lone \r (progress output) ends a line too


class LineRedactor:
    """Turns a byte stream into lines with every secret replaced by `***`, and hands them to `emit`.

    Bytes are decoded incrementally (a UTF-8 character split across reads survives), and text is only
    emitted at line ends, so a secret split across two reads is still caught. A line longer than
    `max_line` is emitted in pieces; the piece's tail that could be the start of a secret is held back.
    """

    def __init__(self, secrets: Iterable[str], emit: Callable[[str], None], max_line: int = _MAX_LINE) -> None:
        # Output is matched line by line, so a multi-line secret (a PEM key) is hidden line by line.
        parts = {part for secret in secrets for part in _NEWLINE.split(secret) if part.strip()}
        # Longest first, so a secret that contains another secret is hidden whole.
        self._secrets = sorted(parts, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self._secrets))) if self._secrets else None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._emit = emit
        self._max_line = max_line
        self._buf = ""

    def redact(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern else text

    def feed(self, data: bytes) -> None:
        text = self._buf + self._decoder.decode(data)
        hold = ""
        if text.endswith("\r"):  # may be the first half of \r\n: wait for the next read
            text, hold = text[:-1], "\r"
        *lines, rest = _NEWLINE.split(text)
        self._buf = rest + hold
        for line in lines:
            self._emit(self.redact(line))
        if len(self._buf) > self._max_line:
            self._flush_partial()

    def close(self) -> None:
        """Emit what is left (a last line without a newline), redacted."""
        text = (self._buf + self._decoder.decode(b"", final=True)).rstrip("\r")
        self._buf = ""
        if text:
            self._emit(self.redact(text))

    def _flush_partial(self) -> None:
        text = self.redact(self._buf)
        keep = self._secret_prefix_len(text)
        self._buf = text[len(text) - keep:] if keep else ""
        self._emit(text[: len(text) - keep])

    def _secret_prefix_len(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some secret."""
        best = 0
        for secret in self._secrets:
            for k in range(min(len(secret) - 1, len(text)), best, -1):
                if secret.startswith(text[-k:]):
                    best = k
                    break
        return best


# -- process table (Linux /proc; elsewhere only the process group is used) ------------------------------


class _Proc(NamedTuple):
    ppid: int
    pgid: int
    state: str
    start: int  # start time in clock ticks since boot: with the pid, it names one process (pids get reused)


def _proc_table() -> dict[int, _Proc] | None:
    """Every process by pid, or None without /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    table: dict[int, _Proc] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        # The command name is in parentheses and may itself contain spaces or ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        table[int(entry.name)] = _Proc(int(fields[1]), int(fields[2]), fields[0], int(fields[19]))
    return table


def _tree(table: Mapping[int, _Proc], roots: Iterable[int]) -> set[int]:
    """`roots` and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info.ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _live(leader: int, known: dict[int, int]) -> dict[int, int] | None:
    """Live processes of the leader's group and tree, and of `known` (pid -> start), with their trees.

    None without /proc: then only the process group can be reached.
    """
    table = _proc_table()
    if table is None:
        return None
    roots = {pid for pid, info in table.items() if info.pgid == leader}
    roots |= {pid for pid, start in known.items() if pid in table and table[pid].start == start}
    roots.add(leader)
    return {pid: table[pid].start for pid in _tree(table, roots)
            if pid in table and pid != leader and table[pid].state not in ("Z", "X")}


def _signal(pgid: int, pids: Iterable[int], sig: signal.Signals) -> None:
    for target in (-pgid, *pids):  # -pgid: the whole group; pids: descendants that left it (setsid)
        try:
            os.kill(target, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    # WNOWAIT: notice the exit but leave the zombie, so its pid (our pgid) cannot be reused
    # before the group's leftovers are signalled.
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the child, its group and its descendants; SIGKILL what is left after `grace` seconds."""
    leader = proc.pid  # start_new_session: the child leads its own group
    others = _live(leader, {})
    if others is None:
        _stop_group(proc, grace)
        return
    if not others and _exited(proc):
        return  # the usual case after a clean exit: nothing to stop
    _signal(leader, others, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        time.sleep(0.02)
        others = _live(leader, others) or {}
        if not others and _exited(proc):
            return
    _signal(leader, _live(leader, others) or {}, signal.SIGKILL)


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Without /proc: TERM the group, wait for the leader, then KILL whatever of the group is left."""
    _signal(proc.pid, (), signal.SIGTERM)
    end = time.monotonic() + grace
    while not _exited(proc) and time.monotonic() < end:
        time.sleep(0.02)
    _signal(proc.pid, (), signal.SIGKILL)  # harmless when only the (unreaped) leader is left


# -- run ----------------------------------------------------------------------------------------------


def _start(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(  # noqa: S603 - an argument list, never a shell
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own session: Ctrl-C in the terminal does not reach the child directly (we stop it, in
            # order), and killpg reaches everything it spawned.
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError:
        raise BuildError(f"Cannot run {argv[0]}: it is not installed or not on PATH.",
                         "Install it, or choose another builder.") from None
    except OSError as exc:
        raise BuildError(f"Cannot run {argv[0]}: {exc.strerror}.",
                         "Check that the file is an executable program.") from None


def _readable(fd: int, timeout: float) -> bool:
    """Whether `fd` has data or EOF within `timeout` seconds (poll: unlike select, any fd number works)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _pump(proc: subprocess.Popen[bytes], fd: int, lines: LineRedactor, cancel: threading.Event,
          deadline: float | None) -> type[BuildError] | None:
    """Stream output until the child exits (None), or the deadline passes / cancel is set (the error)."""
    eof = False
    exit_wait = 0.001  # after EOF the exit is imminent: look again soon, backing off to _POLL
    while True:
        if cancel.is_set():
            return BuildCanceledError
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return BuildTimeoutError
        wait = _POLL if deadline is None else max(0.0, min(_POLL, deadline - now))
        if eof:
            cancel.wait(min(wait, exit_wait))
            exit_wait = min(exit_wait * 2, _POLL)
        else:
            if _readable(fd, wait):
                data = os.read(fd, _CHUNK)
                if data:
                    lines.feed(data)
                    continue
                eof = True
        if _exited(proc):
            return None


def _drain(fd: int, lines: LineRedactor) -> None:
    """Read what is left in the pipe; bounded, as a process that escaped us may keep it open."""
    end = time.monotonic() + _DRAIN
    while (left := end - time.monotonic()) > 0:
        if not _readable(fd, left):
            return
        data = os.read(fd, _CHUNK)
        if not data:
            return
        lines.feed(data)


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Callable[[str], None],
    cancel: threading.Event,
    timeout: float | None,
    secrets: Iterable[str] = (),
    *,
    grace: float = KILL_GRACE,
) -> int:
    """Run `argv` with exactly `env`; return its exit code (negative: killed by that signal).

    Output lines go to `log` with each of `secrets` replaced by `***`. On `timeout` seconds, or when
    `cancel` is set, the process group is stopped and BuildTimeoutError / BuildCanceledError raised.
    Leftovers of the group are stopped when the command exits too, so nothing outlives a call.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    lines = LineRedactor(secrets, log)
    deadline = None if timeout is None else time.monotonic() + timeout
    proc = _start(argv, env)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        stopped = _pump(proc, fd, lines, cancel, deadline)
        _stop(proc, grace)
        _drain(fd, lines)
        lines.close()
    except BaseException:
        _stop(proc, grace)  # a log callback failed or KeyboardInterrupt: leave nothing running
        raise
    finally:
        proc.wait()
        proc.stdout.close()
    what = shlex.join(argv[:2])
    if stopped is BuildTimeoutError:
        raise BuildTimeoutError(f"`{what}` did not finish within {timeout:g} s and was stopped.",
                                "Allow more time with --timeout, or make the build faster.")
    if stopped is BuildCanceledError:
        raise BuildCanceledError(f"`{what}` was canceled and stopped.", "Run it again when you are ready.")
    return proc.returncode


def capture(argv: Sequence[str], env: Mapping[str, str], timeout: float = 10.0) -> tuple[int, str]:
    """Run a quick probe (`docker buildx version`); return its exit code and output.

    A program that is missing or hangs counts as failing (code 127), so callers just test the code.
    """
    out: list[str] = []
    try:
        code = run(argv, env, out.append, threading.Event(), timeout)
    except BuildError:
        return 127, "\n".join(out)
    return code, "\n".join(out)


def start_detached(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Start `argv` in a session of its own, with no pipes, and do not wait: it outlives this process
    (`task run --no-wait`'s child) and no signal to this terminal reaches it."""
    subprocess.Popen(  # noqa: S603 - an argument list, never a shell
        list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


# -- leftovers of a process that died without stopping its builds -----------------------------------

RUN_TAG = "ACRTASK_RUN_ID"  # set in a build's environment, so its processes can be found again


def kill_tagged(tag: str, grace: float = KILL_GRACE) -> int:
    """Stop every process (and its descendants) whose environment carries ACRTASK_RUN_ID=tag.

    A watch killed with SIGKILL leaves its builds running; the next start stops them before it runs
    their trigger again, so two builds of one change never race. Returns how many were signalled.
    """
    table = _proc_table()
    if table is None:
        return 0
    marker = f"{RUN_TAG}={tag}".encode()
    tagged = set()
    for pid in table:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            tagged.add(pid)
    targets = {pid for pid in _tree(table, tagged) if table.get(pid) and table[pid].state not in ("Z", "X")}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in targets:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig is signal.SIGTERM:
            end = time.monotonic() + grace
            while time.monotonic() < end and any(_alive(pid) for pid in targets):
                time.sleep(0.05)
    return len(targets)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2:].split()[0] not in ("Z", "X")
