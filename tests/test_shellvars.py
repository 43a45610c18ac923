"""Shell-style expansion of Dockerfile words, against BuildKit's own lexer tables."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from acrtask.shellvars import MAX_NESTING, Expander, ExpansionError, Scope, is_name, is_portable_name

TABLE = Path(__file__).parent / "data" / "buildkit_envVarTest"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}  # lex_test.go's environment


def rows() -> list[tuple[int, str, str, str]]:
    """(line number, platform, source, expected) for each row, read as TestShellParser4EnvVars reads them."""
    found = []
    for number, line in enumerate(TABLE.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("#") or not line.strip():
            continue
        words = line.strip().split("|")
        assert len(words) == 3, f"line {number} of {TABLE.name} is not PLATFORM|SOURCE|EXPECTED"
        found.append((number, words[0].strip(), words[1].strip(), words[2].strip()))
    return found


def expand(word: str, env: dict[str, str] | None = None) -> str:
    return Expander(Scope(values=dict(ENV if env is None else env))).expand(word).text


def test_the_table_is_all_there() -> None:
    table = rows()
    assert len(table) == 224
    assert {platform for _, platform, _, _ in table} == {"A", "U", "W"}


UNIX_ROWS = [row for row in rows() if row[1] in ("A", "U")]


@pytest.mark.parametrize(("number", "platform", "source", "expected"), UNIX_ROWS,
                         ids=[f"line{row[0]}" for row in UNIX_ROWS])
def test_buildkit_env_var_table(number: int, platform: str, source: str, expected: str) -> None:
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand(source)
    else:
        assert expand(source) == expected, f"line {number}: {source!r}"


def test_windows_rows_have_unix_counterparts() -> None:
    """W rows are BuildKit on Windows (case-insensitive names). acrtask's builds are Linux builds, so each
    W row must have a U row for the same source, which the table test runs."""
    table = rows()
    unix = {source: expected for _, platform, source, expected in table if platform == "U"}
    windows = [(source, expected) for _, platform, source, expected in table if platform == "W"]
    assert windows
    for source, expected in windows:
        assert source in unix and unix[source] != expected
        assert expand(source) == unix[source]


# BuildKit's lex_test.go, TestProcessWithMatches and TestShellParserMandatoryEnvVars (the substitutions the
# envVarTest table has no rows for): (word, environment, expected text, or None for an error).
MATCHES = [
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x "),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO:-}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${FOO:-}", {}, ""),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, ""),
    ("${BAZ?ccc}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${BAR:?bbb}", {"FOO": "xxx", "BAR": ""}, None),
    ("${BAZ:?ccc}", {"FOO": "xxx", "BAR": ""}, None),
    ("${BAZ:?}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO=aaa}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO=:aaa}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO=}", {}, None),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
     "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"}, "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
     {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"}, "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT}", {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
     "https://google.de"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO//ww}", {"FOO": "xxyy"}, None),
    ("${FOO//}", {"FOO": "xxyy"}, None),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    # TestProcessWithMatchesPlatform: the release-file naming BuildKit's own Dockerfiles use.
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
     "something-v1.2.3.linux-arm-v7.tar.gz"),
    # TestShellParserMandatoryEnvVars
    ("${VAR:?message here$ARG}", {"VAR": "plain", "ARG": "x"}, "plain"),
    ("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"}, None),
    ("${VAR:?message here$ARG}", {"ARG": "x"}, None),
    ("${VAR?message here$ARG}", {"VAR": "plain", "ARG": "x"}, "plain"),
    ("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}, ""),
    ("${VAR?message here$ARG}", {"ARG": "x"}, None),
    # The pattern escapes BuildKit refuses (TestConvertShellPatternToRegex's invalid list).
    ("${FOO#\\x}", {"FOO": "x"}, None),
    ("${FOO%a\\}", {"FOO": "xa"}, None),
]


@pytest.mark.parametrize(("word", "env", "expected"), MATCHES, ids=[f"{i}:{m[0]}" for i, m in enumerate(MATCHES)])
def test_buildkit_process_with_matches(word: str, env: dict[str, str], expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ExpansionError):
            expand(word, env)
    else:
        assert expand(word, env) == expected


def test_names_are_letters_digits_and_underscores_as_in_go() -> None:
    assert expand("$안녕_1x½", {"안녕_1x": "ok"}) == "ok½"  # ½ is numeric but not a digit: it ends the name


def test_mandatory_message_is_the_error() -> None:
    with pytest.raises(ExpansionError) as info:
        expand("${VAR:?message here$ARG}", {"ARG": "x"})
    assert info.value.message == "message herex" and info.value.name == "VAR"


@pytest.mark.parametrize("word", ["he'llo", '"hello', "'hello", '"hello\\"'])
def test_an_unterminated_quote_is_an_error_that_says_so(word: str) -> None:
    with pytest.raises(ExpansionError) as info:
        expand(word)
    assert "without its closing" in info.value.message and "quote" in info.value.message
    assert info.value.hint


@pytest.mark.parametrize("op", [":-", "-", ":+", "+", "#", "%", "/x/"])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(op: str) -> None:
    deep = "".join(f"${{V{i}{op}" for i in range(5000)) + "x" + "}" * 5000
    with pytest.raises(ExpansionError) as info:
        expand(deep)
    assert f"more than {MAX_NESTING} levels deep" in info.value.message
    assert len(info.value.message) < 300  # the word itself is shortened, not pasted whole


def test_nesting_up_to_the_limit_works() -> None:
    word = "${A:-" * MAX_NESTING + "ok" + "}" * MAX_NESTING
    assert expand(word) == "ok"


def test_errors_show_a_long_word_shortened() -> None:
    with pytest.raises(ExpansionError) as info:
        expand("a" * 100_000 + "${")
    assert len(info.value.message) < 300


@pytest.mark.parametrize(("word", "text", "builder"), [
    ("${TARGETPLATFORM#linux/}", "", ["TARGETPLATFORM"]),
    ("x${TARGETARCH%64}", "x", ["TARGETARCH"]),
    ("${TARGETARCH/amd/x86-}", "", ["TARGETARCH"]),
    ("${TARGETARCH:+-$TARGETARCH}", "-", ["TARGETARCH"]),
    ("${TARGETVARIANT:-v7}", "", ["TARGETVARIANT"]),
])
def test_builder_args_are_unknown_through_every_substitution(word: str, text: str, builder: list[str]) -> None:
    expansion = Expander(Scope(builder={"TARGETPLATFORM", "TARGETARCH", "TARGETVARIANT"})).expand(word)
    assert (expansion.text, expansion.builder) == (text, builder)


NAMES = [  # (name, a portable name: what --arg, --build-arg, --set and env take, an ARG name)
    ("A", True, True),
    ("_", True, True),
    ("build_ARG_2", True, True),
    ("_1", True, True),
    ("1X", False, False),
    ("A-B", False, False),
    ("A.B", False, False),
    ("A B", False, False),
    ("", False, False),
    ("A\n", False, False),  # `re.match("^...$")` once let a trailing newline through --arg
    ("안녕", False, True),  # BuildKit declares it, but no builder's environment or Go template reads it alike
    ("É", False, True),
    ("x²", False, False),
]


@pytest.mark.parametrize(("name", "portable", "arg"), NAMES)
def test_portable_names_are_narrower_than_arg_names(name: str, portable: bool, arg: bool) -> None:
    assert is_portable_name(name) is portable
    assert is_name(name) is arg


@pytest.mark.parametrize(("name", "portable", "arg"), NAMES)
def test_every_place_that_takes_a_name_takes_the_same_ones(name: str, portable: bool, arg: bool) -> None:
    from acrtask.errors import ValidationError
    from acrtask.multistep.buildcmd import parse_build
    from acrtask.multistep.spec import parse
    from acrtask.multistep.tasks import value
    from acrtask.validate import argument
    from tests.support.builds import build_spec

    def taken(check: Callable[[], object]) -> bool:
        try:
            check()
        except ValidationError:
            return False
        return True

    places = {
        "--arg": lambda: argument(f"{name}=1", is_secret=False),
        "BuildSpec": lambda: build_spec(build_args={name: "1"}),
        "--build-arg": lambda: parse_build(shlex.join(["--build-arg", f"{name}=1", "."])),
        "--set": lambda: value(f"{name}=1", "--set", is_secret=False),
        "env": lambda: parse(f"steps:\n  - cmd: bash\n    env: [{json.dumps(name + '=1')}]\n"),
    }
    assert {where: taken(check) for where, check in places.items()} == dict.fromkeys(places, portable)
