"""`task logs`: a run's log, followed to the run's end as az streams it.

The log file grows while the run runs (runner.py appends each line as it comes). Following it means printing
what is there, then what is added, until the run's record says it ended and the file is read to its end. A run
whose process died without recording an end (pid gone) stops the follow with an error instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from acrtask.errors import AcrTaskError
from acrtask.run_record import Run
from acrtask.runs import pid_alive

POLL = 0.2  # seconds between looks at a quiet log
_CHUNK = 65536


def follow(path: Path, record: Callable[[], Run], write: Callable[[str], None],
           sleep: Callable[[float], None] = time.sleep) -> Run:
    """Write the log at `path` as it grows until `record()` is terminal; return the final record."""
    offset = 0
    pending = b""  # bytes of a UTF-8 character cut by a read
    lost_checks = 0
    while True:
        run = record()  # read before the file: whatever the run wrote before ending is then on disk
        data = _read_from(path, offset)
        if data:
            offset += len(data)
            text, pending = _decode(pending + data)
            if text:
                write(text)
            continue  # there may be more right away
        if run.status.is_terminal:
            if pending:
                write(pending.decode("utf-8", errors="replace"))
            return run
        lost_checks = lost_checks + 1 if run.pid and not pid_alive(run.pid) else 0
        if lost_checks > 2:  # read the record again twice: it may have ended just now
            raise AcrTaskError(f"Run ID: {run.run_id} is {run.status.value}, but the process running it "
                               f"(pid {run.pid}) is gone.",
                               "Run 'acrtask watch --once' or 'acrtask task list-runs' to settle it, then run "
                               "the task again.")
        sleep(POLL)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(_CHUNK)
    except FileNotFoundError:  # a queued run has no log yet
        return b""


def _decode(data: bytes) -> tuple[str, bytes]:
    """Decode what is whole; keep the bytes of a character the next read completes."""
    for cut in range(0, min(4, len(data)) + 1):
        head = data[:len(data) - cut] if cut else data
        try:
            return head.decode("utf-8"), data[len(head):]
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), b""
