"""Run records in the state database: ids from a counter row, so they increase and are never reused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from acrtask.errors import StateError
from acrtask.model import Run, RunStatus
from acrtask.runids import run_id, run_number
from acrtask.state.db import Database

_LIVE = (str(RunStatus.QUEUED), str(RunStatus.RUNNING))


class RunRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, make: Callable[[str], Run]) -> Run:
        """Take the next id and record `make(id)`, in one transaction."""
        with self.db.write() as conn:
            taken = conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'run' RETURNING value")
            number = taken.fetchone()[0]
            run = make(run_id(number))
            self.insert(conn, number, run)
        return run

    def save(self, run: Run) -> Run:
        number = run_number(run.run_id)
        if number is None:
            raise StateError(f"'{run.run_id}' is not a run id.")
        with self.db.write() as conn:
            self.insert(conn, number, run)
        return run

    @staticmethod
    def insert(conn: Any, number: int, run: Run, document: dict[str, Any] | None = None) -> None:
        """Write one record (replacing the one of that number) inside the caller's transaction."""
        conn.execute("INSERT INTO runs(number, task, status, document) VALUES (?, ?, ?, ?) ON CONFLICT(number) DO "
                     "UPDATE SET task = excluded.task, status = excluded.status, document = excluded.document",
                     (number, run.task, str(run.status),
                      json.dumps(document or run.to_dict(), separators=(",", ":"))))

    def get(self, run_id_text: str) -> Run | None:
        number = run_number(run_id_text)
        if number is None:
            return None
        runs = self._select("WHERE number = ?", (number,))
        return runs[0] if runs else None

    def find(self, task: str | None = None, status: RunStatus | None = None, top: int | None = None) -> list[Run]:
        """Newest first."""
        clauses, params = [], []
        if task is not None:
            clauses.append("task = ?")
            params.append(task)
        if status is not None:
            clauses.append("status = ?")
            params.append(str(status))
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        limit = f" LIMIT {int(top)}" if top is not None else ""
        return self._select(f"{where}ORDER BY number DESC{limit}", tuple(params))

    def unfinished(self) -> list[Run]:
        return self._select("WHERE status IN (?, ?) ORDER BY number", _LIVE)

    def after(self, number: int) -> list[Run]:
        """Runs numbered above `number`, oldest first: the ones created since a reader's last look."""
        return self._select("WHERE number > ? ORDER BY number", (number,))

    def several(self, ids: set[str]) -> list[Run]:
        numbers = sorted(n for n in (run_number(i) for i in ids) if n is not None)
        if not numbers:
            return []
        return self._select(f"WHERE number IN ({','.join('?' * len(numbers))}) ORDER BY number", tuple(numbers))

    def prune(self, keep: int) -> list[str]:
        """Drop finished runs older than the newest `keep`; never a queued or running one. Returns the ids."""
        oldest_kept = "SELECT number FROM runs ORDER BY number DESC LIMIT 1 OFFSET ?"
        if not self.db.query(oldest_kept, (keep,)):
            return []  # the usual case, found without a write lock: no more than `keep` runs
        with self.db.write() as conn:
            row = conn.execute(oldest_kept, (keep,)).fetchone()
            if row is None:
                return []
            doomed = [number for (number,) in conn.execute(
                "SELECT number FROM runs WHERE number <= ? AND status NOT IN (?, ?)", (row[0], *_LIVE))]
            conn.executemany("DELETE FROM runs WHERE number = ?", [(n,) for n in doomed])
        return [run_id(n) for n in doomed]

    def _select(self, tail: str, params: tuple[Any, ...]) -> list[Run]:
        runs = []
        for number, document in self.db.query(f"SELECT number, document FROM runs {tail}", params):
            try:
                runs.append(Run.from_dict(json.loads(document)))
            except (ValueError, KeyError, TypeError) as exc:
                raise StateError(f"Run record {run_id(number)} in {self.db.path} is corrupt: {exc}.",
                                 "It is only history: 'acrtask task list-runs' works again once it is pruned.") \
                    from exc
        return runs
