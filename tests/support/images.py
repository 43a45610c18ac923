"""Make tiny base images with buildah, without network, and push them to a LocalRegistry.

Each image is ``FROM scratch`` + the static busybox binary (``/bin/busybox`` with ``/bin/sh`` and a
few applet symlinks) + ``/etc/base-version`` holding ``content``. Commits use ``--timestamp 0`` so
the same (content, platform, format, labels) always gives the same digest and different content
gives a different one.

buildah runs as root in a container with ``STORAGE_DRIVER=vfs`` and ``BUILDAH_ISOLATION=chroot``,
and with its own storage (graphroot/runroot) under a temp dir: see ``buildah_env``. Without an
explicit ``env``, each process (so each pytest-xdist worker) lazily creates one private storage dir
that is removed at exit, so workers never share containers/storage locks.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import httpx

from acrtask import media
from tests.support.registry import INSTALL_HINT

BUSYBOX = "/bin/busybox"
BUSYBOX_APPLETS = ("sh", "cat", "echo", "ls", "true", "false", "sleep", "env", "test", "mkdir", "rm")
_FORMATS = {"oci": "oci", "docker": "v2s2", "v2s2": "v2s2"}
_TIMEOUT = 120


class ImageToolError(RuntimeError):
    pass


# -- environment --------------------------------------------------------------------------------------


def buildah_env(tmp: str | os.PathLike[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running ``buildah``/``skopeo`` as root in a container, storage under ``tmp``.

    Writes ``tmp/storage.conf`` (vfs driver, graphroot ``tmp/graph``, runroot ``tmp/run``) and
    ``tmp/registries.conf`` (no short-name search; 127.0.0.1 and localhost are insecure=plain HTTP),
    and returns ``base`` (default: ``os.environ``) plus STORAGE_DRIVER, BUILDAH_ISOLATION,
    CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF and TMPDIR. Pass it as ``env=`` to subprocess.
    Idempotent for the same ``tmp``; give each concurrent process its own ``tmp``.

    buildah 1.28 honours CONTAINERS_REGISTRIES_CONF (so ``FROM 127.0.0.1:PORT/x`` pulls over HTTP);
    skopeo 1.9 does not: give it ``--tls-verify=false`` (or ``--registries-conf``).
    """
    root = Path(tmp).resolve()
    for sub in ("graph", "run", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    storage_conf = root / "storage.conf"
    storage_conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{root / "graph"}"\nrunroot = "{root / "run"}"\n')
    registries_conf = root / "registries.conf"
    registries_conf.write_text(
        "unqualified-search-registries = []\n"
        'short-name-mode = "disabled"\n'
        # containers/image matches a location as a host prefix, so these also cover 127.0.0.1:PORT.
        '[[registry]]\nlocation = "127.0.0.1"\ninsecure = true\n'
        '[[registry]]\nlocation = "localhost"\ninsecure = true\n'
    )
    env = dict(os.environ if base is None else base)
    env.update(
        STORAGE_DRIVER="vfs",
        BUILDAH_ISOLATION="chroot",
        CONTAINERS_STORAGE_CONF=str(storage_conf),
        CONTAINERS_REGISTRIES_CONF=str(registries_conf),
        TMPDIR=str(root / "tmp"),
    )
    return env


_default_lock = threading.Lock()
_default: dict[str, str] | None = None


def default_buildah_env() -> dict[str, str]:
    """This process's private buildah environment (created on first use, removed at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            tmp = tempfile.mkdtemp(prefix=f"acrtask-buildah-{os.getpid()}-")
            atexit.register(shutil.rmtree, tmp, True)
            _default = buildah_env(tmp)
        return _default


# -- helpers -------------------------------------------------------------------------------------------


def check_tools() -> list[str]:
    """Problems that prevent building base images here (empty when all is well)."""
    problems = []
    if shutil.which("buildah") is None:
        problems.append("`buildah` is not installed")
    if not os.access(BUSYBOX, os.X_OK):
        problems.append(f"{BUSYBOX} is missing (package busybox-static)")
    elif not _is_static_elf(BUSYBOX):
        problems.append(f"{BUSYBOX} is dynamically linked: install busybox-static, not busybox")
    return problems


def _is_static_elf(path: str) -> bool:
    """True when the ELF file has no PT_INTERP program header (so it runs FROM scratch)."""
    with open(path, "rb") as fh:
        data = fh.read(1 << 16)
    if data[:4] != b"\x7fELF":
        return False
    bits64, little = data[4] == 2, data[5] == 1
    order: Literal["little", "big"] = "little" if little else "big"

    def num(off: int, size: int) -> int:
        return int.from_bytes(data[off : off + size], order)

    if bits64:
        phoff, phentsize, phnum = num(0x20, 8), num(0x36, 2), num(0x38, 2)
    else:
        phoff, phentsize, phnum = num(0x1C, 4), num(0x2A, 2), num(0x2C, 2)
    for i in range(phnum):
        if num(phoff + i * phentsize, 4) == 3:  # PT_INTERP
            return False
    return True


def _run(args: list[str], env: Mapping[str, str]) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            args, env=dict(env), capture_output=True, text=True, timeout=_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise ImageToolError(f"{args[0]} not found: {INSTALL_HINT}") from exc
    if proc.returncode != 0:
        raise ImageToolError(
            f"{' '.join(args)} failed with {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\n"
            f"stderr:\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def parse_platform(platform: str) -> tuple[str, str, str]:
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform must be os/arch[/variant], got {platform!r}")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def _creds_args(creds: tuple[str, str] | None) -> list[str]:
    return [] if creds is None else ["--creds", f"{creds[0]}:{creds[1]}"]


def _write_rootfs(ctx: Path, content: str) -> None:
    (ctx / "bin").mkdir(parents=True)
    (ctx / "etc").mkdir()
    (ctx / "tmp").mkdir()
    shutil.copy2(BUSYBOX, ctx / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (ctx / "bin" / applet).symlink_to("busybox")
    (ctx / "etc" / "base-version").write_text(content)


def build_local_image(
    content: str,
    platform: str = "linux/amd64",
    *,
    labels: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Commit a busybox base image into local buildah storage; returns its local name."""
    env = default_buildah_env() if env is None else env
    problems = check_tools()
    if problems:
        raise ImageToolError("; ".join(problems) + f": {INSTALL_HINT}")
    os_, arch, variant = parse_platform(platform)
    name = f"localhost/acrtask-test-base-{uuid.uuid4().hex[:12]}"
    workdir = Path(tempfile.mkdtemp(prefix="ctx-", dir=env.get("TMPDIR")))
    ctr = ""
    try:
        _write_rootfs(workdir / "rootfs", content)
        ctr = _run(["buildah", "from", "--pull=never", "scratch"], env).strip()
        _run(["buildah", "copy", ctr, str(workdir / "rootfs"), "/"], env)
        config = ["buildah", "config", "--os", os_, "--arch", arch, "--cmd", '["/bin/sh"]']
        config += ["--env", "PATH=/bin"]
        if variant:
            config += ["--variant", variant]
        for key, value in (labels or {}).items():
            config += ["--label", f"{key}={value}"]
        _run([*config, ctr], env)
        _run(["buildah", "commit", "--quiet", "--timestamp", "0", "--rm", ctr, name], env)
        ctr = ""
        return name
    finally:
        if ctr:
            subprocess.run(  # noqa: S603 - fixed argv, no shell
                ["buildah", "rm", ctr], env=dict(env), capture_output=True, timeout=_TIMEOUT
            )
        shutil.rmtree(workdir, ignore_errors=True)


def _rmi(names: list[str], env: Mapping[str, str]) -> None:
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["buildah", "rmi", "--force", *names], env=dict(env), capture_output=True, timeout=_TIMEOUT
    )


