"""Run variables, values and aliases in task files and `-t` names, as ACR fills them in. Pure.

ACR renders task files with Go's text/template. acrtask takes the part people use, field substitution:
`{{.Run.ID}}`, `{{ .Values.tag }}`, `{{.Values.a.b}}`, `{{.Secrets.token}}`, with `{{-`/`-}}` trim
markers and the one pipe ACR's samples use, `| b64enc`. Anything else (`{{if}}`, `{{range}}`, other
functions) is refused with an error, never passed through. Unlike ACR (which prints nothing for a
missing value), a field without a value is an error: a tag rendered as `app:` is never what was meant.

Aliases (`version: v1.1.0`): `$ID`, `$Registry`, ... stand for `{{.Run.ID}}`, ...; a task file may
define its own (`alias: values: {repo: myrepo}`, alphanumeric names) and change the directive
character; `$$` is a literal `$`; an unknown `$name` (a shell variable) is left as it is.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acrtask.errors import ValidationError
from acrtask.platform import DEFAULT_PLATFORM
from acrtask.reference import host_of
from acrtask.shellvars import PORTABLE_NAME

RUN_FIELDS = ("ID", "SharedVolume", "Registry", "RegistryName", "Date", "OS", "Architecture", "Commit",
              "Branch", "TaskName")
# Fields that change from one run of the same task to the next: an image tagged with one is no
# stable base for other tasks.
VOLATILE_FIELDS = frozenset({"ID", "SharedVolume", "Date", "Commit"})
DEFAULT_ALIASES = {name: f"{{{{.Run.{name}}}}}" for name in RUN_FIELDS if name != "TaskName"}
# ACR's image aliases, usable as the first word of a cmd step (as in ACR's documentation).
IMAGE_ALIASES = {
    "acr": "mcr.microsoft.com/acr/acr-cli:0.14",
    "az": "mcr.microsoft.com/acr/azure-cli:9fb281c",
    "bash": "mcr.microsoft.com/acr/bash:9fb281c",
    "curl": "mcr.microsoft.com/acr/curl:9fb281c",
    "cssc": "mcr.microsoft.com/acr/cssc:9fb281c",
}
DATE_FORMAT = "%Y%m%d-%H%M%Sz"  # ACR's {{.Run.Date}}: 20190315-191515z

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_FIELD = re.compile(rf"\.(Run|Values|Secrets|Build)((?:\.{PORTABLE_NAME.pattern})+)")
_KEYWORDS = ("if", "else", "end", "range", "with", "define", "template", "block", "break", "continue")
_SUPPORTED = "only field substitution ({{.Run.ID}}, {{.Values.name}}, {{.Secrets.name}}) is supported"
ALIAS_NAME = re.compile(r"[A-Za-z0-9]+")


class TemplateError(ValidationError):
    """A template that cannot be filled in; `offset` is where in the text, for the caller's line number."""

    def __init__(self, message: str, hint: str | None = None, offset: int | None = None) -> None:
        super().__init__(message, hint)
        self.offset = offset


@dataclass(frozen=True)
class RunValues:
    """What `{{.Run.X}}` gives in one run."""

    id: str
    registry: str | None = None  # None: the task has no registry, and {{.Run.Registry}} is an error
    date: str = ""
    os: str = DEFAULT_PLATFORM.os
    architecture: str = DEFAULT_PLATFORM.architecture
    commit: str = ""
    branch: str = ""
    task_name: str = ""
    shared_volume: str = ""

    def fields(self) -> dict[str, str | None]:
        return {
            "ID": self.id, "SharedVolume": self.shared_volume, "Registry": self.registry,
            "RegistryName": None if self.registry is None else registry_name(self.registry), "Date": self.date,
            "OS": self.os, "Architecture": self.architecture, "Commit": self.commit, "Branch": self.branch,
            "TaskName": self.task_name,
        }


def registry_name(registry: str) -> str:
    """`{{.Run.RegistryName}}`: ACR's rule (the login server up to its first dot), except that an IP
    address or a host without dots is kept whole, without its port (ACR would make 127.0.0.1 `127`).
    `{{.Run.Registry}}` is the login server itself, port included."""
    host = host_of(registry)
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host
    except ValueError:
        return host.split(".", 1)[0]


def render(text: str, run: Mapping[str, str | None], values: Mapping[str, Any] | None = None,
           secrets: Mapping[str, str] | None = None) -> str:
    """`text` with every `{{...}}` filled in. `values` None: `{{.Values.x}}` is not allowed here."""
    out: list[str] = []
    position = 0
    trim_next = False  # the previous action ended in ' -}}': drop the whitespace after it
    for match in _ACTION.finditer(text):
        literal = text[position:match.start()]
        inner = match.group(1)
        if trim_next:
            literal = literal.lstrip()
        if inner == "-" or inner.startswith("- "):  # '{{- ': drop the whitespace before it
            literal, inner = literal.rstrip(), inner[1:]
        trim_next = inner.endswith(" -")
        if trim_next:
            inner = inner[:-2]
        out.append(literal)
        out.append(_evaluate(inner.strip(), match.start(), run, values, secrets or {}))
        position = match.end()
    rest = text[position:]
    if trim_next:
        rest = rest.lstrip()
    opened = rest.find("{{")
    if opened >= 0:
        raise TemplateError("A '{{' is never closed with '}}'.", "Close the template, or remove the braces.",
                            len(text) - len(rest) + opened)
    out.append(rest)
    return "".join(out)


