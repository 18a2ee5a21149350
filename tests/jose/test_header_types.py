"""Header parameters of the wrong JSON type, and lone surrogates, in every decoding path.

RFC 7515 §4.1 gives each registered header parameter a JSON type (RFC 7797 §3 adds ``b64``);
a member of any other type, ``null`` included, makes the token malformed. Strings holding an
unpaired surrogate (``"\\ud800"``) have no UTF-8 form (RFC 7493 §2.1): jwkit refuses them in
the header and in the claims. Every path must agree: :func:`jws.parse`, the
``parse_object`` hot path (with the header seen before or not), :func:`jwt.decode`,
:func:`jwt.decode_unverified` and :meth:`Verifier.verify` after its memoised route was set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jwkit import JWK, JWKSet, MalformedToken, Verifier
from jwkit.jose import jws, jwt
from jwkit.jose._fast import new_header_cache, parse_object
from jwkit.jose._json import loads_object
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_encode

from ._crypto import signing_key
from ._forge import segment

KEY = JWK.generate("HS256", kid="k1")
NOW = 1_700_000_000
CLAIMS = {"sub": "alice", "iat": NOW, "exp": NOW + 600}

_STRING = ["alg", "jku", "kid", "x5u", "x5t", "x5t#S256", "typ", "cty"]
_WRONG_FOR_STRING: list[Any] = [None, 7, 1.5, True, ["a"], {"a": "b"}]
_WRONG_FOR_ARRAY: list[Any] = [None, "a", 7, True, {"a": "b"}, [1], ["a", None], [["a"]]]
WRONG: list[tuple[str, Any]] = [
    *((name, value) for name in _STRING for value in _WRONG_FOR_STRING),
    *(("jwk", value) for value in [None, "k", 7, True, ["a"]]),
    *(("x5c", value) for value in _WRONG_FOR_ARRAY),
    *(("crit", value) for value in _WRONG_FOR_ARRAY),
    *(("b64", value) for value in [None, "false", 0, 1, [], {}]),
]


def signed(header: dict[str, Any], claims: Any = CLAIMS) -> str:
    """A token with exactly ``header``, correctly signed by KEY (so only the header or the
    claims can make it fail)."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = segment(header) + "." + b64url_encode(payload)
    signature = ALGORITHMS["HS256"].sign(signing_key(KEY), signing_input.encode())
    return signing_input + "." + b64url_encode(signature)


def _verifier() -> Verifier:
    return Verifier(
        KEY, algorithms=["HS256"], audience=None, clock=lambda: float(NOW), token_cache=False
    )


def _paths() -> dict[str, Callable[[str], object]]:
    """Every way into the decoder; the verifier has already verified a good token, so its
    memoised route (header object -> key) is set."""
    verifier = _verifier()
    verifier.verify(signed({"alg": "HS256", "kid": "k1"}))
    headers = new_header_cache()
    return {
        "parse": jws.parse,
        "parse_object": parse_object,
        "parse_object warm": lambda token: (
            parse_object(token, headers=headers),
            parse_object(token, headers=headers),
        ),
        "jws.verify": lambda token: jws.verify(token, KEY, algorithms=["HS256"]),
        "jwt.decode": lambda token: jwt.decode(token, JWKSet([KEY]), algorithms=["HS256"], now=NOW),
        "decode_unverified": jwt.decode_unverified,
        "Verifier.verify": verifier.verify,
    }


@pytest.mark.parametrize(("name", "value"), WRONG, ids=[f"{n}={v!r}" for n, v in WRONG])
def test_a_registered_header_parameter_of_the_wrong_type_is_refused_everywhere(
    name: str, value: Any
) -> None:
    header: dict[str, Any] = {"alg": "HS256", "kid": "k1", name: value}
    token = signed(header)
    for path, run in _paths().items():
        with pytest.raises(MalformedToken, match=f'"{name}"') as info:
            run(token)
        assert info.value.code == "malformed", path


def test_kid_null_is_not_the_same_as_no_kid() -> None:
    # Without kid the single key fits; with "kid": null the token is malformed.
    assert _verifier().verify(signed({"alg": "HS256"}))["sub"] == "alice"
    for path, run in _paths().items():
        with pytest.raises(MalformedToken, match='header "kid" is not a string'):
            run(signed({"alg": "HS256", "kid": None}))
        assert path


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256", "kid": "k1", "jku": "https://a.example/j", "x5u": "https://a.example/c"},
        {"alg": "HS256", "kid": "k1", "x5c": ["MIIB"], "x5t": "x", "x5t#S256": "y"},
        {"alg": "HS256", "kid": "k1", "typ": "JWT", "cty": "JWT", "b64": True},
        {"alg": "HS256", "kid": "k1", "jwk": {"kty": "oct", "k": "AA"}},
        {"alg": "HS256", "kid": "k1", "x5c": []},
        {"alg": "HS256", "kid": "k1", "unregistered": None},
    ],
)
def test_registered_parameters_of_the_right_type_are_accepted(header: dict[str, Any]) -> None:
    # (jku, x5u, jwk and x5c are carried, never used to find or fetch a key.)
    token = signed(header)
    for run in _paths().values():
        run(token)


