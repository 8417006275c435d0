#!/usr/bin/env bash
# Applies or destroys the synthesized stacks (cdktf/cdktf.out/stacks/<stack>)
# with OpenTofu or Terraform, for `just deploy` / `just destroy` and the
# pipeline (docs/deploy.md).
#   tools/terraform.sh preflight deploy|destroy <stage>
#   tools/terraform.sh check-quota <stage>   the Lambda concurrency quota of
#                        every region against the synthesized reservations
#   tools/terraform.sh apply|destroy <stage> <stack>...   (stacks in order;
#                        `app` stands for every region's app stack that the
#                        last synthesis defines)
#   tools/terraform.sh outputs <stage>       rewrite .deploy/<stage>/outputs.json
#   tools/terraform.sh test-user <stage>     create/reset the e2e test user
#   tools/terraform.sh bootstrap-state       create the S3 state bucket (once)
#   tools/terraform.sh account
# Every stack is initialised (providers downloaded, S3 backend reached), and
# the concurrency quota checked, before any is changed, so a missing
# provider, backend or quota stops the run before anything is applied.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=cdktf/cdktf.out
STACKS_DIR=$OUT_DIR/stacks
# The keys of .local/outputs.json that the end-to-end tests read, and where
# they come from in the stack outputs (docs/deploy.md, step 4).
OUTPUT_KEYS="apiUrl region userPoolId userPoolClientId jobsTableName countersTableName resultsBucketName jobQueueUrl deadLetterQueueUrl dashboardUrl alarmTopicArn tokenCommand eventBusName eventBusArn machineApiUrl machineClientRoleArn"

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
    if [[ $action == deploy || $action == destroy ]]; then
        [[ -n ${JOBS_STATE_BUCKET:-} ]] \
            || missing+=("JOBS_STATE_BUCKET, the Terraform state bucket that \`just bootstrap-state\` creates and prints")
        [[ -n ${JOBS_STATE_KMS_KEY:-} ]] \
            || missing+=("JOBS_STATE_KMS_KEY, the ARN of the state bucket's KMS key that \`just bootstrap-state\` prints")
    fi
    if ((${#missing[@]})); then
        local joined
        joined=$(printf '%s and ' "${missing[@]}")
        local what="$action stage '$stage'"
        [[ $action == bootstrap ]] && what="bootstrap the Terraform state bucket"
        die "cannot $what: missing ${joined% and }; nothing was changed."
    fi
}

# `app` is every region's app stack that the last synthesis defines (its
# manifest.json: a folder left from an earlier synthesis is never applied):
# app then app-<region>... to apply, the other regions first to destroy (the
# caller gives the order of the rest: cognito before app to apply, after it
# to destroy).
expand_stacks() {
    local verb=$1 stack; shift
    local manifest=$OUT_DIR/manifest.json
    [[ -f $manifest ]] || die "nothing is synthesized ($manifest is missing); run just synth arm64 <stage>; nothing was changed."
    local regional
    regional=$(python3 - "$manifest" <<'EOF'
import json, sys
stacks = json.load(open(sys.argv[1])).get("stacks", {})
print("\n".join(sorted(name for name in stacks if name.startswith("app-"))))
EOF
    )
    for stack in "$@"; do
        if [[ $stack == app ]]; then
            [[ $verb == apply ]] && echo app
            [[ -n $regional ]] && echo "$regional"
            [[ $verb == destroy ]] && echo app
        else
            echo "$stack"
        fi
    done
    return 0
}

# The synthesized stacks must be the stage's, with the S3 backend: applying a
# stack synthesized for another stage or with local state would be wrong.
check_synthesized() {
    local stage=$1 stack=$2 file="$STACKS_DIR/$2/cdk.tf.json"
    [[ -f $file ]] || die "stack '$stack' is not synthesized; run just synth arm64 $stage."
    python3 - "$file" "$stage" "$stack" "${JOBS_STATE_BUCKET:-}" "${JOBS_STATE_KMS_KEY:-}" <<'EOF' || exit 1
import json, sys
path, stage, stack, bucket, key = sys.argv[1:]
backend = json.load(open(path)).get("terraform", {}).get("backend", {})
s3 = backend.get("s3")
if not s3:
    sys.exit(f"error: stack '{stack}' was synthesized without JOBS_STATE_BUCKET (local state); set it and synthesize again; nothing was changed.")
if s3.get("key") != f"jobs/{stage}/{stack}.tfstate":
    sys.exit(f"error: stack '{stack}' was synthesized for another stage ({s3.get('key')}); run just synth arm64 {stage}; nothing was changed.")
for name, setting, value in (("JOBS_STATE_BUCKET", "bucket", bucket), ("JOBS_STATE_KMS_KEY", "kms_key_id", key)):
    if value and s3.get(setting) != value:
        sys.exit(f"error: stack '{stack}' was synthesized with another {name} ({s3.get(setting)}); run just synth arm64 {stage}; nothing was changed.")
EOF
}

# Lambda refuses a reservation that would leave the account fewer
# unreserved executions than its minimum (100, or the whole quota below 100:
# new accounts start at 10), and the apply would stop half-way. So the
# reservations of the synthesized app stacks are checked against each
# region's quota before anything is applied
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
# Reads with boto3 (in nix develop and .tools/venv): GetAccountSettings and
# GetFunctionConcurrency (a redeploy keeps the stage's own reservations).
check_quota() {
    local stage=$1; shift
    local stack files=()
    for stack in "$@"; do
        [[ $stack == app || $stack == app-* ]] && files+=("$STACKS_DIR/$stack/cdk.tf.json")
    done
    ((${#files[@]})) || return 0
    python3 -c 'import boto3' 2>/dev/null \
        || die "cannot check the Lambda concurrency quota: python3 has no boto3 (run through ./just or nix develop); nothing was changed."
    python3 - "$stage" "${files[@]}" <<'EOF' || exit 1
import json, sys
import boto3
from botocore.exceptions import BotoCoreError, ClientError

stage, files = sys.argv[1], sys.argv[2:]
# region -> {function name: reserved executions}
wanted = {}
for path in files:
    stack = json.load(open(path))
    region = stack["provider"]["aws"][0]["region"]
    for fn in stack.get("resource", {}).get("aws_lambda_function", {}).values():
        wanted.setdefault(region, {})[fn["function_name"]] = int(fn.get("reserved_concurrent_executions", -1))

for region, functions in sorted(wanted.items()):
    reserve = sum(n for n in functions.values() if n > 0)
    if reserve == 0:
        continue
    client = boto3.client("lambda", region_name=region)
    try:
        limit = client.get_account_settings()["AccountLimit"]
        already = 0
        for name in functions:
            try:
                already += client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions", 0)
            except client.exceptions.ResourceNotFoundException:
                pass
    except (BotoCoreError, ClientError) as e:
        sys.exit(f"error: cannot read the Lambda concurrency quota in {region} ({e}); nothing was changed.")
    quota, unreserved = limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]
    minimum = min(100, quota)
    left = unreserved + already - reserve
    if left < minimum:
        others = quota - unreserved - already
        needed = others + reserve + 100
        sys.exit(
            f"error: cannot deploy stage '{stage}': in {region} the account's Lambda concurrency quota is {quota} "
            f"({unreserved} unreserved) and the stage's functions reserve {reserve}, which would leave {left} unreserved "
            f"where AWS keeps at least {minimum}: request a 'Concurrent executions' quota of at least {needed} "
            f"(Service Quotas, AWS Lambda, {region}), or deploy with JOBS_RESERVED_CONCURRENCY=off; nothing was changed."
        )
    print(f"==> Lambda concurrency in {region}: quota {quota}, {reserve} reserved by stage '{stage}', {left} left unreserved")
EOF
}

run_stacks() {
    local verb=$1 stage=$2; shift 2
    local tf; tf=$(terraform_bin)
    [[ -n $tf ]] || die "no tofu or terraform on PATH; nothing was changed."
    local expanded
    expanded=$(expand_stacks "$verb" "$@") || exit 1
    mapfile -t stacks <<<"$expanded"
    for stack in "${stacks[@]}"; do check_synthesized "$stage" "$stack"; done
    if [[ $verb == apply ]]; then check_quota "$stage" "${stacks[@]}"; fi
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
    [[ -n $tf ]] || die "no tofu or terraform on PATH; nothing was changed."
    # Synthesized apart from cdktf/cdktf.out (which the local target runs),
    # and only the `state` stack (no function zips needed). cdktn creates
    # only the last folder of its output directory: make the rest.
    local out=.deploy/bootstrap/cdktf.out
    mkdir -p "$out"
    (cd cdktf && CDKTF_OUTDIR="../$out" JOBS_SYNTH_STACKS=state npm run --silent synth) \
        || die "the state stack could not be synthesized; nothing was changed."
    local dir="$out/stacks/state"
    (cd "$dir" && "$tf" init -input=false) || die "$tf init failed for stack 'state' (provider unavailable); nothing was changed."
    (cd "$dir" && "$tf" apply -input=false -auto-approve)
    local bucket region key
    bucket=$(cd "$dir" && "$tf" output -raw stateBucket)
    region=$(cd "$dir" && "$tf" output -raw stateRegion)
    key=$(cd "$dir" && "$tf" output -raw stateKmsKey)
    echo "==> state bucket: $bucket ($region), encrypted with $key. Deploy with:"
    echo "    export JOBS_STATE_BUCKET=$bucket JOBS_STATE_REGION=$region JOBS_STATE_KMS_KEY=$key"
}

case "${1:-}" in
    preflight) preflight "$2" "$3" ;;
    check-quota)
        quota_stacks=$(expand_stacks apply app) || exit 1
        mapfile -t quota_list <<<"$quota_stacks"
        check_quota "$2" "${quota_list[@]}" ;;
    apply) shift; run_stacks apply "$@" ;;
    destroy) shift; run_stacks destroy "$@" ;;
    outputs) write_outputs "$2" ;;
    test-user) test_user "$2" ;;
    bootstrap-state) bootstrap_state ;;
    account)
        if command -v aws >/dev/null; then aws sts get-caller-identity --query Account --output text 2>/dev/null || echo "(unknown)"
        else echo "${AWS_PROFILE:-of the default credentials}"; fi ;;
    *) die "usage: tools/terraform.sh preflight|check-quota|apply|destroy|outputs|test-user|bootstrap-state|account ..." ;;
esac