def _evaluate(expression: str, offset: int, run: Mapping[str, str | None], values: Mapping[str, Any] | None,
              secrets: Mapping[str, str]) -> str:
    shown = "{{" + expression + "}}"
    word = expression.split(maxsplit=1)[0] if expression else ""
    if word in _KEYWORDS or expression.startswith("/*"):
        raise TemplateError(f"Template action {shown} is not supported: {_SUPPORTED}.",
                            "Give each variant its own file or value instead of template logic.", offset)
    field, _, pipe = expression.partition("|")
    field, pipe = field.strip(), pipe.strip()
    match = _FIELD.fullmatch(field)
    if not match:
        raise TemplateError(f"Template action {shown} is not supported: {_SUPPORTED}.",
                            "Write fields as {{.Run.ID}} or {{.Values.name}}.", offset)
    if pipe and pipe != "b64enc":
        raise TemplateError(f"Template action {shown} is not supported: of Go's template functions only "
                            "'b64enc' is.", "Compute the value outside and pass it with --set.", offset)
    root, path = match.group(1), match.group(2)[1:].split(".")
    if root in ("Run", "Build"):
        value = _run_field(root, path, run, shown, offset)
    elif root == "Values":
        value = _value(path, values, shown, offset)
    else:
        value = _secret(path, secrets, shown, offset)
    return base64.b64encode(value.encode()).decode() if pipe else value


def _run_field(root: str, path: list[str], run: Mapping[str, str | None], shown: str, offset: int) -> str:
    name = path[0] if len(path) == 1 else ""
    if root == "Build" and name != "ID":
        name = ""
    if name not in run:
        raise TemplateError(f"Unknown run variable {shown}.",
                            "Use one of: " + ", ".join(f"{{{{.Run.{f}}}}}" for f in RUN_FIELDS) + ".", offset)
    value = run[name]
    if value is None:
        raise TemplateError(f"{shown} has no value: the task has no registry.",
                            "Give the task one with -r/--registry (or ACRTASK_REGISTRY).", offset)
    return value


def _value(path: list[str], values: Mapping[str, Any] | None, shown: str, offset: int) -> str:
    if values is None:
        raise TemplateError(f"{shown} cannot be used here: values exist only in multi-step tasks.",
                            "Use run variables such as {{.Run.ID}}.", offset)
    current: Any = values
    for depth, key in enumerate(path):
        if not isinstance(current, Mapping) or key not in current:
            name = ".".join(path[: depth + 1])
            raise TemplateError(f"{shown} has no value: '{name}' is not set.",
                                f"Give it with --set {path[0]}=VALUE or in the values file (--values).", offset)
        current = current[key]
    if isinstance(current, Mapping | list):
        raise TemplateError(f"{shown} is a {'table' if isinstance(current, Mapping) else 'list'}, not a value.",
                            "Refer to one of its fields, e.g. {{.Values." + ".".join(path) + ".name}}.", offset)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _secret(path: list[str], secrets: Mapping[str, str], shown: str, offset: int) -> str:
    name = ".".join(path)
    if name not in secrets:
        raise TemplateError(f"{shown} has no value: no secret '{name}' was given.",
                            f"Give it with --set-secret {name}=VALUE (Key Vault secrets are not supported).", offset)
    return secrets[name]


def volatile_fields(text: str) -> set[str]:
    """The run variables in `text` that change from run to run ({{.Run.ID}}, $ID is expanded first)."""
    found = set()
    for match in _ACTION.finditer(text):
        field = _FIELD.search(match.group(1))
        if field and field.group(1) == "Build":
            found.add("ID")
        elif field and field.group(1) == "Run" and field.group(2)[1:] in VOLATILE_FIELDS:
            found.add(field.group(2)[1:])
    return found


# -- aliases -------------------------------------------------------------------------------------------


def expand_aliases(text: str, aliases: Mapping[str, str], directive: str = "$") -> str:
    """`$name` replaced by its alias (ACR's preprocessor): known names only; `$$` is a literal `$`."""
    pattern = re.compile(re.escape(directive) + r"(" + re.escape(directive) + r"|[A-Za-z0-9]+)")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == directive:
            return directive
        return aliases.get(name, match.group(0))

    return pattern.sub(replace, text)


def check_aliases(aliases: Mapping[str, object], directive: str | None) -> None:
    for name in aliases:
        if not isinstance(name, str) or not ALIAS_NAME.fullmatch(name):
            raise ValidationError(f"Alias name {name!r} is not valid: alias names are letters and digits only.",
                                  "Rename the alias under alias.values.")
    if directive is not None and (len(directive) != 1 or ALIAS_NAME.fullmatch(directive) or directive.isspace()):
        raise ValidationError(f"alias.directive {directive!r} is not valid: it must be one character that is "
                              "not a letter, digit or space.", "Use a character such as '#' or '%'.")


def stable_name(text: str, run: RunValues) -> str | None:
    """An output name as every run of its task pushes it, or None when it changes from run to run
    ({{.Run.ID}}, {{.Run.Date}}, ...) or cannot be filled in."""
    if volatile_fields(text):
        return None
    try:
        return render(text, run.fields())
    except TemplateError:
        return None


def with_stand_ins(text: str, registry: str | None) -> tuple[str, dict[str, str]]:
    """`text` (a `-t` name) with the registry filled in and every other run variable replaced by a
    stand-in that is valid in an image name, and the map from stand-ins back to `{{.Run.X}}`.

    For checking a name when a task is created; values (`{{.Values.x}}`) are refused here.
    """
    run: dict[str, str | None] = {}
    back: dict[str, str] = {}
    for field in RUN_FIELDS:
        token = f"acrtaskrun{field.lower()}0placeholder"
        run[field], back[token] = token, f"{{{{.Run.{field}}}}}"
    run["Registry"] = registry
    run["RegistryName"] = None if registry is None else registry_name(registry)
    return render(text, run), back
