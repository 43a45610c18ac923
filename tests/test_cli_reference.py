"""The docs tell the truth about the command line.

1. docs/cli.md is what scripts/gen_cli_reference.py makes from the command tree right now.
2. Every `acrtask ...` command line in a code block of README.md or docs/*.md names a real, visible
   command and only options that command accepts, with values its parser takes. Lines are split
   with shlex, as a shell would; global arguments are taken out the way `acrtask.cli.app.main` does.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Code blocks in these languages hold data or program output, not shell command lines.
NOT_SHELL = frozenset({"json", "jsonc", "yaml", "yml", "toml", "text", "mermaid", "dot", "diff", "python",
                       "py", "nginx", "caddyfile", "dockerfile", "sql"})
# Words that run the command after them: `sudo -u acrtask acrtask task list`, `env X=1 acrtask ...`.
WRAPPERS = frozenset({"sudo", "env", "exec", "time", "nohup", "command", "runuser"})
WRAPPER_OPTIONS_WITH_VALUE = frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-l"})
SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "(", ")", "|&", ";;"})
REDIRECTS = frozenset({">", ">>", "<", "<<", "<<<", ">&", "<&", "&>", "&>>", ">|"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_cli_reference.py"
    spec = importlib.util.spec_from_file_location("gen_cli_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_reference", module)
    spec.loader.exec_module(module)
    return module


gen = _generator()


# -- 1. the generated reference -----------------------------------------------------------------------------


def test_cli_reference_is_current() -> None:
    expected = gen.render()
    current = gen.OUTPUT.read_text(encoding="utf-8") if gen.OUTPUT.exists() else ""
    assert current == expected, "docs/cli.md is stale: run `python scripts/gen_cli_reference.py` and commit it"


def test_cli_reference_is_deterministic_and_skips_hidden_commands() -> None:
    text = gen.render()
    assert text == gen.render()
    assert "execute-run" not in text  # hidden: what `task run --no-wait` starts, not for people
    for node in gen.walk():
        assert f"## {node.name}\n" in text or node.path == (gen.PROG,)


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert gen.main(["--check", "--output", str(stale)]) == 1
    assert gen.main(["--output", str(stale)]) == 0
    assert gen.main(["--check", "--output", str(stale)]) == 0


# -- 2. command lines quoted in the docs --------------------------------------------------------------------


@dataclass(frozen=True)
class Quoted:
    file: str
    line: int
    argv: tuple[str, ...]  # the words after `acrtask`

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: acrtask {shlex.join(self.argv)}"


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) of every shell code block; continuations joined, heredoc bodies skipped."""
    found: list[tuple[int, str]] = []
    fence: str | None = None
    shell = False
    pending = ""
    start = 0
    heredoc_end: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        match = FENCE.match(raw)
        if fence is None:
            if match:
                fence, shell = match.group(2)[0] * 3, match.group(3).lower() not in NOT_SHELL
            continue
        if match and raw.strip().startswith(fence) and not match.group(3):
            fence, pending, heredoc_end = None, "", None
            continue
        if not shell:
            continue
        if heredoc_end is not None:
            if raw.strip() == heredoc_end:
                heredoc_end = None
            continue
        line = raw.strip()
        if not pending:
            start = number
            line = line.removeprefix("$ ")
            line = re.sub(r"^ExecStart=[-@+!:]*", "", line)  # a systemd unit's command line
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = pending + line
        pending = ""
        doc = HEREDOC.search(logical)
        if doc:
            heredoc_end = doc.group(1)
        if logical:
            found.append((start, logical))
    return found


def words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    out = []
    for word in lexer:
        if word.startswith("#"):
            break  # a comment: the rest of the line
        out.append(word)
    return out


