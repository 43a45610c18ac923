#!/usr/bin/env bash
# A multi-step task (build, test in a container, push), rebuilt when its base image moves: offline.
#
#   1. installs what is missing (docker-registry, buildah, busybox-static; acrtask into .venv)
#   2. starts a throwaway registry on 127.0.0.1
#   3. creates 'multi-step-base' (a Dockerfile task that pushes multi-step/base:1) and
#      'multi-step-app' (the task file app/acr-task.yaml: build FROM that base, test, push), runs each once
#   4. updates the base, and lets `acrtask task watch --once` run the multi-step task again
#   5. runs the pushed app with `acrtask run --cmd`, and cleans up everything it started
#
# Run it as root (or with sudo available) on Debian or Ubuntu; it exits non-zero if the trigger did
# not rebuild the app.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

source examples/setup.sh  # step, fail, acrtask; installs what is missing

work="$(mktemp -d /tmp/acrtask-multi-step.XXXXXX)"
registry_pid=""
cleanup() {
    local code=$?
    [ -n "$registry_pid" ] && kill -TERM "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
    exit "$code"
}
trap cleanup EXIT

port="$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
registry="127.0.0.1:$port"
export ACRTASK_HOME="$work/acrtask"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot TMPDIR="$work/tmp"
mkdir -p "$TMPDIR" "$work/storage/root" "$work/storage/run" "$work/registry"
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$work/storage/root" "$work/storage/run" \
    > "$work/storage.conf"
export CONTAINERS_STORAGE_CONF="$work/storage.conf"

step "Starting a throwaway registry on $registry"
printf 'version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp:\n  addr: %s\n' \
    "$work/registry/data" "$registry" > "$work/registry/config.yml"
env -u REGISTRY_HTTP_ADDR /usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -fs "http://$registry/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://$registry/v2/" >/dev/null || fail "the registry did not start: $(tail -5 "$work/registry.log")"

step "Creating the tasks: a base image task, and the multi-step app task (app/acr-task.yaml)"
cp -r examples/quickstart/base "$work/base"
cp /bin/busybox "$work/base/busybox"
echo "v1" > "$work/base/version"
acrtask task create -n multi-step-base -c "$work/base" -t "$registry/multi-step/base:1" -o none
acrtask task create -n multi-step-app -r "$registry" -c examples/multi-step/app -f acr-task.yaml \
    --values values.yaml -o none
acrtask task list -o table
acrtask task show -n multi-step-app --query step

step "Running each once: the base, then the app's steps (build, test, push), so acrtask learns their bases"
acrtask task run -n multi-step-base --no-logs -o table
acrtask task run -n multi-step-app
first="$(acrtask task list-runs -n multi-step-app --query '[0].runId' -o tsv)"
acrtask task show-run --run-id "$first" --query 'steps[].{step:stepId, type:type, status:status}' -o table
acrtask task show -n multi-step-app --query 'step.baseImageDependencies[].{step:stepId, image:join(`:`, [repository, tag]), digest:digest}' -o table

step "Updating the base image, then checking for moved bases once (as a cron job would)"
echo "v2" > "$work/base/version"
acrtask task run -n multi-step-base --no-logs -o table
acrtask task watch --once
rebuilt="$(acrtask task list-runs -n multi-step-app --query "[?trigger.kind=='BaseImageUpdate' && status=='Succeeded'].runId | [0]" -o tsv)"
[ -n "$rebuilt" ] || fail "the base image update did not run the multi-step task"
acrtask task list-runs -o table
acrtask task show-run --run-id "$rebuilt" --query reason -o tsv

step "Running the pushed app once, without a task (acrtask run --cmd, as az acr run --cmd)"
acrtask run -r "$registry" --cmd "$registry/multi-step/app:stable" /dev/null

step "Done: the base moved, and the multi-step task was built, tested and pushed again. Cleaning up."
