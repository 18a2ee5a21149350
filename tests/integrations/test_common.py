"""The shared core: header parsing, scope checks, error mapping, configuration."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from jwkit.errors import (
    ExpiredToken,
    InsufficientScope,
    JWKError,
    KeySourceError,
    MalformedToken,
)
from jwkit.integrations import (
    Authenticator,
    Denial,
    ErrorResponses,
    NoToken,
    asgi_authorization,
    bearer_token,
    normalize_scopes,
)

from .conftest import ROOT, Tokens


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "Bearer", "Bearer ", "Bearer \t ", "Basic YTpi", "Token abc", "bearerabc"],
)
def test_no_credentials_is_no_token(header):
    with pytest.raises(NoToken):
        bearer_token(header)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER   abc", "abc"),
        ("Bearer\tabc ", "abc"),
        ("Bearer abc==", "abc=="),
        ("Bearer  abc", "abc"),
        ("Bearer abc\t", "abc"),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    "header", ["Bearer a b", "Bearer a\tb", "Bearer a,b", "Bearer a,Bearer b", "Bearer a, Bearer b"]
)
def test_two_credentials_are_malformed(header):
    with pytest.raises(MalformedToken):
        bearer_token(header)


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ([], None),
        ([(b"host", b"x")], None),
        ([(b"authorization", b"Bearer a")], "Bearer a"),
        ([(b"Authorization", b"Bearer a")], "Bearer a"),  # ASGI says lower case; accept any
        ([(b"authorization", b"Bearer a"), (b"AUTHORIZATION", b"Bearer b")], "Bearer a, Bearer b"),
        ([(b"authorizatio", b"x"), (b"authorization2", b"y")], None),
    ],
)
def test_asgi_authorization(headers, value):
    assert asgi_authorization(headers) == value


def test_normalize_scopes():
    assert normalize_scopes(None) == frozenset()
    assert normalize_scopes("read  write") == {"read", "write"}
    assert normalize_scopes(["a:b", "c"]) == {"a:b", "c"}
    for bad in (['has"quote'], ["sp ace"], [""], ["back\\slash"], [1]):
        with pytest.raises(ValueError):
            normalize_scopes(bad)


def test_error_responses_are_validated_and_frozen():
    r = ErrorResponses(no_token_body={"message": "login first"}, unavailable_status=502)
    assert r.no_token_body == {"message": "login first"}
    with pytest.raises(TypeError):
        r.no_token_body["message"] = "x"  # type: ignore[index]
    with pytest.raises(ValueError):
        ErrorResponses(invalid_token_status=200)
    with pytest.raises(ValueError):
        ErrorResponses(invalid_token_status=True)
    with pytest.raises(TypeError):
        ErrorResponses(invalid_token_body=["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ErrorResponses(invalid_token_body={"x": object()})


def test_authenticator_rejects_bad_setup(verifier):
    with pytest.raises(TypeError):
        Authenticator(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Authenticator(verifier, realm='a"b')
    with pytest.raises(ValueError):
        Authenticator(verifier, scopes=['bad"scope'])
    with pytest.raises(TypeError):
        Authenticator(verifier, responses={"no_token_status": 401})  # type: ignore[arg-type]


def test_deny_mapping(verifier):
    auth = Authenticator(verifier, realm="shop")
    d = auth.deny(NoToken())
    assert (d.status, dict(d.body), d.code) == (401, {"error": "No token"}, "no_token")
    assert d.headers == {"WWW-Authenticate": 'Bearer realm="shop"'}

    d = auth.deny(ExpiredToken())
    assert (d.status, dict(d.body)) == (401, {"error": "Invalid or expired token"})
    assert d.www_authenticate == (
        'Bearer realm="shop", error="invalid_token", error_description="expired"'
    )

    d = auth.deny(InsufficientScope(required=("admin", "write")))
    assert (d.status, dict(d.body)) == (403, {"error": "Insufficient scope"})
    assert d.www_authenticate == (
        'Bearer realm="shop", error="insufficient_scope", '
        'error_description="insufficient_scope", scope="admin write"'
    )

    for exc in (KeySourceError(url="http://x"), JWKError()):
        d = auth.deny(exc)
        assert (d.status, dict(d.body), d.headers) == (
            503,
            {"error": "Authentication temporarily unavailable"},
            {},
        )
    assert json.loads(d.body_bytes()) == {"error": "Authentication temporarily unavailable"}


def test_custom_texts_and_statuses(verifier):
    responses = ErrorResponses(
        no_token_body={"message": "sign in"},
        invalid_token_status=419,
        unavailable_status=502,
    )
    auth = Authenticator(verifier, responses=responses)
    assert auth.deny(NoToken()).body == {"message": "sign in"}
    assert auth.deny(ExpiredToken()).status == 419
    assert auth.deny(KeySourceError()).status == 502


def test_check_with_a_real_verifier(verifier, tokens: Tokens):
    auth = Authenticator(verifier, scopes="read")
    claims = auth.check(f"Bearer {tokens.reader}")
    assert not isinstance(claims, Denial)
    assert claims.sub == "alice"
    assert "read" in claims.scopes

    denied = auth.check(f"Bearer {tokens.reader}", frozenset({"read", "admin"}))
    assert isinstance(denied, Denial) and denied.status == 403
    assert 'scope="admin read"' in (denied.www_authenticate or "")

    for header, code in [
        (None, "no_token"),
        (f"Bearer {tokens.expired}", "expired"),
        (f"Bearer {tokens.forged}", "invalid_signature"),
        ("Bearer " + "a" * 100_000, None),
    ]:
        result = auth.check(header)
        assert isinstance(result, Denial), header
        assert result.status == 401
        if code:
            assert result.code == code


@pytest.mark.anyio
async def test_check_async_with_a_real_verifier(verifier, tokens: Tokens):
    auth = Authenticator(verifier, scopes=["read"])
    claims = await auth.check_async(f"Bearer {tokens.admin}")
    assert not isinstance(claims, Denial)
    assert claims.scopes >= {"read", "admin"}
    denied = await auth.check_async("Bearer x.y.z")
    assert isinstance(denied, Denial) and denied.code == "malformed"


def test_check_unavailable(down_verifier, tokens: Tokens):
    denied = Authenticator(down_verifier).check(f"Bearer {tokens.reader}")
    assert isinstance(denied, Denial) and denied.status == 503


def test_a_bug_below_is_a_401_never_a_500(caplog):
    class Broken:
        def verify(self, token: str):
            raise ZeroDivisionError("bug")

        async def verify_async(self, token: str):
            raise ZeroDivisionError("bug")

    auth = Authenticator(Broken())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="jwkit.integrations"):
        denied = auth.check("Bearer abc")
    assert isinstance(denied, Denial)
    assert (denied.status, denied.code) == (401, "invalid_token")
    assert "bug" in caplog.text or "ZeroDivisionError" in caplog.text


def test_importing_jwkit_never_imports_a_framework():
    code = (
        "import sys, jwkit, jwkit.integrations, jwkit.integrations._common\n"
        "import jwkit.verify\n"
        "bad = sorted(m for m in ('fastapi', 'starlette', 'flask', 'django', 'werkzeug')"
        " if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "header",
    [
        "Bearer \xe9\xff\x00",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
        "Bearer ....",
        "Bearer " + "A" * 20_000 + ".B.C",
        "Bearer e30.e30.e30",
        "Bearer =.=.=",
    ],
)
def test_hostile_tokens_are_401(verifier, header):
    result = Authenticator(verifier).check(header)
    assert isinstance(result, Denial)
    assert result.status == 401
    assert result.www_authenticate and 'error="invalid_token"' in result.www_authenticate
