"""`just bootstrap-state`, `just deploy` and `just destroy` as a user runs
them on a fresh clone, up to the point where AWS would answer: the real
recipes and tools/terraform.sh, in a copy of the repository, with stand-ins
for tofu (records its calls), aws (knows the account), cargo (writes
placeholder zips instead of a 10-minute build) and the Lambda API (the
concurrency quota). No AWS is reached; docs/deploy.md says what that leaves
unverified.
"""
import json
import subprocess
from pathlib import Path

import pytest

from deploy_support import (
    STATE_BUCKET,
    STATE_KEY,
    LambdaApi,
    deploy_env,
    fixture_zips,
    just,
    just_on_terminal,
    repo_copy,
    tofu_calls,
)


@pytest.fixture
def repo(tmp_path) -> Path:
    return repo_copy(tmp_path)


@pytest.fixture
def env(tmp_path) -> dict:
    return deploy_env(tmp_path)


def terraform_sh(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tools/terraform.sh", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def synthesized(repo: Path, stack: str) -> dict:
    return json.loads((repo / "cdktf/cdktf.out/stacks" / stack / "cdk.tf.json").read_text())


def test_bootstrap_state_on_a_fresh_clone_reaches_tofu_init_for_the_state_stack(repo, env):
    assert not (repo / ".deploy").exists()
    proc = just_on_terminal(env, repo, "bootstrap-state")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state_dir = repo / ".deploy/bootstrap/cdktf.out/stacks/state"
    calls = tofu_calls(env)
    assert calls, proc.stdout
    assert calls[0] == (str(state_dir), "init -input=false"), calls
    assert (str(state_dir), "apply -input=false -auto-approve") in calls
    # Only the state stack is synthesized there (no function zips needed), with local state in .deploy/bootstrap.
    assert sorted(p.name for p in (state_dir.parent).iterdir()) == ["state"]
    stack = json.loads((state_dir / "cdk.tf.json").read_text())
    assert stack["terraform"]["backend"] == {"local": {"path": str(repo / ".deploy/bootstrap/terraform.tfstate")}}
    # It prints all a deploy needs, the state key included.
    assert f"export JOBS_STATE_BUCKET={STATE_BUCKET} JOBS_STATE_REGION=us-east-1 JOBS_STATE_KMS_KEY={STATE_KEY}" in proc.stdout


def test_bootstrap_state_without_a_yes_changes_nothing(repo, env):
    proc = just_on_terminal(env, repo, "bootstrap-state", answer="no")
    assert proc.returncode != 0
    assert "Cancelled; nothing was changed." in proc.stdout + proc.stderr
    assert tofu_calls(env) == []


def test_deploy_applies_cognito_then_app_with_the_state_key(repo, env):
    with LambdaApi(quota=1000, unreserved=1000) as lambda_api:
        env["AWS_ENDPOINT_URL_LAMBDA"] = lambda_api.url
        proc = just_on_terminal(env, repo, "deploy", "dev")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stacks = repo / "cdktf/cdktf.out/stacks"
    verbs = [(Path(cwd).name, args.split()[0]) for cwd, args in tofu_calls(env)]
    # Every stack initialised before any is applied; cognito before app.
    assert verbs[:2] == [("cognito", "init"), ("app", "init")], verbs
    assert [v for v in verbs if v[1] == "apply"] == [("cognito", "apply"), ("app", "apply")]
    assert all(Path(cwd).parent == stacks for cwd, _ in tofu_calls(env))
    # The state is encrypted with the state bucket's key, not S3's AES256.
    for stack in ("cognito", "app"):
        backend = synthesized(repo, stack)["terraform"]["backend"]["s3"]
        assert backend["encrypt"] is True
        assert backend["kms_key_id"] == STATE_KEY
        assert backend["bucket"] == STATE_BUCKET
    assert "Lambda concurrency in us-east-1: quota 1000, 280 reserved by stage 'dev', 720 left unreserved" in proc.stdout


def test_a_region_taken_off_the_list_is_not_applied(repo, env, tmp_path):
    # A synthesis with two regions, then a deploy with one (the list was shrunk).
    two = dict(env, JOBS_REGIONS="us-east-1,eu-west-1", JOBS_LAMBDA_ZIP_DIR=str(fixture_zips(tmp_path)))
    proc = just(two, "synth", "arm64", "dev", root=repo)
    assert proc.returncode == 0, proc.stderr
    assert (repo / "cdktf/cdktf.out/stacks/app-eu-west-1").is_dir()

    with LambdaApi(quota=1000, unreserved=1000) as lambda_api:
        one = dict(env, JOBS_REGIONS="us-east-1", AWS_ENDPOINT_URL_LAMBDA=lambda_api.url)
        proc = just_on_terminal(one, repo, "deploy", "dev")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    applied = {Path(cwd).name for cwd, _ in tofu_calls(env)}
    assert applied == {"cognito", "app"}
    assert not (repo / "cdktf/cdktf.out/stacks/app-eu-west-1").exists()
    assert "removed" in proc.stdout and "app-eu-west-1" in proc.stdout


def test_even_a_left_over_stack_folder_is_not_applied(repo, env, tmp_path):
    """The apply reads the stacks from the synthesis's manifest, not from the folders."""
    env.update(JOBS_LAMBDA_ZIP_DIR=str(fixture_zips(tmp_path)), JOBS_RESERVED_CONCURRENCY="off")
    proc = just(dict(env, JOBS_REGIONS="us-east-1,eu-west-1"), "synth", "arm64", "dev", root=repo)
    assert proc.returncode == 0, proc.stderr
    kept = repo / "cdktf/cdktf.out/stacks/app-eu-west-1"
    saved = tmp_path / "saved-stack"
    kept.rename(saved)
    proc = just(dict(env, JOBS_REGIONS="us-east-1"), "synth", "arm64", "dev", root=repo)
    assert proc.returncode == 0, proc.stderr
    saved.rename(kept)  # as if the synthesis had left it behind
    for verb in ("apply", "destroy"):
        run = terraform_sh(repo, env, verb, "dev", "cognito", "app")
        assert run.returncode == 0, run.stdout + run.stderr
    assert "app-eu-west-1" not in {Path(cwd).name for cwd, _ in tofu_calls(env)}


def test_deploy_stops_before_anything_when_the_concurrency_quota_is_too_low(repo, env):
    # A new account: a quota of 10, all of it unreserved.
    with LambdaApi(quota=10, unreserved=10) as lambda_api:
        env["AWS_ENDPOINT_URL_LAMBDA"] = lambda_api.url
        proc = just_on_terminal(env, repo, "deploy", "dev")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("error: ")]
    assert errors == [
        "error: cannot deploy stage 'dev': in us-east-1 the account's Lambda concurrency quota is 10 (10 unreserved) "
        "and the stage's functions reserve 280, which would leave -270 unreserved where AWS keeps at least 10: "
        "request a 'Concurrent executions' quota of at least 380 (Service Quotas, AWS Lambda, us-east-1), "
        "or deploy with JOBS_RESERVED_CONCURRENCY=off; nothing was changed."
    ], output
    assert tofu_calls(env) == []
    assert "Type 'yes'" not in output  # it stopped before asking


