"""The https refusal names each interface's own switch (issue 13, item 9)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from jwkit import Verifier
from jwkit.cli import main

URL = "http://127.0.0.1:9/.well-known/jwks.json"


def test_python_spelling() -> None:
    with pytest.raises(ValueError, match=r"must use https .*pass allow_insecure_http=True"):
        Verifier.from_jwks_url(URL, audience="a")


@pytest.mark.parametrize("option", ["--jwks-url", "--issuer"])
def test_cli_spelling(option: str) -> None:
    target = URL if option == "--jwks-url" else "http://127.0.0.1:9"
    result = CliRunner().invoke(main, ["token", "verify", "a.b.c", option, target])
    assert result.exit_code == 2
    assert "must use https" in result.output and "--allow-insecure-http" in result.output
    assert "allow_insecure_http=True" not in result.output


def test_the_cli_flag_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "verifier.md").read_text()
    assert "--allow-insecure-http" in doc