def simple_commands(tokens: list[str]) -> list[list[str]]:
    """Split at |, &&, ;, ( and ) and drop redirections with their targets."""
    commands: list[list[str]] = [[]]
    skip = False
    for token in tokens:
        if skip:
            skip = False
            continue
        if token in SEPARATORS:
            commands.append([])
        elif token in REDIRECTS or re.fullmatch(r"\d*[<>]+&?", token):
            skip = True
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def acrtask_argv(command: list[str]) -> list[str] | None:
    """The arguments after `acrtask` when this simple command runs acrtask, else None."""
    i = 0
    while i < len(command):
        word = command[i]
        if ASSIGNMENT.match(word):
            i += 1
        elif word in WRAPPERS:
            i += 1
            while i < len(command) and command[i].startswith("-"):
                i += 2 if command[i] in WRAPPER_OPTIONS_WITH_VALUE else 1
        else:
            break
    if i >= len(command):
        return None
    word = command[i]
    if Path(word).name == "acrtask":
        return command[i + 1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", Path(word).name) and command[i + 1:i + 3] == ["-m", "acrtask"]:
        return command[i + 3:]
    return None


def quoted_commands(path: Path) -> list[Quoted]:
    found = []
    for number, line in code_lines(path.read_text(encoding="utf-8")):
        for command in simple_commands(words(line)):
            argv = acrtask_argv(command)
            if argv is not None:
                found.append(Quoted(str(path.relative_to(ROOT)), number, tuple(argv)))
    return found


def check(argv: list[str]) -> str | None:
    """Why `acrtask argv` would not parse, or None when it names a real command with accepted options."""
    from typer import _click as click

    from acrtask.cli import output
    from acrtask.cli.options import split_global_args
    from acrtask.errors import ValidationError

    try:
        args, rest = split_global_args(list(argv))  # exactly what main() does first
        output.check_format(args.output, output.FORMATS + tuple(getattr(output, "GRAPH_FORMATS", ())))
    except ValidationError as exc:
        return str(exc)
    node = gen.root_node()
    while node.is_group:
        if not rest:
            return f"'{node.name}' is a group: name one of its commands"
        word = rest[0]
        if word in node.context.help_option_names:
            return None
        if word.startswith("-"):
            return f"'{node.name}' takes no option {word}; name a command first"
        if "$" in word:
            return f"'{word}' is a shell variable where a command name belongs"
        sub = gen.child(node, word)
        if sub is None:
            return f"'{node.name}' has no command '{word}'"
        if getattr(sub.command, "hidden", False):
            return f"'{sub.name}' is hidden and should not be quoted in the docs"
        node, rest = sub, rest[1:]
    accepted = {flag for param in node.command.get_params(node.context) for flag in gen.flags(param)}
    for word in rest:
        name = word.split("=", 1)[0]
        if name.startswith("--") and name not in accepted:
            return f"'{node.name}' has no option {name}"
        if re.fullmatch(r"-[A-Za-z]", name) and name not in accepted:
            return f"'{node.name}' has no option {name}"
    if any(word in node.context.help_option_names for word in rest):
        return None
    if any("$" in word for word in rest):
        return None  # a value the shell fills in: its flags were checked above, its value cannot be
    try:
        node.command.make_context(node.path[-1], list(rest), parent=node.context.parent)
    except click.exceptions.ClickException as exc:
        return f"'{node.name}': {exc.format_message()}"
    return None


ALL_QUOTED = [q for path in DOCS for q in quoted_commands(path)]


def test_the_docs_quote_commands() -> None:
    # Not vacuous: README.md and every doc that talks about commands quote some.
    files = {q.file for q in ALL_QUOTED}
    assert "README.md" in files
    assert "docs/cli.md" in files
    assert len(ALL_QUOTED) >= 20


@pytest.mark.parametrize("quoted", ALL_QUOTED, ids=str)
def test_a_quoted_command_line_is_real(quoted: Quoted) -> None:
    problem = check(list(quoted.argv))
    assert problem is None, f"{quoted}: {problem}"


# -- the checker itself, by tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "argv"), [
    ("acrtask task list -o table", ["task", "list", "-o", "table"]),
    ("ACRTASK_WEBHOOK_TOKEN=x acrtask task watch --once", ["task", "watch", "--once"]),
    ("sudo -u acrtask env ACRTASK_HOME=/var/lib/acrtask acrtask task list-runs",
     ["task", "list-runs"]),
    ("acrtask task graph -o dot | dot -Tsvg > tasks.svg", ["task", "graph", "-o", "dot"]),
    ("/opt/acrtask/bin/acrtask task watch --listen 127.0.0.1:8080", ["task", "watch", "--listen", "127.0.0.1:8080"]),
    ("python -m acrtask task show -n app-task", ["task", "show", "-n", "app-task"]),
    ("acrtask task watch --once   # check and exit", ["task", "watch", "--once"]),
    ("useradd --system --home-dir /var/lib/acrtask acrtask", None),
    ("pip install acrtask", None),
])
def test_finding_acrtask_in_a_line(line: str, argv: list[str] | None) -> None:
    found = [acrtask_argv(c) for c in simple_commands(words(line))]
    found = [f for f in found if f is not None]
    assert found == ([argv] if argv is not None else [])


