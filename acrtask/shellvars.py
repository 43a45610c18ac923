"""Shell-style expansion of Dockerfile words, as BuildKit's lexer does it: quotes, escapes, and
`$V`, `${V}`, `${V:-x}`, `${V-x}`, `${V:+x}`, `${V+x}`, `${V:?msg}` substitutions. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SUBSTITUTION_HINT = "Use $VAR, ${VAR}, ${VAR:-default} or ${VAR:+alternative}."


@dataclass
class Scope:
    """The variables an expansion can see."""

    values: dict[str, str | None] = field(default_factory=dict)  # declared; None = no value
    builder: set[str] = field(default_factory=set)  # set by the builder, value unknown here
    is_global: bool = True  # before the first FROM, rather than inside a stage

    def describe(self, name: str) -> str:
        """Why `name` has no usable value, for an error message."""
        if name in self.builder:
            return "the builder sets it at build time"
        if name not in self.values:
            if self.is_global:
                return f"it is not declared with ARG before the first FROM (add ARG {name})"
            return "it is not declared with ARG in this stage (ENV values are not tracked)"
        if self.values[name] is None:
            return f"ARG {name} has no default and no --arg gave it a value"
        return f"ARG {name} is empty"


class ExpansionError(Exception):
    """A substitution that cannot be expanded; the caller adds where it happened."""

    def __init__(self, message: str, hint: str, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.name = name


@dataclass
class Expansion:
    text: str
    missing: list[str]  # names used plainly ($V, ${V}) that were unset or empty
    builder: list[str]  # builder-set names whose value the result needed


class Expander:
    """Shell-style word processing as BuildKit's shell lexer does it: quotes, escapes, substitutions."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.missing: list[str] = []
        self.builder: list[str] = []

    def expand(self, word: str) -> Expansion:
        self.missing, self.builder = [], []
        text, _ = self._process(word, 0, stop=None)
        return Expansion(text, self.missing, self.builder)

    def _process(self, s: str, i: int, stop: str | None) -> tuple[str, int]:
        out: list[str] = []
        while i < len(s):
            char = s[i]
            if stop is not None and char == stop:
                return "".join(out), i
            if char == "'":  # single quotes: everything literal
                end = s.find("'", i + 1)
                end = len(s) if end < 0 else end
                out.append(s[i + 1:end])
                i = end + 1
            elif char == '"':
                i += 1
                while i < len(s) and s[i] != '"':
                    if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in '"$\\':
                        out.append(s[i + 1])
                        i += 2
                    elif s[i] == "$":
                        text, i = self._dollar(s, i)
                        out.append(text)
                    else:
                        out.append(s[i])
                        i += 1
                i += 1
            elif char == "\\":
                out.append(s[i + 1:i + 2])
                i += 2
            elif char == "$":
                text, i = self._dollar(s, i)
                out.append(text)
            else:
                out.append(char)
                i += 1
        if stop is not None:
            raise ExpansionError(f"'{s}' has a '${{' without its closing '}}'", SUBSTITUTION_HINT)
        return "".join(out), i

    def _lookup(self, name: str) -> tuple[str, str]:
        """("set", value), ("builder", "") for a builder-set arg (set, value unknown), or ("unset", "")."""
        value = self.scope.values.get(name)
        if value is not None:
            return "set", value
        return ("builder" if name in self.scope.builder else "unset"), ""

    def _dollar(self, s: str, i: int) -> tuple[str, int]:
        """Expand the substitution at s[i] == '$'; return its text and the index after it."""
        if not s.startswith("${", i):
            match = VAR_NAME.match(s, i + 1)
            if not match:
                return "$", i + 1  # a lone '$' is literal
            return self._plain(match.group()), match.end()
        match = VAR_NAME.match(s, i + 2)
        if not match:
            raise ExpansionError(f"'{s}' has a bad substitution after '${{'", SUBSTITUTION_HINT)
        name, j = match.group(), match.end()
        if j >= len(s):
            raise ExpansionError(f"'{s}' has a '${{' without its closing '}}'", SUBSTITUTION_HINT)
        if s.startswith("}", j):
            return self._plain(name), j + 1
        op = s[j:j + 2] if s[j:j + 2] in (":-", ":+", ":?") else s[j:j + 1]
        if op not in (":-", ":+", ":?", "-", "+", "?"):
            raise ExpansionError(f"'{s}' uses an unsupported substitution '${{{name}{s[j:j + 1]}...}}'",
                                  SUBSTITUTION_HINT)
        # The word only counts when it is used: ${A:-$B} with A set does not need B.
        saved = len(self.missing), len(self.builder)
        word, end = self._process(s, j + len(op), stop="}")
        state, value = self._lookup(name)
        # With ':' an empty value counts as unset; a builder-set arg is never empty.
        present = state != "unset" and (not op.startswith(":") or state == "builder" or value != "")
        if op.endswith("?") and not present:
            raise ExpansionError(word or "it is not set", f"Pass it with --arg {name}=value.", name)
        use_word = (op.endswith("-") and not present) or (op.endswith("+") and present)
        if not use_word:
            del self.missing[saved[0]:], self.builder[saved[1]:]
        if op.endswith("+"):
            return (word if use_word else ""), end + 1
        if use_word:
            return word, end + 1
        if state == "builder":
            self.builder.append(name)
        return value, end + 1

    def _plain(self, name: str) -> str:
        state, value = self._lookup(name)
        if state == "builder":
            self.builder.append(name)
        elif value == "":
            self.missing.append(name)
        return value
