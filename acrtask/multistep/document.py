"""From a task file's text to a checked task file: aliases, templates, YAML, steps, order. Pure.

The order is ACR's: the `alias` section is taken out of the text, `$aliases` are expanded
(`version: v1.1.0`), then `{{...}}` templates are filled in with the run's variables and values, and
only then is the text read as YAML. Every error names the file and the line it is on.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml

from acrtask.errors import ValidationError
from acrtask.multistep import graph, spec, templates
from acrtask.multistep.errors import TaskFileError
from acrtask.reference import ImageRef, names_registry

VERSIONS = ("v1.0.0", "v1.1.0")
ALIAS_VERSION = "v1.1.0"
_TOP_KEY = re.compile(r"^[^\s:#-][^:]*:")
_ALIAS_KEY = re.compile(r"^alias\s*:")
_VERSION = re.compile(r"^version\s*:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


@dataclass(frozen=True)
class Inputs:
    """What fills `{{.Values.x}}` and `{{.Secrets.x}}`: the values file, then --set and --set-secret."""

    values: Mapping[str, Any]
    secrets: Mapping[str, str]


@dataclass(frozen=True)
class Loaded:
    file: spec.TaskFile
    needs: Mapping[str, tuple[str, ...]]  # step id -> the steps it waits for
    sequential: bool  # no two steps can ever run at once

    def step(self, step_id: str) -> spec.StepSpec:
        return next(s for s in self.file.steps if s.id == step_id)


def decode(content: str, what: str) -> str:
    """A task or values file stored base64-encoded in the task (EncodedTask)."""
    try:
        return base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ValidationError(f"{what} is not base64-encoded UTF-8 text.", "Recreate the task.") from None


def encode(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def inputs(values_text: str | None, values_name: str, given: Sequence[tuple[str, str, bool]]) -> Inputs:
    """The values file (YAML mapping) overridden by `given` (name, value, is_secret) in order."""
    values: dict[str, Any] = {}
    if values_text is not None and values_text.strip():
        try:
            loaded = yaml.safe_load(values_text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark else ""
            raise ValidationError(f"The values file {values_name}{where} is not valid YAML: "
                                  f"{getattr(exc, 'problem', None) or exc}.", "Fix its syntax.") from None
        if not isinstance(loaded, dict):
            raise ValidationError(f"The values file {values_name} must be a mapping of names to values.",
                                  "Write it as lines of name: value.")
        values.update(loaded)
    secrets: dict[str, str] = {}
    for name, value, is_secret in given:
        values[name] = value
        if is_secret:
            secrets[name] = value
    return Inputs(values, secrets)


def load(text: str, name: str, run: templates.RunValues, given: Inputs, registry: str | None,
         read_alias_file: Callable[[str], str] | None = None) -> Loaded:
    """Check and read a task file for one run; ValidationError "NAME, line N: ..." on any fault."""
    try:
        return _load(text, run, given, registry, read_alias_file)
    except TaskFileError as exc:
        where = f"{name}, line {exc.line}" if exc.line else name
        raise ValidationError(f"{where}: {exc.message}", exc.hint) from None
    except templates.TemplateError as exc:
        where = f"{name}, line {text.count(chr(10), 0, exc.offset) + 1}" if exc.offset is not None else name
        raise ValidationError(f"{where}: {exc.message}", exc.hint) from None
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.message}", exc.hint) from None


def _load(text: str, run: templates.RunValues, given: Inputs, registry: str | None,
          read_alias_file: Callable[[str], str] | None) -> Loaded:
    version_match = _VERSION.search(text)
    version = version_match.group(1).lower() if version_match else VERSIONS[0]
    if version not in VERSIONS:
        line = text.count("\n", 0, version_match.start()) + 1 if version_match else None
        raise TaskFileError(f"Version {version!r} is not supported.", f"Use one of: {', '.join(VERSIONS)}.", line)
    body, alias_text, alias_line = _split_alias(text)
    aliases: dict[str, str] = {}
    if alias_text is not None:
        if version != ALIAS_VERSION:
            raise TaskFileError(f"'alias' needs version: {ALIAS_VERSION}.", f"Add version: {ALIAS_VERSION} at the top.",
                                alias_line)
        aliases, directive = _aliases(alias_text, alias_line, read_alias_file)
    else:
        directive = "$"
    resolve_image = {**templates.IMAGE_ALIASES, **aliases}
    if version == ALIAS_VERSION:
        body = templates.expand_aliases(body, {**templates.DEFAULT_ALIASES, **aliases}, directive)
    fields: dict[str, str | None] = dict(run.fields())
    rendered = templates.render(body, fields, given.values, given.secrets)
    task_file = spec.parse(rendered, lambda word: resolve_image.get(word, word))
    needs = graph.prerequisites([graph.Node(s.id, s.when, s.line) for s in task_file.steps])
    for secret in task_file.secrets:
        if secret not in given.secrets:
            raise TaskFileError(f"The secret '{secret}' has no value.", f"Give it with --set-secret {secret}=VALUE.")
    task_file = replace(task_file, steps=_qualified(task_file.steps, registry))
    order = [s.id for s in task_file.steps]
    return Loaded(task_file, needs, graph.is_sequential(order, needs))


def _split_alias(text: str) -> tuple[str, str | None, int | None]:
    """The text with its top-level `alias:` section blanked (lines kept, so line numbers hold), and the section."""
    lines = text.split("\n")
    section: list[str] = []
    start: int | None = None
    inside = False
    for index, line in enumerate(lines):
        if not inside and _ALIAS_KEY.match(line) and start is None:
            inside, start = True, index
        elif inside and _TOP_KEY.match(line):
            inside = False
        if inside:
            section.append(line)
            lines[index] = ""
    if start is None:
        return text, None, None
    return "\n".join(lines), "\n".join(section), start + 1


def _aliases(alias_text: str, line: int | None,
             read_alias_file: Callable[[str], str] | None) -> tuple[dict[str, str], str]:
    try:
        section = (yaml.safe_load(alias_text) or {}).get("alias") or {}
    except (yaml.YAMLError, AttributeError):
        raise TaskFileError("The alias section is not valid YAML.", "Write it as alias: values: {name: value}.",
                            line) from None
    if not isinstance(section, dict) or set(section) - {"values", "src", "directive"}:
        raise TaskFileError("The alias section takes values, src and directive.", None, line)
    values = section.get("values") or {}
    if not isinstance(values, dict):
        raise TaskFileError("alias.values must map names to values.", None, line)
    merged = {str(k): "" if v is None else str(v) for k, v in values.items()}
    sources = section.get("src") or []
    if not isinstance(sources, list):
        raise TaskFileError("alias.src must be a list of files.", None, line)
    for source in reversed(sources):
        merged = {**_alias_file(str(source), line, read_alias_file), **merged}  # the file's own values win
    directive = section.get("directive")
    try:
        templates.check_aliases(merged, None if directive is None else str(directive))
    except ValidationError as exc:
        raise TaskFileError(exc.message, exc.hint, line) from None
    return merged, "$" if directive is None else str(directive)


def _alias_file(source: str, line: int | None, read_alias_file: Callable[[str], str] | None) -> dict[str, str]:
    if re.match(r"^[a-z]+://", source) or read_alias_file is None:
        raise TaskFileError(f"Alias file {source}: only files in the task's context can be read here.",
                            "Copy the alias file into the context and name it by its relative path.", line)
    try:
        loaded = yaml.safe_load(read_alias_file(source)) or {}
    except yaml.YAMLError:
        raise TaskFileError(f"Alias file {source} is not valid YAML.", None, line) from None
    if not isinstance(loaded, dict):
        raise TaskFileError(f"Alias file {source} must map names to values.", None, line)
    return {str(k): "" if v is None else str(v) for k, v in loaded.items()}


def _qualified(steps: tuple[spec.StepSpec, ...], registry: str | None) -> tuple[spec.StepSpec, ...]:
    """Build tags and pushed images placed under the run's registry when they name none, as ACR does;
    a cmd image is taken as docker run takes it, unless a build step of this file built that name."""
    built: dict[str, str] = {}
    out = []
    for step in steps:
        if step.build is not None:
            tags = tuple(_output(tag, registry, step) for tag in step.build.tags)
            built.update(zip(step.build.tags, tags, strict=True))
            built.update((t, t) for t in tags)
            step = replace(step, build=replace(step.build, tags=tags))
        elif step.push:
            step = replace(step, push=tuple(_output(image, registry, step) for image in step.push))
        out.append(step)
    final = []
    for step in out:
        if step.cmd:
            image = built.get(step.cmd[0]) or _image(step.cmd[0], step, None)
            step = replace(step, cmd=(image, *step.cmd[1:]))
        final.append(step)
    return tuple(final)


def _output(text: str, registry: str | None, step: spec.StepSpec) -> str:
    if registry is None and not names_registry(text):
        raise TaskFileError(f"Step '{step.id}': the image {text} names no registry, and the run has none.",
                            "Give a full name such as localhost:5000/app:1, or -r/--registry.", step.line)
    return _image(text, step, registry)


def _image(text: str, step: spec.StepSpec, registry: str | None) -> str:
    try:
        ref = ImageRef.parse(text, default_registry=registry)
    except ValidationError as exc:
        raise TaskFileError(f"Step '{step.id}': {exc.message}", exc.hint, step.line) from None
    if ref.digest and step.kind != "cmd":
        raise TaskFileError(f"Step '{step.id}': the image {text} names a digest; it can only be run, not built or "
                            "pushed.", "Give a tag.", step.line)
    return str(ref)
