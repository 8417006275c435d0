#!/usr/bin/env bash
# Applies or destroys the synthesized stacks (cdktf/cdktf.out/stacks/<stack>)
# with OpenTofu or Terraform, for `just deploy` / `just destroy` and the
# pipeline (docs/deploy.md).
#   tools/terraform.sh preflight deploy|destroy <stage>
#   tools/terraform.sh apply|destroy <stage> <stack>...   (stacks in order;
#                        `app` stands for every region's app stack)
#   tools/terraform.sh outputs <stage>       rewrite .deploy/<stage>/outputs.json
#   tools/terraform.sh test-user <stage>     create/reset the e2e test user
#   tools/terraform.sh bootstrap-state       create the S3 state bucket (once)
#   tools/terraform.sh account
# Every stack is initialised (providers downloaded, S3 backend reached) before
# any is changed, so a missing provider or backend stops the run before
# anything is applied.
set -euo pipefail
cd "$(dirname "$0")/.."

STACKS_DIR=cdktf/cdktf.out/stacks
# The keys of .local/outputs.json that the end-to-end tests read, and where
# they come from in the stack outputs (README, "Testing a deployed stage").
OUTPUT_KEYS="apiUrl region userPoolId userPoolClientId jobsTableName countersTableName resultsBucketName jobQueueUrl deadLetterQueueUrl dashboardUrl alarmTopicArn tokenCommand"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

terraform_bin() {
    if command -v tofu >/dev/null; then echo tofu
    elif command -v terraform >/dev/null; then echo terraform
    fi
}

have_credentials() {
    [[ -n ${AWS_ACCESS_KEY_ID:-} || -n ${AWS_PROFILE:-} || -n ${AWS_WEB_IDENTITY_TOKEN_FILE:-} \
        || -n ${AWS_CONTAINER_CREDENTIALS_FULL_URI:-} || -n ${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-} \
        || -s ${AWS_SHARED_CREDENTIALS_FILE:-$HOME/.aws/credentials} || -s ${AWS_CONFIG_FILE:-$HOME/.aws/config} ]]
}

