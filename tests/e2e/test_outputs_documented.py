"""docs/local-target.md lists every key of the outputs file the local target
writes: scripts and the other docs read them by those names."""

import re
from pathlib import Path

import pytest

from target import Target

DOC = Path(__file__).resolve().parents[2] / "docs" / "local-target.md"


def documented_keys() -> set[str]:
    text = DOC.read_text()
    section = text.split("### `<state-dir>/outputs.json`", 1)[1].split("\n#", 1)[0]
    keys = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            keys.update(re.findall(r"`([A-Za-z]+)`", first_cell))
    return keys


def test_every_output_of_the_local_target_is_documented(target: Target):
    if "pid" not in target.outputs:
        pytest.skip("a deployed stage's outputs file (docs/deploy.md describes it)")
    missing = sorted(set(target.outputs) - documented_keys())
    assert not missing, f"outputs.json keys missing from the table in docs/local-target.md: {missing}"
