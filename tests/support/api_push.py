"""Filling a registry fast for benchmarks: many small images pushed straight through the registry API."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx

from acrtask.media import OCI_MANIFEST

# acrtask reads no config or layer types (acrtask/media.py holds only what it reads): these are for pushing.
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


async def fill_registry(url: str, repos: int, tags: int, prefix: str) -> list[tuple[str, str, str]]:
    """Push `repos` x `tags` small images (tags v0, v1, ...) through the registry API, much faster than
    building them; returns (repository, tag, manifest digest) for each."""
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=16), timeout=60.0,
                                 trust_env=False) as client:
        gate = asyncio.Semaphore(16)

        async def blob(name: str, data: bytes) -> str:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            start = await client.post(f"/v2/{name}/blobs/uploads/")
            start.raise_for_status()
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            put = await client.put(f"{location}{sep}digest={digest}", content=data,
                                   headers={"Content-Type": "application/octet-stream"})
            put.raise_for_status()
            return digest

        async def repo(i: int) -> list[tuple[str, str, str]]:
            name = f"{prefix}{i:03d}"
            layer = f"layer of {name}\n".encode()  # any bytes do: the registry never opens a layer
            config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
                "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
            async with gate:
                config_digest = await blob(name, config)
                layer_digest = await blob(name, layer)
                pushed = []
                for t in range(tags):
                    tag = f"v{t}"
                    manifest = json.dumps({
                        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
                        "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": len(layer)}],
                        "annotations": {"bench.tag": f"{name}:{tag}"},
                    }).encode()
                    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
                    r = await client.put(f"/v2/{name}/manifests/{tag}", content=manifest,
                                         headers={"Content-Type": OCI_MANIFEST})
                    r.raise_for_status()
                    if r.headers.get("docker-content-digest") != digest:
                        raise SystemExit(f"{name}:{tag}: registry says {r.headers.get('docker-content-digest')}")
                    pushed.append((name, tag, digest))
                return pushed

        batches = await asyncio.gather(*(repo(i) for i in range(repos)))
    return [item for batch in batches for item in batch]
