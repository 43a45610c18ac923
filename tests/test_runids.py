"""runids.py: the one place run ids and the process tags that carry them are made and read."""

from __future__ import annotations

import pytest

from acrtask.runids import process_tag, run_id, run_id_of_tag, run_number


@pytest.mark.parametrize(("text", "number"), [
    ("ca1", 1),
    ("ca42", 42),
    ("ca0", 0),
    ("ca007", 7),
    ("ca123456789", 123456789),
    ("ca", None),  # no number
    ("1", None),  # no prefix
    ("CA1", None),  # ids are lower case, as az's are
    ("cb1", None),
    ("ca-1", None),
    ("ca+1", None),
    ("ca1.0", None),
    ("ca 1", None),
    ("ca1 ", None),
    ("ca1x", None),
    ("xca1", None),
    ("ca²", None),  # a digit to str.isdigit, not to int(): once a crash of `task show-run --run-id ca²`
    ("ca٣", None),  # Arabic-Indic three: int() reads it, but it is not how an id is written
    ("", None),
])
def test_run_number(text: str, number: int | None) -> None:
    assert run_number(text) == number


@pytest.mark.parametrize("number", [0, 1, 9, 10, 1000, 2**40])
def test_run_id_and_run_number_round_trip(number: int) -> None:
    assert run_number(run_id(number)) == number


@pytest.mark.parametrize(("tag", "found"), [
    ("/home/me/.acrtask/runs:ca7", "ca7"),
    (process_tag("/home/me/.acrtask/runs", "ca12"), "ca12"),
    ("/odd:folder/runs:ca3", "ca3"),  # a colon in the folder: the id is after the last one
    ("runs:ca1", "ca1"),
    ("-", None),  # the wrapper's placeholder when the variable is unset
    ("", None),
    ("ca7", None),  # an id alone is no tag: ids repeat across homes
    (":ca7", None),
    ("/home/runs:", None),
    ("/home/runs:build", None),
])
def test_run_id_of_tag(tag: str, found: str | None) -> None:
    assert run_id_of_tag(tag) == found
