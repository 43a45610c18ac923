"""Each layer of the registry transport alone (request.py draws the stack), over a scripted layer below it;
the Connection at the bottom against a real registry. The whole stack is covered by test_registry_*.py."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import httpx
import pytest

from acrtask.errors import CircuitOpenError, RegistryError
from acrtask.registry.auth import HostAuth
from acrtask.registry.authorizer import Authorize
from acrtask.registry.circuit import Circuit
from acrtask.registry.credentials import Credentials
from acrtask.registry.health import HostHealth
from acrtask.registry.http import BodyTooLargeError, Connector, Reply
from acrtask.registry.pacing import Pacing
from acrtask.registry.request import Connection, Request
from acrtask.registry.retry import Retry
from acrtask.registry.rules import Policy
from acrtask.registry.session import Answer
from tests.support.fake_registry import FakeClock, run

URL = httpx.URL("https://reg.example/v2/app/manifests/1")
TOKEN_URL = httpx.URL("https://auth.example/token")


def reply(status: int, headers: dict[str, str] | None = None, content: bytes = b"", foreign: bool = False) -> Reply:
    return Reply(status, httpx.Headers(headers or {}), content, foreign)


def request(method: str = "HEAD", **fields: Any) -> Request:
    return Request(method, URL, "reg.example/app:1", "reg.example", None, **fields)


class Below:
    """The layer underneath: answers (or raises) from a script, one item per request, and logs the requests."""

    def __init__(self, *script: Reply | BaseException) -> None:
        self.script = deque(script)
        self.sent: list[tuple[str, httpx.Headers | None]] = []

    async def send(self, sent: Request) -> Reply:
        self.sent.append((sent.method, sent.headers))
        outcome = self.script.popleft()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def health(clock: FakeClock, **policy: Any) -> HostHealth:
    return HostHealth("reg.example", Policy(**policy), random=lambda: 0.5)


def retry(below: Below, clock: FakeClock, state: HostHealth, **policy: Any) -> Retry:
    return Retry(below, Policy(**policy), state, clock.clock, clock.sleep, lambda: 0.5)


# -- Retry ---------------------------------------------------------------------------------------------------


def test_retry_tries_5xx_again_after_a_backoff_and_returns_the_answer() -> None:
    clock = FakeClock()
    below = Below(reply(503), reply(502), reply(200))
    answer = run(retry(below, clock, health(clock), backoff_base=1.0).send(request()))
    assert answer.status == 200 and len(below.sent) == 3
    assert clock.sleeps == [0.75, 1.5]  # equal jitter at random()=0.5: 3/4 of 1 s, then of 2 s


def test_retry_gives_up_after_its_attempts_and_passes_the_last_answer_up() -> None:
    clock = FakeClock()
    below = Below(reply(503), reply(503))
    assert run(retry(below, clock, health(clock), attempts=2).send(request())).status == 503
    assert len(below.sent) == 2


def test_retry_follows_retry_after_capped_and_leaves_other_statuses_and_passthrough_alone() -> None:
    clock = FakeClock()
    below = Below(reply(503, {"retry-after": "900"}), reply(200))
    run(retry(below, clock, health(clock), retry_after_cap=30.0).send(request()))
    assert clock.sleeps == [30.0]
    for status, passthrough in ((404, frozenset[int]()), (401, frozenset[int]()), (503, frozenset({503}))):
        once = Below(reply(status))
        assert run(retry(once, clock, health(clock)).send(request(passthrough=passthrough))).status == status
        assert len(once.sent) == 1


def test_a_429_pauses_the_whole_registry_instead_of_sleeping_here() -> None:
    clock = FakeClock()
    state = health(clock)
    below = Below(reply(429, {"retry-after": "7"}), reply(200))
    run(retry(below, clock, state).send(request()))
    assert clock.sleeps == [] and state.paused_until == clock.now + 7


def test_retry_turns_a_failure_below_http_into_an_error_with_a_hint_after_its_attempts() -> None:
    clock = FakeClock()
    below = Below(httpx.ConnectError("connection refused"), httpx.ConnectError("connection refused"))
    with pytest.raises(RegistryError, match="connection to reg.example refused") as caught:
        run(retry(below, clock, health(clock), attempts=2).send(request()))
    assert caught.value.code == "UNREACHABLE" and len(below.sent) == 2


def test_retry_does_not_retry_a_tls_mistake() -> None:
    clock = FakeClock()
    below = Below(httpx.ConnectError("[SSL] wrong version number"))
    with pytest.raises(RegistryError, match="HTTP response to HTTPS client"):
        run(retry(below, clock, health(clock)).send(request()))
    assert len(below.sent) == 1 and clock.sleeps == []


# -- Circuit -------------------------------------------------------------------------------------------------


def test_circuit_opens_after_the_threshold_and_sends_nothing_while_open() -> None:
    clock = FakeClock()
    state = health(clock, circuit_threshold=2, circuit_base=10.0)
    below = Below(reply(503), httpx.ReadTimeout("slow"))
    circuit = Circuit(below, state, clock.clock)
    assert run(circuit.send(request())).status == 503
    with pytest.raises(httpx.ReadTimeout):
        run(circuit.send(request()))
    with pytest.raises(CircuitOpenError, match=r"2 errors in a row; last: reg.example/app:1: timed out"):
        run(circuit.send(request()))
    assert len(below.sent) == 2


def test_circuit_counts_any_other_answer_as_the_registry_working() -> None:
    clock = FakeClock()
    state = health(clock, circuit_threshold=2)
    below = Below(reply(503), reply(404), reply(503), BodyTooLargeError(10), reply(503))
    circuit = Circuit(below, state, clock.clock)
    run(circuit.send(request()))
    run(circuit.send(request()))
    run(circuit.send(request()))
    with pytest.raises(BodyTooLargeError):
        run(circuit.send(request()))
    run(circuit.send(request()))
    assert state.failures == 1 and not state.open_until


def test_circuit_lets_one_probe_through_when_the_pause_is_over() -> None:
    clock = FakeClock()
    state = health(clock, circuit_threshold=1, circuit_base=10.0)
    circuit = Circuit(Below(reply(503), reply(200), reply(200)), state, clock.clock)
    run(circuit.send(request()))
    clock.now += 10.0
    assert run(circuit.send(request())).status == 200  # the probe
    assert run(circuit.send(request())).status == 200 and not state.open_until


# -- Pacing --------------------------------------------------------------------------------------------------


def test_pacing_waits_out_a_pause() -> None:
    clock = FakeClock()
    state = health(clock)
    state.pause(clock.now, 4.0)
    run(Pacing(Below(reply(200)), state, clock.clock, clock.sleep).send(request()))
    assert clock.sleeps == [4.0]


def test_pacing_spaces_out_gets_when_the_quota_runs_low_but_not_heads() -> None:
    clock = FakeClock()
    state = health(clock)
    low = {"ratelimit-limit": "100;w=100", "ratelimit-remaining": "5;w=100"}
    pacing = Pacing(Below(reply(200, low), reply(200, low), reply(200, low), reply(200, low)), state,
                    clock.clock, clock.sleep)
    run(pacing.send(request("GET")))
    assert state.rate is not None and state.rate.remaining == 5 and state.interval == 20.0
    run(pacing.send(request("HEAD")))
    assert clock.sleeps == []
    run(pacing.send(request("GET")))
    run(pacing.send(request("GET")))
    assert clock.sleeps == [20.0]  # the first GET takes the free slot, the next waits one interval


# -- Authorize -----------------------------------------------------------------------------------------------


class Logins:
    def __init__(self, found: Credentials | None) -> None:
        self.found = found

    def get(self, registry: str) -> Credentials | None:
        return self.found


def authorize(below: Below, tokens: Below, credentials: Credentials | None = None) -> Authorize:
    clock = FakeClock()

    def headers(authorization: str, content_type: str) -> httpx.Headers:
        return httpx.Headers({"Authorization": authorization} if authorization else {})

    return Authorize(below, tokens, HostAuth(10.0), Logins(credentials), host="reg.example",
                     registry="reg.example", plain=False, headers=headers, clock=clock.clock)


BEARER = {"www-authenticate": 'Bearer realm="https://auth.example/token",service="reg.example"'}


def test_authorize_answers_a_bearer_challenge_with_one_token_and_sends_again() -> None:
    below = Below(reply(401, BEARER), reply(200), reply(200))
    tokens = Below(reply(200, content=b'{"token": "t0k", "expires_in": 300}'))
    layer = authorize(below, tokens)
    scope = "repository:app:pull"
    assert run(layer.send(request(scope=scope))).status == 200
    assert run(layer.send(request(scope=scope))).status == 200  # the token is reused
    assert [h.get("authorization") for _, h in below.sent if h is not None] == [None, "Bearer t0k", "Bearer t0k"]
    assert len(tokens.sent) == 1


def test_authorize_answers_one_401_only() -> None:
    below = Below(reply(401, BEARER), reply(401, BEARER))
    tokens = Below(reply(200, content=b'{"token": "t0k"}'))
    assert run(authorize(below, tokens).send(request(scope="repository:app:pull"))).status == 401
    assert len(below.sent) == 2 and len(tokens.sent) == 1


def test_authorize_sends_the_login_on_a_basic_challenge_or_says_to_log_in() -> None:
    basic = {"www-authenticate": 'Basic realm="reg"'}
    below = Below(reply(401, basic), reply(200))
    alice = Credentials("alice", "s3cret")
    assert run(authorize(below, Below(), alice).send(request())).status == 200
    sent = below.sent[1][1]
    assert sent is not None and sent["authorization"] == alice.basic_header()
    with pytest.raises(RegistryError, match="requires a login") as caught:
        run(authorize(Below(reply(401, basic)), Below()).send(request()))
    assert "docker login reg.example" in (caught.value.hint or "")


def test_authorize_never_trusts_a_challenge_from_another_host() -> None:
    below = Below(reply(401, BEARER, foreign=True))
    tokens = Below()
    layer = authorize(below, tokens)
    assert run(layer.send(request())).status == 401
    assert tokens.sent == [] and not layer.auth.settled


def test_concurrent_requests_share_one_token_fetch() -> None:
    class SlowTokens(Below):
        async def send(self, sent: Request) -> Reply:
            await asyncio.sleep(0)  # let the other requests arrive while this fetch is under way
            return await super().send(sent)

    below = Below(reply(401, BEARER), *[reply(200)] * 4)
    tokens = SlowTokens(reply(200, content=b'{"token": "t0k"}'))
    layer = authorize(below, tokens)

    async def scenario() -> list[int]:
        scope = "repository:app:pull"
        assert (await layer.send(request(scope=scope))).status == 200  # learns the bearer scheme
        layer.auth.drop(scope)
        tokens.script.append(reply(200, content=b'{"token": "t1k"}'))
        answers = await asyncio.gather(*(layer.send(request(scope=scope)) for _ in range(3)))
        return [a.status for a in answers]

    assert run(scenario()) == [200, 200, 200]
    assert len(tokens.sent) == 2


# -- Answer --------------------------------------------------------------------------------------------------


def test_answer_passes_accepted_statuses_and_raises_the_rest_scrubbed() -> None:
    def scrub(error: RegistryError) -> RegistryError:
        error.message = error.message.replace("s3cret", "***")
        return error

    body = b'{"errors": [{"code": "DENIED", "message": "no s3cret for you"}]}'
    layer = Answer(Below(reply(404), reply(403, content=body), BodyTooLargeError(4096)), "reg.example", scrub)
    assert run(layer.send(request(passthrough=frozenset({404})))).status == 404
    with pytest.raises(RegistryError) as caught:
        run(layer.send(request()))
    assert caught.value.status == 403 and "***" in caught.value.message and "s3cret" not in caught.value.message
    with pytest.raises(RegistryError, match="larger than 4 KiB") as too_big:
        run(layer.send(request("GET")))
    assert too_big.value.code == "SIZE_INVALID"


# -- Connection ----------------------------------------------------------------------------------------------


def test_connection_sends_on_the_registrys_own_connections(registry: Any) -> None:
    async def scenario() -> tuple[int, str | None]:
        connector = Connector(Policy())
        try:
            origin = httpx.URL(f"http://{registry.host}")
            lanes = connector.lanes(origin, direct=True)
            sent = Request("GET", origin.join("/v2/"), "ping", registry.host, lanes,
                           headers=httpx.Headers({"Host": registry.host}), limit=1024)
            answer = await Connection(connector).send(sent)
            return answer.status, answer.headers.get("docker-distribution-api-version")
        finally:
            await connector.aclose()

    assert run(scenario()) == (200, "registry/2.0")


def test_a_retried_request_gets_its_401_answered_once_in_all() -> None:
    clock = FakeClock()
    below = Below(reply(401, BEARER), reply(503), reply(401, BEARER))
    tokens = Below(reply(200, content=b'{"token": "t0k"}'))
    layer = Retry(authorize(below, tokens), Policy(), health(clock), clock.clock, clock.sleep, lambda: 0.5)
    assert run(layer.send(request(scope="repository:app:pull"))).status == 401
    assert len(below.sent) == 3 and len(tokens.sent) == 1
