"""`./just` on a machine whose Node.js is missing or too old installs the pinned one.

The cdktn CLI needs Node >= 22.19 and @cdktn/provider-aws >= 22.11; Node 20 is
end of life. tools/install.sh (`node-runtime`, run by ./just before anything
else) keeps a new enough machine Node, and otherwise downloads the pinned
release (tools/versions.json "nodeRuntime") with the machine's npm, unpacks it
into .tools/node only if its sha512 is the pinned one, and ./just puts it
first on PATH.

Offline: the real ./just and tools/install.sh run in a copy of the project's
layout, with stand-ins for the machine's node (an old or new version), for npm
(its `pack` writes a tarball made here) and for the pinned just; the pinned
integrity is that tarball's. Downloading the real package is what ./just does
on a first run (README "Reproducible builds").
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PINNED = "22.23.5"
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine().lower()]


def tarball(version: str) -> bytes:
    """An npm package like node-linux-<arch>: package/bin/node (here a script reporting `version`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text, mode in (
            ("package/bin/node", f"#!/bin/sh\necho v{version}\n", 0o755),
            ("package/LICENSE", "MIT\n", 0o644),
            ("package/include/node/node.h", "/* not unpacked */\n", 0o644),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def project(tmp_path) -> Path:
    """./just, tools/install.sh and a versions.json pinning the test tarball;
    the Python tools counted as installed; a stand-in just that reports its node."""
    proj = tmp_path / "proj"
    (proj / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "just", proj / "just")
    shutil.copy(ROOT / "tools" / "install.sh", proj / "tools" / "install.sh")
    versions = json.loads((ROOT / "tools" / "versions.json").read_text())
    runtime = versions["nodeRuntime"]
    assert runtime["version"] == PINNED, "update PINNED with tools/versions.json"
    runtime["packages"][ARCH]["integrity"] = integrity(tarball(PINNED))
    (proj / "tools" / "versions.json").write_text(json.dumps(versions))
    (proj / "tools" / "python-tools.lock").write_text("# stand-in\n")
    venv = proj / ".tools" / "venv" / "bin"
    venv.mkdir(parents=True)
    stamp = hashlib.sha256(b"# stand-in\n").hexdigest()[:16]
    (proj / ".tools" / "venv" / f".installed-{stamp}").touch()
    just = venv / "just"
    just.write_text('#!/bin/sh\necho "node=$(command -v node) $(node --version)"\n')
    just.chmod(0o755)
    return proj


def machine(tmp_path: Path, node: str | None, npm: bool, tgz: bytes | None = None) -> dict:
    """An environment whose PATH has the commands install.sh uses, plus a
    stand-in node reporting `node` and a stand-in npm whose `pack` writes `tgz`."""
    bin_dir = tmp_path / "machine-bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "dirname", "uname", "sha256sum", "cut", "rm", "mkdir", "ls", "tar", "gzip", "touch", "cat", "cp"):
        found = shutil.which(tool)
        assert found, f"{tool} is needed"
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    if node:
        script = bin_dir / "node"
        script.write_text(f'#!/bin/sh\ncase "$*" in *versions.node*) echo {node} ;; *) echo v{node} ;; esac\n')
        script.chmod(0o755)
    calls = tmp_path / "npm-calls"
    if npm:
        (tmp_path / "package.tgz").write_bytes(tgz if tgz is not None else tarball(PINNED))
        script = bin_dir / "npm"
        script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n[ "$1" = pack ] && cp {tmp_path / "package.tgz"} ./pinned.tgz\n')
        script.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "calls": str(calls)}


def run(proj: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in env.items() if k != "calls"}
    return subprocess.run([str(proj / "just"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_an_old_node_gets_the_pinned_one_first_on_path_with_progress(project, tmp_path):
    env = machine(tmp_path, node="20.20.2", npm=True)
    proc = run(project, env)
    assert proc.returncode == 0, proc.stderr
    # The recipes see the pinned node, and stdout stays clean (TOKEN=$(./just token)).
    assert proc.stdout.strip() == f"node={project / '.tools/node/bin/node'} v{PINNED}"
    progress = [line for line in proc.stderr.splitlines() if "==>" in line]
    assert any(f"Node.js 20.20.2 is older than 22.19: installing Node.js {PINNED}" in line for line in progress), proc.stderr
    assert any("Downloading npm package" in line for line in progress)
    assert any(f"Node.js {PINNED} installed in .tools/node" in line for line in progress)
    assert Path(env["calls"]).read_text().split()[:1] == ["pack"]
    assert not (project / ".tools/node/include").exists(), "only bin/node and LICENSE are unpacked"
    # A second run neither downloads nor prints anything.
    Path(env["calls"]).unlink()
    again = run(project, env)
    assert again.returncode == 0 and again.stderr == "" and not Path(env["calls"]).exists()
    assert again.stdout == proc.stdout


def test_a_tarball_with_another_sha512_is_refused_and_nothing_is_installed(project, tmp_path):
    env = machine(tmp_path, node="20.20.2", npm=True, tgz=tarball("22.23.6-tampered"))
    proc = run(project, env)
    assert proc.returncode != 0
    error = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "but tools/versions.json pins sha512-" in error[0] and error[0].endswith("not installed."), proc.stderr
    assert not (project / ".tools/node").exists()
    assert "node=" not in proc.stdout, "just must not run after a failed install"


def test_a_new_enough_node_is_kept_and_nothing_is_downloaded(project, tmp_path):
    env = machine(tmp_path, node="22.19.0", npm=True)
    proc = run(project, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"node={tmp_path / 'machine-bin' / 'node'} v22.19.0"
    assert not Path(env["calls"]).exists() and not (project / ".tools/node").exists()


def test_no_node_and_no_npm_says_what_to_install(project, tmp_path):
    proc = run(project, machine(tmp_path, node=None, npm=False))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: Node.js is not installed, and there is no npm to download Node.js 22.23.5 with: "
        "install Node.js 22.19 or newer, or any Node.js with npm.")
