"""Find a Dockerfile's base images: what acr-builder's `scan` records as runtime and buildtime dependencies.

Pure: `scan` takes the Dockerfile's text and never reads files or environment variables.
`dockerfile-parse` splits the text into instructions (continuations, comments, the escape directive);
the rules below are ours, following BuildKit where acr-builder had bugs:

- `FROM [--platform=P] image [AS name]`; `AS` and stage names are case-insensitive.
- `ARG`s before the first FROM (plus the build args for names they declare) expand `$V`, `${V}`,
  `${V:-x}`, `${V-x}`, `${V:+x}`, `${V+x}`, `${V:?msg}` in FROM's image and platform. A build arg wins
  over the ARG's default; a build arg for an undeclared name is not used, as in Docker.
- BuildKit's automatic platform args (`BUILDPLATFORM`, `TARGETARCH`, ...) are known only at build time:
  a platform that uses one is recorded as None (the build's own platform), and an image that uses one is
  an error unless the build args give it a value.
- `FROM <stage>` inherits that stage's origin image; `scratch` is never a dependency.
- `COPY --from=<image>` and `RUN --mount=...,from=<image>` add buildtime dependencies (platform None).
  A numeric `COPY --from=N` is a stage index. Both are expanded with the stage's ARGs, as buildah does
  (Docker refuses variables in COPY --from); ENV values are not tracked.
- `--target` ends the scan at that stage: later stages add nothing (a COPY --from naming a later stage
  still counts as a stage, but that stage's base image is not recorded).
- Heredoc bodies (`RUN <<EOF ... EOF`) are skipped, so a `from x import y` line in one is not a FROM.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

from acrtask.errors import ValidationError
from acrtask.model import DependencyType
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.shellvars import Expander as _Expander
from acrtask.shellvars import Expansion as _Expansion
from acrtask.shellvars import ExpansionError as _ExpansionError
from acrtask.shellvars import Scope as _Scope
from acrtask.shellvars import is_name as _is_name

__all__ = ["BaseImage", "DependencyType", "ScanResult", "scan"]

SCRATCH = "scratch"
# Set by BuildKit for every build; their values depend on the machine and the requested platform.
BUILDER_ARGS = frozenset({
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
})

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")  # BuildKit's reValidName, on the lowercased name
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)")  # BuildKit's heredoc word: [fd]<<[-]NAME
_FROM_HINT = "Write it as FROM [--platform=os/arch] image [AS name]."


@dataclass(frozen=True)
class BaseImage:
    image: ImageRef  # parsed and normalised (docker.io/library/alpine:latest)
    type: DependencyType
    # FROM --platform after expansion, normalised (linux/arm64). None when absent, when it uses a
    # builder-set arg such as $BUILDPLATFORM (known only at build time), and for COPY --from / RUN --mount.
    platform: str | None
    stage: str | None  # the (lowercased) name of the stage it first appears in; None if unnamed


@dataclass(frozen=True)
class ScanResult:
    runtime: BaseImage | None  # None only when the final stage is built on scratch
    build_time: tuple[BaseImage, ...]  # distinct, in order of first appearance, without the runtime one
    stages: tuple[str, ...]  # names of the named stages up to the final (or target) stage, lowercased

    @property
    def bases(self) -> tuple[BaseImage, ...]:
        """Every dependency, the runtime one first."""
        return ((self.runtime,) if self.runtime else ()) + self.build_time


# --------------------------------------------------------------------------------------------------
# Instructions


@dataclass(frozen=True)
class _Instruction:
    name: str  # upper-case
    value: str
    line: int  # 1-based


def _instructions(text: str) -> list[_Instruction]:
    """The Dockerfile's instructions in order, without comments and heredoc bodies."""
    # fileobj keeps dockerfile-parse off the disk; env_replace=False keeps it from substituting anything.
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8", "replace")), env_replace=False)
    raw_lines = [line.rstrip("\r") for line in text.split("\n")]  # the parser splits on \n only
    covered: set[int] = set()
    skipped: set[int] = set()  # heredoc bodies, 0-based
    found: list[_Instruction] = []
    for entry in parser.structure:
        start, end = entry["startline"], entry["endline"]
        covered.update(range(start, end + 1))
        if start in skipped or entry["instruction"] == "COMMENT":
            continue
        instruction = _Instruction(entry["instruction"], entry["value"].strip(), start + 1)
        found.append(instruction)
        if "<<" in instruction.value and instruction.name in ("RUN", "COPY", "ADD"):
            skipped.update(_heredoc_lines(instruction.value, raw_lines, end + 1))
    # dockerfile-parse drops a bare word with nothing after it (a last line "FROM"); keep it, empty.
    for index, line in enumerate(raw_lines):
        word = line.strip()
        if word and index not in covered and index not in skipped and not word.startswith("#"):
            found.append(_Instruction(word.upper(), "", index + 1))
    return sorted(found, key=lambda instruction: instruction.line)


