"""Business metrics: the processor writes one CloudWatch EMF line per job
event to its log. Locally the log is a file, so this reads it; on a deployed
stage the same lines are in CloudWatch Logs and become metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from test_jobs import settle, submitted_job


def emf_lines(target, function: str) -> list[dict]:
    logs_dir = target.outputs.get("logsDir")
    if logs_dir is None:
        pytest.skip("function logs are only readable as files on the local target")
    (log,) = Path(logs_dir).glob(f"*{function}.log")
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"_aws"' in line:
            lines.append(json.loads(line))
    return lines


def metrics_for(target, function: str, job_id: str) -> dict[str, float]:
    """The sum of each metric emitted for one job, with the namespace checked."""
    found: dict[str, float] = {}
    for doc in emf_lines(target, function):
        if doc.get("jobId") != job_id:
            continue
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"].startswith("JobIngestion/")
        for metric in directive["Metrics"]:
            found[metric["Name"]] = found.get(metric["Name"], 0) + doc[metric["Name"]]
    return found


def wait_for_metrics(target, function: str, job_id: str, names: set[str]) -> dict[str, float]:
    # Log lines reach the file asynchronously; bounded wait for liveness only.
    deadline = time.monotonic() + 30
    while True:
        found = metrics_for(target, function, job_id)
        if names <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_completed_job_emits_recorded_completed_and_its_duration(target, token):
    job_id = submitted_job(target, token, {"metrics": "complete"})
    assert settle(target, token, job_id)["jobStatus"] == "complete"
    found = wait_for_metrics(target, "job-processor", job_id, {"JobsRecorded", "JobsCompleted", "JobDuration"})
    assert found.get("JobsRecorded") == 1 and found.get("JobsCompleted") == 1, found
    assert found.get("JobDuration", -1) >= 0, found
    assert "JobsFailed" not in found
    assert "SimulationDuration" in wait_for_metrics(target, "batch-simulator", job_id, {"SimulationDuration"})


def test_a_failed_job_emits_failed_once(target, token):
    job_id = submitted_job(target, token, {"metrics": "fail", "simulateFailure": "always"})
    assert settle(target, token, job_id)["jobStatus"] == "failed"
    found = wait_for_metrics(target, "job-processor", job_id, {"JobsRecorded", "JobsFailed"})
    assert found.get("JobsRecorded") == 1 and found.get("JobsFailed") == 1, found
    assert "JobsCompleted" not in found
    # One simulated failure per delivery: at least one, however many the redrive policy allows.
    assert wait_for_metrics(target, "batch-simulator", job_id, {"SimulatedFailures"}).get("SimulatedFailures", 0) >= 1
