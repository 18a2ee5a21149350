"""Keys made the way users make them, for the bring-your-own-key and migration tests.

:func:`openssl` runs the real ``openssl`` binary (``genrsa``, ``ecparam -genkey``, ``pkey``)
when it is installed; without it, :mod:`cryptography` writes the same PEM formats.
:func:`old_issuer_token` signs a token the way another issuer (Auth0, Keycloak, a hand-made
script) would, with a key jwkit never held.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jwkit.jose import jwt
from jwkit.jose.jwk import JWK

__all__ = ["HAS_OPENSSL", "old_issuer_token", "openssl_ec", "openssl_rsa", "pem_body_lines"]

HAS_OPENSSL = shutil.which("openssl") is not None


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=120)


def openssl_rsa(path: Path, bits: int, *, traditional: bool = False) -> str:
    """``openssl genrsa`` (PKCS#8 with OpenSSL 3, PKCS#1 with ``traditional``)."""
    if HAS_OPENSSL:
        _run("genrsa", *(["-traditional"] if traditional else []), "-out", str(path), str(bits))
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        fmt = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if traditional
            else serialization.PrivateFormat.PKCS8
        )
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        )
    return path.read_text()


def openssl_ec(path: Path, curve: str = "prime256v1") -> str:
    """``openssl ecparam -genkey`` (an ``EC PARAMETERS`` block, then the key)."""
    if HAS_OPENSSL:
        _run("ecparam", "-genkey", "-name", curve, "-out", str(path))
    else:
        named = {"prime256v1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}[curve]
        key = ec.generate_private_key(named)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return path.read_text()


def pem_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM's private key block that carry private bytes: none may appear
    in any output. A line that decodes to bytes of the public key alone (an RSA key's
    modulus, an EC key's point) is left out: the public JWK may show those bytes, and when
    the alignment happens to match its base64url repeats the line."""
    lines = [ln.strip() for ln in pem.splitlines()]
    inside, body = False, []
    for line in lines:
        if line.startswith("-----BEGIN") and "PRIVATE KEY" in line:
            inside = True
        elif line.startswith("-----END"):
            inside = False
        elif inside and len(line) >= 40:
            body.append(line)
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (TypeError, ValueError):  # encrypted: every line is ciphertext
        return body
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [ln for ln in body if base64.b64decode(ln) not in public]


def old_issuer_token(
    key: JWK, issuer: str, audience: str, *, exp: int, iat: int | None = None, **claims: Any
) -> str:
    """A token signed by another issuer's key (kid in the header, as Auth0 and Keycloak do)."""
    issued = int(time.time()) - 1 if iat is None else iat
    body = {"iss": issuer, "aud": audience, "sub": "user-1", "iat": issued, "exp": exp}
    body.update(claims)
    return jwt.encode(body, key)