# Everything a run needs, checked before anything is built or changed; one
# sentence naming all that is missing.
preflight() {
    local action=$1 stage=$2 missing=()
    [[ -n $(terraform_bin) ]] || missing+=("an OpenTofu or Terraform binary on PATH (tofu or terraform; nix develop provides tofu)")
    have_credentials || missing+=("AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)")
    if [[ $action == deploy || $action == destroy ]] && [[ -z ${JOBS_STATE_BUCKET:-} ]]; then
        missing+=("JOBS_STATE_BUCKET, the Terraform state bucket that \`just bootstrap-state\` creates and prints")
    fi
    if ((${#missing[@]})); then
        local joined
        joined=$(printf '%s and ' "${missing[@]}")
        local what="$action stage '$stage'"
        [[ $action == bootstrap ]] && what="bootstrap the Terraform state bucket"
        die "cannot $what: missing ${joined% and }; nothing was changed."
    fi
}

# `app` is every region's app stack (JOBS_REGIONS): app then app-<region>...
# to apply, the other regions first to destroy (the caller gives the order of
# the rest: cognito before app to apply, after it to destroy).
expand_stacks() {
    local verb=$1 stack; shift
    for stack in "$@"; do
        if [[ $stack == app ]]; then
            [[ $verb == apply ]] && echo app
            find "$STACKS_DIR" -mindepth 1 -maxdepth 1 -type d -name 'app-*' -printf '%f\n' | sort
            [[ $verb == destroy ]] && echo app
        else
            echo "$stack"
        fi
    done
}

# The synthesized stacks must be the stage's, with the S3 backend: applying a
# stack synthesized for another stage or with local state would be wrong.
check_synthesized() {
    local stage=$1 stack=$2 file="$STACKS_DIR/$2/cdk.tf.json"
    [[ -f $file ]] || die "stack '$stack' is not synthesized; run just synth arm64 $stage."
    python3 - "$file" "$stage" "$stack" <<'EOF' || exit 1
import json, sys
path, stage, stack = sys.argv[1:]
backend = json.load(open(path)).get("terraform", {}).get("backend", {})
s3 = backend.get("s3")
if not s3:
    sys.exit(f"error: stack '{stack}' was synthesized without JOBS_STATE_BUCKET (local state); set it and synthesize again; nothing was changed.")
if s3.get("key") != f"jobs/{stage}/{stack}.tfstate":
    sys.exit(f"error: stack '{stack}' was synthesized for another stage ({s3.get('key')}); run just synth arm64 {stage}; nothing was changed.")
EOF
}

run_stacks() {
    local verb=$1 stage=$2; shift 2
    local tf; tf=$(terraform_bin)
    [[ -n $tf ]] || die "no tofu or terraform on PATH; nothing was changed."
    mapfile -t stacks < <(expand_stacks "$verb" "$@")
    for stack in "${stacks[@]}"; do check_synthesized "$stage" "$stack"; done
    for stack in "${stacks[@]}"; do
        echo "==> $tf init ($stack)"
        (cd "$STACKS_DIR/$stack" && "$tf" init -input=false -reconfigure) \
            || die "$tf init failed for stack '$stack' (provider or state backend unavailable); nothing was changed."
    done
    local outputs=".deploy/$stage"
    mkdir -p "$outputs"
    for stack in "${stacks[@]}"; do
        echo "==> $tf $verb ($stack, stage $stage)"
        (cd "$STACKS_DIR/$stack" && "$tf" "$verb" -input=false -auto-approve)
        if [[ $verb == apply ]]; then
            (umask 077 && cd "$STACKS_DIR/$stack" && "$tf" output -json) > "$outputs/$stack.json"
            echo "    outputs: $outputs/$stack.json"
        else
            rm -f "$outputs/$stack.json"
        fi
    done
    if [[ $verb == apply ]]; then write_outputs "$stage"; else rm -f "$outputs/outputs.json"; fi
}

# .deploy/<stage>/outputs.json: the primary app stack's outputs under the keys
# of .local/outputs.json, so the end-to-end tests run unchanged with
# JOBS_OUTPUTS=.deploy/<stage>/outputs.json. Keeps the test user's
# username/password from an earlier `test-user`. Mode 0600 (it may hold a password).
write_outputs() {
    local stage=$1 dir=".deploy/$1"
    [[ -f $dir/app.json ]] || die "no outputs of stack 'app' in $dir; deploy the stage first."
    (umask 077 && python3 - "$dir" "$OUTPUT_KEYS" <<'EOF'
import json, os, sys
from pathlib import Path
directory, keys = Path(sys.argv[1]), sys.argv[2].split()
app = {k: v["value"] for k, v in json.loads((directory / "app.json").read_text()).items()}
target = directory / "outputs.json"
old = json.loads(target.read_text()) if target.exists() else {}
combined = {k: app[k] for k in keys if k in app}
combined.update({k: old[k] for k in ("username", "password") if k in old})
target.write_text(json.dumps(combined, indent=2) + "\n")
os.chmod(target, 0o600)
print(f"    combined outputs: {target} (JOBS_OUTPUTS for tests/e2e)")
EOF
    )
}

# Self sign-up is disabled: the end-to-end user is made by an administrator
# (AdminCreateUser without an invitation, then a permanent random password).
test_user() {
    local stage=$1 file=".deploy/$1/outputs.json"
    [[ -f $file ]] || die "$file does not exist; deploy stage '$stage' first."
    command -v aws >/dev/null || die "the AWS CLI (aws) is needed to create the test user; nothing was changed."
    local pool region username password
    pool=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["userPoolId"])' "$file")
    region=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["region"])' "$file")
    username="e2e-$stage@example.com"
    # Meets the pool's policy: 12+ characters with lower, upper, digit and symbol.
    password="$(python3 -c 'import secrets;print(secrets.token_urlsafe(24))')aA1!"
    aws cognito-idp admin-create-user --region "$region" --user-pool-id "$pool" --username "$username" \
        --message-action SUPPRESS --user-attributes Name=email,Value="$username" Name=email_verified,Value=true \
        >/dev/null 2>&1 || echo "    (user $username exists; resetting its password)"
    aws cognito-idp admin-set-user-password --region "$region" --user-pool-id "$pool" --username "$username" \
        --password "$password" --permanent
    (umask 077 && python3 - "$file" "$username" "$password" <<'EOF'
import json, os, sys
path, username, password = sys.argv[1:]
outputs = json.load(open(path))
outputs.update(username=username, password=password)
with open(path, "w") as f:
    f.write(json.dumps(outputs, indent=2) + "\n")
os.chmod(path, 0o600)
EOF
    )
    echo "==> test user $username is in $file"
}

# The state bucket cannot keep its own state before it exists: the `state`
# stack keeps local state in .deploy/bootstrap/terraform.tfstate (back it up,
# or re-import the bucket if it is lost; see docs/deploy.md).
bootstrap_state() {
    local tf; tf=$(terraform_bin)
    # Synthesized apart from cdktf/cdktf.out (which the local target runs),
    # with placeholder function packages: only the `state` stack is applied.
    local out=.deploy/bootstrap/cdktf.out zips
    zips=$(mktemp -d)
    for fn in authorizer job-processor batch-simulator job-status object-counter; do mkdir -p "$zips/$fn" && : > "$zips/$fn/bootstrap.zip"; done
    (cd cdktf && CDKTF_OUTDIR="../$out" JOBS_LAMBDA_ZIP_DIR="$zips" npm run --silent synth)
    rm -rf "$zips"
    local dir="$out/stacks/state"
    (cd "$dir" && "$tf" init -input=false) || die "$tf init failed for stack 'state' (provider unavailable); nothing was changed."
    (cd "$dir" && "$tf" apply -input=false -auto-approve)
    local bucket; bucket=$(cd "$dir" && "$tf" output -raw stateBucket)
    local region; region=$(cd "$dir" && "$tf" output -raw stateRegion)
    echo "==> state bucket: $bucket ($region). Deploy with:"
    echo "    export JOBS_STATE_BUCKET=$bucket JOBS_STATE_REGION=$region"
}

case "${1:-}" in
    preflight) preflight "$2" "$3" ;;
    apply) shift; run_stacks apply "$@" ;;
    destroy) shift; run_stacks destroy "$@" ;;
    outputs) write_outputs "$2" ;;
    test-user) test_user "$2" ;;
    bootstrap-state) bootstrap_state ;;
    account)
        if command -v aws >/dev/null; then aws sts get-caller-identity --query Account --output text 2>/dev/null || echo "(unknown)"
        else echo "${AWS_PROFILE:-of the default credentials}"; fi ;;
    *) die "usage: tools/terraform.sh preflight|apply|destroy|outputs|test-user|bootstrap-state|account ..." ;;
esac
