"""What the deploy tests share: an environment without AWS, a copy of the
repository to run the real recipes in, stand-ins for the tools that would
reach AWS or build for minutes (tofu, aws, cargo), and a stand-in for the
Lambda API that the concurrency check reads.

Nothing here reaches AWS: the stand-ins record what they are asked, and the
Lambda API is a local HTTP server that boto3 is pointed at with
AWS_ENDPOINT_URL_LAMBDA.
"""
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
# AWS's documented example credentials: never valid anywhere.
EXAMPLE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_EC2_METADATA_DISABLED": "true",
}
STATE_BUCKET = f"jobs-tfstate-{ACCOUNT}-us-east-1"
STATE_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
STATE_ENV = {"JOBS_STATE_BUCKET": STATE_BUCKET, "JOBS_STATE_KMS_KEY": STATE_KEY}


def bare_env(tmp_path: Path) -> dict:
    """No AWS credentials or config (HOME is empty), no state bucket, and a
    PATH without tofu/terraform whose first entry is an empty folder for
    stand-ins (`stub_dir`)."""
    home = tmp_path / "home"
    home.mkdir()
    keep = {"LANG", "LC_ALL", "TERM", "CARGO_HOME", "RUSTUP_HOME", "CARGO_TARGET_DIR"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    bins = tmp_path / "bin"
    bins.mkdir()
    path = []
    for directory in os.environ["PATH"].split(os.pathsep):
        if not (Path(directory, "tofu").exists() or Path(directory, "terraform").exists()):
            path.append(directory)
    env.update(HOME=str(home), PATH=os.pathsep.join([str(bins), *path]))
    return env


def stub_dir(env: dict) -> Path:
    return Path(env["PATH"].split(os.pathsep)[0])


def just(env: dict, *args: str, root: Path = ROOT, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run(
        [just_binary(env), "--justfile", str(root / "justfile"), "--working-directory", str(root), *args],
        env=env, stdin=stdin, capture_output=True, text=True, timeout=300,
    )


def just_binary(env: dict) -> str:
    binary = shutil.which("just", path=env["PATH"])
    assert binary, "just is not on PATH: run the suite through ./just or inside nix develop"
    return binary


def just_on_terminal(env: dict, root: Path, *args: str, answer: str = "yes") -> subprocess.CompletedProcess:
    """Runs a recipe as a user at a terminal does (`script` gives it one), answering `answer`."""
    assert shutil.which("script"), "`script` (util-linux) is needed to give the recipe a terminal"
    command = shlex.join([just_binary(env), "--justfile", str(root / "justfile"), "--working-directory", str(root), *args])
    return subprocess.run(
        ["script", "-qec", command, "/dev/null"], input=f"{answer}\n", env=env,
        capture_output=True, text=True, timeout=600,
    )


def repo_copy(tmp_path: Path) -> Path:
    """The repository as a fresh clone has it (tracked and new files, nothing
    ignored: no .deploy, no cdktf.out, no target), with the installed node
    packages linked in. The recipes run there, so that nothing they write
    touches this checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    copy = tmp_path / "repo"
    for rel in filter(None, listed):
        source = ROOT / rel
        if not source.is_file():
            continue  # deleted in the work tree
        target = copy / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    node_modules = (ROOT / "cdktf" / "node_modules").resolve()
    assert node_modules.is_dir(), "cdktf/node_modules is not installed: run the suite through ./just or nix develop"
    # A copy whose link leads to packages of another lock would reinstall them
    # through the link (tools/install.sh), emptying this checkout's node_modules.
    lock_stamp = ".installed-" + hashlib.sha256((ROOT / "cdktf" / "package-lock.json").read_bytes()).hexdigest()[:16]
    assert (node_modules / lock_stamp).is_file() or str(node_modules).startswith("/nix/store/"), (
        "cdktf/node_modules was installed from another package-lock.json: run `./just node-packages` first")
    (copy / "cdktf" / "node_modules").symlink_to(node_modules)
    return copy


def deploy_env(tmp_path: Path) -> dict:
    """An environment where the deploy recipes get past their preflight and
    reach AWS only through stand-ins: example credentials, the state settings,
    and on PATH a recording `tofu`, an `aws` that knows the account, a `cargo`
    that writes placeholder zips instead of building, and this Python (with
    boto3) as `python3`."""
    env = bare_env(tmp_path)
    env.update(EXAMPLE_CREDENTIALS, **STATE_ENV)
    bins = stub_dir(env)
    calls = tmp_path / "tofu-calls"
    write_script(bins / "tofu", f"""#!/bin/sh
printf '%s\\t%s\\n' "$PWD" "$*" >> {calls}
case "$*" in
    "output -raw stateBucket") printf '%s' {STATE_BUCKET} ;;
    "output -raw stateRegion") printf us-east-1 ;;
    "output -raw stateKmsKey") printf '%s' {STATE_KEY} ;;
    "output -json") echo '{{}}' ;;