def test_crit_of_the_right_type_still_names_an_unsupported_extension() -> None:
    token = signed({"alg": "HS256", "kid": "k1", "crit": ["exp"], "exp": 1})
    jws.parse(token)  # well-formed ...
    with pytest.raises(MalformedToken, match="unsupported critical"):
        _verifier().verify(token)  # ... but not understood (RFC 7515 §4.1.11)


# -- lone surrogates --------------------------------------------------------------------------

LONE = ["\\ud800", "\\udfff", "\\uDBFF", "a\\udc00b", "\\ude00\\ud83d"]


@pytest.mark.parametrize("escape", LONE)
@pytest.mark.parametrize("where", ["value", "name", "nested", "array"])
def test_a_lone_surrogate_in_the_claims_is_refused_everywhere(escape: str, where: str) -> None:
    text = {
        "value": '{"sub":"%s","iat":%d,"exp":%d}',
        "name": '{"%s":"x","iat":%d,"exp":%d}',
        "nested": '{"o":{"p":["%s"]},"iat":%d,"exp":%d}',
        "array": '{"aud":["x","%s"],"iat":%d,"exp":%d}',
    }[where] % (escape, NOW, NOW + 600)
    token = signed({"alg": "HS256", "kid": "k1"}, text.encode())
    for path, run in _paths().items():
        if path in ("parse", "jws.verify"):
            run(token)  # a JWS payload is bytes: these do not read it as JSON
            continue
        with pytest.raises(MalformedToken, match="lone surrogate"):
            run(token)


@pytest.mark.parametrize("escape", LONE)
def test_a_lone_surrogate_in_the_header_is_refused_everywhere(escape: str) -> None:
    header = ('{"alg":"HS256","kid":"' + escape + '"}').encode()
    token = signed({"alg": "HS256"}).split(".", 1)[1]
    token = b64url_encode(header) + "." + token
    for run in _paths().values():
        with pytest.raises(MalformedToken, match="lone surrogate"):
            run(token)


def test_a_surrogate_pair_is_one_character_and_accepted() -> None:
    # json.dumps escapes an emoji as a surrogate pair: that is text, not a lone surrogate.
    claims = {**CLAIMS, "name": "\U0001f600 \\ud800 literally"}
    token = signed({"alg": "HS256", "kid": "k1", "x": "\U0001f600"}, claims)
    assert "\\ud83d\\ude00" in json.dumps(claims)
    for path, run in _paths().items():
        run(token)
        assert path
    assert _verifier().verify(token)["name"] == claims["name"]


# -- parity: the hot path and the plain path give the same answer ----------------------------

_pieces = st.sampled_from(
    ["a", "\\u0061", "\\ud83d\\ude00", "\\ud800", "\\udfff", "\\\\ud800", "\\u00e9", "é"]
)
_strings = st.lists(_pieces, max_size=4).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(_strings, min_size=1, max_size=3, unique=True),
    values=st.lists(_strings | st.integers(), min_size=3, max_size=3),
    kid=st.none() | _strings,
    seen=st.booleans(),
)
def test_hot_and_plain_paths_agree_on_escapes_and_surrogates(
    names: list[str], values: list[Any], kid: str | None, seen: bool
) -> None:
    members = ",".join(
        f'"{name}":{json.dumps(value) if isinstance(value, int) else chr(34) + value + chr(34)}'
        for name, value in zip(names, values, strict=False)
    )
    header = '{"alg":"HS256"' + ("" if kid is None else f',"kid":"{kid}"') + "}"
    payload = ("{" + members + "}").encode()
    token = b64url_encode(header.encode()) + "." + b64url_encode(payload) + ".AAAA"
    headers = new_header_cache()
    if seen:
        try:
            parse_object(token.split(".")[0] + ".e30.", headers=headers)  # e30: "{}"
        except MalformedToken:
            pass

    def outcome(run: Callable[[], tuple[jws.ParsedJWS, dict[str, Any]]]) -> object:
        try:
            parsed, claims = run()
        except MalformedToken as exc:
            return str(exc)
        return tuple(parsed), claims

    def plain() -> tuple[jws.ParsedJWS, dict[str, Any]]:
        parsed = jws.parse(token)
        return parsed, loads_object(parsed.payload, "payload")

    assert outcome(lambda: parse_object(token, headers=headers)) == outcome(plain)
