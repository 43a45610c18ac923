"""Shell-style expansion of Dockerfile words, as BuildKit's lexer (frontend/dockerfile/shell/lex.go) does it.

Quotes and escapes; `$V`, `${V}`; `${V:-x}`, `${V-x}`, `${V:+x}`, `${V+x}`, `${V:?msg}`, `${V?msg}`;
`${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}` (patterns with `*` and `?`); `${V/p/r}`, `${V//p/r}`.
Positional and special parameters (`$1`, `${10}`, `$@`, `$#`, `$$`, `$0`, ...) are never set, so they
expand to nothing (or to their `:-` default). Unterminated quotes and `${` are errors. Pure.

Beyond BuildKit: `${...}` nested more than MAX_NESTING deep is refused with a clear error (BuildKit's
Go stack has no such bound; Python's does), and a replacement in `${V/p/r}` is taken literally (Go's
regexp would expand `$1` in it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_NESTING = 32  # ${...} inside ${...}: real Dockerfiles use two or three levels
SUBSTITUTION_HINT = ("Use $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alternative}, ${VAR#prefix}, ${VAR%suffix} "
                     "or ${VAR/old/new}.")
_QUOTE_HINT = "Close the quote, or escape the quote character with a backslash."
_SPECIAL_PARAMETERS = "@*#?-$!0"  # POSIX special parameters; '0' also starts a positional number
_SHOWN = 60  # characters of a word quoted in an error message
# The names acrtask takes for build arguments, --set values and a step's env entries: POSIX's portable names
# (ASCII letters, digits and '_', not starting with a digit), read alike by every builder, shell and Go
# template. Narrower than the names an ARG may declare (`is_name`).
PORTABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shown(word: str) -> str:
    """`word` quoted for an error message, shortened when long (a line may be 64 KiB)."""
    return f"'{word}'" if len(word) <= _SHOWN else f"'{word[:_SHOWN]}...' ({len(word):,} characters)"


def short_name(name: str) -> str:
    """A variable's name for an error message, shortened when long."""
    return name if len(name) <= _SHOWN else name[:_SHOWN] + "..."


@dataclass
class Scope:
    """The variables an expansion can see."""

    values: dict[str, str | None] = field(default_factory=dict)  # declared; None = no value
    builder: set[str] = field(default_factory=set)  # set by the builder, value unknown here
    is_global: bool = True  # before the first FROM, rather than inside a stage

    def describe(self, name: str) -> str:
        """Why `name` has no usable value, for an error message."""
        shown_name = short_name(name)
        if name in self.builder:
            return "the builder sets it at build time"
        if not is_name(name):
            return "positional and special parameters are never set in a Dockerfile"
        if name not in self.values:
            if self.is_global:
                return f"it is not declared with ARG before the first FROM (add ARG {shown_name})"
            return "it is not declared with ARG in this stage (ENV values are not tracked)"
        if self.values[name] is None:
            return f"ARG {shown_name} has no default and no --arg gave it a value"
        return f"ARG {shown_name} is empty"


def is_portable_name(name: str) -> bool:
    return PORTABLE_NAME.fullmatch(name) is not None


def is_name(name: str) -> bool:
    """A variable name ARG can declare (not a positional or special parameter)."""
    return bool(name) and not name[0].isdecimal() and all(_in_name(c) for c in name)


def _in_name(char: str) -> bool:
    """Go's unicode.IsLetter || unicode.IsDigit || '_' (str.isalnum also takes ½ and Roman numerals)."""
    return char.isalpha() or char.isdecimal() or char == "_"


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
    missing: list[str]  # names whose unset or empty value the result used ($V, ${V}, ${V#p}, ...)
    builder: list[str]  # builder-set names whose value the result needed


