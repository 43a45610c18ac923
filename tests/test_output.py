"""Output rendering and global-argument parsing: pure tables."""

from __future__ import annotations

import pytest

from acrtask.cli.options import split_global_args
from acrtask.cli.output import render
from acrtask.errors import ValidationError

TASKS = [{"name": "a-task", "status": "Enabled", "nested": {"x": 1}, "flag": True},
         {"name": "b-task", "status": "Disabled", "nested": {"x": 2}, "flag": False}]


def test_json_is_sorted_with_two_space_indent() -> None:
    assert render({"b": 1, "a": [1]}, "json") == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'


def test_jsonc_is_plain_off_a_terminal() -> None:
    assert render({"a": 1}, "jsonc", is_tty=False) == render({"a": 1}, "json")
    assert "\x1b[" in render({"a": 1}, "jsonc", is_tty=True)


def test_tsv_skips_nested_values_and_prints_python_booleans() -> None:
    assert render(TASKS, "tsv") == "True\ta-task\tEnabled\nFalse\tb-task\tDisabled"


def test_generic_table() -> None:
    assert render(TASKS, "table").splitlines() == [
        "Name    Status    Flag",
        "------  --------  -----",
        "a-task  Enabled   True",
        "b-task  Disabled  False",
    ]


def test_query_then_format() -> None:
    assert render(TASKS, "tsv", "[?status=='Enabled'].name") == "a-task"
    assert render(TASKS, "json", "[0].nested.x") == "1"


def test_query_result_none_prints_nothing_but_in_json() -> None:
    assert render(TASKS, "tsv", "[0].missing") == ""
    assert render(TASKS, "json", "[0].missing") == "null"


def test_yaml() -> None:
    assert render({"name": "x", "list": [1]}, "yaml") == "list:\n- 1\nname: x"


@pytest.mark.parametrize(("argv", "output", "query", "rest"), [
    (["task", "list", "-o", "table"], "table", None, ["task", "list"]),
    (["--output=tsv", "task", "show", "--query", "name", "-n", "x"], "tsv", "name", ["task", "show", "-n", "x"]),
    (["task", "create", "--no-push", "-n", "x"], "json", None, ["task", "create", "--no-push", "true", "-n", "x"]),
    (["task", "create", "--no-cache", "False"], "json", None, ["task", "create", "--no-cache", "False"]),
    (["task", "create", "--no-cache"], "json", None, ["task", "create", "--no-cache", "true"]),
])
def test_split_global_args(argv: list[str], output: str, query: str | None, rest: list[str]) -> None:
    found, remaining = split_global_args(argv)
    assert (found.output, found.query, remaining) == (output, query, rest)


def test_only_show_errors_conflicts_with_debug() -> None:
    with pytest.raises(ValidationError, match="can't be used together"):
        split_global_args(["--only-show-errors", "--debug"])


def test_missing_output_value() -> None:
    with pytest.raises(ValidationError, match="expected one argument"):
        split_global_args(["task", "list", "-o"])
