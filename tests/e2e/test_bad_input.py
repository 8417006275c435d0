"""The bad-input catalogue: every way a request can be wrong, end to end
through the gateway, with the exact status and JSON error body the API
answers, and proof that nothing reached the queue or the table.

CASES is the catalogue. A message ending in `…` is a prefix: the answer's
message starts with it (the rest names what was wrong with the value).
docs/api.md shows it as a table between the
`bad-input-catalogue` markers; test_the_api_document_shows_this_catalogue
checks that the two agree (its failure message prints the table to paste).

Tokens with crafted claims are signed with the user pool's real key, so the
claim checks (not the signature check) are what refuses them. Locally the
pool is moto's, which signs every token with a private key shipped inside the
moto package: those cases run only on the local target (outputs with
`logsDir`). Every other case runs on a deployed stage too.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from target import Target

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"
QUIET_SECONDS = 60

UNAUTHORIZED = "Unauthorized"
MISSING_TOKEN = "Missing Authentication Token"
# Next to API Gateway's unchanged message, what a person can do about it.
UNAUTHORIZED_HINT = ("Send the ID token (IdToken) of a Cognito sign-in to this API's user pool in the Authorization "
                     "header, raw or as Bearer <token>; the token sent is missing, malformed, expired, or an access token.")
MISSING_TOKEN_HINT = ("No such route or method, or a machine route called without a SigV4 signature. The API serves "
                      "POST /submit-job-request, GET /job-status/{jobId}, GET /jobs, GET /count and "
                      "POST /jobs/{jobId}/cancel with a Cognito ID token, "
                      "and POST /machine/submit-job-request, GET /machine/job-status/{jobId}, GET /machine/jobs, "
                      "GET /machine/count and POST /machine/jobs/{jobId}/cancel signed with SigV4 (service execute-api).")
NOT_AN_OBJECT = "Invalid request body: the job request must be a JSON object."
# The request body limit (docs/api.md, "Bounds"): the queue's 262,144-byte
# maximum message size less the 47 bytes of the `owner` message attribute
# and the 47 of the `jobId` attribute, which SQS counts too. Bytes of UTF-8,
# not characters.
MAX_BODY_BYTES = 262_144 - (len("owner") + len("String") + 36) - (len("jobId") + len("String") + 36)
TOO_LARGE = f"The job queue rejected the request: the body must be valid text of at most {MAX_BODY_BYTES:,} bytes (UTF-8)."
UNSUPPORTED = "Unsupported Media Type"


def invalid_id(shown: str) -> str:
    """The job-status function's 400 message; `shown` is the id as it quotes it."""
    return (
        f"The job id {shown} is not a valid job id; use the jobId returned by POST /submit-job-request, "
        "a UUID such as 4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21."
    )


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str  # after the stage URL, sent as is (percent-escapes included)
    status: int
    message: str
    # What goes in Authorization: "id" (a signed-in user's ID token), "none"
    # (no header) or a TOKENS key (a crafted token).
    auth: str = "id"
    body: bytes | None = b'{"region": "eu-west-1"}'
    content_type: str | None = "application/json"
    local_only: bool = False
    # Further keys the JSON body must have, with their values.
    extra: dict = field(default_factory=dict)
    # Further request headers (a value of bytes is sent as those bytes).
    headers: dict = field(default_factory=dict)
    # Shown in the table: what the request is, and why the answer is right.
    request: str = ""
    why: str = ""


SUBMIT = "/submit-job-request"
STATUS = f"/job-status/{UNKNOWN_JOB}"
CANCEL = f"/jobs/{UNKNOWN_JOB}/cancel"
NOT_FOUND = f"No job found with id {UNKNOWN_JOB}. Job ids come from POST /submit-job-request; a job appears here as soon as its submit is answered."
LONG_ID = "a" * 300


