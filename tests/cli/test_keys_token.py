"""`jwkit keys generate`, `jwkit token sign|decode` and `jwkit demo`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from jwkit import JWK, jwt
from jwkit.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_generate_writes_files_with_safe_modes(runner: CliRunner, tmp_path: Path, alg: str) -> None:
    result = runner.invoke(
        main, ["keys", "generate", "--alg", alg, "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["alg"] == alg
    for name in ("private.jwk.json", "private.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    public = json.loads((tmp_path / "public_key.json").read_text())
    assert public["kid"] == info["kid"] and "d" not in public
    assert JWK.from_dict(public).thumbprint() == info["kid"]


def test_generate_custom_kid_and_bad_alg(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["keys", "generate", "--kid", "k1", "--out", str(tmp_path)])
    assert result.exit_code == 0 and result.stdout.strip() == "k1"
    result = runner.invoke(main, ["keys", "generate", "--alg", "none"])
    assert result.exit_code == 2


def test_sign_then_decode(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(main, ["keys", "generate", "--alg", "ES256", "--out", str(tmp_path)])
    result = runner.invoke(
        main,
        ["token", "sign", "--key", str(tmp_path / "private.jwk.json"), "--sub", "bob",
         "--iss", "https://i", "--aud", "a1", "--aud", "a2", "--ttl", "2h",
         "--claims", '{"role": "admin"}'],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    public = JWK.from_json((tmp_path / "public_key.json").read_text())
    claims = jwt.decode(token, public, algorithms=["ES256"], issuer="https://i", audience="a2")
    assert claims["role"] == "admin" and claims["exp"] - claims["iat"] == 7200

    decoded = runner.invoke(main, ["token", "decode", token, "--json"])
    assert decoded.exit_code == 0
    assert json.loads(decoded.stdout)["verified"] is False
    human = runner.invoke(main, ["token", "decode", "-"], input=token + "\n")
    assert "UNVERIFIED" in human.output and '"sub": "bob"' in human.output


def test_sign_with_pem_and_errors(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(main, ["keys", "generate", "--alg", "EdDSA", "--out", str(tmp_path)])
    ok = runner.invoke(main, ["token", "sign", "--key", str(tmp_path / "private.pem")])
    assert ok.exit_code == 0 and ok.stdout.count(".") == 2
    public_only = runner.invoke(main, ["token", "sign", "--key", str(tmp_path / "public_key.json")])
    assert public_only.exit_code == 3
    missing = runner.invoke(main, ["token", "sign", "--key", str(tmp_path / "nope.json")])
    assert missing.exit_code == 3
    bad_claims = runner.invoke(
        main, ["token", "sign", "--key", str(tmp_path / "private.pem"), "--claims", "[1]"]
    )
    assert bad_claims.exit_code == 2
    bad_ttl = runner.invoke(
        main, ["token", "sign", "--key", str(tmp_path / "private.pem"), "--ttl", "soon"]
    )
    assert bad_ttl.exit_code == 2


def test_decode_garbage_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(main, ["token", "decode", "not.a.token"])
    assert result.exit_code == 1
    assert "malformed" in result.output


def test_demo_and_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jwkit.cli", "demo"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "verified claims" in result.stdout and '"sub": "user-42"' in result.stdout
