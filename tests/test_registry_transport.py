"""Retries, Retry-After, rate limits, the per-registry circuit, redirects, schemes and error hints."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from acrtask.errors import ManifestNotFoundError, RegistryError
from acrtask.insecure import from_env as insecure_from_env
from acrtask.insecure import is_listed
from acrtask.registry import Policy
from acrtask.registry.health import HostHealth, RateLimit, parse_rate_limit
from acrtask.registry.rules import (
    parse_retry_after,
    status_error,
    transport_error,
)
from tests.support.fake_registry import ALICE, FakeNet, Script, ref, resolve_with, run

# -- retries -------------------------------------------------------------------------------------------------


def test_503_503_200_is_retried_with_jittered_backoff() -> None:
    net = FakeNet()
    registry = net.registry()
    digest = registry.push("app", "1")
    registry.fail(503, 503)
    assert run(resolve_with(net.client(), ref("reg.example/app:1"))).digest == digest
    assert len(net.log) == 3
    assert net.clock.sleeps == [0.375, 0.75]  # base 0.5 * 2^n, with random()=0.5 -> 75% of that


def test_429_waits_for_retry_after_seconds() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.push("app", "1")
    registry.fail((429, {"Retry-After": "7"}, b"Too Many Requests (HAP429)."))
    run(resolve_with(net.client(), ref("reg.example/app:1")))
    assert net.clock.sleeps == [7.0] and len(net.log) == 2


def test_429_retry_after_http_date_and_cap() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.push("app", "1")
    when = email.utils.formatdate(net.clock.now + 12, usegmt=True)
    registry.fail((429, {"Retry-After": when}), (429, {"Retry-After": "3600"}))
    run(resolve_with(net.client(), ref("reg.example/app:1")))
    assert net.clock.sleeps == [pytest.approx(12, abs=1), 60.0]


def test_429_pauses_the_whole_registry() -> None:
    net = FakeNet()
    registry = net.registry()
    for tag in ("1", "2"):
        registry.push("app", tag)
    registry.fail((429, {"Retry-After": "30"}))

    async def scenario() -> None:
        async with net.client() as client:
            await client.resolve(ref("reg.example/app:1"))
            start = net.clock.now
            await client.resolve(ref("reg.example/app:2"))  # the pause is over: no extra wait
            assert net.clock.now == start

    run(scenario())
    assert net.clock.sleeps == [30.0]


def test_429_until_attempts_run_out_is_a_typed_error() -> None:
    net = FakeNet()
    registry = net.registry()
    too_many: Script = (429, {}, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')
    registry.fail(405, *[too_many] * 4)  # HEAD refused, so the GET's error body is read
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("reg.example/app:1")))
    assert caught.value.code == "TOOMANYREQUESTS" and caught.value.status == 429
    assert "slow down" in str(caught.value) and len(net.log) == 5


def test_connection_refused_is_retried_then_explained() -> None:
    net = FakeNet()  # no registry at down.example: the fake network refuses
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("down.example/app:1")))
    assert len(net.log) == 4 and len(net.clock.sleeps) == 3
    assert "refused" in caught.value.message and "running" in (caught.value.hint or "")


def test_read_timeout_is_retried() -> None:
    net = FakeNet()
    registry = net.registry()
    digest = registry.push("app", "1")
    registry.fail(httpx.ReadTimeout("timed out"))
    assert run(resolve_with(net.client(), ref("reg.example/app:1"))).digest == digest
    assert len(net.log) == 2


def test_read_timeouts_until_the_end_say_so() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.fail(*[httpx.ReadTimeout("timed out")] * 4)
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("reg.example/app:1")))
    assert caught.value.code == "TIMEOUT" and "waiting for the answer" in caught.value.message


def test_404_is_never_retried_and_does_not_count_as_failure() -> None:
    net = FakeNet()
    net.registry()

    async def scenario() -> None:
        async with net.client() as client:
            for _ in range(10):
                with pytest.raises(ManifestNotFoundError):
                    await client.resolve(ref("reg.example/app:nope"))

    run(scenario())
    assert len(net.log) == 10 and net.clock.sleeps == []


# -- circuit -------------------------------------------------------------------------------------------------


def test_failing_registry_is_paused_while_others_carry_on() -> None:
    net = FakeNet()
    bad = net.registry("bad.example")
    good = net.registry("good.example")
    digest = good.push("app", "1")
    bad.fail(*[503] * 100)

    async def scenario() -> None:
        async with net.client() as client:
            with pytest.raises(RegistryError):
                await client.resolve(ref("bad.example/app:1"))  # 4 attempts, all 503
            with pytest.raises(RegistryError) as caught:
                await client.resolve(ref("bad.example/app:2"))  # 5th failure opens the circuit
            assert caught.value.code == "UNAVAILABLE" or caught.value.status == 503
            sent = net.count(host="bad.example")
            with pytest.raises(RegistryError) as fast:
                await client.resolve(ref("bad.example/app:3"))
            assert fast.value.code == "UNAVAILABLE" and "503" in str(fast.value)
            assert net.count(host="bad.example") == sent  # failed fast: no request
            assert (await client.resolve(ref("good.example/app:1"))).digest == digest
            bad.script.clear()
            bad.push("app", "4")
            net.clock.now += 600  # after the pause, one probe goes through and closes the circuit
            assert (await client.resolve(ref("bad.example/app:4"))).digest

    run(scenario())


def test_circuit_probe_failure_doubles_the_pause() -> None:
    health = HostHealth("h", Policy(circuit_threshold=2, circuit_base=10), random=lambda: 0.5)
    health.failed(0, "x")
    health.failed(0, "x")
    assert health.open_until == 10
    with pytest.raises(RegistryError):
        health.admit(5)
    health.admit(11)  # the probe
    with pytest.raises(RegistryError):
        health.admit(11)  # only one probe at a time
    health.failed(12, "still down")
    assert health.open_until == 12 + 20
    health.admit(40)
    health.succeeded()
    health.admit(40)
    health.admit(40)  # closed: everyone through


def test_check_many_reports_the_circuit_per_reference_and_spares_other_registries() -> None:
    net = FakeNet()
    good = net.registry("good.example")
    refs = [ref(f"good.example/app:{t}") for t in range(5)]
    for t in range(5):
        good.push("app", str(t))
    bad_refs = [ref(f"bad.example/app:{t}") for t in range(30)]
    net.registry("bad.example").fail(*[503] * 1000)

    async def scenario() -> dict:
        async with net.client() as client:
            return await client.check_many(bad_refs + refs)

    results = run(scenario())
    assert all(not isinstance(results[r], Exception) for r in refs)
    assert all(isinstance(results[r], RegistryError) for r in bad_refs)
    assert net.count(host="bad.example") < 30 * 4  # the circuit stopped the hammering


# -- rate limits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "remaining", "expected"), [
    ("100;w=21600", "76;w=21600", RateLimit(100, 76, 21600)),
    ("100", "5", RateLimit(100, 5, 0)),
    (None, "3;w=60", RateLimit(0, 3, 60)),
    ("100;w=21600", None, None),
    ("100;w=21600", "junk", None),
])
def test_parse_rate_limit(limit: str | None, remaining: str | None, expected: RateLimit | None) -> None:
    assert parse_rate_limit(limit, remaining) == expected


def test_low_remaining_quota_spaces_out_gets_but_not_heads() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.push("app", "1")
    registry.push("app", "2")
    registry.extra_headers = {"RateLimit-Limit": "100;w=600", "RateLimit-Remaining": "5;w=600"}
    registry.head_digest = False  # every check needs a GET, which Docker Hub counts

    async def scenario() -> None:
        async with net.client() as client:
            await client.resolve(ref("reg.example/app:1"))
            await client.resolve(ref("reg.example/app:2"))
            assert client.session(ref("reg.example/app:1")).health.rate == RateLimit(100, 5, 600)

    run(scenario())
    assert net.clock.sleeps == [60.0]  # 600 s / 5 left = 120 s, capped at 60 s; HEADs never wait


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


# -- redirects -----------------------------------------------------------------------------------------------


def test_credentials_are_not_forwarded_on_a_cross_host_redirect() -> None:
    net = FakeNet()
    registry = net.registry(auth="basic")
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
    seen: list[httpx.Request] = []

    def cdn(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        return httpx.Response(200, headers=headers, content=body if request.method == "GET" else b"")

    net.others["cdn.example"] = cdn
    registry.redirect_to = "https://cdn.example"
    resolved = run(resolve_with(net.client({"reg.example": ALICE}), ref("reg.example/app:1")))
    assert resolved.digest.startswith("sha256:")
    assert [r.method for r in seen] == ["HEAD", "GET"]  # no digest on the CDN's HEAD: GET and hash
    assert all("authorization" not in r.headers for r in seen)
    assert all(r.headers["host"] == "cdn.example" for r in seen)
    assert net.log[1].headers["authorization"].startswith("Basic ")  # the registry itself got them


def test_a_challenge_from_a_redirect_target_gets_no_credentials() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.redirect_to = "https://evil.example"
    net.others["evil.example"] = lambda request: httpx.Response(
        401, headers={"WWW-Authenticate": 'Basic realm="x"'})
    creds = net.client({"reg.example": ALICE})
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(creds, ref("reg.example/app:1")))
    assert caught.value.status == 401
    assert not any("authorization" in r.headers for r in net.log)


# -- schemes -------------------------------------------------------------------------------------------------


def test_loopback_and_listed_registries_use_plain_http() -> None:
    hosts: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        hosts.append(f"{request.url.scheme}://{request.url.netloc.decode()}")
        return httpx.Response(404)

    async def scenario() -> None:
        client = FakeNet().client(transport=httpx.MockTransport(record),
                                  environ={"ACRTASK_INSECURE_REGISTRIES": "lan.example:5000, other.example"})
        async with client:
            for text in ("127.0.0.1:5000/a:1", "localhost:5000/a:1", "[::1]:5000/a:1", "lan.example:5000/a:1",
                         "lan.example:6000/a:1", "other.example:7/a:1", "reg.example/a:1", "alpine:3"):
                with pytest.raises(ManifestNotFoundError):
                    await client.resolve(ref(text))

    run(scenario())
    assert hosts == ["http://127.0.0.1:5000", "http://localhost:5000", "http://[::1]:5000",
                     "http://lan.example:5000", "https://lan.example:6000", "http://other.example:7",
                     "https://reg.example", "https://registry-1.docker.io"]


def test_insecure_list_parsing() -> None:
    listed = insecure_from_env({"ACRTASK_INSECURE_REGISTRIES": " A.example:5000 ,b.example,, "})
    assert listed == frozenset({"a.example:5000", "b.example"})
    assert is_listed("a.example:5000", listed) and not is_listed("a.example:5001", listed)
    assert is_listed("b.example:443", listed) and is_listed("B.example", listed)


# -- error hints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "needle", "hint"), [
    (httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
     "server gave HTTP response to HTTPS client", "ACRTASK_INSECURE_REGISTRIES"),
    (httpx.ConnectError("[SSL] record layer failure (_ssl.c:1000)"),
     "server gave HTTP response to HTTPS client", "ACRTASK_INSECURE_REGISTRIES"),
    (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed"),
     "not trusted", "CA certificate"),
    (httpx.ConnectError("[Errno -2] Name or service not known"), "cannot resolve", "DNS"),
    (httpx.ConnectTimeout("timed out"), "timed out connecting", "network"),
])
def test_transport_error_hints(exc: httpx.TransportError, needle: str, hint: str) -> None:
    error = transport_error(exc, "reg.example/app:1", "reg.example")
    assert needle in error.message and hint in (error.hint or "")
    assert "\n" not in str(error)


def test_status_error_carries_the_oci_code_and_a_hint() -> None:
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    error = status_error(403, body, "reg.example/app:1", "reg.example", "reg.example")
    assert (error.code, error.status) == ("DENIED", 403)
    assert "requested access to the resource is denied" in error.message
    assert "Docker config" in (error.hint or "")
    https = status_error(400, b"Client sent an HTTP request to an HTTPS server.\n", "x", "h:5000", "h:5000")
    assert "remove it from ACRTASK_INSECURE_REGISTRIES" in (https.hint or "")
