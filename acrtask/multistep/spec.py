"""A rendered `acr-task.yaml` as frozen values, every property checked, errors with their line. Pure.

The keys are ACR's (docs: "ACR Tasks reference: YAML"). Keys that need a Docker network or Windows
(`networks`, `network`, `ports`, `expose`, `isolation`, `privileged`) and Key Vault secrets are refused
with a message saying so; any other unknown key is refused as a likely typo.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from acrtask.multistep.buildcmd import BuildCommand, parse_build
from acrtask.multistep.errors import TaskFileError
from acrtask.shellvars import is_portable_name

IMMEDIATE = "-"
DEFAULT_STEP_TIMEOUT = 600
DEFAULT_WORKING_DIRECTORY = "/workspace"
STEP_KINDS = ("build", "push", "cmd")
_VOLUME_NAME = re.compile(r"[A-Za-z0-9_-]+")
_NO_DOCKER = ("acrtask runs steps with buildah (or the chosen engine) on this host, without Docker networks, "
              "published ports or Windows isolation")
_REFUSED = {
    "network": _NO_DOCKER, "ports": _NO_DOCKER, "expose": _NO_DOCKER, "isolation": _NO_DOCKER,
    "privileged": "privileged containers are not run by acrtask",
    "secret": "Key Vault secrets are not supported; give values with --set-secret NAME=VALUE",
}
_COMMON = ("id", "when", "env", "timeout", "startDelay", "retries", "retryDelay", "ignoreErrors")
_PROPERTIES = {
    "push": _COMMON,
    "build": (*_COMMON, "repeat", "workingDirectory", "disableWorkingDirectoryOverride", "pull"),
    "cmd": (*_COMMON, "repeat", "workingDirectory", "disableWorkingDirectoryOverride", "pull", "detach", "keep",
            "entryPoint", "user", "volumeMounts"),
}


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str


@dataclass(frozen=True)
class Volume:
    name: str
    files: tuple[tuple[str, bytes], ...]  # file name -> content (decoded from base64)


@dataclass(frozen=True)
class StepSpec:
    id: str
    kind: str  # build | push | cmd
    line: int | None = None
    build: BuildCommand | None = None
    push: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()  # image, then its arguments
    when: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    timeout: int = DEFAULT_STEP_TIMEOUT
    start_delay: int = 0
    retries: int = 0
    retry_delay: int = 0
    repeat: int = 0
    ignore_errors: bool = False
    detach: bool = False
    keep: bool = False
    pull: bool = False
    entry_point: str | None = None
    user: str | None = None
    working_directory: str | None = None  # as given on the step; see TaskFile.working_directory_of
    disable_working_directory_override: bool = False
    volume_mounts: tuple[VolumeMount, ...] = ()


@dataclass(frozen=True)
class TaskFile:
    version: str
    steps: tuple[StepSpec, ...]
    step_timeout: int = DEFAULT_STEP_TIMEOUT
    total_timeout: int | None = None
    working_directory: str = DEFAULT_WORKING_DIRECTORY
    env: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()  # ids of declared secrets
    volumes: tuple[Volume, ...] = ()

    def working_directory_of(self, step: StepSpec) -> str | None:
        """The step's container working directory; None: the image's own (disableWorkingDirectoryOverride)."""
        if step.working_directory is not None:
            return step.working_directory
        return None if step.disable_working_directory_override else self.working_directory


class _Doc:
    """A YAML mapping whose values keep their nodes, so errors can name the line."""

    def __init__(self, node: yaml.Node, loader: yaml.SafeLoader, what: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise TaskFileError(f"{what} must be a mapping of keys to values.", None, _line(node))
        self.line = _line(node)
        self.loader = loader
        self.nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise TaskFileError(f"{what} has a key that is not text: {key!r}.", None, _line(key_node))
            if key in self.nodes:
                raise TaskFileError(f"{what} has the key '{key}' twice.", "Keep one of them.", _line(key_node))
            self.nodes[key] = value_node

    def value(self, key: str) -> Any:
        return self.loader.construct_object(self.nodes[key], deep=True)

    def line_of(self, key: str) -> int | None:
        return _line(self.nodes[key]) if key in self.nodes else self.line

    def get(self, key: str, kind: type | tuple[type, ...], what: str, default: Any = None) -> Any:
        if key not in self.nodes:
            return default
        value = self.value(key)
        if value is None:
            return default
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise TaskFileError(f"{what} '{key}' must be {_kind_name(kind)}, not {value!r}.", None, self.line_of(key))
        return value

    def count(self, key: str, what: str, default: int = 0, minimum: int = 0) -> int:
        value = self.get(key, int, what, default)
        if value < minimum:
            raise TaskFileError(f"{what} '{key}' must be at least {minimum}, not {value}.", None, self.line_of(key))
        return int(value)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", int: "a whole number", bool: "true or false", list: "a list", dict: "a mapping"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse(text: str, resolve_image: Callable[[str], str] = lambda word: word) -> TaskFile:
    """Parse rendered task-file text. `resolve_image` maps a cmd step's first word (image aliases)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise TaskFileError(f"The task file is not valid YAML: {exc.problem or exc.context}.",
                            "Fix the YAML syntax (indentation, quotes, brackets).",
                            mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise TaskFileError(f"The task file is not valid YAML: {exc}.") from None
    finally:
        loader.dispose()
    if node is None:
        raise TaskFileError("The task file is empty.", "List the steps under 'steps:'.")
    doc = _Doc(node, loader, "The task file")
    for key in doc.nodes:
        if key == "networks":
            raise TaskFileError(f"'networks' is not supported: {_NO_DOCKER}.", "Remove it.", doc.line_of(key))
        if key not in ("version", "stepTimeout", "totalTimeout", "workingDirectory", "env", "secrets", "volumes",
                       "steps"):
            raise TaskFileError(f"Unknown key '{key}' at the top of the task file.",
                                "Top-level keys are version, stepTimeout, totalTimeout, workingDirectory, env, "
                                "secrets, volumes, alias and steps.", doc.line_of(key))
    step_timeout = doc.count("stepTimeout", "Task property", DEFAULT_STEP_TIMEOUT, 1)
    total = doc.count("totalTimeout", "Task property", 0, 1) if "totalTimeout" in doc.nodes else None
    steps_node = doc.nodes.get("steps")
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        raise TaskFileError("The task file has no steps.", "List the steps under 'steps:', e.g. - build: -t app .",
                            _line(steps_node) if steps_node is not None else doc.line)
    steps = tuple(_step(_Doc(item, loader, f"Step {index + 1}"), index, step_timeout, resolve_image)
                  for index, item in enumerate(steps_node.value))
    seen: dict[str, int | None] = {}
    for step in steps:
        if step.id in seen:
            raise TaskFileError(f"Two steps have the id '{step.id}'.", "Give each step its own id.", step.line)
        seen[step.id] = step.line
    volumes = _volumes(doc)
    names = {volume.name for volume in volumes}
    for step in steps:
        for mount in step.volume_mounts:
            if mount.name not in names:
                raise TaskFileError(f"Step '{step.id}' mounts the volume '{mount.name}', which is not defined.",
                                    "Define it under the top-level 'volumes:'.", step.line)
    return TaskFile(
        version=str(doc.get("version", str, "Task property", "v1.0.0")), steps=steps, step_timeout=step_timeout,
        total_timeout=total, working_directory=doc.get("workingDirectory", str, "Task property",
                                                       DEFAULT_WORKING_DIRECTORY),
        env=_env(doc, "Task property"), secrets=_secrets(doc), volumes=volumes,
    )


