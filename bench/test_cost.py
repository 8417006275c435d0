"""The cost arithmetic of `just bench` (bench/cost.py), by hand-checked examples."""

import pytest

import cost

REPORTS = """START RequestId: a Version: $LATEST
END RequestId: a
REPORT RequestId: a\tDuration: 11.20 ms\tBilled Duration: 12 ms\tMemory Size: 256 MB\tStatus: success
REPORT RequestId: b\tDuration: 7.01 ms\tBilled Duration: 8 ms\tMemory Size: 256 MB\tInit Duration: 2.10 ms\tStatus: success
some log line mentioning REPORT RequestId: c\tDuration: 1 ms
""".splitlines()


def test_billed_reads_the_billed_duration_and_memory_of_each_report_line():
    assert cost.billed(REPORTS) == [(12, 256), (8, 256)]


def test_lambda_usage_is_per_job_in_gb_seconds_of_1024_mb():
    usage = cost.lambda_usage({"job-processor": [(12, 256), (8, 256)], "authorizer": [(1, 128)]}, jobs=2)
    assert usage["job-processor"]["invocations_per_job"] == 1.0
    assert usage["job-processor"]["gb_s_per_job"] == pytest.approx((0.012 + 0.008) * 0.25 / 2)
    assert usage["authorizer"]["gb_s_per_job"] == pytest.approx(0.001 * 0.125 / 2)
    with pytest.raises(ValueError):
        cost.lambda_usage({}, jobs=0)


# Hand-computed per-service costs of a million jobs before submits went through
# job-commands (one function "f", 100 ms at 1,024 MB per job; full batches).
BEFORE_SUBMIT_FUNCTION = {
    "Lambda": 0.20 + 100_000 * 0.0000133334,  # $1.53
    "API Gateway": 2 * 3.50,
    "SQS": 1.2 * 0.40,  # 1 send + (1 receive + 1 delete) / 10
    "DynamoDB": 8 * 0.625 + 2 * 0.125,  # record attempt, complete, 3 x 2 transaction WRU; 2 reads
    "S3": 1000 * 0.005 + 1000 * 0.0004,
    "SNS": 0.50,
    "EventBridge": 1.00,
}
# What the submit through job-commands adds, by hand: one invocation of the
# function (request + GB-s at 128 MB), its record_submitted write (1 WRU: a
# 233-byte item) and, every submit carrying a key, the key's claim PutItem and
# accept UpdateItem (1 WRU each: a 240-byte item). The SendMessage was counted
# before (the API's integration sent it) and stays one; API Gateway is unchanged.
JOB_COMMANDS_20_MS = {"invocations_per_job": 1.0, "gb_s_per_job": 0.020 * 128 / 1024}
SUBMIT_LAMBDA_20_MS = 0.20 + 1e6 * 0.020 * 0.125 * 0.0000133334  # $0.2333
SUBMIT_DYNAMODB = 3 * 0.625  # $1.875


def test_a_million_jobs_priced_per_service():
    # One function, one 100 ms invocation at 1,024 MB per job: 0.1 GB-s; job-commands measured at 20 ms.
    usage = {"f": {"invocations_per_job": 1.0, "gb_s_per_job": 0.1}, "job-commands": JOB_COMMANDS_20_MS}
    c = cost.million_jobs(usage, mean_batch=10, arch="arm64")
    s = c["services"]
    assert s["Lambda"]["usd"] == pytest.approx(BEFORE_SUBMIT_FUNCTION["Lambda"] + SUBMIT_LAMBDA_20_MS)
    assert cost.million_jobs(usage, 10, "x86_64")["services"]["Lambda"]["usd"] == pytest.approx(
        0.20 + 1.66667 + 0.20 + 1e6 * 0.0025 * 0.0000166667)
    assert s["API Gateway"]["usd"] == pytest.approx(2 * 3.50)
    # Full batches: 1 send (job-commands') + (1 receive + 1 delete) / 10 = 1.2 requests per job.
    assert s["SQS"]["requests"] == pytest.approx(1.2e6)
    assert s["SQS"]["usd"] == pytest.approx(1.2 * 0.40)
    # 11 WRU and 2 RRU per job: the submit's key claim, record and key
    # acceptance, the processor's two writes, the counter's transaction (6);
    # job-status's read and the object counter's (the processor's completing
    # write returns the record, so it reads nothing).
    assert s["DynamoDB"]["usd"] == pytest.approx(11 * 0.625 + 2 * 0.125)
    assert s["S3"]["usd"] == pytest.approx(1000 * 0.005 + 1000 * 0.0004)
    assert s["SNS"]["usd"] == pytest.approx(0.50)
    # One job's end published on the events bus.
    assert s["EventBridge"]["usd"] == pytest.approx(1.00)
    assert c["total_usd"] == pytest.approx(sum(v["usd"] for v in s.values()))


