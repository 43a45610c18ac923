"""A failing docker credential helper: the error names the helper and its exit code, never its output.

A helper's output can be the secret itself (issue 9, item 11: `oops Pa55w0rd…` was copied into the ERROR).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from acrtask.errors import RegistryError
from acrtask.registry.credentials import DockerCredentials

LEAKY_HELPER = """#!/bin/sh
[ "$1" = get ] || exit 2
read server
echo "oops Pa55w0rd-on-stdout for $server"
echo "Pa55w0rd-on-stderr" >&2
exit 3
"""


def test_a_failing_helper_is_named_with_its_exit_code_and_nothing_it_printed(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-leaky"
    helper.write_text(LEAKY_HELPER)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"reg.example": "leaky"}}))
    store = DockerCredentials({"DOCKER_CONFIG": str(tmp_path), "PATH": f"{bindir}:{os.environ.get('PATH', '')}"})
    with pytest.raises(RegistryError) as caught:
        store.get("reg.example")
    said = str(caught.value)
    assert "Pa55w0rd" not in said and "oops" not in said
    assert "The credential helper docker-credential-leaky failed (exit 3) for reg.example." in said
    assert caught.value.code == "CONFIG"