def _env(doc: _Doc, what: str) -> tuple[str, ...]:
    items = doc.get("env", list, what, [])
    for item in items:
        if not isinstance(item, str) or not _is_env_entry(item):
            raise TaskFileError(f"{what} 'env' entry {item!r} is not NAME=VALUE.", "Write entries as - NAME=value.",
                                doc.line_of("env"))
    return tuple(items)


def _is_env_entry(item: str) -> bool:
    name, eq, _ = item.partition("=")
    return bool(eq) and is_portable_name(name)


def _secrets(doc: _Doc) -> tuple[str, ...]:
    ids = []
    for item in doc.get("secrets", list, "Task property", []):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"]:
            raise TaskFileError("Each entry of 'secrets' needs an 'id'.", None, doc.line_of("secrets"))
        extra = set(item) - {"id"}
        if extra:
            raise TaskFileError(f"Secret '{item['id']}': {', '.join(sorted(extra))} is not supported (no Key Vault "
                                "here).", f"Give the value with --set-secret {item['id']}=VALUE.",
                                doc.line_of("secrets"))
        if item["id"] in ids:
            raise TaskFileError(f"The secret '{item['id']}' is declared twice.", None, doc.line_of("secrets"))
        ids.append(item["id"])
    return tuple(ids)


def _volumes(doc: _Doc) -> tuple[Volume, ...]:
    volumes = []
    line = doc.line_of("volumes")
    for item in doc.get("volumes", list, "Task property", []):
        if not isinstance(item, Mapping) or set(item) != {"name", "secret"}:
            raise TaskFileError("Each volume needs exactly a 'name' and a 'secret' mapping of file names to "
                                "base64 content.", None, line)
        name, files = item["name"], item["secret"]
        if not isinstance(name, str) or not _VOLUME_NAME.fullmatch(name):
            raise TaskFileError(f"Volume name {name!r} is not valid: letters, digits, '-' and '_' only.", None, line)
        if not isinstance(files, Mapping) or not files:
            raise TaskFileError(f"Volume '{name}': 'secret' must map file names to base64 content.", None, line)
        decoded = []
        for file, content in files.items():
            if not isinstance(file, str) or not file or "/" in file or file in (".", ".."):
                raise TaskFileError(f"Volume '{name}': {file!r} is not a file name.", None, line)
            try:
                decoded.append((file, base64.b64decode(str(content), validate=True)))
            except (binascii.Error, ValueError):
                raise TaskFileError(f"Volume '{name}': the content of '{file}' is not base64.",
                                    "Encode it, e.g. {{.Values.x | b64enc}}.", line) from None
        volumes.append(Volume(name, tuple(decoded)))
    if len({v.name for v in volumes}) != len(volumes):
        raise TaskFileError("Two volumes have the same name.", None, line)
    return tuple(volumes)


