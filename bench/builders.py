"""Build endpoints against one local builder: 16 tasks rebuilt by one base change.

    python bench/builders.py [--tasks 16] [--rounds 2] [--workloads wait,cpu]

Starts a local docker-registry and two `podman system service tcp:127.0.0.1:PORT` endpoints (each with
its own vfs storage), and two acrtask homes with the same 16 tasks FROM base/os:1:

  pool   `acrtask builder add` ep1 and ep2, 2 slots each: `task watch --once` runs 4 builds at once
         (--max-concurrent-runs defaults to the slots added up), each through `podman --remote`;
  local  no endpoints, `--builder buildah`, `task watch --once --max-concurrent-runs 2`.

Each round pushes a new digest of base/os:1 and runs `task watch --once` in both homes, one after the
other (the order alternates by round); the wall time of each `watch --once` is the figure, and the
ratio local / pool is printed per workload (median over rounds). Two workloads, because on one machine
the endpoints share its cores with everything else:

  wait   RUN sleep 2: a step that waits (a download, a test against a service); slots are what count.
  cpu    RUN a busybox shell loop of about 0.4 s of CPU: a step that computes; cores are what count.

Where the time goes, per config and round: the run records (mean build time, start to finish, and the
builds' mean concurrency: their summed time over the wall time), CPU seconds of the `watch` process and
its children (acrtask, podman clients or buildah), of the two podman services with the build steps
they ran, and of the registry, and how busy the machine's CPUs were (from /proc/stat).

Each home learns its bases from one real first run; the other 15 tasks get the same recorded
dependency written into the state database, so the bench spends its builds on the cascades.

Exit code 0 whatever the figures; 1 when the bench itself cannot run (a tool missing, a run failing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acrtask.state import Database, StateStore  # noqa: E402
from acrtask.times import parse_time  # noqa: E402
from tests.support import LocalRegistry, buildah_env, push_base_image  # noqa: E402
from tests.support.podman import PodmanService  # noqa: E402
from tests.support.procs import descendants  # noqa: E402

WORKLOADS = {
    "wait": "RUN sleep 2 && echo {name} > /app",
    "cpu": "RUN i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo {name} > /app",
}
TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


def acrtask(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "acrtask", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise BenchError(f"acrtask {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of `pid`, its reaped children, and its live descendants."""
    if pid is None:
        return 0.0
    total = 0
    for one in (pid, *descendants(pid)):
        try:
            stat = Path(f"/proc/{one}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += sum(int(fields[i]) for i in (11, 12) + ((13, 14) if one == pid else ()))
    return total / TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


@dataclass
class Home:
    name: str
    env: dict[str, str]
    watch_args: tuple[str, ...]


def make_home(label: str, root: Path, base_env: dict[str, str], registry: LocalRegistry, tasks: int,
              workload: str, endpoints: dict[str, PodmanService] | None) -> Home:
    home = root / f"{label}-{workload}"
    env = {**base_env, "ACRTASK_HOME": str(home / "home")}
    env.pop("ACRTASK_REGISTRY", None)
    for name, service in (endpoints or {}).items():
        acrtask(env, "builder", "add", name, "--url", service.url, "--max-concurrent", "2", "--platform",
                "linux/amd64", "-o", "none")
    names = []
    for i in range(tasks):
        name = f"{workload}-{i:02d}"
        ctx = home / name
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(f"FROM {registry.host}/base/os:1\n" + WORKLOADS[workload].format(name=name)
                                        + "\n")
        extra = () if endpoints else ("--builder", "buildah")
        acrtask(env, "task", "create", "-n", name, "-c", str(ctx), "-t", f"{registry.host}/{label}/{name}:1",
                *extra, "-o", "none")
        names.append(name)
    acrtask(env, "task", "run", "-n", names[0], "--no-logs", "-o", "none")
    db = Database(home / "home" / "state.db")
    with StateStore(db).transaction() as tx:
        learned = tx.get(names[0]).step.dependencies
        for name in names[1:]:
            tx.record_dependencies(name, learned)
    db.close()
    watch = () if endpoints else ("--max-concurrent-runs", "2")
    return Home(label, env, watch)


def runs_of(env: dict[str, str]) -> list[dict[str, Any]]:
    return json.loads(acrtask(env, "task", "list-runs", "--top", "1000").stdout)


def cascade(home: Home, services: dict[str, PodmanService], registry: LocalRegistry, tasks: int) -> dict[str, Any]:
    before = {r["runId"] for r in runs_of(home.env)}
    engines = {name: cpu_seconds(s.pid) for name, s in services.items()}
    reg = cpu_seconds(registry._proc.pid if registry._proc else None)
    busy0, total0 = machine_busy()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    acrtask(home.env, "task", "watch", "--once", *home.watch_args)
    wall = time.monotonic() - start
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = machine_busy()
    new = [r for r in runs_of(home.env) if r["runId"] not in before]
    if len(new) != tasks or any(r["status"] != "Succeeded" for r in new):
        raise BenchError(f"{home.name}: expected {tasks} succeeded runs, got "
                         f"{[(r['runId'], r['status'], r.get('runErrorMessage')) for r in new]}")
    durations = [(parse_time(r["finishTime"]) - parse_time(r["startTime"])).total_seconds() for r in new]
    agents: dict[str, int] = {}
    for r in new:
        agents[r.get("agentPoolName") or "local"] = agents.get(r.get("agentPoolName") or "local", 0) + 1
    return {
        "wall": wall, "mean_build": statistics.mean(durations), "concurrency": sum(durations) / wall,
        "cpu_watch": (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime),
        "cpu_engines": sum(cpu_seconds(s.pid) - engines[n] for n, s in services.items()),
        "cpu_registry": cpu_seconds(registry._proc.pid if registry._proc else None) - reg,
        "machine_busy": (busy1 - busy0) / max(1, total1 - total0), "agents": agents,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "2")))
    parser.add_argument("--workloads", default="wait,cpu")
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {sorted(WORKLOADS)}")
    print(f"{args.tasks} tasks, {args.rounds} round(s), workloads {workloads}, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory(prefix="acrtask-bench-builders-") as tmp, LocalRegistry() as registry, \
            PodmanService() as ep1, PodmanService() as ep2:
        root = Path(tmp)
        services = {"ep1": ep1, "ep2": ep2}
        env = {**os.environ, **buildah_env(root / "buildah")}
        push_base_image(registry.host, "base/os:1", "round-0", env=env)
        ratios = {}
        for workload in workloads:
            homes = [make_home("pool", root, env, registry, args.tasks, workload, services),
                     make_home("local", root, env, registry, args.tasks, workload, None)]
            walls: dict[str, list[float]] = {"pool": [], "local": []}
            for round_ in range(1, args.rounds + 1):
                push_base_image(registry.host, "base/os:1", f"{workload}-round-{round_}", env=env)
                for home in homes if round_ % 2 else reversed(homes):
                    found = cascade(home, services, registry, args.tasks)
                    walls[home.name].append(found["wall"])
                    print(f"  {workload:4} round {round_} {home.name:5}: wall {found['wall']:6.1f}s  "
                          f"mean build {found['mean_build']:5.1f}s  concurrency {found['concurrency']:4.2f}  "
                          f"CPU s: watch+clients {found['cpu_watch']:5.1f}, endpoints {found['cpu_engines']:5.1f}, "
                          f"registry {found['cpu_registry']:4.1f}  machine busy {found['machine_busy']:4.0%}  "
                          f"built on {found['agents']}", flush=True)
            ratios[workload] = statistics.median(walls["local"]) / statistics.median(walls["pool"])
            print(f"{workload}: local (buildah, 2 at once) / pool (2 endpoints x 2 slots) wall-time ratio "
                  f"{ratios[workload]:.2f}x (median local {statistics.median(walls['local']):.1f}s, "
                  f"pool {statistics.median(walls['pool']):.1f}s)", flush=True)
    print("Ratios: " + ", ".join(f"{w} {r:.2f}x" for w, r in ratios.items()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(1)
