"""End-to-end: the results bucket's object counter. Jobs write their results;
S3 publishes the object events to SNS; the object-counter function keeps the
counters table (docs/contract.md, "Object counters table") in step with the
bucket. Deleting an object is counted too.

The counters are cumulative over the whole run, so each test compares them
with the bucket itself and with a baseline taken once they have settled."""

from __future__ import annotations

import json
import time

import pytest

from target import Target
from test_jobs import settle, submitted_job

# A liveness bound for the asynchronous path (S3 → SNS → Lambda → DynamoDB),
# not a speed requirement.
COUNT_SECONDS = 60
FIELDS = ("created", "removed", "current", "bytes")


def counters(target: Target, prefix: str = "") -> dict[str, int]:
    item = (
        target.client("dynamodb")
        .get_item(
            TableName=target["countersTableName"],
            Key={"bucket": {"S": target["resultsBucketName"]}, "counter": {"S": f"counter#{prefix}"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    if item is None:
        return dict.fromkeys(FIELDS, 0)
    assert item["updatedAt"]["S"].endswith("Z"), item
    return {f: int(item[f]["N"]) for f in FIELDS}


def bucket_objects(target: Target, prefix: str = "") -> dict[str, int]:
    """Key → size of every object in the results bucket (under `prefix`)."""
    s3 = target.client("s3")
    objects: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target["resultsBucketName"], Prefix=prefix):
        objects.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return objects


def wait_for(what: str, check) -> None:
    """Polls `check` (returns None when satisfied, else what it saw) until it passes."""
    deadline = time.monotonic() + COUNT_SECONDS
    while True:
        seen = check()
        if seen is None:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {COUNT_SECONDS}s; last seen {seen}")
        time.sleep(0.25)


def settled_counters(target: Target) -> dict[str, dict[str, int]]:
    """The counters once they agree with the bucket: every object counted as
    current with its size (earlier tests' events may still be in flight)."""
    found: dict[str, dict[str, int]] = {}

    def check():
        for prefix in ("", "results/"):
            c = counters(target, prefix)
            objects = bucket_objects(target, prefix)
            if (c["current"], c["bytes"]) != (len(objects), sum(objects.values())):
                return {"prefix": prefix, "counters": c, "objects": len(objects), "bytes": sum(objects.values())}
            found[prefix] = c
        return None

    wait_for("the counters match the bucket", check)
    return found


def plus(base: dict[str, int], **delta: int) -> dict[str, int]:
    return {f: base[f] + delta.get(f, 0) for f in FIELDS}


@pytest.fixture(scope="module")
def written(target: Target, token: str) -> dict:
    """Three completed jobs, the counters before them and their result objects."""
    if not target.outputs.get("countersTableName"):
        pytest.skip("the outputs name no counters table (countersTableName)")
    before = settled_counters(target)
    jobs = [submitted_job(target, token, {"region": "eu-west-1", "days": d}) for d in (1, 2, 3)]
    for job in jobs:
        assert settle(target, token, job)["jobStatus"] == "complete"
    s3 = target.client("s3")
    sizes = {
        f"results/{job}.json": s3.head_object(Bucket=target["resultsBucketName"], Key=f"results/{job}.json")["ContentLength"]
        for job in jobs
    }
    return {"before": before, "sizes": sizes}


def test_each_result_object_written_is_counted_once_with_its_size(target, token, written):
    before, sizes = written["before"], written["sizes"]
    expected = {p: plus(before[p], created=3, current=3, bytes=sum(sizes.values())) for p in ("", "results/")}
    wait_for(
        "the three results are counted",
        lambda: None if all(counters(target, p) == expected[p] for p in expected) else {p: counters(target, p) for p in expected},
    )
    # ... and stay counted once (no late duplicate adds to them).
    time.sleep(1)
    assert {p: counters(target, p) for p in expected} == expected
    # The counters agree with the bucket itself.
    objects = bucket_objects(target)
    assert (expected[""]["current"], expected[""]["bytes"]) == (len(objects), sum(objects.values()))

    count = target.session.get(f"{target.api}/count", headers={"Authorization": token}, timeout=30)
    assert count.status_code == 200, count.text
    body = count.json()
    assert body["bucket"] == target["resultsBucketName"]
    assert {f: body["total"][f] for f in FIELDS} == expected[""], json.dumps(body)
    assert {f: body["prefixes"]["results/"][f] for f in FIELDS} == expected["results/"], json.dumps(body)


def test_deleting_a_result_object_is_counted_as_removed(target, written):
    before, sizes = written["before"], written["sizes"]
    key, size = next(iter(sizes.items()))
    settled = settled_counters(target)
    target.client("s3").delete_object(Bucket=target["resultsBucketName"], Key=key)
    expected = {p: plus(settled[p], removed=1, current=-1, bytes=-size) for p in ("", "results/")}
    wait_for(
        f"the deletion of {key} is counted",
        lambda: None if all(counters(target, p) == expected[p] for p in expected) else {p: counters(target, p) for p in expected},
    )
    assert expected[""]["removed"] >= before[""]["removed"] + 1
    objects = bucket_objects(target)
    assert key not in objects
    assert (expected[""]["current"], expected[""]["bytes"]) == (len(objects), sum(objects.values()))


def test_the_counter_keeps_each_objects_state_for_dedupe(target, written):
    """The per-object items (`object#<key>`) hold the size a later delete subtracts."""
    ddb = target.client("dynamodb")
    key, size = list(written["sizes"].items())[-1]
    item = ddb.get_item(
        TableName=target["countersTableName"],
        Key={"bucket": {"S": target["resultsBucketName"]}, "counter": {"S": f"object#{key}"}},
        ConsistentRead=True,
    )["Item"]
    assert item["exists"]["BOOL"] is True
    assert int(item["size"]["N"]) == size
    assert item["sequencer"]["S"]
