"""Find a Dockerfile's base images: what acr-builder's `scan` records as runtime and buildtime dependencies.

Pure: `scan` takes the Dockerfile's text and never reads files or environment variables.
`instructions.py` reads the text (size limits, dockerfile-parse, words); `dockerargs.py` expands words
with ARGs (`shellvars.py` is the lexer, as BuildKit's). The rules below follow BuildKit where
acr-builder had bugs:

- `FROM [--platform=P] image [AS name]`; `AS` and stage names are case-insensitive.
- `ARG`s before the first FROM (plus the build args for names they declare) expand FROM's image and
  platform (every substitution BuildKit's lexer knows). A build arg wins over the ARG's default; a build
  arg for an undeclared name is not used, as in Docker.
- `--platform` takes what containerd's platforms.Parse takes, a bare architecture too (`amd64` is
  linux/amd64). One that expands to nothing (`$BULIDPLATFORM`, misspelt) is an error, as in BuildKit;
  `--platform=` with nothing after it means no platform.
- BuildKit's automatic platform args (`BUILDPLATFORM`, `TARGETARCH`, ...) are known only at build time:
  a platform that uses one is recorded as None (the build's own platform), and an image that uses one is
  an error unless the build args give it a value.
- `FROM <stage>` inherits that stage's origin image; `scratch` is never a dependency.
- `COPY --from=<image>` and `RUN --mount=...,from=<image>` add buildtime dependencies (platform None).
  A numeric `COPY --from=N` is a stage index. Both are expanded with the stage's ARGs, as buildah does
  (Docker refuses variables in COPY --from); ENV values are not tracked.
- Stages that use each other in a circle are an error, as is a stage the build needs using a stage
  defined after it (BuildKit's two rules).
- `--target` ends the scan at that stage: later stages add nothing.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from acrtask.dependency import DependencyType
from acrtask.dockerargs import BUILDER_ARGS, FROM_HINT
from acrtask.dockerargs import declare as _declare
from acrtask.dockerargs import image as _image
from acrtask.dockerargs import platform as _platform
from acrtask.errors import ValidationError
from acrtask.instructions import Instruction as _Instruction
from acrtask.instructions import dequote as _dequote
from acrtask.instructions import read as _read_instructions
from acrtask.instructions import words as _words
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.shellvars import Scope as _Scope
from acrtask.shellvars import shown

__all__ = ["BaseImage", "DependencyType", "ScanResult", "is_stage_name", "scan"]

SCRATCH = "scratch"

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")  # BuildKit's reValidName, on the lowercased name


def is_stage_name(name: str) -> bool:
    """A valid stage name (`FROM ... AS name`, `--target name`): BuildKit compares them lowercased."""
    return _STAGE_NAME.fullmatch(name.lower()) is not None


@dataclass(frozen=True)
class BaseImage:
    image: ImageRef  # parsed and normalised (docker.io/library/alpine:latest)
    type: DependencyType
    # FROM --platform after expansion, normalised (linux/arm64). None when absent, when it uses a
    # builder-set arg such as $BUILDPLATFORM (known only at build time), and for COPY --from / RUN --mount.
    platform: Platform | None
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
    platform: Platform | None

    @property
    def key(self) -> tuple[str, Platform | None]:
        return str(self.image), self.platform


def _parse_from(instruction: _Instruction, index: int) -> _Stage:
    where = f"FROM on line {instruction.line}"
    words = _words(instruction.value)
    platform: str | None = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        key, eq, value = flag.partition("=")
        if key.lower() != "--platform":
            raise ValidationError(f"{where} has an unknown flag {shown(flag)}; FROM only takes --platform.",
                                  FROM_HINT)
        if not eq:  # Docker's flags need '=': `--platform linux/amd64` is an error there too
            raise ValidationError(f"{where} has '--platform' without '=' and a value.", FROM_HINT)
        platform = value
    if len(words) == 3 and words[1].lower() == "as":
        name = _dequote(words[2]).lower()
        if not is_stage_name(name):
            raise ValidationError(
                f"{where} names its stage {shown(words[2])}, which is not a valid stage name.",
                "Start a stage name with a letter and use only letters, digits, '-', '_' and '.'.")
        return _Stage(index, name, words[0], platform, instruction.line)
    if len(words) == 1:
        return _Stage(index, None, words[0], platform, instruction.line)
    if not words:
        raise ValidationError(f"{where} names no image.", FROM_HINT)
    raise ValidationError(f"{where} must be 'FROM image' or 'FROM image AS name', not "
                          f"{shown('FROM ' + instruction.value)}.", FROM_HINT)


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
# References between stages


@dataclass(frozen=True)
class _Reference:
    """A `COPY --from` or `RUN --mount=...,from=` in a stage: another stage, or an image."""

    where: str  # "COPY --from on line 7"
    stage: int | None  # the stage it names; None for an image
    parse: Callable[[], ImageRef]  # the image, parsed (only called when stage is None)


def _references(stage: _Stage, stages: list[_Stage], stage_names: Mapping[str, int], meta: _Scope,
                build_args: Mapping[str, str], strict: bool) -> list[_Reference]:
    """What `stage`'s COPY --from and RUN --mount from= name, in order, expanded with the stage's ARGs.

    Not `strict` (a stage after the --target one): what cannot be read is left out, as that stage is
    not scanned; its references only serve the check for stages in a circle.
    """
    scope = _Scope(is_global=False)
    found: list[_Reference] = []
    for instruction in stage.body:
        if instruction.name == "ARG":
            try:
                _declare(scope, instruction, build_args, inherited=meta)
            except ValidationError:
                if strict:
                    raise
            continue
        if instruction.name == "COPY":
            raws = [(raw, "COPY --from", True) for raw in _from_flags(instruction.value, "--from")]
        elif instruction.name == "RUN":
            raws = [(raw, "RUN --mount", False) for raw in _mount_froms(instruction.value)]
        else:
            continue
        for raw, what, allow_index in raws:
            where = f"{what} on line {instruction.line}"
            try:
                name, parse = _image(raw, scope, where)
            except ValidationError:
                if strict:
                    raise
                continue
            index = stage_names.get(name.lower())
            if allow_index and name.isascii() and name.isdigit():  # BuildKit: a number is a stage index
                index = int(name) if len(name) < 10 else len(stages)
                if index >= len(stages):
                    if not strict:
                        continue
                    number = index if len(name) < 10 else shown(name)
                    raise ValidationError(
                        f"{where} copies from stage {number}, but the Dockerfile has only {len(stages)} "
                        f"stage{'s' if len(stages) != 1 else ''} (numbered from 0).",
                        "Use the index of an earlier stage, or better, its name (FROM image AS name).")
            if index == stage.index:
                raise ValidationError(f"{where} refers to its own stage.", "Name an earlier stage or an image.")
            if index is not None or name != SCRATCH:
                found.append(_Reference(where, index, parse))
    return found


def _stage_label(stage: _Stage) -> str:
    return f"'{stage.name}'" if stage.name else f"{stage.index} (line {stage.line})"


def _check_stage_order(stages: list[_Stage], references: list[list[_Reference]], bases: Mapping[int, int],
                       last: int) -> None:
    """BuildKit's rules: no circle of stages using each other (in any stage), and a stage the build
    needs may use only stages defined before it."""
    edges = [[ref.stage for ref in refs if ref.stage is not None] for refs in references]
    state = [0] * len(stages)  # 0 new, 1 on the current path, 2 done; iterative: a file may hold 10,000 stages
    for root in range(len(stages)):
        path: list[tuple[int, int]] = [(root, 0)] if state[root] == 0 else []
        while path:
            node, next_edge = path[-1]
            state[node] = 1
            if next_edge == len(edges[node]):
                state[node] = 2
                path.pop()
                continue
            path[-1] = (node, next_edge + 1)
            target = edges[node][next_edge]
            if state[target] == 1:  # back to a stage on the path: a circle
                circle = [n for n, _ in path[[n for n, _ in path].index(target):]] + [target]
                raise ValidationError(
                    f"Stages {' -> '.join(_stage_label(stages[n]) for n in circle)} use each other in a circle "
                    f"(a circular dependency, {_stage_uses(references, circle)}).",
                    "A stage can only use stages defined before it; move what they share into an earlier stage.")
            if state[target] == 0:
                path.append((target, 0))
    needed, todo = {last}, [last]
    while todo:  # the stages the build of the target stage needs
        index = todo.pop()
        for used in [bases.get(index), *edges[index]]:
            if used is not None and used not in needed:
                needed.add(used)
                todo.append(used)
    for index in sorted(needed):
        for ref in references[index]:
            if ref.stage is not None and ref.stage > index:
                later = stages[ref.stage]
                raise ValidationError(
                    f"{ref.where} uses stage {_stage_label(later)}, which is defined later (line {later.line}); "
                    "BuildKit needs a stage defined before the stage that uses it.",
                    f"Move that stage above line {stages[index].line}, or use an earlier stage.")


def _stage_uses(references: list[list[_Reference]], circle: list[int]) -> str:
    """The instructions that close a circle of stages: "COPY --from on line 3, COPY --from on line 7"."""
    return ", ".join(next(ref.where for ref in references[user] if ref.stage == used)
                     for user, used in zip(circle, circle[1:], strict=False))


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
    preamble, stages = _split_stages(_read_instructions(text))
    last = _target_index(stages, target)

    # Global scope: the automatic platform args exist without a declaration; a build arg sets them.
    meta = _Scope(builder=set(BUILDER_ARGS - args.keys()))
    meta.values.update({name: args[name] for name in BUILDER_ARGS & args.keys()})
    for instruction in preamble:
        _declare(meta, instruction, args, inherited=None)

    stage_names = {stage.name: stage.index for stage in stages if stage.name is not None}
    origins: list[_Origin | None] = []  # per stage
    bases: dict[int, int] = {}  # stage index -> the earlier stage its FROM names
    seen: dict[tuple[str, Platform | None], BaseImage] = {}

    def record(origin: _Origin, stage: _Stage) -> None:
        seen.setdefault(origin.key, BaseImage(origin.image, DependencyType.BUILD_TIME, origin.platform,
                                              stage.name))

    references = [_references(stage, stages, stage_names, meta, args, strict=stage.index <= last)
                  for stage in stages]
    for stage in stages[:last + 1]:
        where = f"FROM on line {stage.line}"
        name, parse = _image(stage.image_word, meta, where)
        earlier = stage_names.get(name.lower())
        if earlier is not None and earlier < stage.index:
            bases[stage.index] = earlier
            origins.append(origins[earlier])  # FROM <stage>: its origin; its --platform has no effect
        elif name == SCRATCH:
            origins.append(None)
        else:
            origin = _Origin(parse(), _platform(stage.platform_word, meta, where))
            origins.append(origin)
            record(origin, stage)
        for reference in references[stage.index]:
            if reference.stage is None:
                record(_Origin(reference.parse(), None), stage)
    _check_stage_order(stages, references, bases, last)

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
