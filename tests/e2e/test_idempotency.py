"""End-to-end: idempotent submit (docs/api.md, "Idempotency-Key").

`POST /submit-job-request` with `Idempotency-Key: K`: the same caller sending
the same key with the same request (body and `Job-Callback-Url`) within 24
hours gets 200 with the first job's id and `Idempotent-Replayed: true`, and
no second job is created or run; the same key with a different request is
409 and the first job is unaffected; keys are scoped to the caller (another
user or a machine client with the identical key gets a job of its own); a
malformed key is 400 and nothing is created.

Every key here holds a fresh UUID: on a deployed stage keys are kept 24
hours, so a key of an earlier run must never be met again."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from target import Target
from test_bad_input import table_ids, wait_for_empty_queue
from test_jobs import settle, status, submit
from test_machine_clients import MachineClient, machine, machine_settle  # noqa: F401 (a fixture)
from test_ownership import list_jobs, second_user_token

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


def fresh_key(label: str) -> str:
    return f"e2e-{label}-{uuid.uuid4()}"


def keyed(target: Target, token: str, body, key, *, headers=None) -> requests.Response:
    return submit(target, token, body, headers={KEY: key, **(headers or {})})


def job_of(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    # The reference's answer shape, a replay included: MessageId is the job id.
    assert body["SendMessageResponse"]["SendMessageResult"]["MessageId"] == body["jobId"], body
    return body["jobId"]


def replayed(response: requests.Response) -> bool:
    return response.headers.get(REPLAYED) == "true"


def listed_ids(target: Target, token: str) -> set[str]:
    """The caller's newest 100 jobs (the ones submitted during a test are among them)."""
    return {j["jobId"] for j in list_jobs(target, token, limit=100)["jobs"]}


def new_jobs(target: Target, token: str, before: set[str]) -> set[str]:
    return listed_ids(target, token) - before


def result_keys(target: Target, job_id: str) -> list[str]:
    listed = target.client("s3").list_objects_v2(Bucket=target["resultsBucketName"], Prefix=f"results/{job_id}")
    return [o["Key"] for o in listed.get("Contents", [])]


def ran_once(target: Target, token: str, job_id: str) -> dict:
    """The job's final status, after checking it ran exactly once: complete
    on its first attempt, one result object."""
    final = settle(target, token, job_id)
    assert (final["jobStatus"], final["attempts"]) == ("complete", 1), final
    assert result_keys(target, job_id) == [f"results/{job_id}.json"]
    return final


def test_a_replay_answers_the_first_job_which_runs_once(target, token):
    key, body = fresh_key("replay"), {"region": "eu-west-1", "replay": True}
    before = listed_ids(target, token)
    first = keyed(target, token, body, key)
    job_id = job_of(first)
    assert not replayed(first), first.headers
    # The job exists from the moment submit answers.
    assert status(target, token, job_id).status_code == 200

    again = keyed(target, token, body, key)
    assert job_of(again) == job_id
    assert replayed(again), again.headers
    md5 = hashlib.md5(json.dumps(body).encode()).hexdigest()
    for response in (first, again):
        assert response.json()["SendMessageResponse"]["SendMessageResult"]["MD5OfMessageBody"] == md5

    ran_once(target, token, job_id)
    assert new_jobs(target, token, before) == {job_id}, "a replay created a second job"


def test_a_replay_after_the_job_completed_answers_the_same_job(target, token):
    key, body = fresh_key("after"), {"region": "us-east-1"}
    job_id = job_of(keyed(target, token, body, key))
    done = ran_once(target, token, job_id)

    again = keyed(target, token, body, key)
    assert job_of(again) == job_id and replayed(again), again.headers
    # Nothing ran again: the job reads as it did.
    time.sleep(2)
    after = status(target, token, job_id).json()
    assert (after["jobStatus"], after["attempts"], after["completedAt"]) == ("complete", 1, done["completedAt"])
    assert result_keys(target, job_id) == [f"results/{job_id}.json"]


def test_the_same_key_with_a_different_body_is_409_and_the_first_job_is_unaffected(target, token):
    key = fresh_key("body")
    before = listed_ids(target, token)
    job_id = job_of(keyed(target, token, {"region": "eu-west-1"}, key))

    other = keyed(target, token, {"region": "ap-south-1"}, key)
    assert other.status_code == 409, other.text
    message = other.json()["message"]
    assert KEY in message and job_id in message, message
    assert REPLAYED not in other.headers
    # The same keys and values in another order or spacing are another body too:
    # the key names the bytes sent (their MD5 is in the answer).
    reordered = submit(target, token, None, raw='{"region":"eu-west-1"}', headers={KEY: key})
    assert reordered.status_code == 409, reordered.text

    ran_once(target, token, job_id)
    assert new_jobs(target, token, before) == {job_id}
    # The key still answers its own request.
    assert job_of(keyed(target, token, {"region": "eu-west-1"}, key)) == job_id


