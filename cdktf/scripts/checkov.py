#!/usr/bin/env python3
"""Runs checkov on every synthesized stack (cdktf/cdktf.out/stacks/*) and
fails unless every failed check is skipped inline on its own resource.

checkov's terraform_json framework ignores skip comments, so the stacks write
them where Terraform JSON allows a comment, the resource's "//" object, as a
list `"checkov": ["checkov:skip=<ID>: <reason>", ...]` (constructs/checkov.ts). A failed check
counts as skipped only on a resource carrying that line; a skip that matches
no failure is an error too, so none outlives its reason. Exit 0 only when no
check fails.

Fails closed: every stack's report must be checkov's JSON with its summary
(passed and failed counts, no parsing errors, as many failed checks listed as
counted, and some check run when the stack has resources). A crash, an empty
or truncated report, or a stack checkov could not parse stops the run with the
stack's name and checkov's stderr, instead of counting as 0 failures.

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


class CheckovError(Exception):
    """checkov gave no usable report for a stack."""


def run_checkov(checkov: str, stack_dir: Path) -> tuple[list[dict], int]:
    """The failed checks of one stack and the number of passed ones; raises
    CheckovError unless checkov produced a complete report."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    try:
        run = subprocess.run(
            [checkov, "-d", str(stack_dir), "--framework", "terraform_json", "--quiet", "--compact", "-o", "json"],
            capture_output=True, text=True, env=env,
        )
    except OSError as e:
        raise CheckovError(f"cannot run {checkov}: {e}") from e

    def fail(why: str) -> CheckovError:
        stderr = run.stderr.strip()[-2000:] or "(nothing)"
        return CheckovError(f"{why} (exit {run.returncode}); checkov's stderr:\n{stderr}")

    # checkov exits 1 when a check fails; anything else is its own failure.
    if run.returncode not in (0, 1):
        raise fail("checkov failed")
    if not run.stdout.strip():
        raise fail("checkov printed no report")
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError as e:
        raise fail(f"checkov's report is not JSON ({e})") from e
    reports = report if isinstance(report, list) else [report]
    if not reports:
        raise fail("checkov's report is empty")

    failed: list[dict] = []
    passed = 0
    for r in reports:
        summary = r.get("summary") if isinstance(r, dict) else None
        counts_ok = isinstance(summary, dict) and all(
            isinstance(summary.get(k), int) and not isinstance(summary.get(k), bool) for k in ("passed", "failed")
        )
        if not counts_ok:
            raise fail("checkov's report has no summary with passed and failed counts")
        if summary.get("parsing_errors"):
            raise fail(f"checkov could not parse {summary['parsing_errors']} file(s)")
        results = r.get("results", {})
        checks = results.get("failed_checks", []) if isinstance(results, dict) else None
        if not isinstance(checks, list) or len(checks) != summary["failed"]:
            raise fail(f"checkov's summary counts {summary['failed']} failed checks but the report lists "
                       f"{len(checks) if isinstance(checks, list) else 'none'}")
        failed += checks
        passed += summary["passed"]
    if run.returncode == 1 and not failed:
        raise fail("checkov exited 1 without a failed check")
    if passed + len(failed) == 0 and has_resources(stack_dir):
        raise fail("checkov ran no check on a stack with resources")
    return failed, passed


def has_resources(stack_dir: Path) -> bool:
    doc = json.loads((stack_dir / "cdk.tf.json").read_text())
    return any(doc.get("resource", {}).values())


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
    unchecked: list[str] = []
    for stack in stacks:
        skips = inline_skips(stack)
        used: set[tuple[str, str]] = set()
        failed = []
        try:
            checks, passed = run_checkov(args.checkov, stack)
        except CheckovError as e:
            print(f"{stack.name}: NO VALID CHECKOV REPORT: {e}", file=sys.stderr)
            unchecked.append(stack.name)
            continue
        for check in checks:
            key = resource_key(check, skips)
            if key and check["check_id"] in skips[key]:
                used.add((key, check["check_id"]))
            else:
                failed.append(check)
        unused = [(k, c) for k, ids in skips.items() for c in ids if (k, c) not in used]
        print(f"{stack.name}: {passed} passed, {len(failed)} failed, {len(used)} skipped inline, {len(unused)} unused skips")
        for check in failed:
            print(f"  FAILED {check['check_id']} {check['check_name']}: {check['resource']}")
        for key, check_id in unused:
            print(f"  UNUSED skip {check_id} on {key}: the check passes there, remove the skip")
        total_failed += len(failed) + len(unused)
    if unchecked:
        print(f"checkov: no valid report for stack(s) {', '.join(unchecked)}: they are not checked, so this run fails",
              file=sys.stderr)
        return 2
    if total_failed:
        print(f"checkov: {total_failed} problem(s)", file=sys.stderr)
        return 1
    print("checkov: 0 failed checks on every stack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
