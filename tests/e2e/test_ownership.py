"""End-to-end: jobs belong to their submitter. A second user cannot see the
first user's job, `GET /jobs` lists only the caller's own jobs newest first
page by page, a complete job says when its result expires, and `GET /count`
answers the results bucket's counters."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from target import Target
from test_jobs import settle, status, submitted_job

SETTLE_SECONDS = 60


def second_user_token(target: Target) -> str:
    users = target.outputs.get("users") or []
    if len(users) < 2:
        pytest.skip("needs a second test user (`users` in the outputs)")
    return target.id_token(users[1]["username"], users[1]["password"])


@pytest.fixture(scope="module")
def other_token(target: Target) -> str:
    return second_user_token(target)


def list_jobs(target: Target, token: str, **params) -> dict:
    response = target.session.get(f"{target.api}/jobs", params=params, headers={"Authorization": token}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def all_pages(target: Target, token: str, limit: int) -> list[list[dict]]:
    pages, params = [], {"limit": limit}
    while True:
        page = list_jobs(target, token, **params)
        assert len(page["jobs"]) <= limit
        pages.append(page["jobs"])
        if "nextToken" not in page:
            return pages
        params = {"limit": limit, "nextToken": page["nextToken"]}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_another_users_job_is_not_found_like_an_unknown_one(target, token, other_token):
    job_id = submitted_job(target, token, {"region": "eu-west-1"})
    settle(target, token, job_id)
    response = status(target, other_token, job_id)
    assert response.status_code == 404, response.text
    unknown = "00000000-0000-4000-8000-000000000000"
    expected = status(target, other_token, unknown).json()
    assert response.json() == {key: value.replace(unknown, job_id) for key, value in expected.items()}
    # The owner still sees it.
    assert status(target, token, job_id).status_code == 200


def test_jobs_lists_only_the_callers_jobs_newest_first_page_by_page(target, token, other_token):
    mine = []
    for n in range(3):
        mine.append(submitted_job(target, other_token, {"region": "eu-west-1", "n": n}))
        time.sleep(0.05)  # distinct SentTimestamps: a defined order
    theirs = submitted_job(target, token, {"region": "eu-west-1"})
    deadline = time.monotonic() + SETTLE_SECONDS
    while not set(mine) <= {j["jobId"] for j in list_jobs(target, other_token, limit=100)["jobs"]}:
        assert time.monotonic() < deadline, "the second user's jobs were not listed"
        time.sleep(0.25)

    pages = all_pages(target, other_token, limit=2)
    assert len(pages) >= 2 and all(len(p) == 2 for p in pages[:-1] if p), pages
    listed = [j for page in pages for j in page]
    ids = [j["jobId"] for j in listed]
    assert len(ids) == len(set(ids)), "a job appears on two pages"
    assert [i for i in ids if i in mine] == list(reversed(mine)), "newest first"
    assert theirs not in ids, "another user's job is listed"
    submitted = [parse_time(j["submittedAt"]) for j in listed]
    assert submitted == sorted(submitted, reverse=True)
    for job in listed:
        assert set(job) <= {"jobId", "jobStatus", "submittedAt", "completedAt", "failedAt"}, job
        assert job["jobStatus"] in ("Submitted", "complete", "failed")

    # ...and the first user's listing does not show the second user's jobs.
    first_user = {j["jobId"] for page in all_pages(target, token, limit=100) for j in page}
    assert not first_user & set(mine)
    settle(target, token, theirs)
    assert theirs in {j["jobId"] for j in list_jobs(target, token, limit=100)["jobs"]}

    # The second page's token is the second user's: the first user cannot continue it.
    token_of_other = list_jobs(target, other_token, limit=1)["nextToken"]
    refused = target.session.get(
        f"{target.api}/jobs", params={"nextToken": token_of_other}, headers={"Authorization": token}, timeout=30
    )
    assert refused.status_code == 400 and "nextToken" in refused.json()["message"], refused.text


def test_a_complete_job_says_when_its_result_expires(target, token):
    job = settle(target, token, submitted_job(target, token, {"region": "eu-west-1"}))
    assert job["jobStatus"] == "complete", job
    expires = parse_time(job["resultExpiresAt"])
    completed = parse_time(job["completedAt"])
    # The retention period (30 days by default), counted from just before the result was written.
    assert completed - timedelta(minutes=5) < expires - timedelta(days=30) <= completed, (expires, completed)
    assert expires > datetime.now(timezone.utc)
    listed = next(j for j in list_jobs(target, token, limit=100)["jobs"] if j["jobId"] == job["jobId"])
    assert listed["jobStatus"] == "complete" and listed["completedAt"] == job["completedAt"]


def test_count_answers_the_results_buckets_counters(target, token):
    response = target.session.get(f"{target.api}/count", headers={"Authorization": token}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["bucket"] == target["resultsBucketName"]
    for counter in [body["total"], *body["prefixes"].values()]:
        for key in ("created", "removed", "current", "bytes"):
            assert isinstance(counter[key], int), body
    assert all(prefix.endswith("/") for prefix in body["prefixes"]), body
