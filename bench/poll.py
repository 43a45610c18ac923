"""Benchmark of the polling hot path: acrtask against the registry's own ceiling and against skopeo.

    python bench/poll.py [--repos 200] [--tags 10] [--rounds 5] [--concurrency 16]

Starts a local docker-registry (tests/support/registry.py) on 127.0.0.1, fills it with REPOS x TAGS tags
through the registry API (one config blob per repository, one small manifest per tag), then measures, in
rounds interleaved so machine noise hits every contender alike:

  (a) acrtask: RegistryClient.check_many over every tag (all unchanged after the first round);
  (b) the ceiling: ApacheBench `ab -i -k` HEADs on one tag at the same concurrency;
  (c) plain httpx: an out-of-the-box AsyncClient sending the same HEADs (for reference);
  (d) skopeo: `skopeo inspect --raw` on a sample of tags, one after another.

The registry runs with tests/support/registry.py's config (access log on, as a production registry would
have); ab, acrtask and the registry share the machine's CPUs, so the ratio is what matters, not the rates.

Prints the medians, acrtask's ratio to the ceiling and to skopeo, and HTTP requests per unchanged tag
(counted through RegistryClient's on_request hook). Targets: >= 0.6 of the ceiling, >= 10x skopeo,
exactly 1 request per unchanged tag.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acrtask.media import ACCEPT  # noqa: E402
from acrtask.reference import ImageRef  # noqa: E402
from acrtask.registry import Policy, RegistryClient  # noqa: E402
from tests.support.api_push import fill_registry  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"




async def acrtask_round(client: RegistryClient, refs: list[ImageRef],
                        counter: list[int]) -> tuple[float, int, float]:
    """checks/s, requests sent, and this process's CPU microseconds per check."""
    before = counter[0]
    cpu, start = time.process_time(), time.perf_counter()
    results = await client.check_many(refs)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    failed = [r for r in results.values() if isinstance(r, Exception)]
    if failed:
        raise SystemExit(f"acrtask: {len(failed)} checks failed, first: {failed[0]}")
    return len(refs) / elapsed, counter[0] - before, cpu / len(refs) * 1e6


async def httpx_round(urls: list[str], concurrency: int) -> float:
    async with httpx.AsyncClient() as client:  # out of the box, as a reference point
        gate = asyncio.Semaphore(concurrency)

        async def one(url: str) -> None:
            async with gate:
                r = await client.head(url, headers={"Accept": ACCEPT})
                r.raise_for_status()
                r.headers["docker-content-digest"]

        start = time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        return len(urls) / (time.perf_counter() - start)


def ab_round(url: str, requests: int, concurrency: int) -> float:
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["ab", "-q", "-i", "-k", "-n", str(requests), "-c", str(concurrency), "-H", f"Accept: {ACCEPT}", url],
        capture_output=True, text=True, timeout=300, check=True).stdout
    if re.search(r"Non-2xx responses:\s+[1-9]", out) or not re.search(r"Failed requests:\s+0\b", out):
        raise SystemExit(f"ab saw failures:\n{out}")
    match = re.search(r"Requests per second:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"cannot read ab output:\n{out}")
    return float(match.group(1))


def skopeo_round(host: str, sample: list[tuple[str, str]]) -> float:
    start = time.perf_counter()
    for name, tag in sample:
        subprocess.run(  # noqa: S603 - fixed argv
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{name}:{tag}"],
            capture_output=True, timeout=60, check=True)
    return len(sample) / (time.perf_counter() - start)


async def bench(args: argparse.Namespace) -> None:
    for tool in ("ab", "skopeo"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apache2-utils, skopeo)")
    with LocalRegistry() as registry:
        t0 = time.perf_counter()
        pushed = [(name, tag) for name, tag, _ in await fill_registry(registry.url, args.repos, args.tags,
                                                                          "bench/repo")]
        print(f"registry {registry.url}: pushed {len(pushed)} tags in {time.perf_counter() - t0:.1f}s")
        refs = [ImageRef.parse(f"{registry.host}/{name}:{tag}") for name, tag in pushed]
        urls = [f"{registry.url}/v2/{name}/manifests/{tag}" for name, tag in pushed]
        ab_url = urls[0]
        sample = pushed[:: max(1, len(pushed) // args.skopeo_sample)][: args.skopeo_sample]
        counter = [0]

        def count(method: str, url: httpx.URL) -> None:
            counter[0] += 1

        policy = Policy(concurrency=args.concurrency)
        async with RegistryClient(policy=policy, on_request=count) as client:
            await acrtask_round(client, refs, counter)  # warm-up: connections (tags are now "unchanged")
            ours, ceiling, plain, skopeo, per_tag, cpu = [], [], [], [], [], []
            for _ in range(args.rounds):  # interleaved, so load from elsewhere hits all four alike
                ceiling.append(ab_round(ab_url, args.ab_requests, args.concurrency))
                rate, requests, micros = await acrtask_round(client, refs, counter)
                ours.append(rate)
                cpu.append(micros)
                per_tag.append(requests / len(refs))
                plain.append(await httpx_round(urls, args.concurrency))
                skopeo.append(skopeo_round(registry.host, sample))
                print(f"  round: ab {ceiling[-1]:6.0f}/s  acrtask {rate:6.0f}/s  plain httpx {plain[-1]:6.0f}/s"
                      f"  skopeo {skopeo[-1]:5.1f}/s  ratio {rate / ceiling[-1]:.2f}", flush=True)

    med_ours, med_ceiling, med_plain, med_skopeo = map(statistics.median, (ours, ceiling, plain, skopeo))
    ratios = [o / c for o, c in zip(ours, ceiling, strict=True)]
    speedups = [o / s for o, s in zip(ours, skopeo, strict=True)]
    print(f"\nchecks: {len(refs)} tags ({args.repos} repositories x {args.tags}), concurrency {args.concurrency},"
          f" {args.rounds} rounds (medians)")
    print(f"  acrtask check_many   {med_ours:8.0f} checks/s  ({statistics.median(cpu):.0f} us client CPU per check)")
    print(f"  registry ceiling (ab){med_ceiling:8.0f} req/s")
    print(f"  plain httpx          {med_plain:8.0f} checks/s  ({med_plain / med_ceiling:.2f} of ceiling)")
    print(f"  skopeo inspect --raw {med_skopeo:8.1f} checks/s  ({len(sample)} tags, sequential)")
    print(f"  ratio to ceiling     {med_ours / med_ceiling:8.2f}  (per-round median {statistics.median(ratios):.2f};"
          " target >= 0.6)")
    print(f"  ratio to skopeo      {med_ours / med_skopeo:8.1f}x (per-round median {statistics.median(speedups):.1f}x;"
          " target >= 10x)")
    print(f"  requests per unchanged tag {statistics.mean(per_tag):.3f} (target exactly 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ab-requests", type=int, default=6000)
    parser.add_argument("--skopeo-sample", type=int, default=20)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
