"""``benchmarks/plots.py`` draws what the benchmarks measured (no timing here): ratio bars per
``vs <anchor>`` column and growth lines for tables that count keys or tokens, from a small
sample; and the committed pictures are those of the committed results."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.benchmarks import load_script

ROOT = Path(__file__).resolve().parents[2]
VERIFY_FLOOR = "token-verification-issues-2-and-3-1-vs-floor.svg"

SAMPLE = """## Token verification (issues 2 and 3)

Command: `.venv/bin/python benchmarks/verify.py`

| alg | candidate | ops/s | µs/op | vs floor | vs PyJWT |
|---|---|---|---|---|---|
| ES256 | cryptography verify() (floor) | 12,743 | 78.47 | 1.000 |  |
| ES256 | jwkit jwt.decode | 10,613 | 94.22 | 0.841 | 1.66x |
| ES256 | jwkit Verifier (token cache hit) | 1,418,757 | 0.70 | 110.018 | 218.54x |
| ES256 | PyJWT | 6,443 | 155.20 | 0.507 |  |

## How costs grow with keys and live tokens

Command: `.venv/bin/python benchmarks/scaling.py`

| keys in the JWKS | verify ops/s | verify µs | vs 1 key | JWKS parse µs |
|---|---|---|---|---|
| 1 | 13,466 | 74.3 | 1.000 | 19.6 |
| 16 | 12,561 | 79.6 | 0.933 | 272.2 |
| 256 | 13,151 | 76.0 | 0.977 | 5,049.5 |

| live tokens | status list compressed KB | as base64url in the token KB |
|---|---|---|
| 10,000 | 0.2 | 0.2 |
| 1,000,000 | 13.9 | 18.6 |
"""


@pytest.fixture(scope="module")
def plots() -> ModuleType:
    return load_script("plots")


def _texts(svg: Path) -> str:
    root = ET.parse(svg).getroot()  # well-formed SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))


def test_tables_are_read_as_cells(plots: ModuleType) -> None:
    results = plots.results_from_markdown(SAMPLE)
    first, second = results["sections"]
    assert first["script"] == "verify.py" and second["script"] == "scaling.py"
    assert first["tables"][0]["header"][4] == "vs floor"
    assert first["tables"][0]["rows"][1] == [
        "ES256", "jwkit jwt.decode", "10,613", "94.22", "0.841", "1.66x",
    ]  # fmt: skip
    assert [len(s["tables"]) for s in results["sections"]] == [1, 2]


def test_sample_results_are_drawn(plots: ModuleType, tmp_path: Path) -> None:
    made = plots.plot(plots.results_from_markdown(SAMPLE), tmp_path)
    assert made == {
        "Token verification (issues 2 and 3)": [
            "token-verification-issues-2-and-3-1-vs-floor.svg",
            "token-verification-issues-2-and-3-1-vs-pyjwt.svg",
        ],
        "How costs grow with keys and live tokens": [
            "how-costs-grow-with-keys-and-live-tokens-keys-in-the-jwks.svg",
            "how-costs-grow-with-keys-and-live-tokens-live-tokens.svg",
        ],
    }
    bars = _texts(tmp_path / VERIFY_FLOOR)
    for label in ("ES256 · jwkit jwt.decode", "ES256 · PyJWT", "0.841", "110.018"):
        assert label in bars
    keys = _texts(tmp_path / "how-costs-grow-with-keys-and-live-tokens-keys-in-the-jwks.svg")
    for column in ("verify ops/s", "verify µs", "JWKS parse µs", "keys in the JWKS"):
        assert column in keys
    assert "vs 1 key" not in keys  # a ratio of the plotted rates: not a panel of its own
    assert "status list compressed KB" in _texts(
        tmp_path / "how-costs-grow-with-keys-and-live-tokens-live-tokens.svg"
    )
    # No date in the files: the same numbers give the same bytes.
    again = tmp_path / "again"
    plots.plot(plots.results_from_markdown(SAMPLE), again)
    first = (tmp_path / VERIFY_FLOOR).read_bytes()
    assert first == (again / VERIFY_FLOOR).read_bytes()


def test_committed_pictures_are_those_of_the_committed_results(
    plots: ModuleType, tmp_path: Path
) -> None:
    committed = json.loads((ROOT / "docs" / "benchmarks" / "results.json").read_text())
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    # results.json holds the page's tables
    assert plots.results_from_markdown(page)["sections"] == [
        {k: s[k] for k in ("title", "script", "tables")} for s in committed["sections"]
    ]
    made = plots.plot(committed, tmp_path)
    names = sorted(n for files in made.values() for n in files)
    assert names == sorted(p.name for p in (ROOT / "docs" / "benchmarks").glob("*.svg"))
    shown = re.findall(r"\]\(benchmarks/([^)]+\.svg)\)", page)
    assert sorted(shown) == names
