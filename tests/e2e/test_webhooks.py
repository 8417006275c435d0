"""End-to-end: completion webhooks (docs/webhooks.md). A submit names a
callback URL in `Job-Callback-Url`; when the job is complete, failed or
cancelled, the service POSTs its status document there, signed with the
stage's secret. The receiver here is an HTTP server of the test on
127.0.0.1, which the local target allows (on AWS only https to public
addresses is called)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from target import Target
from test_cancel import cancel, recorded
from test_jobs import settle, submit

# A liveness bound for deliveries once their jobs ended; not a speed requirement.
ARRIVAL_SECONDS = 60


class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST (path, headers by
    lower-case name, raw body, arrival time) and answering each with the next status of
    `answers` (then 204)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "at": time.time()}
                    )
                    code = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def posts_to(self, path: str, count: int) -> list[dict]:
        """The requests to `path` once `count` arrived (then a short wait, so
        that one too many would be seen too)."""
        deadline = time.monotonic() + ARRIVAL_SECONDS
        while len(self.received(path)) < count:
            assert time.monotonic() < deadline, f"{len(self.received(path))} of {count} deliveries to {path} arrived"
            time.sleep(0.2)
        time.sleep(2)
        return self.received(path)

    def received(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def local(target: Target) -> bool:
    return "logsDir" in target.outputs


@pytest.fixture
def receiver(target: Target):
    if not local(target):
        pytest.skip("the receiver listens on 127.0.0.1, which only the local target calls")
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


def verified(target: Target, request: dict) -> dict:
    """The delivery's document, after checking its signature as a receiver
    would: `Job-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
    under the stage's signing secret, compared in constant time."""
    header = request["headers"]["job-signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    signed = f"{parts['t']}.".encode() + request["body"]
    expected = hmac.new(target["webhookSigningSecret"].encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), f"the signature does not verify: {header}"
    assert abs(time.time() - int(parts["t"])) < 300, "t is the time of sending"
    assert request["headers"]["content-type"] == "application/json"
    return json.loads(request["body"])


def submitted_with_callback(target: Target, token: str, body: dict, url: str) -> str:
    response = submit(target, token, body, headers={"Job-Callback-Url": url})
    assert response.status_code == 200, response.text
    return response.json()["jobId"]


def test_each_end_is_posted_once_signed_with_the_status_document(target, token, receiver):
    complete = submitted_with_callback(target, token, {"region": "eu-west-1"}, receiver.url("/hooks/complete"))
    failed = submitted_with_callback(
        target, token, {"simulateFailure": "always"}, receiver.url("/hooks/failed?source=e2e")
    )
    for job_id, path, event in [
        (complete, "/hooks/complete", "Job Completed"),
        (failed, "/hooks/failed?source=e2e", "Job Failed"),
    ]:
        final = settle(target, token, job_id)
        assert final["callbackUrl"] == receiver.url(path), final
        assert "webhookRefused" not in final
        [delivery] = receiver.posts_to(path, 1)
        assert delivery["headers"]["job-event"] == event
        assert delivery["headers"]["user-agent"] == "job-ingestion-webhooks/1"
        document = verified(target, delivery)
        # The same facts GET /job-status shows, under the same names.
        for field in ["jobId", "jobStatus", "submittedAt", "attempts", "completedAt", "failedAt", "failureReason"]:
            assert document.get(field) == final.get(field), (field, document, final)
        assert "callbackUrl" not in document
        # Who owns the job (a Cognito sub, an IAM principal's ARN) is not
        # part of the status document, so not of the webhook either.
        assert "owner" not in document


def test_a_cancelled_job_is_posted_as_cancelled(target, token, receiver):
    path = "/hooks/cancelled"
    job_id = submitted_with_callback(target, token, {"simulateFailure": "always"}, receiver.url(path))
    recorded(target, token, job_id)
    response = cancel(target, token, job_id)
    if response.status_code == 409:
        pytest.skip("the job used all its attempts before it could be cancelled (a very slow machine)")
    assert response.status_code == 200, response.text
    [delivery] = receiver.posts_to(path, 1)
    assert delivery["headers"]["job-event"] == "Job Cancelled"
    document = verified(target, delivery)
    assert (document["jobId"], document["jobStatus"], document["cancelledAt"]) == (
        job_id,
        "cancelled",
        response.json()["cancelledAt"],
    )


def test_a_failed_delivery_is_tried_again_after_the_back_off(target, token, receiver):
    path = "/hooks/flaky"
    receiver.answers = [503]
    job_id = submitted_with_callback(target, token, {"region": "us-east-1"}, receiver.url(path))
    settle(target, token, job_id)
    first, second = receiver.posts_to(path, 2)
    # Both signed, the second after the schedule's first back-off (10 s,
    # WEBHOOK_BACKOFF_BASE_SECONDS) rather than at once.
    assert verified(target, first) == verified(target, second)
    assert second["at"] - first["at"] >= 9, second["at"] - first["at"]
    # Every attempt is visible in the sender's log (the local target's logs;
    # on AWS its log group).
    logs = target.outputs.get("functionLogs")
    if not logs:
        return
    log = Path(logs[next(n for n in logs if n.endswith("webhook-sender"))]).read_text()
    failed = [line for line in log.splitlines() if job_id in line and "webhook attempt failed" in line]
    assert failed and "the receiver answered 503" in failed[0], failed
    assert any(job_id in line and "webhook delivered" in line for line in log.splitlines())


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://10.0.0.1/hook", "must use https"),
        ("ftp://example.com", "must use https"),
        ("https://169.254.169.254/latest", "names 169.254.169.254, which is not a public address"),
        ("https://[fd00:ec2::254]/", "names fd00:ec2::254, which is not a public address"),
        ("https://localhost/hook", "names localhost, which is not a public address"),
        ("not a url", "is not an absolute URL (https://host/path)"),
    ],
)
def test_a_url_that_may_never_be_called_is_400_at_submit_and_creates_nothing(target, token, url, reason):
    """The submit applies the rules that need no DNS (jobs-core's
    `CallbackUrl::parse`) and refuses the URL before anything is queued or
    recorded. A host name is resolved only when a delivery is made; one that
    resolves to a private address is refused then and recorded on the job as
    `webhookRefused` (the sender's tests cover it: a test here would need a
    public DNS name pointing at a private address)."""
    from test_bad_input import table_ids, wait_for_empty_queue

    if local(target) and url.startswith("http:"):
        reason += " (http only to a loopback address)"
    wait_for_empty_queue(target)
    before = table_ids(target)
    response = submit(target, token, {"region": "us-east-1"}, headers={"Job-Callback-Url": url})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["message"].startswith("Invalid Job-Callback-Url: "), body
    assert reason in body["message"], body
    assert "jobId" not in body
    wait_for_empty_queue(target)
    assert table_ids(target) == before, "a refused submit left a job in the table"


def test_a_job_without_a_callback_url_shows_none(target, token):
    response = submit(target, token, {"region": "us-east-1"})
    final = settle(target, token, response.json()["jobId"])
    assert "callbackUrl" not in final and "webhookRefused" not in final
