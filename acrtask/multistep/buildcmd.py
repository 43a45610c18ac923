"""A build step's `docker build` arguments, parsed. Pure.

The options acrtask can hand to its builder are taken (`-t/--tag/--image`, `-f/--file`, `--build-arg`,
`--target`, `--platform`, `--label`, `--no-cache`, `--pull`); any other docker build option is refused by
name, so a build never silently differs from what the file asks. The context is a folder relative to
the step's working directory; git and tarball URLs are refused (clone in an earlier cmd step instead).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from acrtask.multistep.errors import TaskFileError
from acrtask.shellvars import is_portable_name

_VALUED = {"-t": "tags", "--tag": "tags", "--image": "tags", "-f": "file", "--file": "file",
           "--build-arg": "build_args", "--target": "target", "--platform": "platform", "--label": "labels"}
_FLAGS = {"--no-cache": "no_cache", "--pull": "pull"}
_REMOTE = re.compile(r"^(https?://|git@|git://|ssh://)|\.git(#|$)")


@dataclass(frozen=True)
class BuildCommand:
    context: str
    tags: tuple[str, ...] = ()
    file: str | None = None
    build_args: tuple[tuple[str, str | None], ...] = ()  # value None: from the step's env, as docker does
    target: str | None = None
    platform: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    no_cache: bool = False
    pull: bool = False


def _error(message: str, hint: str | None, line: int | None) -> TaskFileError:
    return TaskFileError(message, hint, line)


def parse_build(text: str, what: str = "Build step", line: int | None = None) -> BuildCommand:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise _error(f"{what}: the build arguments cannot be split into words: {exc}.", "Balance the quotes.",
                     line) from None
    values: dict[str, list[str]] = {"tags": [], "file": [], "build_args": [], "target": [], "platform": [],
                                    "labels": []}
    flags = {"no_cache": False, "pull": False}
    positional: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--" or not word.startswith("-") or word == "-":
            positional.extend(words[index - 1:] if word != "--" else words[index:])
            break
        name, eq, inline = word.partition("=")
        if name.startswith("-t") and name != "-t" and not name.startswith("--"):
            name, eq, inline = "-t", "=", name[2:]  # -tapp:1
        if name in _FLAGS:
            if eq and inline.lower() not in ("true", "false"):
                raise _error(f"{what}: {name}={inline} must be true or false.", None, line)
            flags[_FLAGS[name]] = not eq or inline.lower() == "true"
            continue
        if name not in _VALUED:
            raise _error(f"{what}: the docker build option {name} is not supported here.",
                         "Supported: -t/--image, -f/--file, --build-arg, --target, --platform, --label, --no-cache, "
                         "--pull.", line)
        if eq:
            value = inline
        elif index < len(words):
            value, index = words[index], index + 1
        else:
            raise _error(f"{what}: {name} needs a value.", None, line)
        values[_VALUED[name]].append(value)
    for key in ("file", "target", "platform"):
        if len(values[key]) > 1:
            raise _error(f"{what}: --{key} is given {len(values[key])} times.", "Give it once.", line)
    if len(positional) != 1:
        found = "no build context" if not positional else f"{len(positional)} build contexts ({' '.join(positional)})"
        raise _error(f"{what}: there is {found}; docker build takes exactly one.",
                     "End the build line with the context folder, e.g. '.'.", line)
    context = positional[0]
    if _REMOTE.search(context):
        raise _error(f"{what}: the build context {context} is a URL; acrtask builds from folders of the run's "
                     "working directory.", "Clone it in an earlier cmd step, or make it the task's -c context.", line)
    return BuildCommand(
        context=context, tags=tuple(values["tags"]), file=_last(values["file"]),
        build_args=tuple(_build_arg(a, what, line) for a in values["build_args"]),
        target=_last(values["target"]), platform=_last(values["platform"]),
        labels=tuple(_label(label, what, line) for label in values["labels"]), **flags,
    )


def _last(given: list[str]) -> str | None:
    return given[-1] if given else None


def _build_arg(text: str, what: str, line: int | None) -> tuple[str, str | None]:
    name, eq, value = text.partition("=")
    if not is_portable_name(name):
        raise _error(f"{what}: --build-arg {text!r} does not start with a valid name.", "Write --build-arg NAME=VALUE.",
                     line)
    return name, value if eq else None


def _label(text: str, what: str, line: int | None) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not key or not eq:
        raise _error(f"{what}: --label {text!r} is not KEY=VALUE.", None, line)
    return key, value