def json_body_of(size: int, char: str) -> bytes:
    """A JSON object of exactly `size` bytes, padded with `char` (1 to 4 bytes in UTF-8)."""
    prefix, suffix = b'{"pad":"', b'"}'
    room = size - len(prefix) - len(suffix)
    width = len(char.encode())
    body = prefix + (char * (room // width)).encode() + b"x" * (room % width) + suffix
    assert len(body) == size
    json.loads(body)
    return body


def submit_body(cid: str, body: bytes | None, request: str, status: int, message: str, *, content_type="application/json", why="") -> Case:
    return Case(cid, "POST", SUBMIT, status, message, body=body, content_type=content_type, request=request, why=why)


def token_case(cid: str, auth: str, request: str, why: str, *, local_only=False, method="POST", path=SUBMIT) -> Case:
    return Case(cid, method, path, 401, UNAUTHORIZED, auth=auth, local_only=local_only, request=request, why=why,
                extra={"hint": UNAUTHORIZED_HINT})


def job_id_case(cid: str, raw: str, status: int, message: str, request: str, why: str, extra=None) -> Case:
    return Case(cid, "GET", f"/job-status/{raw}", status, message, body=None, content_type=None,
                request=request, why=why, extra=extra or {})


def listing_case(cid: str, query: str, message: str, request: str, why: str) -> Case:
    return Case(cid, "GET", f"/jobs?{query}", 400, message, body=None, content_type=None, request=request, why=why)


def limit_message(shown: str) -> str:
    return f"The limit parameter must be a whole number from 1 to 100 (default 20); got {shown}."


def page_token(owner: str) -> str:
    """A well-formed `nextToken` (base64url of the index key) for `owner`."""
    key = {"jobRequestId": UNKNOWN_JOB, "owner": owner, "submittedAt": "2026-01-01T00:00:00.000Z"}
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


# A path or message with `{ownJob}` names a job the first test user submitted
# (the `own_job` fixture); "second-user" sends the second test user's ID token.
OWN_JOB = "{ownJob}"


KEY_MESSAGE = "Invalid Idempotency-Key: it must be 1 to 128 characters of A-Z, a-z, 0-9, '-', '_', '.' and ':'…"
CALLBACK_MESSAGE = "Invalid Job-Callback-Url: …"


def header_case(cid: str, name: str, value: str | bytes, message: str, request: str, why: str) -> Case:
    return Case(cid, "POST", SUBMIT, 400, message, headers={name: value}, request=request, why=why)


def route_case(cid: str, method: str, path: str, request: str, why: str, auth="id") -> Case:
    return Case(cid, method, path, 403, MISSING_TOKEN, auth=auth, body=None, content_type=None, request=request, why=why,
                extra={"hint": MISSING_TOKEN_HINT})


CASES: list[Case] = [
    # --- Authorization header -------------------------------------------------
    token_case("auth-missing", "none", "no `Authorization` header", "the authorizer's identity source is absent: API Gateway answers without calling it"),
    token_case("auth-missing-status", "none", "no `Authorization` header", "every route is behind the authorizer", method="GET", path=STATUS),
    token_case("auth-empty", "", "`Authorization:` (empty)", "same as absent"),
    token_case("auth-garbage", "not-a-token", "`Authorization: not-a-token`", "fails the identity validation expression (three base64url parts, optional `Bearer `)"),
    token_case("auth-garbage-status", "not-a-token", "`Authorization: not-a-token`", "as above, on the status route", method="GET", path=STATUS),
    token_case("auth-bearer-only", "Bearer ", "`Authorization: Bearer ` (no token)", "fails the validation expression"),
    token_case("auth-basic", "Basic dXNlcjpwYXNz", "`Authorization: Basic dXNlcjpwYXNz`", "only Cognito tokens are accepted"),
    token_case("auth-lowercase-bearer", "bearer-lower", "`Authorization: bearer <ID token>`", "the prefix is `Bearer ` exactly"),
    token_case("auth-three-garbage-parts", "aaa.bbb.ccc", "`Authorization: aaa.bbb.ccc`", "looks like a JWT, is not one: the authorizer refuses it"),
    # --- Tokens -----------------------------------------------------------------
    token_case("token-forged-claims", "forged", "an ID token with `sub` changed, original signature", "the signature no longer matches"),
    token_case("token-truncated-signature", "truncated", "an ID token missing the end of its signature", "bad signature"),
    token_case("token-wrong-key", "wrong-key", "claims of a valid ID token signed with a fresh RSA key, the pool's `kid`", "signature does not verify with the pool's key"),
    token_case("token-unknown-kid", "unknown-kid", "valid claims signed with a fresh key under an unknown `kid`", "no such key in the pool's JWKS"),
    token_case("token-alg-none", "alg-none", "`alg: none`, valid claims, no signature (`header.payload.`)", "unsigned; also fails the validation expression"),
    token_case("token-alg-none-signature", "alg-none-signed", "`alg: none` header on a valid token's payload and signature", "only RS256 is accepted"),
    token_case("token-alg-hs256", "hs256", "`alg: HS256`, valid claims, HMAC signature", "only RS256 is accepted (no key confusion)"),
    token_case("token-access", "access", "the access token from the same sign-in", "`token_use` must be `id`"),
    token_case("token-expired", "expired", "pool-signed ID token, `exp` an hour ago", "expired (5 s leeway)", local_only=True),
    token_case("token-expired-status", "expired", "pool-signed ID token, `exp` an hour ago", "as above, on the status route", local_only=True, method="GET", path=STATUS),
    token_case("token-not-yet-valid", "not-yet-valid", "pool-signed ID token, `nbf` in an hour", "not valid yet", local_only=True),
    token_case("token-wrong-issuer", "wrong-issuer", "pool-signed ID token, `iss` another pool", "wrong issuer", local_only=True),
    token_case("token-wrong-audience", "wrong-audience", "pool-signed ID token, `aud` another app client", "wrong audience", local_only=True),
    token_case("token-use-access", "use-access", "pool-signed token with `token_use: access`, `client_id` set", "`token_use` must be `id`", local_only=True),
    token_case("token-no-exp", "no-exp", "pool-signed ID token without `exp`", "`exp` is required", local_only=True),
    # --- Body -------------------------------------------------------------------
    submit_body("body-not-json", b"not json", "body `not json`", 400, NOT_AN_OBJECT, why="refused by the request model before the queue"),
    submit_body("body-truncated-json", b'{"region":', "body `{\"region\":`", 400, NOT_AN_OBJECT, why="not valid JSON"),
    submit_body("body-array", b"[1, 2, 3]", "body `[1, 2, 3]`", 400, NOT_AN_OBJECT, why="JSON, but not an object"),
    submit_body("body-string", b'"text"', "body `\"text\"`", 400, NOT_AN_OBJECT, why="JSON, but not an object"),
    submit_body("body-number", b"42", "body `42`", 400, NOT_AN_OBJECT, why="JSON, but not an object"),
    submit_body("body-null", b"null", "body `null`", 400, NOT_AN_OBJECT, why="JSON, but not an object"),
    submit_body("body-boolean", b"true", "body `true`", 400, NOT_AN_OBJECT, why="JSON, but not an object"),
    submit_body("body-empty", b"", "empty body", 400, NOT_AN_OBJECT, why="nothing to validate is not an object"),
    submit_body("body-invalid-utf8", b'{"region": "\xff"}', "body with a byte that is not UTF-8", 400, NOT_AN_OBJECT, why="not valid JSON text"),
    submit_body("body-too-large", b'{"pad": "' + b"x" * (256 * 1024) + b'"}', "a JSON object of 256 KiB + 11 bytes", 400, TOO_LARGE, why="over the queue's message size limit: the submit function refuses it before anything is recorded or queued"),
    submit_body("body-one-byte-over", json_body_of(MAX_BODY_BYTES + 1, "x"), f"a JSON object of {MAX_BODY_BYTES + 1:,} bytes (ASCII)", 400, TOO_LARGE,
                why="one byte over the limit: with the 47 bytes of the `owner` attribute and the 47 of `jobId` the message would exceed SQS's 262,144 bytes"),
    submit_body("body-one-byte-over-2-byte", json_body_of(MAX_BODY_BYTES + 1, "é"), f"a JSON object of {MAX_BODY_BYTES + 1:,} bytes, mostly `é` (2 bytes each)", 400, TOO_LARGE,
                why="the limit counts bytes of UTF-8, as SQS does, not characters"),
    submit_body("body-one-byte-over-4-byte", json_body_of(MAX_BODY_BYTES + 1, "😀"), f"a JSON object of {MAX_BODY_BYTES + 1:,} bytes, mostly `😀` (4 bytes each; {len(json_body_of(MAX_BODY_BYTES + 1, '😀').decode()):,} characters in all)", 400, TOO_LARGE,
                why="bytes, not characters: far fewer characters than bytes"),
    submit_body("body-4-byte-characters-440008", json_body_of(440_008, "😀"), "a JSON object of 440,008 bytes, 109,999 `😀` (4 bytes each) and 2 `x`", 400, TOO_LARGE,
                why="the submit function counts bytes before the queue, as SQS does (moto counts characters and would take it)"),
    submit_body("content-type-text", b'{"region": "eu-west-1"}', "`Content-Type: text/plain`", 415, UNSUPPORTED, content_type="text/plain", why="only `application/json` is mapped (passthrough NEVER)"),
    submit_body("content-type-xml", b"<job/>", "`Content-Type: application/xml`", 415, UNSUPPORTED, content_type="application/xml", why="only `application/json` is mapped"),
    submit_body("content-type-form", b"region=eu-west-1", "`Content-Type: application/x-www-form-urlencoded`", 415, UNSUPPORTED, content_type="application/x-www-form-urlencoded", why="only `application/json` is mapped"),
    # --- Idempotency-Key and Job-Callback-Url ----------------------------------------
    header_case("idempotency-key-empty", "Idempotency-Key", "", KEY_MESSAGE, "`Idempotency-Key:` (empty)", "a key has 1 to 128 characters"),
    header_case("idempotency-key-129", "Idempotency-Key", "k" * 129, KEY_MESSAGE, "`Idempotency-Key:` 129 × `k`", "at most 128 characters"),
    header_case("idempotency-key-space", "Idempotency-Key", "a b", KEY_MESSAGE, "`Idempotency-Key: a b`", "only `A-Za-z0-9-_.:`"),
    header_case("idempotency-key-slash", "Idempotency-Key", "a/b", KEY_MESSAGE, "`Idempotency-Key: a/b`", "only `A-Za-z0-9-_.:`"),
    header_case("idempotency-key-non-ascii", "Idempotency-Key", "clé".encode(), KEY_MESSAGE, "`Idempotency-Key: clé` (UTF-8)", "ASCII only"),
    header_case("callback-url-private", "Job-Callback-Url", "https://10.0.0.1/hook", CALLBACK_MESSAGE, "`Job-Callback-Url: https://10.0.0.1/hook`",
                "a private address is never called: refused at submit, nothing is created"),
    header_case("callback-url-metadata", "Job-Callback-Url", "https://169.254.169.254/latest", CALLBACK_MESSAGE,
                "`Job-Callback-Url: https://169.254.169.254/latest`", "the instance metadata address (link-local) is never called"),
    header_case("callback-url-ftp", "Job-Callback-Url", "ftp://example.com", CALLBACK_MESSAGE, "`Job-Callback-Url: ftp://example.com`", "https only"),
    header_case("callback-url-not-absolute", "Job-Callback-Url", "hooks.example.com/jobs", CALLBACK_MESSAGE,
                "`Job-Callback-Url: hooks.example.com/jobs`", "not an absolute URL"),
    # --- Routes and methods -----------------------------------------------------
    route_case("route-unknown", "GET", "/nope", "`GET /nope`", "no such resource: API Gateway's answer for an unknown route"),
    route_case("route-unknown-no-token", "GET", "/nope", "`GET /nope`, no token", "routing comes before authorization", auth="none"),
    route_case("route-stage-root", "GET", "/", "`GET /`", "the root has no method"),
    route_case("route-below-submit", "POST", "/submit-job-request/x", "`POST /submit-job-request/x`", "no such resource"),
    route_case("method-get-submit", "GET", SUBMIT, "`GET /submit-job-request`", "API Gateway answers an unknown method like an unknown route"),
    route_case("method-put-submit", "PUT", SUBMIT, "`PUT /submit-job-request`", "unknown method"),
    route_case("method-delete-submit", "DELETE", SUBMIT, "`DELETE /submit-job-request`", "unknown method"),
    route_case("method-post-status", "POST", STATUS, "`POST /job-status/{jobId}`", "unknown method"),
    route_case("method-delete-status-no-token", "DELETE", STATUS, "`DELETE /job-status/{jobId}`, no token", "unknown method, before authorization", auth="none"),
    # --- Job ids ----------------------------------------------------------------
    job_id_case("job-id-unknown", UNKNOWN_JOB, 404,
                f"No job found with id {UNKNOWN_JOB}. Job ids come from POST /submit-job-request; a job appears here as soon as its submit is answered.",
                f"`GET /job-status/{UNKNOWN_JOB}`", "well-formed, never submitted; also has the reference's `Error Message`",
                extra={"Error Message": f"No Job data found for Job Id : {UNKNOWN_JOB}"}),
    route_case("job-id-missing", "GET", "/job-status", "`GET /job-status`", "no id: the `/job-status` resource has no method"),
    route_case("job-id-empty", "GET", "/job-status/", "`GET /job-status/`", "an empty path segment matches no resource in API Gateway"),
    route_case("job-id-with-slash", "GET", "/job-status/a/b", "`GET /job-status/a/b`", "a `/` makes it another route, which does not exist"),
    job_id_case("job-id-encoded-slash", "%2F", 400, invalid_id('"/"'), "`GET /job-status/%2F`", "`%2F` stays in the one segment and reaches the function as `/`: not a UUID"),
    job_id_case("job-id-dot-dot", "%2E%2E", 400, invalid_id('".."'), "`GET /job-status/%2E%2E`",
                "reaches the function as `..`; a literal `/job-status/..` is resolved by the client (RFC 3986) to `/` (403)"),
    job_id_case("job-id-nul", "%00", 400, invalid_id('"\\0"'), "`GET /job-status/%00`", "control characters are escaped in the message"),
    job_id_case("job-id-unicode", "%C3%A9t%C3%A9", 400, invalid_id('"été"'), "`GET /job-status/été` (UTF-8, percent-encoded)", "not a UUID"),
    job_id_case("job-id-emoji", "%F0%9F%92%A5", 400, invalid_id('"💥"'), "`GET /job-status/💥`", "not a UUID"),
    job_id_case("job-id-overlong", LONG_ID, 400, invalid_id('"' + "a" * 64 + '…"'), "`GET /job-status/` + 300 × `a`", "the message quotes at most 64 characters"),
    job_id_case("job-id-not-hex", "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e2g", 400, invalid_id('"4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e2g"'),
                "`GET /job-status/4d1f0d2c-…-2f0a7b3c9e2g`", "UUID shape, a `g` in it"),
    job_id_case("job-id-markup", "%3Cscript%3E", 400, invalid_id('"<script>"'), "`GET /job-status/%3Cscript%3E`",
                "quoted as a JSON string in an `application/json` body, never as markup"),
    # --- Ownership ----------------------------------------------------------------
    Case("job-of-another-user", "GET", f"/job-status/{OWN_JOB}", 404,
         f"No job found with id {OWN_JOB}. Job ids come from POST /submit-job-request; a job appears here as soon as its submit is answered.",
         auth="second-user", body=None, content_type=None,
         request="a job another user submitted, with the second test user's ID token",
         why="only a job's owner sees it: answered exactly like an unknown id, `Error Message` included",
         extra={"Error Message": f"No Job data found for Job Id : {OWN_JOB}"}),
    # --- Cancel -------------------------------------------------------------------
    token_case("auth-missing-cancel", "none", "no `Authorization` header", "the commands are behind the authorizer too",
               path=CANCEL),
    Case("cancel-unknown", "POST", CANCEL, 404, NOT_FOUND, body=None, content_type=None,
         request=f"`POST /jobs/{UNKNOWN_JOB}/cancel`", why="well-formed, never submitted: answered as `GET /job-status` answers it",
         extra={"Error Message": f"No Job data found for Job Id : {UNKNOWN_JOB}"}),
    Case("cancel-malformed-id", "POST", "/jobs/not-a-job/cancel", 400, invalid_id('"not-a-job"'), body=None, content_type=None,
         request="`POST /jobs/not-a-job/cancel`", why="not a UUID: checked before the table is asked"),
    Case("cancel-of-another-user", "POST", f"/jobs/{OWN_JOB}/cancel", 404,
         f"No job found with id {OWN_JOB}. Job ids come from POST /submit-job-request; a job appears here as soon as its submit is answered.",
         auth="second-user", body=None, content_type=None,
         request="a job another user submitted, with the second test user's ID token",
         why="only a job's owner may cancel it; answered exactly like an unknown id, and the job is untouched",
         extra={"Error Message": f"No Job data found for Job Id : {OWN_JOB}"}),
    route_case("method-get-cancel", "GET", CANCEL, "`GET /jobs/{jobId}/cancel`", "unknown method: cancel is `POST`"),
    # --- Listing ------------------------------------------------------------------
    token_case("auth-missing-jobs", "none", "no `Authorization` header", "the listing is behind the authorizer too", method="GET", path="/jobs"),
    token_case("auth-missing-count", "none", "no `Authorization` header", "so are the counters", method="GET", path="/count"),
    listing_case("limit-zero", "limit=0", limit_message('"0"'), "`GET /jobs?limit=0`", "a page holds 1 to 100 jobs"),
    listing_case("limit-too-large", "limit=101", limit_message('"101"'), "`GET /jobs?limit=101`", "at most 100"),
    listing_case("limit-not-a-number", "limit=ten", limit_message('"ten"'), "`GET /jobs?limit=ten`", "a whole number"),
    listing_case("limit-negative", "limit=-1", limit_message('"-1"'), "`GET /jobs?limit=-1`", "a whole number from 1"),
    listing_case("next-token-garbage", "nextToken=garbage",
                 'The nextToken parameter "garbage" is not a token returned by GET /jobs; omit it for the first page.',
                 "`GET /jobs?nextToken=garbage`", "not base64url of a page key: checked, never passed to DynamoDB"),
    listing_case("next-token-foreign", f"nextToken={page_token('someone-else')}",
                 "The nextToken parameter was issued to another user; use the nextToken of your own previous GET /jobs page.",
                 "`GET /jobs?nextToken=<a well-formed token of another user>`", "a page token only continues its owner's listing"),
    # --- Machine routes (AWS_IAM): wrong signatures are in test_machine_clients.py ---
    Case("machine-unsigned-submit", "POST", "/machine/submit-job-request", 403, MISSING_TOKEN, auth="none",
         request="no signature", why="an AWS_IAM method: API Gateway refuses an unsigned call before anything runs",
         extra={"hint": MISSING_TOKEN_HINT}),
    Case("machine-unsigned-status", "GET", f"/machine/job-status/{UNKNOWN_JOB}", 403, MISSING_TOKEN, auth="none",
         body=None, content_type=None, request="no signature", why="every machine route is AWS_IAM",
         extra={"hint": MISSING_TOKEN_HINT}),
    Case("machine-unsigned-cancel", "POST", f"/machine/jobs/{UNKNOWN_JOB}/cancel", 403, MISSING_TOKEN, auth="none",
         body=None, content_type=None, request="no signature", why="the machine cancel is AWS_IAM too",
         extra={"hint": MISSING_TOKEN_HINT}),
]


# --- Tokens --------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value) -> str:
    return b64url(json.dumps(value).encode())


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def sign_rs256(claims: dict, key: rsa.RSAPrivateKey, kid: str) -> str:
    signing_input = f"{b64url_json({'alg': 'RS256', 'kid': kid, 'typ': 'JWT'})}.{b64url_json(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def moto_pool_key() -> tuple[str, rsa.RSAPrivateKey]:
    """The private key moto's Cognito signs every token with (a JWK in the package)."""
    import moto

    jwk = json.loads(gzip.decompress((Path(moto.__file__).parent / "cognitoidp/resources/jwks-private.json.gz").read_bytes()))
    n, e, d = (b64url_int(jwk[k]) for k in ("n", "e", "d"))
    p, q = rsa.rsa_recover_prime_factors(n, e, d)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)
    )
    return jwk["kid"], numbers.private_key()


