"""What a million jobs would cost on AWS, from what `just bench` measured.

Lambda: requests and GB-seconds from the REPORT lines the local Lambda
emulator writes to each function's log (Billed Duration, rounded up to the
millisecond as Lambda bills, at the Memory Size the stack gives the
function), priced for the architecture `just deploy` builds (arm64). The
other services: the requests one job makes, from the code (the table below
says where each comes from), at the batch size the bench measured.

Every job is submitted through job-commands (a Lambda proxy integration of
`POST /submit-job-request`): its invocations are measured like every other
function's; a run that measured none (a stack whose submits do not reach
it) is charged one invocation per job at an assumed duration, marked so.

Prices: us-east-1, on-demand, no free tier, read on 2026-12-05 (PRICES_READ).
AWS's own pricing pages render their tables in the browser, so the figures
were read from the sources named in SOURCES; each names the AWS page it
restates. Durations measured locally are those of the emulators (moto is far
slower than DynamoDB or S3), so the GB-seconds are an upper bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

PRICES_READ = "2026-12-05"

# USD per unit, us-east-1.
PRICES = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": {"arm64": 0.0000133334, "x86_64": 0.0000166667},
    "apigw_rest_request": 3.50 / 1e6,  # first 333 million a month
    "sqs_request": 0.40 / 1e6,  # standard queue, first 100 billion a month; per 64 KB chunk
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit (1 KB; transactional: 2 per KB)
    "dynamodb_rru": 0.125 / 1e6,  # on-demand read request unit (4 KB strongly consistent)
    "s3_put": 0.005 / 1000,  # S3 Standard PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1000,  # S3 Standard GET, SELECT and all other requests
    "sns_publish": 0.50 / 1e6,  # standard topic publish (64 KB chunk); deliveries to Lambda are free
    "eventbridge_custom_event": 1.00 / 1e6,  # custom event published to a bus (64 KB chunk)
}

SOURCES = {
    "Lambda": "https://aws.amazon.com/lambda/pricing/ (restated: $0.20/M requests; "
              "$0.0000166667 x86_64, $0.0000133334 arm64 per GB-s)",
    "API Gateway": "https://aws.amazon.com/api-gateway/pricing/ and "
                   "https://docs.aws.amazon.com/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html "
                   "(REST: $3.50/M, first 333 M)",
    "SQS": "https://aws.amazon.com/sqs/pricing/ (restated: standard $0.40/M, each 64 KB chunk a request)",
    "DynamoDB": "https://aws.amazon.com/dynamodb/pricing/on-demand/ (restated: $0.625/M WRU, $0.125/M RRU)",
    "S3": "https://aws.amazon.com/s3/pricing/ (restated: Standard PUT $0.005/1,000, GET $0.0004/1,000)",
    "SNS": "https://aws.amazon.com/sns/pricing/ (restated: standard topic $0.50/M publishes; that "
           "deliveries to Lambda are free was NOT found in the docs read here)",
    "EventBridge": "https://aws.amazon.com/eventbridge/pricing/ (restated: custom events $1.00/M, each 64 KB "
                   "chunk an event, read 2026-12-06 in a March 2026 restatement of that page, cloudburn.io; "
                   "rules and same-account targets are not billed per event)",
}

# The share of submits that carry an Idempotency-Key (a PutItem to claim it,
# an UpdateItem to accept it). jobctl sends one on every submit, so for CLI
# clients it is 100 %; the bench's submits and the mix send one every time
# too. 1.0 is also the cost's upper bound.
KEYED_SUBMIT_SHARE = 1.0

# The function every submit invokes, at its memory size (cdktf/stacks/app-stack.ts).
SUBMIT_FUNCTION = "job-commands"
SUBMIT_MEMORY_MB = 128
# Its billed duration when a run did not measure it: about job-status's
# measured one on the emulators (111 ms a call, 2026-12-07 bench), which
# makes one table call to job-commands' three or four; an upper bound as the
# measured ones are, not AWS's figure (app-stack.ts sizes it at ~20 ms).
ASSUMED_SUBMIT_BILLED_MS = 100


def dynamodb_item_bytes(item: dict[str, str | int | bool]) -> int:
    """An item's size as DynamoDB bills it: each attribute's name (UTF-8) plus
    its value: a string's UTF-8 bytes; a number's 1 byte per two significant
    digits plus 1; a Boolean's 1 byte
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, bool):
            size += 1
        elif isinstance(value, int):
            digits = str(abs(value)).strip("0") or "0"
            size += math.ceil(len(digits) / 2) + 1
        else:
            size += len(value.encode())
    return size


