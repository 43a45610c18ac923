"""Build contexts as az takes them: a local folder, a local git repository, or a git URL `#branch:folder`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from acrtask.errors import ValidationError, printable
from acrtask.paths import expand_user
from acrtask.validate import is_utf8

_GIT_URL = re.compile(r"^(https?://|ssh://|git://|git@|file://)")


class ContextKind(StrEnum):
    LOCAL = "local"
    LOCAL_GIT = "local-git"
    GIT_URL = "git-url"


@dataclass(frozen=True)
class Context:
    kind: ContextKind
    location: str  # absolute folder for local contexts, the URL without its fragment for git URLs
    branch: str | None = None
    folder: str | None = None  # sub-folder inside the repository (az's `#branch:folder`)

    @property
    def is_git(self) -> bool:
        return self.kind is not ContextKind.LOCAL


def parse(text: str) -> Context:
    """Classify a -c value. Local folders are made absolute, since watch may run from anywhere."""
    if _GIT_URL.match(text) or text.endswith(".git") or ".git#" in text:
        url, _, fragment = text.partition("#")
        branch, _, folder = fragment.partition(":")
        return Context(ContextKind.GIT_URL, url, branch or None, folder or None)
    hint = "Give -c a local folder, or a git URL such as https://host/org/repo.git#main:src."
    try:
        path = expand_user(text).resolve()
    except ValueError as exc:  # ~nosuchuser
        raise ValidationError(f"Context '{text}' cannot be used: {exc}.", hint) from None
    except RuntimeError:  # a symlink loop, up to Python 3.12
        raise ValidationError(f"Context '{text}' cannot be resolved: it is a symlink loop.", hint) from None
    except OSError as exc:  # the same from Python 3.13 on (ELOOP), and other faults of the path
        raise ValidationError(f"Context '{text}' cannot be resolved: {exc.strerror}.", hint) from None
    try:
        is_folder = path.is_dir()
        is_git = is_folder and (path / ".git").exists()
    except OSError as exc:  # a name too long, a folder we may not look into
        raise ValidationError(f"Context '{text}' cannot be used: {exc.strerror}.", hint) from None
    if not is_folder:
        raise ValidationError(f"Context '{text}' is not a folder or a git URL.", hint)
    if not is_utf8(str(path)):
        raise ValidationError(f"Context '{printable(str(path))}' has a name with bytes that are not UTF-8.",
                              "Rename the folder (acrtask stores paths as UTF-8 text), or use a git URL.")
    if is_git:
        return Context(ContextKind.LOCAL_GIT, str(path), _current_branch(path))
    return Context(ContextKind.LOCAL, str(path))


def _current_branch(repo: Path) -> str | None:
    """Read .git/HEAD directly: cheap, and no subprocess for a create command."""
    try:
        head = (repo / ".git" / "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    prefix = "ref: refs/heads/"
    return head[len(prefix):] if head.startswith(prefix) else None


def dockerfile_path(context: Context, file: str) -> Path | None:
    """Where the Dockerfile is for a local context (None for git URLs: it is only known after a clone)."""
    if context.kind is ContextKind.GIT_URL:
        return None
    path = Path(file)
    return path if path.is_absolute() else Path(context.location) / path


def check_dockerfile(context: Context, file: str) -> None:
    """A local context's Dockerfile must be a file that is there; checked when -c or -f is given."""
    path = dockerfile_path(context, file)
    if path is None:
        return
    hint = "Give -f the Dockerfile's path relative to the context, or create it."
    try:
        if path.is_file():
            return
        is_folder = path.is_dir()
    except OSError as exc:  # a name too long, a folder we may not look into
        raise ValidationError(f"{path} cannot be used as the Dockerfile: {exc.strerror}.", hint) from None
    if is_folder:
        raise ValidationError(f"{path} is a folder, not a Dockerfile.", hint)
    raise ValidationError(f"{path} does not exist.", hint)
