"""Build contexts made ready on disk. A local folder is built as it is (a local git repository
too, as `docker build .` would, with its HEAD commit recorded); a git URL is shallow-cloned into a
temporary folder, and the commit it built is recorded on the run."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from acrtask import context as contexts
from acrtask import process
from acrtask.errors import AcrTaskError
from acrtask.model import Task

CLONE_TIMEOUT = 600.0


def _git(args: list[str], env: Mapping[str, str], timeout: float = 60.0,
         cancel: threading.Event | None = None) -> str:
    """Run git; a timeout or `cancel` stops it (BuildTimeoutError / BuildCanceledError)."""
    lines: list[str] = []
    # No prompts: a watch loop must never hang on a credential question.
    code = process.run(["git", *args], {**env, "GIT_TERMINAL_PROMPT": "0"}, lines.append,
                       cancel or threading.Event(), timeout)
    output = "\n".join(lines)
    if code != 0:
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise AcrTaskError(f"git {args[0]} failed (exit code {code}): {last}",
                           "Check the context's URL, branch and credentials.")
    return output.strip()


def git_auth_env(location: str, token: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """`env` plus what makes git send `token` (--git-access-token) to an https context's host, and only there.

    The token rides in git's environment as an `http.<url>.extraHeader` (GIT_CONFIG_COUNT/KEY/VALUE, git 2.31+),
    never in its arguments, where `ps` would show it. Plain http, ssh and local contexts never get it."""
    parts = urlsplit(location)
    if not token or parts.scheme != "https" or not parts.hostname:
        return dict(env)
    host = parts.netloc.rpartition("@")[2]
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
    count = int(env.get("GIT_CONFIG_COUNT", "0") or "0") if env.get("GIT_CONFIG_COUNT", "").isdigit() else 0
    return {**env, "GIT_CONFIG_COUNT": str(count + 1), f"GIT_CONFIG_KEY_{count}": f"http.https://{host}/.extraHeader",
            f"GIT_CONFIG_VALUE_{count}": f"Authorization: Basic {basic}"}


def ls_remote(location: str, branch: str | None, env: Mapping[str, str] | None = None,
              token: str | None = None) -> str:
    """The commit a branch (or HEAD) points at, without cloning."""
    ref = f"refs/heads/{branch}" if branch else "HEAD"
    git_env = git_auth_env(location, token, env or os.environ)
    output = _git(["ls-remote", "--", location, ref], git_env, 30.0)  # --: never an option
    if not output:
        raise AcrTaskError(f"The branch {branch or 'HEAD'} does not exist in {location}.",
                           "Check the context's #branch.")
    return output.split()[0]


def _without_credentials(url: str) -> str:
    """https://user:token@host/repo.git -> https://host/repo.git, for logs."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


class Workspace:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self._tmp: str | None = None

    def prepare(self, task: Task, log: Callable[[str], None],
                cancel: threading.Event | None = None) -> tuple[Path, str | None]:
        ctx = contexts.parse(task.step.context_path)
        if ctx.kind is contexts.ContextKind.LOCAL:
            return Path(ctx.location), None
        if ctx.kind is contexts.ContextKind.LOCAL_GIT:
            return Path(ctx.location), _git(["-C", ctx.location, "rev-parse", "HEAD"], self.env, cancel=cancel)
        self._tmp = tempfile.mkdtemp(prefix="acrtask-context-")
        clone = Path(self._tmp) / "src"
        argv = ["clone", "--depth", "1", "--quiet"]
        if ctx.branch:
            argv += ["--branch", ctx.branch]
        log(f"Cloning {_without_credentials(ctx.location)}" + (f" (branch {ctx.branch})" if ctx.branch else ""))
        _git([*argv, "--", ctx.location, str(clone)], git_auth_env(ctx.location, task.step.context_access_token,
                                                                  self.env), CLONE_TIMEOUT, cancel)
        commit = _git(["-C", str(clone), "rev-parse", "HEAD"], self.env, cancel=cancel)
        folder = clone / ctx.folder if ctx.folder else clone
        if not folder.is_dir():
            raise AcrTaskError(f"The folder '{ctx.folder}' does not exist in {ctx.location}.",
                               "Fix the :folder part of the context.")
        return folder, commit

    def cleanup(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
