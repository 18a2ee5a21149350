"""The HTTP benchmark measures what it claims: its protected endpoints really verify."""

import importlib.util
import time

import pytest
from starlette.testclient import TestClient

from jwkit.jose import jwt

from .conftest import ROOT, bearer


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("http_auth", ROOT / "benchmarks" / "http_auth.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VARIANTS = [
    "unprotected",
    "noop-dependency",
    "jwkit",
    "jwkit-middleware",
    "jwkit-middleware-state",
    "pyjwt",
]


# --distinct (issue 16) adds jwkit with its signature checks on the event loop
DISTINCT = ["pyjwt", "jwkit-offload-off", "jwkit"]


def test_every_variant_is_checked(bench):
    assert list(bench.MODES) == VARIANTS
    assert list(bench.DISTINCT_MODES) == DISTINCT


@pytest.mark.parametrize("mode", [*VARIANTS, "jwkit-offload-off"])
def test_benchmark_variants(bench, mode, jwks_url, signing_key, tokens):
    now = int(time.time())
    good = jwt.encode({"sub": "b", "aud": bench.AUDIENCE, "iat": now, "exp": now + 60}, signing_key)
    other_audience = tokens.reader
    with TestClient(bench.build_app(mode, jwks_url)) as client:
        assert client.get("/me", headers=bearer(good)).status_code == 200
        for headers in ({}, bearer(other_audience), bearer(tokens.forged)):
            expected = 200 if mode in ("unprotected", "noop-dependency") else 401
            assert client.get("/me", headers=headers).status_code == expected
