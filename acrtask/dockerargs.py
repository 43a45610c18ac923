"""A Dockerfile's ARGs: declaring them into scopes, and expanding FROM, --platform and COPY --from words
with them into an image or a platform, with errors that say which ARG is missing and why. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

from acrtask.errors import ValidationError
from acrtask.instructions import Instruction, dequote, words
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.shellvars import Expander, Expansion, ExpansionError, Scope, is_name, short_name, shown

# Set by BuildKit for every build; their values depend on the machine and the requested platform.
BUILDER_ARGS = frozenset({
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
})
FROM_HINT = "Write it as FROM [--platform=os/arch] image [AS name]."
# Longer than any valid reference (host, 255-character path, 128-character tag, sha512 digest).
_MAX_REFERENCE = 1024


def declare(scope: Scope, instruction: Instruction, build_args: Mapping[str, str], inherited: Scope | None) -> None:
    """Apply `ARG a[=x] b[=y]` to `scope`. `inherited` is the global scope, for ARGs inside a stage.

    Global ARGs (inherited is None) are strict: a bad default is an error, as BuildKit reports it.
    """
    where = f"ARG on line {instruction.line}"
    found = words(instruction.value)
    if not found:
        raise ValidationError(f"{where} declares nothing.", "Write it as ARG NAME or ARG NAME=default.")
    for word in found:
        raw_name, eq, default = word.partition("=")
        name = dequote(raw_name)
        if not name:
            raise ValidationError(f"{where} has no name before '='.", "Write it as ARG NAME=default.")
        scope.builder.discard(name)
        if name in build_args:  # a build arg always wins over the default
            scope.values[name] = build_args[name]
        elif eq:
            try:
                scope.values[name] = Expander(scope).expand(default).text
            except ExpansionError as error:
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


def cannot_resolve(name: str, scope: Scope, where: str, what: str) -> ValidationError:
    """The error for a word that needed `name`'s value and did not get one."""
    shown_name = short_name(name)
    hint = f"Pass it with --arg {shown_name}=value or give the ARG a default."
    if not is_name(name):
        hint = "Use an ARG with a name instead, e.g. ARG TAG=3.19 and $TAG."
    elif name not in scope.values and name not in scope.builder:
        # Docker only passes a build arg to a name an ARG declares, so --arg alone would not help.
        place = "before the first FROM" if scope.is_global else "in the stage"
        hint = (f"Declare it with ARG {shown_name} {place}, then pass it with --arg {shown_name}=value or give "
                "the ARG a default.")
        known = sorted({*scope.values, *scope.builder, *BUILDER_ARGS})
        similar = difflib.get_close_matches(name, known, n=1) if len(name) <= 100 else []
        if similar:  # a misspelt $BULIDPLATFORM is the usual cause
            hint = f"Did you mean ${similar[0]}? Otherwise: {hint[0].lower()}{hint[1:]}"
    return ValidationError(f"Cannot resolve ${shown_name} in {where}: {scope.describe(name)}, {what}.", hint)


def expand(word: str, scope: Scope, where: str) -> Expansion:
    try:
        return Expander(scope).expand(word)
    except ExpansionError as error:
        if error.name is not None:
            raise ValidationError(f"Cannot resolve ${short_name(error.name)} in {where}: {error.message}.",
                                  error.hint) from None
        raise ValidationError(f"{where}: {error.message}.", error.hint) from None


def image(word: str, scope: Scope, where: str) -> tuple[str, Callable[[], ImageRef]]:
    """Expand `word`; return the text and a parser that raises a located error when it is no image."""
    expansion = expand(word, scope, where)
    text = expansion.text

    def parse() -> ImageRef:
        if expansion.builder:  # an image that depends on the build platform cannot be recorded
            raise cannot_resolve(expansion.builder[0], scope, where, "so the image is unknown until the build")
        try:
            if len(text) > _MAX_REFERENCE:
                raise ValidationError(f"Invalid image reference {shown(text)}: it is longer than any image "
                                      "reference can be.", "Check the image name and the ARGs it uses.")
            return ImageRef.parse(text)
        except ValidationError as error:
            if expansion.missing:
                raise cannot_resolve(expansion.missing[0], scope, where,
                                     f"so the image {shown(text)} is not valid") from None
            if not text:
                raise ValidationError(f"{where} names an empty image.", FROM_HINT) from None
            raise ValidationError(f"{error.message.removesuffix('.')} ({where}).", error.hint) from None

    return text, parse


def platform(word: str | None, scope: Scope, where: str) -> Platform | None:
    """FROM's --platform, expanded and normalised; None for none, or for one only the build knows."""
    if not word:
        return None  # no --platform, or `--platform=`: the build's platform, as in BuildKit
    expansion = expand(word, scope, where)
    if expansion.builder:
        return None  # e.g. $BUILDPLATFORM: the build decides, so no fixed platform to record
    text = expansion.text.strip()
    if not text:  # BuildKit: "empty platform value from expression ..."
        if expansion.missing:
            raise cannot_resolve(expansion.missing[0], scope, where, f"so --platform={shown(word)} is empty")
        raise ValidationError(f"{where} has --platform={shown(word)}, which is empty.",
                              "Give a platform such as linux/arm64, or leave out --platform.")
    try:
        # Normalised as containerd does, so linux/aarch64 and linux/arm64 are one dependency.
        return Platform.parse(text, source=f"{where} --platform")
    except ValidationError:
        if expansion.missing:
            raise cannot_resolve(expansion.missing[0], scope, where,
                                 f"so the platform {shown(text)} is not valid") from None
        raise
