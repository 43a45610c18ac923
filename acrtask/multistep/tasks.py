"""Creating and updating multi-step tasks (FileTask, EncodedTask), as `az acr task create` makes them.

az decides by `-f`: a name ending in one of ACR's task-file extensions makes a FileTask (the file is
read from the context at each run); `-c /dev/null` makes an EncodedTask (the file, read now, is
stored in the task); `--cmd IMAGE ARGS` makes the one-step EncodedTask az writes for it. ACR reads
only YAML among those extensions, and so does acrtask: the others are refused.

An EncodedTask is checked in full when it is created (its text is all there is); a FileTask's file
may change in the context, so it is checked at each run, and here only found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import yaml

from acrtask import context as contexts
from acrtask.errors import BuildError, ValidationError
from acrtask.model import Argument, Step, StepType, Task
from acrtask.multistep import document
from acrtask.multistep import run as runs
from acrtask.multistep.kinds import DEFAULT_ENCODED_FILE, NO_CONTEXT, is_task_file
from acrtask.run_record import Run, RunStatus, RunTrigger
from acrtask.shellvars import is_portable_name


def value(text: str, flag: str, is_secret: bool) -> Argument:
    """A `--set NAME=VALUE` or `--set-secret NAME=VALUE` (both need the `=`, as in ACR)."""
    name, sep, given = text.partition("=")
    if not sep or not is_portable_name(name):
        raise ValidationError(f"Invalid {flag} '{text}': expected NAME=VALUE, the name of letters, digits and "
                              "underscores.", f"Use {flag} tag=v1; the task file reads it as {{{{.Values.tag}}}}.")
    return Argument(name=name, value=given, is_secret=is_secret)


def cmd_task_file(cmd: str, timeout: int) -> str:
    """The task file az makes for `--cmd`: one cmd step in the image's own working directory."""
    step = {"cmd": cmd, "disableWorkingDirectoryOverride": True, "timeout": timeout}
    return yaml.safe_dump({"version": "v1.1.0", "steps": [step]}, sort_keys=False)


def check_suffix(file: str) -> None:
    if is_task_file(file) and not file.lower().endswith((".yaml", ".yml")):
        raise ValidationError(f"The task file {file} is not YAML: ACR reserves its extension, but reads only YAML "
                              "task files, and so does acrtask.", "Write the steps in a .yaml file.")


def read_local(path: str, what: str, stdin_text: str | None = None) -> str:
    """A file read now (EncodedTask): `-` is the text read from standard input."""
    if path == "-":
        if stdin_text is None:
            raise ValidationError(f"The {what} '-' means standard input, and none was given.")
        return stdin_text
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path} does not exist.", f"Give the {what}'s path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ValidationError(f"The {what} {path} cannot be read: {reason}.") from None


def check_in_context(context_path: str, file: str, what: str) -> None:
    """A FileTask's task or values file must be in a local context (a git context is checked at run time)."""
    ctx = contexts.parse(context_path)
    path = contexts.dockerfile_path(ctx, file)
    if path is not None and not path.is_file():
        raise ValidationError(f"{path} does not exist.", f"Give -f / --values the {what}'s path relative to the "
                              "context.")


def check(task: Task, environ: Mapping[str, str], file_name: str | None = None) -> None:
    """Load a task file as a run would, with stand-ins for the run's variables: ValidationError on any fault.

    An EncodedTask's file is in the task; a FileTask's is read from a local context (a git context's
    file is only there after the clone, so it is checked at run time).
    """
    step = task.step
    context_dir = None
    if step.context_path != NO_CONTEXT:
        ctx = contexts.parse(step.context_path)
        if ctx.kind is contexts.ContextKind.GIT_URL:
            return
        context_dir = Path(ctx.location)
    run = Run(run_id="ca0", task=task.name, status=RunStatus.QUEUED, trigger=RunTrigger(),
              create_time="2000-01-01T00:00:00Z")
    given = [(v.name, v.value if v.value is not None else environ.get(v.name, ""), v.is_secret)
             for v in step.values]
    try:
        runs.load(runs.job(task, run, context_dir, None, None, given, environ, file_name or DEFAULT_ENCODED_FILE))
    except BuildError as exc:  # a file that cannot be read is bad input here, not a failed run
        raise ValidationError(exc.message, exc.hint) from None


def apply(step: Step, *, context: str | None, file: str | None, file_text: str | None, values_file: str | None,
          values_text: str | None, values: tuple[Argument, ...] | None, timeout: int, cmd: str | None) -> Step:
    """A multi-step task's step with create/update flags applied (the checks that need no run)."""
    context_path = context if context is not None else step.context_path
    if cmd is not None:
        if file is not None:
            raise ValidationError("Task can be created with either --cmd myCommand -c /dev/null or -f myFile -c "
                                  "myContext, but not both.")
        file_text = cmd_task_file(cmd, timeout)
    if values is not None:
        merged = {v.name: v for v in step.values}
        merged.update({v.name: v for v in values})
        step = replace(step, values=tuple(merged.values()))
    step = replace(step, context_path=context_path)
    if context_path == NO_CONTEXT:
        if file_text is not None:
            check_suffix(file or DEFAULT_ENCODED_FILE)
            step = replace(step, type=StepType.ENCODED_TASK, encoded_task_content=document.encode(file_text),
                           task_file_path=None, values_file_path=None)
        if values_text is not None:
            step = replace(step, encoded_values_content=document.encode(values_text))
        if step.encoded_task_content is None:
            raise ValidationError("A task with -c /dev/null needs its task file: give -f FILE (or - for standard "
                                  "input), or --cmd.")
        return step
    if step.type is StepType.ENCODED_TASK and context is not None:
        raise ValidationError("This task's file is stored in the task (-c /dev/null); it cannot take a context.",
                              "Delete it and create it again with -c CONTEXT -f FILE.")
    if file is not None:
        check_suffix(file)
        step = replace(step, task_file_path=file)
    if values_file is not None:
        step = replace(step, values_file_path=values_file)
    if context is not None or file is not None:
        check_in_context(step.context_path, step.task_file_path or "", "task file")
    if step.values_file_path and (context is not None or values_file is not None):
        check_in_context(step.context_path, step.values_file_path, "values file")
    return step
