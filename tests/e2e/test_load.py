"""Load: the bounded version of `just load` (tools/load.py). 500 jobs, 64 at a time, through
the API with a real token; every one is accounted for. Asserts the zeros,
not the speed (the figures are printed; `just bench` measures speed)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from load import TOKEN_RENEW_SECONDS, RenewingToken, report, run_load  # noqa: E402

JOBS = 500
CLIENTS = 64  # over the 20 executions job-commands once reserved: a burst the API admits is never throttled


def test_500_jobs_all_end_with_none_lost_and_one_output_each(target):
    summary = run_load(target, JOBS, CLIENTS, timeout=600, log=lambda _: None)
    print("\n" + report(summary))
    assert summary["rejected"] == 0, summary["rejections"]
    assert summary["submitted"] == JOBS
    assert summary["lost"] == 0, summary["lostJobs"]
    assert summary["duplicateOutputs"] == 0
    assert summary["missingOutputs"] == 0
    assert (summary["completed"], summary["failed"]) == (JOBS, 0), summary["failureReasons"]


def test_the_load_signs_in_again_before_its_token_expires():
    # A 10,000-job load submits for longer than the pool's 5-minute ID
    # tokens live: with one token it was refused with 401 after ~5 minutes.
    now = [0.0]
    tokens = iter(["first", "second", "third"])
    token = RenewingToken(lambda: next(tokens), clock=lambda: now[0])
    assert TOKEN_RENEW_SECONDS < 5 * 60
    now[0] = TOKEN_RENEW_SECONDS - 1
    assert token.get() == "first"
    now[0] = TOKEN_RENEW_SECONDS
    assert token.get() == "second"
    now[0] += TOKEN_RENEW_SECONDS - 1
    assert (token.get(), token.renewals) == ("second", 1)
