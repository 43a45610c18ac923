"""Trigger latency of `acrtask task watch`: how long from a push signal to the builder process starting.

    python bench/trigger_latency.py [--rounds 5] [--history 0] [--tasks 0]

Starts a local docker-registry on 127.0.0.1 and a real `acrtask task watch --listen 127.0.0.1:PORT
--poll-interval 1h` subprocess (plain log mode), with a chain of two tasks:

    upstream/os:1  ->  base-task (pushes baseimages/node:1)  ->  app-task (FROM baseimages/node:1)

The watch process finds a wrapper `buildah` first on its PATH: a bash script that appends
`$EPOCHREALTIME` to a log the moment it starts (then execs /usr/bin/buildah), and for `buildah push`
also the moment the real push exits. That log is the clock for "the builder process started" and "the
push finished"; watch's own stderr (timestamped to the second) is not used.

Each round: push a new digest of upstream/os:1 (real buildah, this process), wait until watch is idle,
then POST a distribution-style events envelope for it to watch's listener with the token, and measure

  (a) webhook -> builder: from just before the POST is sent to the start of base-task's first
      `buildah` (the loop confirms the tag with one HEAD before queueing the run);
  (b) push -> dependent's builder: from the exit of base-task's last `buildah push` to the start of
      app-task's first `buildah` (the loop sees the run finish, checks the pushed tag, queues app-task).

Medians over the rounds; target <= 100 ms each. A breakdown from the run records (microsecond
timestamps: createTime = queued, startTime = Running, finishTime) shows where the time goes.

Before each webhook the bench waits until the watch process is idle (its CPU time flat for 0.5 s), so a
round never starts while watch is still digesting the previous one.

Options that make the home look like a real one (defaults: a fresh home with only the chain):
  `--history N` first records N finished runs in the state database, as a watch that has run for a while
  has (RunStore keeps 1,000 by default);
  `--tasks N` adds N more tasks to the state database, each with a recorded (current) Runtime dependency on
  one extra base tag, filler/base:1, so they are watched but never trigger.

Exit code 0 whatever the figures (MISSED is printed for a target not met); 1 only when the bench itself
cannot run (buildah missing, a build failing, watch not starting).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acrtask.media import OCI_MANIFEST  # noqa: E402
from acrtask.runids import run_id, run_id_of_tag  # noqa: E402
from tests.support import LocalRegistry, buildah_env, push_base_image  # noqa: E402
from tests.support.registry import free_port  # noqa: E402

TARGET_MS = 100.0
TOKEN = "bench-webhook-token"
REAL_BUILDAH = "/usr/bin/buildah"

WRAPPER = r"""#!/bin/bash
# Bench wrapper: stamp the start (and, for push, the end) of every buildah the watch process runs.
t0=${EPOCHREALTIME/,/.}
printf 'start %s %s %s %s\n' "$t0" "$$" "${ACRTASK_RUN_ID:--}" "$1" >> __LOG__
if [ "$1" = push ]; then
  __REAL__ "$@"
  rc=$?
  t1=${EPOCHREALTIME/,/.}
  printf 'end %s %s %s %s %s\n' "$t1" "$$" "${ACRTASK_RUN_ID:--}" "$1" "$rc" >> __LOG__
  exit $rc
