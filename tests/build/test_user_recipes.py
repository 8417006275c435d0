"""What a user sees from the everyday recipes when something is off: `logs`
with a name that is no function or before the system is up, `cli` without
arguments, and `synth` with its defaults before any build. The real
justfile, run by just in a scratch working directory (or a copy of the
repository), with a stand-in `cargo` where a build would take minutes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy_support import ROOT, bare_env, just_binary, repo_copy, stub_dir, write_script

FUNCTIONS = "authorizer job-processor batch-simulator job-status job-commands object-counter webhook-sender"
# just's own line when a recipe fails ("error: recipe `cli` failed on line 108 with exit code 2");
# a recipe whose message is the whole story hides it.
JUST_FAILURE_LINE = re.compile(r"error: recipe `[\w-]+` failed", re.IGNORECASE)


def run_just(env: dict, cwd: Path, *args: str, justfile: Path = ROOT / "justfile", timeout: int = 60):
    return subprocess.run(
        [just_binary(env), "--justfile", str(justfile), "--working-directory", str(cwd), *args],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def env(tmp_path) -> dict:
    env = bare_env(tmp_path)
    env.pop("CARGO_TARGET_DIR", None)  # the recipes' paths are then relative to the working directory
    return env


def test_the_justfile_lists_the_functions_logs_accepts(env, tmp_path):
    proc = run_just(env, tmp_path, "--evaluate", "functions")
    assert proc.stdout == FUNCTIONS


def test_logs_of_an_unknown_function_fails_at_once_listing_the_functions(env, tmp_path):
    # Before: `tail -F` on a file that never appears, waiting forever (the timeout here would fire).
    proc = run_just(env, tmp_path, "logs", "nonsense", timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == f"error: there is no function 'nonsense'; the functions are: {FUNCTIONS}\n"


def test_logs_before_the_system_is_up_says_to_start_it(env, tmp_path):
    proc = run_just(env, tmp_path, "logs", "job-status", timeout=30)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: the local system is not running, so job-status has no log yet: "
        "start it with ./just up, then run ./just logs job-status again.\n"
    )
    # The default function too.
    assert "so job-processor has no log yet" in run_just(env, tmp_path, "logs", timeout=30).stderr


def test_logs_after_the_system_stopped_prints_the_end_of_the_last_run(env, tmp_path):
    logs = tmp_path / ".local" / "logs"
    logs.mkdir(parents=True)
    (logs / "jobs-local-authorizer.log").write_text("".join(f"line {i}\n" for i in range(60)))
    proc = run_just(env, tmp_path, "logs", "authorizer", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"line {i}" for i in range(10, 60)]
    assert "not running" in proc.stderr


def test_logs_follows_the_log_while_the_system_runs(env, tmp_path):
    state = tmp_path / ".local"
    (state / "logs").mkdir(parents=True)
    (state / "outputs.json").write_text("{}")  # jobs-local writes it when ready and removes it on stop
    log = state / "logs" / "jobs-local-job-processor.log"
    log.write_text("first\n")
    follower = subprocess.Popen(
        [just_binary(env), "--justfile", str(ROOT / "justfile"), "--working-directory", str(tmp_path), "logs"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert follower.stdout.readline() == "first\n"
        with log.open("a") as fh:
            fh.write("second\n")
        assert follower.stdout.readline() == "second\n"
        assert follower.poll() is None, "it keeps following"
    finally:
        follower.terminate()
        follower.wait(timeout=30)


def fake_cargo_building_the_cli(env: dict) -> None:
    """`cargo build --release ... -p jobctl` that writes a stand-in client
    printing a usage line (the real one is clap's) and exiting 2 without arguments, as clap does."""
    write_script(stub_dir(env) / "cargo", f"""#!{sys.executable}
import os, sys
from pathlib import Path
args = sys.argv[1:]
assert args[:2] == ["build", "--release"] and args[args.index("-p") + 1] == "jobctl", args
client = Path("target/release/jobctl")
client.parent.mkdir(parents=True, exist_ok=True)
client.write_text('''#!/bin/sh
case "$1" in
    --help) echo "Usage: jobctl [OPTIONS] <COMMAND>"; exit 0 ;;
    "") echo "Usage: jobctl [OPTIONS] <COMMAND>" >&2; exit 2 ;;
    *) echo "error: cannot reach the API" >&2; exit 1 ;;
esac
''')
client.chmod(0o755)
""")


def test_cli_without_arguments_prints_the_usage_and_succeeds(env, tmp_path):
    fake_cargo_building_the_cli(env)
    proc = run_just(env, tmp_path, "cli")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Usage: jobctl [OPTIONS] <COMMAND>\n"
    assert not JUST_FAILURE_LINE.search(proc.stderr), proc.stderr


def test_a_failing_cli_command_shows_only_the_clients_error(env, tmp_path):
    fake_cargo_building_the_cli(env)
    proc = run_just(env, tmp_path, "cli", "status", "x")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: cannot reach the API"
    assert not JUST_FAILURE_LINE.search(proc.stderr), proc.stderr


def test_synth_with_its_defaults_before_a_build_names_the_exact_build_command(tmp_path):
    # A fresh clone: no target/, so no zips. The defaults are this machine's architecture and stage dev.
    repo = repo_copy(tmp_path)
    env = bare_env(tmp_path)
    env.pop("CARGO_TARGET_DIR", None)
    host = {"x86_64": "x86_64", "aarch64": "arm64"}[os.uname().machine]
    proc = run_just(env, repo, "synth", justfile=repo / "justfile", timeout=300)
    assert proc.returncode == 1
    missing = repo / "target" / "lambda" / host / "authorizer" / "bootstrap.zip"
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: The Lambda package {missing} does not exist: build it with `./just build {host}`."
    )
    assert not JUST_FAILURE_LINE.search(proc.stderr), proc.stderr
    # Following the hint is enough: with those zips in place the same call synthesizes.
    for function in FUNCTIONS.split():
        zip_dir = repo / "target" / "lambda" / host / function
        zip_dir.mkdir(parents=True)
        with zipfile.ZipFile(zip_dir / "bootstrap.zip", "w") as z:
            z.writestr("bootstrap", function)
    proc = run_just(env, repo, "synth", justfile=repo / "justfile", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"==> Synthesized cdktf/cdktf.out/stacks/{{cognito,app}}/cdk.tf.json (dev, {host})" in proc.stdout
