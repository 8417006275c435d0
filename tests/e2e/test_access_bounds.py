"""Every bound on access that docs/api.md states ("Bounds") is held, end to
end through the API: how long an expired token still works, how soon a
disabled or deleted user loses access, what a caller sees when the authorizer
cannot check tokens, what failure text a user sees, and the request body
limit in bytes.

Tests that sign tokens with the user pool's key, administer users or inject
faults run on the local target only (outputs with `logsDir`, `faultsUrl`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from target import Target
from test_bad_input import MAX_BODY_BYTES, TOO_LARGE, UNKNOWN_JOB, claims_of, is_local, json_body_of, moto_pool_key, sign_rs256

API_DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
SETTLE_SECONDS = 120


def stated(pattern: str) -> int:
    """A number docs/api.md states, e.g. the seconds an expired token still works."""
    match = re.search(pattern, API_DOC)
    assert match, f"docs/api.md does not state {pattern!r}"
    return int(match.group(1).replace(",", ""))


def status_of(target: Target, token: str, job_id: str = UNKNOWN_JOB) -> requests.Response:
    return target.session.get(f"{target.api}/job-status/{job_id}", headers={"Authorization": token}, timeout=30)


def submit(target: Target, token: str, body: bytes) -> requests.Response:
    headers = {"Authorization": token, "Content-Type": "application/json"}
    return target.session.post(f"{target.api}/submit-job-request", data=body, headers=headers, timeout=60)


def require_local(target: Target) -> None:
    if not is_local(target):
        pytest.skip("signs with the local user pool's key or administers its users: local target only")


# --- Token expiry ------------------------------------------------------------------


def test_an_expired_token_stops_working_within_the_stated_bound(target: Target, token: str):
    """The latest a token can still be accepted is just before `exp` + leeway;
    API Gateway then keeps that answer for its cache TTL. Past the stated
    bound (leeway + TTL) the token must be refused."""
    require_local(target)
    bound = stated(r"stops working at most (\d+) s after its `exp`")
    assert bound <= 60
    kid, key = moto_pool_key()
    exp = int(time.time()) + 2
    expiring = sign_rs256({**claims_of(token), "iat": exp - 300, "exp": exp}, key, kid)

    # Accepted a few seconds after exp (within the 5 s leeway), so that the
    # gateway caches the allow as late as it can.
    time.sleep(max(0.0, exp + 3 - time.time()))
    assert status_of(target, expiring).status_code == 404, "accepted within the leeway: the job is unknown"

    time.sleep(max(0.0, exp + bound + 1 - time.time()))
    refused = status_of(target, expiring)
    assert refused.status_code == 401, f"{bound + 1} s after exp the token still works: {refused.text}"
    assert refused.json()["message"] == "Unauthorized"


# --- Revocation ----------------------------------------------------------------------


def test_id_tokens_live_five_minutes(target: Target, token: str):
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == 300, claims
    assert "at most 5 min 35 s after it was disabled or deleted" in API_DOC


def new_user(target: Target, name: str) -> tuple[str, str]:
    """A user of the pool, signed up by an administrator with a permanent password."""
    idp = target.client("cognito-idp")
    username, password = f"{name}-{int(time.time() * 1000)}@example.com", "Bounds-test-Password-1!"
    idp.admin_create_user(UserPoolId=target["userPoolId"], Username=username, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=target["userPoolId"], Username=username, Password=password, Permanent=True)
    return username, password


def sign_in(target: Target, username: str, password: str) -> dict:
    return target.client("cognito-idp").initiate_auth(
        ClientId=target["userPoolClientId"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )["AuthenticationResult"]


def refresh(target: Target, refresh_token: str) -> dict:
    return target.client("cognito-idp").initiate_auth(
        ClientId=target["userPoolClientId"],
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": refresh_token},
    )["AuthenticationResult"]


@pytest.mark.parametrize("removal", ["admin_disable_user", "admin_delete_user"])
def test_a_disabled_or_deleted_user_can_no_longer_renew_a_token(target: Target, removal: str):
    """Access ends with the last ID token: renewing it needs the refresh
    token, which Cognito refuses once the user is disabled or deleted."""
    require_local(target)
    username, password = new_user(target, removal.replace("_", "-"))
    session = sign_in(target, username, password)
    assert refresh(target, session["RefreshToken"])["IdToken"], "renewing works while the user is enabled"
    assert status_of(target, session["IdToken"]).status_code == 404

    getattr(target.client("cognito-idp"), removal)(UserPoolId=target["userPoolId"], Username=username)
    with pytest.raises(ClientError) as refused:
        refresh(target, session["RefreshToken"])
    assert refused.value.response["Error"]["Code"] == "NotAuthorizedException", refused.value.response
    with pytest.raises(ClientError):
        sign_in(target, username, password)


# --- Authorizer failures ----------------------------------------------------------------


@pytest.fixture
def cognito_down(target: Target):
    """The user pool's key endpoint failing (the local target's fault proxy)."""
    url = target.outputs.get("faultsUrl")
    if not url:
        pytest.skip("fault injection needs the local target started with --faults (tests/e2e/run-local.sh does)")
    requests.delete(url, timeout=10).raise_for_status()
    r = requests.put(url, json={"cognito": {"error": 1.0}}, timeout=10)
    assert r.status_code == 200, r.text
    yield url
    requests.delete(url, timeout=10).raise_for_status()


def unknown_kid_token(token: str) -> str:
    """Valid claims signed by a key the pool does not have: only a fresh key fetch can tell."""
    return sign_rs256(claims_of(token), rsa.generate_private_key(public_exponent=65537, key_size=2048), "rotated-key")


def test_when_the_keys_cannot_be_fetched_callers_get_503_with_a_message_never_401(target: Target, token: str, cognito_down):
    unknown = unknown_kid_token(token)
    # The first sight of the kid fetches the keys, which fails; so does every
    # later one within the authorizer's 10 s penalty window (no fetch then).
    for attempt in range(3):
        response = status_of(target, unknown)
        assert response.status_code == 503, f"attempt {attempt}: {response.status_code} {response.text}"
        assert response.headers["Retry-After"] == "5"
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        assert body["message"] == "Authorization is temporarily unavailable; retry in a few seconds.", body
        assert "not a problem with your token" in body["hint"], body
    # A token whose key is cached is still verified: the outage only affects what needs a fetch.
    assert status_of(target, token).status_code == 404

    requests.delete(cognito_down, timeout=10).raise_for_status()
    time.sleep(11)  # past the penalty window: the next unknown kid is fetched again
    refused = status_of(target, unknown)
    assert refused.status_code == 401, "with the keys reachable, an unknown kid is a bad token"


# --- Failure text ---------------------------------------------------------------------------

# What must never reach an API answer: ARNs, account ids, request ids, HTTP headers, SDK dumps.
INTERNAL = re.compile(
    r"arn:aws|123456789012|(?<!job)request[ _-]?id|x-amz|x-amzn|content-type|headers?\s*[:{]|raw response|"
    r"SdkError|DispatchFailure|ServiceError|AccessDenied",
    re.IGNORECASE,
)


@pytest.fixture
def s3_denied(target: Target):
    """Every S3 call of the functions answered with S3's AccessDenied, whose
    message names the function's role ARN and the account, like AWS's."""
    url = target.outputs.get("faultsUrl")
    if not url:
        pytest.skip("fault injection needs the local target started with --faults (tests/e2e/run-local.sh does)")
    requests.delete(url, timeout=10).raise_for_status()
    r = requests.put(url, json={"s3": {"deny": 1.0}}, timeout=10)
    assert r.status_code == 200, r.text
    yield url
    requests.delete(url, timeout=10).raise_for_status()


def test_failure_reasons_are_short_and_safe_and_the_full_error_is_logged_with_the_job_id(target: Target, token: str, s3_denied):
    response = submit(target, token, b'{"region": "eu-west-1"}')
    assert response.status_code == 200, response.text
    job_id = response.json()["jobId"]

    deadline = time.monotonic() + SETTLE_SECONDS
    seen_errors: set[str] = set()
    while True:
        r = status_of(target, token, job_id)
        job = r.json() if r.status_code == 200 else {}
        if job.get("lastError"):
            seen_errors.add(job["lastError"])
        if job.get("jobStatus") == "failed":
            break
        assert time.monotonic() < deadline, f"job {job_id} did not fail: {r.status_code} {r.text}"
        time.sleep(0.25)

    texts = seen_errors | {job["failureReason"]}
    assert seen_errors, "a retry was pending with its lastError"
    for text in texts:
        assert not INTERNAL.search(text), f"internal detail in an API answer: {text!r}"
        assert len(text) <= 400, text
    shown = ("Attempt 1 failed: the batch simulator failed: could not store the result: "
             "the results bucket refused or did not answer the request")
    assert shown in seen_errors, seen_errors
    assert job["failureReason"].startswith("Gave up after 3 deliveries"), job
    # The whole answer, not just those fields.
    assert not INTERNAL.search(r.text), r.text

    # The operator's side: the full error, AccessDenied and the role's ARN, with the job id.
    simulator_log = Path(target["functionLogs"][next(n for n in target["functionLogs"] if n.endswith("batch-simulator"))]).read_text()
    lines = [line for line in simulator_log.splitlines() if job_id in line and "AccessDenied" in line]
    assert lines and "arn:aws:sts::" in lines[0], "the simulator logs the full S3 error with the job id"


# --- Request body limit ----------------------------------------------------------------------
# Over the limit: the bad-input catalogue (test_bad_input.py), one byte over
# with 1-, 2- and 4-byte characters, and the 440,008-byte case.

CHARS = {"ascii": "x", "2-byte": "é", "3-byte": "€", "4-byte": "😀"}


def test_the_stated_limit_is_the_queue_limit_less_the_owner_and_job_id_attributes():
    assert stated(r"of at most\s+\*\*([\d,]+) bytes\*\*") == MAX_BODY_BYTES == 262_050
    assert f"at most {MAX_BODY_BYTES:,} bytes" in TOO_LARGE


@pytest.mark.parametrize("width", CHARS)
def test_a_body_of_exactly_the_limit_is_accepted_and_its_job_runs(target: Target, token: str, width: str):
    response = submit(target, token, json_body_of(MAX_BODY_BYTES, CHARS[width]))
    assert response.status_code == 200, response.text[:300]
    job_id = response.json()["jobId"]
    deadline = time.monotonic() + SETTLE_SECONDS
    while (r := status_of(target, token, job_id)).status_code != 200 or r.json()["jobStatus"] not in ("complete", "failed"):
        assert time.monotonic() < deadline, f"job {job_id} did not end: {r.status_code} {r.text[:300]}"
        time.sleep(0.25)
    assert r.json()["jobStatus"] == "complete", r.text


# --- Result links ------------------------------------------------------------------------------


def test_a_result_link_is_signed_by_a_session_that_outlives_it(target: Target, token: str):
    """The link states when it stops working (`jobProcessedPayloadExpiresAt`):
    its signature's end, which is never after the end of the session of the
    link role that signed it (not the function's own credentials, whose
    expiry nobody knows)."""
    response = submit(target, token, b'{"region": "eu-west-1"}')
    assert response.status_code == 200, response.text
    job_id = response.json()["jobId"]
    deadline = time.monotonic() + SETTLE_SECONDS
    while (r := status_of(target, token, job_id)).status_code != 200 or r.json()["jobStatus"] != "complete":
        assert time.monotonic() < deadline, r.text
        time.sleep(0.25)
    asked_at = time.time()
    job = status_of(target, token, job_id).json()
    link = job["jobProcessedPayloadLink"]
    query = dict(p.split("=", 1) for p in link.split("?", 1)[1].split("&"))
    assert "X-Amz-Security-Token" in query, "signed with a session's temporary credentials"
    signed = time.mktime(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")) - time.timezone
    stated = time.mktime(time.strptime(job["jobProcessedPayloadExpiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(signed + int(query["X-Amz-Expires"]) - stated) <= 1, (query, job["jobProcessedPayloadExpiresAt"])
    assert 1800 - 10 <= stated - asked_at <= 1800, "30 minutes, the stack's PRESIGNED_URL_TTL_SECONDS"
    assert requests.get(link, timeout=30).status_code == 200

    if is_local(target):
        # The local S3 proxy refuses an expired link as S3 does (moto would not).
        expired = link.replace(f"X-Amz-Date={query['X-Amz-Date']}", "X-Amz-Date=20200101T000000Z")
        refused = requests.get(expired, timeout=30)
        assert refused.status_code == 403 and "Request has expired" in refused.text, refused.text
        credential = requests.utils.unquote(query["X-Amz-Credential"]).split("/")[0]
        assert not credential.startswith("ASIAJOBSLOCAL"), "not the function's own key"
