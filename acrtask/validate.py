"""Checks and parsers for user input, az-style: each raises ValidationError (exit 2) with what and why."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from acrtask.dockerfile import is_stage_name
from acrtask.errors import ValidationError
from acrtask.model import Argument, TimerTrigger
from acrtask.multistep.templates import TemplateError, with_stand_ins
from acrtask.reference import ImageRef, names_registry
from acrtask.shellvars import is_portable_name

TASK_NAME = re.compile(r"^[A-Za-z0-9_-]{5,50}$")  # ACR's rule; a leading hyphen is refused on its own
TIMER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
RUN_ID_PLACEHOLDER = "{{.Run.ID}}"
# CronSim wants a start time, but what it refuses does not depend on it: a fixed one keeps this module pure.
_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)

E = TypeVar("E", bound=StrEnum)


def task_name(name: str) -> str:
    if not TASK_NAME.fullmatch(name):
        raise ValidationError(
            f"Invalid task name {name!r}: a task name has 5 to 50 letters, digits, hyphens or underscores.",
            "Choose a name such as 'build-app'.",
        )
    if name.startswith("-"):  # `-n -abcdef` would read as flags in every later command
        raise ValidationError(f"Invalid task name '{name}': a task name cannot start with a hyphen.",
                              "Choose a name such as 'build-app'.")
    return name


def timer_name(name: str) -> str:
    if not TIMER_NAME.fullmatch(name):
        raise ValidationError(
            f"Invalid timer name {name!r}: a timer name has 1 to 50 letters, digits, hyphens or underscores.",
            "Choose a name such as 'nightly'.",
        )
    return name


def is_utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8 (a file name or argument from a byte-minded system)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def stage_name(name: str) -> str:
    """A --target: a Dockerfile stage name as BuildKit takes them (a letter, then letters, digits, - _ .)."""
    if not is_stage_name(name):
        raise ValidationError(f"Invalid --target {name!r}: a stage name starts with a letter, followed by "
                              "letters, digits, '-', '_' or '.'.", "Give the name of a FROM ... AS <name> stage.")
    return name


def boolean(value: str, flag: str) -> bool:
    """az's three-state flags: true or false in any case; nothing else."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValidationError(f"argument {flag}: invalid choice: '{value}' (choose from 'true', 'false').")


def enum_value(enum: type[E], value: str, flag: str) -> E:
    """Match any case, store the canonical spelling (`all` becomes `All`)."""
    for member in enum:
        if member.value.lower() == value.strip().lower():
            return member
    choices = ", ".join(f"'{m.value}'" for m in enum)
    raise ValidationError(f"argument {flag}: invalid choice: '{value}' (choose from {choices}).")


def image_name(text: str, registry: str | None) -> str:
    """A `-t` value: a full reference, or a short name placed under `registry` as az does.

    Run variables (`{{.Run.ID}}`, `{{.Run.Date}}`, ...) are kept as they are and filled in at run time;
    `{{.Run.Registry}}` is filled in now, from `registry`.
    """
    if not text.strip():
        raise ValidationError("Invalid image name '': an image name cannot be empty.",
                              "Give -t a reference such as localhost:5000/app:v1.")
    try:
        checked, back = with_stand_ins(text, registry)
    except TemplateError as exc:
        raise ValidationError(f"Invalid image name '{text}': {exc.message}", exc.hint) from None

    def restore(value: str) -> str:
        for token, template in back.items():
            value = value.replace(token, template)
        return value

    try:
        ref = ImageRef.parse(checked, default_registry=registry)
    except ValidationError as exc:  # quote what the user typed, not the stand-in
        raise ValidationError(restore(exc.message), exc.hint) from None
    if ref.digest:
        raise ValidationError(f"Invalid image name '{text}': an output image cannot name a digest.",
                              "Give a tag such as app:v1.")
    in_registry = [template for token, template in back.items() if token in ref.registry]
    if in_registry:
        raise ValidationError(f"Invalid image name '{text}': {in_registry[0]} can be in the repository or the tag, "
                              "not in the registry's name.", "Give a tag such as app:{{.Run.ID}}.")
    if not names_registry(checked) and registry is None:
        raise ValidationError(
            f"Image name '{text}' does not say which registry to push to.",
            "Give a full reference such as localhost:5000/app:v1, or set -r/--registry or ACRTASK_REGISTRY.",
        )
    return restore(str(ref))


