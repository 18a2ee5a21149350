"""The Python blocks of a Markdown page, as a reader copies them.

Every fenced ```` ```python ```` block counts, at any indentation (blocks inside
``pymdownx.tabbed`` tabs are indented), unless the line before it is an HTML comment
``<!-- not run: reason -->``: a block that cannot run here says why.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S
)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*\S.*-->")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the first line of code, 1-based
    code: str
    run: bool


def python_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start("body")) + 1
        code = textwrap.dedent(match.group("body"))
        blocks.append(Block(page, line, code, run=not _NOT_RUN.search(before)))
    return blocks


RUNNER = """
import json, sys, traceback
blocks = json.load(sys.stdin)
scope = {"__name__": "__main__"}
for page, line, code in blocks:
    try:
        exec(compile("\\n" * (line - 1) + code, page, "exec"), scope)
    except BaseException:
        traceback.print_exc()
        print(f"the block at {page}:{line} failed", file=sys.stderr)
        sys.exit(1)
"""
