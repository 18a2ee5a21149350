"""The public surface is a contract: these names are what users import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import jwkit
from jwkit import errors


def test_public_names() -> None:
    expected = {
        "JWK", "JWKSet", "Claims", "ClaimsPolicy", "jws", "jwt", "__version__",
        "JWKitError", "JWKError", "KeySourceError", "InvalidToken", "MalformedToken",
        "TokenTooLarge", "UnsupportedAlgorithm", "AlgorithmNotAllowed", "KeyNotFound",
        "InvalidSignature", "InvalidType", "ClaimError", "ExpiredToken", "NotYetValid",
        "InvalidIssuer", "InvalidAudience", "MissingClaim", "InsufficientScope",
        "TokenRevoked", "TokenSuspended", "StatusUnavailable",
    }  # fmt: skip
    expected |= {"MultiVerifier", "Verifier", "providers"}
    # DPoP (RFC 9449): the verifier and its errors.
    expected |= {
        "DPoPVerifier", "DPoPRequired", "InvalidDPoPProof", "DPoPProofReplayed",
        "DPoPKeyMismatch", "UseDPoPNonce",
    }  # fmt: skip
    # Exactly these: a new public name is a decision, made here on purpose.
    assert sorted(jwkit.__all__) == sorted(expected)
    for name in jwkit.__all__:
        assert hasattr(jwkit, name), name
    assert len(set(jwkit.__all__)) == len(jwkit.__all__)


# Each JOSE module's public names, exactly. The verify hot path's tuning helpers
# (parse_object, checker_for, adopt_claims, the header cache) live in the private
# jwkit.jose._fast and are in none of these.
JOSE_PUBLIC = {
    "jwkit.jose": ["Claims", "ClaimsPolicy", "JWK", "JWKSet", "algorithms", "jws", "jwt"],
    "jwkit.jose.algorithms": [
        "ALGORITHMS", "ASYMMETRIC_ALGORITHMS", "Algorithm", "CURVES", "Checker", "CurveInfo",
        "ECDSAAlgorithm", "EdDSAAlgorithm", "HMACAlgorithm", "PrivateKey", "PublicKey",
        "RSAPKCS1Algorithm", "RSAPSSAlgorithm",
    ],
    "jwkit.jose.b64": ["b64url_decode", "b64url_encode", "b64url_uint", "uint_b64url"],
    "jwkit.jose.jwk": ["JWK", "JWKSet"],
    "jwkit.jose.jws": [
        "DEFAULT_MAX_SIZE", "ParsedJWS", "VerifiedJWS", "check_algorithms", "check_header",
        "encode_header", "parse", "protected_header", "select_key", "sign", "verify",
        "verify_signature",
    ],
    "jwkit.jose.jwt": [
        "Claims", "ClaimsPolicy", "Encoder", "as_names", "decode", "decode_unverified",
        "encode", "parse_claims",
    ],
    "jwkit.jose.keycheck": [
        "MAX_RSA_BITS", "MIN_RSA_BITS", "check_ed25519_public", "check_rsa_public",
        "has_roca_fingerprint", "looks_like_asymmetric_key",
    ],
    "jwkit.jose.statuslist": ["DEFAULT_MAX_BYTES", "INVALID", "SUSPENDED", "VALID", "StatusList"],
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(JOSE_PUBLIC))
def test_jose_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(JOSE_PUBLIC[module_name])
    for name in module.__all__:
        assert hasattr(module, name), name


def test_every_jose_module_is_listed_or_private() -> None:
    import pathlib

    root = pathlib.Path(jwkit.__file__).parent / "jose"
    public = {p.stem for p in root.glob("*.py") if not p.stem.startswith("_")}
    assert {f"jwkit.jose.{name}" for name in public} | {"jwkit.jose"} == set(JOSE_PUBLIC)


def test_error_codes_are_stable() -> None:
    codes = {
        errors.MalformedToken: "malformed",
        errors.TokenTooLarge: "token_too_large",
        errors.UnsupportedAlgorithm: "unsupported_algorithm",
        errors.AlgorithmNotAllowed: "algorithm_not_allowed",
        errors.KeyNotFound: "key_not_found",
        errors.InvalidSignature: "invalid_signature",
        errors.ExpiredToken: "expired",
        errors.NotYetValid: "not_yet_valid",
        errors.InvalidIssuer: "invalid_issuer",
        errors.InvalidAudience: "invalid_audience",
        errors.MissingClaim: "missing_claim",
        errors.ClaimError: "invalid_claim",
        errors.InvalidType: "invalid_type",
        errors.JWKError: "invalid_key",
        errors.KeySourceError: "jwks_unavailable",
        errors.InsufficientScope: "insufficient_scope",
        errors.TokenRevoked: "revoked",
        errors.TokenSuspended: "suspended",
        errors.StatusUnavailable: "status_unavailable",
    }
    for cls, code in codes.items():
        assert cls.code == code
        assert issubclass(cls, errors.JWKitError)
        assert cls().code == code
    # Issue 12's contract: the three status errors are token refusals (401, not 503).
    for cls in (errors.TokenRevoked, errors.TokenSuspended, errors.StatusUnavailable):
        assert issubclass(cls, errors.InvalidToken)


def test_import_jwkit_pulls_no_framework_or_server() -> None:
    code = (
        "import sys, jwkit, jwkit.jose;"
        "bad = [m for m in ('fastapi','starlette','flask','django','sqlalchemy','jwkit.service')"
        " if m in sys.modules]; print(bad); raise SystemExit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_jose_imports_nothing_of_jwkit_but_errors() -> None:
    import ast
    import pathlib

    root = pathlib.Path(jwkit.__file__).parent / "jose"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module == "errors", f"{path.name} imports ..{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("jwkit"), path.name


def test_jose_modules_import_each_other_one_way() -> None:
    # Keys use algorithms, never the reverse; jws uses keys; the private hot path (_fast)
    # sits on top. A cycle (even a function-local import) fails here.
    import ast
    import pathlib

    root = pathlib.Path(jwkit.__file__).parent / "jose"
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        deps = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module)
                else:
                    deps.update(alias.name for alias in node.names)
    assert "jwk" not in graph["algorithms"]
    done: list[str] = []
    while len(done) < len(graph):
        ready = [m for m in sorted(graph) if m not in done and graph[m] <= set(done)]
        assert ready, f"import cycle among {sorted(set(graph) - set(done))}"
        done.extend(ready)
