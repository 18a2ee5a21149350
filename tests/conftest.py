"""Fixtures every test folder may use: keys for each algorithm and a frozen clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from jwkit import JWK

ALL_ALGS = (
    "ES256", "ES384", "ES512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "EdDSA",
    "HS256", "HS384", "HS512",
)  # fmt: skip

_KEYS: dict[str, JWK] = {}


def private_key(alg: str) -> JWK:
    """One private key per algorithm for the whole session (RSA keys are slow to make)."""
    if alg not in _KEYS:
        rsa_twin = {"RS": "PS", "PS": "RS"}.get(alg[:2])
        twin = rsa_twin + alg[2:] if rsa_twin else None
        if twin in _KEYS:
            _KEYS[alg] = _KEYS[twin].replace(alg=alg)  # reuse the RSA modulus
        else:
            _KEYS[alg] = JWK.generate(alg)
    return _KEYS[alg]


def verification_key(alg: str) -> JWK:
    key = private_key(alg)
    return key if key.is_symmetric else key.public()


@pytest.fixture(params=ALL_ALGS)
def alg(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


class FrozenClock:
    """A clock the test moves by hand; pass ``clock.now`` where jwkit takes ``now``."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    yield FrozenClock(float(int(time.time())))
