"""Which kind of step `-c`, `-f` and `--cmd` make, as az decides it: cheap rules that every task command
needs, apart from the task-file machinery (YAML, templates, the executor) that only multi-step tasks load."""

from __future__ import annotations

from acrtask.model import StepType

NO_CONTEXT = "/dev/null"  # az's context for a task file given inline (EncodedTask) or --cmd
# ACR treats these as task files, everything else as a Dockerfile (docs: "Supported task filename extensions").
TASK_FILE_SUFFIXES = (".yaml", ".yml", ".toml", ".json", ".sh", ".bash", ".zsh", ".ps1", ".ps", ".cmd", ".bat",
                      ".ts", ".js", ".php", ".py", ".rb", ".lua")
DEFAULT_ENCODED_FILE = "acb.yaml"  # az's default -f with -c /dev/null


def is_task_file(file: str | None) -> bool:
    return file is not None and file.lower().endswith(TASK_FILE_SUFFIXES)


def step_type(context: str | None, file: str | None, cmd: str | None) -> StepType:
    """The kind of step `task create` makes from -c, -f and --cmd."""
    if cmd is not None or context == NO_CONTEXT:
        return StepType.ENCODED_TASK
    return StepType.FILE_TASK if is_task_file(file) else StepType.DOCKER
