#!/usr/bin/env bash
# Runs the end-to-end tests against a fresh local system on free ports in
# .local/test, and stops that system afterwards whatever the outcome.
# Extra arguments go to pytest (e.g. -k dlq).
set -euo pipefail
cd "$(dirname "$0")/../.."
state=.local/test
local_target="${CARGO_TARGET_DIR:-target}/release/jobs-local"

"$local_target" stop --state-dir "$state" >/dev/null 2>&1 || true
rm -rf "$state"
trap '"$local_target" stop --state-dir "$state"' EXIT
# --faults: the fault proxies and control API that tests/e2e/test_faults.py drives (all shares 0 until it sets them).
"$local_target" start --stacks cdktf/cdktf.out --state-dir "$state" --api-port 0 --lambda-port 0 --moto-port 0 --faults
JOBS_OUTPUTS="$state/outputs.json" python3 -m pytest tests/e2e -q -p no:cacheprovider "$@"
