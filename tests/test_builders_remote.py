"""Build endpoints as values and in their file; the remote engines' argument lists, environments, probes
and auth files (real podman endpoints: tests/integration/test_builders_pool_real.py)."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from acrtask.builders import remote
from acrtask.builders.authfile import private_auth
from acrtask.builders.endpoint import Endpoint, Engine
from acrtask.endpoints import EndpointStore
from acrtask.errors import NotFoundError, StateError, ValidationError
from acrtask.platform import Platform
from tests.support.builds import build_spec

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")


def endpoint(**overrides: object) -> Endpoint:
    fields: dict = dict(name="build1", url="tcp://10.0.0.5:8888", engine=Engine.PODMAN)
    fields.update(overrides)
    return Endpoint(**fields)


# -- the endpoint value -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("engine", "url"), [
    (Engine.PODMAN, "tcp://10.0.0.5:8888"),
    (Engine.PODMAN, "ssh://core@build1/run/podman/podman.sock"),
    (Engine.PODMAN, "ssh://core@build1:2222/run/user/1000/podman/podman.sock"),
    (Engine.PODMAN, "unix:///run/podman/podman.sock"),
    (Engine.DOCKER, "tcp://docker1:2376"),
    (Engine.DOCKER, "ssh://me@docker1"),
    (Engine.BUILDKIT, "tcp://buildkitd:1234"),
    (Engine.BUILDKIT, "unix:///run/buildkit/buildkitd.sock"),
])
def test_valid_urls(engine: Engine, url: str) -> None:
    assert endpoint(engine=engine, url=url).url == url


@pytest.mark.parametrize(("engine", "url", "problem"), [
    (Engine.PODMAN, "http://10.0.0.5:8888", "reached over tcp://, ssh://, unix://"),
    (Engine.PODMAN, "tcp://10.0.0.5", "tcp://host:port"),
    (Engine.PODMAN, "tcp://10.0.0.5:8888/x", "tcp://host:port"),
    (Engine.PODMAN, "tcp://:8888", "names no host"),
    (Engine.PODMAN, "unix://run/podman.sock", "unix:///absolute/path"),
    (Engine.PODMAN, "ssh://me:pw@host/run/podman.sock", "password does not belong"),
    (Engine.PODMAN, "tcp://10.0.0.5:99999", "not a URL"),
    (Engine.BUILDKIT, "ssh://me@buildkitd", "reached over tcp://, unix://"),
    (Engine.DOCKER, "tcp://h:1?x=1", "no spaces, query or fragment"),
])
def test_invalid_urls(engine: Engine, url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match="Invalid --url") as caught:
        endpoint(engine=engine, url=url)
    assert problem in str(caught.value)


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"name": "-bad"}, "Invalid build endpoint name"),
    ({"name": "a/b"}, "Invalid build endpoint name"),
    ({"max_concurrent": 0}, "--max-concurrent 0"),
    ({"platforms": ()}, "serves no platform"),
    ({"identity": "/k", "url": "tcp://h:1"}, "--identity is for podman endpoints reached over ssh://"),
    ({"tls_dir": "/t"}, "podman's remote API has no TLS"),
    ({"engine": Engine.DOCKER, "tls_dir": "/t", "url": "ssh://me@h"}, "over tcp://"),
])
def test_invalid_endpoints(overrides: dict, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        endpoint(**overrides)
    assert problem in str(caught.value)


def test_an_endpoint_serves_its_platforms_only() -> None:
    both = endpoint(platforms=(AMD64, Platform.parse("linux/arm/v7")))
    assert both.serves(Platform.parse("linux/x86_64")) and both.serves(Platform.parse("linux/arm/v7"))
    assert not both.serves(ARM64)


def test_the_store_keeps_endpoints_in_order_and_refuses_duplicates(tmp_path: Path) -> None:
    store = EndpointStore(tmp_path / "builders.toml")
    assert store.load() == []
    one = endpoint(max_concurrent=4, platforms=(AMD64, ARM64))
    two = endpoint(name="bk", engine=Engine.BUILDKIT, url="tcp://bk:1234", tls_dir="/etc/bk")
    store.add(one)
    store.add(two)
    assert store.load() == [one, two]
    assert stat.S_IMODE((tmp_path / "builders.toml").stat().st_mode) == 0o600
    with pytest.raises(ValidationError, match="already exists"):
        store.add(endpoint())
    assert store.remove("build1") == one
    assert store.load() == [two]
    with pytest.raises(NotFoundError):
        store.remove("build1")


def test_a_corrupt_store_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "builders.toml"
    path.write_text('[builders.x]\nurl = "http://nope"\n')
    store = EndpointStore(path)
    with pytest.raises(StateError, match="malformed endpoint 'x'"):
        store.load()
    with pytest.raises(StateError):
        store.add(endpoint())
    assert path.read_text() == '[builders.x]\nurl = "http://nope"\n'


# -- argument lists and environments ---------------------------------------------------------------------


def test_podman_remote_args_carry_the_url_and_an_ssh_key() -> None:
    assert remote.podman_remote_args(endpoint()) == ["--remote", "--url", "tcp://10.0.0.5:8888"]
    keyed = endpoint(url="ssh://core@b1/run/podman/podman.sock", identity="/home/me/.ssh/id_ed25519")
    assert remote.podman_remote_args(keyed) == ["--remote", "--url", "ssh://core@b1/run/podman/podman.sock",
                                                "--identity", "/home/me/.ssh/id_ed25519"]


BASE_ENV = {"PATH": "/usr/bin", "HOME": "/home/me", "DOCKER_HOST": "tcp://elsewhere:2375",
            "CONTAINER_HOST": "ssh://elsewhere", "DOCKER_CONFIG": "/home/me/.docker", "REGISTRY_AUTH_FILE": "/a.json",
            "BUILDX_BUILDER": "mine", "DOCKER_AUTH_CONFIG": "{}", "BUILDAH_ISOLATION": "chroot",
            "ACRTASK_WEBHOOK_TOKEN": "hook-secret", "SSH_AUTH_SOCK": "/run/user/1000/ssh-agent.sock"}


def test_engine_env_points_each_client_at_the_endpoint_and_nowhere_else() -> None:
    auth = Path("/tmp/acrtask-auth-x")
    podman_env = remote.engine_env(endpoint(), BASE_ENV, docker_config=None, buildx_config=Path("/h/buildx"))
    assert podman_env == {"PATH": "/usr/bin", "HOME": "/home/me", "BUILDAH_ISOLATION": "chroot",
                          "SSH_AUTH_SOCK": "/run/user/1000/ssh-agent.sock"}

    docker = endpoint(engine=Engine.DOCKER, url="tcp://docker1:2376", tls_dir="/etc/acrtask/docker1")
    docker_env = remote.engine_env(docker, BASE_ENV, docker_config=auth, buildx_config=Path("/h/buildx"))
    assert docker_env == {"PATH": "/usr/bin", "HOME": "/home/me", "BUILDAH_ISOLATION": "chroot",
                          "SSH_AUTH_SOCK": "/run/user/1000/ssh-agent.sock", "DOCKER_CONFIG": str(auth),
                          "DOCKER_HOST": "tcp://docker1:2376", "DOCKER_TLS_VERIFY": "1",
                          "DOCKER_CERT_PATH": "/etc/acrtask/docker1"}

    bk = endpoint(name="bk", engine=Engine.BUILDKIT, url="tcp://bk:1234")
    bk_env = remote.engine_env(bk, BASE_ENV, docker_config=auth, buildx_config=Path("/h/buildx"))
    assert bk_env["BUILDX_BUILDER"] == remote.buildx_builder(bk) and bk_env["BUILDX_CONFIG"] == "/h/buildx"
    assert "DOCKER_HOST" not in bk_env and bk_env["DOCKER_CONFIG"] == str(auth)


def test_buildx_remote_driver_builder_follows_url_and_certificates() -> None:
    bk = endpoint(name="bk", engine=Engine.BUILDKIT, url="tcp://bk:1234", tls_dir="/etc/bk")
    name = remote.buildx_builder(bk)
    assert name.startswith("acrtask-bk-") and len(name) == len("acrtask-bk-") + 8
    assert remote.buildx_create_command(bk) == [
        "docker", "buildx", "create", "--name", name, "--driver", "remote",
        "--driver-opt", "cacert=/etc/bk/ca.pem,cert=/etc/bk/cert.pem,key=/etc/bk/key.pem", "tcp://bk:1234"]
    assert remote.buildx_builder(endpoint(name="bk", engine=Engine.BUILDKIT, url="tcp://bk2:1234")) != name
    plain = endpoint(name="bk", engine=Engine.BUILDKIT, url="unix:///run/buildkit/buildkitd.sock")
    assert remote.buildx_create_command(plain)[-3:] == ["--driver", "remote", "unix:///run/buildkit/buildkitd.sock"]


def test_probe_commands() -> None:
    assert remote.probe_command(endpoint()) == ["podman", "--remote", "--url", "tcp://10.0.0.5:8888", "version",
                                                "--format", "json"]
    assert remote.probe_command(endpoint(engine=Engine.DOCKER)) == ["docker", "version", "--format",
                                                                     "{{json .Server}}"]
    bk = endpoint(engine=Engine.BUILDKIT)
    assert remote.probe_command(bk) == ["docker", "buildx", "inspect", "--bootstrap", remote.buildx_builder(bk)]


PODMAN_VERSION = json.dumps({"Client": {"Version": "4.3.1", "OsArch": "linux/amd64"},
                             "Server": {"APIVersion": "4.3.1", "Version": "4.3.1", "OsArch": "linux/arm64"}})
DOCKER_SERVER = json.dumps({"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}], "Version": "4.3.1",
                            "Os": "linux", "Arch": "amd64"})
BUILDX_INSPECT = """Name:          acrtask-bk-1234abcd
Driver:        remote

