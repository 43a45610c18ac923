"""Watch at scale: 10,000 tasks over 1,000 distinct base tags, one full check cycle.

    python bench/watch_scale.py [--repos 100] [--tags 10] [--tasks 10000] [--rounds 5]

Starts a local docker-registry on 127.0.0.1 (anonymous, so no token requests) and fills it through
the registry API with httpx: per repository one tiny config blob and one layer blob, then one
manifest per tag (an annotation makes each tag's manifest, so its digest, distinct). The state database
is written directly (acrtask.state.StateStore + model objects): TASKS tasks, task i has a Runtime
dependency on base i % BASES with that tag's current digest, so a check triggers nothing.

Then, in rounds interleaved so a noisy machine hits every contender alike:

  (a) requests: a real `acrtask task watch --once` subprocess, counted from the registry's own
      access log (lines with acrtask's User-Agent, by method and path). Target: BASES manifest HEADs
      and nothing else but token requests (none here, the registry is anonymous).
  (b) cycle time: an in-process harness builds the Watcher exactly as `task watch` does (real
      StateStore, RunStore, RegistryTagChecker over a fresh BlockingRegistryClient, RunService) and
      times `Watcher.tick()` with every base due, until the check results (which come back as events
      from each registry's own thread) are in: the first ("cold": new connections, the registry's
      auth scheme learnt) and a second one ("warm"). The watcher is opened (its state checked, its tasks
      loaded and planned: `Watcher.open()`) before the timer starts.
      The ceiling is ApacheBench `ab -k -n BASES -c 16 -i` HEADs on one tag, run in the same round.
      Target: the cold cycle at most 2x ab's time.
  (c) the whole `watch --once` subprocess against what it cannot avoid: its check cycle (the cold cycle
      of (b)) plus a no-op baseline (`watch --once` on an empty ACRTASK_HOME: start-up and imports). What
      is left is loading and planning the TASKS tasks. Target: at most 1.5x.
  (d) peak RSS of the `watch --once` subprocess (its own ru_maxrss from wait4, in a small launcher process,
      and VmHWM sampled from /proc while it runs). Target: <= 200 MB.

Exit code 0 whatever the figures (MISSED is printed for a target not met); 1 only when the bench itself
cannot run (ab missing, a check failing, watch exiting non-zero).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acrtask.dependency import BaseImageDependency, DependencyType  # noqa: E402
from acrtask.media import OCI_MANIFEST  # noqa: E402
from acrtask.model import Step, Task  # noqa: E402
from acrtask.platform import DEFAULT_PLATFORM  # noqa: E402
from acrtask.reference import ImageRef  # noqa: E402
from acrtask.registry.http import USER_AGENT  # noqa: E402
from acrtask.state import Database, StateStore  # noqa: E402
from tests.support.api_push import fill_registry  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
TARGET_CYCLE_RATIO = 2.0
TARGET_ONCE_RATIO = 1.5
TARGET_RSS_MB = 200.0
CONCURRENCY = 16  # ab's -c, and acrtask's default Policy.concurrency
ACCESS_LINE = re.compile(r'^\S+ - \S+ \[[^\]]*\] "(\w+) (\S+) HTTP/[\d.]+" (\d{3}) .*"([^"]*)"\s*$')


# -- filling the registry and the state database ------------------------------------------------------


def write_state(home: Path, host: str, bases: list[tuple[str, str, str]], tasks: int, context: Path) -> Path:
    db = Database(home / "state.db")
    with StateStore(db).transaction() as tx:
        for i in range(tasks):
            repository, tag, digest = bases[i % len(bases)]
            name = f"app-{i:05d}"
            dep = BaseImageDependency(type=DependencyType.RUNTIME, image=ImageRef(host, repository, tag),
                                      digest=digest, platform_digest=digest, platform=DEFAULT_PLATFORM)
            tx.save(Task(
                name=name,
                step=Step(context_path=str(context), image_names=(f"{host}/apps/app{i:05d}:latest",),
                          base_image_dependencies=(dep,)),
                creation_date="2026-11-27T00:00:00.000000Z",
            ))
    db.close()
    return db.path


# -- the contenders -----------------------------------------------------------------------------------


def ab_seconds(url: str, requests: int) -> float:
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["ab", "-q", "-k", "-n", str(requests), "-c", str(CONCURRENCY), "-i", "-H", f"Accept: {OCI_MANIFEST}", url],
        capture_output=True, text=True, timeout=300, check=True).stdout
    if re.search(r"Non-2xx responses:\s+[1-9]", out) or not re.search(r"Failed requests:\s+0\b", out):
        raise SystemExit(f"ab saw failures:\n{out}")
    match = re.search(r"Time taken for tests:\s+([\d.]+) seconds", out)
    if match is None:
        raise SystemExit(f"cannot read ab output:\n{out}")
    return float(match.group(1))


def harness_cycles(home: Path) -> tuple[float, float, int, float]:
    """(cold tick, warm tick, bases checked, opening: state check + load) in seconds, with a fresh client and
    Watcher."""
    os.environ["ACRTASK_HOME"] = str(home)  # acrtask.paths reads it at call time
    from acrtask import wiring
    from acrtask.cli.watch_view import PlainView
    from acrtask.registry import BlockingRegistryClient
    from acrtask.tag_checker import RegistryTagChecker
    from acrtask.watch.loop import Watcher, WatchOptions

    program = wiring.Program()
    client = BlockingRegistryClient()  # what program.registry_client builds (fresh each round here)
    try:
        options = WatchOptions(poll_min=3600.0, poll_max=3600.0, once=True)
        watcher = Watcher(program.state_store, program.run_store, RegistryTagChecker(client),
                          program.run_service, PlainView(io.StringIO()), options)
        t0 = time.perf_counter()
        watcher.open()  # what `watch` does at start: the integrity check, the lock, loading and planning the tasks
        load = time.perf_counter() - t0
        keys = list(watcher.plan.interests)
        book = watcher.scheduler.tags
        cycles = []
        try:
            for _ in range(2):
                for key in keys:
                    book.next_check[key] = 0.0  # every base due now, as at start
                t0 = time.perf_counter()
                watcher.tick()  # sends each registry's batch off on a thread of its own
                for _ in range(600):  # each result comes back as an event (at most 1 s per wait: 10 min in all)
                    if not watcher.scheduler.checking:
                        break
                    watcher.wait()
                cycles.append(time.perf_counter() - t0)
                bad = {str(k): e for k, e in book.errors.items()}
                if bad or watcher.queued or watcher.running:
                    raise SystemExit(f"the cycle failed or triggered: errors {list(bad.items())[:3]}, "
                                     f"queued {list(watcher.queued)[:3]}")
        finally:
            watcher.close()
        return cycles[0], cycles[1], len(keys), load
    finally:
        client.close()
        program.close()


# Starts `watch --once` and reports its pid, then its exit code, ru_maxrss (kB) and wall time. A small process of
# its own, because Linux counts the memory of the process that starts a child (vfork, then exec) in the
# child's ru_maxrss: started from this bench, which holds 10,000 tasks itself, it would report the bench's.
LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
print(pid, flush=True)
_, status, usage = os.wait4(pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.perf_counter() - t0]), flush=True)
"""