esac
exit 0
""")
    write_script(bins / "aws", f"""#!/bin/sh
case "$*" in
    "sts get-caller-identity"*) echo {ACCOUNT} ;;
    *) echo "aws stand-in: unexpected call: $*" >&2; exit 1 ;;
esac
""")
    write_script(bins / "cargo", f"""#!{sys.executable}
# `cargo lambda build ... --lambda-dir DIR -p NAME...`: a one-entry zip per function.
import sys, zipfile
from pathlib import Path
args = sys.argv[1:]
assert args[:2] == ["lambda", "build"], args
out = Path(args[args.index("--lambda-dir") + 1])
for i, arg in enumerate(args):
    if arg == "-p":
        zip_path = out / args[i + 1] / "bootstrap.zip"
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w") as z:
            z.writestr("bootstrap", "placeholder of " + args[i + 1])
""")
    # This interpreter has boto3 (the suite's venv, or nix develop's Python).
    write_script(bins / "python3", f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    env["TOFU_CALLS"] = str(calls)
    return env


def write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def tofu_calls(env: dict) -> list[tuple[str, str]]:
    """(working directory, arguments) of every call of the recording tofu."""
    calls = Path(env["TOFU_CALLS"])
    if not calls.exists():
        return []
    return [tuple(line.split("\t", 1)) for line in calls.read_text().splitlines()]


def fixture_zips(tmp_path: Path) -> Path:
    """Placeholder zips for a synthesis (`JOBS_LAMBDA_ZIP_DIR`): it only hashes them."""
    directory = tmp_path / "zips"
    for fn in ("authorizer", "job-processor", "batch-simulator", "job-status", "job-commands", "object-counter", "webhook-sender"):
        (directory / fn).mkdir(parents=True)
        with zipfile.ZipFile(directory / fn / "bootstrap.zip", "w") as z:
            z.writestr("bootstrap", fn)
    return directory


class LambdaApi:
    """The two Lambda API calls the concurrency check makes, answered as AWS
    answers them (https://docs.aws.amazon.com/lambda/latest/api/API_GetAccountSettings.html,
    https://docs.aws.amazon.com/lambda/latest/api/API_GetFunctionConcurrency.html),
    from `quota`, `unreserved` and `reserved` (function name → its reservation)."""

    def __init__(self, quota: int, unreserved: int, reserved: dict | None = None):
        self.quota, self.unreserved, self.reserved = quota, unreserved, reserved or {}
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                api.requests.append(self.path)
                if self.path.rstrip("/") == "/2016-08-19/account-settings":
                    self.reply(200, {
                        "AccountLimit": {
                            "TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                            "ConcurrentExecutions": api.quota, "UnreservedConcurrentExecutions": api.unreserved,
                        },
                        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
                    })
                elif self.path.startswith("/2019-09-30/functions/") and self.path.endswith("/concurrency"):
                    name = self.path.split("/")[3]
                    if name in api.reserved:
                        self.reply(200, {"ReservedConcurrentExecutions": api.reserved[name]})
                    else:
                        self.reply(404, {"Type": "User", "Message": f"Function not found: {name}"},
                                   error="ResourceNotFoundException")
                else:
                    self.reply(400, {"message": f"unexpected {self.path}"}, error="InvalidRequestException")

            def reply(self, status: int, body: dict, error: str | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LambdaApi":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"
