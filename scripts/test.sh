#!/usr/bin/env bash
# The README's test command: installs what the tests need (apt packages, the project in .venv),
# then runs the whole suite, integration tests against a real registry and buildah included.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

# Two workers for two cores; each test has its own registry and state folder.
exec .venv/bin/python -m pytest -n 2 -p no:cacheprovider "$@"
