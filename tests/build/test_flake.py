"""The Nix flake and its lock, and that the Nix and non-Nix paths pin the same tools.

This machine cannot fetch the flake's inputs (no GitHub), so the flake is
parsed, its inputs are evaluated (a plain attribute set, no fetching) and
compared with flake.lock, and `nix flake metadata --offline
--no-update-lock-file` must accept the lock as it is. Then every version the
flake takes (tools/versions.json, rust-toolchain.toml) is compared with what
`./just` installs (tools/python-tools.lock, cdktf/package-lock.json).

Needs nix-instantiate and nix: those on PATH, else Debian's nix-bin unpacked
into .tools/nix by `tools/install.sh nix` (apt-get download, no root). nix
runs with its store under .tools/nix/store, so nothing is written to /nix.
Where neither is possible the suite fails, saying so: it never skips.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NIX_FLAGS = ["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""]


def read(rel: str) -> str:
    return (ROOT / rel).read_text()


@pytest.fixture(scope="session")
def nix() -> dict:
    """nix-instantiate and nix (from PATH, else unpacked into .tools/nix), and
    the store option that keeps their store in the project."""
    if shutil.which("nix-instantiate") and shutil.which("nix"):
        paths = {"instantiate": shutil.which("nix-instantiate"), "nix": shutil.which("nix")}
    else:
        print("nix is not on PATH: using Debian's nix-bin unpacked into .tools/nix")
        proc = subprocess.run([str(ROOT / "tools/install.sh"), "nix"], stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 0, (
            f"tools/install.sh nix failed:\n{proc.stderr}\n"
            "Install Nix (Debian/Ubuntu: `sudo apt-get install nix-bin`), or run inside `nix develop`."
        )
        paths = {"instantiate": str(ROOT / ".tools/nix/bin/nix-instantiate"), "nix": str(ROOT / ".tools/nix/bin/nix")}
    store = ROOT / ".tools/nix/store"
    store.mkdir(parents=True, exist_ok=True)
    return {**paths, "store": ["--store", str(store)]}


@pytest.fixture(scope="session")
def versions() -> dict:
    return json.loads(read("tools/versions.json"))


@pytest.fixture(scope="session")
def python_pins() -> dict:
    pins = {}
    for line in read("tools/python-tools.lock").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- the flake and its lock ---------------------------------------------------


def test_flake_nix_parses(nix):
    proc = run([nix["instantiate"], *nix["store"], "--parse", str(ROOT / "flake.nix")])
    assert proc.returncode == 0, f"flake.nix does not parse:\n{proc.stderr}"


@pytest.fixture(scope="session")
def declared_inputs(nix) -> dict:
    proc = run([nix["instantiate"], *nix["store"], "--eval", "--strict", "--json", "-E",
                f"(import {ROOT / 'flake.nix'}).inputs"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def github_original(url: str) -> dict:
    m = re.fullmatch(r"github:([^/]+)/([^/]+)(?:/(.+))?", url)
    assert m, f"input URL {url} is not github:owner/repo[/ref]"
    original = {"owner": m.group(1), "repo": m.group(2), "type": "github"}
    if m.group(3):
        original["ref"] = m.group(3)
    return original


def test_flake_lock_locks_exactly_the_declared_inputs(declared_inputs):
    lock = json.loads(read("flake.lock"))
    assert lock["version"] == 7 and lock["root"] == "root"
    nodes = lock["nodes"]
    root_inputs = nodes["root"]["inputs"]
    assert set(root_inputs) == set(declared_inputs), "flake.lock's root inputs differ from flake.nix's inputs"
    assert set(nodes) == {"root", *root_inputs.values()}, "flake.lock has nodes no input uses"
    for name, decl in declared_inputs.items():
        node = nodes[root_inputs[name]]
        assert node["original"] == github_original(decl["url"]), f"{name}: original differs from flake.nix's URL"
        locked = node["locked"]
        assert locked["type"] == "github"
        assert (locked["owner"], locked["repo"]) == (node["original"]["owner"], node["original"]["repo"])
        assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"]), f"{name}: rev is not a commit"
        assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"]), f"{name}: narHash malformed"
        assert isinstance(locked["lastModified"], int)
        follows = {k: v["follows"].split("/") for k, v in decl.get("inputs", {}).items() if "follows" in v}
        assert node.get("inputs", {}) == follows, f"{name}: the lock's follows differ from flake.nix's"


def test_nix_accepts_the_lock_without_relocking(nix, tmp_path):
    # A copy holding only the flake: the work tree's untracked flake would be
    # invisible to a git+file flake, and a path: flake of the repo would copy target/.
    for f in ("flake.nix", "flake.lock"):
        shutil.copy(ROOT / f, tmp_path / f)
    proc = run([nix["nix"], *nix["store"], *NIX_FLAGS, "flake", "metadata", "--offline", "--no-update-lock-file",
                "--json", f"path:{tmp_path}"], env=dict(os.environ, HOME=str(tmp_path)))
    assert proc.returncode == 0, f"nix flake metadata rejects flake.lock:\n{proc.stderr}"
    meta = json.loads(proc.stdout)
    assert meta["locks"] == json.loads(read("flake.lock"))


# --- one Rust version --------------------------------------------------------


def test_rust_version_comes_from_rust_toolchain_toml_only():
    toolchain = read("rust-toolchain.toml")
    channel = re.search(r'^channel\s*=\s*"([^"]+)"', toolchain, re.M).group(1)
    assert re.fullmatch(r"\d+\.\d+\.\d+", channel), "pin an exact Rust release, not a channel name"
    assert tuple(map(int, channel.split("."))) >= (1, 94, 1), "the AWS SDK crates need Rust >= 1.94.1"
    flake = read("flake.nix")
    assert "fromRustupToolchainFile ./rust-toolchain.toml" in flake
    assert not re.search(r"rust-bin\.(stable|beta|nightly)", flake), "the flake must not name a Rust version"
    msrv = re.search(r'^rust-version\s*=\s*"([^"]+)"', read("Cargo.toml"), re.M).group(1)
    assert tuple(map(int, msrv.split("."))) <= tuple(map(int, channel.split(".")))


# --- the Nix path pins what the non-Nix path installs -------------------------


def test_crates_io_tools_equal_the_python_tools_lock(versions, python_pins):
    flake = read("flake.nix")
    for name, pin in versions["fromCratesIo"].items():
        if name.startswith("_"):
            continue
        assert python_pins.get(pin["pypi"]) == pin["version"], (
            f"{name}: flake builds {pin['version']}, tools/python-tools.lock has {pin['pypi']}=={python_pins.get(pin['pypi'])}")
        assert re.fullmatch(r"[0-9a-f]{64}", pin["sha256"])
        lock = ROOT / "tools" / "nix" / f"{name}-{pin['version']}.Cargo.lock"
        assert lock.is_file(), f"{lock} (the crate's own Cargo.lock) is missing"
        assert re.search(rf'name = "{re.escape(name)}"\nversion = "{re.escape(pin["version"])}"', lock.read_text())
        assert f'fromCratesIo "{name}"' in flake


def test_nixpkgs_tools_match_the_non_nix_pins(versions, python_pins):
    nixpkgs = {k: v for k, v in versions["fromNixpkgs"].items() if not k.startswith("_")}
    flake = read("flake.nix")
    for name in nixpkgs:
        assert f'pinned "{name}"' in flake, f"flake.nix does not assert the version of {name}"

    def matches(want: str, got: str) -> bool:
        return got == want or got.startswith(want + ".")

    # CDK Terrain: the CLI from nixpkgs and the library in package-lock.json.
    lock = json.loads(read("cdktf/package-lock.json"))
    cdktn = lock["packages"]["node_modules/cdktn"]["version"]
    assert nixpkgs["cdktn-cli"] == cdktn, f"nix cdktn-cli {nixpkgs['cdktn-cli']} != cdktn {cdktn} in package-lock.json"
    # Node: the CLI needs >= 22.19; the non-Nix path runs the synth with the
    # user's node, which package.json requires to be >= 20.
    engines = json.loads(read("cdktf/package.json"))["engines"]["node"]
    assert int(nixpkgs["nodejs"].split(".")[0]) >= 22
    assert int(nixpkgs["nodejs"].split(".")[0]) >= int(re.search(r"\d+", engines).group(0))
    # moto: the same minor release on both paths.
    assert matches(nixpkgs["moto"], python_pins["moto"]), f"moto {python_pins['moto']} vs nix {nixpkgs['moto']}"
    # checkov: the same major release (nixpkgs lags by minors; README explains).
    if "checkov" in python_pins:
        assert matches(nixpkgs["checkov"], python_pins["checkov"])
    # OpenTofu: the non-Nix path has none; the README names the version to install.
    assert re.fullmatch(r"\d+\.\d+\.\d+", nixpkgs["opentofu"])
    readme = read("README.md")
    section = readme[readme.index("## Reproducible builds"):]
    assert f"OpenTofu {nixpkgs['opentofu']}" in section


# --- reproducible zips -------------------------------------------------------


def test_just_build_is_locked_and_normalizes_zips():
    justfile = read("justfile")
    recipe = justfile[justfile.index("\nbuild arch"):]
    recipe = recipe[: recipe.index("\n\n")]
    assert "--locked" in recipe and "SOURCE_DATE_EPOCH" in recipe and "--remap-path-prefix" in recipe
    assert "tools/normalize-zip.py" in recipe


def test_normalized_zip_is_deterministic(tmp_path):
    import zipfile

    digests = set()
    for i, mtime in enumerate((1_000_000_000, 1_700_000_000)):
        bootstrap = tmp_path / f"bootstrap{i}"
        bootstrap.write_bytes(b"\x7fELF same binary")
        os.utime(bootstrap, (mtime, mtime))
        z = tmp_path / f"{i}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            zf.write(bootstrap, "bootstrap")
        subprocess.run(["python3", str(ROOT / "tools/normalize-zip.py"), str(z)], check=True,
                       env=dict(os.environ, SOURCE_DATE_EPOCH="315532800"), capture_output=True)
        with zipfile.ZipFile(z) as zf:
            [info] = zf.infolist()
            assert info.filename == "bootstrap" and info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100755
        digests.add(z.read_bytes())
    assert len(digests) == 1


# --- the flake's outputs cover every function --------------------------------


def test_every_function_crate_is_built_by_the_flake_just_build_and_the_reproducibility_check():
    """A function added to the workspace must get its zip from both build paths."""
    crates = sorted(p.parent.parent.name for p in (ROOT / "functions").glob("*/src/main.rs"))
    flake = re.search(r"^\s*functions = \[([^\]]*)\];", read("flake.nix"), re.M)
    assert flake, "flake.nix has no `functions = [ ... ];` list"
    assert sorted(re.findall(r'"([^"]+)"', flake.group(1))) == crates, "flake.nix's functions differ from functions/*"
    just = re.search(r"^functions := \"([^\"]*)\"", read("justfile"), re.M)
    assert just, "the justfile has no `functions := \"...\"` variable"
    assert sorted(just.group(1).split()) == crates, "the justfile's functions differ from functions/*"
    reproducible = re.search(r"^FUNCTIONS = \[([^\]]*)\]", read("tools/verify-reproducible.py"), re.M)
    assert sorted(re.findall(r'"([^"]+)"', reproducible.group(1))) == crates


def test_the_flake_declares_per_function_zips_checks_and_a_complete_dev_shell():
    flake = read("flake.nix")
    # Both Lambda architectures, arm64 (the default deployment one) included.
    assert re.search(r"arm64 = \{ target = \"aarch64-unknown-linux-musl\"", flake)
    assert re.search(r"x86_64 = \{ target = \"x86_64-unknown-linux-musl\"", flake)
    assert 'zips = zipsFor "arm64" // zipsFor "x86_64";' in flake
    assert "default = allZips;" in flake
    assert "craneLib.buildDepsOnly" in flake and "SOURCE_DATE_EPOCH=" in flake
    checks = flake[flake.index("checks = {"):flake.index("devShells.default")]
    for name in ("clippy", "rustfmt", "nextest", "zips", "jest"):
        assert re.search(rf"^\s*{name} = ", checks, re.M), f"checks.{name} is missing"
    assert "--deny warnings" in checks
    shell = flake[flake.index("devShells.default"):]
    shell = shell[shell.index("packages = ["):shell.index("];")]
    for tool in ("rustToolchain", "cargo-lambda", "pkgs.zig", "just", "nodejs", "cdktn-cli", "opentofu", "python", "checkov"):
        assert re.search(rf"^\s*{re.escape(tool)}$", shell, re.M), f"the dev shell lacks {tool}"
