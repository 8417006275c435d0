"""End-to-end: `POST /jobs/{jobId}/cancel` (docs/api.md, "Cancel a job").

A cancelled job is never run again and keeps no result; its owner sees it
`cancelled`, a subscriber gets one "Job Cancelled" event; an ended job is
409; an unknown or another caller's job is 404. A job can be cancelled from
the moment submit answers, before its message is first delivered."""

from __future__ import annotations

import time

import pytest
import requests

from target import Target, dead_letter_job_ids
from test_faults import faults  # noqa: F401 (a fixture)
from test_job_events import events_of, subscriber  # noqa: F401 (a fixture)
from test_jobs import SETTLE_SECONDS, queue_depth, recorded_with, settle, status, submitted_job

# The job processor's attempts: 3, with back-offs of 2 and 4 s between them
# (docs/reliability.md); a job told to fail always is `Submitted` that long.
FAILING = {"simulateFailure": "always"}


def cancel(target: Target, token: str, job_id: str) -> requests.Response:
    return target.session.post(f"{target.api}/jobs/{job_id}/cancel", headers={"Authorization": token}, timeout=30)


def recorded(target: Target, token: str, job_id: str) -> dict:
    """The job's status once its first delivery recorded it (404 until then)."""
    return recorded_with(lambda: status(target, token, job_id), job_id)


def cancelled_between_attempts(target: Target, token: str) -> tuple[str, dict]:
    """A job cancelled after its first attempt failed and before its last:
    (id, the cancel's answer). A slow machine may let a job use all its
    attempts first (409): then another job is tried, at most three."""
    for _ in range(3):
        job_id = submitted_job(target, token, FAILING)
        recorded(target, token, job_id)
        response = cancel(target, token, job_id)
        if response.status_code == 200:
            return job_id, response.json()
        assert response.status_code == 409, response.text
    pytest.fail("three jobs ended before they could be cancelled")


def test_a_cancelled_job_never_runs_again_keeps_no_result_and_is_published_once(target, token, subscriber):  # noqa: F811
    job_id, body = cancelled_between_attempts(target, token)
    assert body["jobId"] == job_id and body["jobStatus"] == "cancelled", body
    assert body["cancelledAt"] and "failureReason" not in body and "jobProcessedPayload" not in body
    attempts = body["attempts"]

    # Its message comes back after the back-off; the processor runs nothing
    # and deletes it (nothing left in the queue, nothing in the DLQ).
    deadline = time.monotonic() + SETTLE_SECONDS
    while queue_depth(target) > 0:
        assert time.monotonic() < deadline, "the cancelled job's message was never taken off the queue"
        time.sleep(0.25)
    after = status(target, token, job_id).json()
    assert after == body, "nothing moved the job once it was cancelled"
    assert after["attempts"] == attempts
    listed = target.client("s3").list_objects_v2(Bucket=target["resultsBucketName"], Prefix=f"results/{job_id}")
    assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
    assert job_id not in dead_letter_job_ids(target)

    events = events_of(subscriber, {job_id}, 1)
    assert [e["detail-type"] for e in events] == ["Job Cancelled"], events
    detail = events[0]["detail"]
    assert (detail["jobStatus"], detail["cancelledAt"], detail["attempts"]) == ("cancelled", body["cancelledAt"], attempts)

    # A repeated cancel answers the same document and publishes nothing more.
    again = cancel(target, token, job_id)
    assert (again.status_code, again.json()) == (200, body)
    assert events_of(subscriber, {job_id}, 0) == []


def test_an_ended_job_is_409_and_stays_as_it_was(target, token):
    job_id = submitted_job(target, token, {"region": "eu-west-1"})
    done = settle(target, token, job_id)
    response = cancel(target, token, job_id)
    assert response.status_code == 409, response.text
    assert response.json() == {
        "message": f"Job {job_id} has already ended (complete); only a job that has not ended (jobStatus Submitted) can be cancelled.",
        "jobId": job_id,
        "jobStatus": "complete",
    }
    assert status(target, token, job_id).json()["jobStatus"] == done["jobStatus"] == "complete"


def test_an_unknown_or_malformed_id_is_answered_as_job_status_answers_it(target, token):
    unknown = "00000000-0000-4000-8000-000000000000"
    response = cancel(target, token, unknown)
    assert response.status_code == 404, response.text
    assert response.json()["message"].startswith(f"No job found with id {unknown}.")
    response = cancel(target, token, "not-a-job")
    assert response.status_code == 400, response.text
    assert "is not a valid job id" in response.json()["message"]