def is_local(target: Target) -> bool:
    return "logsDir" in target.outputs


@pytest.fixture(scope="module")
def sign_in(target: Target) -> dict:
    return target.client("cognito-idp").initiate_auth(
        ClientId=target["userPoolClientId"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": target["username"], "PASSWORD": target["password"]},
    )["AuthenticationResult"]


@pytest.fixture(scope="module")
def tokens(target: Target, sign_in: dict) -> dict[str, str]:
    id_token = sign_in["IdToken"]
    header, payload, signature = id_token.split(".")
    claims = claims_of(id_token)
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unsigned = f"{b64url_json({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{payload}"
    hs_input = f"{b64url_json({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{payload}"
    found = {
        "id": id_token,
        "access": sign_in["AccessToken"],
        "bearer-lower": f"bearer {id_token}",
        "forged": f"{header}.{b64url_json({**claims, 'sub': 'someone-else'})}.{signature}",
        "truncated": id_token[:-10],
        "wrong-key": sign_rs256(claims, stranger, kid),
        "unknown-kid": sign_rs256(claims, stranger, "no-such-key"),
        "alg-none": f"{unsigned}.",
        "alg-none-signed": f"{unsigned}.{signature}",
        "hs256": f"{hs_input}.{b64url(hmac.new(b'secret', hs_input.encode(), hashlib.sha256).digest())}",
    }
    if is_local(target):
        pool_kid, pool_key = moto_pool_key()
        now = int(time.time())
        fresh = {**claims, "iat": now, "auth_time": now, "exp": now + 3600}

        def pool_signed(**changes) -> str:
            crafted = {**fresh, **changes}
            return sign_rs256({k: v for k, v in crafted.items() if v is not None}, pool_key, pool_kid)

        found.update(
            {
                "pool-signed": pool_signed(),
                "expired": pool_signed(iat=now - 7200, auth_time=now - 7200, exp=now - 3600),
                "not-yet-valid": pool_signed(nbf=now + 3600),
                "wrong-issuer": pool_signed(iss=claims["iss"].rsplit("/", 1)[0] + "/us-east-1_SomeOtherPool"),
                "wrong-audience": pool_signed(aud="another-app-client"),
                "use-access": pool_signed(token_use="access", aud=None, client_id=claims["aud"]),
                "no-exp": pool_signed(exp=None),
            }
        )
    return found


# --- Nothing reached the queue or the table -------------------------------------


def queue_depth(target: Target) -> int:
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target["jobQueueUrl"],
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def wait_for_empty_queue(target: Target) -> None:
    """Until the jobs queue holds nothing, visible, in flight or delayed.

    The processor records a job in the table before it deletes the message,
    so once the queue is empty every message ever sent to it is in the table.
    """
    deadline = time.monotonic() + QUIET_SECONDS
    while (depth := queue_depth(target)) != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"the jobs queue still holds {depth} messages after {QUIET_SECONDS}s")
        time.sleep(0.2)


