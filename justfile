# The job ingestion service. `just` lists the recipes; without just or Nix,
# use ./just (it installs the pinned tools into .tools/ first).

set shell := ["bash", "-euo", "pipefail", "-c"]

# The Rust functions, in the order the contract lists them (docs/contract.md).
functions := "authorizer job-processor batch-simulator job-status job-commands object-counter webhook-sender"
host_arch := if arch() == "aarch64" { "arm64" } else { "x86_64" }
state_dir := ".local"
# Where cargo puts jobs-local (honours CARGO_TARGET_DIR, like cargo itself).
jobs_local := env_var_or_default("CARGO_TARGET_DIR", "target") + "/release/jobs-local"
jobctl := env_var_or_default("CARGO_TARGET_DIR", "target") + "/release/jobctl"

# List the recipes
default:
    @just --list --unsorted

# Start the whole system locally: build, synthesize, start the emulators, functions, gateway and poller (`just up --faults` adds the fault layer)
up *flags: (build host_arch) (synth host_arch "local") local-target
    {{jobs_local}} start --stacks cdktf/cdktf.out --state-dir {{state_dir}} {{flags}}

# Stop the local system started by `just up`
down: local-target
    {{jobs_local}} stop --state-dir {{state_dir}}

# Print an ID token for the local test user (use it as the Authorization header)
token:
    @python3 tests/e2e/id_token.py {{state_dir}}/outputs.json

# Follow a local function's log (authorizer, job-processor, batch-simulator, job-status, job-commands, object-counter, webhook-sender)
[no-exit-message]
logs function="job-processor":
    #!/usr/bin/env bash
    set -euo pipefail
    function={{quote(function)}}
    # The error is the whole message: an unknown name would otherwise wait forever on a file that never appears.
    case " {{functions}} " in
        *" $function "*) ;;
        *) echo "error: there is no function '$function'; the functions are: {{functions}}" >&2; exit 1 ;;
    esac
    log={{state_dir}}/logs/jobs-local-$function.log
    # outputs.json exists exactly while the local system runs (jobs-local removes it on stop).
    if [[ ! -e {{state_dir}}/outputs.json ]]; then
        if [[ ! -e $log ]]; then
            echo "error: the local system is not running, so $function has no log yet: start it with ./just up, then run ./just logs $function again." >&2
            exit 1
        fi
        echo "The local system is not running (./just up starts it); the end of $function's log from its last run:" >&2
        exec tail -n 50 "$log"
    fi
    exec tail -n 50 -F "$log"

# Rebuild a function when its crate (or a workspace crate it uses) changes and swap it into the system `just up` started, until Ctrl-C
watch arch=host_arch: local-target
    {{jobs_local}} watch --state-dir {{state_dir}} --arch {{arch}}

# Move the jobs in the dead-letter queue back to the job queue once their cause is fixed (`--dry-run` lists them; `--outputs FILE` for a deployed stage)
replay *args:
    python3 tools/replay.py {{args}}

# Submit N jobs through the API with a real token, wait for all, and print lost/duplicates (must be 0), throughput and latency
load n="100" concurrency="16" *args:
    python3 tools/load.py {{n}} {{concurrency}} {{args}}

# Run the whole test suite: lints, Rust unit and emulator tests, jest synth tests, checkov, end-to-end tests on a fresh local system, flake and reproducibility checks
test: (build host_arch) (synth host_arch "local") local-target cli-build
    {{just_executable()}} lint
    @echo "==> Rust unit and integration tests"
    cargo test --workspace --locked
    @echo "==> the local target's corrections of moto (local/moto-python)"
    python3 -m pytest -q -p no:cacheprovider local/moto-python
    @echo "==> the bench's cost arithmetic and its emulator mix (bench/test_cost.py, bench/test_mix.py)"
    python3 -m pytest -q -p no:cacheprovider bench/test_cost.py bench/test_mix.py
    @echo "==> jest synth tests"
    cd cdktf && npm test --silent
    {{just_executable()}} checkov
    @echo "==> end-to-end tests against a fresh local system"
    tests/e2e/run-local.sh
    {{just_executable()}} check-build

# Build the function zips with cargo-lambda into target/lambda/<arch>/<function>/bootstrap.zip (arch: x86_64 or arm64), reproducibly
build arch=host_arch:
    #!/usr/bin/env bash
    set -euo pipefail
    case "{{arch}}" in x86_64) flag=--x86-64 ;; arm64) flag=--arm64 ;; *) echo "error: arch must be x86_64 or arm64" >&2; exit 1 ;; esac
    # Reproducible zips (docs/reproducible-builds.md): Cargo.lock as is (--locked),
    # a fixed zip timestamp, and no machine-specific path in the binaries. The
    # workspace's own paths are already relative; the registry sources under
    # CARGO_HOME are remapped. Only these target builds see RUSTFLAGS, so the
    # cache of `cargo test` and jobs-local is untouched.
    export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}"
    export RUSTFLAGS="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo${RUSTFLAGS:+ $RUSTFLAGS}"
    echo "==> Building {{functions}} for {{arch}} (the first build takes 5-15 min)"
    cargo lambda build --release --locked --output-format zip \
        --lambda-dir target/lambda/{{arch}} "$flag" {{ prepend("-p ", functions) }}
    python3 tools/normalize-zip.py {{ prepend("target/lambda/" + arch + "/", append("/bootstrap.zip", functions)) }}

