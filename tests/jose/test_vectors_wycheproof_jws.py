"""Project Wycheproof JOSE vectors, run through jwkit's public API.

* ``json_web_signature_test.json``: a token and one JWK per case.
* ``json_web_key_test.json``: a token and a JWK *Set* per case.

Every case is verified with ``jwkit.JWK`` / ``jwkit.JWKSet`` and ``jwkit.jose.jws.verify``. The
allow-list handed to ``verify`` is *every* algorithm jwkit supports, on purpose: the cases about
algorithm substitution must then be rejected because the algorithm is bound to the key, not
because a narrow allow-list happens to exclude the attacker's choice.

A case labelled ``invalid`` passes when jwkit raises a token or key error at any step (import
of the key or set, or verification) — never any other exception. A case labelled ``valid``
passes when verification returns the payload that the token carries.

Where the upstream label contradicts the RFCs (or the file contradicts itself), the case is
decided on the RFCs' side in :data:`JWS_OVERRIDES`; nothing else is overridden.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from jwkit import JWK, JWKSet
from jwkit.errors import InvalidToken, JWKError
from jwkit.jose import jws
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_decode

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "wycheproof" / "testvectors_v1"
JWS_FILE = VECTORS / "json_web_signature_test.json"
JWK_FILE = VECTORS / "json_web_key_test.json"

#: The allow-list for every case: all of jwkit's algorithms, so that only the key decides.
ALL_ALGORITHMS = sorted(ALGORITHMS)


@dataclass(frozen=True)
class Override:
    """jwkit's decision for a case whose upstream label is wrong, and why."""

    upstream: str  # the label in the file, checked by test_overrides_still_apply
    result: str  # what jwkit must do instead
    reason: str


#: The eight Wycheproof JWS labels that contradict each other or the RFCs, each decided on the
#: RFCs' side. ``test_overrides_still_apply`` fails if upstream data changes under this table.
JWS_OVERRIDES: dict[int, Override] = {
    346: Override(
        "valid",
        "invalid",
        "RFC 7520 Figure 20 is a PS384 token, but the key in this group says alg PS256. "
        "RFC 7517 §4.4: 'alg' names the algorithm intended for use with the key; RFC 8725 §3.1: "
        "each key is used with exactly one algorithm and that is checked on every operation. "
        "The same file's tcIds 332-340 demand exactly this rejection.",
    ),
    350: Override(
        "valid",
        "invalid",
        "Same as 346 with key_ops instead of use: a PS384 token against a key restricted to PS256 "
        "(RFC 7517 §4.4, RFC 8725 §3.1).",
    ),
    347: Override(
        "valid",
        "invalid",
        "RFC 7520 Figure 27 is an ES512 token; the key says alg 'ES521', which is not a "
        "registered JWS algorithm (RFC 7518 §3.1 and §7.1 register ES512 for P-521). A key "
        "bound to an unknown algorithm verifies nothing (RFC 7517 §4.4, RFC 8725 §3.1); "
        "json_web_key_test tcId 19 rejects 'ES521' too. Treating it as an alias would be "
        "guessing.",
    ),
    351: Override(
        "valid",
        "invalid",
        "Same as 347 with key_ops instead of use: key alg 'ES521' is unregistered "
        "(RFC 7518 §3.1, §7.1).",
    ),
    367: Override(
        "invalid",
        "valid",
        "The token is byte-for-byte the one of tcId 357 (labelled valid): it carries no padding "
        "at all, the padding the comment describes was lost upstream (C2SP/wycheproof issue "
        "#236). It is a correct compact JWS (RFC 7515 §7.1) with a correct MAC (§5.2).",
    ),
    370: Override(
        "invalid",
        "valid",
        "Byte-identical to tcId 357 like 367 (C2SP/wycheproof #236): correctly encoded and MACed "
        "(RFC 7515 §5.2, §7.1).",
    ),
    372: Override(
        "valid",
        "invalid",
        "'?' inside the header segment is not base64url (RFC 7515 §2, RFC 4648 §5). RFC 7515 "
        "§5.2 step 2 decodes the header 'following the restriction that no ... additional "
        "characters have been used', and step 8 MACs the signing input as transmitted, for "
        "which this MAC is wrong.",
    ),
    373: Override(
        "valid",
        "invalid",
        "'?' inside the payload segment is not base64url (RFC 7515 §2, RFC 4648 §5; §5.2 step 6 "
        "forbids additional characters), and the MAC does not match the transmitted signing "
        "input (§5.2 step 8).",
    ),
}

# Cases where jwkit is deliberately stricter than these two files: none. tcId 17 (a JSON
# serialization; jwkit parses the compact form only, RFC 7515 §7.1) is labelled invalid
# upstream as well, so it needs no override.

#: Error codes a rejected case may carry, by tcId range, where the reason for rejection is
#: unambiguous. Elsewhere any token or key error is accepted.
_SIGNATURE = frozenset({"invalid_signature"})
_MALFORMED = frozenset({"malformed"})
_NONE = frozenset({"unsupported_algorithm", "algorithm_not_allowed"})
_KEY_REFUSES = frozenset({"key_not_found", "algorithm_not_allowed", "invalid_key"})


