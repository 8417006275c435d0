#!/usr/bin/env python3
"""`just bench`: the service's performance figures, taken side by side in one run.

Measures (docs/performance.md explains each figure and the targets):

1. cold init per function (exec of the real `bootstrap` from its zip to its
   first Runtime API `next`, clients built, env as in production) beside the
   same figure for bench/hello-runtime (bare lambda_runtime, same profile);
2. zip size per function, x86_64 and arm64;
3. peak RSS (VmHWM) per function instance under load;
4. end-to-end throughput at saturation beside the emulator-bound limit (the
   raw rate at which moto + the Lambda emulator serve one job's calls);
5. submit->complete latency p50/p99 at a moderate rate, and the emulator
   round trips a job needs;
6. clean and incremental build times (only with --build / --clean-build);
7. what a million jobs would cost on AWS (bench/cost.py): Lambda from the
   billed durations in the emulator's REPORT lines, the other services from
   the requests a job makes.

Prints a table, writes bench/results/latest.json and bench/results/chart.svg.
Every process it starts is stopped before it exits (also on Ctrl-C).
No figure here is a test assertion: a missed target is printed, not failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import http.server
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost  # noqa: E402  (bench/cost.py)

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["authorizer", "job-processor", "batch-simulator", "job-status", "job-commands", "object-counter", "webhook-sender"]
HELLO = "hello-runtime"
RESULTS = ROOT / "bench" / "results"
LOCAL_TARGET = ROOT / "target" / "release" / "jobs-local"
STATE_DIR = ROOT / ".local" / "bench"

TARGETS = {
    "init_overhead_x": 2.0,
    "zip_mb": 4.0,
    "rss_mb": 25.0,
    "throughput_ratio": 0.80,
    "p99_over_roundtrips_x": 2.0,
}

# The emulator round trips one job takes on the path submit -> complete, from
# the code (functions/job-commands, functions/jobs-core/src/submission.rs,
# functions/job-processor, functions/jobs-aws, local/src/poller.rs).
# Every submit is taken to carry an Idempotency-Key (cost.KEYED_SUBMIT_SHARE:
# jobctl sends one on every submit, so for CLI clients the share is 100 %,
# and it is the cost's upper bound); the bench's own submits send one too.
# (call, service, per job, why it is needed)
ROUND_TRIPS = [
    ("Invoke job-commands", "lambda", 1.0, "submit: the API's Lambda proxy integration (the mix makes this function's calls itself, below)"),
    ("PutItem (claim key)", "dynamodb", 1.0, "job-commands: claims the submit's Idempotency-Key for the new job id (conditional: no unexpired claim)"),
    ("SendMessage", "sqs", 1.0, "job-commands: enqueues the job with its jobId and owner attributes (the only durable hand-off)"),
    ("UpdateItem (submitted)", "dynamodb", 1.0, "job-commands: records the job as submitted (conditional: no record yet), so it reads and cancels at once"),
    ("UpdateItem (accept key)", "dynamodb", 1.0, "job-commands: marks the key accepted; a retried submit answers the job from here on"),
    ("ReceiveMessage", "sqs", 0.1, "poller: a long poll per batch of up to 10 (a partial batch adds one non-waiting gather receive)"),
    ("Invoke job-processor", "lambda", 0.1, "poller: one invocation per batch"),
    ("UpdateItem (record attempt)", "dynamodb", 1.0, "processor: counts the attempt on the submitted record, conditional on not complete (idempotent redelivery)"),
    ("Invoke batch-simulator", "lambda", 1.0, "processor: runs the simulation (a separate function, as in the reference design)"),
    ("PutObject (result)", "s3", 1.0, "simulator: stores the 99-record result"),
    ("UpdateItem (complete)", "dynamodb", 1.0, "processor: marks the job complete with the result's location; returns the record (ALL_NEW), whose facts the job's event carries"),
    ("PutEvents (jobs' ends)", "events", 0.1, "processor: publishes the batch's Job Completed events on the job events bus, up to 10 per call"),
    ("DeleteMessageBatch", "sqs", 0.1, "poller: acknowledges the batch (ReportBatchItemFailures)"),
]
# Outside the submit -> complete path: a client reading the status.
STATUS_TRIPS = [("GetItem", "dynamodb", 1.0, "job-status: reads the job (the result link is presigned locally, no call; its signing session costs one AssumeRole per instance every ~29 min)")]

# Calls on the critical path of one job at low load, submit to `complete`
# (the serial chain): the key's claim and SendMessage (job-commands), the
# poller's long poll and its non-waiting gather receive (a partial batch),
# UpdateItem, Invoke simulator (its PutObject inside), UpdateItem. The
# submit's record and key acceptance run beside the processing (the message
# is already sent); the PutEvents of the job's end and the DeleteMessageBatch
# come after `complete`. The API's invoke of job-commands is on the path too
# but, like the API's own work, not in the mix, so not timed here.
CRITICAL_PATH = ["claim", "send", "receive", "receive", "update", "invoke_sim", "update"]

# The round trips of ROUND_TRIPS the raw mix does not make: the invokes whose
# functions' calls the mix makes itself (job-processor's per batch, the unit
# of the mix; job-commands' per submit).
NOT_IN_MIX = ("Invoke job-processor", "Invoke job-commands")


def trips_at_batch(b: float | None) -> float | None:
    """Emulator round trips per job when batches hold `b` jobs on average: the
    per-job trips of ROUND_TRIPS, plus per batch its per-batch ones (one
    invoke, one delete, one PutEvents, one long poll) and, when the batch is
    not full, one non-waiting gather receive."""
    if not b:
        return None
    per_job = sum(c for _, _, c, _ in ROUND_TRIPS if c >= 1)
    per_batch = sum(1 for _, _, c, _ in ROUND_TRIPS if c < 1) + (0 if b >= 10 else 1)
    return round(per_job + per_batch / b, 2)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def r(x, nd=1):
    return None if x is None else round(x, nd)


# --------------------------------------------------------------------------- builds


def build_env(target_dir: str | None = None) -> dict:
    """The environment `just build` gives cargo lambda (reproducible flags)."""
    env = dict(os.environ)
    env.setdefault("SOURCE_DATE_EPOCH", "315532800")
    cargo_home = env.get("CARGO_HOME", str(Path.home() / ".cargo"))
    flags = f"--remap-path-prefix={cargo_home}=/cargo"
    env["RUSTFLAGS"] = flags + (" " + os.environ["RUSTFLAGS"] if os.environ.get("RUSTFLAGS") else "")
    venv_bin = ROOT / ".tools" / "venv" / "bin"
    env["PATH"] = f"{venv_bin}:{env['PATH']}"
    if target_dir:
        env["CARGO_TARGET_DIR"] = target_dir
    return env


def cargo_lambda(packages, arch: str, lambda_dir: Path, target_dir: str | None = None) -> float:
    flag = {"x86_64": "--x86-64", "arm64": "--arm64"}[arch]
    cmd = ["cargo", "lambda", "build", "--release", "--locked", "--output-format", "zip",
           "--lambda-dir", str(lambda_dir), flag]
    for p in packages:
        cmd += ["-p", p]
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, env=build_env(target_dir), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t0


def ensure_hello() -> Path:
    zip_path = ROOT / "target" / "lambda" / "bench" / HELLO / "bootstrap.zip"
    src = ROOT / "bench" / HELLO / "src" / "main.rs"
    if not zip_path.exists() or zip_path.stat().st_mtime < src.stat().st_mtime:
        log("building bench/hello-runtime with the release profile (same flags as `just build`)")
        cargo_lambda([HELLO], "x86_64", zip_path.parent.parent)
    return zip_path


def builds(args) -> dict:
    out = {}
    if args.clean_build:
        tmp = tempfile.mkdtemp(prefix="bench-clean-")
        try:
            log(f"clean build of the four zips (x86_64) in {tmp} (takes minutes)")
            out["clean_x86_64_s"] = r(cargo_lambda(FUNCTIONS, "x86_64", Path(tmp) / "lambda", tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.build:
        handler = ROOT / "functions" / "job-processor" / "src" / "handler.rs"
        log("incremental build: touch functions/job-processor/src/handler.rs, rebuild the x86_64 zips")
        os.utime(handler)
        out["incremental_x86_64_s"] = r(cargo_lambda(FUNCTIONS, "x86_64", ROOT / "target" / "lambda" / "x86_64"))
        subprocess.run([sys.executable, "tools/normalize-zip.py",
                        *[f"target/lambda/x86_64/{f}/bootstrap.zip" for f in FUNCTIONS]], cwd=ROOT, check=True)
    if args.arm64:
        log("arm64 build of the four zips (cross, zig; first build takes minutes)")
        out["arm64_s"] = r(cargo_lambda(FUNCTIONS, "arm64", ROOT / "target" / "lambda" / "arm64"))
        subprocess.run([sys.executable, "tools/normalize-zip.py",
                        *[f"target/lambda/arm64/{f}/bootstrap.zip" for f in FUNCTIONS]], cwd=ROOT, check=True)
    return out


def zip_sizes() -> dict:
    sizes = {}
    for arch in ("x86_64", "arm64"):
        for f in FUNCTIONS:
            p = ROOT / "target" / "lambda" / arch / f / "bootstrap.zip"
            sizes.setdefault(f, {})[arch] = round(p.stat().st_size / 1e6, 2) if p.exists() else None
    return sizes


# --------------------------------------------------------------------------- cold init


class RuntimeStub(http.server.ThreadingHTTPServer):
    """Timestamps each instance's first `GET .../runtime/invocation/next`."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.first_next: dict[str, int] = {}
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()


class StubHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        now = time.perf_counter_ns()
        tag = self.path.strip("/").split("/", 1)[0]
        if self.path.endswith("/runtime/invocation/next"):
            with self.server.lock:
                self.server.first_next.setdefault(tag, now)
                ev = self.server.events.get(tag)
            if ev:
                ev.set()
            time.sleep(3)  # hold the long poll; the driver kills the instance
            return
        self.send_response(404)
        self.end_headers()

    def do_POST(self):
        self.send_response(202)
        self.end_headers()


def function_env(name: str, runtime_api: str, endpoint: str, task_root: str) -> dict:
    """What the stack and Lambda set (docs/contract.md), dummy values, local endpoints."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": task_root,
        "_HANDLER": "bootstrap",
        "TZ": ":UTC",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_ENDPOINT_URL": endpoint,
        "RUST_LOG": "info",
        "JOBS_TABLE_NAME": "bench-jobs",
        "RESULTS_BUCKET_NAME": "bench-results",
        "BATCH_SIMULATOR_FUNCTION_NAME": "bench-batch-simulator",
        "JOB_QUEUE_URL": f"{endpoint}/123456789012/bench-jobs",
        "IDEMPOTENCY_TABLE_NAME": "bench-idempotency-keys",
        "MAX_MESSAGE_BYTES": "262144",
        "MAX_RECEIVE_COUNT": "4",
        "JOB_EVENTS_BUS_NAME": "bench-jobs",
        "RESULT_RETENTION_DAYS": "30",
        "COUNTERS_TABLE_NAME": "bench-counters",
        "RETRY_BACKOFF_BASE_SECONDS": "10",
        "PRESIGNED_URL_TTL_SECONDS": "1800",
        "RESULT_LINK_ROLE_ARN": "arn:aws:iam::123456789012:role/bench-result-links",
        "JWT_LEEWAY_SECONDS": "5",
        "COGNITO_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_bench",
        "COGNITO_APP_CLIENT_ID": "benchclient",
        "JWKS_URL": f"{endpoint}/us-east-1_bench/.well-known/jwks.json",
        "ALLOWED_ROUTES": "POST/submit-job-request GET/job-status/* GET/jobs GET/count",
        "METRICS_NAMESPACE": "JobIngestion/bench",
        "WEBHOOK_DESTINATIONS": "public-https",
        "WEBHOOK_QUEUE_URL": f"{endpoint}/123456789012/bench-webhooks",
        "WEBHOOK_SIGNING_SECRET_ID": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-webhook-signing-AbCdEf",
        "WEBHOOK_BACKOFF_BASE_SECONDS": "10",
        "WEBHOOK_BACKOFF_CAP_SECONDS": "3600",
        "WEBHOOK_MAX_ATTEMPTS": "33",
    }


def cold_init(zips: dict[str, Path], starts: int, workdir: Path) -> dict:
    binaries = {}
    for name, z in zips.items():
        d = workdir / "init" / name
        d.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(z) as zf:
            zf.extractall(d)
        (d / "bootstrap").chmod(0o755)
        binaries[name] = d
    stub = RuntimeStub()
    port = stub.server_address[1]
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{port}"
    samples: dict[str, list[float]] = {n: [] for n in binaries}
    failures: dict[str, int] = {n: 0 for n in binaries}
    try:
        # Interleaved, so machine noise falls on every binary alike; one warm-up round first.
        for i in range(-1, starts):
            for name, d in binaries.items():
                tag = f"{name}-{i + 1}-{uuid.uuid4().hex[:6]}"
                ev = threading.Event()
                with stub.lock:
                    stub.events[tag] = ev
                env = function_env(name, f"{endpoint}/{tag}", endpoint, str(d))
                t0 = time.perf_counter_ns()
                p = subprocess.Popen([str(d / "bootstrap")], cwd=d, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ok = ev.wait(10)
                p.kill()
                p.wait()
                if not ok:
                    failures[name] += 1
                    continue
                if i >= 0:
                    samples[name].append((stub.first_next[tag] - t0) / 1e6)
    finally:
        stub.shutdown()
        stub.server_close()
    out = {}
    hello = statistics.median(samples[HELLO]) if samples.get(HELLO) else None
    for name, s in samples.items():
        med = statistics.median(s) if s else None
        out[name] = {"n": len(s), "failed": failures[name], "median_ms": r(med, 2), "p90_ms": r(pct(s, 90), 2),
                     "overhead_x": r(med / hello, 2) if (med and hello and name != HELLO) else None}
    return out


# --------------------------------------------------------------------------- the local system


class System:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.outputs: dict = {}

    def start(self):
        subprocess.run([str(LOCAL_TARGET), "stop", "--state-dir", str(self.state_dir)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        log("starting jobs-local on ephemeral ports (state dir .local/bench)")
        subprocess.run([str(LOCAL_TARGET), "start", "--stacks", str(ROOT / "cdktf" / "cdktf.out"),
                        "--state-dir", str(self.state_dir), "--api-port", "0", "--lambda-port", "0",
                        "--moto-port", "0"], check=True, stdout=subprocess.DEVNULL)
        self.outputs = json.loads((self.state_dir / "outputs.json").read_text())

    def stop(self):
        subprocess.run([str(LOCAL_TARGET), "stop", "--state-dir", str(self.state_dir)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def client(self, service: str):
        import boto3
        from botocore.config import Config
        return boto3.client(service, region_name=self.outputs["region"],
                            endpoint_url=self.outputs["awsEndpoints"][service],
                            aws_access_key_id="local", aws_secret_access_key="local",
                            config=Config(max_pool_connections=64, retries={"max_attempts": 0}))

    def function_name(self, fn: str) -> str:
        names = [n for n in self.outputs["functionLogs"] if n.endswith(fn)]
        return names[0]


class RssSampler(threading.Thread):
    """Peak RSS (VmHWM) of every function instance the Lambda emulator runs."""

    def __init__(self, functions_dir: Path):
        super().__init__(daemon=True)
        self.functions_dir = str(functions_dir.resolve())
        self.peak_kb: dict[str, int] = {}
        self.instances: dict[str, set] = {}
        self.stopping = threading.Event()

    def sample(self):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
                if not exe.startswith(self.functions_dir):
                    continue
                fn = next((f for f in FUNCTIONS if Path(exe).parent.name.endswith(f)), Path(exe).parent.name)
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            kb = int(line.split()[1])
                            self.peak_kb[fn] = max(self.peak_kb.get(fn, 0), kb)
                            self.instances.setdefault(fn, set()).add(pid)
            except OSError:
                continue

    def run(self):
        while not self.stopping.wait(0.25):
            self.sample()


class CompletionWatcher(threading.Thread):
    """Follows the job-processor's log for `job complete` lines (no load on the emulators)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.done: set[str] = set()
        self.invocations = 0  # job-processor invocations (START lines): one per batch
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        pos = 0
        pat = re.compile(r'"job_id":"([0-9a-fA-F-]{36})"')
        buf = ""
        while not self.stopping.wait(0.05):
            try:
                with open(self.path) as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except FileNotFoundError:
                continue
            buf += chunk
            lines = buf.split("\n")
            buf = lines.pop()
            with self.lock:
                for line in lines:
                    if line.startswith("START RequestId:"):
                        self.invocations += 1
                    elif "job complete" in line:
                        m = pat.search(line)
                        if m:
                            self.done.add(m.group(1))

    def count(self, ids) -> int:
        with self.lock:
            return sum(1 for i in ids if i in self.done)


