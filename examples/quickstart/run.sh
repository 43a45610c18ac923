#!/usr/bin/env bash
# The README's main job. For now: install acrtask into .venv, define the example tasks in a
# throwaway ACRTASK_HOME, and list them. It grows into the whole rebuild story (registry, first
# runs, watch, base update, automatic rebuild) as those parts land.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "Installing acrtask into $root/.venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet -e .
acrtask=".venv/bin/acrtask"

home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
export ACRTASK_HOME="$home"
registry="localhost:5000"

step "Defining the app task (examples/hello-world), built FROM a base image"
"$acrtask" task create -n hello-world -c examples/hello-world -r "$registry" \
    -t 'hello-world:{{.Run.ID}}' -t hello-world:latest -o none

step "Turning its base-image trigger to All and adding a nightly timer"
"$acrtask" task update -n hello-world --base-image-trigger-type All -o none
"$acrtask" task timer add -n hello-world --timer-name nightly --schedule '0 3 * * *' -o none

step "The tasks"
"$acrtask" task list -o table
"$acrtask" task show -n hello-world --query trigger.baseImageTrigger -o json