def test_the_same_key_with_a_different_callback_url_is_409(target, token):
    key, body = fresh_key("callback"), {"region": "eu-west-1"}
    before = listed_ids(target, token)
    job_id = job_of(keyed(target, token, body, key))
    # A URL the service may call (https, a public name): refused for the key,
    # not for the URL. Nothing is ever delivered to it: no job names it.
    other = keyed(target, token, body, key, headers={"Job-Callback-Url": "https://hooks.example.com/jobs"})
    assert other.status_code == 409, other.text
    assert KEY in other.json()["message"] and job_id in other.json()["message"]
    final = ran_once(target, token, job_id)
    assert "callbackUrl" not in final, final
    assert new_jobs(target, token, before) == {job_id}


def test_another_user_with_the_same_key_gets_a_job_of_their_own(target, token):
    other_token = second_user_token(target)
    key, body = fresh_key("users"), {"region": "eu-west-1"}
    mine = keyed(target, token, body, key)
    theirs = keyed(target, other_token, body, key)
    assert job_of(mine) != job_of(theirs)
    assert not replayed(theirs), theirs.headers
    # Each sees only their own, and each key still answers its own job.
    assert status(target, other_token, job_of(mine)).status_code == 404
    assert status(target, token, job_of(theirs)).status_code == 404
    assert job_of(keyed(target, other_token, body, key)) == job_of(theirs)
    ran_once(target, token, job_of(mine))
    ran_once(target, other_token, job_of(theirs))


def machine_submit(machine: MachineClient, body: dict, key: str) -> requests.Response:  # noqa: F811
    """A signed submit with an Idempotency-Key (signed as one of the request's headers)."""
    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST", url=f"{machine.api}/submit-job-request", data=data,
        headers={"Content-Type": "application/json", KEY: key},
    )  # fmt: skip
    SigV4Auth(machine.credentials, "execute-api", machine.region).add_auth(request)
    prepared = request.prepare()
    return requests.post(prepared.url, headers=dict(prepared.headers), data=data, timeout=30)


def test_a_machine_client_with_the_same_key_gets_a_job_of_its_own(target, token, machine):  # noqa: F811
    key, body = fresh_key("machine"), {"region": "eu-west-1"}
    users = job_of(keyed(target, token, body, key))
    first = machine_submit(machine, body, key)
    machines = job_of(first)
    assert machines != users and not replayed(first), first.headers
    again = machine_submit(machine, body, key)
    assert job_of(again) == machines and replayed(again), again.headers
    assert machine_settle(machine, machines)["attempts"] == 1
    ran_once(target, token, users)
    # A malformed key is refused on the machine route too.
    bad = machine_submit(machine, body, "a/b")
    assert bad.status_code == 400 and KEY in bad.json()["message"], bad.text


MALFORMED = {
    "empty": "",
    "129-characters": "k" * 129,
    "space": "a b",
    "slash": "a/b",
    "hash": "a#b",
    # Sent as UTF-8 bytes: the header value is not ASCII.
    "non-ascii": "clé".encode(),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_key_is_400_and_creates_nothing(target, token, name):
    wait_for_empty_queue(target)
    jobs_before, listed_before = table_ids(target), listed_ids(target, token)
    response = keyed(target, token, {"region": "eu-west-1"}, MALFORMED[name])
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert KEY in body["message"] and "jobId" not in body, body
    wait_for_empty_queue(target)
    assert table_ids(target) == jobs_before, "a refused submit left a job in the table"
    assert listed_ids(target, token) == listed_before


def test_a_key_of_128_characters_is_accepted_whole(target, token):
    unique = uuid.uuid4().hex  # 32 characters
    key = unique + ("Az09-_.:" * 12)  # 32 + 96 = 128, every kind of character allowed
    assert len(key) == 128
    job_id = job_of(keyed(target, token, {"region": "eu-west-1"}, key))
    # All 128 characters name the job: the key one shorter is another key.
    assert job_of(keyed(target, token, {"region": "eu-west-1"}, key)) == job_id
    shorter = job_of(keyed(target, token, {"region": "eu-west-1"}, key[:127]))
    assert shorter != job_id
    ran_once(target, token, job_id)
    ran_once(target, token, shorter)


def test_concurrent_replays_all_answer_one_job_which_runs_once(target, token):
    key, body = fresh_key("concurrent"), {"region": "eu-west-1", "concurrent": True}
    before = listed_ids(target, token)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: keyed(target, token, body, key), range(8)))
    assert [r.status_code for r in responses] == [200] * 8, [(r.status_code, r.text) for r in responses]
    ids = {job_of(r) for r in responses}
    assert len(ids) == 1, ids
    (job_id,) = ids
    # One request created the job; the other seven were answered with it.
    assert sum(replayed(r) for r in responses) == 7, [dict(r.headers) for r in responses]
    ran_once(target, token, job_id)
    assert new_jobs(target, token, before) == {job_id}
    # Nothing more arrives later (a second message would record a second attempt).
    wait_for_empty_queue(target)
    assert status(target, token, job_id).json()["attempts"] == 1