def test_with_reservations_off_the_same_account_deploys(repo, env):
    with LambdaApi(quota=10, unreserved=10) as lambda_api:
        env.update(AWS_ENDPOINT_URL_LAMBDA=lambda_api.url, JOBS_RESERVED_CONCURRENCY="off")
        proc = just_on_terminal(env, repo, "deploy", "dev")
        assert lambda_api.requests == []  # nothing reserved: nothing to check
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {Path(cwd).name for cwd, args in tofu_calls(env) if args.startswith("apply")} == {"cognito", "app"}
    functions = synthesized(repo, "app")["resource"]["aws_lambda_function"].values()
    assert all("reserved_concurrent_executions" not in fn for fn in functions)


@pytest.mark.parametrize(
    "quota, unreserved, reserved, ok",
    [
        (1000, 1000, {}, True),  # 720 left
        (380, 380, {}, True),  # exactly the 100 AWS keeps
        (379, 379, {}, False),
        # A redeploy: the stage already holds its 280, so only the difference counts.
        (380, 100, {f"jobs-dev-{fn}": n for fn, n in [("authorizer", 20), ("batch-simulator", 20), ("job-processor", 10), ("job-status", 20), ("job-commands", 200), ("object-counter", 5), ("webhook-sender", 5)]}, True),
        # Another stage's 280 in the same region is not ours to count.
        (380, 100, {}, False),
    ],
)
def test_the_quota_check_counts_reservations_as_lambda_does(repo, env, tmp_path, quota, unreserved, reserved, ok):
    env["JOBS_LAMBDA_ZIP_DIR"] = str(fixture_zips(tmp_path))
    assert just(env, "synth", "arm64", "dev", root=repo).returncode == 0
    with LambdaApi(quota=quota, unreserved=unreserved, reserved=reserved) as lambda_api:
        proc = terraform_sh(repo, dict(env, AWS_ENDPOINT_URL_LAMBDA=lambda_api.url), "check-quota", "dev")
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr


def test_a_stack_synthesized_with_another_state_key_is_not_applied(repo, env, tmp_path):
    env.update(JOBS_LAMBDA_ZIP_DIR=str(fixture_zips(tmp_path)), JOBS_RESERVED_CONCURRENCY="off")
    assert just(env, "synth", "arm64", "dev", root=repo).returncode == 0
    other = STATE_KEY.replace("1234abcd", "9999abcd")
    proc = terraform_sh(repo, dict(env, JOBS_STATE_KMS_KEY=other), "apply", "dev", "cognito", "app")
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        f"error: stack 'cognito' was synthesized with another JOBS_STATE_KMS_KEY ({STATE_KEY}); "
        "run just synth arm64 dev; nothing was changed."
    )
    assert tofu_calls(env) == []