# Synthesize the stacks into cdktf/cdktf.out (offline) from the zips `build` made for arch (default: this machine's, as `build`'s); the folders of stacks no longer defined are removed
[no-exit-message]
synth arch=host_arch stage="dev": node-packages
    cd cdktf && JOBS_LAMBDA_ARCH={{arch}} JOBS_STAGE={{stage}} npm run --silent synth
    @echo "==> Synthesized cdktf/cdktf.out/stacks/{cognito,app}/cdk.tf.json ({{stage}}, {{arch}})"

# Deploy the cognito and app stacks of a stage to AWS with tofu (or terraform); checks the Lambda concurrency quota, then asks
deploy stage="dev": (_preflight "deploy" stage) (build "arm64") (synth "arm64" stage) (_check-quota stage)
    @just _confirm "Deploy stage '{{stage}}' to AWS account $(just _account)?"
    tools/terraform.sh apply {{stage}} cognito app

# Remove everything a stage deployed, buckets included; asks first
destroy stage="dev": (_preflight "destroy" stage) (build "arm64") (synth "arm64" stage)
    @just _confirm "Destroy EVERYTHING in stage '{{stage}}' (data and results included)?"
    tools/terraform.sh destroy {{stage}} app cognito

# Regenerate tools/python-tools.lock from tools/python-tools.in
lock-python-tools:
    rm -rf .tools/lock-venv && python3 -m venv .tools/lock-venv
    .tools/lock-venv/bin/pip install --quiet -r tools/python-tools.in
    { echo "# Generated by 'just lock-python-tools' from tools/python-tools.in: every package pinned."; .tools/lock-venv/bin/pip freeze; } > tools/python-tools.lock
    rm -rf .tools/lock-venv

# Install the node packages of cdktf/ (pinned by package-lock.json)
node-packages:
    @tools/install.sh node

# Build the local target (jobs-local)
local-target:
    cargo build --release --locked -p jobs-local

# Build the command-line client `jobctl` into target/release/jobctl (docs/cli.md)
cli-build:
    cargo build --release --locked -p jobctl

# Run the command-line client `jobctl`, built first; it finds the local system's .local/outputs.json (e.g. `./just cli submit examples/job.json --wait`; no arguments: its usage)
[positional-arguments]
[no-exit-message]
cli *args: cli-build
    @if [[ $# -eq 0 ]]; then "{{jobctl}}" --help; else "{{jobctl}}" "$@"; fi

# Its one-sentence error is the whole message: no echo, no "recipe failed" line.
[no-exit-message]
_preflight action stage:
    @tools/terraform.sh preflight {{action}} {{stage}}

# One sentence when the quota cannot hold the stage's reservations, like the preflight's.
[no-exit-message]
_check-quota stage:
    @tools/terraform.sh check-quota {{stage}}

_account:
    @tools/terraform.sh account

[no-exit-message]
_confirm question:
    #!/usr/bin/env bash
    set -euo pipefail
    if [[ ! -t 0 ]]; then echo "error: {{question}} needs a yes on a terminal; nothing was changed." >&2; exit 1; fi
    read -r -p "{{question}} Type 'yes' to continue: " answer
    [[ $answer == yes ]] || { echo "Cancelled; nothing was changed." >&2; exit 1; }

# Check formatting (rustfmt) and lints (clippy, warnings denied) of the whole workspace
lint:
    @echo "==> rustfmt and clippy"
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Check the Nix flake and lock, that Nix and non-Nix pin the same tool versions, and that a clean copy builds identical zips
check-build: check-flake
    @echo "==> reproducible zips: a clean copy elsewhere must build the same zips as this tree"
    python3 tools/verify-reproducible.py {{host_arch}} --against-tree

# Check the Nix flake, its lock and Rust source filter, the version pins of both install paths, the pinned Node.js install, moto's sitecustomize, and that deploy/destroy stop at once when they cannot work (tests/build; unpacks Debian's nix-bin into .tools/nix if nix is missing)
check-flake:
    @echo "==> flake, flake.lock, Rust source filter, version pins, Node.js install, moto sitecustomize, deploy/destroy preflight (tests/build)"
    python3 -m pytest -q tests/build

# Build the zips from two clean copies of the source in different directories; every sha256 must match
verify-reproducible arch=host_arch:
    @echo "==> reproducible zips: two clean builds of {{arch}}"
    python3 tools/verify-reproducible.py {{arch}}

# Run checkov on every synthesized stack: 0 failed checks, skips only inline on their resource with a reason
checkov:
    @echo "==> checkov on cdktf/cdktf.out/stacks/*"
    python3 cdktf/scripts/checkov.py --checkov "$(if [[ -x .tools/venv/bin/checkov ]]; then echo .tools/venv/bin/checkov; else echo checkov; fi)"

# Create the Terraform state bucket and its KMS key and API Gateway's logging role, once per account (docs/deploy.md); asks first
bootstrap-state: (_preflight "bootstrap" "state") node-packages
    @just _confirm "Create the Terraform state bucket in AWS account $(just _account)?"
    tools/terraform.sh bootstrap-state

# Create (or reset) the end-to-end test user of a deployed stage and add it to .deploy/<stage>/outputs.json
test-user stage="dev":
    tools/terraform.sh test-user {{stage}}

# Options of `just bench`: --quick (fewer starts and jobs, no builds, ~3 min), --build (time an incremental build: touch one handler),
# --clean-build (time a clean build in a temporary target dir), --arm64 (build and size the arm64 zips), --load-note ', <note>' (label a shared machine).
# Measure performance in one run and print the table (docs/performance.md; writes bench/results/latest.json and chart.svg; options above)
[positional-arguments]
bench *options: (build host_arch) (synth host_arch "local") local-target
    "$(if [[ -x .tools/venv/bin/python ]]; then echo .tools/venv/bin/python; else echo python3; fi)" bench/bench.py "$@"