def _step(doc: _Doc, index: int, step_timeout: int, resolve_image: Callable[[str], str]) -> StepSpec:
    kinds = [kind for kind in STEP_KINDS if kind in doc.nodes]
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "none of build, push or cmd"
        raise TaskFileError(f"Step {index + 1} has {found}: a step is exactly one of build, push or cmd.",
                            "Split it into one step per action.", doc.line)
    kind = kinds[0]
    step_id = doc.get("id", str, f"Step {index + 1}", f"acb_step_{index}")
    what = f"Step '{step_id}'"
    if not step_id or any(c.isspace() for c in step_id):
        raise TaskFileError(f"Step id {step_id!r} is not valid: it must be non-empty, without spaces.", None, doc.line)
    for key in doc.nodes:
        if key == kind:
            continue
        if key in _REFUSED:
            raise TaskFileError(f"{what}: '{key}' is not supported: {_REFUSED[key]}.", f"Remove '{key}'.",
                                doc.line_of(key))
        if key not in _PROPERTIES[kind]:
            known = key in _PROPERTIES["cmd"]
            raise TaskFileError(f"{what}: " + (f"'{key}' has no meaning for a {kind} step here." if known else
                                               f"unknown property '{key}'."),
                                f"Properties of a {kind} step: {', '.join(_PROPERTIES[kind])}.", doc.line_of(key))
    fields: dict[str, Any] = {"id": step_id, "kind": kind, "line": doc.line}
    line = doc.line_of(kind)
    if kind == "build":
        fields["build"] = parse_build(_text(doc, kind, what), what, line)
    elif kind == "push":
        images = doc.value("push")
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
            raise TaskFileError(f"{what}: 'push' must be a list of images.", "- push: [\"$Registry/app:$ID\"]", line)
        fields["push"] = tuple(images)
    else:
        fields["cmd"] = _command(_text(doc, kind, what), what, line, resolve_image)
    when = doc.get("when", list, what)
    if when is not None:
        if not when or not all(isinstance(w, str) and w for w in when):
            raise TaskFileError(f"{what}: 'when' must list step ids, or be [\"-\"].", None, doc.line_of("when"))
        fields["when"] = tuple(when)
    mounts = doc.get("volumeMounts", list, what, [])
    if any(not isinstance(m, Mapping) or set(m) != {"name", "mountPath"} for m in mounts):
        raise TaskFileError(f"{what}: each volumeMount needs exactly 'name' and 'mountPath'.", None,
                            doc.line_of("volumeMounts"))
    fields.update(
        env=_env(doc, what), timeout=doc.count("timeout", what, step_timeout, 1),
        start_delay=doc.count("startDelay", what), retries=doc.count("retries", what),
        retry_delay=doc.count("retryDelay", what), repeat=doc.count("repeat", what),
        ignore_errors=doc.get("ignoreErrors", bool, what, False), detach=doc.get("detach", bool, what, False),
        keep=doc.get("keep", bool, what, False), pull=doc.get("pull", bool, what, False),
        entry_point=doc.get("entryPoint", str, what), user=doc.get("user", str, what),
        working_directory=doc.get("workingDirectory", str, what),
        disable_working_directory_override=doc.get("disableWorkingDirectoryOverride", bool, what, False),
        volume_mounts=tuple(VolumeMount(str(m["name"]), str(m["mountPath"])) for m in mounts),
    )
    for mount in fields["volume_mounts"]:
        if not mount.mount_path.startswith("/"):
            raise TaskFileError(f"{what}: mountPath '{mount.mount_path}' is not an absolute path.", None,
                                doc.line_of("volumeMounts"))
    return StepSpec(**fields)


def _text(doc: _Doc, key: str, what: str) -> str:
    value = doc.value(key)
    if not isinstance(value, str) or not value.strip():
        raise TaskFileError(f"{what}: '{key}' must be a command line (text).", None, doc.line_of(key))
    return value


def _command(text: str, what: str, line: int | None, resolve_image: Callable[[str], str]) -> tuple[str, ...]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise TaskFileError(f"{what}: cmd cannot be split into words: {exc}.", "Balance its quotes.", line) from None
    if not words:
        raise TaskFileError(f"{what}: cmd names no image.", "Write cmd: IMAGE [ARGS...].", line)
    return (resolve_image(words[0]), *words[1:])
