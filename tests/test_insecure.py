"""acrtask/insecure.py: the one rule for plain-HTTP registries, used by the client, the runner and builders."""

from __future__ import annotations

import pytest

from acrtask import insecure
from acrtask.reference import ImageRef


@pytest.mark.parametrize(
    ("image", "env", "expected"),
    [
        ("localhost:5000/a:1", "", True),
        ("127.0.0.1:9/a", "", True),
        ("[::1]:5000/a:1", "", True),
        ("reg.lan:5000/a:1", "Reg.Lan", True),           # a bare host covers every port
        ("reg.lan:5000/a:1", "reg.lan:6000", False),     # host:port covers only that port
        ("reg.lan:6000/a:1", " reg.lan:6000 ,", True),
        ("alpine:3", "registry-1.docker.io", True),      # listed by its API host
        ("x.io/b:1", "reg.lan", False),
    ],
)
def test_is_insecure(image: str, env: str, expected: bool) -> None:
    listed = insecure.from_env({insecure.INSECURE_ENV: env})
    assert insecure.is_insecure(ImageRef.parse(image), listed) is expected


def test_loopback_can_be_left_to_the_list() -> None:
    assert not insecure.is_insecure(ImageRef.parse("localhost:5000/a"), frozenset(), loopback=False)
    assert insecure.is_insecure(ImageRef.parse("localhost:5000/a"), frozenset({"localhost"}), loopback=False)


def test_insecure_registries_names_each_registry_as_written() -> None:
    refs = [ImageRef.parse(r) for r in ("reg.lan:5000/a:1", "x.io/b", "localhost:5000/c")]
    assert insecure.insecure_registries(refs, {insecure.INSECURE_ENV: "reg.lan"}) == {"reg.lan:5000", "localhost:5000"}
    assert insecure.insecure_registries(refs, {}) == {"localhost:5000"}


def test_is_chosen_matches_a_chosen_set_exactly() -> None:
    chosen = frozenset({"REG.lan:5000"})
    assert insecure.is_chosen(ImageRef.parse("reg.lan:5000/a"), chosen)
    assert not insecure.is_chosen(ImageRef.parse("reg.lan:6000/a"), chosen)
    assert insecure.is_chosen(ImageRef.parse("127.0.0.1:1/a"), frozenset())


def test_insecure_registries_are_named_as_the_references_name_them() -> None:
    refs = [ImageRef.parse(r) for r in ("reg.lan:5000/a:1", "x.io/b:1", "localhost:5000/c", "127.0.0.1:9/d",
                                        "only.port:6000/e", "only.port:7000/f")]
    env = {insecure.INSECURE_ENV: "Reg.Lan, only.port:6000"}
    assert insecure.insecure_registries(refs, env) == {"reg.lan:5000", "localhost:5000", "127.0.0.1:9",
                                                       "only.port:6000"}
