"""What is wrong with a pasted token, said in words (issue 13, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from jwkit.cli import main
from jwkit.verify.diagnose import diagnose_token_text
from tests.verify.conftest import AUDIENCE, make_key, token_for

KEY = make_key("ES256")
TOKEN = token_for(KEY)

CASES = [
    ("bearer", f"Bearer {TOKEN}", "remove the 'Bearer ' prefix"),
    ("bearer lower", f"bearer {TOKEN}", "remove the 'bearer ' prefix"),
    ("header line", f"Authorization: Bearer {TOKEN}", "remove the 'Bearer ' prefix"),
    ("line break", TOKEN[:30] + "\n" + TOKEN[30:], "contains a line break"),
    ("crlf", TOKEN[:30] + "\r\n" + TOKEN[30:], "contains a line break"),
    ("space", TOKEN[:30] + " " + TOKEN[30:], "contains spaces"),
    ("quoted", f'"{TOKEN}"', "remove the quotes"),
    ("json", '{"sub": "x"}', "this is JSON, not a token"),
    ("pem", "-----BEGIN PUBLIC KEY-----", "PEM key or certificate"),
    ("two parts", TOKEN.rsplit(".", 1)[0], "this has 2"),
    ("jwe", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "encrypted token (JWE"),
    (
        "url-encoded",
        TOKEN.replace("-", "%2D", 1) if "-" in TOKEN else TOKEN + "%3D",
        "characters a JWT never contains",
    ),
    ("cut head", TOKEN[3:], "not a JSON header"),
    ("empty", "   ", "the token is empty"),
]


@pytest.mark.parametrize(("text", "advice"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_diagnosis(text: str, advice: str) -> None:
    assert advice in (diagnose_token_text(text) or "")


def test_a_good_token_has_no_diagnosis() -> None:
    assert diagnose_token_text(TOKEN) is None
    assert diagnose_token_text(f"  {TOKEN}\n") is None  # outer whitespace is not a slip


@pytest.mark.parametrize("command", ["decode", "verify"])
@pytest.mark.parametrize(
    ("text", "advice"),
    [
        (f"Bearer {TOKEN}", "remove the 'Bearer ' prefix"),
        (TOKEN[:30] + "\n" + TOKEN[30:], "contains a line break"),
    ],
    ids=["bearer", "line break"],
)
def test_cli_says_what_is_wrong(command: str, text: str, advice: str, tmp_path: Path) -> None:
    key_file = tmp_path / "public_key.json"
    key_file.write_text(KEY.public().to_json())
    args = ["token", command, "-"]
    if command == "verify":
        args += ["--key", str(key_file), "--audience", AUDIENCE]
    result = CliRunner().invoke(main, args, input=text)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: malformed: ")
    assert advice in result.stderr
    assert "base64url" not in result.stderr
