#!/usr/bin/env python3
"""Runs checkov on every synthesized stack (cdktf/cdktf.out/stacks/*) and
fails unless every failed check is skipped inline on its own resource.

checkov's terraform_json framework ignores skip comments, so the stacks write
them where Terraform JSON allows a comment, the resource's "//" object, as a
list `"checkov": ["checkov:skip=<ID>: <reason>", ...]` (constructs/checkov.ts). A failed check
counts as skipped only on a resource carrying that line; a skip that matches
no failure is an error too, so none outlives its reason. Exit 0 only when no
check fails.

    checkov.py [--checkov PATH] [STACK_DIR...]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

SKIP = re.compile(r"^checkov:skip=(CKV2?_AWS_\d+):\s*(\S.*)$")


def inline_skips(stack_dir: Path) -> dict[str, dict[str, str]]:
    """Resource name -> {check id: reason}, from the "//" key of each resource."""
    skips: dict[str, dict[str, str]] = {}
    doc = json.loads((stack_dir / "cdk.tf.json").read_text())
    for rtype, resources in doc.get("resource", {}).items():
        for name, block in resources.items():
            comment = block.get("//")
            lines = comment.get("checkov", []) if isinstance(comment, dict) else []
            for line in lines:
                match = SKIP.match(line.strip())
                if not match:
                    sys.exit(f"error: {rtype}.{name} has a malformed checkov skip: {line!r}")
                skips.setdefault(f"{rtype}.{name}", {})[match[1]] = match[2]
    return skips


def failed_checks(checkov: str, stack_dir: Path) -> list[dict]:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    run = subprocess.run(
        [checkov, "-d", str(stack_dir), "--framework", "terraform_json", "--quiet", "--compact", "-o", "json"],
        capture_output=True, text=True, env=env,
    )
    if run.returncode not in (0, 1):
        sys.exit(f"error: checkov failed on {stack_dir} (exit {run.returncode}):\n{run.stderr[-2000:]}")
    report = json.loads(run.stdout) if run.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    return [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]


def resource_key(check: dict, skips: dict[str, dict[str, str]]) -> str | None:
    """The `type.name` of the failing resource (checkov names some `resource.<name>`)."""
    resource = check.get("resource", "")
    if resource in skips:
        return resource
    name = resource.split(".", 1)[1] if "." in resource else resource
    candidates = [key for key in skips if key.split(".", 1)[1] == name]
    return candidates[0] if len(candidates) == 1 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", default="checkov")
    parser.add_argument("stacks", nargs="*", type=Path)
    args = parser.parse_args()
    stacks = args.stacks or sorted(p for p in (Path(__file__).parent.parent / "cdktf.out" / "stacks").iterdir() if p.is_dir())
    if not stacks:
        sys.exit("error: no synthesized stacks; run `just synth` first.")

    total_failed = 0
    for stack in stacks:
        skips = inline_skips(stack)
        used: set[tuple[str, str]] = set()
        failed = []
        for check in failed_checks(args.checkov, stack):
            key = resource_key(check, skips)
            if key and check["check_id"] in skips[key]:
                used.add((key, check["check_id"]))
            else:
                failed.append(check)
        unused = [(k, c) for k, ids in skips.items() for c in ids if (k, c) not in used]
        print(f"{stack.name}: {len(failed)} failed, {len(used)} skipped inline, {len(unused)} unused skips")
        for check in failed:
            print(f"  FAILED {check['check_id']} {check['check_name']}: {check['resource']}")
        for key, check_id in unused:
            print(f"  UNUSED skip {check_id} on {key}: the check passes there, remove the skip")
        total_failed += len(failed) + len(unused)
    if total_failed:
        print(f"checkov: {total_failed} problem(s)", file=sys.stderr)
        return 1
    print("checkov: 0 failed checks on every stack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