def _heredoc_lines(value: str, lines: list[str], first: int) -> range:
    """0-based lines holding the bodies of the heredocs `value` opens; they start at line `first`."""
    index = first
    for word in _words(value):
        match = _HEREDOC.fullmatch(word)
        if not match or not match.group(3):
            continue
        terminator = _dequote(match.group(3))
        strip_tabs = match.group(2) == "-"
        while index < len(lines):
            body = lines[index].lstrip("\t") if strip_tabs else lines[index]
            index += 1
            if body == terminator:
                break
    return range(first, index)


def _words(value: str) -> list[str]:
    """Split at unquoted whitespace, keeping quotes (WordSplitter substitutes nothing without args)."""
    return list(WordSplitter(value).split(dequote=False))


def _dequote(word: str) -> str:
    return WordSplitter(word).dequote()


# --------------------------------------------------------------------------------------------------
# Stages


@dataclass
class _Stage:
    index: int
    name: str | None
    image_word: str  # as written, before expansion
    platform_word: str | None
    line: int
    body: list[_Instruction] = field(default_factory=list)


@dataclass(frozen=True)
class _Origin:
    """An external image with the platform it is pulled for."""

    image: ImageRef
    platform: str | None

    @property
    def key(self) -> tuple[str, str | None]:
        return str(self.image), self.platform


def _parse_from(instruction: _Instruction, index: int) -> _Stage:
    where = f"FROM on line {instruction.line}"
    words = _words(instruction.value)
    platform: str | None = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        key, eq, value = flag.partition("=")
        if key.lower() != "--platform":
            raise ValidationError(f"{where} has an unknown flag '{flag}'; FROM only takes --platform.",
                                  _FROM_HINT)
        if not eq:  # Docker's flags need '=': `--platform linux/amd64` is an error there too
            raise ValidationError(f"{where} has '--platform' without '=' and a value.", _FROM_HINT)
        platform = value
    if len(words) == 3 and words[1].lower() == "as":
        name = _dequote(words[2]).lower()
        if not _STAGE_NAME.fullmatch(name):
            raise ValidationError(
                f"{where} names its stage '{words[2]}', which is not a valid stage name.",
                "Start a stage name with a letter and use only letters, digits, '-', '_' and '.'.")
        return _Stage(index, name, words[0], platform, instruction.line)
    if len(words) == 1:
        return _Stage(index, None, words[0], platform, instruction.line)
    if not words:
        raise ValidationError(f"{where} names no image.", _FROM_HINT)
    raise ValidationError(f"{where} must be 'FROM image' or 'FROM image AS name', not "
                          f"'FROM {instruction.value}'.", _FROM_HINT)


def _split_stages(instructions: list[_Instruction]) -> tuple[list[_Instruction], list[_Stage]]:
    """The ARGs before the first FROM, and the stages."""
    if not any(instruction.name == "FROM" for instruction in instructions):
        raise ValidationError("The Dockerfile has no FROM instruction.",
                              "Start it with FROM and the base image, e.g. FROM alpine:3.19.")
    preamble: list[_Instruction] = []
    stages: list[_Stage] = []
    names: dict[str, int] = {}
    for instruction in instructions:
        if instruction.name == "FROM":
            stage = _parse_from(instruction, len(stages))
            if stage.name is not None:
                if stage.name in names:
                    raise ValidationError(
                        f"FROM on line {stage.line} names its stage '{stage.name}', which line "
                        f"{names[stage.name]} already uses.", "Give each stage a different name.")
                names[stage.name] = stage.line
            stages.append(stage)
        elif stages:
            stages[-1].body.append(instruction)
        elif instruction.name == "ARG":
            preamble.append(instruction)
        else:
            raise ValidationError(
                f"{instruction.name} on line {instruction.line} comes before the first FROM; only ARG can.",
                "Move it below a FROM line.")
    return preamble, stages


