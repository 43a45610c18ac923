"""A bench for end-to-end tests: a real registry, a private ACRTASK_HOME, and the real `acrtask` CLI
run as a subprocess with buildah's test environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import LocalRegistry, head_digest, push_base_image
from tests.support.cli import Result


class Workbench:
    def __init__(self, registry: LocalRegistry, tmp: Path, buildah_env: dict[str, str]) -> None:
        self.registry = registry
        self.host = registry.host
        self.tmp = tmp
        self.home = tmp / "home"
        self.env = {**os.environ, **buildah_env, "ACRTASK_HOME": str(self.home)}
        self.env.pop("ACRTASK_REGISTRY", None)

    def image(self, repo_tag: str) -> str:
        return f"{self.host}/{repo_tag}"

    def push_base(self, repo_tag: str, content: str) -> str:
        return push_base_image(self.host, repo_tag, content, env=self.env)

    def digest(self, repo: str, tag: str) -> str:
        return head_digest(self.host, repo, tag)

    def context(self, name: str, dockerfile: str, files: dict[str, str] | None = None) -> Path:
        folder = self.tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Dockerfile").write_text(dockerfile)
        for file, text in (files or {}).items():
            (folder / file).write_text(text)
        return folder

    def acrtask(self, *args: str, timeout: float = 180, env: dict[str, str] | None = None) -> Result:
        done = subprocess.run([sys.executable, "-m", "acrtask", *args], env=env or self.env, capture_output=True,
                              text=True, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "acrtask", *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def create(self, name: str, context: Path, *images: str, extra: tuple[str, ...] = ()) -> None:
        tags = [arg for image in images for arg in ("-t", self.image(image))]
        done = self.acrtask("task", "create", "-n", name, "-c", str(context), *tags, *extra, "-o", "none")
        assert done.code == 0, done.err

    def run(self, name: str, *extra: str) -> Result:
        return self.acrtask("task", "run", "-n", name, *extra)

    def runs(self, task: str | None = None) -> list[dict[str, Any]]:
        args = ["task", "list-runs", "--top", "1000"] + (["-n", task] if task else [])
        return list(reversed(self.acrtask(*args).json()))  # oldest first

    def log_so_far(self, task: str | None = None) -> str:
        """The log of the task's last run as it is now (`task logs` would follow a running run to its end)."""
        runs = self.runs(task)
        if not runs:
            return ""
        log = self.home / "runs" / f"{runs[-1]['runId']}.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def task(self, name: str) -> dict[str, Any]:
        return self.acrtask("task", "show", "-n", name).json()
