"""`just watch`'s swap on the whole system (local target only): replacing a
function's code while jobs are queued and in flight loses none of them.

`just watch` rebuilds a function and swaps it in with the local Lambda
service's UpdateFunctionCode (docs/local-target.md, "Watch"); its own tests
(local/tests/watch.rs, local/tests/code_update.rs) build and swap a small
function. Here the real job-processor's code is swapped twice, with the same
zip `./just build` made, in the middle of bursts of jobs: every job must end
`complete` with exactly one result object, as if nothing had happened.
"""

from __future__ import annotations

import base64
import platform
import sys
from pathlib import Path

import pytest
import requests

from target import Target

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from load import drain, result_objects, submit_all  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARCH = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
BURST = 100
# A liveness bound, not a speed requirement: the wait ends when the jobs do.
SETTLE_SECONDS = 300


def test_swapping_the_processors_code_mid_burst_loses_no_job(target: Target, token: str):
    if "lambda" not in target.outputs.get("awsEndpoints", {}):
        pytest.skip("swapping a function's code is a local-target feature (just watch)")
    processor = next(n for n in target["functionLogs"] if n.endswith("job-processor"))
    zip_file = ROOT / "target" / "lambda" / ARCH / "job-processor" / "bootstrap.zip"
    # UpdateFunctionCode as `aws lambda update-function-code --zip-file`
    # sends it; not through boto3, which drops the answer's LocalCodeSwap.
    url = f"{target['awsEndpoints']['lambda']}/2015-03-31/functions/{processor}/code"
    code = {"ZipFile": base64.b64encode(zip_file.read_bytes()).decode()}

    log = Path(target["functionLogs"][processor])
    log_before = log.stat().st_size
    ids: list[str] = []
    swaps = []
    for _ in range(2):
        accepted, rejected = submit_all(target, token, BURST, 8, lambda i: {"swap": i}, lambda _: None)
        assert not rejected, rejected
        ids.extend(accepted)
        # The burst's jobs are now queued or being processed.
        answer = requests.put(url, json=code, timeout=60)
        assert answer.status_code == 200, answer.text
        swaps.append(answer.json())

    for swap in swaps:
        assert swap["LastUpdateStatus"] == "Successful", swap
        assert swap["FunctionName"] == processor
    # Each swap met the instances of the code before it, idle or busy.
    met = [s["LocalCodeSwap"]["retiredIdleInstances"] + s["LocalCodeSwap"]["retiringBusyInstances"] for s in swaps]
    assert all(n >= 1 for n in met), swaps

    records = drain(target, ids, SETTLE_SECONDS, lambda _: None)
    # No invocation was cut short: a busy instance finishes its batch on the
    # old code (a crash would still end every job, later, by redelivery).
    with log.open("rb") as f:
        f.seek(log_before)
        during = f.read().decode(errors="replace")
    cut = [line for line in during.splitlines() if "Runtime exited" in line or "Task timed out" in line]
    assert not cut, f"invocations ended by the swap: {cut[:3]}"
    statuses = {j: records.get(j, {}).get("jobStatus", "not recorded") for j in ids}
    not_complete = {j: s for j, s in statuses.items() if s != "complete"}
    assert not not_complete, f"{len(not_complete)} job(s) not complete after the swaps: {list(not_complete.items())[:5]}"
    objects = result_objects(target, set(ids))
    assert {j: objects[j] for j in ids if objects[j] != 1} == {}, "every job has exactly one result object"