fi
exec __REAL__ "$@"
"""


# -- set-up --------------------------------------------------------------------------------------------


def acrtask(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "acrtask", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"acrtask {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def write_wrapper(folder: Path, log: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "buildah"
    script.write_text(WRAPPER.replace("__LOG__", f"'{log}'").replace("__REAL__", REAL_BUILDAH))
    script.chmod(0o755)
    return folder


def fake_history(home: Path, count: int) -> None:
    """`count` finished run records (as a long-running watch accumulates), numbered before the real ones."""
    from acrtask.run_record import Run
    from acrtask.state import Database
    from acrtask.state.runs import RunRecords

    db = Database(home / "state.db")
    with db.write() as conn:
        for n in range(1, count + 1):
            RunRecords.insert(conn, n, Run.from_dict({
                "runId": run_id(n), "task": "history-task", "status": "Succeeded",
                "createTime": "2026-11-01T00:00:00.000000Z", "startTime": "2026-11-01T00:00:00.100000Z",
                "finishTime": "2026-11-01T00:00:05.000000Z", "trigger": {"kind": "Manual"}, "pid": 1}))
        conn.execute("UPDATE counters SET value = ? WHERE name = 'run'", (count,))
    db.close()


def add_filler_tasks(env: dict[str, str], count: int, host: str, digest: str, context: Path) -> None:
    """`count` watched tasks that never trigger: a current Runtime dependency on filler/base:1."""
    from acrtask.dependency import BaseImageDependency, DependencyType
    from acrtask.model import Step, Task
    from acrtask.platform import DEFAULT_PLATFORM
    from acrtask.reference import ImageRef
    from acrtask.state import Database, StateStore

    dep = BaseImageDependency(type=DependencyType.RUNTIME, image=ImageRef(host, "filler/base", "1"),
                              digest=digest, platform_digest=digest, platform=DEFAULT_PLATFORM)
    db = Database(Path(env["ACRTASK_HOME"]) / "state.db")
    with StateStore(db).transaction() as tx:
        for i in range(count):
            name = f"filler-{i:05d}"
            tx.save(Task(name=name, step=Step(
                context_path=str(context), image_names=(f"{host}/filler/app{i:05d}:latest",),
                base_image_dependencies=(dep,)), creation_date="2026-11-27T00:00:00.000000Z"))
    db.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, deadline: float, window: float = 0.5, busy: float = 0.02) -> None:
    """Until the process used less than `busy` CPU seconds in the last `window` seconds."""
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - last < busy:
            return
        last = now
    raise SystemExit("watch never went idle")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def envelope(host: str, repository: str, tag: str, digest: str) -> bytes:
    """What docker-registry's notifications POST for a manifest push (one event)."""
    return json.dumps({"events": [{
        "id": f"bench-{time.time_ns()}", "timestamp": datetime.now().astimezone().isoformat(),
        "action": "push",
        "target": {"mediaType": OCI_MANIFEST, "size": 500, "digest": digest, "length": 500,
                   "repository": repository, "url": f"http://{host}/v2/{repository}/manifests/{digest}",
                   "tag": tag},
        "request": {"id": "bench", "addr": "127.0.0.1", "host": host, "method": "PUT",
                    "useragent": "bench"},
        "actor": {}, "source": {"addr": "bench", "instanceID": "bench"},
    }]}).encode()


def send_webhook(port: int, body: bytes) -> tuple[float, float, int]:
    """POST the envelope; returns (time just before sending, round-trip seconds, status)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.connect()  # a registry keeps its connection to the endpoint: connecting is not timed
        headers = {"Content-Type": "application/vnd.docker.distribution.events.v2+json",
                   "Authorization": f"Bearer {TOKEN}", "Content-Length": str(len(body))}
        sent = time.time()
        conn.request("POST", "/", body=body, headers=headers)
        reply = conn.getresponse()
        reply.read()
        return sent, time.time() - sent, reply.status
    finally:
        conn.close()


# -- reading what happened ------------------------------------------------------------------------------


def wrapper_events(log: Path) -> list[tuple[str, float, str, str, str]]:
    """(kind, time, run id, verb, exit code or '') per wrapper line. ACRTASK_RUN_ID is `<runs folder>:<id>`."""
    events: list[tuple[str, float, str, str, str]] = []
    if not log.exists():
        return events
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] in ("start", "end"):
            tagged = run_id_of_tag(parts[3]) or "-"  # "-": a buildah call outside any run
            events.append((parts[0], float(parts[1]), tagged, parts[4], parts[5] if len(parts) > 5 else ""))
    return events


def run_records(home: Path) -> dict[str, dict[str, Any]]:
    """Every run record in the state database, read as another process would (read-only, never blocking watch)."""
    conn = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True, timeout=30)
    try:
        return {run_id(number): json.loads(document) for number, document in
                conn.execute("SELECT number, document FROM runs")}
    finally:
        conn.close()


def stamp(text: str | None) -> float:
    """A run record's time (microseconds) as epoch seconds."""
    if not text:
        raise SystemExit("a finished run record lacks a time")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_round(home: Path, known: set[str], deadline: float) -> dict[str, dict[str, Any]]:
    """The new runs of one round, once base-task's and app-task's have both ended."""
    while time.monotonic() < deadline:
        new = {k: v for k, v in run_records(home).items() if k not in known}
        tasks = {v["task"]: v for v in new.values()}
        if "base-task" in tasks and "app-task" in tasks and all(
                v["status"] not in ("Queued", "Running") for v in new.values()):
            return new
        if any(v["status"] not in ("Queued", "Running", "Succeeded") for v in new.values()):
            return new  # a failure: reported by the caller
        time.sleep(0.2)
    raise SystemExit(f"round timed out; runs so far: {sorted(run_records(home))}")