def sign_in(system: System) -> str:
    o = system.outputs
    res = system.client("cognito-idp").initiate_auth(
        ClientId=o["userPoolClientId"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": o["username"], "PASSWORD": o["password"]})
    return res["AuthenticationResult"]["IdToken"]


_tls = threading.local()

# The job every submit of the bench sends (and the mix's message body).
JOB_BODY = b'{"region":"eu"}'


def _session():
    import requests
    if not hasattr(_tls, "s"):
        _tls.s = requests.Session()
    return _tls.s


def submit_headers(token: str) -> dict:
    """One submit's headers: every submit carries a fresh Idempotency-Key, as
    jobctl sends one on every submit (cost.KEYED_SUBMIT_SHARE; the mix's key
    writes)."""
    return {"Authorization": token, "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}


def submit_jobs(system: System, token: str, n: int, rate: float | None, workers: int = 16):
    """Submit n jobs, open loop at `rate` jobs/s (None: as fast as `workers` allow).
    Returns [(job_id, submit_epoch_s)] and the failures."""
    url = system.outputs["apiUrl"].rstrip("/") + "/submit-job-request"
    start = time.time() + 0.2
    results, failures = [], []

    def one(i):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        t = time.time()
        try:
            resp = _session().post(url, data=JOB_BODY, headers=submit_headers(token), timeout=30)
            if resp.status_code == 200:
                return resp.json()["jobId"], t
            return None, f"{resp.status_code} {resp.text[:100]}"
        except Exception as e:  # noqa: BLE001 - a benchmark reports, never raises mid-run
            return None, str(e)

    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        for jid, t in pool.map(one, range(n)):
            (results.append((jid, t)) if jid else failures.append(t))
    return results, failures


def completion_times(system: System, ids: list[str]) -> dict[str, float]:
    """completedAt (ms precision, written by the processor) of each job, read once afterwards."""
    ddb = system.client("dynamodb")
    table = system.outputs["jobsTableName"]
    out = {}
    for i in range(0, len(ids), 100):
        keys = [{"jobRequestId": {"S": j}} for j in ids[i:i + 100]]
        req = {table: {"Keys": keys, "ProjectionExpression": "jobRequestId, completedAt"}}
        while req:
            res = ddb.batch_get_item(RequestItems=req)
            for item in res["Responses"].get(table, []):
                if "completedAt" in item:
                    t = dt.datetime.fromisoformat(item["completedAt"]["S"].replace("Z", "+00:00"))
                    out[item["jobRequestId"]["S"]] = t.timestamp()
            req = res.get("UnprocessedKeys") or None
    return out


def status_load(system: System, token: str, ids: list[str], workers: int = 16) -> dict:
    """GET job-status for finished jobs (puts the authorizer and job-status under load)."""
    base = system.outputs["apiUrl"].rstrip("/") + "/job-status/"

    def one(j):
        t = time.perf_counter()
        resp = _session().get(base + j, headers={"Authorization": token}, timeout=30)
        return resp.status_code, (time.perf_counter() - t) * 1000

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        got = list(pool.map(one, ids))
    lat = [ms for code, ms in got if code == 200]
    return {"requests": len(ids), "ok": len(lat), "per_s": r(len(ids) / (time.monotonic() - t0), 1),
            "p50_ms": r(pct(lat, 50)), "p99_ms": r(pct(lat, 99))}


def load_step(system, watcher, token, n, rate, timeout_s, workers=16) -> dict:
    t0 = time.time()
    inv0 = watcher.invocations
    submitted, failures = submit_jobs(system, token, n, rate, workers)
    submit_span = (submitted[-1][1] - submitted[0][1]) if len(submitted) > 1 else 0
    ids = [j for j, _ in submitted]
    deadline = time.time() + timeout_s
    while watcher.count(ids) < len(ids) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.2)
    batches = watcher.invocations - inv0
    done = completion_times(system, ids)
    sent = dict(submitted)
    lat = [(done[j] - sent[j]) * 1000 for j in ids if j in done]
    ends = sorted(done.values())
    first_submit = min(sent.values()) if sent else t0
    e2e = (len(ends) / (ends[-1] - first_submit)) if ends else 0.0
    # Steady processing rate: completions between the 10th and 90th percentile completion.
    steady = None
    if len(ends) >= 20:
        a, b = ends[len(ends) // 10], ends[len(ends) * 9 // 10]
        if b > a:
            steady = (len(ends) * 9 // 10 - len(ends) // 10) / (b - a)
    return {
        "ids": ids, "offered_rate": rate, "jobs": n, "submitted": len(ids), "submit_failures": len(failures),
        "completed": len(done), "batches": batches,
        "mean_batch": r(len(done) / batches, 2) if batches else None, "achieved_submit_rate": r(len(ids) / submit_span, 2) if submit_span else None,
        "throughput_e2e": r(e2e, 2), "throughput_steady": r(steady, 2),
        "p50_ms": r(pct(lat, 50)), "p90_ms": r(pct(lat, 90)), "p99_ms": r(pct(lat, 99)), "max_ms": r(max(lat) if lat else None),
    }


# --------------------------------------------------------------------------- raw emulator mix


class RawAws:
    """One thread's keep-alive connections to the emulators, with pre-shaped
    requests (JSON protocols, an unchecked SigV4-shaped header): the driver
    spends far less CPU per call than boto3, so the figure is the emulators'
    rate rather than the Python client's."""

    def __init__(self, outputs: dict, ids: dict):
        import http.client
        from urllib.parse import urlsplit
        self.http = http.client
        self.ids = ids
        self.region = outputs["region"]
        self.hosts = {k: urlsplit(v).netloc for k, v in outputs["awsEndpoints"].items()}
        self.conns: dict = {}
        self.pending_events: list[dict] = []

    def call(self, service, path, body: bytes, target: str | None = None, ctype="application/x-amz-json-1.0"):
        headers = {"Content-Type": ctype, "Content-Length": str(len(body)),
                   "Authorization": f"AWS4-HMAC-SHA256 Credential=local/20260101/{self.region}/{service}/aws4_request, "
                                    "SignedHeaders=host, Signature=0"}
        if target:
            headers["X-Amz-Target"] = target
        for attempt in (0, 1):
            conn = self.conns.get(service)
            if conn is None:
                conn = self.conns[service] = self.http.HTTPConnection(self.hosts[service], timeout=60)
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status >= 300:
                    raise RuntimeError(f"{service} {target or path}: {resp.status} {data[:200]!r}")
                return data
            except (OSError, self.http.HTTPException):
                conn.close()
                self.conns.pop(service, None)
                if attempt:
                    raise

    # The submit's calls, as job-commands makes them (functions/jobs-core/src/
    # submission.rs orders them: claim, send, record, accept), each every
    # submit: the mix models every submit carrying an Idempotency-Key
    # (cost.KEYED_SUBMIT_SHARE), the cost's upper bound and jobctl's share.

    def claim_key(self, job, key, now_ms):
        # functions/jobs-aws/src/idempotency.rs, claim_key: one conditional PutItem.
        self.call("dynamodb", "/", json.dumps({
            "TableName": self.ids["keys"],
            "Item": {"idempotencyKey": {"S": f"{self.ids['owner']}#{key}"}, "jobId": {"S": job},
                     "requestHash": {"S": "0" * 64}, "claimedAt": {"N": str(now_ms)},
                     "expiresAt": {"N": str(now_ms // 1000 + 86400)}, "accepted": {"BOOL": False}},
            "ConditionExpression": "attribute_not_exists(#key) OR #expires <= :now",
            "ExpressionAttributeNames": {"#key": "idempotencyKey", "#expires": "expiresAt"},
            "ExpressionAttributeValues": {":now": {"N": str(now_ms // 1000)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}).encode(),
            "DynamoDB_20120810.PutItem")

    def send(self, job):
        # functions/jobs-aws/src/sqs.rs, enqueue_job: the SDK's JSON protocol,
        # the request as the body, the jobId and owner attributes (callbackUrl
        # only with a Job-Callback-Url, which the bench does not send).
        self.call("sqs", "/", json.dumps({
            "QueueUrl": self.ids["queue"], "MessageBody": JOB_BODY.decode(),
            "MessageAttributes": {"jobId": {"DataType": "String", "StringValue": job},
                                  "owner": {"DataType": "String", "StringValue": self.ids["owner"]}}}).encode(),
            "AmazonSQS.SendMessage")

    def submitted(self, job, now, now_ms):
        # functions/jobs-aws/src/dynamodb.rs, record_submitted: creates the record as submitted.
        self.call("dynamodb", "/", json.dumps({
            "TableName": self.ids["table"], "Key": {"jobRequestId": {"S": job}},
            "UpdateExpression": "SET #status = :submitted, #payload = :payload, #sent = :sent, "
                                "#submittedAt = :submittedAt, #updated = :now, #owner = :owner",
            "ConditionExpression": "attribute_not_exists(#id)",
            "ExpressionAttributeNames": {"#id": "jobRequestId", "#status": "jobStatus", "#payload": "jobRequestPayload",
                                         "#sent": "SentTimestamp", "#submittedAt": "submittedAt",
                                         "#updated": "updatedAt", "#owner": "owner"},
            "ExpressionAttributeValues": {":submitted": {"S": "submitted"}, ":payload": {"S": JOB_BODY.decode()},
                                          ":sent": {"S": str(now_ms)}, ":submittedAt": {"S": now},
                                          ":now": {"S": now}, ":owner": {"S": self.ids["owner"]}}}).encode(),
            "DynamoDB_20120810.UpdateItem")

    def accept_key(self, job, key):
        # functions/jobs-aws/src/idempotency.rs, accept_key.
        self.call("dynamodb", "/", json.dumps({
            "TableName": self.ids["keys"], "Key": {"idempotencyKey": {"S": f"{self.ids['owner']}#{key}"}},
            "UpdateExpression": "SET #accepted = :true", "ConditionExpression": "#job = :job",
            "ExpressionAttributeNames": {"#accepted": "accepted", "#job": "jobId"},
            "ExpressionAttributeValues": {":true": {"BOOL": True}, ":job": {"S": job}}}).encode(),
            "DynamoDB_20120810.UpdateItem")

    def receive(self):
        data = self.call("sqs", "/", json.dumps({
            "QueueUrl": self.ids["queue"], "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0,
            "MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"]}).encode(),
            "AmazonSQS.ReceiveMessage")
        return json.loads(data).get("Messages", [])

    def delete(self, msgs):
        self.call("sqs", "/", json.dumps({"QueueUrl": self.ids["queue"], "Entries": [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]}).encode(),
            "AmazonSQS.DeleteMessageBatch")

    def record(self, job, now):
        # The processor's two writes, expression for expression
        # (functions/jobs-aws/src/dynamodb.rs: record_attempt, complete_job).
        self.call("dynamodb", "/", json.dumps({
            "TableName": self.ids["table"], "Key": {"jobRequestId": {"S": job}},
            "UpdateExpression": "SET #status = :submitted, #attempts = if_not_exists(#attempts, :zero) + :one, "
                                "#updated = :now, #payload = if_not_exists(#payload, :payload), "
                                "#sent = if_not_exists(#sent, :sent), #submittedAt = if_not_exists(#submittedAt, :submittedAt), "
                                "#owner = if_not_exists(#owner, :owner) REMOVE #reason, #expires, #failedAt",
            "ConditionExpression": "attribute_not_exists(#id) OR NOT #status IN (:complete, :cancelled)",
            "ExpressionAttributeNames": {"#id": "jobRequestId", "#status": "jobStatus", "#attempts": "attempts",
                                         "#updated": "updatedAt", "#payload": "jobRequestPayload",
                                         "#sent": "SentTimestamp", "#submittedAt": "submittedAt", "#owner": "owner",
                                         "#reason": "failureReason", "#expires": "expiresAt", "#failedAt": "failedAt"},
            "ExpressionAttributeValues": {":submitted": {"S": "submitted"}, ":complete": {"S": "complete"},
                                          ":cancelled": {"S": "cancelled"},
                                          ":zero": {"N": "0"}, ":one": {"N": "1"}, ":now": {"S": now},
                                          ":payload": {"S": '{"region":"eu"}'}, ":sent": {"S": str(int(time.time() * 1000))},
                                          ":submittedAt": {"S": now}, ":owner": {"S": self.ids["owner"]}},
            "ReturnValues": "UPDATED_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}).encode(),
            "DynamoDB_20120810.UpdateItem")

    def complete(self, job, now):
        return self.call("dynamodb", "/", json.dumps({
            "TableName": self.ids["table"], "Key": {"jobRequestId": {"S": job}},
            "UpdateExpression": "SET #status = :complete, #location = :bucket, #key = :key, #completed = :now, "
                                "#updated = :now, #expires = :expires REMOVE #reason, #error, #failedAt",
            "ConditionExpression": "attribute_exists(#id) AND NOT #status IN (:complete, :cancelled)",
            "ExpressionAttributeNames": {"#id": "jobRequestId", "#status": "jobStatus", "#location": "jobPayloadLocation",
                                         "#key": "jobPayloadKey", "#completed": "completedAt", "#updated": "updatedAt",
                                         "#expires": "expiresAt", "#reason": "failureReason", "#error": "lastError",
                                         "#failedAt": "failedAt"},
            "ExpressionAttributeValues": {":complete": {"S": "complete"}, ":cancelled": {"S": "cancelled"},
                                          ":bucket": {"S": self.ids["bucket"]},
                                          ":key": {"S": f"jobs/{job}.json"}, ":now": {"S": now},
                                          ":expires": {"N": str(int(time.time()) + 86400)}},
            "ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}).encode(),
            "DynamoDB_20120810.UpdateItem")

    def end(self, job, completed_at):
        # The processor's publication of a job's end (functions/job-processor
        # handler.rs, jobs-aws events.rs): its event, from the record the
        # completing write returned, sent with the batch's others in one
        # PutEvents of up to 10 entries (here: every 10th job sends the 10 gathered).
        detail = {"jobId": job, "jobStatus": "complete", "owner": self.ids["owner"],
                  "completedAt": completed_at,
                  "attempts": 1, "result": {"bucket": self.ids["bucket"], "key": f"results/{job}.json"}}
        self.pending_events.append({"EventBusName": self.ids["bus"], "Source": "job-ingestion",
                                    "DetailType": "Job Completed", "Detail": json.dumps(detail)})
        if len(self.pending_events) < 10:
            return
        entries, self.pending_events = self.pending_events, []
        data = self.call("events", "/", json.dumps({"Entries": entries}).encode(), "AWSEvents.PutEvents",
                         ctype="application/x-amz-json-1.1")
        if json.loads(data).get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents rejected entries: {data[:200]!r}")

    def invoke_sim(self, job):
        data = self.call("lambda", f"/2015-03-31/functions/{self.ids['simulator']}/invocations", json.dumps(
            {"jobRequestId": job, "jobRequestPayload": {"region": "eu"}, "attempt": 1}).encode(),
            ctype="application/json")
        if b"errorType" in data[:200]:
            raise RuntimeError(f"simulator failed: {data[:200]!r}")


def one_job(c: RawAws, receive: bool, timings: dict | None = None):
    """The calls one job makes, request for request as the system makes them
    (bench/test_mix.py holds them to job-commands' and the processor's), against
    the same emulators: a bench-only queue, a table shaped as the jobs table and
    one shaped as the idempotency keys table; the simulator writes to the
    results bucket, so the object counter's work follows each job as it does
    in the system. The invokes of job-commands and job-processor are not made
    (NOT_IN_MIX): their calls are made here."""
    job, key = str(uuid.uuid4()), str(uuid.uuid4())
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    now_ms = int(time.time() * 1000)

    def timed(name, fn, *a):
        t = time.perf_counter()
        res = fn(*a)
        if timings is not None:
            timings.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return res

    # The submit (job-commands): every submit carries a key (cost.KEYED_SUBMIT_SHARE).
    timed("claim", c.claim_key, job, key, now_ms)
    timed("send", c.send, job)
    timed("submitted", c.submitted, job, now, now_ms)
    timed("accept", c.accept_key, job, key)
    if receive:
        msgs = timed("receive", c.receive)
        if msgs:
            timed("delete", c.delete, msgs)
    timed("update", c.record, job, now)
    timed("invoke_sim", c.invoke_sim, job)
    written = timed("update", c.complete, job, now)
    completed_at = json.loads(written or b"{}").get("Attributes", {}).get("completedAt", {}).get("S", "")
    timed("end", c.end, job, completed_at)


def _mix_worker(outputs, ids, seconds, threads, q):
    """One process of the raw mix: `threads` loops, each doing one job's calls."""
    counts = []
    end = time.time() + seconds

    def loop():
        c = RawAws(outputs, ids)
        n, errors, first_error = 0, 0, None
        while time.time() < end:
            try:
                one_job(c, receive=(n % 10 == 0))
                n += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors += 1
                first_error = first_error or str(e)[:200]
        counts.append((n, errors, first_error))

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put(counts)


def raw_mix(system: System, seconds: float, procs: int, threads: int) -> dict:
    """The emulator-bound limit: one job's calls, as fast as the emulators serve them."""
    sqs, ddb = system.client("sqs"), system.client("dynamodb")
    queue = sqs.create_queue(QueueName=f"bench-mix-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    # A table shaped as the jobs table (its keys and the owner index), so the
    # writes cost what the processor's cost.
    jobs_table = ddb.describe_table(TableName=system.outputs["jobsTableName"])["Table"]
    table = f"bench-mix-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=jobs_table["AttributeDefinitions"], KeySchema=jobs_table["KeySchema"],
                     **({"GlobalSecondaryIndexes": [
                         {k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
                         for g in jobs_table["GlobalSecondaryIndexes"]]} if jobs_table.get("GlobalSecondaryIndexes") else {}))
    # A table shaped as the idempotency keys table (cdktf/constructs/idempotency-table.ts:
    # hash key idempotencyKey, no index).
    keys = f"bench-mix-keys-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=keys, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "idempotencyKey", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "idempotencyKey", "KeyType": "HASH"}])
    ids = {"queue": queue, "table": table, "keys": keys, "simulator": system.function_name("batch-simulator"),
           "owner": str(uuid.uuid4()), "bucket": system.outputs.get("resultsBucketName", "results"),
           "bus": system.outputs["eventBusName"]}
    # Idle latency of each call, one at a time (the critical path's round trips).
    timings: dict[str, list[float]] = {}
    c = RawAws(system.outputs, ids)
    for i in range(20):
        one_job(c, receive=True, timings=timings)
    idle = {k: r(statistics.median(v), 2) for k, v in timings.items()}
    critical = sum(idle[k] for k in CRITICAL_PATH)
    # Throughput of the mix.
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ps = [ctx.Process(target=_mix_worker, args=(system.outputs, ids, seconds, threads, q)) for _ in range(procs)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    counts = [c for _ in ps for c in q.get(timeout=seconds + 120)]
    for p in ps:
        p.join(30)
        if p.is_alive():
            p.kill()
    elapsed = time.monotonic() - t0
    jobs = sum(n for n, _, _ in counts)
    errors = sum(e for _, e, _ in counts)
    first_error = next((f for _, _, f in counts if f), None)
    calls_per_job = sum(c for name, _, c, _ in ROUND_TRIPS if name not in NOT_IN_MIX)
    return {
        "concurrency": procs * threads, "seconds": r(elapsed, 1), "jobs": jobs, "errors": errors, "first_error": first_error,
        "calls_per_job": r(calls_per_job, 2), "raw_calls_per_s": r(jobs * calls_per_job / elapsed, 1),
        "limit_jobs_per_s": r(jobs / elapsed, 2),
        "idle_call_ms": idle, "critical_path_ms": r(critical, 1),
    }


# --------------------------------------------------------------------------- chart


# --------------------------------------------------------------------------- cost


def function_log_lines(system: System) -> dict[str, int]:
    """How many lines each function's log holds now."""
    out = {}
    for name, path in system.outputs["functionLogs"].items():
        try:
            with open(path, errors="replace") as f:
                out[name] = sum(1 for _ in f)
        except OSError:
            out[name] = 0
    return out


def quiet_function_logs(system: System, quiet_s: float = 2.0, longest_s: float = 60.0) -> dict[str, int]:
    """The functions' log lengths once no log has grown for `quiet_s`."""
    last, since, end = function_log_lines(system), time.monotonic(), time.monotonic() + longest_s
    while time.monotonic() < end:
        time.sleep(0.5)
        now = function_log_lines(system)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def cost_of_run(system: System, offsets: dict[str, int], jobs: int, status_reads: int, mean_batch: float):
    """A million jobs' cost on AWS from the REPORT lines written since `offsets`."""
    quiet_function_logs(system, quiet_s=3.0, longest_s=120.0)  # the counter may still be catching up
    reports = {}
    for name, path in system.outputs["functionLogs"].items():
        short = next((f for f in FUNCTIONS if name.endswith(f)), name)
        with open(path, errors="replace") as f:
            reports[short] = cost.billed(line for i, line in enumerate(f) if i >= offsets.get(name, 0))
    usage = cost.lambda_usage(reports, max(jobs, 1))
    # The cost counts one status read per job; the bench made fewer.
    if status_reads and "job-status" in reports:
        usage.update(cost.lambda_usage({"job-status": reports["job-status"]}, status_reads))
    basis = {"jobs": jobs, "status_reads": status_reads, "mean_batch": mean_batch,
             "invocations": {f: len(r) for f, r in reports.items()}}
    return cost.million_jobs(usage, mean_batch, "arm64"), basis


def chart_svg(steps: list[dict], limit: float | None, machine: str) -> str:
    steps = [s for s in steps if s.get("p50_ms") is not None]
    W, H, L, Rm, T, B = 760, 420, 70, 70, 50, 60
    pw, ph = W - L - Rm, H - T - B
    import math
    xs = [s["offered_rate"] for s in steps] or [1]
    xmax = max(xs) * 1.1
    # Latency on a log scale: the knee at saturation spans orders of magnitude.
    lat = [s[k] for s in steps for k in ("p50_ms", "p90_ms", "p99_ms") if s.get(k)] or [1, 10]
    llo = 10 ** math.floor(math.log10(min(lat)))
    lhi = 10 ** math.ceil(math.log10(max(lat)))
    tmax = max([s["throughput_e2e"] or 0 for s in steps] + [limit or 0, xmax]) * 1.1

    def X(v):
        return L + pw * v / xmax

    def YL(v):
        return T + ph * (1 - (math.log10(max(v, llo)) - math.log10(llo)) / (math.log10(lhi) - math.log10(llo)))

    def YT(v):
        return T + ph * (1 - v / tmax)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">Submit→complete latency and throughput vs offered load</text>',
         f'<text x="{W / 2}" y="36" text-anchor="middle" fill="#555">{machine}</text>',
         f'<line x1="{L}" y1="{T + ph}" x2="{L + pw}" y2="{T + ph}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{T + ph}" stroke="black"/>',
         f'<line x1="{L + pw}" y1="{T}" x2="{L + pw}" y2="{T + ph}" stroke="black"/>']
    for i in range(6):
        xv, tv = xmax * i / 5, tmax * i / 5
        o.append(f'<text x="{X(xv)}" y="{T + ph + 16}" text-anchor="middle">{xv:.0f}</text>')
        o.append(f'<text x="{L + pw + 6}" y="{YT(tv) + 4}">{tv:.0f}</text>')
    lv = llo
    while lv <= lhi:
        o.append(f'<text x="{L - 6}" y="{YL(lv) + 4}" text-anchor="end">{lv:g}</text>')
        o.append(f'<line x1="{L}" y1="{YL(lv)}" x2="{L + pw}" y2="{YL(lv)}" stroke="#eee"/>')
        lv *= 10
    o.append(f'<text x="{L + pw / 2}" y="{H - 20}" text-anchor="middle">offered load (jobs/s)</text>')
    o.append(f'<text transform="translate(16,{T + ph / 2}) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>')
    o.append(f'<text transform="translate({W - 14},{T + ph / 2}) rotate(90)" text-anchor="middle">throughput (jobs/s)</text>')
    series = [("p50_ms", "#1f77b4", YL, "p50"), ("p90_ms", "#ff7f0e", YL, "p90"), ("p99_ms", "#d62728", YL, "p99"),
              ("throughput_e2e", "#2ca02c", YT, "throughput")]
    for key, colour, Y, label in series:
        pts = [(X(s["offered_rate"]), Y(s[key])) for s in steps if s.get(key) is not None]
        if pts:
            dash = ' stroke-dasharray="6,3"' if key.startswith("throughput") else ""
            o.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
            o += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
    if limit:
        o.append(f'<line x1="{L}" y1="{YT(limit)}" x2="{L + pw}" y2="{YT(limit)}" stroke="#2ca02c" stroke-dasharray="2,4"/>')
        o.append(f'<text x="{L + 6}" y="{YT(limit) - 4}" fill="#2ca02c">emulator-bound limit {limit:.1f} jobs/s</text>')
    for i, (_, colour, _, label) in enumerate(series):
        o.append(f'<rect x="{L + 10 + i * 110}" y="{T + 6}" width="12" height="3" fill="{colour}"/>')
        o.append(f'<text x="{L + 26 + i * 110}" y="{T + 11}">{label}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


# --------------------------------------------------------------------------- report


def machine_line(load_note: str) -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}{load_note}"


def verdict(value, target, lower_is_better=True):
    if value is None:
        return "not measured"
    ok = value <= target if lower_is_better else value >= target
    if ok:
        return "met"
    if lower_is_better:
        return f"MISSED by {value - target:.2f} ({(value / target - 1) * 100:.0f}% over)"
    return f"MISSED by {target - value:.2f} ({(1 - value / target) * 100:.0f}% under)"


def report(res: dict) -> str:
    lines = []
    add = lines.append
    add(f"just bench ({res['mode']}) — {res['date']} — {res['machine']}")
    add(f"load average at start: {res['loadavg_start']}, at end: {res.get('loadavg_end')}")
    add("")
    ci = res.get("cold_init", {})
    if ci:
        add("1. Cold init: exec of bootstrap -> first Runtime API `next` (ms)")
        add(f"   {'function':<16}{'n':>4}{'median':>9}{'p90':>9}{'x bare':>8}  target <= {TARGETS['init_overhead_x']}x")
        for name, v in ci.items():
            x = v["overhead_x"]
            add(f"   {name:<16}{v['n']:>4}{v['median_ms'] or 0:>9.2f}{v['p90_ms'] or 0:>9.2f}"
                f"{(f'{x:.2f}' if x else '-'):>8}  {verdict(x, TARGETS['init_overhead_x']) if name != HELLO else '(baseline)'}")
        add("")
    add("2. Zip size (MB, 10^6 bytes)")
    add(f"   {'function':<16}{'x86_64':>8}{'arm64':>8}  target <= {TARGETS['zip_mb']} MB")
    for f, v in res["zip_mb"].items():
        worst = max([x for x in v.values() if x is not None], default=None)
        fmt = lambda x: f"{x:.2f}" if x is not None else "n/a"  # noqa: E731
        add(f"   {f:<16}{fmt(v['x86_64']):>8}{fmt(v['arm64']):>8}  {verdict(worst, TARGETS['zip_mb'])}"
            + ("" if v["arm64"] is not None else " (arm64 not built: `just build arm64` or --arm64)"))
    add("")
    rss = res.get("peak_rss_mb")
    if rss:
        add("3. Peak RSS per instance under load (MB, VmHWM)")
        for f in FUNCTIONS:
            v = rss.get(f)
            add(f"   {f:<16}{(f'{v:.1f}' if v else 'n/a'):>8}  instances seen {res['instances'].get(f, 0)}  "
                f"{verdict(v, TARGETS['rss_mb'])}")
        add("")
    mix = res.get("emulator_mix")
    sat = res.get("saturation")
    if mix and sat:
        ratio = res["throughput_ratio"]
        add("4. Throughput at saturation vs the emulator-bound limit")
        add(f"   end to end: {sat['throughput_e2e']} jobs/s ({sat['completed']}/{sat['jobs']} jobs complete, "
            f"submitted at {sat['achieved_submit_rate']} jobs/s; steady processing {sat['throughput_steady']} jobs/s; "
            f"mean batch {sat['mean_batch']})")
        add(f"   emulator mix: {mix['raw_calls_per_s']} calls/s at concurrency {mix['concurrency']} / "
            f"{mix['calls_per_job']} calls per job = {mix['limit_jobs_per_s']} jobs/s"
            + (f" ({mix['errors']} errors)" if mix["errors"] else ""))
        add(f"   ratio: {ratio:.2f}  target >= {TARGETS['throughput_ratio']}  "
            f"{verdict(ratio, TARGETS['throughput_ratio'], lower_is_better=False)}")
        add("")
    st = res.get("status_reads")
    if st:
        add(f"   status reads (GET job-status, 16 clients): {st['ok']}/{st['requests']} ok, {st['per_s']}/s, "
            f"p50 {st['p50_ms']} ms, p99 {st['p99_ms']} ms")
        add("")
    mod = res.get("moderate")
    if mix and mod:
        add(f"5. Latency submit->complete at {mod['offered_rate']} jobs/s (moderate), {mod['completed']} jobs")
        add(f"   p50 {mod['p50_ms']} ms, p90 {mod['p90_ms']} ms, p99 {mod['p99_ms']} ms, max {mod['max_ms']} ms")
        add(f"   emulator round trips per job: {res['round_trips_per_job']} at full batches of 10, "
            f"{trips_at_batch(mod['mean_batch'])} at this rate's mean batch of {mod['mean_batch']} "
            f"(critical path {len(CRITICAL_PATH)} calls, idle latencies sum {mix['critical_path_ms']} ms: "
            + ", ".join(f"{k} {v}" for k, v in mix["idle_call_ms"].items()) + ")")
        x = res["p99_over_critical_path_x"]
        add(f"   p99 / critical-path round trips: {x:.1f}x  target <= {TARGETS['p99_over_roundtrips_x']}x  "
            f"{verdict(x, TARGETS['p99_over_roundtrips_x'])}")
        for name, service, per_job, why in ROUND_TRIPS + STATUS_TRIPS:
            add(f"     {per_job:>4} x {name:<28} {service:<9} {why}")
        add("")
    if res.get("sweep"):
        add("   offered load sweep (jobs/s -> throughput, p50/p90/p99 ms):")
        for s in res["sweep"]:
            add(f"     {s['offered_rate']:>6} -> {s['throughput_e2e']} jobs/s, {s['p50_ms']}/{s['p90_ms']}/{s['p99_ms']} ms"
                f" ({s['completed']}/{s['jobs']} jobs, mean batch {s['mean_batch']})")
        add("")
    b = res.get("build", {})
    build_line = ("6. Build (s): " + (", ".join(f"{k} {v}" for k, v in b.items()) if b else
                            "not measured in this run (use --build, --clean-build, --arm64)"))
    add(build_line)
    if res.get("cost"):
        add("")
        lines.extend(cost.report_lines(res["cost"]))
        add(f"   Lambda measured over {res['cost_basis']['jobs']} jobs (every job of this run, {res['cost_basis']['status_reads']} "
            f"status reads); SQS at the saturation step's mean batch of {res['cost_basis']['mean_batch']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer starts and jobs, shorter steps (~2 min)")
    ap.add_argument("--build", action="store_true", help="time an incremental x86_64 build (touch one handler)")
    ap.add_argument("--clean-build", action="store_true", help="time a clean x86_64 build in a temporary target dir")
    ap.add_argument("--arm64", action="store_true", help="build the arm64 zips (timed) before measuring sizes")
    ap.add_argument("--starts", type=int, help="cold starts per binary (default 30, quick 20)")
    ap.add_argument("--jobs", type=int, help="jobs in the saturation burst (default 1000, quick 300)")
    ap.add_argument("--step-seconds", type=float, help="length of each offered-load step (default 20, quick 8)")
    ap.add_argument("--mix-seconds", type=float, help="length of the emulator-mix measurement (default 20, quick 10)")
    ap.add_argument("--load-note", default="", help="appended to the machine line, e.g. ', shared with a CI run'")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    quick = args.quick
    starts = args.starts or (20 if quick else 30)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    res = {"mode": "quick" if quick else "full",
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": machine_line(args.load_note), "loadavg_start": os.getloadavg(),
           "targets": TARGETS}
    res["build"] = builds(args)
    res["zip_mb"] = zip_sizes()

    hello = ensure_hello()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    system = System(STATE_DIR)
    sampler = watcher = None
    # SIGTERM (e.g. `timeout`) takes the same cleanup path as Ctrl-C.
    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        log(f"cold init: {starts} starts per binary, interleaved")
        zips = {f: ROOT / "target" / "lambda" / "x86_64" / f / "bootstrap.zip" for f in FUNCTIONS}
        zips[HELLO] = hello
        res["cold_init"] = cold_init(zips, starts, workdir)

        system.start()
        sampler = RssSampler(system.state_dir / "functions")
        sampler.start()
        log_path = Path(system.outputs["functionLogs"][system.function_name("job-processor")])
        watcher = CompletionWatcher(log_path)
        watcher.start()
        token = sign_in(system)

        log("warm-up: 20 jobs")
        status_load(system, token, load_step(system, watcher, token, 20, None, 60)["ids"], workers=4)

        seconds = args.mix_seconds or (10 if quick else 20)
        log(f"emulator mix: one job's calls straight at the emulators, {seconds} s")
        mix = raw_mix(system, seconds, procs=2, threads=12)
        res["emulator_mix"] = mix

        # Lambda's cost is measured from here on (the mix above invoked the
        # simulator itself; its objects' counter events are let through first).
        report_offsets = quiet_function_logs(system)
        jobs_run = 0
        n_sat = args.jobs or (300 if quick else 1000)
        log(f"saturation: {n_sat} jobs submitted as fast as 16 clients can")
        sat = load_step(system, watcher, token, n_sat, None, 240)
        sat_ids = sat.pop("ids")
        jobs_run += sat["submitted"]
        res["saturation"] = sat
        log(f"status reads: {min(len(sat_ids), 300)} GET job-status")
        res["status_reads"] = status_load(system, token, sat_ids[:300])
        status_reads = res["status_reads"]["requests"]
        res["throughput_ratio"] = r(sat["throughput_e2e"] / mix["limit_jobs_per_s"], 3) if mix["limit_jobs_per_s"] else None

        cap = max(sat["throughput_e2e"], 1.0)
        fractions = [0.1, 0.25, 0.5, 0.75, 1.0] if quick else [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25]
        step_s = args.step_seconds or (8 if quick else 20)
        sweep = []
        for f in fractions:
            rate = round(cap * f, 1)
            n = max(10, int(rate * step_s))
            log(f"sweep: {rate} jobs/s for {n} jobs")
            step = load_step(system, watcher, token, n, rate, 120)
            step.pop("ids")
            jobs_run += step["submitted"]
            sweep.append(step)
        res["sweep"] = sweep
        res["moderate"] = sweep[1]  # a quarter of saturation
        res["round_trips_per_job"] = r(sum(c for _, _, c, _ in ROUND_TRIPS), 2)
        p99 = res["moderate"]["p99_ms"]
        res["p99_over_critical_path_x"] = r(p99 / mix["critical_path_ms"], 2) if p99 else None
        res["cost"], res["cost_basis"] = cost_of_run(system, report_offsets, jobs_run, status_reads, sat["mean_batch"] or 1)
        sampler.sample()
        res["peak_rss_mb"] = {f: round(kb / 1024, 1) for f, kb in sampler.peak_kb.items()}
        res["instances"] = {f: len(p) for f, p in sampler.instances.items()}
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        res["interrupted"] = True
    finally:
        for t in (sampler, watcher):
            if t:
                t.stopping.set()
        system.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(system.state_dir, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()

    text = report(res)
    print(text)
    (out_dir / "latest.json").write_text(json.dumps(res, indent=1) + "\n")
    if res.get("sweep"):
        (out_dir / "chart.svg").write_text(chart_svg(res["sweep"], res["emulator_mix"]["limit_jobs_per_s"], res["machine"]))
    log(f"wrote {out_dir / 'latest.json'}" + (f" and {out_dir / 'chart.svg'}" if res.get("sweep") else ""))
    return 1 if res.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
