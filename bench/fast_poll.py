"""What the fast poll costs: requests per minute for N fast-polled base tags, against a real registry.

    python bench/fast_poll.py [--tags 100,1000] [--interval 2] [--window 20]

For each N: starts a local docker-registry on 127.0.0.1 (anonymous), fills it with N tags through the
registry API (tests/support/api_push.py), and writes N tasks, each with a Runtime dependency on one tag at
its current digest and pushing to the same registry, so every base is on the fast schedule (nothing is
marked) and nothing triggers. Then runs a real `acrtask task watch --fast-poll-interval INTERVAL` and,
after its first cycle, counts for WINDOW seconds:

  - acrtask's requests in the registry's access log (by method and kind);
  - CPU seconds used by the registry process and by the watch process (/proc/<pid>/stat).

INTERVAL is short so that a short window sees many cycles; the figures per cycle do not depend on it, and
the bench prints what they come to at the default 30 s interval: requests per minute, and the registry's
CPU share (its CPU per request here times that rate). Exit 0 with the figures; 1 when the bench cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acrtask.registry.http import USER_AGENT  # noqa: E402
from bench.watch_scale import ACCESS_LINE, write_state  # noqa: E402
from tests.support.api_push import fill_registry  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402

DEFAULT_INTERVAL = 30.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def requests_between(log: Path, start: int, end: int) -> Counter[str]:
    """acrtask's requests in the access log between two byte offsets: "METHOD kind status" -> count."""
    with open(log, "rb") as fh:
        fh.seek(start)
        chunk = fh.read(end - start).decode(errors="replace")
    counts: Counter[str] = Counter()
    for line in chunk.splitlines():
        match = ACCESS_LINE.match(line.strip())
        if match is None or not match.group(4).startswith(USER_AGENT.split("/")[0]):
            continue
        method, uri, status = match.group(1), match.group(2), match.group(3)
        kind = "manifest" if "/manifests/" in uri else "ping" if uri.rstrip("/") == "/v2" else "other"
        counts[f"{method} {kind} {status}"] += 1
    return counts


def heads_so_far(log: Path) -> int:
    return sum(requests_between(log, 0, log.stat().st_size).values())


def measure(tags: int, interval: float, window: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="acrtask-bench-fast-") as tmp_name, LocalRegistry() as registry:
        tmp = Path(tmp_name)
        home, context = tmp / "home", tmp / "context"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM scratch\n")
        repos = max(1, tags // 10)
        bases = asyncio.run(fill_registry(registry.url, repos, tags // repos, "bench/fast"))
        write_state(home, registry.host, bases, len(bases), context)
        env = {**os.environ, "ACRTASK_HOME": str(home)}
        for name in ("ACRTASK_REGISTRY", "ACRTASK_FAST_REGISTRIES"):
            env.pop(name, None)
        assert registry.log_path is not None and registry._proc is not None
        log, err_path = registry.log_path, tmp / "watch.stderr"
        with open(err_path, "w") as err:
            watch = subprocess.Popen(  # noqa: S603 - our interpreter, an argument list
                [sys.executable, "-m", "acrtask", "task", "watch", "--fast-poll-interval", f"{interval}s"],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 300
            while heads_so_far(log) < len(bases):  # the first cycle (the check at start) is done
                if watch.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"watch did not finish its first cycle:\n{err_path.read_text()[-3000:]}")
                time.sleep(0.2)
            time.sleep(interval)
            offset = log.stat().st_size
            registry_cpu, watch_cpu = cpu_seconds(registry._proc.pid), cpu_seconds(watch.pid)
            t0 = time.monotonic()
            time.sleep(window)
            registry_cpu = cpu_seconds(registry._proc.pid) - registry_cpu
            watch_cpu = cpu_seconds(watch.pid) - watch_cpu
            elapsed = time.monotonic() - t0
            time.sleep(0.3)  # the registry writes its access line after the answer
            counts = requests_between(log, offset, log.stat().st_size)
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.wait(timeout=60)
        schedule = next((line for line in err_path.read_text().splitlines() if "Schedule:" in line), "?")
    total = sum(counts.values())
    cycles = elapsed / interval
    per_tag = total / cycles / len(bases)
    at_default = len(bases) * per_tag * 60 / DEFAULT_INTERVAL
    cpu_per_request = registry_cpu / total if total else 0.0
    print(f"{len(bases)} tags, --fast-poll-interval {interval:g}s, {elapsed:.1f}s counted (~{cycles:.1f} cycles)")
    print(f"  watch said: {schedule.split('Schedule: ', 1)[-1][:110]}")
    print(f"  requests: {total} ({', '.join(f'{k}: {n}' for k, n in sorted(counts.items()))}); "
          f"{total / elapsed * 60:.0f}/min; {per_tag:.3f} per tag per cycle")
    print(f"  registry CPU: {registry_cpu:.2f}s ({cpu_per_request * 1e6:.0f} us per request); "
          f"watch CPU: {watch_cpu:.2f}s ({watch_cpu / elapsed * 100:.1f}% of one core)")
    print(f"  at the default {DEFAULT_INTERVAL:g}s: {at_default:.0f} requests/min ({at_default / 60:.1f}/s), "
          f"registry CPU {at_default / 60 * cpu_per_request * 100:.2f}% of one core, watch CPU "
          f"{watch_cpu / elapsed * interval / DEFAULT_INTERVAL * 100:.2f}%", flush=True)
    return {"tags": len(bases), "per_minute_at_default": at_default, "per_tag": per_tag}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", default="100,1000", help="comma-separated tag counts")
    parser.add_argument("--interval", type=float, default=2.0, help="--fast-poll-interval of the measured watch")
    parser.add_argument("--window", type=float, default=20.0, help="seconds counted, after the first cycle")
    args = parser.parse_args()
    results = [measure(int(n), args.interval, args.window) for n in args.tags.split(",")]
    largest = max(results, key=lambda r: r["tags"])
    print(f"\nSummary: each fast-polled tag costs {largest['per_tag']:.3f} requests per cycle (one HEAD, no token on "
          f"this anonymous registry): 1,000 tags at {DEFAULT_INTERVAL:g}s are "
          f"{1000 * largest['per_tag'] * 60 / DEFAULT_INTERVAL:.0f} requests/min.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