# -- the bench ------------------------------------------------------------------------------------------


def describe(args: argparse.Namespace) -> str:
    parts = [f"{2 + args.tasks} tasks in the state database"]
    parts.append(f"{args.history} past runs in the history" if args.history else "no run history")
    return ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    parser.add_argument("--history", type=int, default=0,
                        help="finished run records to put in the state database first (a watch's history)")
    parser.add_argument("--tasks", type=int, default=0,
                        help="extra watched tasks in the state database (on one extra base that never moves)")
    args = parser.parse_args()
    if not os.access(REAL_BUILDAH, os.X_OK):
        print(f"{REAL_BUILDAH} is missing: install buildah (scripts/install-system-deps.sh)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="acrtask-bench-latency-") as tmp_name, LocalRegistry() as registry:
        tmp = Path(tmp_name)
        host = registry.host
        env = {**os.environ, **buildah_env(tmp / "buildah"), "ACRTASK_HOME": str(tmp / "home")}
        env.pop("ACRTASK_REGISTRY", None)
        home = tmp / "home"
        log = tmp / "buildah-wrapper.log"

        # The chain, built once for real so that the recorded digests are current.
        t0 = time.perf_counter()
        push_base_image(host, "upstream/os:1", "r0", env=env)
        base_ctx, app_ctx = tmp / "base", tmp / "app"
        base_ctx.mkdir()
        app_ctx.mkdir()
        (base_ctx / "Dockerfile").write_text(f"FROM {host}/upstream/os:1\nCOPY base.txt /base.txt\n")
        (base_ctx / "base.txt").write_text("base\n")
        (app_ctx / "Dockerfile").write_text(f"FROM {host}/baseimages/node:1\nCOPY app.txt /app.txt\n")
        (app_ctx / "app.txt").write_text("app\n")
        acrtask(env, "task", "create", "-n", "base-task", "-c", str(base_ctx), "-t", f"{host}/baseimages/node:1",
                "-o", "none")
        acrtask(env, "task", "create", "-n", "app-task", "-c", str(app_ctx), "-t", f"{host}/app:latest",
                "-o", "none")
        if args.history:  # older than every real run: ca1 .. caN; real ids continue after it
            fake_history(home, args.history)
        acrtask(env, "task", "run", "-n", "base-task", "-o", "none")
        acrtask(env, "task", "run", "-n", "app-task", "-o", "none")
        if args.tasks:
            filler = push_base_image(host, "filler/base:1", "filler", env=env)
            add_filler_tasks(env, args.tasks, host, filler, app_ctx)
        print(f"set-up: registry {registry.url}, chain built in {time.perf_counter() - t0:.1f}s; {describe(args)}",
              flush=True)

        port = free_port()
        watch_env = {**env, "ACRTASK_WEBHOOK_TOKEN": TOKEN,
                     "PATH": f"{write_wrapper(tmp / 'wrapper-bin', log)}{os.pathsep}{env.get('PATH', '')}"}
        watch_err = open(tmp / "watch.stderr", "w+")  # closed in the finally below
        watch = subprocess.Popen(  # noqa: S603 - our interpreter, an argument list
            [sys.executable, "-m", "acrtask", "task", "watch", "--listen", f"127.0.0.1:{port}",
             "--poll-interval", "1h", "-o", "none"],
            env=watch_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=watch_err)
        a_ms: list[float] = []
        b_ms: list[float] = []
        posts_ms: list[float] = []
        breakdown: list[dict[str, float]] = []
        try:
            deadline = time.monotonic() + 30
            while not listening(port):
                if watch.poll() is not None or time.monotonic() > deadline:
                    watch_err.seek(0)
                    raise SystemExit(f"watch did not start listening:\n{watch_err.read()[-3000:]}")
                time.sleep(0.05)
            wait_idle(watch.pid, time.monotonic() + 600)  # start-up and the first check of every base

            for round_no in range(1, args.rounds + 1):
                known = set(run_records(home))
                digest = push_base_image(host, "upstream/os:1", f"r{round_no}", env=env)
                wait_idle(watch.pid, time.monotonic() + 600)
                sent, post_s, status = send_webhook(port, envelope(host, "upstream/os", "1", digest))
                if status != 202:
                    raise SystemExit(f"the listener answered {status}, not 202")
                new = wait_round(home, known, time.monotonic() + 600)
                by_task = {v["task"]: (k, v) for k, v in new.items()}
                failed = [f"{k} {v['task']} {v['status']}: {v.get('runErrorMessage')}" for k, v in new.items()
                          if v["status"] != "Succeeded"]
                if failed or set(by_task) != {"base-task", "app-task"}:
                    raise SystemExit(f"round {round_no}: unexpected runs {failed or sorted(by_task)}")
                base_id, base_run = by_task["base-task"]
                app_id, app_run = by_task["app-task"]
                events = wrapper_events(log)
                base_start = min(t for kind, t, rid, _, _ in events if kind == "start" and rid == base_id)
                base_push_end = max(t for kind, t, rid, verb, _ in events
                                    if kind == "end" and rid == base_id and verb == "push")
                app_start = min(t for kind, t, rid, _, _ in events if kind == "start" and rid == app_id)
                a = (base_start - sent) * 1000
                b = (app_start - base_push_end) * 1000
                a_ms.append(a)
                b_ms.append(b)
                posts_ms.append(post_s * 1000)
                breakdown.append({
                    "a: webhook -> queued": (stamp(base_run["createTime"]) - sent) * 1000,
                    "a: queued -> Running": (stamp(base_run["startTime"]) - stamp(base_run["createTime"])) * 1000,
                    "a: Running -> builder": (base_start - stamp(base_run["startTime"])) * 1000,
                    "b: push end -> base finished": (stamp(base_run["finishTime"]) - base_push_end) * 1000,
                    "b: base finished -> app queued": (stamp(app_run["createTime"])
                                                       - stamp(base_run["finishTime"])) * 1000,
                    "b: app queued -> Running": (stamp(app_run["startTime"]) - stamp(app_run["createTime"])) * 1000,
                    "b: Running -> builder": (app_start - stamp(app_run["startTime"])) * 1000,
                })
                print(f"  round {round_no}: (a) webhook -> builder {a:7.1f} ms   (b) push -> dependent's builder"
                      f" {b:7.1f} ms   (POST answered in {post_s * 1000:.1f} ms)", flush=True)
        finally:
            if watch.poll() is None:
                watch.send_signal(signal.SIGTERM)
                try:
                    watch.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    watch.kill()
                    watch.wait(timeout=10)
            watch_err.close()

    med_a, med_b = statistics.median(a_ms), statistics.median(b_ms)
    print(f"\ntrigger latency, {len(a_ms)} rounds (medians; min-max in brackets); {describe(args)}")
    print("  where the time goes (medians, from the run records):")
    for name in breakdown[0]:
        print(f"    {name:<32} {statistics.median(r[name] for r in breakdown):8.1f} ms")
    print(f"  webhook POST answered in        {statistics.median(posts_ms):8.1f} ms")
    for label, values, median in (("(a) webhook -> builder start", a_ms, med_a),
                                  ("(b) base push -> dependent's builder start", b_ms, med_b)):
        verdict = "met" if median <= TARGET_MS else "MISSED"
        print(f"  {label:<44} {median:8.1f} ms [{min(values):.0f}-{max(values):.0f}]  "
              f"{median / TARGET_MS:5.2f}x the target (target <= {TARGET_MS:.0f} ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
