#!/usr/bin/env bash
# Applies or destroys the synthesized stacks (cdktf/cdktf.out/stacks/<stack>)
# with OpenTofu or Terraform, for `just deploy` / `just destroy`.
#   tools/terraform.sh preflight deploy|destroy <stage>
#   tools/terraform.sh apply|destroy <stage> <stack>...   (stacks in order)
#   tools/terraform.sh account
# Every stack is initialised (providers downloaded) before any is changed, so
# a missing provider or backend stops the run before anything is applied.
set -euo pipefail
cd "$(dirname "$0")/.."

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

preflight() {
    local action=$1 stage=$2 missing=()
    [[ -n $(terraform_bin) ]] || missing+=("an OpenTofu or Terraform binary on PATH (tofu or terraform; nix develop provides tofu)")
    have_credentials || missing+=("AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)")
    if ((${#missing[@]})); then
        local joined
        joined=$(printf '%s and ' "${missing[@]}")
        die "cannot $action stage '$stage': missing ${joined% and }; nothing was changed."
    fi
}

run_stacks() {
    local verb=$1 stage=$2; shift 2
    local tf; tf=$(terraform_bin)
    local outputs=".deploy/$stage"
    mkdir -p "$outputs"
    for stack in "$@"; do
        [[ -f cdktf/cdktf.out/stacks/$stack/cdk.tf.json ]] || die "stack '$stack' is not synthesized; run just synth."
        echo "==> $tf init ($stack)"
        (cd "cdktf/cdktf.out/stacks/$stack" && "$tf" init -input=false) \
            || die "$tf init failed for stack '$stack' (provider or backend unavailable); nothing was changed."
    done
    for stack in "$@"; do
        echo "==> $tf $verb ($stack, stage $stage)"
        (cd "cdktf/cdktf.out/stacks/$stack" && "$tf" "$verb" -input=false -auto-approve)
        if [[ $verb == apply ]]; then
            (cd "cdktf/cdktf.out/stacks/$stack" && "$tf" output -json) > "$outputs/$stack.json"
            echo "    outputs: $outputs/$stack.json"
        else
            rm -f "$outputs/$stack.json"
        fi
    done
}

case "${1:-}" in
    preflight) preflight "$2" "$3" ;;
    apply) shift; run_stacks apply "$@" ;;
    destroy) shift; run_stacks destroy "$@" ;;
    account)
        if command -v aws >/dev/null; then aws sts get-caller-identity --query Account --output text 2>/dev/null || echo "(unknown)"
        else echo "${AWS_PROFILE:-of the default credentials}"; fi ;;
    *) die "usage: tools/terraform.sh preflight|apply|destroy|account ..." ;;
esac
