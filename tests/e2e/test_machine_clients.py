"""End-to-end: machine clients call the job operations signed with SigV4
(service execute-api) by an AWS SDK (botocore's signer), authorized by IAM.
Their jobs belong to their IAM principal: Cognito users never see them, and
they never see a user's. Unsigned or wrongly signed calls are 403, as API
Gateway answers them.

Locally `machineClient` in the outputs holds credentials the local target
issued for a session of the stack's machine-client role; on a deployed
stage the test assumes the role named by `machineClientRoleArn` with the
ambient AWS credentials."""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from target import Target
from test_jobs import recorded_with, settle, settle_with, status, submitted_job


class MachineClient:
    """Signs each request with SigV4 for execute-api, as an SDK does."""

    def __init__(self, api_url: str, credentials: Credentials, region: str):
        self.api = api_url.rstrip("/")
        self.credentials = credentials
        self.region = region

    def call(self, method: str, path: str, body=None, params=None, credentials=None) -> requests.Response:
        url = f"{self.api}/{path}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = AWSRequest(method=method, url=url, data=data, params=params or {}, headers=headers)
        SigV4Auth(credentials or self.credentials, "execute-api", self.region).add_auth(request)
        prepared = request.prepare()
        return requests.request(method, prepared.url, headers=dict(prepared.headers), data=data, timeout=30)


@pytest.fixture(scope="module")
def machine(target: Target) -> MachineClient:
    local = target.outputs.get("machineClient")
    if local:
        creds = Credentials(local["accessKeyId"], local["secretAccessKey"])
        return MachineClient(local["apiUrl"], creds, local["region"])
    role = target.outputs.get("machineClientRoleArn")
    if not role:
        pytest.skip("the outputs name no machine client (machineClient or machineClientRoleArn)")
    session = boto3.client("sts", region_name=target["region"]).assume_role(
        RoleArn=role, RoleSessionName="e2e-machine-client"
    )["Credentials"]
    creds = Credentials(session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
    return MachineClient(target["machineApiUrl"], creds, target["region"])


def machine_settle(machine: MachineClient, job_id: str) -> dict:
    return settle_with(lambda: machine.call("GET", f"job-status/{job_id}"), job_id)


def test_a_signed_client_submits_reads_and_lists_its_jobs(machine: MachineClient):
    submitted = machine.call("POST", "submit-job-request", {"region": "eu-west-1"})
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["jobId"]
    # The reference's answer shape, as for a Cognito user.
    assert submitted.json()["SendMessageResponse"]["SendMessageResult"]["MessageId"] == job_id
    done = machine_settle(machine, job_id)
    assert done["jobStatus"] == "complete"
    assert requests.get(done["jobProcessedPayloadLink"], timeout=30).status_code == 200
    listed = machine.call("GET", "jobs", params={"limit": "50"})
    assert listed.status_code == 200, listed.text
    assert job_id in [j["jobId"] for j in listed.json()["jobs"]]
    assert machine.call("GET", "count").status_code == 200


def test_machine_and_user_jobs_are_invisible_to_each_other(target: Target, token: str, machine: MachineClient):
    mine = machine.call("POST", "submit-job-request", {"from": "machine"}).json()["jobId"]
    users = submitted_job(target, token, {"from": "user"})
    machine_settle(machine, mine)
    settle(target, token, users)
    # The user: the machine's job is an unknown id and is not listed.
    assert status(target, token, mine).status_code == 404
    user_list = target.session.get(f"{target.api}/jobs", params={"limit": 50}, headers={"Authorization": token}, timeout=30)
    assert mine not in [j["jobId"] for j in user_list.json()["jobs"]]
    # The machine: the user's job likewise.
    assert machine.call("GET", f"job-status/{users}").status_code == 404
    assert users not in [j["jobId"] for j in machine.call("GET", "jobs", params={"limit": "50"}).json()["jobs"]]


def test_unsigned_wrongly_signed_and_unknown_callers_are_403(target: Target, token: str, machine: MachineClient):
    url = f"{machine.api}/jobs"
    unsigned = requests.get(url, timeout=30)
    assert unsigned.status_code == 403
    assert unsigned.json()["message"] == "Missing Authentication Token"

    wrong_secret = Credentials(machine.credentials.access_key, "not-the-secret", machine.credentials.token)
    bad = machine.call("GET", "jobs", credentials=wrong_secret)
    assert bad.status_code == 403
    assert bad.json()["message"].startswith("The request signature we calculated does not match the signature you provided")

    unknown = machine.call("GET", "jobs", credentials=Credentials("AKIAUNKNOWNKEY000000", "secret"))
    assert unknown.status_code == 403
    assert unknown.json()["message"] == "The security token included in the request is invalid."

    # A Cognito token is not a signature: the machine routes refuse it.
    bearer = requests.get(url, headers={"Authorization": token}, timeout=30)
    assert bearer.status_code == 403, bearer.text
    # Nor do the Cognito routes take a signature.
    signed_user_route = MachineClient(target.api, machine.credentials, machine.region).call("GET", "jobs")
    assert signed_user_route.status_code == 401, signed_user_route.text


def test_a_signed_client_cancels_its_own_jobs_only(target: Target, token: str, machine: MachineClient):
    from test_cancel import FAILING, cancel, recorded

    # A user's job, and a machine client's: neither can cancel the other's.
    user_job = submitted_job(target, token, FAILING)
    recorded(target, token, user_job)
    assert machine.call("POST", f"jobs/{user_job}/cancel").status_code == 404
    machine_job = machine.call("POST", "submit-job-request", FAILING).json()["jobId"]
    recorded_with(lambda: machine.call("GET", f"job-status/{machine_job}"), machine_job)
    assert cancel(target, token, machine_job).status_code == 404
    # Its own: cancelled (or, on a slow machine, already failed: 409).
    response = machine.call("POST", f"jobs/{machine_job}/cancel")
    assert response.status_code in (200, 409), response.text
    expected = "cancelled" if response.status_code == 200 else "failed"
    assert response.json()["jobStatus"] == expected
    assert settle(target, token, user_job)["jobStatus"] == "failed", "the user's job ran on, uncancelled"
