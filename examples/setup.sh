# Sourced by the examples' run.sh: helpers, and what they need installed (docker-registry, buildah,
# busybox-static; acrtask into .venv). Expects $root (the repository) and runs from there.
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

step "Installing what is missing (docker-registry, buildah, busybox-static; acrtask into .venv)"
bash scripts/install-system-deps.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet -e .
acrtask() { "$root/.venv/bin/acrtask" "$@"; }
