"""BuildSpec checks, builder selection and availability, and how build steps turn into errors."""

from __future__ import annotations

import os
import shlex
import stat
import threading
import time
from pathlib import Path

import pytest

from acrtask.builders.base import Steps
from acrtask.builders.docker import Docker
from acrtask.builders.local import select
from acrtask.errors import BuildCanceledError, BuildError, BuildTimeoutError, ValidationError
from tests.support.builds import build_spec

SH_PATH = os.environ.get("PATH", "/usr/bin:/bin")


# -- BuildSpec ---------------------------------------------------------------------------------------------


def test_spec_defaults() -> None:
    s = build_spec()
    assert s.labels == {} and s.timeout is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"images": ()}, "at least one image"),
        ({"dockerfile": Path("Dockerfile")}, "not absolute"),
        ({"timeout": 0.0}, "must be positive"),
        ({"build_args": {"1BAD": "x"}}, "not valid"),
        ({"secret_args": {"A-B": "x"}}, "not valid"),
        ({"build_args": {"TOKEN": "a"}, "secret_args": {"TOKEN": "b"}}, "both as a plain and a secret"),
        ({"secret_args": {"PATH": "x"}}, "would change how the builder runs"),
        ({"secret_args": {"storage_driver": "x"}}, "would change how the builder runs"),
        ({"secret_args": {"DOCKER_HOST": "x"}}, "would change how the builder runs"),
        ({"secret_args": {"TOKEN": "a\0b"}}, "NUL"),
    ],
)
def test_spec_rejects(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        build_spec(**overrides)
    assert "\n" not in str(caught.value) and caught.value.hint


def test_spec_error_never_shows_a_secret_value() -> None:
    with pytest.raises(ValidationError) as caught:
        build_spec(secret_args={"PATH": "hunter2"})
    assert "hunter2" not in str(caught.value)


# -- select / available ------------------------------------------------------------------------------------


def fake_bin(tmp_path: Path, *names: str, script: str = "exit 0") -> dict[str, str]:
    """A PATH holding only stub executables `names` (they are looked up, never built with)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name in names:
        exe = bindir / name
        exe.write_text(f"#!/bin/sh\n{script}\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return {"PATH": str(bindir)}


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        (("buildah", "docker", "podman"), "buildah"),
        (("docker", "podman"), "docker"),
        (("podman",), "podman"),
    ],
)
def test_auto_takes_the_first_installed(tmp_path: Path, installed: tuple[str, ...], expected: str) -> None:
    assert select("auto", fake_bin(tmp_path, *installed)).name == expected


def test_auto_without_any_builder(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="No container builder found") as caught:
        select("auto", fake_bin(tmp_path))
    assert "Install buildah" in str(caught.value)


def test_named_builder_must_be_installed(tmp_path: Path) -> None:
    env = fake_bin(tmp_path, "buildah")
    assert select("buildah", env).name == "buildah"
    assert select(" Buildah ", env).name == "buildah"
    with pytest.raises(BuildError, match="The builder podman is not installed") as caught:
        select("podman", env)
    assert "--builder auto" in str(caught.value)


def test_unknown_builder_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="Unknown builder 'kaniko'"):
        select("kaniko", fake_bin(tmp_path, "buildah"))


def test_select_without_env_uses_this_process_path() -> None:
    assert select("auto").available()  # buildah is installed on this machine


@pytest.mark.parametrize(
    ("script", "expected"),
    [("exit 0", True), ("echo 'unknown command: docker buildx' >&2; exit 1", False)],
)
def test_docker_detects_buildx(tmp_path: Path, script: str, expected: bool) -> None:
    env = fake_bin(tmp_path, "docker", script=script)
    env["PATH"] += os.pathsep + SH_PATH  # the stub needs /bin/sh, nothing else
    builder = Docker(env)
    assert builder.available()
    assert builder.has_buildx() is expected


# -- Steps: how a command's end becomes an error ---------------------------------------------------------------


def steps(lines: list[str], cancel: threading.Event | None = None, **overrides: object) -> Steps:
    return Steps("buildah", build_spec(**overrides), {"PATH": SH_PATH}, lines.append, cancel or threading.Event())


def test_a_failed_step_names_the_builders_error_line() -> None:
    lines: list[str] = []
    argv = ["sh", "-c", "echo working; echo 'Error: building at STEP \"RUN x\": exit status 2'; exit 2"]
    with pytest.raises(BuildError) as caught:
        steps(lines).run(argv, "the build")
    assert type(caught.value) is BuildError
    assert str(caught.value).startswith(
        'buildah: the build failed (exit code 2): building at STEP "RUN x": exit status 2. Read the build log')
    assert lines[0] == "$ " + shlex.join(argv)
    assert lines[1:] == ["working", 'Error: building at STEP "RUN x": exit status 2']


def test_step_output_and_echoed_command_are_redacted_with_the_specs_secrets() -> None:
    lines: list[str] = []
    s = steps(lines, secret_args={"TOKEN": "hunter2"})
    with pytest.raises(BuildError) as caught:
        s.run(["sh", "-c", "echo Error: bad token hunter2; exit 1"], "the build")
    assert "hunter2" not in str(caught.value) and "hunter2" not in "\n".join(lines)
    assert "bad token ***" in str(caught.value)


def test_steps_share_one_deadline() -> None:
    s = steps([], timeout=3.0)
    s.run(["sh", "-c", "sleep 0.2"], "the build")
    start = time.monotonic()
    with pytest.raises(BuildTimeoutError, match="within its 3 s timeout; the push of r/a:1 was stopped"):
        s.run(["sleep", "30"], "the push of r/a:1")
    assert time.monotonic() - start < 6.0  # the push got what the build left of the 3 s, not 3 s more
    time.sleep(0.3)
    with pytest.raises(BuildTimeoutError, match="was not started"):
        s.run(["true"], "the push of r/a:2")


def test_a_canceled_build_starts_no_further_step() -> None:
    cancel = threading.Event()
    cancel.set()
    lines: list[str] = []
    with pytest.raises(BuildCanceledError, match="canceled; the push of r/a:1 was not started"):
        steps(lines, cancel).run(["true"], "the push of r/a:1")
    assert lines == []
    assert BuildCanceledError.exit_code == 130
