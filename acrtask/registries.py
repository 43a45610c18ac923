"""`-r/--registry` as az reads it: a registry *name* means NAME.azurecr.io; a login server is itself.

A value with a dot, a colon or `localhost` is a login server (`localhost:5000`, `myreg.azurecr.io`). Any other
value is a name, as in `az acr task create -r myregistry`, and becomes NAME + ACRTASK_REGISTRY_SUFFIX
(`.azurecr.io` unless that variable says otherwise), unless an alias says which login server it is:
`acrtask registry add myregistry localhost:5000` lets command lines copied from Azure's docs run against a
local registry without edits.

Pure rules: the aliases are read and written by `state/aliases.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from acrtask.errors import ValidationError
from acrtask.reference import parse_registry

SUFFIX_ENV = "ACRTASK_REGISTRY_SUFFIX"
AZURE_SUFFIX = ".azurecr.io"
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,48}[A-Za-z0-9])?")  # a host label; ACR's names fit


def is_login_server(value: str) -> bool:
    """Whether `value` names a server (host.domain, host:port, localhost, [v6]) rather than a registry name."""
    return "." in value or ":" in value or value.lower() == "localhost" or value.startswith("[")


def suffix(environ: Mapping[str, str]) -> str:
    """What a registry name is completed with: ACRTASK_REGISTRY_SUFFIX (a dot is added in front if it has
    none, so `example.com` and `.example.com` are the same), else `.azurecr.io`."""
    value = environ.get(SUFFIX_ENV, "").strip()
    if not value:
        return AZURE_SUFFIX
    return value if value.startswith((".", ":")) else f".{value}"


def normalise_server(value: str) -> str:
    """A login server as image references spell it (lower-case host, port kept); refused if it is not one."""
    text = value.strip()
    if not text or "/" in text or any(c.isspace() for c in text):
        raise ValidationError(f"Invalid login server '{value}': give a host and optional port, such as "
                              "localhost:5000 or myregistry.azurecr.io.")
    try:
        return parse_registry(text.lower())  # host names know no case
    except ValidationError:
        raise ValidationError(f"Invalid login server '{value}': give a host and optional port, such as "
                              "localhost:5000 or myregistry.azurecr.io.") from None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or is_login_server(name):
        raise ValidationError(f"Invalid registry name '{name}': a name has 1 to 50 letters, digits, '-' or '_'.",
                              "Give a name such as 'myregistry'.")
    return name.lower()


def login_server(value: str, aliases: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """The login server `-r value` means: an alias, the value itself if it is a server, or NAME + suffix."""
    text = value.strip()
    if not text:
        raise ValidationError("argument --registry/-r: expected a registry name or login server.")
    if is_login_server(text):
        return normalise_server(text)
    alias = aliases.get(text.lower())
    if alias:
        return alias
    return normalise_server(check_name(text) + suffix(environ))
