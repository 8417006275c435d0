"""Faults: nothing is lost when the platform misbehaves (local target only).

The local target started with `--faults` (tests/e2e/run-local.sh does) puts
proxies between the functions and moto and serves a control API
(`faultsUrl`; docs/local-target.md, "Faults"). Each test sets its faults,
drives a few hundred jobs through the API and accounts for every one of
them; the faults are switched off again whatever the outcome.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from target import Target, outputs_path, wait_for_dead_letters

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from load import drain, result_objects, submit_all  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Liveness bounds, not speed requirements (each wait ends as soon as the jobs
# settle). A killed batch returns only when its messages' visibility timeout
# (180 s in the stack) ends, and so does an attempt whose back-off
# (ChangeMessageVisibility) failed past the SDK's retries under the injected
# faults: at worst every one of the 4 receives (3 attempts + the bookkeeping
# one) waits it out, so the bound is 4 x 180 s plus a minute.
SETTLE_SECONDS = 4 * 180 + 60
JOBS = 300
POISON = 5


class FaultControl:
    def __init__(self, url: str):
        self.url = url

    def set(self, config: dict) -> dict:
        r = requests.put(self.url, json=config, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def clear(self) -> None:
        requests.delete(self.url, timeout=10).raise_for_status()

    def report(self) -> dict:
        return requests.get(self.url, timeout=10).json()

    def kill(self, function: str, wait_seconds: float = 20, payload_contains: str = "") -> requests.Response:
        params = {"function": function, "waitSeconds": wait_seconds, "payloadContains": payload_contains}
        return requests.post(f"{self.url}/kill", params=params, timeout=wait_seconds + 10)

    def restart_pollers(self) -> dict:
        r = requests.post(f"{self.url}/restart-pollers", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def stop_pollers(self) -> dict:
        """No SQS poller runs until restart_pollers: messages wait in their queues."""
        r = requests.post(f"{self.url}/stop-pollers", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def faults(target: Target):
    url = target.outputs.get("faultsUrl")
    if not url:
        pytest.skip("fault injection needs the local target started with --faults (tests/e2e/run-local.sh does)")
    control = FaultControl(url)
    control.clear()
    yield control
    control.clear()


def function_named(target: Target, role: str) -> str:
    """The deployed name of a function by its crate name (local names carry the stage)."""
    names = [n for n in target["functionLogs"] if n.endswith(role)]
    assert len(names) == 1, f"{role}: {names}"
    return names[0]


def records_of(target: Target, ids: list[str], log=lambda _: None) -> dict[str, dict]:
    return drain(target, ids, SETTLE_SECONDS, log)


def assert_every_job_ended(ids: list[str], records: dict[str, dict]) -> None:
    pending = {j: records.get(j, {}).get("jobStatus", "not recorded") for j in ids}
    pending = {j: s for j, s in pending.items() if s not in ("complete", "failed")}
    assert not pending, (
        f"{len(pending)} job(s) lost (not ended within {SETTLE_SECONDS} s): "
        f"{[(j, records.get(j)) for j in list(pending)[:5]]}"
    )


def assert_one_output_per_complete_job(target: Target, ids: list[str], records: dict[str, dict]) -> None:
    objects = result_objects(target, set(ids))
    duplicated = {j: n for j, n in objects.items() if n > 1}
    assert not duplicated, f"jobs with more than one result object: {duplicated}"
    complete = [j for j in ids if records[j]["jobStatus"] == "complete"]
    missing = [j for j in complete if objects[j] != 1]
    assert not missing, f"complete jobs without their result object: {missing[:5]}"
    failed_with_output = [j for j in ids if records[j]["jobStatus"] == "failed" and objects[j]]
    assert not failed_with_output, f"failed jobs with a result object: {failed_with_output[:5]}"


def test_a_killed_processor_and_a_restarted_poller_lose_no_job(target, token, faults):
    processor = function_named(target, "job-processor")
    kills: list[requests.Response] = []
    restarts: list[dict] = []
    # A job that fails every attempt, whose processor dies during its last
    # attempt (the third delivery): it must still end `failed`, in the DLQ.
    doomed, _ = submit_all(target, token, 1, 1, lambda i: {"simulateFailure": "always"}, lambda _: None)
    doomed_id = next(iter(doomed))
    last_attempt_kill = faults.kill(processor, wait_seconds=60, payload_contains='"ApproximateReceiveCount":"3"')

    def crash_while_busy() -> None:
        kills.append(faults.kill(processor))  # waits for an instance holding a batch
        restarts.append(faults.restart_pollers())

    crasher = threading.Thread(target=crash_while_busy)
    crasher.start()
    accepted, rejected = submit_all(target, token, JOBS // 2, 8, lambda i: {"crash": i}, lambda _: None)
    crasher.join(60)
    assert not rejected, rejected
    ids = list(accepted)

    assert [k.status_code for k in kills] == [200], [k.text for k in kills]
    killed = kills[0].json()
    assert killed["signal"] == "SIGKILL"
    assert restarts[0]["restarted"] >= 1

    records = records_of(target, ids)
    assert_every_job_ended(ids, records)
    statuses = {records[j]["jobStatus"] for j in ids}
    assert statuses == {"complete"}, f"with no poison and no call faults every job completes: {statuses}"
    assert_one_output_per_complete_job(target, ids, records)
    # The kill really ended an invocation: the platform reported it as Lambda does.
    log = Path(target["functionLogs"][processor]).read_text()
    expected = f"RequestId: {killed['requestId']} Error: Runtime exited with error: signal: killed"
    assert expected in log, "the killed invocation is not reported in the function's log"

    assert last_attempt_kill.status_code == 200, last_attempt_kill.text
    doomed_record = records_of(target, [doomed_id])[doomed_id]
    assert doomed_record["jobStatus"] == "failed", doomed_record
    # The bookkeeping (fourth) receive names the third delivery as the one that
    # did not finish, and runs no attempt of its own. How many attempts were
    # recorded depends on when the kill lands: one that ends the instance before
    # its processor recorded the attempt leaves that delivery uncounted (the CI
    # run of 2026-12-06 saw 2), so the count is bounded, not fixed.
    reason = doomed_record["failureReason"]
    assert "delivery 3 did not finish" in reason, reason
    assert 1 <= int(doomed_record["attempts"]) <= 3, doomed_record
    assert doomed_id in wait_for_dead_letters(target, {doomed_id}, SETTLE_SECONDS)


def test_call_faults_and_simulator_failures_end_every_job_and_a_replay_recovers_them(target, token, faults):
    config = {
        # Throttling and internal errors on the functions' calls: the SDK's
        # retries absorb most; the rest are failed attempts SQS redelivers.
        "sqs": {"error": 0.05, "throttle": 0.1},
        "dynamodb": {"error": 0.05, "throttle": 0.1},
        "s3": {"error": 0.05, "throttle": 0.1},
        # A tenth of the jobs fail in the simulator on every attempt.
        "simulator": {"fail": 0.1, "seed": 2026},
    }
    faults.set(config)
    accepted, rejected = submit_all(target, token, JOBS, 16, lambda i: {"faults": i}, lambda _: None)
    poison, rejected_poison = submit_all(target, token, POISON, 4, lambda i: {"simulateFailure": "always"}, lambda _: None)
    assert not rejected and not rejected_poison, (rejected, rejected_poison)
    ids, poison_ids = list(accepted), set(poison)
    all_ids = ids + list(poison_ids)

    records = records_of(target, all_ids)
    assert_every_job_ended(all_ids, records)
    report = faults.report()["injected"]
    for service in ("sqs", "dynamodb", "s3"):
        calls = report["calls"].get(service, {})
        assert calls.get("throttles", 0) + calls.get("errors", 0) > 0, f"no fault was injected into {service}: {calls}"
    picked = set(report["simulatorFailedJobs"]) & set(ids)
    assert picked, "the simulator share picked no job"
    failed = {j for j in all_ids if records[j]["jobStatus"] == "failed"}
    assert picked | poison_ids <= failed, "a job the simulator fails on every attempt must end failed"
    for j in failed:
        assert records[j].get("failureReason"), f"failed job {j} has no reason"
    # A picked job fails in the simulator on every attempt it reaches; its last
    # delivery can still die earlier, on an injected DynamoDB fault (the CI
    # run of 2026-12-06 saw one), and the reason names the last error. So each
    # picked job's reason names one of the two injected causes, and the
    # simulator's must be the one most of them show.
    store_refusal = "the jobs table refused or did not answer the request"
    for j in picked:
        reason = records[j]["failureReason"]
        assert "fault injection" in reason or store_refusal in reason, reason
    by_simulator = [j for j in picked if "fault injection" in records[j]["failureReason"]]
    assert len(by_simulator) * 2 > len(picked), [records[j]["failureReason"] for j in picked]
    assert_one_output_per_complete_job(target, all_ids, records)
    in_dlq = wait_for_dead_letters(target, failed, SETTLE_SECONDS)
    assert failed <= in_dlq, f"failed jobs missing from the DLQ: {sorted(failed - in_dlq)[:5]}"
    complete_before = {j for j in all_ids if records[j]["jobStatus"] == "complete"}

    # The cause is fixed: `just replay` moves the DLQ back and the
    # recoverable jobs complete; the poison ones fail again, into the DLQ.
    faults.clear()
    replayed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "replay.py"), "--outputs", str(outputs_path())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "job(s) replayed" in replayed.stdout, replayed.stdout
    for j in failed:
        assert j in replayed.stdout, f"job {j} was not replayed:\n{replayed.stdout}"

    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        after = drain(target, all_ids, 5, lambda _: None)
        recovered = all(after[j]["jobStatus"] == "complete" for j in failed - poison_ids)
        # A replayed poison job gets three attempts of its own. Not ">= 6":
        # under the DynamoDB faults a delivery can fail before its attempt is
        # recorded (and so before anything runs), leaving the first round at 2.
        poison_done = all(after[j]["jobStatus"] == "failed" and int(after[j]["attempts"]) >= int(records[j]["attempts"]) + 3
                          for j in poison_ids)
        if (recovered and poison_done) or time.monotonic() > deadline:
            break
        time.sleep(1)
    not_recovered = {j: after[j]["jobStatus"] for j in failed - poison_ids if after[j]["jobStatus"] != "complete"}
    assert not not_recovered, f"replayed jobs that did not complete: {list(not_recovered.items())[:5]}"
    for j in poison_ids:
        assert after[j]["jobStatus"] == "failed" and int(after[j]["attempts"]) >= int(records[j]["attempts"]) + 3, (records[j], after[j])
    regressed = [j for j in complete_before if after[j]["jobStatus"] != "complete"]
    assert not regressed, f"complete jobs that changed state: {regressed[:5]}"
    assert_one_output_per_complete_job(target, all_ids, after)
    assert poison_ids <= wait_for_dead_letters(target, poison_ids, SETTLE_SECONDS), "poison jobs must be back in the DLQ"
