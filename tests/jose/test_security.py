"""The verifier's security rules, one test (or more) each (see SECURITY.md)."""

from __future__ import annotations

import hmac
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jwkit import JWK, JWKSet, jws, jwt
from jwkit.errors import (
    AlgorithmNotAllowed,
    InvalidSignature,
    JWKError,
    JWKitError,
    MalformedToken,
    UnsupportedAlgorithm,
)
from jwkit.jose._fast import checker_for
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_encode

from ..conftest import private_key
from ._crypto import signing_key, verifying_key
from ._forge import token, unsigned

NOW = int(time.time())
CLAIMS = {"sub": "victim", "exp": NOW + 600}


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", "nOnE", "none ", ""])
def test_alg_none_in_any_spelling(spelling: str) -> None:
    forged = token({"alg": spelling}, CLAIMS)
    for algorithms in (["ES256"], ["none", "None", "NONE", spelling or "x"]):
        with pytest.raises(UnsupportedAlgorithm):
            jwt.decode(forged, private_key("ES256").public(), algorithms=algorithms)


def test_rsa_public_key_as_hmac_secret_confusion() -> None:
    """The classic RS256 -> HS256 attack: sign with HMAC keyed by the public key's PEM."""
    public = private_key("RS256").public()
    for secret in (public.to_pem(), public.to_pem().strip(), public.to_json().encode()):
        signing_input = unsigned({"alg": "HS256", "kid": public.kid}, CLAIMS)
        mac = hmac.digest(secret, signing_input.encode(), "sha256")
        forged = signing_input + "." + b64url_encode(mac)
        with pytest.raises(AlgorithmNotAllowed):
            jwt.decode(forged, public, algorithms=["RS256", "HS256"])
        with pytest.raises(JWKitError):
            jwt.decode(forged, JWKSet([public]), algorithms=["RS256", "HS256"])
    with pytest.raises(JWKError):
        JWK.from_secret(public.to_pem(), "HS256")


@pytest.mark.parametrize(
    ("key_alg", "token_alg"),
    [("ES256", "ES384"), ("ES256", "RS256"), ("RS256", "PS256"), ("PS256", "RS256"),
     ("EdDSA", "ES256"), ("HS256", "HS512"), ("RS256", "RS512"), ("ES384", "ES256")],
)  # fmt: skip
def test_token_alg_must_match_the_key(key_alg: str, token_alg: str) -> None:
    key = private_key(key_alg)
    verify_key = key if key.is_symmetric else key.public()
    forged = token({"alg": token_alg, "kid": key.kid}, CLAIMS, b"\x01" * 64)
    with pytest.raises(AlgorithmNotAllowed):
        jwt.decode(forged, verify_key, algorithms=[key_alg, token_alg])


def test_alg_less_key_still_bound_to_its_type() -> None:
    p256 = private_key("ES256").public().replace(alg=None)
    forged = token({"alg": "ES384"}, CLAIMS, b"\x01" * 96)
    with pytest.raises(AlgorithmNotAllowed):
        jwt.decode(forged, p256, algorithms=["ES256", "ES384"])


@pytest.mark.parametrize("alg", sorted(ALGORITHMS))
def test_an_algorithm_bound_to_a_key_of_another_type_refuses_everything(alg: str) -> None:
    # The algorithm layer's own guard, under the JWK's: a checker made for a key that does
    # not fit refuses even that key's genuine signatures.
    refused = 0
    for other in ("ES256", "ES384", "ES512", "RS256", "EdDSA", "HS256"):
        key = private_key(other)
        if key._fits(ALGORITHMS[alg]):  # the key's type and size fit, whatever its "alg"
            continue
        refused += 1
        genuine = ALGORITHMS[other].sign(signing_key(key), b"input")
        public = verifying_key(key)
        assert ALGORITHMS[alg].checker(public)(b"input", genuine) is False
        assert ALGORITHMS[alg].verify(public, b"input", genuine) is False
        assert key._checker(alg) is None  # the JWK never hands one out
        with pytest.raises(AlgorithmNotAllowed):
            checker_for(key, alg)
        with pytest.raises(JWKError):  # nor does the algorithm sign with it
            ALGORITHMS[alg].sign(signing_key(key), b"input")
    assert refused >= 4


class _CountingHandler(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"keys":[]}')

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_embedded_and_remote_key_headers_are_never_used() -> None:
    attacker = JWK.generate("ES256")
    victim = private_key("ES256").public()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/jwks.json"
        headers = {
            "jwk": attacker.public().to_dict(),
            "jku": url,
            "x5u": url,
            "x5c": ["MIIB"],
            "kid": victim.kid,
        }
        forged = jwt.encode(CLAIMS, attacker, headers=headers)
        with pytest.raises(InvalidSignature):
            jwt.decode(forged, victim, algorithms=["ES256"])
        with pytest.raises(InvalidSignature):
            jwt.decode(forged, JWKSet([victim]), algorithms=["ES256"])
        assert _CountingHandler.hits == 0
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"]},
        {"crit": ["b64"], "b64": False},
        {"crit": ["b64"], "b64": True},
        {"crit": []},
        {"crit": "exp"},
        {"crit": ["alg"]},
        {"b64": False},
        {"b64": "false"},
    ],
)
def test_crit_and_unencoded_payloads(extra: dict[str, object]) -> None:
    key = private_key("ES256")
    signed = jws.sign(b"{}", key, headers=extra)
    with pytest.raises(MalformedToken):
        jws.verify(signed, key.public(), algorithms=["ES256"])


def test_b64_true_without_crit_is_harmless() -> None:
    key = private_key("ES256")
    signed = jws.sign(b"{}", key, headers={"b64": True})
    assert jws.verify(signed, key.public(), algorithms=["ES256"]).payload == b"{}"


@pytest.mark.parametrize(
    "meta",
    [{"use": "enc"}, {"key_ops": ["sign"]}, {"key_ops": ["encrypt"]}, {"key_ops": []}],
)
def test_keys_not_meant_for_verification(meta: dict[str, object]) -> None:
    key = private_key("ES256")
    signed = jwt.encode(CLAIMS, key)
    public = {k: v for k, v in key.public().to_dict().items() if k != "use"} | meta
    with pytest.raises(AlgorithmNotAllowed):
        jwt.decode(signed, JWK.from_dict(public), algorithms=["ES256"])


def test_mixed_or_ambiguous_sets_are_refused() -> None:
    key = private_key("HS256")
    signed = jwt.encode(CLAIMS, key)
    mixed = JWKSet([key, private_key("ES256").public()])
    with pytest.raises(JWKError):
        jwt.decode(signed, mixed, algorithms=["HS256", "ES256"])
    twins = JWKSet([key, JWK.from_secret(b"z" * 32, "HS256", kid=key.kid)])
    with pytest.raises(JWKError):
        jwt.decode(signed, twins, algorithms=["HS256"])


def test_degenerate_ed25519_key_cannot_be_used_to_forge() -> None:
    identity = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(b"\x01" + b"\x00" * 31)}
    with pytest.raises(JWKError):
        JWK.from_dict(identity)


def test_signature_failures_look_alike() -> None:
    key = private_key("ES256")
    h, p, _s = jwt.encode(CLAIMS, key).split(".")
    messages = set()
    for sig in (b"\x00" * 64, b"\x01" * 64, b"\xff" * 64, b"\x01" * 63):
        with pytest.raises(InvalidSignature) as info:
            jwt.decode(f"{h}.{p}.{b64url_encode(sig)}", key.public(), algorithms=["ES256"])
        messages.add(str(info.value))
    assert messages == {"signature verification failed"}
