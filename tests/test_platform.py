"""Platform: parsing, containerd normalisation, strict matching, and picking a manifest from an index."""

from __future__ import annotations

from typing import Any

import pytest

from acrtask.errors import ValidationError
from acrtask.platform import (
    DEFAULT_PLATFORM,
    Platform,
    descriptor_platform,
    is_attestation,
    select_manifest,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("linux", Platform("linux", "amd64")),
    ("windows", Platform("windows", "amd64")),
    ("linux/amd64", Platform("linux", "amd64")),
    ("Linux/AMD64", Platform("linux", "amd64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/x86-64", Platform("linux", "amd64")),
    ("linux/x86_64/v1", Platform("linux", "amd64")),
    ("linux/amd64/v1", Platform("linux", "amd64")),
    ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
    ("linux/i386", Platform("linux", "386")),
    ("linux/x86", Platform("linux", "386")),
    ("windows/x86", Platform("windows", "386")),
    ("linux/386", Platform("linux", "386")),
    ("linux/arm64", Platform("linux", "arm64")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/arm64/v8", Platform("linux", "arm64")),
    ("linux/arm64/8", Platform("linux", "arm64")),
    ("linux/aarch64/v8.0", Platform("linux", "arm64")),
    ("linux/arm64/v8.2", Platform("linux", "arm64", "v8.2")),
    ("linux/arm64/9", Platform("linux", "arm64", "v9")),
    ("linux/arm", Platform("linux", "arm", "v7")),
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("linux/arm/v7", Platform("linux", "arm", "v7")),
    ("linux/arm/6", Platform("linux", "arm", "v6")),
    ("linux/arm/v5", Platform("linux", "arm", "v5")),
    ("linux/arm/8", Platform("linux", "arm", "v8")),
    ("linux/armhf", Platform("linux", "arm", "v7")),
    ("linux/armel", Platform("linux", "arm", "v6")),
    ("macos/arm64", Platform("darwin", "arm64")),
    ("freebsd/amd64", Platform("freebsd", "amd64")),
    ("linux/ppc64le", Platform("linux", "ppc64le")),
    ("linux/s390x", Platform("linux", "s390x")),
    ("linux/riscv64", Platform("linux", "riscv64")),
    ("linux/mips64le", Platform("linux", "mips64le")),
    ("linux/mips64", Platform("linux", "mips64")),
    ("linux/loong64", Platform("linux", "loong64")),
])
def test_parse_normalises(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


@pytest.mark.parametrize(("text", "message", "hint_fragment"), [
    ("linux/sparc", "'sparc' is not a valid architecture in --platform 'linux/sparc'.", "arm64"),
    ("Linux/SPARC", "'SPARC' is not a valid architecture in --platform 'Linux/SPARC'.", "ppc64le"),
    ("solaris/amd64", "'solaris' is not a valid OS in --platform 'solaris/amd64'.", "linux, windows"),
    ("unknown/unknown", "'unknown' is not a valid OS in --platform 'unknown/unknown'.", "freebsd"),
    ("linux/arm/v 7", "'v 7' is not a valid variant in --platform 'linux/arm/v 7'.", "v7"),
    ("", "Invalid --platform '': expected os[/arch[/variant]].", "linux/amd64"),
    ("linux/", "Invalid --platform 'linux/': expected os[/arch[/variant]].", "linux/amd64"),
    ("/amd64", "Invalid --platform '/amd64': expected os[/arch[/variant]].", "linux/amd64"),
    ("linux//v7", "Invalid --platform 'linux//v7': expected os[/arch[/variant]].", "linux/amd64"),
    ("linux/arm/v7/x", "Invalid --platform 'linux/arm/v7/x': expected os[/arch[/variant]].", "linux/amd64"),
    ("linux/amd64\n", "'amd64\\n' is not a valid architecture in --platform 'linux/amd64\\n'.", "amd64"),
])
def test_parse_errors(text: str, message: str, hint_fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Platform.parse(text)
    assert info.value.message == message
    assert info.value.hint and hint_fragment in info.value.hint
    assert "\n" not in str(info.value)


def test_errors_shorten_a_long_input() -> None:
    with pytest.raises(ValidationError) as info:
        Platform.parse("linux/" + "x" * 70_000)
    assert info.value.message == f"'{'x' * 60}...' is not a valid architecture in --platform 'linux/{'x' * 54}...'."


def test_parse_names_its_source() -> None:
    with pytest.raises(ValidationError) as info:
        Platform.parse("linux/sparc", source="FROM --platform")
    assert info.value.message == "'sparc' is not a valid architecture in FROM --platform 'linux/sparc'."


# containerd's platforms.Parse: one word is an OS when it knows the OS, else an architecture on the
# host's OS (linux for every builder acrtask drives), normalised as in `linux/<word>`.
@pytest.mark.parametrize(("text", "expected"), [
    ("arm64", Platform("linux", "arm64")),
    ("amd64", Platform("linux", "amd64")),
    ("aarch64", Platform("linux", "arm64")),
    ("x86_64", Platform("linux", "amd64")),
    ("X86_64", Platform("linux", "amd64")),
    ("armhf", Platform("linux", "arm", "v7")),
    ("armel", Platform("linux", "arm", "v6")),
    ("arm", Platform("linux", "arm", "v7")),
    ("i386", Platform("linux", "386")),
    ("386", Platform("linux", "386")),
    ("s390x", Platform("linux", "s390x")),
    ("ppc64le", Platform("linux", "ppc64le")),
    ("riscv64", Platform("linux", "riscv64")),
    ("darwin", Platform("darwin", "amd64")),  # a known OS stays an OS
    ("macos", Platform("darwin", "amd64")),
])
def test_parse_a_bare_architecture_as_containerd_does(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


@pytest.mark.parametrize("text", ["sparc", "plan9", "v7", "arm64 ", "*"])
def test_parse_a_word_that_is_neither_os_nor_architecture(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Platform.parse(text)
    assert "is not a valid OS or architecture" in info.value.message
    assert info.value.hint and "linux/amd64" in info.value.hint and "arm64" in info.value.hint


@pytest.mark.parametrize(("platform", "text", "data"), [
    (Platform("linux", "amd64"), "linux/amd64", {"os": "linux", "architecture": "amd64"}),
    (Platform("linux", "arm64"), "linux/arm64", {"os": "linux", "architecture": "arm64"}),
    (Platform("linux", "arm", "v7"), "linux/arm/v7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
    (Platform("windows", "386"), "windows/386", {"os": "windows", "architecture": "386"}),
])
def test_str_and_dict(platform: Platform, text: str, data: dict[str, str]) -> None:
    assert str(platform) == text
    assert Platform.parse(text) == platform
    assert platform.to_dict() == data
    assert Platform.from_dict(data) == platform


@pytest.mark.parametrize(("data", "expected"), [
    ({"os": "Linux", "architecture": "amd64"}, Platform("linux", "amd64")),  # ACR's JSON capitalises os
    ({"os": "linux", "architecture": "arm64", "variant": "v8"}, Platform("linux", "arm64")),
    ({"os": "linux", "architecture": "arm", "variant": None}, Platform("linux", "arm", "v7")),
    ({"os": "linux", "architecture": "x86"}, Platform("linux", "386")),
])
def test_from_dict_normalises(data: dict[str, Any], expected: Platform) -> None:
    assert Platform.from_dict(data) == expected


@pytest.mark.parametrize(("data", "fragment"), [
    ({"os": "linux"}, "'architecture' is missing or not a string"),
    ({"architecture": "amd64"}, "'os' is missing or not a string"),
    ({"os": "linux", "architecture": 64}, "'architecture' is missing or not a string"),
    ({"os": "linux", "architecture": "arm", "variant": 7}, "'variant' is not a string"),
    ({"os": "linux", "architecture": "sparc"}, "'sparc' is not a valid architecture in platform 'linux/sparc'"),
    ({"os": "plan9", "architecture": "amd64"}, "'plan9' is not a valid OS"),
    (["linux", "amd64"], "expected an object"),
])
def test_from_dict_errors(data: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Platform.from_dict(data)
    assert fragment in info.value.message
    assert info.value.hint


def test_default_platform() -> None:
    assert DEFAULT_PLATFORM == Platform.parse("linux/amd64")


def test_every_default_is_the_default_platform() -> None:
    from acrtask.builders.endpoint import Endpoint
    from acrtask.model import Task
    from acrtask.multistep.templates import RunValues
    from acrtask.run_record import Run, RunStatus, RunTrigger
    from tests.support.tasks import task

    stored_task = task("app", []).to_dict(reveal_secrets=True)
    del stored_task["platform"]
    run = Run("ca1", "app", RunStatus.QUEUED, RunTrigger(), "2024-01-01T00:00:00+00:00")
    stored_run = run.to_dict()
    del stored_run["platform"]
    defaults = {
        "Task": Task(name="app", step=task("app", []).step).platform,
        "stored Task": Task.from_dict(stored_task).platform,
        "Endpoint": Endpoint("build1", "tcp://10.0.0.5:8888").platforms[0],
        "stored Endpoint": Endpoint.from_dict({"name": "build1", "url": "tcp://10.0.0.5:8888"}).platforms[0],
        "{{.Run.OS}}/{{.Run.Architecture}}": Platform(RunValues(id="ca1").os, RunValues(id="ca1").architecture),
        "an OS alone": Platform.parse(DEFAULT_PLATFORM.os),
        "Run": run.platform,
        "stored Run": Run.from_dict(stored_run).platform,
    }
    assert defaults == dict.fromkeys(defaults, DEFAULT_PLATFORM)
    assert Platform.parse("arm64").os == DEFAULT_PLATFORM.os  # an architecture alone: on the default OS


@pytest.mark.parametrize(("left", "right", "expected"), [
    (Platform("linux", "arm64"), Platform("linux", "arm64", "v8"), True),
    (Platform("linux", "aarch64", "8"), Platform("linux", "arm64"), True),
    (Platform("linux", "arm"), Platform("linux", "arm", "v7"), True),
    (Platform("linux", "armhf"), Platform("linux", "arm", "7"), True),
    (Platform("Linux", "AMD64"), Platform("linux", "x86_64", "v1"), True),
    (Platform("macos", "arm64"), Platform("darwin", "arm64"), True),
    (Platform("linux", "i386"), Platform("linux", "386"), True),
    # Strict: no fallbacks between variants or architectures.
    (Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6"), False),
    (Platform("linux", "arm64"), Platform("linux", "arm64", "v8.2"), False),
    (Platform("linux", "amd64", "v2"), Platform("linux", "amd64"), False),
    (Platform("linux", "amd64"), Platform("linux", "386"), False),
    (Platform("linux", "arm64"), Platform("linux", "arm", "v8"), False),
    (Platform("linux", "amd64"), Platform("windows", "amd64"), False),
])
def test_matches(left: Platform, right: Platform, expected: bool) -> None:
    assert left.matches(right) is expected
    assert right.matches(left) is expected


def _entry(digest: str, os: str | None = "linux", arch: str | None = "amd64", variant: str | None = None,
           annotations: dict[str, str] | None = None) -> dict[str, Any]:
    platform: dict[str, Any] = {}
    if os is not None:
        platform["os"] = os
    if arch is not None:
        platform["architecture"] = arch
    if variant is not None:
        platform["variant"] = variant
    entry: dict[str, Any] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": 1234,
        "platform": platform,
    }
    if annotations:
        entry["annotations"] = annotations
    return entry


ATTESTATION = _entry("sha256:att-amd64", "unknown", "unknown", annotations={
    "vnd.docker.reference.type": "attestation-manifest",
    "vnd.docker.reference.digest": "sha256:amd64",
})
# An attestation someone labelled with a real platform: the annotation alone must exclude it.
LABELLED_ATTESTATION = _entry("sha256:att-arm64", "linux", "arm64", annotations={
    "vnd.docker.reference.type": "attestation-manifest",
})
INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        ATTESTATION,
        LABELLED_ATTESTATION,
        _entry("sha256:amd64"),
        _entry("sha256:arm64v8", arch="arm64", variant="v8"),
        _entry("sha256:armv7", arch="arm", variant="v7"),
        _entry("sha256:armv6", arch="arm", variant="v6"),
        _entry("sha256:amd64-second"),  # first match wins
        _entry("sha256:sparc", arch="sparc"),
        _entry("sha256:win", os="windows"),
    ],
}


@pytest.mark.parametrize(("wanted", "digest"), [
    ("linux/amd64", "sha256:amd64"),
    ("linux/x86_64", "sha256:amd64"),
    ("linux/arm64", "sha256:arm64v8"),  # entry says v8, wanted has no variant
    ("linux/aarch64/v8", "sha256:arm64v8"),
    ("linux/arm", "sha256:armv7"),
    ("linux/arm/v6", "sha256:armv6"),
    ("linux/armel", "sha256:armv6"),
    ("windows/amd64", "sha256:win"),
    ("linux/arm/v5", None),
    ("linux/386", None),
    ("linux/arm64/v8.2", None),
    ("darwin/arm64", None),
])
def test_select_manifest(wanted: str, digest: str | None) -> None:
    chosen = select_manifest(INDEX, Platform.parse(wanted))
    assert (chosen["digest"] if chosen else None) == digest


def test_select_manifest_entry_without_variant_matches_arm64_v8() -> None:
    index = {"manifests": [_entry("sha256:a", arch="arm64"), _entry("sha256:b", arch="arm64", variant="v8")]}
    chosen = select_manifest(index, Platform.parse("linux/arm64/v8"))
    assert chosen is not None and chosen["digest"] == "sha256:a"


def test_select_manifest_returns_the_descriptor_itself() -> None:
    chosen = select_manifest(INDEX, Platform("linux", "amd64"))
    assert chosen is INDEX["manifests"][2]


def test_select_manifest_uses_a_docker_manifest_list() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "sha256:x",
             "size": 1, "platform": {"architecture": "aarch64", "os": "Linux", "variant": "8"}},
        ],
    }
    chosen = select_manifest(index, Platform("linux", "arm64"))
    assert chosen is not None and chosen["digest"] == "sha256:x"


@pytest.mark.parametrize("index", [
    {},
    {"manifests": None},
    {"manifests": "nope"},
    {"manifests": [None, 1, "x", [], {}]},
    {"manifests": [{"platform": None}, {"platform": "linux/amd64"}, {"platform": {"os": 1}}]},
    {"manifests": [{"platform": {"os": "linux", "architecture": ["amd64"]}}]},
    {"manifests": [{"platform": {"os": "linux", "architecture": "amd64", "variant": 1}}]},
    {"manifests": [{"platform": {"os": "linux", "architecture": "amd64"}, "annotations": "x"}]},
    {"manifests": [ATTESTATION, LABELLED_ATTESTATION]},
    {"schemaVersion": 2, "config": {}, "layers": []},  # a single-platform manifest, not an index
])
def test_select_manifest_tolerates_odd_registry_data(index: dict[str, Any]) -> None:
    # Never raises; the one entry with string annotations still matches.
    chosen = select_manifest(index, Platform("linux", "amd64"))
    if chosen is not None:
        assert chosen["platform"] == {"os": "linux", "architecture": "amd64"}


def test_is_attestation() -> None:
    assert is_attestation(ATTESTATION)
    assert is_attestation(LABELLED_ATTESTATION)
    assert is_attestation({"platform": {"os": "unknown", "architecture": "unknown"}})
    assert not is_attestation(_entry("sha256:amd64"))
    assert not is_attestation({})


@pytest.mark.parametrize(("descriptor", "expected"), [
    (_entry("d", "Linux", "aarch64", "v8"), Platform("linux", "arm64")),
    (_entry("d", "linux", "sparc"), Platform("linux", "sparc")),  # unknown arch: kept, matches nothing
    (_entry("d", "linux", "arm"), Platform("linux", "arm", "v7")),
    (ATTESTATION, None),
    (_entry("d", None, "amd64"), None),
    ({"digest": "d"}, None),
])
def test_descriptor_platform(descriptor: dict[str, Any], expected: Platform | None) -> None:
    assert descriptor_platform(descriptor) == expected