def _expected_codes(tc_id: int) -> frozenset[str] | None:
    if tc_id in (2, 19, 34) or 46 <= tc_id <= 258 or 276 <= tc_id <= 330:
        # A modified signature or padding under the right key: only the signature is wrong.
        return _SIGNATURE if tc_id not in (317, 318, 319) else _SIGNATURE | _MALFORMED
    if tc_id in (5, 22, 37):
        return _SIGNATURE  # modified payload
    if tc_id in (8, 25, 40):
        # The modification lands in the header's kid: the key is not the one named.
        return _SIGNATURE | {"key_not_found"}
    if 341 <= tc_id <= 344 or tc_id == 16:
        return _NONE
    if 331 <= tc_id <= 340:
        # Odd: header PS512, signature made with another algorithm. Even: header names the
        # other algorithm, which the PS512 key must refuse.
        return _SIGNATURE if tc_id % 2 else _KEY_REFUSES
    if 353 <= tc_id <= 356:
        return _KEY_REFUSES  # key for encryption only
    if tc_id in (360, 361, 362, 363, 364, 365, 366, 368, 369, 371, 372, 373, 374, 375):
        return _MALFORMED  # not strict base64url
    if 379 <= tc_id <= 401:
        return _SIGNATURE | _MALFORMED  # r||s of the wrong length or out of range
    return None


def _id(prefix: str, test: dict[str, Any]) -> str:
    comment = re.sub(r"[^A-Za-z0-9]+", "-", test["comment"]).strip("-")
    return f"{prefix}-tc{test['tcId']}" + (f"-{comment}" if comment else "")


@cache
def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _jws_cases() -> list[Any]:
    params = []
    for group in _load(JWS_FILE)["testGroups"]:
        # Verify with the public key when there is one, else with the (HMAC) secret.
        key = group.get("public") or group["private"]
        for test in group["tests"]:
            override = JWS_OVERRIDES.get(test["tcId"])
            expected = override.result if override else test["result"]
            params.append(
                pytest.param(
                    key, test["jws"], expected, test["tcId"], id=_id("wycheproof-jws", test)
                )
            )
    return params


def _jwk_cases() -> list[Any]:
    params = []
    for group in _load(JWK_FILE)["testGroups"]:
        keyset = group.get("public") or group["private"]
        for test in group["tests"]:
            params.append(
                pytest.param(keyset, test["jws"], test["result"], id=_id("wycheproof-jwk", test))
            )
    return params


def _payload_of(token: str) -> bytes:
    return b64url_decode(token.split(".")[1])


@pytest.mark.parametrize("as_set", [False, True], ids=["as-jwk", "in-jwkset"])
@pytest.mark.parametrize(("key", "token", "expected", "tc_id"), _jws_cases())
def test_wycheproof_jws(
    key: dict[str, Any], token: str, expected: str, tc_id: int, as_set: bool
) -> None:
    """Each case twice: with the key on its own, and with the key as a one-key JWK Set (the
    set path selects the key by kid, or by algorithm when the token has none)."""

    def verify() -> jws.VerifiedJWS:
        jwk = JWK.from_dict(key)
        return jws.verify(token, JWKSet([jwk]) if as_set else jwk, algorithms=ALL_ALGORITHMS)

    if expected == "valid":
        verified = verify()
        assert verified.payload == _payload_of(token)
        assert verified.header["alg"] in ALGORITHMS
        assert verified.key.kid == key.get("kid")
        return
    assert expected == "invalid"
    with pytest.raises((InvalidToken, JWKError)) as caught:
        verify()
    codes = _expected_codes(tc_id)
    if codes is not None:
        assert caught.value.code in codes, (caught.value.code, caught.value)


@pytest.mark.parametrize(("keyset", "token", "expected"), _jwk_cases())
def test_wycheproof_jwk_set(keyset: dict[str, Any], token: str, expected: str) -> None:
    if expected == "valid":
        verified = jws.verify(token, JWKSet.from_dict(keyset), algorithms=ALL_ALGORITHMS)
        assert verified.payload == _payload_of(token)
        header = json.loads(b64url_decode(token.split(".")[0]))
        assert verified.key.kid == header["kid"]
        return
    assert expected == "invalid"
    with pytest.raises((InvalidToken, JWKError)):
        jws.verify(token, JWKSet.from_dict(keyset), algorithms=ALL_ALGORITHMS)


def test_overrides_still_apply() -> None:
    """The override table describes the data as it is; a changed upstream file must be
    re-examined instead of silently inheriting a stale decision."""
    tests = {t["tcId"]: t for g in _load(JWS_FILE)["testGroups"] for t in g["tests"]}
    for tc_id, override in JWS_OVERRIDES.items():
        assert tests[tc_id]["result"] == override.upstream, tc_id
        assert override.result != override.upstream
    # 367 and 370 are the very token of 357, which is labelled valid.
    assert tests[357]["result"] == "valid"
    assert tests[367]["jws"] == tests[357]["jws"] == tests[370]["jws"]
    # 372 and 373 hold a character outside the base64url alphabet.
    for tc_id in (372, 373):
        assert "?" in tests[tc_id]["jws"]
    assert len(JWS_OVERRIDES) == 8


def test_vector_counts() -> None:
    """Every case of both files is collected (nothing silently dropped)."""
    assert len(_jws_cases()) == _load(JWS_FILE)["numberOfTests"] == 401
    assert len(_jwk_cases()) == _load(JWK_FILE)["numberOfTests"] == 26
