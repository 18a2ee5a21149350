"""The public surface is a contract: these names are what users import."""

from __future__ import annotations

import subprocess
import sys

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
    assert expected <= set(jwkit.__all__)
    for name in jwkit.__all__:
        assert hasattr(jwkit, name), name
    assert len(set(jwkit.__all__)) == len(jwkit.__all__)


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
