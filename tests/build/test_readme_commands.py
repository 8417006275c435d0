"""Every command the README and docs/ show runs as written on the no-Nix
path: each shell block's `./just <recipe>` names a recipe of the justfile
(`just --summary`), each `./just cli <subcommand>` and `jobctl <subcommand>` a
subcommand of the command-line client (its --help), no command is the shell
builtin `jobs` (the client's old name), and bare `just` appears
only where the line says it runs inside `nix develop` (there `just` is on
PATH; elsewhere it is `bash: just: command not found`). A renamed recipe or
subcommand therefore breaks this test, not a newcomer's first session.

A line counts as inside `nix develop` when it says so (e.g. `just up   # inside
nix develop`) or follows a `nix develop` command in the same block.

Also: no committed file names a path of the machine it was written on (the
working copies live under a folder outside the repository).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy_support import ROOT, just_binary

SHELL_FENCES = ("sh", "bash", "console", "shell")
# Words that separate commands on one line.
SEPARATORS = re.compile(r"&&|\|\||[;|]")
# Assembled so that this file does not name the folder itself.
OUTSIDE_PATH = "/" + "work" + "/"


@dataclass(frozen=True)
class Command:
    source: str  # file:line
    words: tuple[str, ...]
    in_nix_develop: bool

    def __str__(self) -> str:
        return f"{self.source}: {shlex.join(self.words)}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """(first line number, fence language, lines) of each fenced shell block."""
    blocks, current, start, language = [], None, 0, ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", line)
        if fence and current is None:
            language, start, current = fence.group(2).lower(), number + 1, []
        elif fence and current is not None:
            if language in SHELL_FENCES:
                blocks.append((start, language, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def split_words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in a shown command: words are enough here
        return text.split("#", 1)[0].split()


def commands_in(path: Path) -> list[Command]:
    found = []
    for start, language, lines in shell_blocks(path):
        in_nix = False
        joined: list[tuple[int, str]] = []
        for offset, line in enumerate(lines):
            # Continuation lines belong to the command they continue.
            if joined and joined[-1][1].endswith("\\"):
                joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line.strip())
            else:
                joined.append((start + offset, line))
        for number, line in joined:
            text = line.strip()
            if language == "console":
                # Only prompt lines are commands; the rest is their output.
                if not text.startswith("$ "):
                    continue
                text = text[2:]
            marked = "nix develop" in line
            for part in SEPARATORS.split(text):
                words = split_words(part)
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                    words = words[1:]  # VAR=value before the command
                if not words:
                    continue
                found.append(Command(f"{path.relative_to(ROOT)}:{number}", tuple(words), in_nix or marked))
                if words[:2] == ["nix", "develop"] and len(words) == 2:
                    in_nix = True  # the rest of the block runs in its shell
    return found


def all_commands() -> list[Command]:
    return [c for doc in documents() for c in commands_in(doc)]


def is_just(word: str) -> bool:
    return word in ("just", "./just")


def is_jobctl(word: str) -> bool:
    return word == "jobctl" or word.endswith("/release/jobctl")


def first_operand(words: tuple[str, ...], options_with_values: set[str]) -> str | None:
    """The first word that is not an option (or an option's value)."""
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            skip = word in options_with_values
            continue
        return word
    return None


@pytest.fixture(scope="module")
def recipes() -> set[str]:
    env = dict(os.environ)
    proc = subprocess.run([just_binary(env), "--justfile", str(ROOT / "justfile"), "--summary"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.fixture(scope="module")
def cli_help() -> tuple[set[str], set[str]]:
    """The client's subcommands and its global options that take a value, from its --help."""
    binary = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "jobctl"
    if not binary.exists():
        env = dict(os.environ)
        build = subprocess.run([just_binary(env), "--justfile", str(ROOT / "justfile"), "cli-build"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        assert build.returncode == 0, build.stderr
    proc = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    commands = proc.stdout.split("Commands:", 1)[1].split("Options:", 1)[0]
    subcommands = {line.split()[0] for line in commands.splitlines() if line.strip()}
    with_values = set(re.findall(r"(--[\w-]+) <", proc.stdout))
    assert {"login", "submit", "status"} <= subcommands, proc.stdout
    assert "Usage: jobctl [OPTIONS] <COMMAND>" in proc.stdout, proc.stdout
    return subcommands, with_values


def test_the_documents_show_commands():
    commands = all_commands()
    # The parser finds what a reader sees: the quick start's `./just up` at least.
    assert any(c.words[:2] == ("./just", "up") for c in commands), [str(c) for c in commands][:20]


def test_every_recipe_the_documents_run_exists(recipes):
    missing = []
    for command in all_commands():
        if is_just(command.words[0]):
            recipe = first_operand(command.words[1:], {"--justfile", "--working-directory", "-f", "-d", "--set"})
            if recipe is not None and recipe not in recipes:
                missing.append(f"{command} (no recipe {recipe!r})")
    assert not missing, "commands that name no recipe of the justfile:\n" + "\n".join(missing)


def test_every_cli_subcommand_the_documents_run_exists(cli_help):
    subcommands, with_values = cli_help
    missing = []
    for command in all_commands():
        words = command.words
        if is_just(words[0]) and first_operand(words[1:], set()) == "cli":
            words = words[words.index("cli") + 1:]
        elif is_jobctl(words[0]):
            words = words[1:]
        else:
            continue
        sub = first_operand(words, with_values)
        if sub is not None and sub not in subcommands:
            missing.append(f"{command} (no subcommand {sub!r}; the client has {sorted(subcommands)})")
    assert not missing, "commands that name no subcommand of the client:\n" + "\n".join(missing)


def test_no_command_is_the_shell_builtin_jobs():
    # The client was `jobs` once: typed in bash or zsh, `jobs login` runs the builtin, never the client.
    builtin = [str(c) for c in all_commands() if c.words[0] == "jobs" or c.words[0].endswith("/jobs")]
    assert not builtin, "commands that run the shell builtin `jobs`, not the client `jobctl`:\n" + "\n".join(builtin)


def test_bare_just_only_inside_nix_develop():
    bare = [str(c) for c in all_commands() if c.words[0] == "just" and not c.in_nix_develop]
    assert not bare, (
        "bare `just` outside `nix develop` (on the no-Nix path it is `command not found`): "
        "write `./just`, or mark the line as inside `nix develop`:\n" + "\n".join(bare)
    )


def test_no_committed_file_names_a_path_outside_the_repository():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    offenders = []
    for rel in filter(None, listed.decode().split("\0")):
        path = ROOT / rel
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_PATH in line:
                offenders.append(f"{rel}:{number}: {line.strip()[:120]}")
    assert not offenders, "paths outside the repository in committed files:\n" + "\n".join(offenders)
