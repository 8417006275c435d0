"""End-to-end: the `jobctl` command-line client (crate cli/) against the system
in the tests' outputs file, as a user runs it: sign in, submit, wait, fetch the
result, list; its one-line errors; and the credentials of its old name `jobs`.

The binary: $JOBCTL_BINARY, else the newer of ${CARGO_TARGET_DIR:-target}/release/jobctl
(built by `just cli-build`, which `just test` runs) and .../debug/jobctl. HOME and
XDG_CONFIG_HOME point at a temporary directory, so the user's own credentials
are never read or written.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from target import outputs_path

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"
# A failing job is delivered 3 times with back-offs before it is failed.
WAIT_TIMEOUT = 120


def cli_binary() -> Path:
    if os.environ.get("JOBCTL_BINARY"):
        return Path(os.environ["JOBCTL_BINARY"])
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target_dir.is_absolute():
        target_dir = ROOT / target_dir
    # The newer of the two, so a fresh `cargo build -p jobctl` is not shadowed by an old release build.
    built = [p for p in (target_dir / "release" / "jobctl", target_dir / "debug" / "jobctl") if p.exists()]
    if built:
        return max(built, key=lambda p: p.stat().st_mtime)
    pytest.fail(f"the jobctl binary is not built in {target_dir}: run `just cli-build` (or set JOBCTL_BINARY)")


@pytest.fixture(scope="session")
def outputs() -> dict:
    return json.loads(outputs_path().read_text())


class Cli:
    """Runs `jobctl` with a private HOME and the given outputs file."""

    def __init__(self, home: Path, outputs_file: Path):
        self.binary = cli_binary()
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JOBS_")}
        self.env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), JOBS_OUTPUTS=str(outputs_file.resolve()))

    @property
    def credentials(self) -> Path:
        return self.home / "config" / "jobctl" / "credentials.json"

    @property
    def old_credentials(self) -> Path:
        """Where the client kept them under its old name, `jobs`."""
        return self.home / "config" / "jobs" / "credentials.json"

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=timeout,
        )

    def login(self, password: str) -> subprocess.CompletedProcess:
        return self("login", "--password-stdin", input=password + "\n")


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one `error: ` line a failing command prints, last on stderr."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, outputs_path())


@pytest.fixture
def logged_in(cli: Cli, outputs: dict) -> Cli:
    result = cli.login(outputs["password"])
    assert result.returncode == 0, result.stderr
    return cli


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outputs_with_api(tmp_path: Path, outputs: dict, api_url: str) -> Path:
    """An outputs file for another API URL, with the real user pool."""
    path = tmp_path / "other-outputs.json"
    path.write_text(json.dumps({**outputs, "apiUrl": api_url}))
    return path


def test_login_bad_password(cli: Cli, outputs: dict):
    result = cli.login(outputs["password"] + "-wrong")
    assert error_line(result) == "error: incorrect username or password"
    assert not cli.credentials.exists()


def test_login_unknown_user(cli: Cli):
    result = cli("login", "--username", f"nobody-{uuid.uuid4().hex[:8]}@example.com", "--password-stdin", input="x\n")
    assert error_line(result) == "error: incorrect username or password"


def test_login_keeps_tokens_private(cli: Cli, outputs: dict):
    result = cli.login(outputs["password"])
    assert result.returncode == 0, result.stderr
    assert f"Logged in to {outputs['apiUrl'].rstrip('/')} as {outputs['username']}" in result.stderr
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    session = next(iter(json.loads(cli.credentials.read_text())["sessions"].values()))
    # Never printed: not the password, not a token.
    for secret in (outputs["password"], session["idToken"], session["refreshToken"]):
        assert secret not in result.stdout + result.stderr


def test_not_logged_in(cli: Cli, outputs: dict):
    result = cli("status", UNKNOWN_JOB)
    assert error_line(result) == f"error: not logged in to {outputs['apiUrl'].rstrip('/')}; run `jobctl login`"


def test_submit_wait_status_get(logged_in: Cli, tmp_path: Path):
    request = tmp_path / "job.json"
    request.write_text(json.dumps({"jobType": "weather", "cli": True}))
    result = logged_in("submit", str(request), "--wait", "--timeout", str(WAIT_TIMEOUT), timeout=WAIT_TIMEOUT + 30)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["jobStatus"] == "complete"
    job_id = final["jobId"]
    assert f"Submitted job {job_id}." in result.stderr

    status = logged_in("status", job_id)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["jobStatus"] == "complete"

    out = tmp_path / "result.json"
    got = logged_in("get", job_id, "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert got.stdout == ""
    result_bytes = out.read_bytes()
    assert isinstance(json.loads(result_bytes), dict)
    assert not Path(str(out) + ".part").exists()
    # To stdout, the same bytes.
    to_stdout = subprocess.run(
        [str(logged_in.binary), "get", job_id], capture_output=True, env=logged_in.env, cwd=logged_in.home, timeout=60
    )
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == result_bytes


def test_submit_from_stdin_prints_the_job_id(logged_in: Cli):
    result = logged_in("submit", "-", "--quiet", input='{"jobType": "weather"}')
    assert result.returncode == 0, result.stderr
    assert str(uuid.UUID(result.stdout.strip())) == result.stdout.strip()
    full = logged_in("submit", "-", input="{}")
    assert full.returncode == 0, full.stderr
    body = json.loads(full.stdout)
    assert body["jobId"] == body["SendMessageResponse"]["SendMessageResult"]["MessageId"]
    # `status --wait` follows a job submitted earlier; nothing is left in flight.
    for job_id in (result.stdout.strip(), body["jobId"]):
        waited = logged_in("status", job_id, "--wait", "--timeout", str(WAIT_TIMEOUT), timeout=WAIT_TIMEOUT + 30)
        assert waited.returncode == 0, waited.stderr
        assert json.loads(waited.stdout)["jobStatus"] == "complete"


def test_submit_with_a_callback_url_gets_the_webhook(logged_in: Cli, target):
    from test_webhooks import Receiver, verified

    receiver = Receiver()
    try:
        url = receiver.url("/hooks/cli")
        result = logged_in(
            "submit", "-", "--wait", "--timeout", str(WAIT_TIMEOUT), "--callback-url", url,
            input='{"jobType": "weather"}', timeout=WAIT_TIMEOUT + 30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        final = json.loads(result.stdout)
        assert final["callbackUrl"] == url
        [delivery] = receiver.posts_to("/hooks/cli", 1)
        assert verified(target, delivery)["jobId"] == final["jobId"]
    finally:
        receiver.stop()
    bad = logged_in("submit", "-", "--callback-url", "hooks.example.com/jobs", input="{}")
    assert bad.returncode == 1, bad.stderr
    assert error_line(bad) == (
        'error: --callback-url "hooks.example.com/jobs" is not an absolute URL; give one such as https://hooks.example.com/jobs'
    )


def test_submit_with_an_idempotency_key_twice_is_one_job(logged_in: Cli):
    key = f"cli-{uuid.uuid4()}"
    ids = []
    for _ in range(2):
        result = logged_in("submit", "-", "--quiet", "--idempotency-key", key, input='{"jobType": "weather", "key": 1}')
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", "nothing extra is printed on success"
        ids.append(result.stdout.strip())
    assert ids[0] == ids[1], "the same key and request answer the first job"
    waited = logged_in("status", ids[0], "--wait", "--timeout", str(WAIT_TIMEOUT), timeout=WAIT_TIMEOUT + 30)
    assert waited.returncode == 0, waited.stderr
    assert (json.loads(waited.stdout)["jobStatus"], json.loads(waited.stdout)["attempts"]) == ("complete", 1)

    # The same key with another request: the API's 409, on one line.
    other = logged_in("submit", "-", "--idempotency-key", key, input='{"jobType": "weather", "key": 2}')
    line = error_line(other)
    assert line.startswith("error: the API answered 409: ") and "Idempotency-Key" in line and ids[0] in line, line
    # A malformed key is a usage error: nothing is sent.
    bad = logged_in("submit", "-", "--idempotency-key", "a b", input="{}")
    assert bad.returncode == 2, bad.stderr
    assert "1 to 128 characters" in bad.stderr


def test_submit_without_a_key_sends_a_fresh_one_each_time(logged_in: Cli):
    ids = []
    for _ in range(2):
        result = logged_in("submit", "-", "--quiet", input='{"jobType": "weather", "same": true}')
        assert result.returncode == 0, result.stderr
        ids.append(result.stdout.strip())
    assert ids[0] != ids[1], "two invocations with the same request are two jobs"
    for job_id in ids:
        waited = logged_in("status", job_id, "--wait", "--timeout", str(WAIT_TIMEOUT), timeout=WAIT_TIMEOUT + 30)
        assert waited.returncode == 0, waited.stderr


def test_submit_sends_its_key_on_every_retry(tmp_path: Path, outputs: dict):
    """Against a stand-in API that hangs up on the first submit and answers
    503 to the second: jobctl sends the submit three times, with one key."""
    seen: list[str | None] = []
    answers = [None, 503, 200]

    class Flaky(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.headers.get("Idempotency-Key"))
            answer = answers[len(seen) - 1] if len(seen) <= len(answers) else 200
            if answer is None:
                self.close_connection = True
                self.connection.close()
                return
            body = json.dumps({"jobId": UNKNOWN_JOB} if answer == 200 else {"message": "unavailable"}).encode()
            self.send_response(answer)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cli = Cli(tmp_path, outputs_with_api(tmp_path, outputs, f"http://127.0.0.1:{server.server_address[1]}/api"))
        assert cli.login(outputs["password"]).returncode == 0
        result = cli("submit", "-", "--quiet", input="{}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == UNKNOWN_JOB
        assert len(seen) == 3 and seen[0] and len(set(seen)) == 1, seen
        assert str(uuid.UUID(seen[0])) == seen[0], "a fresh UUID by default"
        # --idempotency-key K is what is sent.
        seen.clear()
        answers[:] = [200]
        assert cli("submit", "-", "--quiet", "--idempotency-key", "order-42", input="{}").returncode == 0
        assert seen == ["order-42"]
    finally:
        server.shutdown()


def test_failing_job_exits_1_with_the_reason(logged_in: Cli):
    result = logged_in(
        "submit", "-", "--wait", "--timeout", str(WAIT_TIMEOUT),
        input=json.dumps({"simulateFailure": "always"}), timeout=WAIT_TIMEOUT + 30,
    )  # fmt: skip
    final = json.loads(result.stdout)
    assert final["jobStatus"] == "failed"
    job_id = final["jobId"]
    line = error_line(result)
    assert line.startswith(f"error: job {job_id} failed: ")
    assert "simulated failure" in line

    # A failed job has no result to get.
    got = logged_in("get", job_id)
    assert error_line(got) == f"error: job {job_id} failed, so it has no result; see `jobctl status {job_id}`"


def test_wait_timeout_and_get_before_complete(logged_in: Cli):
    # The first two attempts fail, with back-offs of 2 s and 4 s between attempts.
    result = logged_in("submit", "-", "--wait", "--timeout", "1", input=json.dumps({"simulateFailure": 2}))
    line = error_line(result)
    job_id = line.split()[2]
    assert line == f"error: job {job_id} is still Submitted after 1s; check on it later with `jobctl status {job_id}`"
    assert result.stdout == ""

    got = logged_in("get", job_id)
    assert error_line(got) == (
        f"error: job {job_id} is not complete yet (status Submitted); wait for it with `jobctl status {job_id} --wait`"
    )
    waited = logged_in("status", job_id, "--wait", "--timeout", str(WAIT_TIMEOUT), timeout=WAIT_TIMEOUT + 30)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["attempts"] == 3


def test_cancel_a_job_then_wait_and_get_say_it_was_cancelled(logged_in: Cli):
    # A job that fails on every attempt waits 2 s and 4 s between them: time
    # to cancel it. A slow machine may let one end first (409): try another.
    for _ in range(3):
        submitted = logged_in("submit", "-", "--quiet", input=json.dumps({"simulateFailure": "always"}))
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        # Cancellable once its first delivery recorded it (status answers 200).
        waited = logged_in("status", job_id)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while waited.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            waited = logged_in("status", job_id)
        cancelled = logged_in("cancel", job_id)
        if cancelled.returncode == 0:
            break
        assert error_line(cancelled) == (
            f"error: job {job_id} has already ended (failed), so it cannot be cancelled; see `jobctl status {job_id}`"
        )
    else:
        pytest.fail("three jobs ended before they could be cancelled")
    body = json.loads(cancelled.stdout)
    assert (body["jobId"], body["jobStatus"]) == (job_id, "cancelled")

    waited = logged_in("status", job_id, "--wait", "--timeout", str(WAIT_TIMEOUT), timeout=WAIT_TIMEOUT + 30)
    assert json.loads(waited.stdout)["jobStatus"] == "cancelled"
    assert error_line(waited) == f"error: job {job_id} was cancelled; it has no result"
    got = logged_in("get", job_id)
    assert error_line(got) == f"error: job {job_id} cancelled, so it has no result; see `jobctl status {job_id}`"
    again = logged_in("cancel", job_id)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == body


def test_cancel_of_an_ended_or_unknown_job_says_why(logged_in: Cli):
    done = logged_in("submit", "-", "--wait", "--timeout", str(WAIT_TIMEOUT), input="{}", timeout=WAIT_TIMEOUT + 30)
    job_id = json.loads(done.stdout)["jobId"]
    result = logged_in("cancel", job_id)
    assert error_line(result) == (
        f"error: job {job_id} has already ended (complete), so it cannot be cancelled; see `jobctl status {job_id}`"
    )
    assert result.stdout == ""
    unknown = logged_in("cancel", UNKNOWN_JOB)
    assert error_line(unknown) == f"error: no job found with id {UNKNOWN_JOB}"


@pytest.mark.parametrize("command", [("status",), ("get",), ("get", "-o", "out.json"), ("status", "--wait")])
def test_unknown_job(logged_in: Cli, command):
    result = logged_in(command[0], UNKNOWN_JOB, *command[1:])
    assert error_line(result) == f"error: no job found with id {UNKNOWN_JOB}"
    assert result.stdout == ""
    assert not (logged_in.home / "out.json").exists()


@pytest.mark.parametrize(
    "content, reason",
    [
        ("[1, 2, 3]", "it is a JSON array"),
        ('"text"', "it is a JSON string"),
        ("", "it is empty"),
        ('{"region":', "it is not JSON"),
    ],
)
def test_invalid_input_is_refused_before_sending(tmp_path: Path, outputs: dict, content: str, reason: str):
    # Against an API that is not there: the check happens first, nothing is sent.
    cli = Cli(tmp_path, outputs_with_api(tmp_path, outputs, f"http://127.0.0.1:{closed_port()}/api"))
    request = tmp_path / "bad.json"
    request.write_text(content)
    line = error_line(cli("submit", str(request)))
    assert line.startswith(f"error: {request} is not a valid job request: {reason}"), line
    assert line.endswith("the job request must be a JSON object")


def test_api_unreachable(tmp_path: Path, outputs: dict):
    dead = f"http://127.0.0.1:{closed_port()}/api"
    cli = Cli(tmp_path, outputs_with_api(tmp_path, outputs, dead))
    # Signing in only needs Cognito; then the API is not there.
    assert cli.login(outputs["password"]).returncode == 0
    result = cli("status", UNKNOWN_JOB)
    assert error_line(result) == f"error: cannot reach the API at {dead}/job-status/{UNKNOWN_JOB}: connection refused"
    result = cli("submit", "-", input="{}")
    assert error_line(result) == f"error: cannot reach the API at {dead}/submit-job-request: connection refused"


def test_cognito_unreachable(tmp_path: Path, outputs: dict):
    port = closed_port()
    path = tmp_path / "o.json"
    path.write_text(json.dumps({**outputs, "cognitoEndpoint": f"http://127.0.0.1:{port}"}))
    result = Cli(tmp_path, path).login("whatever")
    assert error_line(result) == f"error: cannot reach Cognito at http://127.0.0.1:{port}: connection refused"


def _jwt(claims: dict) -> str:
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    header = enc(json.dumps({"alg": "RS256", "kid": "k"}).encode())
    return f"{header}.{enc(json.dumps(claims).encode())}.{enc(b'sig')}"


def _edit_session(cli: Cli, **changes) -> dict:
    data = json.loads(cli.credentials.read_text())
    (session,) = data["sessions"].values()
    session.update(changes)
    cli.credentials.write_text(json.dumps(data))
    return session


def test_expired_token_is_refreshed(logged_in: Cli):
    expired = _jwt({"exp": int(time.time()) - 10, "token_use": "id"})
    _edit_session(logged_in, idToken=expired)
    result = logged_in("status", UNKNOWN_JOB)
    # Refreshed, then the API answered: the job is unknown, not "unauthorized".
    assert error_line(result) == f"error: no job found with id {UNKNOWN_JOB}"
    (session,) = json.loads(logged_in.credentials.read_text())["sessions"].values()
    assert session["idToken"] != expired
    assert stat.S_IMODE(logged_in.credentials.stat().st_mode) == 0o600


def _as_the_old_name_left_it(cli: Cli) -> None:
    """Moves the session to where `jobs`, the client's old name, kept it: ~/.config/jobs/, no jobctl/."""
    cli.old_credentials.parent.mkdir(mode=0o700)
    cli.credentials.rename(cli.old_credentials)
    cli.credentials.parent.rmdir()