def test_the_submit_through_job_commands_adds_exactly_its_terms():
    usage = {"f": {"invocations_per_job": 1.0, "gb_s_per_job": 0.1}, "job-commands": JOB_COMMANDS_20_MS}
    s = cost.million_jobs(usage, mean_batch=10)["services"]
    added = {k: s[k]["usd"] - BEFORE_SUBMIT_FUNCTION[k] for k in BEFORE_SUBMIT_FUNCTION}
    assert added == pytest.approx({"Lambda": SUBMIT_LAMBDA_20_MS, "API Gateway": 0, "SQS": 0,
                                   "DynamoDB": SUBMIT_DYNAMODB, "S3": 0, "SNS": 0, "EventBridge": 0})
    total = cost.million_jobs(usage, mean_batch=10)["total_usd"]
    assert total == pytest.approx(sum(BEFORE_SUBMIT_FUNCTION.values()) + SUBMIT_LAMBDA_20_MS + SUBMIT_DYNAMODB)
    # Without keys the submit adds only its record's write.
    unkeyed = cost.million_jobs(usage, mean_batch=10, keyed_share=0)["services"]["DynamoDB"]["usd"]
    assert unkeyed == pytest.approx(BEFORE_SUBMIT_FUNCTION["DynamoDB"] + 0.625)
    with pytest.raises(ValueError):
        cost.requests_per_job(10, keyed_share=1.5)
    # Every submit carries a key (jobctl sends one on every submit): the upper bound.
    assert cost.KEYED_SUBMIT_SHARE == 1.0


def test_job_commands_unmeasured_is_charged_at_the_assumed_duration():
    usage = {"f": {"invocations_per_job": 1.0, "gb_s_per_job": 0.1}}
    lam = cost.million_jobs(usage, mean_batch=10)["services"]["Lambda"]
    assumed = 0.20 + 1e6 * 0.100 * 0.125 * 0.0000133334  # 100 ms at 128 MB: $0.3667
    assert cost.ASSUMED_SUBMIT_BILLED_MS == 100 and cost.SUBMIT_MEMORY_MB == 128
    assert lam["usd"] == pytest.approx(BEFORE_SUBMIT_FUNCTION["Lambda"] + assumed)
    assert any(what.startswith("job-commands") and "assumed" in what for what, _ in lam["lines"])
    # A measured one is taken as measured, and not marked.
    measured = cost.million_jobs({**usage, "job-commands": JOB_COMMANDS_20_MS}, 10)["services"]["Lambda"]["lines"]
    assert not any("assumed" in what for what, _ in measured)


def test_the_submit_s_items_are_sized_as_dynamodb_bills_them():
    # Names + values: jobRequestId 12+36, jobStatus 9+9, jobRequestPayload 17+15,
    # SentTimestamp 13+13, submittedAt 11+24, updatedAt 9+24, owner 5+36.
    assert cost.dynamodb_item_bytes(cost.SUBMITTED_ITEM) == 233
    # idempotencyKey 14+73, jobId 5+36, requestHash 11+64, claimedAt 9+(1796428800000:
    # 8 significant digits -> 4 + 1), expiresAt 9+(1796515200: 8 -> 4 + 1), accepted 8+1.
    assert cost.dynamodb_item_bytes(cost.KEY_ITEM) == 14 + 73 + 5 + 36 + 11 + 64 + 9 + 5 + 9 + 5 + 8 + 1 == 240
    assert cost.write_units(233) == 1 and cost.write_units(1024) == 1 and cost.write_units(1025) == 2
    # The message's jobId and owner attributes: name + "String" + value.
    assert cost.MESSAGE_ATTRIBUTE_BYTES == (5 + 6 + 36) * 2


def test_partial_batches_cost_the_batching_window_s_extra_receive():
    # Batches of 2: 1 send + (2 receives + 1 delete) / 2 = 2.5 requests per job.
    assert cost.million_jobs({}, mean_batch=2)["services"]["SQS"]["requests"] == pytest.approx(2.5e6)
    with pytest.raises(ValueError):
        cost.requests_per_job(0)


def test_a_message_over_64_kb_is_billed_per_chunk():
    sends = [r for r in cost.requests_per_job(10, body_bytes=200_000)["SQS"] if r[0].startswith("SendMessage")]
    assert sends[0][1] == 4
    # The attributes count: a body that fits 64 KB alone but not with them is two chunks.
    [send] = [r for r in cost.requests_per_job(10, body_bytes=65536 - 50)["SQS"] if r[0].startswith("SendMessage")]
    assert send[1] == 2


def test_the_report_names_every_service_and_the_date_the_prices_were_read():
    text = "\n".join(cost.report_lines(cost.million_jobs({"f": {"invocations_per_job": 1, "gb_s_per_job": 0}}, 10)))
    for word in ("Lambda", "API Gateway", "SQS", "DynamoDB", "S3", "SNS", cost.PRICES_READ, "aws.amazon.com"):
        assert word in text
