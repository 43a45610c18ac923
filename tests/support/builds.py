"""Build specs for tests: every field a BuildSpec needs, with what the test does not care about left plain
(one image, no args, linux/amd64, pushed, nothing insecure)."""

from __future__ import annotations

from pathlib import Path

from acrtask.builders.base import BuildSpec
from acrtask.platform import DEFAULT_PLATFORM

SECRET = "tok-7f3a9c-very-secret"  # a secret build arg's value, looked for in logs, history and argv


def build_spec(context_dir: Path = Path("/src"), **overrides: object) -> BuildSpec:
    """A spec building `context_dir`/Dockerfile unless `dockerfile` says otherwise."""
    fields: dict = dict(
        context_dir=context_dir, dockerfile=context_dir / "Dockerfile", images=("r.example.com/a:1",),
        build_args={}, secret_args={}, target=None, platform=DEFAULT_PLATFORM, no_cache=False, push=True,
        insecure_registries=frozenset(), annotations={},
    )
    fields.update(overrides)
    return BuildSpec(**fields)


def spec_of(folder: Path, dockerfile: str, images: tuple[str, ...], **overrides: object) -> BuildSpec:
    """A spec building `dockerfile`, written into a context folder `folder/ctx`."""
    context = folder / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    return build_spec(context, images=images, **overrides)
