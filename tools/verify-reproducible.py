#!/usr/bin/env python3
"""Build the function zips from two clean copies of the source in different
directories and require the same sha256 for every zip.

Usage: tools/verify-reproducible.py [ARCH] [--against-tree]
  ARCH            x86_64 or arm64 (default x86_64)
  --against-tree  build one clean copy and compare it with the zips already
                  built in this tree by `just build` from the same sources
                  (the test suite does this: on CI the tree is itself a
                  clean clone, so that is two clean builds for the price of one)

Each copy holds the files git knows (tracked, plus untracked files that are
not ignored), so it is the tree a clean clone of the current state would
give, without target/, node_modules or .tools. The two copies live at
different depths ($TMPDIR/.../a/src and $TMPDIR/.../b/other/deeper/src), and
each is built with its own `just build ARCH`, exactly as a user runs it.

Both builds share one CARGO_TARGET_DIR (by default the project's target/,
override with CARGO_TARGET_DIR) so that the registry dependencies, which do
not depend on the checkout, compile at most once. That does not weaken the
check: each copy is written (with fresh mtimes) just before its build, so
Cargo finds the workspace crates (jobs-core, jobs-aws and the five
functions, i.e. everything that comes from the checkout) newer than their
last build and recompiles and relinks them from that copy; the script
asserts that from Cargo's output ("Compiling <fn> v.. (<copy>/functions/<fn>)"). Dependencies differing between
machines is what Cargo.lock (--locked), the pinned toolchain and the
remapped CARGO_HOME rule out.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["authorizer", "job-processor", "batch-simulator", "job-status", "job-commands", "object-counter", "webhook-sender"]
# The workspace libraries the functions link: compiled from each checkout too.
SHARED_CRATES = ["jobs-core", "jobs-aws"]
SKIP_TOP = {"target", ".tools", ".local", ".deploy", "result"}


def source_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode()
    files = []
    for f in sorted(set(filter(None, out.split("\0")))):
        if f.split("/", 1)[0] in SKIP_TOP or "/node_modules/" in f or f.startswith("cdktf/cdktf.out/"):
            continue
        if (ROOT / f).is_file():  # tracked but deleted in the work tree: leave out
            files.append(f)
    return files


def snapshot(files: list[str]) -> dict:
    """The source as it is now (read once, so both copies are the same tree)."""
    return {f: ((ROOT / f).read_bytes(), (ROOT / f).stat().st_mode & 0o777) for f in files}


def write_tree(tree: dict, dest: Path) -> None:
    # Fresh mtimes on purpose: Cargo decides whether a path package is stale
    # by comparing its sources' mtimes with its last build, and keys them by
    # their path relative to the workspace, so a copy written just before its
    # build is compiled again from that copy even in a shared target dir.
    for f, (data, mode) in tree.items():
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(checkout: Path, arch: str, env: dict) -> dict:
    just = shutil.which("just") or sys.exit("error: `just` is not on PATH (run through ./just or inside nix develop)")
    print(f"==> just build {arch} in {checkout}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(
        [just, "--justfile", str(checkout / "justfile"), "--working-directory", str(checkout), "build", arch],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if proc.returncode != 0:
        print(proc.stdout[-6000:])
        sys.exit(f"error: the build in {checkout} failed")
    print(f"    built in {time.monotonic() - started:.0f} s", flush=True)
    for crate in [*SHARED_CRATES, *FUNCTIONS]:
        # Proof that this checkout's sources were compiled, not reused.
        if not re.search(rf"Compiling {re.escape(crate)} v\S+ \({re.escape(str(checkout))}/functions/{re.escape(crate)}\)", proc.stdout):
            print(proc.stdout[-4000:])
            sys.exit(f"error: the build in {checkout} did not compile {crate} from that checkout")
    digests = {}
    for fn in FUNCTIONS:
        zip_path = checkout / "target" / "lambda" / arch / fn / "bootstrap.zip"
        if not zip_path.is_file():
            sys.exit(f"error: {zip_path} was not built")
        digests[fn] = sha256(zip_path)
    return digests


def tree_digests(arch: str) -> dict:
    """The zips `just build` made in this tree; they must be newer than every source file."""
    newest_source = max((ROOT / f).stat().st_mtime for f in source_files())
    digests = {}
    for fn in FUNCTIONS:
        zip_path = ROOT / "target" / "lambda" / arch / fn / "bootstrap.zip"
        if not zip_path.is_file() or zip_path.stat().st_mtime < newest_source:
            sys.exit(f"error: {zip_path} is missing or older than the sources; run `./just build {arch}` first")
        digests[fn] = sha256(zip_path)
    return digests


def main() -> int:
    args = sys.argv[1:]
    against_tree = "--against-tree" in args
    args = [a for a in args if a != "--against-tree"]
    arch = args[0] if args else "x86_64"
    if arch not in ("x86_64", "arm64") or len(args) > 1:
        sys.exit("usage: verify-reproducible.py [x86_64|arm64] [--against-tree]")
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(ROOT / "target"))
    env.pop("SOURCE_DATE_EPOCH", None)  # the recipe's fixed default, as for users
    tree = snapshot(source_files())
    first = tree_digests(arch) if against_tree else None
    base = Path(tempfile.mkdtemp(prefix="jobs-reproducible-"))
    try:
        a = base / "a" / "src"
        b = base / "b" / "other" / "deeper" / "src"
        if first is None:
            print(f"==> {len(tree)} source files, copied to {a} and then {b}; shared target dir {env['CARGO_TARGET_DIR']}")
            write_tree(tree, a)
            first = build(a, arch, env)
        else:
            print(f"==> {len(tree)} source files, copied to {b}; comparing with the zips built in {ROOT}")
        write_tree(tree, b)
        second = build(b, arch, env)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ok = True
    print(f"\n{'function':<16} sha256 of target/lambda/{arch}/<function>/bootstrap.zip")
    for fn in FUNCTIONS:
        same = first[fn] == second[fn]
        ok &= same
        print(f"{fn:<16} {first[fn]}" + ("" if same else f"\n{'':<16} {second[fn]}  DIFFERENT"))
    if not ok:
        print("error: the two clean builds gave different zips", file=sys.stderr)
        return 1
    print(f"==> reproducible: both clean builds gave identical zips ({arch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
