"""The system under test, described by an outputs file.

Locally, `jobs-local` writes it (.local/outputs.json). For a deployed stage,
point JOBS_OUTPUTS at a file with the same keys (see docs/deploy.md,
step 4): apiUrl, region, userPoolId, userPoolClientId,
cognitoEndpoint, username, password, jobQueueUrl, deadLetterQueueUrl, and
optionally awsEndpoints (service -> endpoint URL) when not real AWS.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import requests


@dataclass
class Target:
    outputs: dict
    session: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Target":
        path = Path(path)
        if not path.exists():
            sys.exit(f"error: {path} does not exist; start the system with `./just up` or set JOBS_OUTPUTS.")
        return cls(json.loads(path.read_text()))

    def __getitem__(self, key: str):
        return self.outputs[key]

    @property
    def api(self) -> str:
        return self.outputs["apiUrl"].rstrip("/")

    def client(self, service: str):
        """A boto3 client for `service`, pointed at the emulator when local."""
        endpoint = self.outputs.get("awsEndpoints", {}).get(service)
        local = endpoint is not None
        return boto3.client(
            service,
            region_name=self.outputs["region"],
            endpoint_url=endpoint,
            # The emulator accepts any credentials; never use real ones against it.
            aws_access_key_id="local" if local else None,
            aws_secret_access_key="local" if local else None,
        )

    def id_token(self, username: str | None = None, password: str | None = None) -> str:
        """Sign in with USER_PASSWORD_AUTH, as a client of the user pool does."""
        result = self.client("cognito-idp").initiate_auth(
            ClientId=self.outputs["userPoolClientId"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={
                "USERNAME": username or self.outputs["username"],
                "PASSWORD": password or self.outputs["password"],
            },
        )
        return result["AuthenticationResult"]["IdToken"]


def outputs_path() -> Path:
    return Path(os.environ.get("JOBS_OUTPUTS", ".local/outputs.json"))


def check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AssertionError(f"{path} holds a password but has mode {oct(mode)}")


def dead_letter_job_ids(target: Target) -> set[str]:
    """The jobs whose messages are in the DLQ, looked at without consuming
    them: a replayed job's message names its job in the `jobId` attribute."""
    sqs = target.client("sqs")
    url = target["deadLetterQueueUrl"]
    seen: dict[str, str] = {}  # MessageId -> job id
    handles: list[str] = []
    for _ in range(200):  # bounded: 2,000 messages
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=20, WaitTimeSeconds=1, MessageAttributeNames=["jobId"]
        ).get("Messages", [])
        if not messages:
            break
        for m in messages:
            attribute = m.get("MessageAttributes", {}).get("jobId", {}).get("StringValue")
            seen[m["MessageId"]] = attribute or m["MessageId"]
            handles.append(m["ReceiptHandle"])
    # Visible again at once, for whoever looks next (a replay).
    for i in range(0, len(handles), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[{"Id": str(j), "ReceiptHandle": h, "VisibilityTimeout": 0} for j, h in enumerate(handles[i : i + 10])],
        )
    return set(seen.values())


def wait_for_dead_letters(target: Target, job_ids: set[str], timeout: float = 300) -> set[str]:
    """The DLQ's jobs once all of `job_ids` are among them, or at `timeout`.

    A job reads `failed` a moment before its message reaches the DLQ: the
    queue moves it on the receive after the bookkeeping one (docs/reliability.md), or after the visibility timeout if releasing it failed."""
    deadline = time.monotonic() + timeout
    while True:
        seen = dead_letter_job_ids(target)
        if job_ids <= seen or time.monotonic() > deadline:
            return seen
        time.sleep(2)
