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


def test_a_million_jobs_priced_per_service():
    # One function, one 100 ms invocation at 1,024 MB per job: 0.1 GB-s.
    usage = {"f": {"invocations_per_job": 1.0, "gb_s_per_job": 0.1}}
    c = cost.million_jobs(usage, mean_batch=10, arch="arm64")
    s = c["services"]
    assert s["Lambda"]["usd"] == pytest.approx(0.20 + 100_000 * 0.0000133334)  # $1.53
    assert cost.million_jobs(usage, 10, "x86_64")["services"]["Lambda"]["usd"] == pytest.approx(0.20 + 1.66667)
    assert s["API Gateway"]["usd"] == pytest.approx(2 * 3.50)
    # Full batches: 1 send + (1 receive + 1 delete) / 10 = 1.2 requests per job.
    assert s["SQS"]["requests"] == pytest.approx(1.2e6)
    assert s["SQS"]["usd"] == pytest.approx(1.2 * 0.40)
    # 8 WRU and 2 RRU per job (job-status's read and the object counter's; the
    # processor's completing write returns the record, so it reads nothing).
    assert s["DynamoDB"]["usd"] == pytest.approx(8 * 0.625 + 2 * 0.125)
    assert s["S3"]["usd"] == pytest.approx(1000 * 0.005 + 1000 * 0.0004)
    assert s["SNS"]["usd"] == pytest.approx(0.50)
    # One job's end published on the events bus.
    assert s["EventBridge"]["usd"] == pytest.approx(1.00)
    assert c["total_usd"] == pytest.approx(sum(v["usd"] for v in s.values()))


def test_partial_batches_cost_the_batching_window_s_extra_receive():
    # Batches of 2: 1 send + (2 receives + 1 delete) / 2 = 2.5 requests per job.
    assert cost.million_jobs({}, mean_batch=2)["services"]["SQS"]["requests"] == pytest.approx(2.5e6)
    with pytest.raises(ValueError):
        cost.requests_per_job(0)


def test_a_message_over_64_kb_is_billed_per_chunk():
    sends = [r for r in cost.requests_per_job(10, body_bytes=200_000)["SQS"] if r[0].startswith("SendMessage")]
    assert sends[0][1] == 4


def test_the_report_names_every_service_and_the_date_the_prices_were_read():
    text = "\n".join(cost.report_lines(cost.million_jobs({"f": {"invocations_per_job": 1, "gb_s_per_job": 0}}, 10)))
    for word in ("Lambda", "API Gateway", "SQS", "DynamoDB", "S3", "SNS", cost.PRICES_READ, "aws.amazon.com"):
        assert word in text