def table_ids(target: Target) -> set[str]:
    ddb = target.client("dynamodb")
    ids: set[str] = set()
    kwargs = {"TableName": target["jobsTableName"], "ProjectionExpression": "jobRequestId", "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        ids.update(item["jobRequestId"]["S"] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return ids
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def table_count(target: Target) -> int:
    ddb = target.client("dynamodb")
    count, kwargs = 0, {"TableName": target["jobsTableName"], "Select": "COUNT", "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- The tests -------------------------------------------------------------------


def second_user(target: Target) -> dict | None:
    users = target.outputs.get("users") or []
    return users[1] if len(users) > 1 else None


@pytest.fixture(scope="module")
def own_job(target: Target, tokens: dict[str, str]) -> str:
    """A job the first test user submitted, once it is recorded."""
    response = target.session.post(
        f"{target.api}{SUBMIT}", data=b'{"region": "eu-west-1"}',
        headers={"Authorization": tokens["id"], "Content-Type": "application/json"}, timeout=30,
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["jobId"]
    deadline = time.monotonic() + QUIET_SECONDS
    while target.session.get(f"{target.api}/job-status/{job_id}", headers={"Authorization": tokens["id"]}, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, f"job {job_id} was not recorded"
        time.sleep(0.2)
    return job_id


def send(target: Target, case: Case, tokens: dict[str, str], own_job: str = ""):
    headers = {}
    if case.auth == "second-user":
        user = second_user(target)
        headers["Authorization"] = target.id_token(user["username"], user["password"])
    elif case.auth != "none":
        headers["Authorization"] = tokens.get(case.auth, case.auth)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    headers.update(case.headers)
    path = case.path.replace(OWN_JOB, own_job)
    return target.session.request(case.method, target.api + path, data=case.body, headers=headers, timeout=30)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_its_status_and_json_message_and_nothing_is_queued(target, tokens, case: Case, request):
    if case.local_only and not is_local(target):
        pytest.skip("signs with moto's Cognito key: local target only (no `logsDir` in the outputs)")
    if case.auth == "second-user" and second_user(target) is None:
        pytest.skip("needs a second test user (`users` in the outputs)")
    job = request.getfixturevalue("own_job") if OWN_JOB in case.path else ""
    wait_for_empty_queue(target)
    ids_before, count_before = table_ids(target), table_count(target)

    response = send(target, case, tokens, job)

    assert response.status_code == case.status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
    expected = case.message.replace(OWN_JOB, job)
    if expected.endswith("…"):
        assert body["message"].startswith(expected[:-1]), body
    else:
        assert body["message"] == expected
    for key, value in case.extra.items():
        assert body[key] == value.replace(OWN_JOB, job), body
    assert "jobId" not in body

    wait_for_empty_queue(target)
    assert table_ids(target) == ids_before, "a refused request left a job in the table"
    assert table_count(target) == count_before


def test_the_catalogue_covers_the_issue():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_crafted_tokens_fail_on_their_claims_not_their_signature(target, tokens):
    """Control: the pool's key re-signing unchanged claims gives a token that is accepted."""
    if not is_local(target):
        pytest.skip("signs with moto's Cognito key: local target only (no `logsDir` in the outputs)")
    response = target.session.get(f"{target.api}{STATUS}", headers={"Authorization": tokens["pool-signed"]}, timeout=30)
    assert response.status_code == 404, response.text


def test_the_other_invalid_tokens_are_built_from_an_accepted_one(target, tokens):
    """Control: the signed-in ID token they are derived from is accepted."""
    response = target.session.get(f"{target.api}{STATUS}", headers={"Authorization": tokens["id"]}, timeout=30)
    assert response.status_code == 404, response.text


# --- The table in docs/api.md ------------------------------------------------------

BEGIN, END = "<!-- bad-input-catalogue:begin -->", "<!-- bad-input-catalogue:end -->"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    lines = [
        "| # | case | request | status | `message` | why |",
        "|---|---|---|---|---|---|",
    ]
    for number, case in enumerate(CASES, 1):
        prefix = f"`{case.method} {case.path}`"
        request = case.request if case.request.startswith(f"`{case.method} ") else f"{prefix}, {case.request}"
        where = " (local target only)" if case.local_only else ""
        message = json.dumps(case.message, ensure_ascii=False)
        lines.append(f"| {number} | `{case.id}`{where} | {cell(request)} | {case.status} | {cell('`' + message + '`')} | {cell(case.why)} |")
    return "\n".join(lines)


def test_the_api_document_shows_this_catalogue():
    text = API_DOC.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, f"{API_DOC} has no {BEGIN} ... {END} block"
    expected = render_table()
    assert match.group(1) == expected, f"docs/api.md's catalogue is out of date; replace the block with:\n{expected}"