class Expander:
    """One word at a time: `Expander(scope).expand(word)`. Follows lex.go's structure, function by function."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.missing: list[str] = []
        self.builder: list[str] = []
        self._word = ""
        self._depth = 0

    def expand(self, word: str) -> Expansion:
        self.missing, self.builder, self._word, self._depth = [], [], word, 0
        text, _ = self._process(0, stop=None, raw_escapes=False)
        return Expansion(text, self.missing, self.builder)

    def _error(self, problem: str, hint: str = SUBSTITUTION_HINT) -> ExpansionError:
        return ExpansionError(f"{shown(self._word)} {problem}", hint)

    def _process(self, i: int, stop: str | None, raw_escapes: bool) -> tuple[str, int]:
        """lex.go's processStopOn: the text from `i` up to `stop` (consumed), or to the end when stop is None.

        `raw_escapes` keeps backslashes, for patterns, whose own escapes are read later."""
        s, out = self._word, list[str]()
        while i < len(s):
            char = s[i]
            if char == stop:
                return "".join(out), i + 1
            if char == "$":
                text, i = self._dollar(i)
            elif char == "'":
                text, i = self._single_quoted(i)
            elif char == '"':
                text, i = self._double_quoted(i, raw_escapes)
            elif char == "\\":
                i += 1
                if i >= len(s):  # a trailing backslash escapes nothing
                    out.append("\\" if raw_escapes else "")
                    break
                text, i = ("\\" if raw_escapes else "") + s[i], i + 1
            else:
                text, i = char, i + 1
            out.append(text)
        if stop is not None:
            raise self._error("has a '${' without its closing '}'" if stop == "}" else
                              "has a '${VAR/pattern' without the '/' that ends its pattern")
        return "".join(out), i

    def _single_quoted(self, i: int) -> tuple[str, int]:
        end = self._word.find("'", i + 1)
        if end < 0:
            raise self._error("has a ' without its closing quote", _QUOTE_HINT)
        return self._word[i + 1:end], end + 1

    def _double_quoted(self, i: int, raw_escapes: bool) -> tuple[str, int]:
        """Literal but for `$` and the escapes \\" \\$ \\\\ (any other backslash stays)."""
        s, out = self._word, list[str]()
        i += 1
        while i < len(s) and s[i] != '"':
            if s[i] == "$":
                text, i = self._dollar(i)
                out.append(text)
                continue
            char = s[i]
            i += 1
            if char == "\\":
                if raw_escapes:
                    out.append(char)
                if i < len(s) and s[i] in '"$\\':
                    char = s[i]
                    i += 1
            out.append(char)
        if i >= len(s):
            raise self._error('has a " without its closing quote', _QUOTE_HINT)
        return "".join(out), i + 1

    def _name(self, i: int) -> tuple[str, int]:
        """lex.go's processName: digits (a positional parameter), one special character, or a name."""
        s = self._word
        if i < len(s) and s[i].isdecimal():
            end = i
            while end < len(s) and s[end].isdecimal():
                end += 1
            return s[i:end], end
        if i < len(s) and s[i] in _SPECIAL_PARAMETERS:
            return s[i], i + 1
        end = i
        while end < len(s) and _in_name(s[end]):
            end += 1
        return s[i:end], end

    def _dollar(self, i: int) -> tuple[str, int]:
        """Expand the substitution at s[i] == '$'; return its text and the index after it."""
        s = self._word
        if not s.startswith("${", i):
            name, end = self._name(i + 1)
            return (self._plain(name), end) if name else ("$", i + 1)  # a lone '$' is literal
        i += 2
        if i >= len(s):
            raise self._error("has a '${' without its closing '}'")
        if s[i] in "{}:":
            raise self._error("has a bad substitution after '${'")
        name, i = self._name(i)
        if i >= len(s):
            raise self._error("has a '${' without its closing '}'")
        if s[i] == "}":
            return self._plain(name), i + 1
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise self._error(f"nests ${{...}} more than {MAX_NESTING} levels deep",
                              "Use fewer nested substitutions, for example an ARG for the inner part.")
        try:
            if s[i] == "/":
                return self._replace(name, i + 1)
            return self._modifier(name, i)
        finally:
            self._depth -= 1

    def _lookup(self, name: str) -> tuple[str, str]:
        """("set", value), ("builder", "") for a builder-set arg (set, value unknown), or ("unset", "")."""
        value = self.scope.values.get(name)
        if value is not None:
            return "set", value
        return ("builder" if name in self.scope.builder else "unset"), ""

    def _plain(self, name: str) -> str:
        state, value = self._lookup(name)
        if state == "builder":
            self.builder.append(name)
        elif value == "":
            self.missing.append(name)
        return value

    def _modifier(self, name: str, i: int) -> tuple[str, int]:
        """`${name` then `:-` `-` `:+` `+` `:?` `?` `#` `##` `%` `%%` (s[i] is the first character after the name)."""
        s = self._word
        null_is_unset = s[i] == ":"
        if null_is_unset:
            i += 1
            if i >= len(s):
                raise self._error("has a '${' without its closing '}'")
        op = s[i]
        # The word only counts when it is used: ${A:-$B} with A set does not need B.
        saved = len(self.missing), len(self.builder)
        word, end = self._process(i + 1, stop="}", raw_escapes=op in "#%")
        if op not in "-+?#%":
            raise self._error(f"uses an unsupported substitution '${{{name}{':' if null_is_unset else ''}{op}...}}'")
        state, value = self._lookup(name)
        if op in "#%":
            if state == "builder":  # the pattern applies to a value only the build knows
                self.builder.append(name)
                return "", end
            if value == "":
                self.missing.append(name)
            greedy = word.startswith(op)
            pattern = word[1:] if greedy else word
            return (_trim_suffix if op == "%" else _trim_prefix)(pattern, value, greedy, self._error), end
        # With ':' an empty value counts as unset; a builder-set arg is never empty.
        present = state != "unset" and (not null_is_unset or state == "builder" or value != "")
        if op == "?" and not present:
            hint = (f"Pass it with --arg {short_name(name)}=value." if is_name(name)
                    else "Positional and special parameters are never set in a Dockerfile.")
            raise ExpansionError(word or "it is not set", hint, name)
        use_word = (op == "-" and not present) or (op == "+" and present)
        if not use_word:
            del self.missing[saved[0]:], self.builder[saved[1]:]
        if op == "+":
            return (word if use_word else ""), end
        if use_word:
            return word, end
        if state == "builder":
            self.builder.append(name)
        return value, end

    def _replace(self, name: str, i: int) -> tuple[str, int]:
        """`${name/pattern/replacement}` (first match) or `${name//pattern/replacement}` (every match)."""
        every = self._word.startswith("/", i)
        pattern, i = self._process(i + every, stop="/", raw_escapes=True)
        replacement, end = self._process(i, stop="}", raw_escapes=True)
        state, value = self._lookup(name)
        if state == "builder":
            self.builder.append(name)
            return "", end
        if value == "":
            self.missing.append(name)
        regex = _pattern_regex(pattern, greedy=True, anchored=False, error=self._error)
        if not every:
            match = regex.search(value)
            return (value if match is None else value[:match.start()] + replacement + value[match.end():]), end
        return _replace_all(regex, value, replacement), end


