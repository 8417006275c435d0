"""API fuzzing: schemathesis generates requests from docs/openapi.yaml and
sends them to the system under test with a real ID token. No answer may be a
5xx, and every answer must conform to the document (a documented status,
content type and body schema).

Bounded: at most MAX_EXAMPLES generated cases per operation, derandomized
(the same cases on every run: not flaky), no example database written.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from target import Target, outputs_path

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DRAIN_SECONDS = 60

# Hypothesis' caches go next to the outputs file (.local/..., ignored by git),
# not into the working tree.
set_hypothesis_home_dir(outputs_path().parent / "hypothesis")

schema = schemathesis.openapi.from_path(DOCUMENT)


@pytest.fixture(scope="module")
def drained(target: Target):
    """After the fuzzing, wait until the jobs it submitted have been processed,
    so none is still in the queue when later tests look at it."""
    yield
    sqs = target.client("sqs")
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        attributes = sqs.get_queue_attributes(
            QueueUrl=target["jobQueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if sum(int(v) for v in attributes.values()) == 0 or time.monotonic() > deadline:
            return
        time.sleep(0.25)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_conforms_to_its_openapi_document(case, target, token, drained):
    case.call_and_validate(base_url=target.api, headers={"Authorization": token}, checks=CHECKS, timeout=30)
