#!/usr/bin/env bash
# Installs the project's pinned tools into project-local folders:
#   .tools/venv          just, cargo-lambda (+ zig), moto, pytest (tools/python-tools.lock)
#   cdktf/node_modules   CDK Terrain and jest (cdktf/package-lock.json)
# Idempotent and quick when nothing changed: each step keeps a stamp of the
# lock file it installed from. Needs only python3 (>= 3.9), node (>= 20) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

stamp_of() { sha256sum "$1" | cut -c1-16; }

install_python_tools() {
    local venv=.tools/venv lock=tools/python-tools.lock
    local stamp="$venv/.installed-$(stamp_of "$lock")"
    [[ -f $stamp ]] && return 0
    command -v python3 >/dev/null || die "python3 is not installed; install Python 3.9 or newer."
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
        || die "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); this project needs Python 3.9 or newer."
    if [[ ! -x $venv/bin/python ]]; then
        step "Creating .tools/venv"
        python3 -m venv "$venv" || die "python3 -m venv failed; on Debian/Ubuntu install python3-venv."
    fi
    step "Installing pinned Python tools into .tools/venv (just, cargo-lambda, zig, moto, pytest; first run ~1 min, ~500 MB)"
    "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r "$lock"
    rm -f "$venv"/.installed-*
    touch "$stamp"
}

install_node_packages() {
    local lock=cdktf/package-lock.json
    local stamp="cdktf/node_modules/.installed-$(stamp_of "$lock")"
    [[ -f $stamp ]] && return 0
    # Inside `nix develop` node_modules is a link into the Nix store, built from the same lock.
    [[ -L cdktf/node_modules && $(readlink cdktf/node_modules) == /nix/store/* ]] && return 0
    command -v npm >/dev/null || die "npm is not installed; install Node.js 20 or newer."
    step "Installing pinned node packages into cdktf/node_modules (CDK Terrain, AWS provider bindings, jest; first run ~2 min, ~750 MB)"
    (cd cdktf && npm ci --no-audit --no-fund)
    rm -f cdktf/node_modules/.installed-*
    touch "$stamp"
}

case "${1:-all}" in
    python) install_python_tools ;;
    node) install_node_packages ;;
    all) install_python_tools; install_node_packages ;;
    *) die "usage: tools/install.sh [python|node|all]" ;;
esac