ErrorFactory = Callable[[str, str], ExpansionError]  # (problem, hint) -> the error, naming the word


def _pattern_regex(pattern: str, greedy: bool, anchored: bool, error: ErrorFactory) -> re.Pattern[str]:
    """lex.go's convertShellPatternToRegex: `*` any text (shortest unless greedy), `?` one character,
    `\\` escapes `*`, `?`, `\\` (and `}` and `/`, which need it inside ${})."""
    parts = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "*":
            parts.append(".*" if greedy else ".*?")
        elif char == "?":
            parts.append(".")
        elif char == "\\":
            if pattern[i:i + 1] in ("}", "/"):
                continue
            if i >= len(pattern) or pattern[i] not in "*?\\":
                escaped = pattern[i:i + 1] or "at the end"
                raise error(f"has an invalid escape '\\{escaped}' in a pattern",
                            "In a ${VAR#pattern}, \\ may only escape *, ?, \\, } and /.")
            parts.append(re.escape(pattern[i]))
            i += 1
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts))


def _trim_prefix(pattern: str, value: str, greedy: bool, error: ErrorFactory) -> str:
    match = _pattern_regex(pattern, greedy, anchored=True, error=error).search(value)
    return value if match is None else value[match.end():]


def _trim_suffix(pattern: str, value: str, greedy: bool, error: ErrorFactory) -> str:
    # A regex cannot find the shortest match ending at the end, so match the reversed text from the start,
    # with the pattern reversed escape by escape (a\*c -> c\*a), as lex.go does.
    units: list[str] = []
    i = 0
    while i < len(pattern):
        size = 2 if pattern[i] == "\\" and i + 1 < len(pattern) else 1
        units.append(pattern[i:i + size])
        i += size
    return _trim_prefix("".join(reversed(units)), value[::-1], greedy, error)[::-1]


def _replace_all(regex: re.Pattern[str], value: str, replacement: str) -> str:
    """Go's Regexp.ReplaceAllString (literal replacement): an empty match right after a match is skipped,
    where Python's re.sub would replace it too."""
    out: list[str] = []
    last_end, pos = 0, 0
    while pos <= len(value):
        match = regex.search(value, pos)
        if match is None:
            break
        out.append(value[last_end:match.start()])
        if match.end() > last_end or match.start() == 0:
            out.append(replacement)
        last_end = match.end()
        pos = max(pos + 1, match.end())
    out.append(value[last_end:])
    return "".join(out)
