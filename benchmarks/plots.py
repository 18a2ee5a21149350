"""Pictures of the benchmark results: SVG plots next to ``docs/benchmarks.md``.

``benchmarks/run.py`` keeps every markdown table the scripts print as JSON
(``docs/benchmarks/results.json``) and calls :func:`plot`, which draws:

* **ratio bars**, one picture per anchor: every table column named ``vs <anchor>`` (``vs
  floor``, ``vs PyJWT``, ``vs unprotected``, ``vs oidc-provider``, ``vs nginx (tuned)``, ``vs 1
  key``) as horizontal bars, one per row that has a value, with a line at 1.0 (a log scale when
  the values span more than 30x);
* **growth lines**: every table whose first column counts something (``keys in the JWKS``,
  ``live tokens``), each other numeric column against it.

Run alone: ``.venv/bin/python benchmarks/plots.py [results.json] [--from-markdown
docs/benchmarks.md]`` (the second form rebuilds ``results.json`` from the tables of the page).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
OUT = HERE.parent / "docs" / "benchmarks"
RESULTS = OUT / "results.json"
#: Columns that are a count, not a measurement: a table whose first column is one is a curve.
_COUNT_COLUMN = re.compile(r"^(keys|live tokens|projects)\b")
_SECTION = re.compile(r"^## (?P<title>.+)$", re.M)
_COMMAND = re.compile(r"`\.venv/bin/python benchmarks/(?P<script>[\w.]+\.py)")

Table = dict[str, list[Any]]  # {"header": [...], "rows": [[...], ...]}


def tables_in(text: str) -> list[Table]:
    """The markdown tables of ``text``, their cells as plain text (no ``**`` or backticks)."""
    tables: list[Table] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if len(block) >= 3 and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", block[1].strip()):
            cells = [_cells(row) for row in block]
            tables.append({"header": cells[0], "rows": cells[2:]})
        block = []
    return tables


def _cells(row: str) -> list[str]:
    return [re.sub(r"\*\*|`", "", c).strip() for c in row.strip().strip("|").split("|")]


def results_from_markdown(text: str) -> dict[str, Any]:
    """``results.json``'s shape, read back from ``docs/benchmarks.md``: one section per
    ``## `` heading, named by the script its ``Command:`` line runs (if any)."""
    sections = []
    matches = list(_SECTION.finditer(text))
    for i, match in enumerate(matches):
        body = text[match.end() : matches[i + 1].start() if i + 1 < len(matches) else len(text)]
        command = _COMMAND.search(body)
        sections.append(
            {
                "title": match.group("title"),
                "script": command.group("script") if command else None,
                "tables": tables_in(body),
            }
        )
    return {"sections": sections}


def _number(cell: str) -> float | None:
    found = re.fullmatch(r"[+]?([\d,]*\.?\d+)\s*x?", cell.strip())
    return float(found.group(1).replace(",", "")) if found else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _label(header: list[str], row: list[str], column: int) -> str:
    """A bar's name: the row's text cells before the first numeric one, joined."""
    parts = []
    for cell in row[:column]:
        if _number(cell) is not None:
            break
        if cell:
            parts.append(cell)
    return " · ".join(parts) or row[0]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"svg.hashsalt": "jwkit", "svg.fonttype": "none", "font.size": 9, "figure.dpi": 100}
    )
    return plt


def _save(fig: Any, path: Path) -> None:
    # No date in the file: a plot changes only when its numbers do.
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})


def _ratio_plot(title: str, anchor: str, bars: list[tuple[str, float]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(bars) + 1.1))
    labels = [name for name, _ in bars]
    values = [value for _, value in bars]
    colors = ["#1f4fd1" if name.lower().count("jwkit") else "#9aa5b4" for name in labels]
    ax.barh(range(len(bars)), values, color=colors)
    ax.set_yticks(range(len(bars)), labels)
    ax.invert_yaxis()
    if max(values) / max(min(values), 1e-9) > 30:
        ax.set_xscale("log")
        ax.set_xlim(right=max(values) * 4)  # room for the last value's label
    else:
        ax.set_xlim(0, max(*values, 1.0) * 1.15)
    ax.axvline(1.0, color="#b3261e", linewidth=1, linestyle="--")
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:g}", va="center", fontsize=8)
    ax.set_xlabel(f"ratio {anchor} (higher is better; dashed line: 1.0)")
    ax.set_title(title, loc="left", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, path)
    plt.close(fig)


def _growth_plot(title: str, table: Table, path: Path) -> None:
    plt = _pyplot()
    header, rows = table["header"], table["rows"]
    xs = [_number(row[0]) for row in rows]
    series = [
        (header[c], [_number(row[c]) for row in rows])
        for c in range(1, len(header))
        if not header[c].startswith("vs ") and all(_number(row[c]) is not None for row in rows)
    ]
    fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 2.6), squeeze=False)
    for ax, (name, ys) in zip(axes[0], series, strict=True):
        ax.plot(xs, ys, marker="o", color="#1f4fd1")
        ax.set_xscale("log")
        ax.set_xlabel(header[0])
        ax.set_title(name, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot(results: dict[str, Any], out: Path = OUT) -> dict[str, list[str]]:
    """Draw every picture ``results`` holds into ``out``; answer the files by section title."""
    out.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[str]] = {}
    for section in results["sections"]:
        files = made.setdefault(section["title"], [])
        if not section.get("script"):
            continue  # a section written by hand, not by a run of a script: no pictures
        stem = _slug(section["title"])
        for n, table in enumerate(section["tables"]):
            header, rows = table["header"], table["rows"]
            if not rows:
                continue
            if _COUNT_COLUMN.match(header[0]) and all(_number(r[0]) for r in rows):
                name = f"{stem}-{_slug(header[0])}.svg"
                _growth_plot(f"{section['title']}: against {header[0]}", table, out / name)
                files.append(name)
                continue
            for column, title in enumerate(header):
                if not title.startswith("vs "):
                    continue
                bars = [
                    (_label(header, row, column), value)
                    for row in rows
                    if column < len(row) and (value := _number(row[column])) is not None
                ]
                if len(bars) < 2 or not all(math.isfinite(v) and v > 0 for _, v in bars):
                    continue
                name = f"{stem}-{n + 1}-{_slug(title)}.svg"
                _ratio_plot(section["title"], title, bars, out / name)
                files.append(name)
    return made


def main(argv: list[str]) -> int:
    if argv[:1] == ["--from-markdown"]:
        page = Path(argv[1]) if len(argv) > 1 else HERE.parent / "docs" / "benchmarks.md"
        results = results_from_markdown(page.read_text(encoding="utf-8"))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    else:
        path = Path(argv[0]) if argv else RESULTS
        results = json.loads(path.read_text(encoding="utf-8"))
    for title, files in plot(results).items():
        for name in files:
            print(f"{title}: docs/benchmarks/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
