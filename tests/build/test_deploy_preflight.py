"""`just deploy` and `just destroy` where they cannot work: no AWS credentials,
no tofu/terraform, no state bucket or key. They must stop at once, before building
anything, with one sentence naming what is missing, and change nothing.
The confirmation they ask for refuses to go on without a terminal.

Runs the real recipes through the real `just`, with an environment that has
no credentials (HOME is an empty directory) and a PATH without tofu or
terraform, or with a stand-in `tofu` that records any call.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import deploy_support
from deploy_support import ROOT, just


@pytest.fixture
def bare_env(tmp_path) -> dict:
    """No AWS credentials or config, no state bucket, PATH without tofu/terraform."""
    return deploy_support.bare_env(tmp_path)


def fake_tofu(env: dict, tmp_path: Path) -> Path:
    """A `tofu` that records its arguments and fails: nothing may call it."""
    calls = tmp_path / "tofu-calls"
    tofu = Path(env["PATH"].split(os.pathsep)[0]) / "tofu"
    tofu.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 1\n")
    tofu.chmod(0o755)
    return calls


def assert_stopped_before_anything(proc: subprocess.CompletedProcess, action: str, stage: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    sentence = errors[0]
    assert sentence.startswith(f"error: cannot {action} stage '{stage}': missing "), sentence
    assert sentence.endswith("; nothing was changed."), sentence
    # It stopped at the preflight: no build, no synth ran.
    assert "Compiling" not in proc.stdout + proc.stderr and "cargo lambda" not in proc.stdout + proc.stderr
    return sentence


@pytest.mark.parametrize("action", ["deploy", "destroy"])
def test_without_tofu_credentials_or_state_settings_it_names_them_all(bare_env, action):
    sentence = assert_stopped_before_anything(just(bare_env, action, "ci-check"), action, "ci-check")
    assert "OpenTofu or Terraform binary" in sentence
    assert "AWS credentials" in sentence
    assert "JOBS_STATE_BUCKET" in sentence
    assert "JOBS_STATE_KMS_KEY" in sentence
    assert not (ROOT / ".deploy" / "ci-check").exists()


@pytest.mark.parametrize("action", ["deploy", "destroy"])
def test_with_tofu_but_no_credentials_it_names_only_what_is_missing(bare_env, tmp_path, action):
    calls = fake_tofu(bare_env, tmp_path)
    env = dict(bare_env, **deploy_support.STATE_ENV)
    sentence = assert_stopped_before_anything(just(env, action, "ci-check"), action, "ci-check")
    assert "AWS credentials" in sentence
    assert "OpenTofu" not in sentence and "JOBS_STATE" not in sentence
    assert not calls.exists(), f"tofu was called: {calls.read_text()}"


@pytest.mark.parametrize("action", ["deploy", "destroy"])
def test_the_state_bucket_without_its_key_is_not_enough(bare_env, tmp_path, action):
    """Without the key the state would be written with S3's AES256, not the state bucket's KMS key."""
    fake_tofu(bare_env, tmp_path)
    env = dict(bare_env, **deploy_support.EXAMPLE_CREDENTIALS, JOBS_STATE_BUCKET=deploy_support.STATE_BUCKET)
    sentence = assert_stopped_before_anything(just(env, action, "ci-check"), action, "ci-check")
    assert sentence == (
        f"error: cannot {action} stage 'ci-check': missing JOBS_STATE_KMS_KEY, the ARN of the state bucket's KMS key "
        "that `just bootstrap-state` prints; nothing was changed."
    )


def test_the_confirmation_refuses_without_a_terminal(bare_env):
    proc = just(bare_env, "_confirm", "Deploy stage 'x'?", stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert "needs a yes on a terminal; nothing was changed." in proc.stderr


def test_the_confirmation_goes_on_only_on_yes(bare_env):
    # `script` gives the recipe a terminal, as a user at a shell has.
    if not shutil.which("script"):
        pytest.fail("`script` (util-linux) is needed to give the recipe a terminal")
    binary = shutil.which("just", path=bare_env["PATH"])
    command = f"{binary} --justfile {ROOT / 'justfile'} --working-directory {ROOT} _confirm 'Go?'"
    for answer, code in (("no", 1), ("yes", 0)):
        proc = subprocess.run(
            ["script", "-qec", command, "/dev/null"], input=f"{answer}\n", env=bare_env,
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == code, (answer, proc.stdout, proc.stderr)
