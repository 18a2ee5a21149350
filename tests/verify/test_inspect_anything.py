"""``jwkit jwks inspect`` takes whatever a person has: a JWK, a JWKS, a PEM public or private
key, a certificate, a URL of any of them, or an issuer (issue 13, item 7)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from jwkit import JWK
from jwkit.cli import main
from tests.support.jwks_server import JWKSServer


def _inspect(*args: str) -> Result:
    return CliRunner().invoke(main, ["jwks", "inspect", *args])


def _certificate(days_from_now: int) -> bytes:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwkit test")])
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=days_from_now)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=2))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The files `jwkit keys generate` writes, plus a PEM public key."""
    result = CliRunner().invoke(main, ["keys", "generate", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    key = JWK.from_pem((tmp_path / "private.pem").read_bytes())
    (tmp_path / "public.pem").write_bytes(key.public().to_pem())
    return {p.name: p for p in tmp_path.iterdir()}


@pytest.mark.parametrize("name", ["public_key.json", "public.pem"])
def test_public_key_files_are_clean(files: dict[str, Path], name: str) -> None:
    result = _inspect(str(files[name]), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["keys"][0]["kty"] == "EC"
    assert report["keys"][0]["alg"] == "ES256"


@pytest.mark.parametrize("name", ["private.pem", "private.jwk.json"])
def test_private_key_files_are_named_and_the_public_part_is_offered(
    files: dict[str, Path], name: str
) -> None:
    result = _inspect(str(files[name]), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [f["code"] for f in report["findings"]] == ["private_key"]
    public = report["public_jwk"]
    assert "d" not in public and public["kty"] == "EC"
    expected = json.loads(files["public_key.json"].read_text())
    assert {k: public[k] for k in ("x", "y", "kid")} == {k: expected[k] for k in ("x", "y", "kid")}
    human = _inspect(str(files[name]))
    assert "verifiers need only its public part" in human.stdout
    private_d = JWK.from_pem(files["private.pem"].read_bytes()).to_dict(private=True)["d"]
    assert private_d not in human.stdout + result.stdout  # the secret is never printed


def test_a_shared_secret_is_named(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text(JWK.from_secret(b"s" * 32, kid="h1").to_json(private=True))
    result = _inspect(str(path), "--json")
    assert result.exit_code == 1
    assert [f["code"] for f in json.loads(result.stdout)["findings"]] == ["shared_secret"]
    assert "c3Nz" not in result.stdout  # base64url of the secret bytes


@pytest.mark.parametrize(("days", "code"), [(-1, None), (-30, "certificate_expired"),
                                            (30, "certificate_not_yet_valid")])  # fmt: skip
def test_certificates(tmp_path: Path, days: int, code: str | None) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(_certificate(days))
    result = _inspect(str(path), "--json")
    report = json.loads(result.stdout)
    assert report["kind"] == "certificate" and report["keys"][0]["crv"] == "P-256"
    assert [f["code"] for f in report["findings"]] == ([code] if code else [])
    assert result.exit_code == (1 if code else 0)


def test_a_pkcs8_private_key(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "key.pem"
    path.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    report = json.loads(_inspect(str(path), "--json").stdout)
    assert report["kind"] == "private_key" and report["public_jwk"]["alg"] == "ES384"


def test_not_a_key_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = _inspect(str(path))
    assert result.exit_code == 3
    assert "expected a JWKS, a JWK, a PEM key or certificate" in result.stderr
    assert "Expecting value" not in result.stderr


def test_urls_serving_a_jwk_or_a_pem(jwks_server: JWKSServer, files: dict[str, Path]) -> None:
    jwks_server.serve_json(json.loads(files["public_key.json"].read_text()), path="/key.json")
    jwks_server.serve_json(files["public.pem"].read_bytes(), path="/key.pem")
    for path in ("/key.json", "/key.pem"):
        result = _inspect(jwks_server.url + path, "--json", "--allow-insecure-http")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["keys"][0]["kty"] == "EC"


def test_an_issuer_with_only_rfc8414_metadata(jwks_server: JWKSServer) -> None:
    key = make_es_key()
    jwks_server.serve_jwks({"keys": [{**key.public().to_dict(), "use": "sig", "alg": "ES256"}]})
    metadata = {"issuer": jwks_server.url, "jwks_uri": jwks_server.jwks_url}
    jwks_server.serve_json(metadata, path="/.well-known/oauth-authorization-server")
    result = _inspect(jwks_server.url, "--json", "--allow-insecure-http")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["keys"][0]["kid"] == key.kid


def make_es_key() -> JWK:
    return JWK.generate("ES256")