def _declare(scope: _Scope, instruction: _Instruction, build_args: Mapping[str, str],
             inherited: _Scope | None) -> None:
    """Apply `ARG a[=x] b[=y]` to `scope`. `inherited` is the global scope, for ARGs inside a stage.

    Global ARGs (inherited is None) are strict: a bad default is an error, as BuildKit reports it.
    """
    where = f"ARG on line {instruction.line}"
    words = _words(instruction.value)
    if not words:
        raise ValidationError(f"{where} declares nothing.", "Write it as ARG NAME or ARG NAME=default.")
    for word in words:
        raw_name, eq, default = word.partition("=")
        name = _dequote(raw_name)
        if not name:
            raise ValidationError(f"{where} has no name before '='.", "Write it as ARG NAME=default.")
        scope.builder.discard(name)
        if name in build_args:  # a build arg always wins over the default
            scope.values[name] = build_args[name]
        elif eq:
            try:
                scope.values[name] = _Expander(scope).expand(default).text
            except _ExpansionError as error:
                if inherited is None:
                    raise ValidationError(f"{where}: {error.message}.", error.hint) from None
                scope.values[name] = None  # a stage ARG only matters to COPY --from; leave it unset
        elif inherited is not None and name in inherited.values:
            scope.values[name] = inherited.values[name]  # `ARG V` in a stage takes the global value
        elif name in BUILDER_ARGS or (inherited is not None and name in inherited.builder):
            scope.values.pop(name, None)
            scope.builder.add(name)
        else:
            scope.values[name] = None


def _cannot_resolve(name: str, scope: _Scope, where: str, what: str) -> ValidationError:
    hint = f"Pass it with --arg {name}=value or give the ARG a default."
    if not _is_name(name):
        hint = "Use an ARG with a name instead, e.g. ARG TAG=3.19 and $TAG."
    elif name not in scope.values and name not in scope.builder:
        # Docker only passes a build arg to a name an ARG declares, so --arg alone would not help.
        place = "before the first FROM" if scope.is_global else "in the stage"
        hint = f"Declare it with ARG {name} {place}, then pass it with --arg {name}=value or give the ARG a default."
    return ValidationError(f"Cannot resolve ${name} in {where}: {scope.describe(name)}, {what}.", hint)


def _expand(word: str, scope: _Scope, where: str) -> _Expansion:
    try:
        return _Expander(scope).expand(word)
    except _ExpansionError as error:
        if error.name is not None:
            raise ValidationError(f"Cannot resolve ${error.name} in {where}: {error.message}.",
                                  error.hint) from None
        raise ValidationError(f"{where}: {error.message}.", error.hint) from None


def _image(word: str, scope: _Scope, where: str) -> tuple[str, Callable[[], ImageRef]]:
    """Expand `word`; return the text and a parser that raises a located error when it is no image."""
    expansion = _expand(word, scope, where)
    text = expansion.text

    def parse() -> ImageRef:
        if expansion.builder:  # an image that depends on the build platform cannot be recorded
            raise _cannot_resolve(expansion.builder[0], scope, where,
                                  "so the image is unknown until the build")
        try:
            return ImageRef.parse(text)
        except ValidationError as error:
            if expansion.missing:
                raise _cannot_resolve(expansion.missing[0], scope, where,
                                      f"so the image '{text}' is not valid") from None
            if not text:
                raise ValidationError(f"{where} names an empty image.", _FROM_HINT) from None
            raise ValidationError(f"{error.message.removesuffix('.')} ({where}).", error.hint) from None

    return text, parse


def _platform(word: str | None, scope: _Scope, where: str) -> str | None:
    if word is None:
        return None
    expansion = _expand(word, scope, where)
    if expansion.builder:
        return None  # e.g. $BUILDPLATFORM: the build decides, so no fixed platform to record
    text = expansion.text.strip()
    if not text:
        return None  # an empty --platform means the default, as in Docker
    try:
        # Normalised as containerd does, so linux/aarch64 and linux/arm64 are one dependency.
        return str(Platform.parse(text, source=f"{where} --platform"))
    except ValidationError:
        if expansion.missing:
            raise _cannot_resolve(expansion.missing[0], scope, where,
                                  f"so the platform '{text}' is not valid") from None
        raise


def _from_flags(value: str, flag: str) -> list[str]:
    """The values of `--flag=...` among the leading flags of an instruction (raw, still quoted)."""
    found = []
    for word in _words(value):
        if not word.startswith("--"):
            break
        key, eq, rest = word.partition("=")
        if eq and key.lower() == flag:
            found.append(rest)
    return found


def _mount_froms(value: str) -> list[str]:
    """The `from=` values of RUN's --mount flags (raw)."""
    found = []
    for spec in _from_flags(value, "--mount"):
        for fields in csv.reader([_dequote(spec)]):
            for item in fields:
                key, eq, rest = item.strip().partition("=")
                if eq and key.strip().lower() == "from":
                    found.append(rest.strip())
    return found


# --------------------------------------------------------------------------------------------------
# Scan


