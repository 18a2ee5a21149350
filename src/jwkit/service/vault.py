"""Envelope encryption of private keys at rest (AES-256-GCM).

Each private key is sealed under its own random 256-bit data key (DEK); the DEK is sealed under
the key-encryption key (KEK, the "master key"). Both seals bind ``jwkit:{project_id}:{kid}`` as
associated data, so a ciphertext moved to another row or project fails to open. Rewrapping to a
new master key (``jwkit keys rewrap``) only re-seals the small DEKs.

The master key comes from ``JWKIT_MASTER_KEY`` (32 bytes as base64url or 64 hex digits) or,
when unset, from ``{JWKIT_HOME}/master.key``, created once with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "MasterKeyError",
    "SealedKey",
    "Vault",
    "VaultError",
    "load_master_key",
    "parse_master_key",
]

_NONCE = 12
_VERSION = b"\x01"
MASTER_KEY_FILE = "master.key"


class VaultError(Exception):
    """A sealed key could not be opened (wrong master key, tampered data, wrong binding)."""


class MasterKeyError(ValueError):
    """The configured master key is malformed."""


@dataclass(frozen=True, slots=True)
class SealedKey:
    """What the store keeps for one private key."""

    wrapped_dek: bytes
    ciphertext: bytes
    kek_id: str


def parse_master_key(text: str) -> bytes:
    """Decode a 256-bit master key given as 64 hex digits or unpadded/padded base64url."""
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise MasterKeyError("master key is neither hex nor base64url") from exc
    if len(raw) != 32:
        raise MasterKeyError("master key must be exactly 32 bytes (256 bits)")
    return raw


def load_master_key(env_value: str | None, home: Path) -> bytes:
    """The master key from the environment value, else from (or newly into) the key file."""
    if env_value:
        return parse_master_key(env_value)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / MASTER_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.hex() + "\n")
        return key
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise MasterKeyError(f"{path} must not be readable by group/others (mode {mode:o})")
    return parse_master_key(path.read_text("ascii"))


def _aad(project_id: str, kid: str) -> bytes:
    return f"jwkit:{project_id}:{kid}".encode()


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
        raise VaultError("sealed data is malformed")
    try:
        return AESGCM(key).decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
    except InvalidTag:
        raise VaultError("sealed data cannot be opened with this master key") from None


class Vault:
    """Seals and opens private key material under one master key."""

    __slots__ = ("_kek", "kek_id")

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise MasterKeyError("master key must be exactly 32 bytes (256 bits)")
        self._kek = master_key
        #: A public fingerprint of the master key, stored beside each sealed key.
        self.kek_id = hashlib.sha256(b"jwkit-kek-id:" + master_key).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Vault(kek_id={self.kek_id!r})"

    def seal(self, plaintext: bytes, *, project_id: str, kid: str) -> SealedKey:
        aad = _aad(project_id, kid)
        dek = secrets.token_bytes(32)
        return SealedKey(
            wrapped_dek=_seal(self._kek, dek, aad),
            ciphertext=_seal(dek, plaintext, aad),
            kek_id=self.kek_id,
        )

    def open(self, sealed: SealedKey, *, project_id: str, kid: str) -> bytes:
        aad = _aad(project_id, kid)
        dek = _open(self._kek, sealed.wrapped_dek, aad)
        return _open(dek, sealed.ciphertext, aad)

    def rewrap(self, sealed: SealedKey, new: Vault, *, project_id: str, kid: str) -> SealedKey:
        """Re-seal the data key under ``new``'s master key; the ciphertext stays as it is."""
        aad = _aad(project_id, kid)
        dek = _open(self._kek, sealed.wrapped_dek, aad)
        _open(dek, sealed.ciphertext, aad)  # prove the pair is intact before replacing
        return SealedKey(_seal(new._kek, dek, aad), sealed.ciphertext, new.kek_id)
