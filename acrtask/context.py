"""Build contexts as az takes them: a local folder, a local git repository, or a git URL `#branch:folder`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from acrtask.errors import ValidationError

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
    path = Path(text).expanduser().resolve()
    if not path.is_dir():
        raise ValidationError(f"Context '{text}' is not a folder or a git URL.",
                              "Give -c a local folder, or a git URL such as https://host/org/repo.git#main:src.")
    if (path / ".git").exists():
        return Context(ContextKind.LOCAL_GIT, str(path), _current_branch(path))
    return Context(ContextKind.LOCAL, str(path))


def _current_branch(repo: Path) -> str | None:
    """Read .git/HEAD directly: cheap, and no subprocess for a create command."""
    try:
        head = (repo / ".git" / "HEAD").read_text().strip()
    except OSError:
        return None
    prefix = "ref: refs/heads/"
    return head[len(prefix):] if head.startswith(prefix) else None


def dockerfile_path(context: Context, file: str) -> Path | None:
    """Where the Dockerfile is for a local context (None for git URLs: it is only known after a clone)."""
    if context.kind is ContextKind.GIT_URL:
        return None
    path = Path(file)
    return path if path.is_absolute() else Path(context.location) / path
