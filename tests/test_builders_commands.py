"""Argument lists of buildah, podman and docker builds (pure tables), and the environment buildah gets.

docker and podman cannot run here: these tests check what would be run, and nothing pretends to build.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from acrtask.builders import buildah, docker, podman
from acrtask.builders.base import BuildSpec, LogTail, is_insecure, pull_insecure
from tests.support.builds import build_spec

CTX = Path("/src/app")
SECRET = "p@ss w0rd;$(rm -rf /)"
WORK = Path("/tmp/work")


def spec(**overrides: object) -> BuildSpec:
    fields: dict = dict(
        context_dir=CTX,
        images=("myreg.example.com/app:1", "localhost:5000/app:1"),
        build_args={"VERSION": "1.2 beta"},
        platform="linux/arm/v7",
        annotations={"org.opencontainers.image.base.name": "docker.io/library/alpine:3.19"},
    )
    fields.update(overrides)
    return build_spec(**fields)


# -- buildah / podman ----------------------------------------------------------------------------------------


def test_buildah_build_then_one_push_per_image() -> None:
    cmds = buildah.command(spec(labels={"team": "web"}), WORK, pull_insecure=False)
    assert cmds == [
        ["buildah", "bud", "--format", "oci", "--platform", "linux/arm/v7", "-f", "/src/app/Dockerfile",
         "--layers", "--force-rm",
         "-t", "myreg.example.com/app:1", "-t", "localhost:5000/app:1",
         "--build-arg", "VERSION=1.2 beta",
         "--annotation", "org.opencontainers.image.base.name=docker.io/library/alpine:3.19",
         "--label", "team=web",
         "/src/app"],
        ["buildah", "push", "--format", "oci", "--digestfile", "/tmp/work/digest-0",
         "myreg.example.com/app:1", "docker://myreg.example.com/app:1"],
        # localhost is loopback: no TLS verification, as Docker does for 127.0.0.0/8
        ["buildah", "push", "--format", "oci", "--digestfile", "/tmp/work/digest-1", "--tls-verify=false",
         "localhost:5000/app:1", "docker://localhost:5000/app:1"],
    ]


@pytest.mark.parametrize(
    ("overrides", "pull", "present", "absent"),
    [
        ({"secret_args": {"TOKEN": SECRET}}, False, ["--omit-history", "--build-arg TOKEN"],
         ["--layers", "--force-rm"]),
        ({"no_cache": True}, False, ["--no-cache", "--layers"], ["--omit-history"]),
        ({"target": "final"}, False, ["--target final"], []),
        ({}, True, ["--tls-verify=false"], []),
        ({}, False, [], ["--tls-verify=false", "--no-cache", "--target"]),
    ],
)
def test_buildah_build_flags(overrides: dict, pull: bool, present: list[str], absent: list[str]) -> None:
    bud = " ".join(buildah.command(spec(**overrides), WORK, pull_insecure=pull)[0])
    for flag in present:
        assert flag in bud
    for flag in absent:
        assert flag not in bud


def test_secret_values_never_appear_in_any_argv() -> None:
    s = spec(secret_args={"TOKEN": SECRET, "NPM_TOKEN": "npm_abcdef"})
    all_cmds = [
        *buildah.command(s, WORK, pull_insecure=True),
        *podman.command(s, WORK, pull_insecure=True),
        *docker.command(s, WORK / "m.json", buildx=True),
        *docker.command(s, WORK / "m.json", buildx=False),
    ]
    for argv in all_cmds:
        for arg in argv:
            assert SECRET not in arg and "npm_abcdef" not in arg
    bud = " ".join(all_cmds[0])
    assert "--build-arg VERSION=1.2 beta --build-arg TOKEN --build-arg NPM_TOKEN --annotation" in bud


def test_no_push_means_only_the_build() -> None:
    assert len(buildah.command(spec(push=False), WORK, pull_insecure=False)) == 1
    assert len(podman.command(spec(push=False), WORK, pull_insecure=False)) == 1


def test_listed_insecure_registry_push_skips_tls_verification() -> None:
    s = spec(images=("reg.internal:5000/app:1",), insecure_registries=frozenset({"reg.internal:5000"}))
    assert "--tls-verify=false" in buildah.command(s, WORK, pull_insecure=False)[1]
    assert "--tls-verify=false" not in buildah.command(spec(images=("reg.internal:5000/app:1",)), WORK,
                                                       pull_insecure=False)[1]


def test_podman_uses_the_same_flags_with_its_build_verb_and_pulls_newer_bases() -> None:
    s = spec(secret_args={"TOKEN": SECRET})
    build, *pushes = podman.command(s, WORK, pull_insecure=True)
    buildah_build, *buildah_pushes = buildah.command(s, WORK, pull_insecure=True)
    # podman's default pull policy is "missing": a moved base tag must be pulled again. Its --layers is on
    # by default: with secrets it is turned off, or a cached step would bring the history back.
    assert buildah_build[8] == "--omit-history"
    assert build == ["podman", "build", *buildah_build[2:8], "--pull=newer", "--omit-history", "--layers=false",
                     *buildah_build[9:]]
    assert pushes == [["podman", *argv[1:]] for argv in buildah_pushes]


# -- docker ------------------------------------------------------------------------------------------------


def test_docker_buildx_pushes_with_metadata_file_and_manifest_annotations() -> None:
    s = spec(images=("myreg.example.com/app:1", "myreg.example.com/app:run-1"), no_cache=True, target="final",
             secret_args={"TOKEN": SECRET})
    assert docker.command(s, Path("/tmp/m.json"), buildx=True) == [
        ["docker", "buildx", "build", "--platform", "linux/arm/v7", "-f", "/src/app/Dockerfile", "--pull", "--no-cache",
         "--target", "final", "-t", "myreg.example.com/app:1", "-t", "myreg.example.com/app:run-1",
         "--build-arg", "VERSION=1.2 beta", "--build-arg", "TOKEN", "--provenance=false",
         "--annotation", "manifest:org.opencontainers.image.base.name=docker.io/library/alpine:3.19",
         "--push", "--metadata-file", "/tmp/m.json", "/src/app"],
    ]


def test_docker_buildx_to_an_insecure_registry_uses_an_image_output() -> None:
    argv = docker.command(spec(), Path("/tmp/m.json"), buildx=True)[0]  # localhost:5000 is loopback
    assert "--push" not in argv
    assert argv[argv.index("--output") + 1] == "type=image,push=true,registry.insecure=true"


def test_docker_buildx_without_push_loads_and_skips_annotations() -> None:
    argv = docker.command(spec(push=False), Path("/tmp/m.json"), buildx=True)[0]
    assert "--load" in argv and "--annotation" not in argv and "--metadata-file" not in argv


def test_docker_without_buildx_builds_then_pushes_each_tag() -> None:
    assert docker.command(spec(labels={"a": "b"}), Path("/tmp/m.json"), buildx=False) == [
        ["docker", "build", "--platform", "linux/arm/v7", "-f", "/src/app/Dockerfile", "--pull",
         "-t", "myreg.example.com/app:1", "-t", "localhost:5000/app:1", "--build-arg", "VERSION=1.2 beta",
         "--label", "a=b", "/src/app"],
        ["docker", "push", "myreg.example.com/app:1"],
        ["docker", "push", "localhost:5000/app:1"],
    ]


def test_docker_digests_from_metadata_file_and_push_output(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    meta = tmp_path / "m.json"
    meta.write_text(f'{{"containerimage.digest": "{digest}", "image.name": "x"}}')
    assert docker.metadata_digest(meta) == digest
    meta.write_text("{}")
    assert docker.metadata_digest(meta) is None
    assert docker.metadata_digest(tmp_path / "missing.json") is None
    lines = ["The push refers to repository [r/app]", "5f70bf18a086: Pushed", f"1: digest: {digest} size: 527"]
    assert docker.push_output_digest(lines) == digest
    assert docker.push_output_digest(["Pushed"]) is None


# -- registries: insecure and loopback, what the build pulls ------------------------------------------------


@pytest.mark.parametrize(
    ("image", "listed", "expected"),
    [
        ("localhost:5000/a:1", set(), True),
        ("127.0.0.1:5000/a:1", set(), True),
        ("[::1]:5000/a:1", set(), True),
        ("reg.internal:5000/a:1", {"reg.internal:5000"}, True),
        ("REG.internal:5000/a:1".lower(), {"REG.INTERNAL:5000"}, True),
        ("reg.internal:5000/a:1", {"reg.internal"}, False),  # host:port, as listed
        ("myreg.azurecr.io/a:1", {"reg.internal:5000"}, False),
        ("alpine:3.19", set(), False),
    ],
)
def test_is_insecure(image: str, listed: set[str], expected: bool) -> None:
    assert is_insecure(image, frozenset(listed)) is expected


@pytest.mark.parametrize(
    ("dockerfile", "listed", "expected"),
    [
        ("FROM reg.internal:5000/base:1\n", {"reg.internal:5000"}, True),
        ("FROM alpine:3.19\n", {"reg.internal:5000"}, False),  # only the push target is insecure
        ("FROM 127.0.0.1:5000/base:1\n", set(), True),
        ("FROM alpine AS a\nFROM scratch\nCOPY --from=reg.internal:5000/tools:1 /t /t\n", {"reg.internal:5000"}, True),
        ("ARG REG=reg.internal:5000\nFROM $REG/base:1\n", {"reg.internal:5000"}, True),
        ("FROM reg.internal:5000/base-$TARGETARCH\n", {"reg.internal:5000"}, True),  # unscannable: any listed
        ("FROM reg.internal:5000/base-$TARGETARCH\n", set(), False),
    ],
)
def test_pull_insecure_follows_the_dockerfiles_bases(tmp_path: Path, dockerfile: str, listed: set[str],
                                                     expected: bool) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile)
    s = spec(context_dir=tmp_path, dockerfile=path, insecure_registries=frozenset(listed))
    assert pull_insecure(s) is expected


def test_pull_insecure_scans_with_plain_args_only(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("ARG REG\nFROM $REG/base:1\n")
    s = spec(context_dir=tmp_path, dockerfile=path, build_args={"REG": "reg.internal:5000"},
             insecure_registries=frozenset({"reg.internal:5000"}))
    assert pull_insecure(s) is True
    assert pull_insecure(dataclasses.replace(s, dockerfile=tmp_path / "missing")) is True  # unreadable: any listed


# -- buildah's environment -----------------------------------------------------------------------------------


def test_buildah_env_defaults_to_vfs_and_chroot(tmp_path: Path) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ngraphroot = "/x"\n')  # names no driver
    env = buildah.default_env({"PATH": "/bin", "CONTAINERS_STORAGE_CONF": str(conf)})
    assert env["STORAGE_DRIVER"] == "vfs" and env["BUILDAH_ISOLATION"] == "chroot"
    assert env["PATH"] == "/bin"


def test_buildah_env_honours_the_callers_choices(tmp_path: Path) -> None:
    explicit = buildah.default_env({"STORAGE_DRIVER": "overlay", "BUILDAH_ISOLATION": "oci"})
    assert (explicit["STORAGE_DRIVER"], explicit["BUILDAH_ISOLATION"]) == ("overlay", "oci")
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\n')
    from_conf = buildah.default_env({"CONTAINERS_STORAGE_CONF": str(conf)})
    assert "STORAGE_DRIVER" not in from_conf  # storage.conf chose the driver
    assert from_conf["BUILDAH_ISOLATION"] == "chroot"


def test_buildah_environment_carries_the_secrets() -> None:
    b = buildah.Buildah(env={"PATH": "/bin", "STORAGE_DRIVER": "vfs"})
    env = b.environment(spec(secret_args={"TOKEN": SECRET}))
    assert env["TOKEN"] == SECRET and env["PATH"] == "/bin"
    assert "TOKEN" not in os.environ or os.environ["TOKEN"] != SECRET


def test_read_digest(tmp_path: Path) -> None:
    path = tmp_path / "d"
    path.write_text("sha256:" + "0f" * 32 + "\n")
    assert buildah.read_digest(path, "r/a:1", "buildah") == "sha256:" + "0f" * 32
    path.write_text("garbage")
    with pytest.raises(Exception, match="did not report its digest"):
        buildah.read_digest(path, "r/a:1", "buildah")


# -- the error line of a failed step ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["STEP 2/2: RUN false", 'Error: building at STEP "RUN false": exit status 1'],
         'building at STEP "RUN false": exit status 1'),
        (["#5 ERROR: process did not complete", "ERROR: failed to solve: exit code: 1", ""],
         "failed to solve: exit code: 1"),
        (['time="x" level=error msg="pushing: unauthorized"', "done"], "pushing: unauthorized"),
        (["some output", "last words", "  "], "last words"),
        ([], "no output"),
    ],
)
def test_log_tail_error_line(lines: list[str], expected: str) -> None:
    seen: list[str] = []
    tail = LogTail(seen.append)
    tail.note("$ buildah bud --error-looking-flag")
    for line in lines:
        tail(line)
    assert tail.error_line() == expected
    assert seen[1:] == lines


# -- what a build inherits of acrtask's environment ---------------------------------------------------------


def test_builds_get_what_they_need_and_none_of_acrtasks_secrets() -> None:
    from acrtask.builders.base import builder_env, child_env
    from acrtask.process import RUN_TAG

    parent = {
        "PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C", "TMPDIR": "/var/tmp",
        "HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost", "SSL_CERT_FILE": "/ca.pem",
        "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot", "CONTAINERS_REGISTRIES_CONF": "/r.conf",
        "REGISTRY_AUTH_FILE": "/auth.json", "DOCKER_CONFIG": "/docker", "DOCKER_HOST": "unix:///d.sock",
        "XDG_RUNTIME_DIR": "/run/user/0", RUN_TAG: "/home/runs:ca7",
        # acrtask's own settings and secrets, and passwords other tools keep in the environment:
        "ACRTASK_WEBHOOK_TOKEN": "hook-s3cret", "ACRTASK_HOME": "/home", "ACRTASK_RUN_ARGS": "[]",
        "DOCKER_AUTH_CONFIG": '{"auths": {}}', "DOCKER_PASSWORD": "pw", "REGISTRY_PASSWORD": "pw",
        "GITHUB_TOKEN": "ghp_x", "AWS_SECRET_ACCESS_KEY": "k", "BUILDKIT_TOKEN": "t", "EDITOR": "vi",
    }
    kept = builder_env(parent)
    assert set(kept) == {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "HTTPS_PROXY", "no_proxy", "SSL_CERT_FILE",
                         "STORAGE_DRIVER", "BUILDAH_ISOLATION", "CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE",
                         "DOCKER_CONFIG", "DOCKER_HOST", "XDG_RUNTIME_DIR", RUN_TAG}
    with_secret = child_env(parent, spec(secret_args={"NPM_TOKEN": SECRET}))
    assert with_secret == {**kept, "NPM_TOKEN": SECRET}  # the secret build args it is given, by name