Nodes:
Name:             acrtask-bk-1234abcd0
Endpoint:         tcp://bk:1234
Status:           running
BuildKit version: v0.13.2
Platforms:        linux/amd64, linux/amd64/v2, linux/arm64*
"""


@pytest.mark.parametrize(("engine", "code", "output", "expected"), [
    (Engine.PODMAN, 0, PODMAN_VERSION, remote.Probe(True, "podman 4.3.1", (ARM64,))),
    (Engine.DOCKER, 0, DOCKER_SERVER, remote.Probe(True, "Podman Engine 4.3.1", (AMD64,))),
    (Engine.BUILDKIT, 0, BUILDX_INSPECT,
     remote.Probe(True, "BuildKit v0.13.2", (AMD64, Platform("linux", "amd64", "v2"), ARM64))),
    (Engine.PODMAN, 125, "Cannot connect to Podman. Please verify ...\nError: unable to connect to Podman socket: "
     "dial tcp 10.0.0.5:8888: connect: connection refused",
     remote.Probe(False, "unable to connect to Podman socket: dial tcp 10.0.0.5:8888: connect: connection refused")),
    (Engine.DOCKER, 1, "", remote.Probe(False, "exit code 1")),
    (Engine.PODMAN, 0, "not json", remote.Probe(False, "the engine answered, but not in a shape acrtask understands")),
])
def test_parse_probe(engine: Engine, code: int, output: str, expected: remote.Probe) -> None:
    assert remote.parse_probe(endpoint(engine=engine), code, output) == expected


# -- credentials -------------------------------------------------------------------------------------------


@dataclass
class Creds:
    username: str
    password: str = ""
    identity_token: str = ""


def test_the_auth_file_holds_only_the_builds_registries_privately_and_goes_away(tmp_path: Path) -> None:
    known = {"reg.example.com": Creds("alice", "pw-1"), "ghcr.io": Creds("bob", identity_token="tok-2"),
             "other.example.com": Creds("carol", "pw-3")}
    plugins = tmp_path / "docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    with private_auth(["reg.example.com", "ghcr.io", "public.example.com"], known.get, tmp_path / "docker") as auth:
        document = json.loads(auth.file.read_text())
        assert document == {"auths": {"ghcr.io": {"username": "bob", "identitytoken": "tok-2"},
                                      "reg.example.com": {"auth": "YWxpY2U6cHctMQ=="}}}  # alice:pw-1
        assert stat.S_IMODE(auth.folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(auth.file.stat().st_mode) == 0o600
        assert (auth.folder / "cli-plugins").resolve() == plugins  # buildx stays reachable
        assert sorted(auth.secrets()) == ["YWxpY2U6cHctMQ==", "tok-2"]
        assert auth.registries == ("ghcr.io", "reg.example.com")
    assert not auth.folder.exists()


def test_with_no_credentials_the_auth_file_is_empty_so_the_client_sends_none() -> None:
    with private_auth(["public.example.com"], lambda registry: None) as auth:
        assert json.loads(auth.file.read_text()) == {"auths": {}}


def test_the_auth_file_covers_bases_and_outputs(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM base.example.com/os:1 AS b\nFROM scratch\nCOPY --from=b / /\n")
    spec = build_spec(tmp_path, images=("out.example.com/app:1",))
    assert remote._registries(spec) == {"base.example.com", "out.example.com"}
