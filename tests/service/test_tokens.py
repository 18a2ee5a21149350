"""The token endpoint's building blocks against the general-purpose code they stand in for."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jwkit.jose import jwt
from jwkit.jose.jwk import JWK
from jwkit.service.domain.tokens import mint, token_encoder
from jwkit.service.http.public import _parse_form, _parse_form_general


@given(
    st.lists(
        st.sampled_from(["a", "b", "=", "&", ";", "_", " ", "é", "%41", "+", ""]), max_size=12
    ).map(lambda parts: "".join(parts).encode())
)
@example(b"")
@example(b"&")
@example(b"a")
@example(b"a=")
@example(b"=a")
@example(b"a=1&a=2")
@example(b"a=1&&b=2")
@example(b"grant_type=client_credentials&scope=read")
def test_form_shortcut_parses_like_parse_qsl(raw: bytes) -> None:
    assert _parse_form(raw) == _parse_form_general(raw)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA", "HS256"])
def test_token_encoder_makes_what_jwt_encode_makes(alg: str) -> None:
    key = JWK.generate(alg, kid="k1")
    claims = {
        "iss": "https://i",
        "sub": "cli_1",
        "aud": "api",
        "exp": 2,
        "iat": 1,
        "jti": "j",
        "client_id": "cli_1",
        "scope": "read é",
    }
    token = token_encoder(key).encode(claims)
    reference = jwt.encode(claims, key, headers={"typ": "at+jwt"})
    # Same header and payload bytes (signatures differ for randomised algorithms).
    assert token.rsplit(".", 1)[0] == reference.rsplit(".", 1)[0]
    assert jwt.decode(token, key, algorithms=[alg], audience="api", typ="at+jwt", now=1) == claims
    with pytest.raises(ValueError):  # NaN is refused, as jwt.encode refuses it
        token_encoder(key).encode({**claims, "x": float("nan")})
    minted, exp = mint(key, issuer="https://i", audience="api", subject="s", ttl=60, now=5)
    header, payload = jwt.decode_unverified(minted)
    assert header == {"alg": alg, "kid": "k1", "typ": "at+jwt"}
    assert exp == 65 and payload["exp"] == 65 and payload["iat"] == 5 and payload["jti"]
