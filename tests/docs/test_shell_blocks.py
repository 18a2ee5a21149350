"""The shell blocks of the site are not run (they start servers, install packages, or need a
deployment), but every ``jwkit`` command line in them names a real command and real options:
a renamed command or flag fails here, not in a reader's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from jwkit.cli import main as cli_main

pytestmark = pytest.mark.docs

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^([ ]*)```(?:sh|bash|shell|console)[^\n]*\n(.*?)^\1```", re.M | re.S)
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
_COMMAND = re.compile(r"^([A-Z_][A-Z0-9_]*=\S* +)*jwkit( |$)")


def jwkit_lines() -> list[tuple[str, list[str]]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for match in _FENCE.finditer(page.read_text(encoding="utf-8")):
            for line in match.group(2).replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip().removeprefix("$ ")
                if not _COMMAND.match(line):
                    continue
                words = shlex.split(line)
                while words and _ENV.match(words[0]):
                    words.pop(0)
                if words and words[0] == "jwkit":
                    found.append((f"{page.relative_to(DOCS)}: {line.strip()}", words[1:]))
    return found


LINES = jwkit_lines()


def test_the_docs_show_jwkit_commands() -> None:
    assert len(LINES) >= 5


@pytest.mark.parametrize("words", [w for _, w in LINES], ids=[name for name, _ in LINES])
def test_command_and_options_exist(words: list[str]) -> None:
    command: click.Command = cli_main
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"no command {name!r} in {command.name}"
        command = sub
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    known |= {"--help"}
    if isinstance(command, click.Group) or command is cli_main:
        known |= {opt for param in cli_main.params for opt in getattr(param, "opts", [])}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in known, f"{word} is not an option of {command.name}"
