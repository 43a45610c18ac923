"""The scripted fake registry of tests/support/fake_registry.py serves what it was given."""

from __future__ import annotations

from tests.support.fake_registry import FakeNet, ref, resolve_with, run


def test_fake_registry_serves_what_was_pushed() -> None:
    net = FakeNet()
    registry = net.registry()
    digest = registry.push("team/app", "1.0")
    resolved = run(resolve_with(net.client(), ref("reg.example/team/app:1.0")))
    assert resolved.digest == digest and net.count("HEAD") == 1
    assert str(net.log[0].url) == "https://reg.example/v2/team/app/manifests/1.0"
