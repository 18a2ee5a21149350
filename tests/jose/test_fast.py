"""The verify hot path's header cache (jwkit.jose._fast): owned, bounded, same answers."""

from __future__ import annotations

import pytest

from jwkit import JWK, AlgorithmNotAllowed, jwt
from jwkit.jose import jws
from jwkit.jose._fast import (
    HEADER_CACHE_SIZE,
    checker_for,
    new_header_cache,
    parse_cached,
    parse_object,
)

from ._forge import segment

KEY = JWK.from_secret(b"k" * 32, "HS256", kid="k1")


def test_a_cached_header_is_the_same_object_and_the_same_answer() -> None:
    token = jwt.encode({"sub": "a", "exp": 2_000_000_000}, KEY)
    headers = new_header_cache()
    first = parse_cached(token, headers=headers)
    second = parse_cached(token, headers=headers)
    assert second.header is first.header  # what the verifier's route memo relies on
    assert tuple(second) == tuple(jws.parse(token))
    assert jws.parse(token).header is not jws.parse(token).header  # no hidden global
    assert len(headers) == 1


def test_the_cache_is_bounded_and_emptied_when_full() -> None:
    headers = new_header_cache()
    for i in range(HEADER_CACHE_SIZE):
        parse_object(segment({"alg": "HS256", "kid": str(i)}) + ".e30.", headers=headers)
    assert len(headers) == HEADER_CACHE_SIZE
    parse_object(segment({"alg": "HS256", "kid": "one more"}) + ".e30.", headers=headers)
    assert len(headers) == 1


def test_jwt_decode_keeps_headers_on_the_key_not_in_a_global() -> None:
    key = JWK.from_secret(b"s" * 32, "HS256", kid="s1")
    other = JWK.from_secret(b"t" * 32, "HS256", kid="t1")
    token = jwt.encode({"sub": "a", "exp": 2_000_000_000}, key)
    assert jwt.decode(token, key, algorithms=["HS256"])["sub"] == "a"
    assert jwt.decode(token, key, algorithms=["HS256"])["sub"] == "a"
    assert len(key._headers) == 1 and not other._headers


def test_checker_for_refuses_what_verify_signature_refuses() -> None:
    token = jwt.encode({"sub": "a", "exp": 2_000_000_000}, KEY)
    parsed = jws.parse(token)
    assert checker_for(KEY, "HS256")(parsed.signing_input, parsed.signature) is True
    with pytest.raises(AlgorithmNotAllowed) as via_fast:
        checker_for(KEY, "HS384")
    with pytest.raises(AlgorithmNotAllowed) as via_jws:
        jws.verify_signature(parsed._replace(header={"alg": "HS384"}), KEY)
    assert str(via_fast.value) == str(via_jws.value)