def run_watch_once(env: dict[str, str], err_path: Path) -> tuple[float, float, float, int]:
    """(wall seconds, ru_maxrss MB, sampled VmHWM MB, exit code) of `acrtask task watch --once`."""
    with open(err_path, "w") as err:
        launcher = subprocess.Popen(  # noqa: S603 - our interpreter, an argument list
            [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "acrtask", "task", "watch", "--once"], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
        assert launcher.stdout is not None
        pid = int(launcher.stdout.readline())
        hwm_kb = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                break
            found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if found is None:  # a zombie: it has exited
                break
            hwm_kb = max(hwm_kb, int(found.group(1)))
            time.sleep(0.02)  # not reaped until the launcher's wait4: an exited child stays a zombie, without VmHWM
        else:
            os.kill(pid, 9)
        code, maxrss_kb, wall = json.loads(launcher.stdout.readline())
        launcher.wait(timeout=60)
    return wall, maxrss_kb / 1024, hwm_kb / 1024, code


def count_requests(log: Path, offset: int) -> Counter[tuple[str, str]]:
    """acrtask's requests in the registry's access log after `offset`: (method, kind) -> count."""
    counts: Counter[tuple[str, str]] = Counter()
    with open(log, "rb") as fh:
        fh.seek(offset)
        for raw in fh:
            match = ACCESS_LINE.match(raw.decode(errors="replace").strip())
            if match is None or not match.group(4).startswith(USER_AGENT.split("/")[0]):
                continue
            method, uri, status = match.group(1), match.group(2), match.group(3)
            kind = ("manifest" if "/manifests/" in uri else "token" if "token" in uri else
                    "ping" if uri.rstrip("/") == "/v2" else "other")
            counts[(method, f"{kind} {status}")] += 1
    return counts


# -- the bench -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    args = parser.parse_args()
    if shutil.which("ab") is None:
        print("ab is not installed (apache2-utils; scripts/install-system-deps.sh)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="acrtask-bench-scale-") as tmp_name, LocalRegistry() as registry:
        tmp = Path(tmp_name)
        home, empty_home, context = tmp / "home", tmp / "empty-home", tmp / "context"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM scratch\n")
        empty_home.mkdir()
        t0 = time.perf_counter()
        bases = asyncio.run(fill_registry(registry.url, args.repos, args.tags, "bench/base"))
        t1 = time.perf_counter()
        state = write_state(home, registry.host, bases, args.tasks, context)
        t2 = time.perf_counter()
        print(f"registry {registry.url}: {len(bases)} base tags ({args.repos} repositories x {args.tags}) pushed in"
              f" {t1 - t0:.1f}s; {args.tasks} tasks written in {t2 - t1:.1f}s "
              f"(state.db {state.stat().st_size / 1e6:.1f} MB)", flush=True)

        env = {**os.environ, "ACRTASK_HOME": str(home)}
        env.pop("ACRTASK_REGISTRY", None)
        empty_env = {**env, "ACRTASK_HOME": str(empty_home)}
        repository, tag, _ = bases[0]
        ab_url = f"{registry.url}/v2/{repository}/manifests/{tag}"
        assert registry.log_path is not None

        ab_seconds(ab_url, len(bases))  # warm-up: the registry's caches, ab's and the page cache
        harness_cycles(home)
        rows: list[dict[str, float]] = []
        request_counts: list[Counter[tuple[str, str]]] = []
        for round_no in range(1, args.rounds + 1):
            row: dict[str, float] = {}
            row["ab"] = ab_seconds(ab_url, len(bases))
            row["cold"], row["warm"], checked, row["load"] = harness_cycles(home)
            if checked != len(bases):
                raise SystemExit(f"the watcher plans {checked} bases, not {len(bases)}")
            offset = registry.log_path.stat().st_size
            row["wall"], row["maxrss"], row["hwm"], code = run_watch_once(env, tmp / "watch.stderr")
            if code != 0:
                raise SystemExit(f"watch --once exited {code}:\n{(tmp / 'watch.stderr').read_text()[-3000:]}")
            time.sleep(0.3)  # the registry writes its access line after the answer
            request_counts.append(count_requests(registry.log_path, offset))
            row["baseline"], _, _, code = run_watch_once(empty_env, tmp / "baseline.stderr")
            if code != 0:
                raise SystemExit(f"baseline watch --once exited {code}")
            rows.append(row)
            print(f"  round {round_no}: ab {row['ab'] * 1000:6.0f} ms | cycle cold {row['cold'] * 1000:6.0f} ms"
                  f" ({row['cold'] / row['ab']:.2f}x ab), warm {row['warm'] * 1000:6.0f} ms | open"
                  f" {row['load'] * 1000:5.0f} ms | watch --once {row['wall']:.2f}s (no-op {row['baseline']:.2f}s),"
                  f" {sum(request_counts[-1].values())} requests, peak RSS {row['maxrss']:.0f} MB", flush=True)
        watch_log = (tmp / "watch.stderr").read_text()

    med = {name: statistics.median(r[name] for r in rows) for name in rows[0]}
    ratio_cold = statistics.median(r["cold"] / r["ab"] for r in rows)
    ratio_warm = statistics.median(r["warm"] / r["ab"] for r in rows)
    ratio_once = statistics.median(r["wall"] / (r["cold"] + r["baseline"]) for r in rows)
    peak = max(max(r["maxrss"], r["hwm"]) for r in rows)
    requests = request_counts[0]
    total = sum(requests.values())
    heads = requests.get(("HEAD", "manifest 200"), 0)
    tokens = sum(n for (method, kind), n in requests.items() if kind.startswith("token"))
    others = total - heads - tokens
    stable = all(c == requests for c in request_counts)

    print(f"\n{args.tasks} tasks over {len(bases)} bases, {args.rounds} rounds (medians)")
    print(f"  watch said: {next((ln.split(' ', 1)[1] for ln in watch_log.splitlines() if 'Watching' in ln), '?')}")
    print(f"(a) requests in one `watch --once` cycle: {total} "
          f"({', '.join(f'{m} {k}: {n}' for (m, k), n in sorted(requests.items()))}"
          f"{'' if stable else '; varied between rounds'})")
    verdict = "met" if heads == len(bases) and others == 0 else "MISSED"
    print(f"    target: {len(bases)} manifest HEADs + token requests ({tokens} here), nothing else: {verdict}"
          f" ({total / len(bases):.3f} requests per base)")
    print(f"(b) check cycle (in-process Watcher.tick, every base due): cold {med['cold'] * 1000:.0f} ms,"
          f" warm {med['warm'] * 1000:.0f} ms; registry ceiling (ab, {len(bases)} HEADs, -c {CONCURRENCY})"
          f" {med['ab'] * 1000:.0f} ms")
    verdict = "met" if ratio_cold <= TARGET_CYCLE_RATIO else "MISSED"
    print(f"    cold cycle / ab: {ratio_cold:.2f}x (per-round median; warm {ratio_warm:.2f}x)"
          f"  (target <= {TARGET_CYCLE_RATIO:.0f}x: {verdict})")
    verdict = "met" if ratio_once <= TARGET_ONCE_RATIO else "MISSED"
    print(f"(c) `watch --once` subprocess {med['wall']:.2f}s against its check cycle {med['cold']:.2f}s + the no-op"
          f" baseline {med['baseline']:.2f}s: {ratio_once:.2f}x (per-round median)"
          f"  (target <= {TARGET_ONCE_RATIO}x: {verdict})")
    print(f"    the rest is loading + planning {args.tasks} tasks: {med['wall'] - med['cold'] - med['baseline']:.2f}s"
          f" (in-process open alone, integrity check + load + plan: {med['load'] * 1000:.0f} ms)")
    verdict = "met" if peak <= TARGET_RSS_MB else "MISSED"
    print(f"(d) peak RSS of `watch --once`: {peak:.0f} MB (median ru_maxrss {med['maxrss']:.0f} MB, VmHWM"
          f" {med['hwm']:.0f} MB); {peak / TARGET_RSS_MB:.2f}x the target (target <= {TARGET_RSS_MB:.0f} MB:"
          f" {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