def _read_digest(path: Path) -> str:
    digest = path.read_text().strip()
    if not digest.startswith("sha256:"):
        raise ImageToolError(f"unexpected digest file content {digest!r}")
    return digest


# -- public API ----------------------------------------------------------------------------------------


def push_base_image(
    registry_host: str,
    repo_tag: str,
    content: str = "v1",
    platform: str = "linux/amd64",
    *,
    format: str = "oci",
    labels: Mapping[str, str] | None = None,
    creds: tuple[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Build a busybox base image and push it to ``registry_host/repo_tag`` over plain HTTP.

    ``registry_host`` is ``127.0.0.1:PORT`` (``LocalRegistry.host``), ``repo_tag`` is ``repo:tag``.
    ``format`` is ``"oci"`` or ``"docker"`` (schema 2). Returns the pushed manifest digest.
    """
    env = default_buildah_env() if env is None else env
    fmt = _FORMATS[format]
    name = build_local_image(content, platform, labels=labels, env=env)
    digestfile = Path(tempfile.mkdtemp(prefix="digest-", dir=env.get("TMPDIR"))) / "digest"
    try:
        push = ["buildah", "push", "--quiet", "--tls-verify=false", "--format", fmt]
        push += ["--digestfile", str(digestfile), *_creds_args(creds)]
        _run([*push, name, f"docker://{registry_host}/{repo_tag}"], env)
        return _read_digest(digestfile)
    finally:
        _rmi([name], env)
        shutil.rmtree(digestfile.parent, ignore_errors=True)


def push_multiarch_base(
    registry_host: str,
    repo_tag: str,
    contents: Mapping[str, str],
    *,
    format: str = "oci",
    creds: tuple[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """Push an image index with one busybox image per platform (``{"linux/arm64": "v1", ...}``).

    Non-native platforms only carry the label (os/arch/variant in the config); they need not run.
    Returns ``(index_digest, {platform: manifest_digest})``; per-platform digests are read back
    from the pushed index, so they are what clients resolving the index will see.
    """
    if not contents:
        raise ValueError("contents must name at least one platform")
    env = default_buildah_env() if env is None else env
    fmt = _FORMATS[format]
    list_name = f"localhost/acrtask-test-list-{uuid.uuid4().hex[:12]}"
    images: list[str] = []
    digestfile = Path(tempfile.mkdtemp(prefix="digest-", dir=env.get("TMPDIR"))) / "digest"
    try:
        _run(["buildah", "manifest", "create", list_name], env)
        for platform, content in contents.items():
            name = build_local_image(content, platform, env=env)
            images.append(name)
            os_, arch, variant = parse_platform(platform)
            add = ["buildah", "manifest", "add", "--os", os_, "--arch", arch]
            if variant:
                add += ["--variant", variant]
            _run([*add, list_name, f"containers-storage:{name}"], env)
        push = ["buildah", "manifest", "push", "--all", "--quiet", "--tls-verify=false", "--format", fmt]
        push += ["--digestfile", str(digestfile), *_creds_args(creds)]
        _run([*push, list_name, f"docker://{registry_host}/{repo_tag}"], env)
        index_digest = _read_digest(digestfile)
    finally:
        _rmi([list_name, *images], env)
        shutil.rmtree(digestfile.parent, ignore_errors=True)

    repo = repo_tag.rsplit(":", 1)[0] if ":" in repo_tag.rsplit("/", 1)[-1] else repo_tag
    index = fetch_manifest(registry_host, repo, index_digest, creds=creds)
    per_platform: dict[str, str] = {}
    for desc in index.get("manifests", []):
        p = desc.get("platform", {})
        key = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
        per_platform[key] = desc["digest"]
    missing = set(contents) - set(per_platform)
    if missing:
        raise ImageToolError(f"pushed index lacks platforms {sorted(missing)}: {index}")
    return index_digest, {platform: per_platform[platform] for platform in contents}


def fetch_manifest(registry_host: str, repo: str, reference: str, *, creds: tuple[str, str] | None = None) -> dict:
    """GET a manifest or index (any OCI/Docker type) as JSON from a plain-HTTP registry."""
    with httpx.Client(timeout=10.0, trust_env=False, auth=creds) as client:
        r = client.get(f"http://{registry_host}/v2/{repo}/manifests/{reference}", headers={"Accept": media.ACCEPT})
        r.raise_for_status()
        return r.json()


def head_digest(registry_host: str, repo: str, reference: str, *, creds: tuple[str, str] | None = None) -> str:
    """HEAD a manifest and return its Docker-Content-Digest."""
    with httpx.Client(timeout=10.0, trust_env=False, auth=creds) as client:
        r = client.head(f"http://{registry_host}/v2/{repo}/manifests/{reference}", headers={"Accept": media.ACCEPT})
        r.raise_for_status()
        return r.headers["Docker-Content-Digest"]
