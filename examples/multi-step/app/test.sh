#!/bin/sh
# The test step: runs in the image just built, with the run's working folder at /workspace.
out="$(sh /app/app.sh)"
echo "test: the app says: $out"
case "$out" in
    "$EXPECTED"*) echo "$out" > /workspace/test-report.txt; echo "test: passed" ;;
    *) echo "test: FAILED, expected '$EXPECTED...'"; exit 1 ;;
esac
