"""ImageRef: Docker's reference grammar and normalisation, by table and by property."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acrtask.errors import ValidationError
from acrtask.reference import ImageRef, host_of, parse_registry

D256 = "sha256:" + "0123456789abcdef" * 4
D512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(("text", "expected"), [
    ("alpine", ImageRef("docker.io", "library/alpine", "latest", None)),
    ("alpine:3.19", ImageRef("docker.io", "library/alpine", "3.19", None)),
    ("library/alpine", ImageRef("docker.io", "library/alpine", "latest", None)),
    ("docker.io/alpine", ImageRef("docker.io", "library/alpine", "latest", None)),
    ("docker.io/library/alpine", ImageRef("docker.io", "library/alpine", "latest", None)),
    ("index.docker.io/library/alpine", ImageRef("docker.io", "library/alpine", "latest", None)),
    ("index.docker.io/alpine", ImageRef("docker.io", "library/alpine", "latest", None)),
    ("bitnami/redis:7", ImageRef("docker.io", "bitnami/redis", "7", None)),
    ("docker.io/a/b/c", ImageRef("docker.io", "a/b/c", "latest", None)),
    ("localhost/app", ImageRef("localhost", "app", "latest", None)),
    ("localhost:5000/a/b:c", ImageRef("localhost:5000", "a/b", "c", None)),
    ("ghcr.io/org/app:1", ImageRef("ghcr.io", "org/app", "1", None)),
    ("[::1]:5000/x", ImageRef("[::1]:5000", "x", "latest", None)),
    ("127.0.0.1:5000/x:V1_beta-2.0", ImageRef("127.0.0.1:5000", "x", "V1_beta-2.0", None)),
    ("MyHost/app", ImageRef("MyHost", "app", "latest", None)),  # uppercase first component → domain
    ("myreg.azurecr.io/team/a__x.y-z--w", ImageRef("myreg.azurecr.io", "team/a__x.y-z--w", "latest", None)),
    (f"alpine@{D256}", ImageRef("docker.io", "library/alpine", None, D256)),
    (f"alpine:3.19@{D256}", ImageRef("docker.io", "library/alpine", "3.19", D256)),
    (f"ghcr.io/org/app@{D512}", ImageRef("ghcr.io", "org/app", None, D512)),
    # Docker reads these as docker.io images: no '/' means no registry.
    ("localhost", ImageRef("docker.io", "library/localhost", "latest", None)),
    ("localhost:5000", ImageRef("docker.io", "library/localhost", "5000", None)),
    ("registry.example.com", ImageRef("docker.io", "library/registry.example.com", "latest", None)),
])
def test_parse_normalises_like_docker(text: str, expected: ImageRef) -> None:
    assert ImageRef.parse(text) == expected


@pytest.mark.parametrize(("text", "default", "expected"), [
    ("hello:v1", "myreg", "myreg/hello:v1"),
    ("hello:v1", "myreg.azurecr.io", "myreg.azurecr.io/hello:v1"),
    ("team/hello", "localhost:5000", "localhost:5000/team/hello:latest"),
    ("hello", "[::1]:5000", "[::1]:5000/hello:latest"),
    # A named registry wins over the default.
    ("ghcr.io/org/app:1", "localhost:5000", "ghcr.io/org/app:1"),
    ("localhost/app", "myreg.azurecr.io", "localhost/app:latest"),
    ("docker.io/alpine", "localhost:5000", "docker.io/library/alpine:latest"),
    ("MyHost/app", "localhost:5000", "MyHost/app:latest"),
    # A default that is Docker Hub behaves as no default.
    ("alpine", "docker.io", "docker.io/library/alpine:latest"),
    ("alpine", "index.docker.io", "docker.io/library/alpine:latest"),
])
def test_default_registry(text: str, default: str, expected: str) -> None:
    assert str(ImageRef.parse(text, default_registry=default)) == expected


@pytest.mark.parametrize("default", ["", "https://myreg.azurecr.io", "my_reg", "myreg/", "host:port"])
def test_bad_default_registry(default: str) -> None:
    with pytest.raises(ValidationError) as info:
        ImageRef.parse("hello:v1", default_registry=default)
    assert f"'{default}'" in info.value.message
    assert info.value.hint


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "the reference is empty"),
    ("Foo/Bar:1", "repository name must be lowercase"),
    ("Alpine", "repository name must be lowercase"),
    ("team/App", "repository name must be lowercase"),
    ("app:", "the tag after ':' is empty"),
    ("ghcr.io/org/app:", "the tag after ':' is empty"),
    ("0123456789abcdef" * 4, "image ID"),
    ("a b", "repository name 'a b' is not valid"),
    ("app!", "repository name 'app!' is not valid"),
    ("-app", "repository name '-app' is not valid"),
    ("app-", "repository name 'app-' is not valid"),
    ("a//b", "is not valid"),
    ("/app", "is not valid"),
    ("ghcr.io/", "the repository name is empty"),
    (":tag", "the repository name is empty"),
    (f"@{D256}", "the repository name is empty"),
    ("alpine\n", "'alpine\\n'"),  # shown escaped, on one line
    ("app:.x", "tag '.x' is not valid"),
    ("app:-x", "tag '-x' is not valid"),
    ("app:a:b", "tag 'a:b' is not valid"),
    ("app:" + "t" * 129, "is not valid"),
    ("app@", "the digest after '@' is empty"),
    ("app@sha256:abc", "64 lowercase hex"),
    ("app@sha256:" + "A" * 64, "64 lowercase hex"),
    ("app@sha512:" + "a" * 64, "128 lowercase hex"),
    ("app@SHA256:" + "a" * 64, "algorithm 'SHA256' is not valid"),
    ("app@md5:" + "a" * 32, "algorithm 'md5' is not supported"),
    ("app@" + "a" * 64, "is not of the form"),
    ("foo:bar/baz", "registry 'foo:bar' is not a valid host[:port]"),
    ("-bad.io/app", "registry '-bad.io' is not a valid host[:port]"),
    ("a_b.c/foo", "registry 'a_b.c' is not a valid host[:port]"),
    ("x" * 248, "is 256 characters long; the maximum is 255"),  # library/ counts, as in Docker
    ("ghcr.io/" + "x" * 256, "is 256 characters long"),
])
def test_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        ImageRef.parse(text)
    error = info.value
    assert fragment in error.message
    assert error.message.startswith("Invalid image reference '")
    assert error.message.endswith(".")
    assert "\n" not in str(error)
    assert error.hint
    assert error.exit_code == 2


def test_error_message_format() -> None:
    with pytest.raises(ValidationError) as info:
        ImageRef.parse("Foo/Bar:1")
    assert info.value.message == "Invalid image reference 'Foo/Bar:1': repository name must be lowercase."
    assert info.value.hint == "Use a reference such as registry.example.com/team/app:1.0."


def test_path_length_limit_is_inclusive() -> None:
    assert ImageRef.parse("ghcr.io/" + "x" * 255).repository == "x" * 255


@pytest.mark.parametrize(("text", "full", "name", "api_host"), [
    ("alpine:3.19", "docker.io/library/alpine:3.19", "docker.io/library/alpine", "registry-1.docker.io"),
    ("bitnami/redis", "docker.io/bitnami/redis:latest", "docker.io/bitnami/redis", "registry-1.docker.io"),
    ("library/a/b", "docker.io/library/a/b:latest", "docker.io/library/a/b", "registry-1.docker.io"),
    (f"localhost:5000/app:v1@{D256}", f"localhost:5000/app:v1@{D256}", "localhost:5000/app", "localhost:5000"),
    (f"alpine@{D256}", f"docker.io/library/alpine@{D256}", "docker.io/library/alpine", "registry-1.docker.io"),
    ("ghcr.io/org/app:1", "ghcr.io/org/app:1", "ghcr.io/org/app", "ghcr.io"),
])
def test_renderings(text: str, full: str, name: str, api_host: str) -> None:
    ref = ImageRef.parse(text)
    assert str(ref) == full
    assert ref.name == name
    assert ref.api_host == api_host


def test_a_docker_hub_path_that_looks_like_a_registry_stays_on_docker_hub_when_named() -> None:
    assert ImageRef.parse("docker.io/a.b/c:1") == ImageRef("docker.io", "a.b/c", "1", None)


@pytest.mark.parametrize(("text", "loopback"), [
    ("localhost/app", True),
    ("localhost:5000/app", True),
    ("registry.localhost:5000/app", True),
    ("127.0.0.1/app", True),
    ("127.1.2.3:5000/app", True),
    ("[::1]:5000/app", True),
    ("[::1]/app", True),
    ("alpine", False),
    ("128.0.0.1/app", False),
    ("10.0.0.1:5000/app", False),
    ("[::2]:5000/app", False),
    ("localhost.example.com/app", False),
    ("myreg.azurecr.io/app", False),
])
def test_is_loopback(text: str, loopback: bool) -> None:
    assert ImageRef.parse(text).is_loopback is loopback


@pytest.mark.parametrize(("registry", "host"), [
    ("localhost:5000", "localhost"), ("localhost", "localhost"), ("[::1]:5000", "[::1]"), ("[::1]", "[::1]"),
    ("myreg.azurecr.io", "myreg.azurecr.io"), ("10.0.0.1:443", "10.0.0.1"),
])
def test_host_of_drops_only_the_port(registry: str, host: str) -> None:
    assert host_of(registry) == host


@pytest.mark.parametrize(("text", "registry"), [
    ("localhost:5000", "localhost:5000"), ("[::1]:5000", "[::1]:5000"), ("index.docker.io", "docker.io"),
    ("myhost", "myhost"),  # a registry name alone; whether a reference can name it is names_registry's question
])
def test_parse_registry_spells_a_registry_as_references_do(text: str, registry: str) -> None:
    assert parse_registry(text) == registry
    assert ImageRef.parse("app", default_registry=text).registry == registry


@pytest.mark.parametrize("text", ["", "https://reg.io", "reg.io/team", "reg.io:", "reg io", "[::1"])
def test_parse_registry_refuses_what_is_not_a_host_and_port(text: str) -> None:
    with pytest.raises(ValidationError, match="is not a valid host"):
        parse_registry(text)


def test_is_pinned() -> None:
    assert not ImageRef.parse("ghcr.io/org/app:1").is_pinned
    assert ImageRef.parse(f"ghcr.io/org/app:1@{D256}").is_pinned


@pytest.mark.parametrize("digest", [D256, D512, "sha384:" + "ab" * 48])
def test_digests_of_each_supported_algorithm_are_taken(digest: str) -> None:
    assert ImageRef.parse(f"ghcr.io/org/app@{digest}").digest == digest


@pytest.mark.parametrize("digest", [
    "", "sha256", "sha256:", ":abc", "sha256:" + "a" * 63, "sha256:" + "a" * 65, "sha256:" + "g" * 64,
    "sha256:" + "A" * 64, "SHA256:" + "a" * 64, "sha512:" + "a" * 64, "blake9:" + "a" * 64,
    "sha256:" + "a" * 64 + "\n",
])
def test_bad_digests_are_refused_on_one_line(digest: str) -> None:
    with pytest.raises(ValidationError) as info:
        ImageRef.parse(f"ghcr.io/org/app@{digest}")
    assert info.value.message.startswith("Invalid image reference '")
    assert "\n" not in str(info.value)
    assert info.value.hint


# Properties: generated valid references survive str().

_LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_MIXED_ALNUM = _LOWER_ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_alnum = st.text(_LOWER_ALNUM, min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--"])
_path_component = st.builds(
    lambda first, rest: first + "".join(sep + part for sep, part in rest),
    _alnum, st.lists(st.tuples(_separator, _alnum), max_size=2),
)
_path = st.lists(_path_component, min_size=1, max_size=4).map("/".join)
# Hyphens only inside a label, never at its ends.
_label = st.lists(st.text(_MIXED_ALNUM, min_size=1, max_size=5), min_size=1, max_size=3).map("-".join)
_port = st.integers(min_value=1, max_value=65535).map(lambda port: f":{port}")
_ipv4 = st.ip_addresses(v=4).map(str)
# The grammar's IPv6 form has no dots, so IPv4-mapped spellings (::ffff:1.2.3.4) are left out.
_ipv6 = st.ip_addresses(v=6).map(lambda address: f"[{address}]").filter(lambda host: "." not in host)
_dotted = st.lists(_label, min_size=2, max_size=4).map(".".join)
_registry = st.one_of(
    _dotted,
    st.tuples(_dotted, _port).map("".join),
    st.just("localhost"),
    st.tuples(st.just("localhost"), _port).map("".join),
    st.tuples(_ipv4, _port).map("".join),
    st.tuples(_ipv6, _port).map("".join),
    _ipv6,
    _label.filter(lambda label: label.lower() != label),  # uppercase alone makes a domain
).filter(lambda registry: registry.lower() not in ("docker.io", "index.docker.io"))
_docker_hub_path = st.one_of(
    _path_component.map(lambda name: f"library/{name}"),
    st.tuples(_path_component, _path).map("/".join),
)
_tag = st.tuples(st.sampled_from(_MIXED_ALNUM + "_"), st.text(_MIXED_ALNUM + "_.-", max_size=20)).map("".join)
_digest = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda raw: f"sha256:{raw.hex()}"),
    st.binary(min_size=64, max_size=64).map(lambda raw: f"sha512:{raw.hex()}"),
)
_suffixes = st.one_of(
    st.tuples(_tag, st.none()),
    st.tuples(st.none(), _digest),
    st.tuples(_tag, _digest),
)


@st.composite
def image_refs(draw: st.DrawFn) -> ImageRef:
    if draw(st.booleans()):
        registry, repository = "docker.io", draw(_docker_hub_path)
    else:
        registry, repository = draw(_registry), draw(_path)
    tag, digest = draw(_suffixes)
    return ImageRef(registry, repository, tag, digest)


@given(image_refs())
def test_str_round_trips(ref: ImageRef) -> None:
    assert ImageRef.parse(str(ref)) == ref


@given(image_refs())
def test_name_and_api_host(ref: ImageRef) -> None:
    assert str(ref).startswith(ref.name)
    assert (ref.api_host == "registry-1.docker.io") == (ref.registry == "docker.io")


@given(image_refs(), _registry)
def test_default_registry_applies_only_without_a_named_registry(ref: ImageRef, default: str) -> None:
    # A reference that names its registry ignores the default.
    if ref.registry != "docker.io":
        assert ImageRef.parse(str(ref), default_registry=default) == ref
    # A bare path whose first part is not a domain lands under the default, as typed (no library/).
    first, slash, _ = ref.repository.partition("/")
    if not slash or ("." not in first and "localhost" != first):
        placed = ImageRef.parse(ref.repository + str(ref)[len(ref.name):], default_registry=default)
        assert placed == ImageRef(default, ref.repository, ref.tag, ref.digest)


# Mostly reference characters, so the fuzzing reaches past the first check.
@given(st.text(st.sampled_from("aAz09./:_-@[]") | st.characters(), max_size=30))
def test_parse_never_fails_unexpectedly(text: str) -> None:
    try:
        ref = ImageRef.parse(text)
    except ValidationError as error:
        assert "\n" not in str(error)
        return
    assert ImageRef.parse(str(ref)) == ref


@given(st.ip_addresses(v=4))
def test_loopback_matches_ipaddress(address: ipaddress.IPv4Address) -> None:
    assert ImageRef.parse(f"{address}/app").is_loopback is address.is_loopback
