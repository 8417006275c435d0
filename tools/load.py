#!/usr/bin/env python3
"""`just load N [concurrency]`: submit N jobs through the API with a real
token, wait until every one has ended, and account for each of them.

Prints: submitted (accepted by the API), rejected (refused by the API, with
the reasons: the client was told, so not lost; a 429, 502, 503 or 504, or a
lost answer, is retried up to 3 times first with the job's Idempotency-Key,
so a retry never doubles a job, and the retries are printed), completed, failed, lost
(accepted but never ended, or never recorded: must be 0), duplicate outputs
(more than one result object for a job: must be 0), missing outputs (a
complete job without its object: must be 0), throughput (jobs/s from the
first submit to the last completion) and submit-to-complete latency
percentiles, the completion rate per block of 1,000 jobs (per 100 below
2,000 jobs; completions in time order, so a system that slows as it fills
shows it), and, on the local target, the peak memory of every process it
runs (jobs-local, its moto servers, the function instances). Exits 1 when
any must-be-0 figure is not 0.

Works against the local target (`just up`) or a deployed stage (an outputs
file with the same keys, see docs/deploy.md, step 4). Reads the
jobs table and lists the results bucket to account for the jobs, so the
caller needs read access to both.

Usage: load.py N [CONCURRENCY] [--outputs FILE] [--timeout SECONDS] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from target import Target, outputs_path  # noqa: E402

RESULT_KEY = re.compile(r"^results/([0-9a-f-]{36})\.json$")

# Answers a submit is sent again after (at most RETRIES times, waiting the
# answer's Retry-After, capped): those that say "retry" (429 a rate limit,
# 502 the queue, 503 the authorizer or the key store, 504), and a lost
# answer. Each job's submits carry one Idempotency-Key, so a retry of a
# submit that did get through answers the same job instead of a second one.
RETRYABLE = (429, 502, 503, 504)
RETRIES = 3
MAX_RETRY_WAIT_SECONDS = 10


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def timestamp(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# The user pool's ID tokens live 5 minutes (cdktf/stacks/cognito-stack.ts,
# ID_TOKEN_VALIDITY_MINUTES); a submit phase can last longer, so the load
# signs in again well before that, as a client of the pool must.
TOKEN_RENEW_SECONDS = 4 * 60


class RenewingToken:
    """An ID token signed in for again once it is `renew_after` seconds old."""

    def __init__(self, sign_in, renew_after: float = TOKEN_RENEW_SECONDS, clock=time.monotonic):
        self._sign_in, self._renew_after, self._clock = sign_in, renew_after, clock
        self._lock = threading.Lock()
        self._token, self._taken = sign_in(), clock()
        self.renewals = 0

    def get(self) -> str:
        with self._lock:
            if self._clock() - self._taken >= self._renew_after:
                self._token, self._taken = self._sign_in(), self._clock()
                self.renewals += 1
            return self._token


def submit_all(target: Target, token: RenewingToken | str, n: int, concurrency: int, body_of, log) -> tuple[dict, Counter]:
    """Submits n jobs; returns {jobId: submit time} and the rejections by reason.
    `token`: a RenewingToken, or one ID token for a short burst."""
    token_of = token.get if isinstance(token, RenewingToken) else (lambda: token)
    local = threading.local()
    accepted: dict[str, float] = {}
    rejected: Counter = Counter()
    retried: Counter = Counter()
    lock = threading.Lock()
    done = 0
    last_log = time.monotonic()

    def one(i: int) -> None:
        nonlocal done, last_log
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.time()
        key = str(uuid.uuid4())
        for attempt in range(RETRIES + 1):
            try:
                r = session.post(
                    f"{target.api}/submit-job-request",
                    data=json.dumps(body_of(i)),
                    headers={"Authorization": token_of(), "Content-Type": "application/json", "Idempotency-Key": key},
                    timeout=30,
                )
                outcome = r.json().get("jobId") if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:120]}"
            except (requests.RequestException, ValueError) as e:
                outcome = f"{type(e).__name__}: {e}"[:160]
                r = None
            # The API says when to try again (Retry-After), as a client should.
            if attempt == RETRIES or (r is not None and r.status_code not in RETRYABLE):
                break
            with lock:
                retried[r.status_code if r is not None else "no answer"] += 1
            wait = r.headers.get("Retry-After", "1") if r is not None else "1"
            time.sleep(min(float(wait or 1), MAX_RETRY_WAIT_SECONDS))
        with lock:
            if r is not None and r.status_code == 200 and outcome:
                accepted[outcome] = started
            else:
                rejected[outcome] += 1
            done += 1
            if time.monotonic() - last_log > 2 or done == n:
                last_log = time.monotonic()
                log(f"  submitted {done}/{n} ({len(accepted)} accepted)")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    if retried:
        log(f"  retried after {dict(retried)} (HTTP status: count; each retry carried the job's Idempotency-Key)")
    if isinstance(token, RenewingToken) and token.renewals:
        log(f"  signed in again {token.renewals} time(s): the pool's ID tokens live 5 minutes")
    return accepted, rejected


def drain(target: Target, ids: list[str], timeout: float, log) -> dict[str, dict]:
    """Polls the jobs table until every job has ended or `timeout` passes.

    Jobs end roughly in submission order, so each round reads the oldest 500
    pending jobs, and every tenth round all of them: a 10,000-job backlog is
    not read in full twice a second from the DynamoDB server the jobs use."""
    ddb = target.client("dynamodb")
    table = target["jobsTableName"]
    records: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    last_log = 0.0
    rounds = 0
    while True:
        pending = [j for j in ids if records.get(j, {}).get("jobStatus") not in ("complete", "failed")]
        now = time.monotonic()
        if now - last_log > 2 or not pending:
            last_log = now
            states = Counter(records.get(j, {}).get("jobStatus", "not recorded yet") for j in ids)
            log("  " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
        if not pending or now > deadline:
            return records
        window = pending if rounds % 10 == 0 else pending[:500]
        rounds += 1
        for i in range(0, len(window), 100):
            keys = [{"jobRequestId": {"S": j}} for j in window[i : i + 100]]
            request = {table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = ddb.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(table, []):
                    records[item["jobRequestId"]["S"]] = {k: next(iter(v.values())) for k, v in item.items()}
                request = response.get("UnprocessedKeys") or None
        time.sleep(0.5)


def block_rates(first_submit: float, completions: list[float], block: int) -> list[dict]:
    """Completions in time order, in blocks of `block`: each block's rate is
    its size over the time since the previous block ended (the first: since
    the first submit). The last, partial block is left out."""
    ordered = sorted(completions)
    rates = []
    start = first_submit
    for i in range(block, len(ordered) + 1, block):
        end = ordered[i - 1]
        rates.append({"jobs": f"{i - block + 1}-{i}", "rate": round(block / (end - start), 1) if end > start else None})
        start = end
    return rates


def process_memory(target: Target) -> dict | None:
    """The local target's own account of its processes' memory (`processesUrl`)."""
    url = target.outputs.get("processesUrl")
    if not url:
        return None
    try:
        return requests.get(url, timeout=10).json()
    except (requests.RequestException, ValueError):
        return None


def result_objects(target: Target, ids: set[str]) -> Counter:
    """How many result objects each of `ids` has in the results bucket."""
    s3 = target.client("s3")
    counts: Counter = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target["resultsBucketName"], Prefix="results/"):
        for obj in page.get("Contents", []):
            m = RESULT_KEY.match(obj["Key"])
            if m and m.group(1) in ids:
                counts[m.group(1)] += 1
    return counts


def run_load(target: Target, n: int, concurrency: int = 16, *, timeout: float = 600, body_of=None, log=print) -> dict:
    body_of = body_of or (lambda i: {"load": True, "index": i})
    token = RenewingToken(target.id_token)
    log(f"==> Submitting {n} jobs with {concurrency} concurrent clients to {target.api}")
    first_submit = time.time()
    accepted, rejected = submit_all(target, token, n, concurrency, body_of, log)
    submit_seconds = time.time() - first_submit
    ids = list(accepted)
    log(f"==> Waiting for {len(ids)} jobs to end (at most {timeout:.0f} s)")
    records = drain(target, ids, timeout, log)
    completed = [j for j in ids if records.get(j, {}).get("jobStatus") == "complete"]
    failed = [j for j in ids if records.get(j, {}).get("jobStatus") == "failed"]
    lost = [j for j in ids if j not in completed and j not in failed]
    objects = result_objects(target, set(ids))
    duplicates = sum(c - 1 for c in objects.values() if c > 1)
    missing = [j for j in completed if objects[j] == 0]
    latencies = [timestamp(records[j]["completedAt"]) - accepted[j] for j in completed]
    completion_times = [timestamp(records[j]["completedAt"]) for j in completed]
    last_completion = max(completion_times, default=None)
    elapsed = (last_completion - first_submit) if last_completion else None
    block = 1000 if n >= 2000 else 100
    rates = block_rates(first_submit, completion_times, block)
    return {
        "requested": n,
        "concurrency": concurrency,
        "submitted": len(ids),
        "rejected": sum(rejected.values()),
        "rejections": dict(rejected),
        "completed": len(completed),
        "failed": len(failed),
        "failureReasons": dict(Counter(records[j].get("failureReason", "?") for j in failed).most_common(5)),
        "lost": len(lost),
        "lostJobs": lost[:20],
        "duplicateOutputs": duplicates,
        "missingOutputs": len(missing),
        "submitRate": round(len(ids) / submit_seconds, 1) if submit_seconds > 0 else None,
        "throughput": round(len(completed) / elapsed, 1) if elapsed and elapsed > 0 else None,
        "elapsedSeconds": round(elapsed, 1) if elapsed else None,
        "blockSize": block,
        "ratePerBlock": rates,
        "lastOverFirstBlock": round(rates[-1]["rate"] / rates[0]["rate"], 2)
        if len(rates) >= 2 and rates[0]["rate"] and rates[-1]["rate"]
        else None,
        "memory": process_memory(target),
        "latencySeconds": {
            f"p{p}": round(v, 3) if (v := percentile(latencies, p)) is not None else None for p in (50, 90, 99)
        }
        | {"max": round(max(latencies), 3) if latencies else None},
    }


def memory_rows(memory: dict | None) -> list[tuple[str, str]]:
    """Peak memory per process: jobs-local and each moto server by name, the
    instances of a function together (their count, the largest one's peak)."""
    if not memory:
        return []
    rows = []
    functions: dict[str, list[float]] = {}
    for p in memory["processes"]:
        if p["kind"] == "function":
            functions.setdefault(p["name"], []).append(p["peakRssMib"])
        else:
            label = p["name"] if p["kind"] == "jobs-local" else f"moto {p['name']}"
            rows.append((f"  {label}", f"peak {p['peakRssMib']:.0f} MiB (pid {p['pid']})"))
    for name, peaks in sorted(functions.items()):
        rows.append((f"  {name}", f"{len(peaks)} instance(s), largest peak {max(peaks):.1f} MiB, together {sum(peaks):.0f} MiB"))
    rows.append(("  all together", f"peak {memory['peakTotalRssMib']:.0f} MiB (sampled every {memory['sampleSeconds']} s; "
                                   f"sum of each process's peak {memory['sumOfPeaksMib']:.0f} MiB)"))
    return [("peak memory (RSS)", "")] + rows


def report(s: dict) -> str:
    lat = s["latencySeconds"]
    ms = lambda v: "-" if v is None else f"{v * 1000:.0f} ms"  # noqa: E731
    rates = ", ".join(f"{r['jobs']}: {r['rate']}" for r in s["ratePerBlock"]) or "-"
    rows = [
        ("submitted", f"{s['submitted']} of {s['requested']} ({s['submitRate']} jobs/s offered, {s['concurrency']} clients)"),
        ("rejected by the API", f"{s['rejected']}" + (f"  {s['rejections']}" if s["rejected"] else "")),
        ("completed", str(s["completed"])),
        ("failed", str(s["failed"]) + (f"  {s['failureReasons']}" if s["failed"] else "")),
        ("lost (must be 0)", str(s["lost"]) + (f"  e.g. {s['lostJobs'][:5]}" if s["lost"] else "")),
        ("duplicate outputs (must be 0)", str(s["duplicateOutputs"])),
        ("missing outputs (must be 0)", str(s["missingOutputs"])),
        ("throughput", f"{s['throughput']} jobs/s (first submit to last completion, {s['elapsedSeconds']} s)"),
        (f"rate per {s['blockSize']} jobs", f"{rates} jobs/s"
         + (f"  (last/first {s['lastOverFirstBlock']})" if s["lastOverFirstBlock"] is not None else "")),
        ("latency submit→complete", f"p50 {ms(lat['p50'])}, p90 {ms(lat['p90'])}, p99 {ms(lat['p99'])}, max {ms(lat['max'])}"),
        *memory_rows(s.get("memory")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def healthy(s: dict) -> bool:
    return s["lost"] == 0 and s["duplicateOutputs"] == 0 and s["missingOutputs"] == 0 and s["rejected"] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="how many jobs to submit")
    parser.add_argument("concurrency", type=int, nargs="?", default=16, help="concurrent clients (default 16)")
    parser.add_argument("--outputs", type=Path, default=None, help="outputs file (default: $JOBS_OUTPUTS or .local/outputs.json)")
    parser.add_argument("--timeout", type=float, default=600, help="longest wait for the jobs to end, in seconds (default 600)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    args = parser.parse_args()
    if not 1 <= args.n <= 100_000:
        parser.error("N must be from 1 to 100000")
    if not 1 <= args.concurrency <= 256:
        parser.error("concurrency must be from 1 to 256")
    target = Target.from_file(args.outputs or outputs_path())
    summary = run_load(target, args.n, args.concurrency, timeout=args.timeout)
    print("==> Summary\n" + report(summary))
    if args.json:
        print(json.dumps(summary, indent=2))
    if not healthy(summary):
        print("error: jobs were lost, rejected or produced the wrong number of outputs (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
