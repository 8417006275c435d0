"""End-to-end: every job that ends is published to the job events bus
(docs/events.md), as a subscriber sees it: a rule on the bus forwarding the
events to a queue of its own."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from target import Target
from test_jobs import settle, submitted_job

# A liveness bound for the events to arrive once their jobs have ended.
ARRIVAL_SECONDS = 30


@pytest.fixture
def subscriber(target: Target):
    """A queue receiving every event of the bus whose source is the job
    service, through a rule of its own; removed afterwards."""
    events, sqs = target.client("events"), target.client("sqs")
    bus = target["eventBusName"]
    name = f"e2e-job-events-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(
        Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["job-ingestion"]})
    )["RuleArn"]
    # What EventBridge needs on AWS to deliver to the queue (a no-op for moto).
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    try:
        yield sqs, queue_url
    finally:
        events.remove_targets(Rule=name, EventBusName=bus, Ids=["queue"])
        events.delete_rule(Name=name, EventBusName=bus)
        sqs.delete_queue(QueueUrl=queue_url)


def events_of(subscriber, job_ids: set[str], expected: int) -> list[dict]:
    """The events about `job_ids` received until `expected` of them came
    (then one more short wait, so that a duplicate would be seen too)."""
    sqs, queue_url = subscriber
    found: list[dict] = []
    deadline = time.monotonic() + ARRIVAL_SECONDS
    quiet_rounds = 0
    while time.monotonic() < deadline and quiet_rounds < 2:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            event = json.loads(m["Body"])
            if event.get("detail", {}).get("jobId") in job_ids:
                found.append(event)
        if len(found) >= expected and not messages:
            quiet_rounds += 1
    return found


def test_each_job_end_is_published_once_with_the_status_documents_facts(target: Target, token: str, subscriber):
    completed = submitted_job(target, token, {"region": "eu-west-1"})
    failed = submitted_job(target, token, {"simulateFailure": "permanent"})
    completed_status = settle(target, token, completed)
    failed_status = settle(target, token, failed)
    assert (completed_status["jobStatus"], failed_status["jobStatus"]) == ("complete", "failed")

    events = events_of(subscriber, {completed, failed}, expected=2)
    by_job = {e["detail"]["jobId"]: e for e in events}
    assert len(events) == 2 and len(by_job) == 2, f"one event per job's end, got {events}"

    done = by_job[completed]
    assert (done["source"], done["detail-type"]) == ("job-ingestion", "Job Completed")
    assert done["detail"]["jobStatus"] == "complete"
    assert done["detail"]["completedAt"] == completed_status["completedAt"]
    assert done["detail"]["submittedAt"] == completed_status["submittedAt"]
    assert done["detail"]["attempts"] == completed_status["attempts"]
    assert done["detail"]["result"] == {"bucket": target["resultsBucketName"], "key": f"results/{completed}.json"}
    # The owner is the submitter's Cognito sub, so a rule can route per user.
    assert done["detail"]["owner"] and done["detail"]["owner"] == by_job[failed]["detail"]["owner"]

    gone = by_job[failed]
    assert (gone["source"], gone["detail-type"]) == ("job-ingestion", "Job Failed")
    assert gone["detail"]["jobStatus"] == "failed"
    assert gone["detail"]["failureReason"] == failed_status["failureReason"]
    assert gone["detail"]["failedAt"] == failed_status["failedAt"]
    assert "result" not in gone["detail"]


def test_a_bus_outage_leaves_the_job_complete_and_the_lost_event_visible(target: Target, token: str, subscriber):
    """Every PutEvents fails (local fault injection): the job still ends
    `complete`, no event arrives, and job-processor logs the ERROR with the
    job id and counts JobEventsNotPublished, the alarmed metric."""
    from test_faults import FaultControl, function_named
    from test_metrics import wait_for_metrics

    url = target.outputs.get("faultsUrl")
    if not url:
        pytest.skip("needs the local target started with --faults (tests/e2e/run-local.sh does)")
    faults = FaultControl(url)
    faults.set({"events": {"error": 1.0}})
    try:
        job = submitted_job(target, token, {"region": "eu-west-1"})
        assert settle(target, token, job)["jobStatus"] == "complete"
        # The ends are published after the batch's jobs are written: wait for
        # the verdict (the SDK's retries included) before the bus comes back.
        metrics = wait_for_metrics(target, "job-processor", job, {"JobEventsNotPublished"})
        injected = faults.report()["injected"]["calls"].get("events", {})
    finally:
        faults.clear()
    assert metrics.get("JobEventsNotPublished") == 1, metrics
    assert injected.get("errors", 0) >= 1, injected
    assert events_of(subscriber, {job}, expected=0) == []
    log = Path(target["functionLogs"][function_named(target, "job-processor")])
    errors = [
        json.loads(line)
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("{") and job in line and '"level":"ERROR"' in line
    ]
    assert [e["fields"]["message"] for e in errors] == ["job end not published"], errors
