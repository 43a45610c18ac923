"""`image digest` and `task graph` against real images: what users and scripts see."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support import push_multiarch_base

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def test_image_digest(bench: Workbench) -> None:
    digest = bench.push_base("baseimages/node:15-alpine", "v1")
    done = bench.acrtask("image", "digest", bench.image("baseimages/node:15-alpine"))
    assert done.code == 0, done.err
    assert done.json()["digest"] == digest
    tsv = bench.acrtask("image", "digest", bench.image("baseimages/node:15-alpine"), "--query", "digest", "-o", "tsv")
    assert tsv.out == digest + "\n"


def test_image_digest_for_a_platform(bench: Workbench) -> None:
    index, platforms = push_multiarch_base(bench.host, "multi/base:1", {"linux/amd64": "a", "linux/arm64": "b"},
                                           env=bench.env)
    done = bench.acrtask("image", "digest", bench.image("multi/base:1"), "--platform", "linux/aarch64")
    assert done.code == 0, done.err
    assert done.json()["digest"] == index
    assert done.json()["platformDigest"] == platforms["linux/arm64"]


def test_image_digest_of_a_missing_tag_exits_3(bench: Workbench) -> None:
    done = bench.acrtask("image", "digest", bench.image("no/such:tag"))
    assert done.code == 3
    assert done.err.startswith("ERROR: ") and done.err.count("\n") == 1


MERMAID_LINE = re.compile(r'^    (\w+\["[^"]+"\]|\w+\("[^"]+"\)|\w+ (-->|-\.->)\|\w+\| \w+)$')


def test_graph_of_the_quickstart_tasks_is_valid_mermaid(bench: Workbench) -> None:
    base = bench.tmp / "base"
    shutil.copytree(ROOT / "examples" / "quickstart" / "base", base)
    shutil.copy("/bin/busybox", base / "busybox")
    (base / "version").write_text("v1\n")
    bench.create("baseimage", base, "baseimages/node:15-alpine")
    app = ROOT / "examples" / "quickstart" / "app"
    done = bench.acrtask("task", "create", "-n", "hello-world", "-c", str(app), "--arg", f"REGISTRY={bench.host}",
                         "-t", bench.image("hello-world:{{.Run.ID}}"), "-t", bench.image("hello-world:latest"),
                         "-o", "none")
    assert done.code == 0, done.err
    assert bench.run("baseimage").code == 0
    assert bench.run("hello-world").code == 0

    mermaid = bench.acrtask("task", "graph", "-o", "mermaid")
    assert mermaid.code == 0, mermaid.err
    lines = mermaid.out.splitlines()
    assert lines[0] == "flowchart LR"
    assert all(MERMAID_LINE.match(line) for line in lines[1:]), lines
    defined = {re.match(r"^    (\w+)[\[(]", line).group(1) for line in lines[1:] if "|" not in line}
    for line in lines[1:]:
        if "|" in line:
            source, _, target = line.split()  # e.g. a -->|pushes| b
            assert source in defined and target in defined
    text = mermaid.out
    assert f'("{bench.host}/baseimages/node:15-alpine")' in text
    assert '["hello-world"]' in text and '["baseimage"]' in text
    assert "-->|RunTime| task_hello_world" in text
    assert "task_baseimage -->|pushes|" in text