def write_units(item_bytes: int) -> int:
    """On-demand WRUs of one standard write of an item this size (1 per KB, rounded up)."""
    return max(1, math.ceil(item_bytes / 1024))


# The items the submit writes, as they are for a bench job (a 36-character
# job id and Cognito sub, a 36-character key as the bench and jobctl send),
# from functions/jobs-aws/src/dynamodb.rs (record_submitted) and
# functions/jobs-aws/src/idempotency.rs (claim_key; accept_key adds nothing
# but flips `accepted`).
_ID = "0" * 36
SUBMITTED_ITEM = {"jobRequestId": _ID, "jobStatus": "submitted", "jobRequestPayload": '{"region":"eu"}',
                  "SentTimestamp": "1796428800000", "submittedAt": "2026-12-05T00:00:00.000Z",
                  "updatedAt": "2026-12-05T00:00:00.000Z", "owner": _ID}
KEY_ITEM = {"idempotencyKey": f"{_ID}#{_ID}", "jobId": _ID, "requestHash": "0" * 64,
            "claimedAt": 1796428800000, "expiresAt": 1796515200, "accepted": False}
# What SQS counts of the message's String attributes (name, "String", value):
# jobId and owner (job-commands/src/submit.rs, attribute_bytes).
MESSAGE_ATTRIBUTE_BYTES = sum(len(name) + len("String") + len(value) for name, value in (("jobId", _ID), ("owner", _ID)))

REPORT = re.compile(r"^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: (\d+) ms\tMemory Size: (\d+) MB")