def test_without_a_token_cancel_is_401(target):
    response = target.session.post(f"{target.api}/jobs/00000000-0000-4000-8000-000000000000/cancel", timeout=30)
    assert response.status_code == 401, response.text


def test_another_users_job_is_404_and_is_not_cancelled(target, token):
    from test_ownership import second_user_token

    other = second_user_token(target)
    job_id = submitted_job(target, token, FAILING)
    recorded(target, token, job_id)
    response = cancel(target, other, job_id)
    assert response.status_code == 404, response.text
    unknown = "00000000-0000-4000-8000-000000000000"
    expected = cancel(target, other, unknown).json()
    assert response.json() == {key: value.replace(unknown, job_id) for key, value in expected.items()}
    assert settle(target, token, job_id)["jobStatus"] == "failed", "the owner's job ran on, uncancelled"


def assert_cancelled_and_never_run(target: Target, token: str, cancelled: dict[str, dict]) -> None:
    """Once the queue has drained, every job cancelled with answer `body` is
    still `cancelled` as the cancel left it: same cancelledAt and attempts,
    no result, no result object, not in the DLQ."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while queue_depth(target) > 0:
        assert time.monotonic() < deadline, "the cancelled jobs' messages were never taken off the queue"
        time.sleep(0.25)
    time.sleep(1)  # an attempt that had started when its job was cancelled has ended by now
    s3, dead = target.client("s3"), dead_letter_job_ids(target)
    for job_id, body in cancelled.items():
        after = status(target, token, job_id).json()
        assert after["jobStatus"] == "cancelled", after
        assert after["cancelledAt"] == body["cancelledAt"], after
        assert "jobProcessedPayload" not in after and "jobProcessedPayloadLink" not in after, after
        assert "failureReason" not in after and "completedAt" not in after, after
        assert after["attempts"] == body["attempts"], (body, after)
        listed = s3.list_objects_v2(Bucket=target["resultsBucketName"], Prefix=f"results/{job_id}")
        assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
        assert job_id not in dead


def test_a_cancel_before_the_first_delivery_means_the_job_never_runs(target, token, faults):
    """Issue 17, point 2: a job exists from the moment submit answers, so a
    cancel can land before the processor first receives its message. The
    queue is held (the local target's pollers stopped) so that every cancel
    lands first: each answers `cancelled` with attempts 0, and once the
    pollers run again and the messages are received, each job is still
    `cancelled`, never attempted, with no result."""
    faults.stop_pollers()
    cancelled: dict[str, dict] = {}
    try:
        for n in range(5):
            job_id = submitted_job(target, token, {"region": "eu-west-1", "held": n})
            submitted = status(target, token, job_id).json()
            assert (submitted["jobStatus"], submitted["attempts"]) == ("Submitted", 0), submitted
            response = cancel(target, token, job_id)
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["jobStatus"], body["attempts"]) == ("cancelled", 0), body
            cancelled[job_id] = body
        assert queue_depth(target) >= len(cancelled), "the held queue lost the cancelled jobs' messages"
    finally:
        faults.restart_pollers()
    assert_cancelled_and_never_run(target, token, cancelled)


def test_a_cancel_right_after_submit_races_the_first_delivery_and_wins(target, token):
    """The same without holding the queue: twenty jobs, each cancelled as
    soon as its submit answers, race the processor's first delivery. Each
    cancel is 200 `cancelled` (or 409 if that job already ended, on a very
    fast processor), and whichever came first, the cancelled job never
    completes and keeps no result."""
    cancelled: dict[str, dict] = {}
    for n in range(20):
        job_id = submitted_job(target, token, {"region": "eu-west-1", "race": n})
        response = cancel(target, token, job_id)
        if response.status_code == 409:
            assert response.json()["jobStatus"] in ("complete", "failed"), response.text
            continue
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["jobId"], body["jobStatus"]) == (job_id, "cancelled"), body
        assert body["cancelledAt"] and "jobProcessedPayload" not in body and "failureReason" not in body, body
        cancelled[job_id] = body
    assert cancelled, "every job ended before its cancel"
    assert_cancelled_and_never_run(target, token, cancelled)
