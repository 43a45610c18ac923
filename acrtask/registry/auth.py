"""Registry authentication: WWW-Authenticate parsing, token responses, and the per-registry auth state.

How tokens are shared (the hot path depends on it):

- The challenge (realm, service) is learned once per registry. After that, a repository acrtask has not
  asked for yet gets its token *before* its first request, so no request ever eats a 401 twice.
- Tokens are cached per scope (`repository:<repo>:pull`) and reused across every tag of that repository
  until `Policy.token_margin` seconds before they expire.
- A batch (`check_many`) asks for one token covering many repositories at once (the token endpoint takes
  the `scope` parameter repeatedly, and grants what it can: a partial grant is not an error). That token is
  cached under each of its scopes, so 200 repositories on one registry cost a handful of token requests,
  not 200. A repository the shared token does not cover gets a 401 and then a token of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acrtask.errors import RegistryError
from acrtask.registry.credentials import Credentials

MIN_TOKEN_SECONDS = 60.0  # the token spec's default and minimum for expires_in
MAX_SCOPES_PER_TOKEN = 32  # keeps the token URL well under common 8 KiB request-line limits

_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 7230 tchar
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 7235 token68


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: scheme (lower case), its parameters, or its token68."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str = ""  # `Negotiate YWJj==`: a credential in place of parameters (rare in registries)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse RFC 7235 challenges: `Bearer realm="https://a/token",service="x",scope="repository:r:pull,push"`.

    `challenge = scheme [ 1*SP ( token68 / #auth-param ) ]`, and a header is a comma-separated list of
    challenges, so `Token abc` is one challenge whose token68 is `abc`, and `Basic realm=x, Bearer
    realm=y` two. Quoted values may hold commas and backslash escapes. Scheme and parameter names are
    lower-cased. Junk is skipped rather than given up on, so the challenges around it still count.
    """
    challenges: list[Challenge] = []
    current: Challenge | None = None
    i, n = 0, len(header)
    while i < n:
        if header[i] in " \t,":
            i += 1
            continue
        word = _TOKEN_CHARS.match(header, i)
        if word is None:
            i += 1
            continue
        after = _skip_spaces(header, word.end())
        if current is not None and after < n and header[after] == "=":  # name = value: a parameter
            value, i = _read_value(header, _skip_spaces(header, after + 1))
            current.params[word.group().lower()] = value
            continue
        current = Challenge(word.group().lower())
        challenges.append(current)
        i = after
        credential = _TOKEN68.match(header, i) if after > word.end() else None
        if credential is not None:
            end = _skip_spaces(header, credential.end())
            if end == n or header[end] == ",":  # a lone word before the next comma: a token68, not a name=value
                current = Challenge(current.scheme, token68=credential.group())
                challenges[-1] = current
                i = end
    return challenges


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _read_value(text: str, i: int) -> tuple[str, int]:
    if i < len(text) and text[i] == '"':
        out: list[str] = []
        i += 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            out.append(text[i])
            i += 1
        return "".join(out), i + 1
    word = _TOKEN_CHARS.match(text, i)
    if word is None:
        return "", i
    # token68-style values may end in '=' padding
    end = word.end()
    while end < len(text) and text[end] == "=":
        end += 1
    return text[i:end], end


def repository_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    expires_at: float  # seconds, on the client's clock


def parse_token(body: bytes, now: float, where: str) -> Token:
    """Read a token endpoint's answer: `token` or `access_token`, `expires_in` (default and minimum 60 s),
    `issued_at` (RFC 3339; ignored when in the future or implausibly old, i.e. when the clocks disagree)."""
    hint = "The registry's token service is misbehaving; report it to the registry's operator."
    try:
        document: Any = json.loads(body)
    except ValueError:
        raise RegistryError(f"{where}: the token answer is not JSON.", hint, code="TOKEN_INVALID") from None
    if not isinstance(document, dict):
        raise RegistryError(f"{where}: the token answer is not a JSON object.", hint, code="TOKEN_INVALID")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{where}: the token answer has no token.", hint, code="TOKEN_INVALID")
    lifetime = document.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) else 0.0
    seconds = max(seconds, MIN_TOKEN_SECONDS)
    issued = _issued_at(document.get("issued_at"))
    start = now if issued is None or issued > now or issued + seconds <= now else issued
    return Token(value, start + seconds)


def _issued_at(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


class HostAuth:
    """What one registry wants (nothing, Basic or Bearer) and the tokens acrtask holds for it.

    `authorization(scope, now)` is the hot-path question: the header value to send, "" for none, or None
    when a token must be fetched first.
    """

    def __init__(self, margin: float) -> None:
        self.margin = margin
        self.scheme = ""           # "", "basic" or "bearer": what the registry asked for last
        self.challenge: Challenge | None = None
        self.basic = ""            # precomputed "Basic ..." header
        self.tokens: dict[str, tuple[float, str]] = {}  # scope -> (renew at, "Bearer ...")
        self.settled = False       # a request got through or was challenged: we know the scheme
        self.credentials: Credentials | None = None
        self.credentials_loaded = False

    def authorization(self, scope: str, now: float) -> str | None:
        if self.scheme == "bearer":
            held = self.tokens.get(scope)
            if held is not None and now < held[0]:
                return held[1]
            return None
        return self.basic  # "" when anonymous

    def needs_token(self, scope: str, now: float) -> bool:
        return self.scheme == "bearer" and self.authorization(scope, now) is None

    def store(self, scopes: tuple[str, ...], token: Token) -> None:
        entry = (token.expires_at - self.margin, f"Bearer {token.value}")
        for scope in scopes:
            self.tokens[scope] = entry

    def drop(self, scope: str) -> None:
        self.tokens.pop(scope, None)

    def learn_bearer(self, challenge: Challenge) -> None:
        if self.challenge is None or (challenge.realm, challenge.params.get("service")) != (
                self.challenge.realm, self.challenge.params.get("service")):
            self.tokens.clear()  # a different token service: what we hold is useless there
        self.scheme, self.challenge, self.basic = "bearer", challenge, ""

    def learn_basic(self, credentials: Credentials) -> None:
        self.scheme, self.challenge, self.basic = "basic", None, credentials.basic_header()

    def secrets(self) -> list[str]:
        """Every secret this state holds, for scrubbing error text."""
        found = [value.split(" ", 1)[1] for _, value in self.tokens.values()]
        if self.credentials is not None:
            found += self.credentials.secrets()
        return found