def test_a_session_of_the_old_name_stays_signed_in_until_logout(logged_in: Cli, outputs: dict):
    _as_the_old_name_left_it(logged_in)
    # Signed in still: the API answers, the job is unknown. Reading moves nothing.
    assert error_line(logged_in("status", UNKNOWN_JOB)) == f"error: no job found with id {UNKNOWN_JOB}"
    assert logged_in.old_credentials.exists() and not logged_in.credentials.exists()

    out = logged_in("logout")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == f"Logged out of {outputs['apiUrl'].rstrip('/')}."
    # No token is left in the old place, and none in the new.
    assert not logged_in.old_credentials.parent.exists()
    assert json.loads(logged_in.credentials.read_text()) == {"sessions": {}}
    line = error_line(logged_in("status", UNKNOWN_JOB))
    assert line == f"error: not logged in to {outputs['apiUrl'].rstrip('/')}; run `jobctl login`"


def test_a_refresh_moves_the_old_names_session(logged_in: Cli):
    expired = _jwt({"exp": int(time.time()) - 10, "token_use": "id"})
    _edit_session(logged_in, idToken=expired)
    _as_the_old_name_left_it(logged_in)
    assert error_line(logged_in("status", UNKNOWN_JOB)) == f"error: no job found with id {UNKNOWN_JOB}"
    # The refreshed session is in jobctl/, private; jobs/ is gone.
    (session,) = json.loads(logged_in.credentials.read_text())["sessions"].values()
    assert session["idToken"] != expired
    assert stat.S_IMODE(logged_in.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(logged_in.credentials.parent.stat().st_mode) == 0o700
    assert not logged_in.old_credentials.parent.exists()


def test_refresh_failure_says_to_log_in(logged_in: Cli):
    _edit_session(logged_in, idToken=_jwt({"exp": int(time.time()) - 10}), refreshToken=str(uuid.uuid4()))
    line = error_line(logged_in("status", UNKNOWN_JOB))
    assert line.startswith("error: your session has expired and could not be refreshed")
    assert line.endswith("run `jobctl login`")


@pytest.mark.parametrize("removal", ["admin_disable_user", "admin_delete_user"])
def test_a_disabled_or_deleted_user_cannot_renew_the_session(cli: Cli, outputs: dict, removal: str):
    """The CLI renews its 5-minute ID token with the refresh token; once the
    user is disabled or deleted Cognito refuses, and access ends with the
    last ID token (docs/api.md, "Bounds")."""
    if "logsDir" not in outputs:
        pytest.skip("administers the user pool: local target only")
    import boto3

    idp = boto3.client("cognito-idp", region_name=outputs["region"], endpoint_url=outputs["cognitoEndpoint"],
                       aws_access_key_id="local", aws_secret_access_key="local")
    username, password = f"cli-{removal.replace('_', '-')}-{uuid.uuid4().hex[:8]}@example.com", "Cli-bounds-Password-1!"
    idp.admin_create_user(UserPoolId=outputs["userPoolId"], Username=username, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=outputs["userPoolId"], Username=username, Password=password, Permanent=True)
    assert cli("login", "-u", username, "--password-stdin", input=password + "\n").returncode == 0
    assert error_line(cli("status", UNKNOWN_JOB)) == f"error: no job found with id {UNKNOWN_JOB}"

    getattr(idp, removal)(UserPoolId=outputs["userPoolId"], Username=username)
    # The cached ID token runs out (here: made to look expired), so the CLI must renew it.
    _edit_session(cli, idToken=_jwt({"exp": int(time.time()) - 10, "token_use": "id"}))
    line = error_line(cli("status", UNKNOWN_JOB))
    expected = "User is disabled." if removal == "admin_disable_user" else "User does not exist."
    assert line == f"error: your session has expired and could not be refreshed ({expected}); run `jobctl login`"


def test_refused_token_says_to_log_in(logged_in: Cli):
    # Not expired, so it is sent; the authorizer refuses the signature.
    _edit_session(logged_in, idToken=_jwt({"exp": int(time.time()) + 3600, "token_use": "id"}))
    line = error_line(logged_in("status", UNKNOWN_JOB))
    assert line == "error: the API refused your credentials (401: Unauthorized); run `jobctl login`"


def test_the_client_is_jobctl_not_the_shell_builtin_jobs(cli: Cli):
    # Typed in bash or zsh, `jobs login` runs the shell's builtin `jobs`: the client must not be called that.
    assert cli.binary.name == "jobctl"
    shell = subprocess.run(
        ["bash", "-c", "type -t jobctl && jobctl --version"],
        capture_output=True, text=True, timeout=60,
        env={**cli.env, "PATH": f"{cli.binary.parent}{os.pathsep}{cli.env.get('PATH', '')}"},
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[0] == "file"  # not "builtin"
    assert shell.stdout.splitlines()[1].split()[0] == "jobctl"
    usage = cli("--help")
    assert usage.returncode == 0, usage.stderr
    assert "Usage: jobctl [OPTIONS] <COMMAND>" in usage.stdout.splitlines()
    assert "$XDG_CONFIG_HOME/jobctl/credentials.json" in usage.stdout


def test_bad_usage_exits_2(cli: Cli):
    assert cli("bogus").returncode == 2
    assert cli("status").returncode == 2
    assert cli("--help").returncode == 0


def test_list_against_the_target(logged_in: Cli):
    """`jobctl list` against the real route; skipped while GET /jobs is not deployed."""
    submitted = logged_in("submit", "-", "--wait", input='{"jobType": "weather"}', timeout=WAIT_TIMEOUT + 30)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["jobId"]
    result = logged_in("list", "--json", "--limit", "50")
    if result.returncode != 0 and "has no GET /jobs route" in result.stderr:
        pytest.skip(f"GET /jobs is not in this deployment yet: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    listed = {job["jobId"]: job for job in json.loads(result.stdout)["jobs"]}
    assert listed[job_id]["jobStatus"] == "complete"
    table = logged_in("list")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["JOB", "ID", "STATUS", "SUBMITTED", "FINISHED"]


class FakeJobsApi(BaseHTTPRequestHandler):
    """GET /jobs as specified (newest first, `limit`, `nextToken`), over 5 jobs."""

    JOBS = [
        {"jobId": f"00000000-0000-4000-8000-00000000000{i}", "jobStatus": status, "submittedAt": f"2026-01-0{i}T00:00:00Z"}
        | extra
        for i, status, extra in [
            (5, "Submitted", {}),
            (4, "complete", {"completedAt": "2026-01-04T00:00:01Z"}),
            (3, "failed", {"failedAt": "2026-01-03T00:00:09Z"}),
            (2, "complete", {"completedAt": "2026-01-02T00:00:01Z"}),
            (1, "complete", {"completedAt": "2026-01-01T00:00:01Z"}),
        ]
    ]
    requests: list = []
    routes = True

    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        query = parse_qs(url.query)
        type(self).requests.append((url.path, query, self.headers.get("Authorization", "")))
        if not self.routes or not url.path.endswith("/jobs"):
            return self._send(404, {"message": "Not Found"})
        limit = int(query.get("limit", ["20"])[0])
        start = int(query["nextToken"][0].removeprefix("page/")) if "nextToken" in query else 0
        body = {"jobs": self.JOBS[start : start + limit]}
        if start + limit < len(self.JOBS):
            body["nextToken"] = f"page/{start + limit}"
        self._send(200, body)

    def _send(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_api(tmp_path: Path, outputs: dict):
    handler = type("Handler", (FakeJobsApi,), {"requests": [], "routes": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}/api"
    cli = Cli(tmp_path, outputs_with_api(tmp_path, outputs, api))
    assert cli.login(outputs["password"]).returncode == 0
    yield cli, handler
    server.shutdown()


def test_list_pages_against_the_interface(fake_api):
    """The client side of GET /jobs, against a stand-in that follows the interface."""
    cli, handler = fake_api
    first = cli("list", "--limit", "2", "--json")
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert [j["jobId"][-1] for j in body["jobs"]] == ["5", "4"] and body["nextToken"] == "page/2"
    path, query, auth = handler.requests[-1]
    assert path == "/api/jobs" and query == {"limit": ["2"]} and auth.startswith("Bearer ")

    # The table, with a hint on stderr about the next page.
    table = cli("list", "--limit", "2", "--next-token", "page/2")
    assert table.returncode == 0, table.stderr
    assert handler.requests[-1][1] == {"limit": ["2"], "nextToken": ["page/2"]}
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["JOB", "ID", "STATUS", "SUBMITTED", "FINISHED"]
    assert rows[1].split() == [FakeJobsApi.JOBS[2]["jobId"], "failed", "2026-01-03T00:00:00Z", "2026-01-03T00:00:09Z"]
    assert "More jobs: `jobctl list --all`, or the next page with `jobctl list --next-token page/4`." in table.stderr

    every = cli("list", "--limit", "2", "--all", "--json")
    assert every.returncode == 0, every.stderr
    assert [j["jobId"] for j in json.loads(every.stdout)["jobs"]] == [j["jobId"] for j in FakeJobsApi.JOBS]
    assert "nextToken" not in json.loads(every.stdout)


def test_list_on_an_older_deployment(fake_api):
    cli, handler = fake_api
    handler.routes = False
    line = error_line(cli("list"))
    assert line.startswith("error: this API has no GET /jobs route")
