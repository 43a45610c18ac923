"""Registry aliases (`acrtask registry add|list|remove`): the names `-r` may use for a login server.

They live in the state database's settings, under `registryAliases` (a JSON document, name -> login
server); this class is the whole of their storage: three small methods. What `-r` means is registries.py.
"""

from __future__ import annotations

import json
import sqlite3

from acrtask.errors import NotFoundError
from acrtask.registries import check_name, normalise_server
from acrtask.state.db import Database

SETTING = "registryAliases"  # the settings key of the aliases


class RegistryAliases:
    """Registry names and the login servers they stand for, in the state database's settings (one JSON
    document under SETTING)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> dict[str, str]:
        rows = self.db.query("SELECT value FROM settings WHERE key = ?", (SETTING,))
        return _parsed(rows[0][0]) if rows else {}

    def add(self, name: str, server: str) -> tuple[str, str]:
        """Add or replace an alias; returns (name, login server) as stored."""
        key, value = check_name(name), normalise_server(server)
        with self.db.write() as conn:
            found = _read(conn)
            found[key] = value
            _write(conn, found)
        return key, value

    def remove(self, name: str) -> None:
        key = name.strip().lower()
        with self.db.write() as conn:
            found = _read(conn)
            if key not in found:
                raise NotFoundError(f"The registry alias '{name}' could not be found.",
                                    "Run 'acrtask registry list' to see the aliases there are.")
            del found[key]
            _write(conn, found)


def _parsed(text: str) -> dict[str, str]:
    try:
        table = json.loads(text)
    except ValueError:
        return {}
    return {str(k): v for k, v in table.items() if isinstance(v, str)} if isinstance(table, dict) else {}


def _read(conn: sqlite3.Connection) -> dict[str, str]:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (SETTING,)).fetchone()
    return _parsed(row[0]) if row else {}


def _write(conn: sqlite3.Connection, found: dict[str, str]) -> None:
    conn.execute("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (SETTING, json.dumps(found, sort_keys=True)))
