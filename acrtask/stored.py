"""Stored dicts (TOML, JSON): typed getters that refuse a value of the wrong shape, and `drop_none` for writing.

A string where a list belongs is refused, not read as a list of its characters. Each raises TypeError
(or KeyError for a missing key) naming the key, for the caller to report with the file it read.
"""

from __future__ import annotations

from typing import Any


def list_of(data: dict[str, Any], key: str) -> list[Any]:
    """A list field of a stored dict; a string is refused, not read as a list of its characters."""
    value = data.get(key, [])
    if not isinstance(value, list):
        raise TypeError(f"{key!r} must be a list, not {type(value).__name__}")
    return value


def tables(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    values = list_of(data, key)
    if not all(isinstance(value, dict) for value in values):
        raise TypeError(f"{key!r} must be a list of tables")
    return values


def text(data: dict[str, Any], key: str) -> str:
    """A string field that must be there."""
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, not {type(value).__name__}")
    return value


def optional_text(data: dict[str, Any], key: str, default: str | None = None) -> str | None:
    return text(data, key) if key in data else default


def table(data: dict[str, Any], key: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
    value = data[key] if default is None else data.get(key, default)
    if not isinstance(value, dict):
        raise TypeError(f"{key!r} must be a table, not {type(value).__name__}")
    return value


def strings(data: dict[str, Any], key: str) -> tuple[str, ...]:
    values = list_of(data, key)
    if not all(isinstance(value, str) for value in values):
        raise TypeError(f"{key!r} must be a list of strings")
    return tuple(values)


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    """A dict to store: TOML has no null, so None values are left out (and read back as defaults)."""
    return {key: value for key, value in values.items() if value is not None}
