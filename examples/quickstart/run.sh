#!/usr/bin/env bash
# The README's main job: ACR's base-image tutorial, done locally and offline.
#
#   1. installs what is missing (docker-registry, buildah, busybox-static; acrtask into .venv)
#   2. starts a throwaway registry on 127.0.0.1 that notifies acrtask's listener of pushes
#   3. creates a base-image task and an app task built FROM it, and runs each once
#   4. starts `acrtask task watch`, updates the base image, and waits for the app to be rebuilt
#      by the trigger alone, then shows the runs (with the reason) and runs the new app image
#   5. cleans up everything it started
#
# Run it as root (or with sudo available) on Debian or Ubuntu. It can run any number of times in a
# row; it exits non-zero if the automatic rebuild did not happen.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

source examples/setup.sh  # step, fail, acrtask; installs what is missing

work="$(mktemp -d /tmp/acrtask-quickstart.XXXXXX)"
registry_pid="" watch_pid=""
cleanup() {
    local code=$?
    [ -n "$watch_pid" ] && kill -TERM "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null || true
    [ -n "$registry_pid" ] && kill -TERM "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
    # Nothing this script started may outlive it.
    for pid in $watch_pid $registry_pid $(pgrep -f "$work" || true); do
        if kill -0 "$pid" 2>/dev/null; then
            echo "FAILED: process $pid of this quickstart is still running: $(tr '\0' ' ' < "/proc/$pid/cmdline")" >&2
            code=1
        fi
    done
    exit "$code"
}
trap cleanup EXIT

free_port() { "$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
registry_port="$(free_port)"
listen_port="$(free_port)"
registry="127.0.0.1:$registry_port"
token="$("$root/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')"

# acrtask's own state, and buildah's storage (vfs + chroot work as root in a container), all in $work.
export ACRTASK_HOME="$work/acrtask"
export ACRTASK_WEBHOOK_TOKEN="$token"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot TMPDIR="$work/tmp"
mkdir -p "$TMPDIR" "$work/storage/root" "$work/storage/run"
cat > "$work/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/storage/root"
runroot = "$work/storage/run"
EOF
export CONTAINERS_STORAGE_CONF="$work/storage.conf"

step "Starting a throwaway registry on $registry, notifying acrtask at 127.0.0.1:$listen_port"
mkdir -p "$work/registry"
cat > "$work/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $work/registry/data}
  delete: {enabled: true}
http:
  addr: $registry
  secret: $token
notifications:
  endpoints:
    - name: acrtask
      url: http://127.0.0.1:$listen_port/
      headers: {Authorization: [Bearer $token]}
      timeout: 2s
      threshold: 5
      backoff: 1s
EOF
env -u REGISTRY_HTTP_ADDR /usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
    curl -fs "http://$registry/v2/" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "http://$registry/v2/" >/dev/null || fail "the registry did not start: $(tail -5 "$work/registry.log")"

step "Creating the tasks: 'baseimage' builds $registry/baseimages/node:15-alpine; 'hello-world' builds FROM it"
cp -r examples/quickstart/base "$work/base"
cp /bin/busybox "$work/base/busybox"
echo "v1" > "$work/base/version"
acrtask task create -n baseimage -c "$work/base" -t "$registry/baseimages/node:15-alpine" -o none
acrtask task create -n hello-world -c examples/quickstart/app --arg "REGISTRY=$registry" \
    -t "$registry/hello-world:{{.Run.ID}}" -t "$registry/hello-world:latest" -o none
acrtask task list -o table

step "Running each task once, so acrtask learns which base images they use (as ACR does)"
acrtask task run -n baseimage --no-logs -o table
acrtask task run -n hello-world --no-logs -o table
acrtask task show -n hello-world --query 'step.baseImageDependencies[].{type:type, image:join(`:`, [repository, tag]), digest:digest}' -o table

step "Starting 'acrtask task watch' (webhooks on 127.0.0.1:$listen_port, polling every 10-60 minutes)"
# The binary itself, not the shell function: $! must be watch's own pid, so cleanup can stop it.
"$root/.venv/bin/acrtask" task watch --listen "127.0.0.1:$listen_port" >"$work/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 50); do
    grep -q "Listening for registry webhooks" "$work/watch.log" && break
    sleep 0.2
done

step "Updating the base image: a new version file, and the base task run again"
echo "v2" > "$work/base/version"
acrtask task run -n baseimage --no-logs -o table

step "Waiting for the app to be rebuilt by the base-image trigger alone"
rebuilt=""
for _ in $(seq 240); do
    rebuilt="$(acrtask task list-runs -n hello-world --query "[?trigger.kind=='BaseImageUpdate' && status=='Succeeded'].runId | [0]" -o tsv)"
    [ -n "$rebuilt" ] && break
    sleep 0.5
done
echo "--- what watch said:"
cat "$work/watch.log"
[ -n "$rebuilt" ] || fail "the app was not rebuilt within 2 minutes"

step "The runs: $rebuilt was started by the trigger, and says why"
acrtask task list-runs -o table
acrtask task show-run --run-id "$rebuilt" --query reason -o tsv

step "The task graph (Mermaid): who pushes what, and what each task builds on"
acrtask task graph -o mermaid

step "Running the rebuilt app image"
container="$(buildah from --tls-verify=false -q "$registry/hello-world:latest")"
buildah run "$container" /bin/sh /app/app.sh
buildah rm "$container" >/dev/null

step "Done: the app was rebuilt automatically when its base image changed. Cleaning up."
