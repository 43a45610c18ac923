"""RegistryClient against a scripted fake registry: digests, platforms, batches, and request counts."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator

import httpx
import pytest

from acrtask.errors import ManifestNotFoundError, RegistryError
from acrtask.media import DOCKER_LIST, OCI_INDEX, OCI_MANIFEST
from acrtask.platform import Platform
from acrtask.registry import BlockingRegistryClient, CheckKey, RegistryClient, Resolved
from tests.support.fake_registry import (
    ALICE,
    FakeNet,
    StaticCredentials,
    digest_of,
    index_body,
    manifest_body,
    ref,
    resolve_with,
    run,
)

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")


# -- digests -------------------------------------------------------------------------------------------------


def test_head_digest_is_one_request_per_tag() -> None:
    net = FakeNet()
    registry = net.registry()
    digests = {tag: registry.push("app", tag) for tag in ("1", "2", "3")}

    async def scenario() -> None:
        async with net.client() as client:
            for tag, digest in digests.items():
                resolved = await client.resolve(ref(f"reg.example/app:{tag}"))
                assert (resolved.digest, resolved.media_type) == (digest, OCI_MANIFEST)

    run(scenario())
    assert [r.method for r in net.log] == ["HEAD"] * 3
    accept = net.log[0].headers["accept"]
    for media_type in (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, "application/vnd.docker.distribution.manifest.v2+json"):
        assert media_type in accept


def test_head_without_digest_falls_back_to_get_and_hashes_the_body() -> None:
    net = FakeNet()
    registry = net.registry()
    digest = registry.push("app", "1")
    registry.head_digest = False
    registry.digest_override["1"] = ""  # and no header on the GET either: the client hashes

    original = registry.handle

    def without_header(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if "docker-content-digest" in response.headers and not response.headers["docker-content-digest"]:
            del response.headers["docker-content-digest"]
        return response

    net.registries["reg.example"].handle = without_header  # type: ignore[method-assign]
    resolved = run(resolve_with(net.client(), ref("reg.example/app:1")))
    assert resolved.digest == digest
    assert [r.method for r in net.log] == ["HEAD", "GET"]


def test_head_refused_with_405_falls_back_to_get() -> None:
    net = FakeNet()
    registry = net.registry()
    digest = registry.push("app", "1")
    registry.head_status = 405
    assert run(resolve_with(net.client(), ref("reg.example/app:1"))).digest == digest
    assert [r.method for r in net.log] == ["HEAD", "GET"]


def test_get_body_that_does_not_match_its_digest_is_an_error_never_a_result() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.push("app", "1")
    registry.head_digest = False
    registry.digest_override["1"] = "sha256:" + "b" * 64
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("reg.example/app:1")))
    assert caught.value.code == "DIGEST_INVALID"
    assert "sha256:" + "b" * 64 in str(caught.value)


def test_pinned_digest_is_checked_against_the_body() -> None:
    net = FakeNet()
    registry = net.registry()
    digest = registry.push("app", "1")
    registry.head_digest = False
    resolved = run(resolve_with(net.client(), ref(f"reg.example/app@{digest}")))
    assert resolved.digest == digest
    assert net.log[-1].url.path == f"/v2/app/manifests/{digest}"


def test_missing_tag_is_manifest_not_found_after_exactly_one_request() -> None:
    net = FakeNet()
    net.registry()
    with pytest.raises(ManifestNotFoundError) as caught:
        run(resolve_with(net.client(), ref("reg.example/app:nope")))
    assert caught.value.exit_code == 3 and caught.value.code == "MANIFEST_UNKNOWN"
    assert len(net.log) == 1 and net.clock.sleeps == []
    assert "\n" not in str(caught.value)


def test_oversized_manifest_stops_reading() -> None:
    net = FakeNet()
    pulled: list[int] = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(100):
                pulled.append(1)
                yield b"x" * (1024 * 1024)

    def huge(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Type": OCI_MANIFEST})  # no digest: forces a GET
        return httpx.Response(200, headers={"Content-Type": OCI_MANIFEST}, stream=Endless())

    net.others["big.example"] = huge
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("big.example/app:1")))
    assert caught.value.code == "SIZE_INVALID"
    assert len(pulled) <= 5  # 4 MiB limit: stopped on the fifth 1 MiB chunk, not the hundredth


def test_oversized_content_length_is_refused_before_reading() -> None:
    net = FakeNet()
    net.others["big.example"] = lambda request: httpx.Response(
        200, headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(50 * 1024 * 1024)},
        stream=httpx.ByteStream(b""))
    with pytest.raises(RegistryError, match="larger than 4096 KiB"):
        run(resolve_with(net.client(), ref("big.example/app:1")))


# -- platforms -----------------------------------------------------------------------------------------------


def _multiarch(net: FakeNet) -> tuple[str, dict[str, str]]:
    registry = net.registry()
    children = {"linux/amd64": digest_of(b"amd"), "linux/arm64": digest_of(b"arm")}
    index = registry.push("multi", "1", index_body(children), OCI_INDEX)
    return index, children


def test_platform_digest_skips_attestations_and_unchanged_index_costs_one_head() -> None:
    net = FakeNet()
    index, children = _multiarch(net)

    async def scenario() -> None:
        async with net.client() as client:
            first = await client.resolve(ref("reg.example/multi:1"), AMD64)
            assert (first.digest, first.platform_digest) == (index, children["linux/amd64"])
            assert first.media_type == OCI_INDEX
            assert [r.method for r in net.log] == ["HEAD", "GET"]
            assert net.log[1].url.path == f"/v2/multi/manifests/{index}"  # the index by digest, immutable
            again = await client.resolve(ref("reg.example/multi:1"), AMD64)
            assert again.platform_digest == children["linux/amd64"]
            assert len(net.log) == 3  # unchanged tag: only the HEAD
            other = await client.resolve(ref("reg.example/multi:1"), ARM64)
            assert other.platform_digest == children["linux/arm64"]
            assert len(net.log) == 4  # the index itself is cached too

    run(scenario())


def test_known_index_digests_avoid_the_get() -> None:
    net = FakeNet()
    index, _ = _multiarch(net)
    stored = "sha256:" + "c" * 64
    resolved = run(resolve_with(net.client(), ref("reg.example/multi:1"), AMD64, known={index: stored}))
    assert resolved.platform_digest == stored and len(net.log) == 1


def test_single_manifest_is_its_own_platform_digest() -> None:
    net = FakeNet()
    digest = net.registry().push("app", "1")
    resolved = run(resolve_with(net.client(), ref("reg.example/app:1"), ARM64))
    assert resolved.platform_digest == digest and len(net.log) == 1


def test_missing_platform_names_the_ones_offered() -> None:
    net = FakeNet()
    _multiarch(net)
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("reg.example/multi:1"), Platform.parse("linux/s390x")))
    assert caught.value.code == "PLATFORM_UNKNOWN"
    assert "linux/amd64, linux/arm64" in str(caught.value) and "unknown" not in (caught.value.hint or "")


def test_malformed_index_json_is_a_registry_error() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.push("multi", "1", b'{"manifests": [', OCI_INDEX)
    with pytest.raises(RegistryError) as caught:
        run(resolve_with(net.client(), ref("reg.example/multi:1"), AMD64))
    assert caught.value.code == "MANIFEST_INVALID"


def test_body_media_type_disagreeing_with_content_type_is_rejected() -> None:
    net = FakeNet()
    registry = net.registry()
    registry.push("multi", "1", json.dumps({"mediaType": OCI_MANIFEST, "manifests": []}).encode(), OCI_INDEX)
    with pytest.raises(RegistryError, match="served as"):
        run(resolve_with(net.client(), ref("reg.example/multi:1"), AMD64))


def test_platform_digest_of_a_known_index() -> None:
    net = FakeNet()
    index, children = _multiarch(net)

    async def scenario() -> str:
        async with net.client() as client:
            return await client.platform_digest(ref("reg.example/multi:1"), index, ARM64)

    assert run(scenario()) == children["linux/arm64"]
    assert [r.method for r in net.log] == ["GET"]


# -- batches -------------------------------------------------------------------------------------------------


def test_check_many_returns_a_result_or_an_error_per_reference() -> None:
    net = FakeNet()
    registry = net.registry()
    good = registry.push("app", "1")
    children = {"linux/amd64": digest_of(b"amd"), "linux/arm64": digest_of(b"arm")}
    registry.push("multi", "1", index_body(children), OCI_INDEX)
    items: list[CheckKey] = [ref("reg.example/app:1"), ref("reg.example/app:missing"), ref("down.example/app:1"),
             (ref("reg.example/multi:1"), AMD64), (ref("reg.example/multi:1"), ARM64), ref("reg.example/app:1")]

    async def scenario() -> dict[CheckKey, Resolved | Exception]:
        async with net.client() as client:
            return await client.check_many(items)

    results = run(scenario())
    assert list(results) == items[:5]  # deduplicated, in order
    assert results[items[0]].digest == good  # type: ignore[union-attr]
    assert isinstance(results[items[1]], ManifestNotFoundError)
    assert isinstance(results[items[2]], RegistryError) and "refused" in str(results[items[2]])
    assert results[items[3]].platform_digest == children["linux/amd64"]  # type: ignore[union-attr]
    assert results[items[4]].platform_digest == children["linux/arm64"]  # type: ignore[union-attr]
    assert net.count("HEAD", "reg.example", "/multi/") == 1  # one HEAD for both platforms
    assert net.count("GET", "reg.example") == 1  # one index GET for both platforms


def test_bearer_token_is_fetched_once_then_one_head_per_tag() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    for tag in range(10):
        registry.push("team/app", f"v{tag}")

    async def scenario() -> None:
        async with net.client({"reg.example": ALICE}) as client:
            for tag in range(10):
                await client.resolve(ref(f"reg.example/team/app:v{tag}"))
            before = len(net.log)
            for tag in range(10):
                await client.resolve(ref(f"reg.example/team/app:v{tag}"))
            assert len(net.log) - before == 10  # held token: exactly one request per unchanged tag

    run(scenario())
    assert net.token_requests() == 1
    assert net.count("HEAD") == 1 + 10 + 10  # the one 401, then one per tag
    token_request = net.tokens.requests[0]
    assert token_request.url.params.get_list("scope") == ["repository:team/app:pull"]
    assert token_request.url.params["service"] == "reg.example"
    assert token_request.headers["authorization"].startswith("Basic ")


def test_check_many_gets_one_token_for_many_repositories() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    refs = []
    for repo in range(40):
        for tag in range(3):
            registry.push(f"team/app{repo:02d}", f"v{tag}")
            refs.append(ref(f"reg.example/team/app{repo:02d}:v{tag}"))

    async def scenario() -> None:
        async with net.client() as client:  # anonymous: tokens without credentials
            results = await client.check_many(refs)
            assert not [r for r in results.values() if isinstance(r, Exception)]
            assert net.token_requests() == 3  # first repository alone, then 39 in chunks of 32 + 7
            assert net.count("HEAD") == 1 + len(refs)  # a single 401 for the whole batch
            before = len(net.log)
            await client.check_many(refs)
            assert len(net.log) - before == len(refs)

    run(scenario())
    assert all("authorization" not in r.headers for r in net.tokens.requests)


def test_concurrent_requests_share_one_token_fetch() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    registry.push("app", "1")

    async def scenario() -> None:
        async with net.client() as client:
            await client.check_many([ref("reg.example/other:1")])  # learn the realm (a 404 is fine)
            client_results = await client.check_many([ref(f"reg.example/app:{t}") for t in ("1", "1", "2", "3")])
            assert len(client_results) == 3

    run(scenario())
    assert net.token_requests() == 2  # one for "other", one for "app" despite three concurrent tags


def test_blocking_client_from_several_threads() -> None:
    net = FakeNet()
    registry = net.registry(auth="bearer")
    digests = [registry.push("app", str(tag)) for tag in range(8)]
    found: dict[int, str] = {}
    with BlockingRegistryClient(transport=httpx.MockTransport(net.handler), credentials=StaticCredentials({}),
                                environ={}, clock=net.clock.clock, sleep=net.clock.sleep) as client:
        def work(tag: int) -> None:
            found[tag] = client.resolve(ref(f"reg.example/app:{tag}")).digest

        threads = [threading.Thread(target=work, args=(tag,)) for tag in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        results = client.check_many([ref("reg.example/app:0"), ref("reg.example/app:9")])
    assert [found[t] for t in range(8)] == digests
    assert isinstance(results[ref("reg.example/app:9")], ManifestNotFoundError)
    assert net.token_requests() == 1


def test_resolved_media_type_and_docker_manifest_list() -> None:
    net = FakeNet()
    registry = net.registry()
    children = {"linux/amd64": digest_of(b"amd")}
    body = json.loads(index_body(children))
    body["mediaType"] = DOCKER_LIST
    registry.push("list", "1", json.dumps(body).encode(), DOCKER_LIST)
    registry.push("plain", "1", manifest_body("plain"))
    resolved = run(resolve_with(net.client(), ref("reg.example/list:1"), AMD64))
    assert resolved.media_type == DOCKER_LIST and resolved.platform_digest == children["linux/amd64"]


def test_client_is_an_async_context_manager_and_closes() -> None:
    async def scenario() -> None:
        client = RegistryClient(transport=httpx.MockTransport(lambda r: httpx.Response(404)), environ={})
        async with client as same:
            assert same is client

    run(scenario())


def test_closing_the_blocking_client_ends_a_call_still_waiting_for_a_hanging_registry() -> None:
    import asyncio
    import concurrent.futures

    entered = threading.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.sleep(60)
        return httpx.Response(500)

    client = BlockingRegistryClient(transport=httpx.MockTransport(hang), credentials=StaticCredentials({}), environ={})
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.resolve(ref("hang.example/app:1"))
        except BaseException as exc:  # what the waiting thread gets when the client closes
            outcome.append(exc)

    waiter = threading.Thread(target=call)
    waiter.start()
    assert entered.wait(10)
    client.close()
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], concurrent.futures.CancelledError)


def test_cap_circuit_lowers_the_pause_of_registries_already_known() -> None:
    from acrtask.registry import Policy

    net = FakeNet()
    bad = net.registry("bad.example")
    bad.push("app", "1")

    async def scenario() -> int:
        async with net.client(policy=Policy(circuit_threshold=1)) as client:
            await client.resolve(ref("bad.example/app:1"))  # the registry is known (its session exists)
            client.cap_circuit(2.0)
            bad.fail(*[503] * 100)
            with pytest.raises(RegistryError, match="not contacting it for 2s"):
                await client.resolve(ref("bad.example/app:1"))  # the 503 trips the circuit: 2 s, not 15
            sent = net.count(host="bad.example")
            net.clock.now += 2.0
            with pytest.raises(RegistryError):
                await client.resolve(ref("bad.example/app:1"))
            return net.count(host="bad.example") - sent

    assert run(scenario()) == 1  # one probe went out after the capped pause (and failed: open again)


def test_the_package_names_load_on_first_use_and_only_then() -> None:
    """`acrtask.registry`'s names come from their modules when asked for, so the CLI's start does not import
    httpx; every name in __all__ resolves, and each is the module's own."""
    import subprocess
    import sys

    import acrtask.registry as package

    assert sorted(package.__all__) == sorted(package._MODULE_OF)
    for name in package.__all__:
        module = __import__(f"acrtask.registry.{package._MODULE_OF[name]}", fromlist=[name])
        assert getattr(package, name) is getattr(module, name)
    loaded = subprocess.run([sys.executable, "-c", "import sys, acrtask.cli.app; print('httpx' in sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"
