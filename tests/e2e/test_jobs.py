"""End-to-end: a user signs in, submits jobs over HTTP and polls them to the
end, against the local target or a deployed stage (see target.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from target import Target, check_private, outputs_path, wait_for_dead_letters

# A liveness bound so a broken system fails the test instead of hanging it;
# not a speed requirement (the failure paths include retry back-offs).
SETTLE_SECONDS = 120


def submit(target: Target, token: str | None, body, *, raw: str | None = None, headers=None) -> requests.Response:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = token
    data = raw if raw is not None else json.dumps(body)
    return target.session.post(f"{target.api}/submit-job-request", data=data.encode(), headers=hdrs, timeout=30)


def status(target: Target, token: str, job_id: str) -> requests.Response:
    return target.session.get(f"{target.api}/job-status/{job_id}", headers={"Authorization": token}, timeout=30)


def submitted_job(target: Target, token: str, body) -> str:
    response = submit(target, token, body)
    assert response.status_code == 200, response.text
    return response.json()["jobId"]


def settle(target: Target, token: str, job_id: str) -> dict:
    """Poll until the job is complete or failed."""
    return settle_with(lambda: status(target, token, job_id), job_id)


def recorded_with(read_status, job_id: str) -> dict:
    """Poll `read_status()` (a GET of the job's status) until the job is
    recorded; its status then. Submit records the job before it answers, so
    a 404 is seen only when that write failed after the message was queued
    (the processor then records the job at its first delivery)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (response := read_status()).status_code == 404:
        assert time.monotonic() < deadline, f"job {job_id} was never recorded"
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    return response.json()


def settle_with(read_status, job_id: str) -> dict:
    """Poll `read_status()` (a GET of the job's status) until the job is
    complete or failed."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        response = read_status()
        # Right after submit the job may not be recorded yet: 404 until then.
        if response.status_code == 200 and response.json()["jobStatus"] in ("complete", "failed"):
            return response.json()
        assert response.status_code in (200, 404), response.text
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} did not settle within {SETTLE_SECONDS}s: {response.status_code} {response.text}")
        time.sleep(0.25)


def test_outputs_file_is_private():
    check_private(outputs_path())


def test_the_token_helper_prints_a_token_the_api_accepts(target):
    """`just token` runs this helper as a script (a module name that shadows
    the standard library would break it there but not under pytest)."""
    helper = Path(__file__).with_name("id_token.py")
    printed = subprocess.run(
        [sys.executable, str(helper), str(outputs_path())], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert status(target, printed, str(uuid.uuid4())).status_code == 404, "an accepted token reaches the status function"


def test_submit_returns_the_job_id_in_the_reference_shape(target, token):
    body = {"region": "eu-west-1", "days": 3}
    response = submit(target, token, body)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    reply = response.json()
    result = reply["SendMessageResponse"]["SendMessageResult"]
    assert reply["jobId"] == result["MessageId"]
    uuid.UUID(reply["jobId"])
    assert result["MD5OfMessageBody"] == hashlib.md5(json.dumps(body).encode()).hexdigest()
    assert reply["SendMessageResponse"]["ResponseMetadata"]["RequestId"]


def test_a_job_completes_and_its_link_downloads_the_weather_data(target, token):
    job_id = submitted_job(target, token, {"region": "eu-west-1", "note": "a & b = c?"})
    job = settle(target, token, job_id)
    assert job["jobStatus"] == "complete", job
    assert job["jobId"] == job["jobRequestId"] == job_id
    assert job["submittedAt"] <= job["completedAt"]
    assert job["jobProcessedPayload"] == job["jobProcessedPayloadLink"]
    download = requests.get(job["jobProcessedPayloadLink"], timeout=30)
    assert download.status_code == 200, download.text
    records = download.json()["weatherData"]
    assert len(records) == 99
    for record in records:
        assert set(record) == {"station", "geoLocation", "localTime", "conditions", "temperature", "pressure", "humidity"}
        assert 0 <= record["humidity"] <= 100
        assert 900 < record["pressure"] < 1100


def test_the_payload_is_recorded_exactly_as_submitted(target, token):
    raw = '{"text": "ünïcode, quotes \\" and & ampersands", "n": 1.50}'
    response = submit(target, token, None, raw=raw)
    assert response.status_code == 200, response.text
    job_id = response.json()["jobId"]
    settle(target, token, job_id)
    item = target.client("dynamodb").get_item(
        TableName=target["jobsTableName"], Key={"jobRequestId": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    assert item["jobRequestPayload"]["S"] == raw
    assert item["jobStatus"]["S"] == "complete"


def test_a_bearer_token_is_accepted_too(target, token):
    response = submit(target, f"Bearer {token}", {"n": 1})
    assert response.status_code == 200, response.text


def test_a_job_told_to_fail_ends_failed_with_its_reason_and_its_message_in_the_dlq(target, token):
    job_id = submitted_job(target, token, {"simulateFailure": "always"})
    job = settle(target, token, job_id)
    assert job["jobStatus"] == "failed", job
    assert "simulated failure" in job["failureReason"]
    assert "dead-letter queue" in job["failureReason"]
    assert "jobProcessedPayloadLink" not in job
    assert job_id in wait_for_dead_letters(target, {job_id}, SETTLE_SECONDS)


def test_a_job_told_to_fail_once_completes_on_its_retry(target, token):
    job_id = submitted_job(target, token, {"simulateFailure": 1})
    job = settle(target, token, job_id)
    assert job["jobStatus"] == "complete", job
    assert job["attempts"] == 2


@pytest.mark.parametrize("raw", ["[1, 2, 3]", '"text"', "42", "null", "not json", ""])
def test_a_body_that_is_not_a_json_object_is_400_before_the_queue(target, token, raw):
    depth_before = queue_depth(target)
    response = submit(target, token, None, raw=raw)
    assert response.status_code == 400, response.text
    assert "must be a JSON object" in response.json()["message"]
    assert "jobId" not in response.json()
    assert queue_depth(target) == depth_before


def sub_of(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


def test_a_message_that_bypasses_the_api_with_a_bad_body_ends_failed_at_once(target, token):
    """The processor's own guard, for messages that reach the queue some other way
    (here with the `owner` attribute the API would add, so that the user may read the job)."""
    sent = target.client("sqs").send_message(
        QueueUrl=target["jobQueueUrl"],
        MessageBody="[1, 2, 3]",
        MessageAttributes={"owner": {"DataType": "String", "StringValue": sub_of(token)}},
    )
    job = settle(target, token, sent["MessageId"])
    assert job["jobStatus"] == "failed"
    assert "must be a JSON object, not an array" in job["failureReason"]
    assert job["attempts"] == 1, "a permanent failure is not retried"


def test_a_job_too_large_to_record_ends_failed_and_visible_to_its_owner(target, token):
    """A message the jobs table cannot hold (a 440,008-byte body of four-byte
    characters: SQS limits bytes, up to 1 MiB since 2025, and moto counted
    characters; a DynamoDB item holds 400 KB). It used to leave a partial item
    behind (the key, status and attempts: GET /job-status answered 503 for
    ever, GET /jobs never listed it); now the refused write leaves nothing and
    the job ends failed, with the reason, where its owner sees it."""
    body = json.dumps({"text": "\U0001F600" * 110_000}, ensure_ascii=False)
    assert len(body.encode()) == 440_012
    sent = target.client("sqs").send_message(
        QueueUrl=target["jobQueueUrl"],
        MessageBody=body,
        MessageAttributes={"owner": {"DataType": "String", "StringValue": sub_of(token)}},
    )
    job_id = sent["MessageId"]
    job = settle(target, token, job_id)
    assert job["jobStatus"] == "failed", job
    assert "could not be recorded, so it was not run" in job["failureReason"], job["failureReason"]
    assert "item size limit (400 KB)" in job["failureReason"] and "440012 bytes" in job["failureReason"]
    listed = target.session.get(f"{target.api}/jobs?limit=100", headers={"Authorization": token}, timeout=30)
    assert listed.status_code == 200, listed.text
    assert job_id in [j["jobId"] for j in listed.json()["jobs"]]


def test_a_message_without_an_owner_is_processed_but_visible_to_nobody(target, token):
    sent = target.client("sqs").send_message(QueueUrl=target["jobQueueUrl"], MessageBody='{"region": "eu-west-1"}')
    job_id = sent["MessageId"]
    ddb = target.client("dynamodb")
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        item = ddb.get_item(TableName=target["jobsTableName"], Key={"jobRequestId": {"S": job_id}}, ConsistentRead=True).get("Item")
        if item and item["jobStatus"]["S"] == "complete":
            break
        assert time.monotonic() < deadline, f"job {job_id} did not complete: {item}"
        time.sleep(0.25)
    assert "owner" not in item
    assert status(target, token, job_id).status_code == 404


def queue_depth(target: Target) -> int:
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target["jobQueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_a_burst_of_jobs_all_complete_each_with_one_result(target, token):
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda i: submitted_job(target, token, {"burst": i}), range(30)))
    assert len(set(ids)) == 30
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = list(pool.map(lambda i: settle(target, token, i), ids))
    assert [j["jobStatus"] for j in jobs] == ["complete"] * 30
    s3 = target.client("s3")
    for job_id in ids:
        listed = s3.list_objects_v2(Bucket=target["resultsBucketName"], Prefix=f"results/{job_id}")
        assert [o["Key"] for o in listed.get("Contents", [])] == [f"results/{job_id}.json"]


def test_an_unknown_job_is_404_with_the_reference_message(target, token):
    job_id = str(uuid.uuid4())
    response = status(target, token, job_id)
    assert response.status_code == 404
    assert response.json()["Error Message"] == f"No Job data found for Job Id : {job_id}"
    assert job_id in response.json()["message"]


@pytest.mark.parametrize("bad_id", ["not-a-job", "1234", "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e2g", "%C3%A9t%C3%A9"])
def test_a_malformed_job_id_is_400_with_a_message(target, token, bad_id):
    response = status(target, token, bad_id)
    assert response.status_code == 400, response.text
    assert "not a valid job id" in response.json()["message"]


@pytest.mark.parametrize("method,path", [("POST", "/submit-job-request"), ("GET", f"/job-status/{uuid.uuid4()}")])
def test_no_token_is_401(target, method, path):
    response = target.session.request(method, f"{target.api}{path}", data=b"{}", headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 401
    body = response.json()
    assert body["message"] == "Unauthorized"  # API Gateway's wording, kept for the reference's clients
    assert "Authorization header" in body["hint"] and "ID token" in body["hint"], body


def forged(token: str) -> str:
    """The same token with its subject changed: the signature no longer matches."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    new_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{new_payload}.{signature}"


@pytest.mark.parametrize("kind", ["garbage", "three-parts", "forged", "truncated-signature"])
def test_an_invalid_token_is_refused(target, token, kind):
    bad = {
        "garbage": "not-a-token",
        "three-parts": "aaa.bbb.ccc",
        "forged": forged(token),
        "truncated-signature": token[:-10],
    }[kind]
    response = submit(target, bad, {"n": 1})
    assert response.status_code in (401, 403), response.text
    assert response.json()["message"]


def test_an_unknown_route_is_403_missing_authentication_token(target, token):
    for method, path in [("GET", "/nope"), ("DELETE", "/submit-job-request"), ("GET", "/job-status")]:
        response = target.session.request(method, f"{target.api}{path}", headers={"Authorization": token}, timeout=30)
        assert response.status_code == 403, (method, path, response.text)
        body = response.json()
        assert body["message"] == "Missing Authentication Token"
        # ... and which routes there are.
        for route in ("POST /submit-job-request", "GET /job-status/{jobId}", "GET /jobs", "GET /count"):
            assert route in body["hint"], body
