"""A read-only folder and a full disk under a real state database: one ERROR line, exit 1, nothing changed,
and reading still works.

Both use a small tmpfs mounted in a private mount namespace (`unshare -rm`, so nothing outside the test
sees it): full by a filler file, or remounted read-only. Where the machine allows no namespace, a
read-only folder is made with permissions (not as root, who ignores them) and the full disk is covered
by the injected ENOSPC of tests/test_state_db.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = r'''
import json, os, sqlite3, subprocess, sys
mnt, ctx, out, fault = sys.argv[1:5]
home = os.path.join(mnt, "home")
env = {**os.environ, "ACRTASK_HOME": home}

def cli(*args):
    done = subprocess.run([sys.executable, "-m", "acrtask", *args], env=env, capture_output=True, text=True,
                          timeout=60)
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr}

def dump():
    conn = sqlite3.connect(f"file:{home}/state.db?mode=ro&immutable=1", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()

results = {}
if fault != "chmod":
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
try:
    results["setup"] = cli("task", "create", "-n", "first-task", "-c", ctx, "--no-push", "-o", "none")
    before = dump()
    if fault == "full":
        with open(os.path.join(mnt, "filler"), "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
    elif fault == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
    else:
        os.chmod(home, 0o500)
    results["create"] = cli("task", "create", "-n", "second-task", "-c", ctx, "--no-push", "-o", "none")
    results["update"] = cli("task", "update", "-n", "first-task", "--status", "Disabled", "-o", "none")
    results["list"] = cli("task", "list", "--query", "[].name")
    if fault == "full":
        os.unlink(os.path.join(mnt, "filler"))
    elif fault == "read-only":
        subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
    else:
        os.chmod(home, 0o700)
    results["unchanged"] = dump() == before
    results["after"] = cli("task", "list", "--query", "[].name")
finally:
    if fault != "chmod":
        subprocess.run(["umount", "-l", mnt], check=False)
with open(out, "w") as fh:
    json.dump(results, fh)
'''


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False).returncode == 0


def run_fault(tmp_path: Path, fault: str) -> dict:
    mnt, ctx, out = tmp_path / "mnt", tmp_path / "ctx", tmp_path / "results.json"
    mnt.mkdir()
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    argv = [sys.executable, str(driver), str(mnt), str(ctx), str(out), fault]
    if fault != "chmod":
        argv = ["unshare", "-rm", *argv]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("ACRTASK_HOME", None)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert done.returncode == 0 and out.exists(), done.stderr[-3000:]
    return json.loads(out.read_text())


def check(results: dict, message: str) -> None:
    assert results["setup"]["code"] == 0, results["setup"]["err"]
    for command in ("create", "update"):
        result = results[command]
        assert result["code"] == 1, (command, result)
        assert result["err"].startswith("ERROR: Cannot write the state database "), result["err"]
        assert result["err"].count("\n") == 1, result["err"]
        assert message in result["err"]
        assert "Traceback" not in result["err"]
    assert (results["list"]["code"], json.loads(results["list"]["out"])) == (0, ["first-task"])  # reads still work
    assert results["unchanged"] is True
    assert json.loads(results["after"]["out"]) == ["first-task"]


def test_a_full_disk_is_one_error_line_and_changes_nothing(tmp_path: Path) -> None:
    if not namespaces_work():
        # Nothing in this suite skips: say what is missing (`unshare -rm`, util-linux, user namespaces).
        pytest.fail("no private mount namespace here (unshare -rm failed): cannot mount the small tmpfs this "
                    "test fills", pytrace=False)
    check(run_fault(tmp_path, "full"), "the disk is full. Free some space and run the command again; nothing was "
                                       "changed.")


def test_a_read_only_folder_is_one_error_line_and_changes_nothing(tmp_path: Path) -> None:
    if namespaces_work():
        results = run_fault(tmp_path, "read-only")
    elif os.geteuid() != 0:
        results = run_fault(tmp_path, "chmod")
    else:
        pytest.fail("root without mount namespaces: no way to make a folder read-only here")
    check(results, "home is read-only. Make the folder writable")
