"""Reading a Dockerfile's instructions: size limits, `FROM\\` continuations, and linear word splitting."""

from __future__ import annotations

import pytest
from dockerfile_parse.util import WordSplitter
from hypothesis import given
from hypothesis import strategies as st

from acrtask.errors import ValidationError
from acrtask.instructions import MAX_DOCKERFILE_BYTES, MAX_LINE_BYTES, Instruction, check_size, dequote, read, words

# Quotes, escapes and whitespace are what the splitting rules are about; a few letters fill in.
_TRICKY = st.text(st.sampled_from(["a", "b", " ", "\t", "\\", "'", '"', "$", "=", "\n", "é"]), max_size=24)


@given(_TRICKY)
def test_words_split_as_dockerfile_parse_does(value: str) -> None:
    assert words(value) == list(WordSplitter(value).split(dequote=False))


@given(_TRICKY)
def test_dequote_as_dockerfile_parse_does(word: str) -> None:
    assert dequote(word) == WordSplitter(word).dequote()


def test_a_word_as_long_as_a_dockerfile_is_split_and_dequoted() -> None:
    # WordSplitter needs minutes for this (it grows a string one character at a time); the limit allows it.
    word = "x" * (MAX_DOCKERFILE_BYTES - 100)
    assert words(f"--from={word} /a /b") == [f"--from={word}", "/a", "/b"]
    assert dequote(f'"{word}"') == word


@pytest.mark.parametrize(("text", "expected"), [
    ("FROM\\\n  alpine AS a\n", [Instruction("FROM", "alpine AS a", 1)]),
    ("from\\\nalpine\n", [Instruction("FROM", "alpine", 1)]),
    ("FROM\\   \n alpine\n", [Instruction("FROM", "alpine", 1)]),
    ("FROM alpine\nCOPY\\\n --from=busybox /a /b\n",
     [Instruction("FROM", "alpine", 1), Instruction("COPY", "--from=busybox /a /b", 2)]),
    ("FROM alpine\nRUN\\\n --mount=from=busybox,target=/b ls\n",
     [Instruction("FROM", "alpine", 1), Instruction("RUN", "--mount=from=busybox,target=/b ls", 2)]),
    ("# escape=`\nFROM`\n alpine\n", [Instruction("FROM", "alpine", 2)]),
    ("FROM\\\n", [Instruction("FROM", "", 1)]),  # continued into the end of the file: FROM without an image
    ("FROM\\alpine\n", [Instruction("FROM\\ALPINE", "", 1)]),  # not a continuation: an unknown instruction
])
def test_an_instruction_word_followed_by_a_continuation(text: str, expected: list[Instruction]) -> None:
    assert read(text) == expected


def test_limits_allow_a_dockerfile_at_the_limits() -> None:
    line = "#" + "x" * (MAX_LINE_BYTES - 1)
    text = "FROM alpine\n" + "\n".join([line] * (MAX_DOCKERFILE_BYTES // (MAX_LINE_BYTES + 1) - 1)) + "\n"
    assert len(text.encode()) <= MAX_DOCKERFILE_BYTES
    check_size(text)
    assert read(text) == [Instruction("FROM", "alpine", 1)]


@pytest.mark.parametrize(("text", "message"), [
    ("FROM alpine\n" + "# " + "x" * (10 * 1024 * 1024) + "\n",
     "The Dockerfile is 10,485,775 bytes; acrtask reads Dockerfiles of up to 262,144 bytes (256 KiB)."),
    ("FROM alpine\n" + "RUN " + "x" * MAX_LINE_BYTES + "\n",
     "Line 2 of the Dockerfile is 65,539 bytes long; a Dockerfile line can be up to 65,535 bytes, as in BuildKit."),
    ("FROM alpine\n\n\nLABEL a=" + "é" * 40_000 + "\r\n",  # bytes, not characters
     "Line 4 of the Dockerfile is 80,009 bytes long"),
])
def test_limits_refuse_with_the_line(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        read(text)
    assert info.value.message.startswith(message)
    assert info.value.hint and "\n" not in info.value.message + info.value.hint
