"""Auth: challenge parsing, tokens (expiry, reuse, renewal), Basic, Docker config and credential helpers,
and secrets kept out of errors and reprs."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acrtask.errors import RegistryError
from acrtask.registry import Credentials, DockerCredentials
from acrtask.registry.auth import Challenge, parse_challenges, parse_token
from acrtask.registry.credentials import DOCKER_HUB_KEY, config_key
from tests.support.fake_registry import ALICE, REALM_HOST, FakeNet, ref, resolve_with, run

# -- WWW-Authenticate ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:samalba/my-app:pull,push"',
     [Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                           "scope": "repository:samalba/my-app:pull,push"})]),
    ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ('BEARER Realm = "https://a/t" , Service=reg', [Challenge("bearer", {"realm": "https://a/t", "service": "reg"})]),
    ('Bearer realm="a\\"b,c", error="insufficient_scope"',
     [Challenge("bearer", {"realm": 'a"b,c', "error": "insufficient_scope"})]),
    ('Basic realm="x", Bearer realm="https://t/token",scope="repository:a:pull"',
     [Challenge("basic", {"realm": "x"}), Challenge("bearer", {"realm": "https://t/token",
                                                               "scope": "repository:a:pull"})]),
    ("Negotiate abc123==, Basic realm=r", [Challenge("negotiate", token68="abc123=="),
                                            Challenge("basic", {"realm": "r"})]),
    ("", []),
])
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


# RFC 7235: challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]; a list of challenges, comma-separated.
@pytest.mark.parametrize(("header", "expected"), [
    # One challenge with a token68 credential, not two challenges.
    ("Token abc", [Challenge("token", token68="abc")]),
    ("Token abc, Bearer realm=\"https://t/token\"",
     [Challenge("token", token68="abc"), Challenge("bearer", {"realm": "https://t/token"})]),
    # token68 may end in '=' padding, and holds '/', '+', '~', '.', '-', '_'.
    ("Negotiate YWJj/+~._-d=", [Challenge("negotiate", token68="YWJj/+~._-d=")]),
    ("Negotiate YWI=  ,  Basic realm=r", [Challenge("negotiate", token68="YWI="), Challenge("basic", {"realm": "r"})]),
    ("Negotiate a==,Negotiate b", [Challenge("negotiate", token68="a=="), Challenge("negotiate", token68="b")]),
    # RFC 7235 section 4.1's example: quoted strings with commas and escaped quotes, two challenges.
    ('Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
     [Challenge("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
      Challenge("basic", {"realm": "simple"})]),
    ('Bearer realm="https://a/t,x",scope="repository:a/b:pull,push", Basic realm="a, b=c"',
     [Challenge("bearer", {"realm": "https://a/t,x", "scope": "repository:a/b:pull,push"}),
      Challenge("basic", {"realm": "a, b=c"})]),
    # A parameter with spaces around '=' (BWS) is a parameter, not a token68.
    ("Bearer realm = x", [Challenge("bearer", {"realm": "x"})]),
    ("Bearer, Basic", [Challenge("bearer"), Challenge("basic")]),
    ("Bearer", [Challenge("bearer")]),
])
def test_parse_challenges_follows_rfc_7235(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@given(scheme=st.sampled_from(["Bearer", "basic", "Digest"]), params=st.dictionaries(_names, _values, max_size=5))
def test_parse_challenges_reads_back_any_quoted_parameters(scheme: str, params: dict[str, str]) -> None:
    quoted = ", ".join('{}="{}"'.format(k, v.replace("\\", "\\\\").replace('"', '\\"')) for k, v in params.items())
    header = f"{scheme} {quoted}" if quoted else scheme
    assert parse_challenges(header) == [Challenge(scheme.lower(), params)]


# -- token answers -------------------------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("body", "value", "expires"), [
    ({"token": "tok-1", "expires_in": 300}, "tok-1", NOW + 300),
    ({"access_token": "acc-1"}, "acc-1", NOW + 60),  # ACR's shape: no token, no expires_in
    ({"token": "tok-1", "access_token": "acc-1", "expires_in": 10}, "tok-1", NOW + 60),  # minimum 60 s
    ({"token": "tok-1", "expires_in": 300, "issued_at": "2023-11-14T22:11:40Z"}, "tok-1", NOW - 100 + 300),
    ({"token": "tok-1", "expires_in": 300, "issued_at": "2030-01-01T00:00:00.123456789Z"}, "tok-1", NOW + 300),
    ({"token": "tok-1", "expires_in": 300, "issued_at": "2001-01-01T00:00:00Z"}, "tok-1", NOW + 300),  # skew
    ({"token": "tok-1", "expires_in": "300"}, "tok-1", NOW + 60),
])
def test_parse_token(body: dict, value: str, expires: float) -> None:
    token = parse_token(json.dumps(body).encode(), NOW, "x")
    assert (token.value, token.expires_at) == (value, expires)
    assert value not in repr(token)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"expires_in": 60}', b'{"token": ""}'])
def test_parse_token_rejects_answers_without_a_token(body: bytes) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_token(body, NOW, "x")
    assert caught.value.code == "TOKEN_INVALID"


# -- token flow ----------------------------------------------------------------------------------------------


def test_token_is_renewed_shortly_before_it_expires() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    registry.push("app", "1")
    net.tokens.expires_in = 60

    async def scenario() -> None:
        async with net.client() as client:
            await client.resolve(ref("reg.example/app:1"))
            assert net.token_requests() == 1
            net.clock.now += 49
            await client.resolve(ref("reg.example/app:1"))
            assert net.token_requests() == 1  # still valid for more than the 10 s margin
            net.clock.now += 2
            before = len(net.log)
            await client.resolve(ref("reg.example/app:1"))
            assert net.token_requests() == 2
            assert len(net.log) - before == 2  # renewed before sending: token + HEAD, no 401

    run(scenario())


def test_a_revoked_token_is_replaced_once() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    registry.push("app", "1")

    async def scenario() -> None:
        async with net.client() as client:
            await client.resolve(ref("reg.example/app:1"))
            net.tokens.issued.clear()  # the server forgets every token
            await client.resolve(ref("reg.example/app:1"))

    run(scenario())
    assert net.token_requests() == 2 and net.count("HEAD") == 4


def test_access_token_field_and_default_lifetime() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    registry.push("app", "1")
    net.tokens.field, net.tokens.expires_in = "access_token", None

    async def scenario() -> None:
        async with net.client() as client:
            await client.resolve(ref("reg.example/app:1"))
            net.clock.now += 45
            await client.resolve(ref("reg.example/app:1"))
            assert net.token_requests() == 1
            net.clock.now += 10  # 55 s: within 10 s of the 60 s default
            await client.resolve(ref("reg.example/app:1"))
            assert net.token_requests() == 2

    run(scenario())


def test_identity_token_uses_the_oauth_refresh_grant() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    registry.push("app", "1")
    creds = Credentials("", identity_token="refresh-xyz")
    run(resolve_with(net.client({"reg.example": creds}), ref("reg.example/app:1")))
    (request,) = net.tokens.requests
    form = dict(httpx.QueryParams(request.content.decode()))
    assert request.method == "POST"
    assert form["grant_type"] == "refresh_token" and form["scope"] == "repository:app:pull"
    assert form["service"] == "reg.example"


def test_identity_token_falls_back_to_get_when_post_is_not_served() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    registry.push("app", "1")
    net.tokens.post_enabled = False
    net.tokens.users["00000000-0000-0000-0000-000000000000"] = "refresh-xyz"
    creds = Credentials("00000000-0000-0000-0000-000000000000", identity_token="refresh-xyz")
    run(resolve_with(net.client({"reg.example": creds}), ref("reg.example/app:1")))
    assert [r.method for r in net.tokens.requests] == ["POST", "GET"]


def test_basic_challenge_then_one_request_per_tag() -> None:
    net = FakeNet()
    registry = net.registry(auth="basic")
    for tag in ("1", "2", "3"):
        registry.push("app", tag)

    async def scenario() -> None:
        async with net.client({"reg.example": ALICE}) as client:
            for tag in ("1", "2", "3"):
                await client.resolve(ref(f"reg.example/app:{tag}"))

    run(scenario())
    assert len(net.log) == 4 and net.token_requests() == 0


def test_basic_challenge_without_credentials_says_to_log_in() -> None:
    net = FakeNet()
    net.registry(auth="basic").push("app", "1")
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("reg.example/app:1")))
    assert caught.value.code == "UNAUTHORIZED" and "docker login reg.example" in (caught.value.hint or "")


def test_wrong_basic_password_is_401_with_a_hint_and_no_secret() -> None:
    net = FakeNet()
    net.registry(auth="basic").push("app", "1")
    wrong = Credentials("alice", "hunter2-wrong")
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client({"reg.example": wrong}), ref("reg.example/app:1")))
    assert caught.value.status == 401 and "credentials" in (caught.value.hint or "")
    assert len(net.log) == 2
    _assert_no_secret(caught.value, wrong)


def test_token_service_echoing_the_password_is_scrubbed() -> None:
    net = FakeNet()
    net.registry(auth="bearer").push("app", "1")
    wrong = Credentials("alice", "hunter2-wrong")
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client({"reg.example": wrong}), ref("reg.example/app:1")))
    assert caught.value.status == 401 and REALM_HOST in caught.value.message
    assert "***" in caught.value.message
    _assert_no_secret(caught.value, wrong)


def test_http_token_realm_for_an_https_registry_gets_no_credentials() -> None:
    net = FakeNet()
    net.others["reg.example"] = lambda request: httpx.Response(
        401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.example/token",service="reg"'})
    with pytest.raises(RegistryError, match="not HTTPS"):
        run(resolve_with(net.client({"reg.example": ALICE}), ref("reg.example/app:1")))
    assert net.token_requests() == 0


def _assert_no_secret(error: RegistryError, creds: Credentials) -> None:
    encoded = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    for text in (str(error), repr(error), error.message, error.hint or ""):
        assert creds.password not in text and encoded not in text


# -- Docker config -------------------------------------------------------------------------------------------


def _config(tmp_path: Path, content: dict) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps(content))
    return {"DOCKER_CONFIG": str(tmp_path), "PATH": os.environ.get("PATH", "")}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_auths_entries(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {
        "reg.example": {"auth": _b64("alice:pa:ss\x00")},
        "https://legacy.example/v1/": {"auth": _b64("bob:pw")},
        DOCKER_HUB_KEY: {"username": "hubuser", "password": "hubpw"},
        "tok.example": {"auth": _b64("carol:"), "identitytoken": "refresh-1"},
        "empty.example": {},
    }})
    store = DockerCredentials(env)
    assert store.get("reg.example") == Credentials("alice", "pa:ss")
    assert store.get("legacy.example") == Credentials("bob", "pw")
    assert store.get("docker.io") == Credentials("hubuser", "hubpw")
    assert store.get("tok.example") == Credentials("carol", "", "refresh-1")
    assert store.get("empty.example") is None and store.get("unknown.example") is None
    assert "pa:ss" not in repr(store.get("reg.example"))


def test_missing_config_is_anonymous_and_broken_config_is_an_error(tmp_path: Path) -> None:
    assert DockerCredentials({"HOME": str(tmp_path)}).get("reg.example") is None
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        DockerCredentials({"DOCKER_CONFIG": str(tmp_path)}).get("reg.example")


def test_home_docker_config_and_docker_auth_config_env(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {"a.example": {"auth": _b64("u:p")}}}))
    inline = json.dumps({"auths": {"b.example": {"auth": _b64("v:q")}}})
    store = DockerCredentials({"HOME": str(tmp_path), "DOCKER_AUTH_CONFIG": inline})
    assert store.get("a.example") == Credentials("u", "p")
    assert store.get("b.example") == Credentials("v", "q")


def test_config_keys() -> None:
    assert config_key("docker.io") == config_key("index.docker.io") == DOCKER_HUB_KEY
    assert config_key("localhost:5000") == "localhost:5000"


HELPER = """#!/bin/sh
[ "$1" = get ] || exit 2
read server
echo "$server" >> "$(dirname "$0")/asked"
case "$server" in
  reg.example) echo '{"ServerURL":"reg.example","Username":"alice","Secret":"helper-secret"}' ;;
  tok.example) echo '{"ServerURL":"tok.example","Username":"<token>","Secret":"refresh-2"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"hub","Username":"hubby","Secret":"hub-secret"}' ;;
  broken.example) echo 'keychain is locked, Secret=do-not-print'; exit 1 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"""


def _helper(tmp_path: Path, name: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / f"docker-credential-{name}"
    script.write_text(HELPER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bindir}:{os.environ.get('PATH', '')}"}


def test_cred_helpers_and_creds_store(tmp_path: Path) -> None:
    env = _config(tmp_path, {"credHelpers": {"reg.example": "fake", "other.example": "fake"},
                             "credsStore": "store", "auths": {"plain.example": {"auth": _b64("x:y")}}})
    env.update(_helper(tmp_path, "fake"))
    env["PATH"] = _helper(tmp_path, "store")["PATH"]
    store = DockerCredentials(env)
    assert store.get("reg.example") == Credentials("alice", "helper-secret")
    assert store.get("other.example") is None  # "credentials not found" -> anonymous
    assert store.get("tok.example") == Credentials("", identity_token="refresh-2")  # via credsStore
    assert store.get("docker.io") == Credentials("hubby", "hub-secret")
    assert store.get("plain.example") is None  # credsStore wins over auths, as in the docker CLI
    asked = (tmp_path / "bin" / "asked").read_text().split()
    assert asked == ["reg.example", "other.example", "tok.example", DOCKER_HUB_KEY, "plain.example"]


def test_failing_or_missing_helper_is_an_error_without_secrets(tmp_path: Path) -> None:
    env = _config(tmp_path, {"credHelpers": {"broken.example": "fake", "gone.example": "absent"}})
    env.update(_helper(tmp_path, "fake"))
    store = DockerCredentials(env)
    with pytest.raises(RegistryError) as caught:
        store.get("broken.example")
    assert "docker-credential-fake failed (exit 1" in str(caught.value)
    with pytest.raises(RegistryError, match="not on PATH"):
        store.get("gone.example")


def test_helper_names_cannot_escape_path(tmp_path: Path) -> None:
    env = _config(tmp_path, {"credsStore": "../../bin/sh"})
    with pytest.raises(RegistryError, match="not valid"):
        DockerCredentials(env).get("reg.example")


def test_client_reads_docker_config_credentials(tmp_path: Path) -> None:
    env = _config(tmp_path, {"credHelpers": {"reg.example": "fake"}})
    env.update(_helper(tmp_path, "fake"))
    net = FakeNet()
    registry = net.registry(auth="basic", users={"alice": "helper-secret"})
    digest = registry.push("app", "1")
    client = net.client(credentials=DockerCredentials(env))
    assert run(resolve_with(client, ref("reg.example/app:1"))).digest == digest