def billed(lines: Iterable[str]) -> list[tuple[int, int]]:
    """(billed ms, memory MB) of each REPORT line of a function's log."""
    out = []
    for line in lines:
        m = REPORT.match(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def lambda_usage(reports: dict[str, list[tuple[int, int]]], jobs: int) -> dict[str, dict]:
    """Per function: invocations and GB-seconds per job (Lambda's GB is 1,024 MB)."""
    if jobs <= 0:
        raise ValueError("jobs must be positive")
    usage = {}
    for function, rows in reports.items():
        gb_s = sum(ms / 1000 * mb / 1024 for ms, mb in rows)
        usage[function] = {"invocations_per_job": len(rows) / jobs, "gb_s_per_job": gb_s / jobs}
    return usage


def requests_per_job(mean_batch: float, body_bytes: int = 15,
                     keyed_share: float = KEYED_SUBMIT_SHARE) -> dict[str, list[tuple[str, float, str]]]:
    """The billed requests one job makes outside Lambda: (what, per job, price key),
    for a job submitted (`keyed_share` of submits with an Idempotency-Key),
    processed in batches of `mean_batch`, read once (GET job-status) and its
    result downloaded once through the link."""
    if mean_batch <= 0:
        raise ValueError("mean_batch must be positive")
    if not 0 <= keyed_share <= 1:
        raise ValueError("keyed_share must be between 0 and 1")
    # SQS bills the body and the message attributes, per 64 KB chunk.
    chunks = max(1, math.ceil((body_bytes + MESSAGE_ATTRIBUTE_BYTES) / 65536))
    submitted_b, key_b = dynamodb_item_bytes(SUBMITTED_ITEM), dynamodb_item_bytes(KEY_ITEM)
    # Lambda's poller: one receive per batch, and the batching window's
    # further receive when the batch is not full; one DeleteMessageBatch.
    receives = 1 if mean_batch >= 10 else 2
    return {
        "API Gateway": [
            ("POST /submit-job-request", 1, "apigw_rest_request"),
            ("GET /job-status/{id}", 1, "apigw_rest_request"),
        ],
        "SQS": [
            ("SendMessage (job-commands, jobId and owner attributes)", chunks, "sqs_request"),
            ("ReceiveMessage (event source mapping)", receives / mean_batch, "sqs_request"),
            ("DeleteMessageBatch (event source mapping)", 1 / mean_batch, "sqs_request"),
        ],
        "DynamoDB": [
            (f"PutItem: claim the Idempotency-Key ({key_b} B item; {keyed_share:.0%} of submits)",
             keyed_share * write_units(key_b), "dynamodb_wru"),
            (f"UpdateItem: record the job as submitted (job-commands, {submitted_b} B item)",
             write_units(submitted_b), "dynamodb_wru"),
            (f"UpdateItem: accept the Idempotency-Key ({key_b} B item; {keyed_share:.0%} of submits)",
             keyed_share * write_units(key_b), "dynamodb_wru"),
            ("UpdateItem: record the attempt (1 KB)", 1, "dynamodb_wru"),
            ("UpdateItem: complete (1 KB)", 1, "dynamodb_wru"),
            ("GetItem: job-status, strongly consistent", 1, "dynamodb_rru"),
            ("GetItem: object-counter's object state, strongly consistent", 1, "dynamodb_rru"),
            ("TransactWriteItems: object state + bucket and prefix counters (3 items x 2)", 6, "dynamodb_wru"),
        ],
        "S3": [
            ("PutObject: the result", 1, "s3_put"),
            ("GetObject: the result, through the link", 1, "s3_get"),
        ],
        "SNS": [("Publish: the result's ObjectCreated event", 1, "sns_publish")],
        "EventBridge": [("PutEvents: the job's end (Job Completed)", 1, "eventbridge_custom_event")],
    }


def with_submit_function(usage: dict[str, dict]) -> dict[str, dict]:
    """`usage` with job-commands' submit invocation: as measured, or, if the
    run measured none, one per job at ASSUMED_SUBMIT_BILLED_MS (marked assumed)."""
    if usage.get(SUBMIT_FUNCTION, {}).get("invocations_per_job"):
        return usage
    assumed = {"invocations_per_job": 1.0, "gb_s_per_job": ASSUMED_SUBMIT_BILLED_MS / 1000 * SUBMIT_MEMORY_MB / 1024,
               "assumed": True}
    return {**usage, SUBMIT_FUNCTION: assumed}


def million_jobs(usage: dict[str, dict], mean_batch: float, arch: str = "arm64",
                 keyed_share: float = KEYED_SUBMIT_SHARE) -> dict:
    """Cost of 1,000,000 jobs per service (USD), with the quantities behind it."""
    n = 1_000_000
    usage = with_submit_function(usage)
    services: dict[str, dict] = {}
    invocations = sum(u["invocations_per_job"] for u in usage.values()) * n
    gb_s = sum(u["gb_s_per_job"] for u in usage.values()) * n
    services["Lambda"] = {
        "usd": invocations * PRICES["lambda_request"] + gb_s * PRICES["lambda_gb_second"][arch],
        "lines": [
            (f"{f}: {u['invocations_per_job']:.3f} invocations, {u['gb_s_per_job'] * 1000:.3f} GB-ms per job"
             + (f" (assumed: {ASSUMED_SUBMIT_BILLED_MS} ms at {SUBMIT_MEMORY_MB} MB, not measured)" if u.get("assumed") else ""),
             u["invocations_per_job"] * n * PRICES["lambda_request"] + u["gb_s_per_job"] * n * PRICES["lambda_gb_second"][arch])
            for f, u in sorted(usage.items())
        ],
        "requests": invocations,
        "gb_seconds": gb_s,
    }
    for service, rows in requests_per_job(mean_batch, keyed_share=keyed_share).items():
        lines = [(f"{what}: {per_job:g} per job", per_job * n * PRICES[key]) for what, per_job, key in rows]
        services[service] = {"usd": sum(usd for _, usd in lines), "lines": lines,
                             "requests": sum(per_job for _, per_job, _ in rows) * n}
    return {"arch": arch, "jobs": n, "services": services,
            "total_usd": sum(s["usd"] for s in services.values()), "prices_read": PRICES_READ}


def report_lines(cost: dict) -> list[str]:
    out = [f"7. Cost of 1,000,000 jobs on AWS (us-east-1, {cost['arch']}, on-demand, no free tier; "
           f"prices read {cost['prices_read']}): ${cost['total_usd']:.2f}"]
    for service, s in cost["services"].items():
        out.append(f"   {service:<12} ${s['usd']:>8.2f}")
        for what, usd in s["lines"]:
            out.append(f"      ${usd:>8.3f}  {what}")
    out.append("   prices from: " + "; ".join(f"{k} {v}" for k, v in SOURCES.items()))
    return out