def test_code_lines_join_continuations_and_skip_data_and_heredocs() -> None:
    text = ("```sh\nacrtask task create -n app-task \\\n  -c . -t localhost:5000/app:1\n```\n"
            "```json\n{\"acrtask\": 1}\n```\n"
            "```sh\ncat > x <<'EOF'\nacrtask not a command\nEOF\nacrtask task list\n```\n")
    assert code_lines(text) == [(2, "acrtask task create -n app-task  -c . -t localhost:5000/app:1"),
                                (9, "cat > x <<'EOF'"), (12, "acrtask task list")]


@pytest.mark.parametrize(("argv", "problem"), [
    (["task", "list", "-o", "table"], None),
    (["task", "watch", "--listen", "$PORT"], None),
    (["task", "create", "-n", "app-task", "-c", ".", "--no-push"], None),
    (["task", "timer", "add", "-n", "app-task", "--timer-name", "t", "--schedule", "0 3 * * *"], None),
    (["image", "digest", "alpine:3.20", "--platform", "linux/arm64"], None),
    (["task", "create", "-h"], None),
    (["task", "nosuch"], "has no command 'nosuch'"),
    (["task"], "is a group"),
    (["task", "run", "-n", "app-task", "--no-such-flag"], "has no option --no-such-flag"),
    (["task", "watch", "--schedule", "x"], "has no option --schedule"),
    (["task", "update", "-n", "app-task", "--schedule", "0 3 * * *"], "has no option --schedule"),
    (["task", "show"], "Missing option"),
    (["task", "watch", "--max-concurrent-runs", "many"], "--max-concurrent-runs"),
    (["task", "list", "-o", "html"], "invalid choice"),
    (["task", "execute-run", "--run-id", "ca1"], "hidden"),
])
def test_check(argv: list[str], problem: str | None) -> None:
    found = check(argv)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


# -- the systemd example --------------------------------------------------------------------------------------

UNIT = ROOT / "examples" / "systemd" / "acrtask-watch.service"


def _unit_settings() -> dict[str, str]:
    settings = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_the_systemd_unit_runs_a_real_command_and_outlasts_the_grace_period() -> None:
    from acrtask.cli.watch import parse_duration

    settings = _unit_settings()
    command = simple_commands(words(settings["ExecStart"]))[0]
    argv = acrtask_argv(command)
    assert argv is not None and argv[:2] == ["task", "watch"]
    assert check(argv) is None
    grace = parse_duration(argv[argv.index("--grace-period") + 1], "--grace-period") \
        if "--grace-period" in argv else 30.0
    assert float(settings["TimeoutStopSec"]) >= grace + 10, "TimeoutStopSec must outlast --grace-period"
    assert settings["KillSignal"] == "SIGTERM" and settings["KillMode"] == "mixed"
    assert settings["Restart"] == "on-failure"


def test_the_unit_quoted_in_service_md_matches_the_example_file() -> None:
    text = (ROOT / "docs" / "service.md").read_text(encoding="utf-8")
    block = re.search(r"```ini\n(.*?)```", text, re.S)
    assert block is not None
    unit_lines = {line.strip() for line in UNIT.read_text(encoding="utf-8").splitlines()}
    for line in block.group(1).splitlines():
        assert line.strip() in unit_lines, f"docs/service.md quotes a line the unit does not have: {line}"