def scan(text: str, build_args: Mapping[str, str] | None = None, target: str | None = None) -> ScanResult:
    """Find the base images of the Dockerfile `text`, built with `build_args` up to stage `target`.

    Raises ValidationError (with the line number) when the Dockerfile cannot be scanned.
    """
    args = dict(build_args or {})
    text = text.removeprefix("\ufeff")  # editors on Windows write a BOM; Docker ignores it
    if not text.strip():
        raise ValidationError("The Dockerfile is empty.",
                              "Start it with FROM and the base image, e.g. FROM alpine:3.19.")
    preamble, stages = _split_stages(_instructions(text))
    last = _target_index(stages, target)

    # Global scope: the automatic platform args exist without a declaration; a build arg sets them.
    meta = _Scope(builder=set(BUILDER_ARGS - args.keys()))
    meta.values.update({name: args[name] for name in BUILDER_ARGS & args.keys()})
    for instruction in preamble:
        _declare(meta, instruction, args, inherited=None)

    stage_names = {stage.name: stage.index for stage in stages if stage.name is not None}
    origins: list[_Origin | None] = []  # per stage
    seen: dict[tuple[str, str | None], BaseImage] = {}

    def record(origin: _Origin, stage: _Stage) -> None:
        seen.setdefault(origin.key, BaseImage(origin.image, DependencyType.BUILD_TIME, origin.platform,
                                              stage.name))

    for stage in stages[:last + 1]:
        where = f"FROM on line {stage.line}"
        name, parse = _image(stage.image_word, meta, where)
        earlier = stage_names.get(name.lower())
        if earlier is not None and earlier < stage.index:
            origins.append(origins[earlier])  # FROM <stage>: its origin; its --platform has no effect
        elif name == SCRATCH:
            origins.append(None)
        else:
            origin = _Origin(parse(), _platform(stage.platform_word, meta, where))
            origins.append(origin)
            record(origin, stage)
        for origin in _stage_images(stage, stages, stage_names, meta, args):
            record(origin, stage)

    runtime_origin = origins[last]
    runtime = None
    if runtime_origin is not None:
        first = seen[runtime_origin.key]
        runtime = BaseImage(first.image, DependencyType.RUNTIME, first.platform, first.stage)
    build_time = tuple(image for key, image in seen.items()
                       if runtime_origin is None or key != runtime_origin.key)
    names = tuple(stage.name for stage in stages[:last + 1] if stage.name is not None)
    return ScanResult(runtime, build_time, names)


def _target_index(stages: list[_Stage], target: str | None) -> int:
    if target is None or not target.strip():
        return len(stages) - 1
    wanted = target.strip().lower()
    for stage in stages:
        if stage.name == wanted:
            return stage.index
    names = [stage.name for stage in stages if stage.name is not None]
    hint = (f"Use one of: {', '.join(names)}." if names
            else "Name a stage with FROM image AS name, or leave out --target.")
    raise ValidationError(f"Target stage '{target}' is not in the Dockerfile.", hint)


def _stage_images(stage: _Stage, stages: list[_Stage], stage_names: Mapping[str, int], meta: _Scope,
                  build_args: Mapping[str, str]) -> list[_Origin]:
    """External images that `COPY --from` and `RUN --mount=...,from=` pull in `stage`."""
    scope = _Scope(is_global=False)
    found: list[_Origin] = []
    for instruction in stage.body:
        if instruction.name == "ARG":
            _declare(scope, instruction, build_args, inherited=meta)
            continue
        if instruction.name == "COPY":
            references = [(raw, "COPY --from", True) for raw in _from_flags(instruction.value, "--from")]
        elif instruction.name == "RUN":
            references = [(raw, "RUN --mount", False) for raw in _mount_froms(instruction.value)]
        else:
            continue
        for raw, what, allow_index in references:
            where = f"{what} on line {instruction.line}"
            name, parse = _image(raw, scope, where)
            index = stage_names.get(name.lower())
            if allow_index and name.isdigit():  # BuildKit: a number is a stage index (COPY only)
                index = int(name)
                if index >= len(stages):
                    raise ValidationError(
                        f"{where} copies from stage {index}, but the Dockerfile has only {len(stages)} "
                        f"stage{'s' if len(stages) != 1 else ''} (numbered from 0).",
                        "Use the index of an earlier stage, or better, its name (FROM image AS name).")
            if index == stage.index:
                raise ValidationError(f"{where} refers to its own stage.",
                                      "Name an earlier stage or an image.")
            if index is None and name != SCRATCH:
                found.append(_Origin(parse(), None))
    return found
