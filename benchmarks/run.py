"""Run every benchmark in one go and write the tables to docs/benchmarks.md.

Each script prints a markdown table (and its own notes) on stdout; this runner adds the date,
the machine and the exact command, so the document always says how its numbers were made.
It also keeps every table as JSON (``docs/benchmarks/results.json``) and draws them
(``plots.py``: SVGs in ``docs/benchmarks/``, shown under each section).
Usage: ``make bench`` or ``.venv/bin/python benchmarks/run.py [name ...]``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from plots import RESULTS, plot, tables_in  # noqa: E402

DOC = HERE.parent / "docs" / "benchmarks.md"

# (script, title, timeout in seconds)
SCRIPTS = [
    ("verify.py", "Token verification (issues 2 and 3)", 900),
    ("http_auth.py", "A protected FastAPI endpoint (issue 4)", 900),
    ("server.py", "The key service under load (issue 5)", 1800),
    ("scaling.py", "How costs grow with keys and live tokens", 600),
]


def _machine() -> str:
    import cryptography

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}, {platform.platform(terse=True)}"
    )


def main(selected: list[str]) -> int:
    sections: list[str] = []
    results: list[dict[str, object]] = []
    failed = 0
    for script, title, timeout in SCRIPTS:
        name = script.removesuffix(".py")
        if selected and name not in selected:
            continue
        path = HERE / script
        if not path.exists():
            continue
        command = [sys.executable, str(path)]
        print(f"== {script}", flush=True)
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent
            )
            output, ok = proc.stdout.strip(), proc.returncode == 0
            if not ok:
                output += "\n\n```\n" + proc.stderr.strip()[-3000:] + "\n```"
        except subprocess.TimeoutExpired:
            output, ok = f"(timed out after {timeout} s)", False
        failed += not ok
        print(output, flush=True)
        results.append({"title": title, "script": script, "tables": tables_in(output)})
        sections.append(output)
    if not selected or len(sections) == len(SCRIPTS):
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        document = {"generated": stamp, "machine": _machine(), "sections": results}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        for old in RESULTS.parent.glob("*.svg"):
            old.unlink()  # a picture of a table that is gone goes too
        RESULTS.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        pictures = plot(document)
        sections = [
            f"## {r['title']}\n\nCommand: `.venv/bin/python benchmarks/{r['script']}`\n\n"
            + "".join(f"![{r['title']}](benchmarks/{n})\n\n" for n in pictures[str(r["title"])])
            + f"{output}\n"
            for output, r in zip(sections, results, strict=True)
        ]
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(
            "# Benchmarks\n\n"
            f"Latest run: {stamp}, `make bench`, on {_machine()}.\n\n"
            "Every table compares candidates measured side by side in one run: rounds are\n"
            "interleaved and each candidate keeps its best round, so ratios are what to read;\n"
            "absolute numbers depend on the machine and its load.\n\n" + "\n".join(sections)
        )
        print(f"wrote {DOC}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
