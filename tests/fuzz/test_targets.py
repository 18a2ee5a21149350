"""The in-process fuzz targets under hypothesis: a bounded run in the suite.

Each target (:mod:`tests.fuzz.targets`) gets random bytes, JSON-shaped inputs and mutations
of its seeds; only :class:`~jwkit.JWKitError` may escape jwkit, and the checks inside the
targets (hot and plain paths agree, imported keys are usable, status lists round-trip) must
hold. ``make fuzz`` runs the same targets under atheris for much longer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from . import targets

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = targets.seeds()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def mutations(draw: Any, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes inserted, deleted, replaced or the end cut off."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        byte = bytes([draw(st.integers(0, 255))])
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        if action == "insert":
            data = data[:at] + byte + data[at:]
        elif action == "delete":
            data = data[:at] + data[at + 1 :]
        elif action == "replace":
            data = data[:at] + byte + data[at + 1 :]
        else:
            data = data[:at]
    return data


def inputs(name: str) -> st.SearchStrategy[bytes]:
    return mutations(SEEDS[name]) | st.binary(max_size=400)


@pytest.mark.parametrize("name", ["token", "jwk", "statuslist"])
@BOUNDED
@given(data=st.data())
def test_target_raises_only_jwkit_errors(name: str, data: st.DataObject) -> None:
    targets.TARGETS[name](data.draw(inputs(name)))


@BOUNDED
@given(
    header=st.fixed_dictionaries(
        {"alg": st.sampled_from(["HS256", "HS384", "ES256", "none"]) | json_values},
        optional={
            "kid": st.sampled_from(["hs", "es"]) | json_values,
            "typ": st.sampled_from(["at+jwt", "JWT", "application/at+jwt"]) | json_values,
            "crit": json_values,
            "b64": json_values,
            "x5c": json_values,
        },
    ),
    claims=st.fixed_dictionaries(
        {},
        optional={
            "iss": st.just(targets.ISSUER) | json_values,
            "aud": st.sampled_from(["api", ["api", "x"], []]) | json_values,
            "sub": st.just("alice") | json_values,
            "azp": st.just("client") | json_values,
            "exp": st.integers(targets.NOW - 100, targets.NOW + 100) | json_values,
            "nbf": st.integers(targets.NOW - 100, targets.NOW + 100) | json_values,
            "iat": st.integers(targets.NOW - 5000, targets.NOW + 100) | json_values,
        },
    ),
    escaped=st.sampled_from(["", "\\ud800", "\\ud83d\\ude00", "\\u0000"]),
)
@example(header={"alg": "HS256", "kid": None}, claims={"sub": "alice"}, escaped="")
@example(header={"alg": "HS256"}, claims={"sub": "alice"}, escaped="\\udfff")
def test_structured_tokens_reach_the_claims_checks(
    header: dict[str, Any], claims: dict[str, Any], escaped: str
) -> None:
    # Signed with the target's HMAC key (an empty signature part), so the claims are read.
    payload = json.dumps(claims).encode()
    if escaped:
        payload = payload[:-1] + (b", " if claims else b"") + f'"e":"{escaped}"}}'.encode()
    targets.fuzz_token_parts(json.dumps(header).encode() + b"\xff" + payload + b"\xff")


@BOUNDED
@given(data=mutations(SEEDS["token_parts"]))
def test_mutated_token_parts(data: bytes) -> None:
    targets.fuzz_token_parts(data)


def test_the_seeds_are_accepted() -> None:
    # The targets start from valid inputs: a verifier with every check on accepts the seed.
    token = SEEDS["token"][0].decode()
    for verifier in targets._VERIFIERS:
        assert verifier.verify(token)["sub"] == "alice"
