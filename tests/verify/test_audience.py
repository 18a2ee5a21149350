"""A Verifier without ``audience=`` warns (AudienceWarning); ``audience=None`` opts out on
purpose, silently (issue 13, item 14)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

from jwkit import InvalidAudience, Verifier
from jwkit.verify.verifier import AudienceWarning
from tests.verify.conftest import AUDIENCE, make_key, token_for

KEY = make_key("ES256")
PUBLIC = KEY.public()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Verifier(PUBLIC),
        lambda: Verifier.from_jwk(PUBLIC),
        lambda: Verifier.from_jwks({"keys": [PUBLIC.to_dict()]}),
        lambda: Verifier.from_pem(PUBLIC.to_pem()),
        lambda: Verifier.from_jwks_url("https://issuer.example/jwks"),
        lambda: Verifier.from_provider("google"),
    ],
    ids=["Verifier", "from_jwk", "from_jwks", "from_pem", "from_jwks_url", "google preset"],
)
def test_no_audience_warns_at_the_caller(build: Callable[[], Verifier]) -> None:
    with pytest.warns(AudienceWarning, match=r"audience='.*audience=None") as caught:
        build().close()
    assert caught[0].filename == __file__


@pytest.mark.parametrize(
    "options",
    [{"audience": None}, {"audience": AUDIENCE}, {"audience": [AUDIENCE, "other"]}],
    ids=["opt-out", "one", "several"],
)
def test_an_explicit_audience_is_silent(options: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Verifier.from_jwk(PUBLIC, **options).close()


def test_a_preset_that_names_the_audience_is_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Verifier.from_provider("firebase", project_id="my-project").close()


def test_the_opt_out_accepts_any_audience_and_a_value_checks_it() -> None:
    token = token_for(KEY, {"aud": "https://another-api.example"})
    assert Verifier(PUBLIC, audience=None).verify(token)["sub"] == "user-1"
    with pytest.raises(InvalidAudience):
        Verifier(PUBLIC, audience=AUDIENCE).verify(token)