def argument(text: str, is_secret: bool) -> Argument:
    """`NAME=VALUE`, or `NAME` alone: the value comes from the environment at run time (az)."""
    name, sep, value = text.partition("=")
    if not is_portable_name(name):
        flag = "--secret-arg" if is_secret else "--arg"
        raise ValidationError(f"Invalid {flag} '{name}': a build argument name is letters, digits and "
                              "underscores, not starting with a digit.", f"Use {flag} NAME=VALUE.")
    return Argument(name=name, value=value if sep else None, is_secret=is_secret)


# The largest useful step per cron field (minute, hour, day, month, day of week): the field's span.
_CRON_SPANS = (("minute", 60), ("hour", 24), ("day of month", 31), ("month", 12), ("day of week", 7))
_CRON_STEP = re.compile(r"/(\d+)")
_CRON_LONG_NUMBER = re.compile(r"\d{5,}")  # no cron field needs one; Python will not even read 4,300 digits


def cron(expression: str) -> str:
    """Five fields, UTC, as ACR's timers; checked now so a bad schedule is never stored."""
    from cronsim import CronSim, CronSimError  # imported here: only schedule-setting commands pay for it

    hint = "Use minute hour day month day-of-week, e.g. '0 3 * * Mon-Fri' (UTC)."
    fields = expression.split()
    if len(fields) != 5:
        raise ValidationError(f"Invalid cron schedule '{expression}': it has {len(fields)} fields, not 5.", hint)
    for text, (field_name, span) in zip(fields, _CRON_SPANS, strict=True):
        if _CRON_LONG_NUMBER.search(text):
            raise ValidationError(f"Invalid cron schedule '{expression}': the {field_name} field has a number "
                                  "that is far too large.", hint)
        # cronsim takes any step (*/99999999999999999999 means "only at 0"); a step past the span is a typo.
        for step in _CRON_STEP.findall(text):
            if not 1 <= int(step) <= span:
                raise ValidationError(f"Invalid cron schedule '{expression}': the {field_name} step /{step} is "
                                      f"not between 1 and {span}.", hint)
    try:
        CronSim(" ".join(fields), _ANY_TIME)
    except (CronSimError, ValueError) as exc:  # ValueError: cronsim passes int()'s own refusals through
        raise ValidationError(f"Invalid cron schedule '{expression}': {exc}.", hint) from exc
    return " ".join(fields)


def schedules(values: list[str], existing: tuple[TimerTrigger, ...] = ()) -> tuple[TimerTrigger, ...]:
    """`--schedule [NAME:]CRON` values; unnamed ones are called t1, t2, ... as az does."""
    timers = list(existing)
    for value in values:
        name, sep, expression = value.partition(":")
        if not sep:
            name, expression = "", value
        if name and not TIMER_NAME.fullmatch(name):
            raise ValidationError(f"Invalid timer name '{name}' in --schedule '{value}'.",
                                  "Use letters, digits, hyphens or underscores: --schedule nightly:'0 3 * * *'.")
        if not name:
            taken = {timer.name for timer in timers}
            number = 1
            while f"t{number}" in taken:
                number += 1
            name = f"t{number}"
        if any(timer.name == name for timer in timers):
            raise ValidationError(f"The timer '{name}' is given twice.", "Give each --schedule its own name.")
        timers.append(TimerTrigger(name=name, schedule=cron(expression)))
    return tuple(timers)


def timeout(seconds: int) -> int:
    # ACR's floor is 300 s; local builds can be quicker, so only the ceiling is kept.
    if not 1 <= seconds <= 28800:
        raise ValidationError(f"Invalid --timeout {seconds}: it must be between 1 and 28800 seconds.")
    return seconds
